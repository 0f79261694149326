/*
 * Parked watches by table, and the thread that wakes them: on a changed
 * index, at their deadline, or all at once when the server stops.
 */
#include "watch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "xalloc.h"
#include "banned.h"

#define WATCH_BUCKETS	    256
#define WATCH_DEFAULT_CHECK 50

struct watch_waiter {
	struct watch_waiter *prev,
		*next; /* in its table; `next` in a wake list */
	uint64_t index, deadline_ms;
	watch_wake_fn *fn;
	void *ctx;
	enum watch_reason why;
};

struct watch_table {
	struct watch_table *next; /* hash chain */
	char *name;
	struct watch_waiter *waiters;
	int hinted;
};

struct watch {
	struct watch_options opts;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a hint, or stopping */
	struct watch_table *buckets[WATCH_BUCKETS];
	unsigned parked;
	int hinted, hint_all, stopping;
	pthread_t thread;
};

/* A table name checked in one round, and what its check gave. */
struct watch_check {
	char *name;
	uint64_t index;
	int ok;
};

static struct watch_table **watch_slot(struct watch *w, const char *name)
{
	uint32_t h = 2166136261u;
	const char *s;

	for (s = name; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return &w->buckets[h % WATCH_BUCKETS];
}

static struct watch_table *watch_find(struct watch *w, const char *name)
{
	struct watch_table *t;

