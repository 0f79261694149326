/*
 * Process-wide counters, gauges and histograms, written in the Prometheus
 * text format 0.0.4, and the few recent events the status page shows. Every
 * update is lock-free once its label set has been seen; a new label set
 * takes one mutex. Counters never reset while the process lives.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct service_list;

/*
 * The `table` label is the only open-ended one: at most this many tables get
 * series; later tables are left out of /metrics (and the status page's list)
 * and counted in lambda_registry_metrics_series_dropped_total.
 */
#define METRICS_MAX_TABLES 1000
/* The other labeled families are bounded by their label values (route
 * patterns, status codes, rules); this cap only guards against a bug. */
#define METRICS_MAX_SERIES 4096

/* Which process writes a family (metrics_write's `groups`). */
#define METRICS_SERVE (1u << 0)
#define METRICS_AGENT (1u << 1)

struct metrics_family;

/* serve */
extern struct metrics_family metrics_http_requests;	 /* route, code */
extern struct metrics_family metrics_http_duration;	 /* route */
extern struct metrics_family metrics_payload_rejections; /* reason */
extern struct metrics_family metrics_store_operations; /* backend, op, result */
extern struct metrics_family metrics_store_duration;   /* backend, op */
extern struct metrics_family metrics_cache_hits;
extern struct metrics_family metrics_unparsed_calls;
extern struct metrics_family metrics_cache_misses;
extern struct metrics_family metrics_renders;
extern struct metrics_family metrics_watchers;
extern struct metrics_family metrics_auth_failures; /* code */
extern struct metrics_family metrics_agent_reports; /* result */
/* agent */
extern struct metrics_family metrics_agent_applies; /* method, result */
extern struct metrics_family metrics_agent_reloads;
extern struct metrics_family metrics_agent_rollbacks;
extern struct metrics_family metrics_agent_config_rejections;
extern struct metrics_family metrics_agent_registry_errors; /* code */
extern struct metrics_family metrics_agent_last_success;
extern struct metrics_family metrics_agent_last_timestamp;
extern struct metrics_family metrics_agent_applied_index;
extern struct metrics_family metrics_agent_runtime_duration;

/* Record the start time and the build; main calls it once, early. */
void metrics_init(void);

/*
 * `values` holds one value per label of the family, in the family's order
 * (NULL for a family without labels); the strings are copied when the label
 * set is new. An update past a family's series cap is dropped and counted.
 */
void metrics_counter_add(struct metrics_family *f, const char *const *values,
			 uint64_t n);
void metrics_gauge_set(struct metrics_family *f, const char *const *values,
		       double v);
void metrics_gauge_add(struct metrics_family *f, const char *const *values,
		       double delta);
/* One observation of a duration in microseconds. */
void metrics_observe_us(struct metrics_family *f, const char *const *values,
			uint64_t us);

/* One answered HTTP request: `route` the route pattern ("-" for none). */
void metrics_http_request(const char *route, unsigned code, uint64_t us);

/*
 * The number of parked watches (lambda_registry_watchers): +1 as one
 * parks, -1 as it is answered or its connection goes.
 */
void metrics_watchers_add(long delta);

/* The per-table gauges after a call answered with `services` at `version`
 * (the store's table version, 0 for a store without one). */
void metrics_table_services(const char *table, uint64_t version,
			    const struct service_list *services);

/*
 * Append every family of `groups`, sorted by name, each with its HELP and
 * TYPE lines and its series sorted by label values; process metrics are
 * read from /proc first.
 */
void metrics_write(unsigned groups, struct buf *out);

/* Recent events, kept in memory for the status page. */
#define METRICS_MAX_REJECTIONS	 100
#define METRICS_MAX_STORE_ERRORS 20

struct metrics_rejection {
	int64_t at_ms;
	char table[256];  /* "" when the payload had none */
	char field[256];  /* the field path, e.g. candidates[0].port */
	const char *rule; /* static: the reason label */
};

struct metrics_store_error {
	int64_t at_ms;
	const char *backend, *op; /* static */
	char message[256];
};

struct metrics_table {
	char *table;
	uint64_t version, services, servers;
	int64_t last_change_ms;
};

/* A refused call: never its values, only where and which rule. */
void metrics_note_rejection(const char *table, const char *field,
			    const char *rule);
/* A store operation that failed for the store's sake (not a conflict). */
void metrics_note_store_error(const char *backend, const char *op,
			      const char *message);

/* The newest first; returns how many were copied (at most `max`). */
size_t metrics_recent_rejections(struct metrics_rejection *out, size_t max);
size_t metrics_recent_store_errors(struct metrics_store_error *out, size_t max);
/* The tables with gauges, sorted by name, into a new array of `*nr`;
 * metrics_tables_free() releases it. */
struct metrics_table *metrics_tables(size_t *nr);
void metrics_tables_free(struct metrics_table *tables, size_t nr);

#endif
