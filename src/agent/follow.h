/*
 * `agent --follow`: no source; long-poll a table's config in the registry
 * and apply every new index to the local HAProxy, with the care of
 * haproxy_apply(). How a second and third HAProxy serve a table that another
 * agent or a pipeline feeds.
 */
#ifndef AGENT_FOLLOW_H
#define AGENT_FOLLOW_H

#include <signal.h>

#include "agent/haproxy.h"

struct follow_options {
	const char *registry; /* base URL, without /generate */
	const char *table;
	const char *authorization; /* "Authorization: Bearer ..." or NULL */
	const char *ca_file;	   /* NULL: the system's */
	unsigned timeout_ms;	   /* a request, beyond the wait itself */
	unsigned wait_ms;	   /* of one long poll */
	const struct haproxy_options *haproxy;
	/* Set by a signal handler: return soon, even from a long poll. */
	volatile sig_atomic_t *stop;
};

/*
 * Follow until *stop. A lost registry keeps the live config; the poll is
 * retried with backoff and resumes from the last index. Never applies a
 * config of a lower index than the one applied (a reset store waits until
 * it passes it). Returns the process exit code.
 */
int follow_run(const struct follow_options *opts);

#endif
