/* Time in milliseconds, sleeping, and retry backoff with full jitter. */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

/* Milliseconds on the monotonic clock (for deadlines and durations). */
uint64_t clock_now_ms(void);
/* Microseconds on the monotonic clock. */
uint64_t clock_now_us(void);
/* Milliseconds since the epoch (for timestamps that leave the process). */
uint64_t clock_real_ms(void);
/* Sleep `ms`, resuming after signals. */
void clock_sleep_ms(uint64_t ms);

/*
 * Exponential backoff with full jitter: attempt n waits a uniformly random
 * time in [0, min(cap, base * 2^n)]. Each handle has its own generator,
 * seeded from getrandom(), so processes started together do not retry in
 * step.
 */
struct backoff {
	uint64_t rng;
	uint64_t base_ms;
	uint64_t cap_ms;
	unsigned attempt;
};

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms);
/* The wait before the next attempt; counts the attempt. */
uint64_t backoff_next_ms(struct backoff *b);
/* After a success: the next failure starts from `base_ms` again. */
void backoff_reset(struct backoff *b);
/* A uniformly distributed 64-bit number from the handle's generator. */
uint64_t backoff_random(struct backoff *b);

#endif
