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
/* Agents the store keeps reports of, all tables together: a report from a
 * new agent past this is refused (ST_TOO_LARGE). */
#define REPORT_MAX_AGENTS 1024

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

#endif
