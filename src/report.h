/*
 * Agent reports: what an agent says after each apply (the index it runs, how
 * and how it went, its HAProxy's version and server states), checked like a
 * payload and kept as one store document per agent.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdint.h>

#include "buf.h"
#include "status.h"

/* The store document kind; keys are "TABLE/AGENT-ID". */
#define REPORT_KIND "agent"
/*
 * Agents whose last reports are kept, in the store and in each process's
 * memory: all tables together, and per table. A report from a new agent past
 * either cap first deletes the oldest report (of its table, for the table's
 * cap), so a fleet that churns agent ids cannot grow either without limit.
 */
#define REPORT_MAX_AGENTS	1024
#define REPORT_MAX_TABLE_AGENTS 256
/* How long a process shows its copy of the reports before it reads the
 * kind's generation again: other processes' reports appear within this. */
#define REPORT_FRESH_MS 1000

struct store;
struct store_doc_list;
/* The last report per agent, in memory, over what the store keeps. */
struct report_cache;

struct report {
	uint64_t applied_index;	  /* the registry's index of the live config */
	const char *method;	  /* static: "noop", "runtime" or "reload" */
	char result[33];	  /* [a-z_], e.g. "ok", "rejected" */
	char haproxy_version[65]; /* printable ASCII */
	uint64_t up, down;	  /* servers by `show stat` status */
	int64_t received_ms;	  /* set by the registry */
};

/*
 * Check an agent's JSON report: {"appliedIndex": N, "method": "reload",
 * "result": "ok", "haproxyVersion": "2.6.12", "up": N, "down": N}; unknown
 * fields are ignored. ST_INVALID with the reason in `err` and the member in
 * `field`.
 */
enum status report_parse(const char *json, size_t len, struct report *out,
			 struct buf *err, struct buf *field) WARN_UNUSED;

/* The canonical JSON of `r`, with "receivedAt" (ms). */
void report_json(const struct report *r, struct buf *out);

/* A cache keeping at most `max_agents` reports, `max_table` per table. */
struct report_cache *report_cache_new(size_t max_agents, size_t max_table);
void report_cache_free(struct report_cache *c);

/*
 * Keep `r` (stamped now) as `agent`'s last report on `table`: first in the
 * store through `st`, deleting the oldest reports a new agent displaces,
 * then, only once the store took it, in memory.
 */
enum status report_cache_put(struct report_cache *c, struct store *st,
			     const char *table, const char *agent,
			     struct report *r, struct buf *err) WARN_UNUSED;

/*
 * Append every kept report to `out` (keys "TABLE/AGENT-ID" in byte order):
 * from memory while it was checked against the store in the last
 * REPORT_FRESH_MS; else after one read of the kind's generation, and a
 * listing only when that moved (another process wrote).
 */
enum status report_cache_list(struct report_cache *c, struct store *st,
			      struct store_doc_list *out,
			      struct buf *err) WARN_UNUSED;

#endif