	for (t = *watch_slot(w, name); t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

static void watch_unlink(struct watch_table *t, struct watch_waiter *ww)
{
	if (ww->prev)
		ww->prev->next = ww->next;
	else
		t->waiters = ww->next;
	if (ww->next)
		ww->next->prev = ww->prev;
}

/* Move `ww` from its table to the wake list `*wake`, with `why`. */
static void watch_take(struct watch *w, struct watch_table *t,
		       struct watch_waiter *ww, enum watch_reason why,
		       struct watch_waiter **wake)
{
	watch_unlink(t, ww);
	ww->why = why;
	ww->prev = NULL;
	ww->next = *wake;
	*wake = ww;
	w->parked--;
}

/* Free the tables nobody waits on any more (w->lock held). */
static void watch_prune(struct watch *w)
{
	size_t b;

	for (b = 0; b < WATCH_BUCKETS; b++) {
		struct watch_table **slot = &w->buckets[b];

		while (*slot) {
			struct watch_table *t = *slot;

			if (t->waiters) {
				slot = &t->next;
				continue;
			}
			*slot = t->next;
			free(t->name);
			free(t);
		}
	}
}

/* Call and free a wake list, without the lock. */
static void watch_run(struct watch_waiter *wake)
{
	while (wake) {
		struct watch_waiter *next = wake->next;

		wake->fn(wake->ctx, wake->why);
		free(wake);
		wake = next;
	}
}

/* The names to check this round: every watched table on a tick, else the
 * hinted ones (w->lock held). */
static size_t watch_collect(struct watch *w, int tick, struct watch_check **out,
			    size_t *alloc)
{
	size_t b, nr = 0;

	for (b = 0; b < WATCH_BUCKETS; b++) {
		struct watch_table *t;

		for (t = w->buckets[b]; t; t = t->next) {
			if (!t->waiters || !(tick || w->hint_all || t->hinted))
				continue;
			t->hinted = 0;
			ALLOC_GROW(*out, nr + 1, *alloc);
			(*out)[nr].name = xstrdup(t->name);
			(*out)[nr].ok = 0;
			nr++;
		}
	}
	w->hinted = w->hint_all = 0;
	return nr;
}

/*
 * The thread. Each round reads the indexes of the tables it collected with
 * the lock released (a store read may take a while), then wakes every
 * waiter whose index is not the one read. A waiter parked after its
 * handler read the index can miss the hint of a write in between; parking
 * hints its table, so the next round reads it again and nothing is missed.
 */
static void *watch_main(void *arg)
{
	struct watch *w = arg;
	struct watch_check *checks = NULL;
	struct buf err = BUF_INIT;
	size_t alloc = 0, nr, i;
	uint64_t last_tick = 0;

	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		struct watch_waiter *wake = NULL;
		uint64_t now = clock_now_ms();
		int tick = now - last_tick >= w->opts.check_ms;
		size_t b;

		if (!tick && !w->hinted) {
			uint64_t ms = last_tick + w->opts.check_ms - now;
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(ms / 1000);
			ts.tv_nsec += (long)(ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&w->cond, &w->lock, &ts);
			continue;
		}
		if (tick)
			last_tick = now;
		nr = watch_collect(w, tick, &checks, &alloc);
		pthread_mutex_unlock(&w->lock);
		for (i = 0; i < nr; i++) {
			buf_reset(&err);
			checks[i].ok =
				w->opts.index(w->opts.index_ctx, checks[i].name,
					      &checks[i].index, &err) == ST_OK;
		}
		pthread_mutex_lock(&w->lock);
		for (i = 0; i < nr; i++) {
			struct watch_table *t =
				checks[i].ok ? watch_find(w, checks[i].name)
					     : NULL;
			struct watch_waiter *ww, *next;

			for (ww = t ? t->waiters : NULL; ww; ww = next) {
				next = ww->next;
				if (ww->index != checks[i].index)
					watch_take(w, t, ww, WATCH_CHANGED,
						   &wake);
			}
			free(checks[i].name);
		}
		now = clock_now_ms();
		for (b = 0; tick && b < WATCH_BUCKETS; b++) {
			struct watch_table *t;

			for (t = w->buckets[b]; t; t = t->next) {
				struct watch_waiter *ww, *next;

				for (ww = t->waiters; ww; ww = next) {
					next = ww->next;
					if (ww->deadline_ms <= now)
						watch_take(w, t, ww,
							   WATCH_DEADLINE,
							   &wake);
				}
			}
		}
		watch_prune(w);
		pthread_mutex_unlock(&w->lock);
		watch_run(wake);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	free(checks);
	buf_release(&err);
	return NULL;
}

struct watch *watch_new(const struct watch_options *opts)
{
	struct watch *w = xcalloc(1, sizeof(*w));

	w->opts = *opts;
	if (!w->opts.check_ms)
		w->opts.check_ms = WATCH_DEFAULT_CHECK;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thread, NULL, watch_main, w)) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void watch_free(struct watch *w)
{
	if (!w)
		return;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int watch_park(struct watch *w, const char *table, uint64_t index,
	       uint64_t deadline_ms, watch_wake_fn *fn, void *ctx)
{
	struct watch_waiter *ww;
	struct watch_table *t;

	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return -1;
	}
	t = watch_find(w, table);
	if (!t) {
		struct watch_table **slot = watch_slot(w, table);

		t = xcalloc(1, sizeof(*t));
		t->name = xstrdup(table);
		t->next = *slot;
		*slot = t;
	}
	ww = xcalloc(1, sizeof(*ww));
	ww->index = index;
	ww->deadline_ms = deadline_ms;
	ww->fn = fn;
	ww->ctx = ctx;
	ww->next = t->waiters;
	if (ww->next)
		ww->next->prev = ww;
	t->waiters = ww;
	w->parked++;
	t->hinted = 1;
	w->hinted = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void watch_hint(struct watch *w, const char *table)
{
	pthread_mutex_lock(&w->lock);
	if (!table) {
		w->hint_all = 1;
		w->hinted = 1;
	} else {
		struct watch_table *t = watch_find(w, table);

		if (t) {
			t->hinted = 1;
			w->hinted = 1;
		}
	}
	if (w->hinted)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

unsigned watch_parked(struct watch *w)
{
	unsigned n;

	pthread_mutex_lock(&w->lock);
	n = w->parked;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void watch_stop(struct watch *w)
{
	struct watch_waiter *wake = NULL;
	size_t b;

	int again;

	pthread_mutex_lock(&w->lock);
	again = w->stopping;
	w->stopping = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (again)
		return;
	pthread_join(w->thread, NULL);
	pthread_mutex_lock(&w->lock);
	for (b = 0; b < WATCH_BUCKETS; b++) {
		struct watch_table *t;

		for (t = w->buckets[b]; t; t = t->next)
			while (t->waiters)
				watch_take(w, t, t->waiters, WATCH_STOP, &wake);
	}
	watch_prune(w);
	pthread_mutex_unlock(&w->lock);
	watch_run(wake);
}
