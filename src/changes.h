/*
 * Changes per hour of each table over the last day, kept in the store (one
 * small document per table) so every process on the store, and a restarted
 * one, draws the same status page sparkline.
 */
#ifndef CHANGES_H
#define CHANGES_H

#include <stdint.h>

#include "buf.h"
#include "status.h"

struct store;

/* The store document kind; the key is the table's name. */
#define CHANGES_KIND "changes"
/* Hours kept per table: a document never holds more buckets. */
#define CHANGES_HOURS 24

/*
 * Count `n` stored changes of `table` in the hour of `now_ms` (ms since the
 * epoch), dropping buckets older than CHANGES_HOURS; a read, then a put
 * conditional on the version read, retried when another writer came
 * between. A doc_* transaction of its own: never inside a table call.
 */
enum status changes_note(struct store *st, const char *table, int64_t now_ms,
			 uint64_t n, struct buf *err) WARN_UNUSED;

/*
 * Changes in each of the CHANGES_HOURS hours up to the one of `now_ms`, the
 * current hour last: of `table`, or of every table when `table` is NULL.
 */
enum status changes_per_hour(struct store *st, const char *table,
			     int64_t now_ms, uint64_t out[CHANGES_HOURS],
			     struct buf *err) WARN_UNUSED;

#endif
