/* Monotonic and wall-clock milliseconds, sleep, and jittered backoff. */
#include "clock.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "banned.h"

uint64_t clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t clock_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t clock_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void clock_sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms)
{
	uint64_t seed = 0;

	/* getrandom() of 8 bytes does not block once the pool is ready; fall
	 * back to time and pid so a seed is never zero. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = clock_real_ms() ^ ((uint64_t)getpid() << 32) ^
		       (uint64_t)(uintptr_t)b;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	b->base_ms = base_ms ? base_ms : 1;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->attempt = 0;
}

/* xorshift64*: enough for jitter, and no state shared between threads. */
uint64_t backoff_random(struct backoff *b)
{
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ull;
}

uint64_t backoff_next_ms(struct backoff *b)
{
	uint64_t ceiling = b->base_ms;
	unsigned i;

	for (i = 0; i < b->attempt && ceiling < b->cap_ms; i++)
		ceiling *= 2;
	if (ceiling > b->cap_ms)
		ceiling = b->cap_ms;
	if (b->attempt < 64)
		b->attempt++;
	return backoff_random(b) % (ceiling + 1);
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
