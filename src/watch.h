/*
 * Watches: requests parked until their table's index moves, their deadline
 * comes, or the server stops. One thread checks the indexes of the watched
 * tables, at once after a hint (this process's write, a new waiter) and
 * every check_ms otherwise (writes of other processes on the store).
 */
#ifndef WATCH_H
#define WATCH_H

#include <stdint.h>

#include "buf.h"
#include "status.h"

struct watch;

enum watch_reason {
	WATCH_CHANGED,	/* the table's index is not the one waited on */
	WATCH_DEADLINE, /* the deadline came first */
	WATCH_STOP,	/* watch_stop(): answer now */
};

/* The current index of `table`; an error leaves its waiters waiting. */
typedef enum status watch_index_fn(void *ctx, const char *table,
				   uint64_t *index, struct buf *err);
/* A parked request's end: called once, from the watch's thread (or from
 * watch_stop()'s caller), with no lock of the watch held. */
typedef void watch_wake_fn(void *ctx, enum watch_reason why);

struct watch_options {
	watch_index_fn *index;
	void *index_ctx;
	unsigned check_ms; /* between checks without a hint; 0: a default */
};

/* Start the checking thread; NULL when it cannot start. */
struct watch *watch_new(const struct watch_options *opts);
/* After watch_stop(). */
void watch_free(struct watch *w);

/*
 * Park until the index of `table` is other than `index`, or `deadline_ms`
 * (clock_now_ms) passes; then `fn(ctx, why)`, exactly once. Returns -1 (and
 * never calls `fn`) once the watch is stopping.
 */
int watch_park(struct watch *w, const char *table, uint64_t index,
	       uint64_t deadline_ms, watch_wake_fn *fn, void *ctx);

/* `table` (NULL: every table) may have changed: check it now. */
void watch_hint(struct watch *w, const char *table);

/* Parked requests, for /healthz and tests. */
unsigned watch_parked(struct watch *w);

/* Stop the thread and wake every waiter with WATCH_STOP; later parks fail.
 * A second call does nothing. */
void watch_stop(struct watch *w);

#endif
