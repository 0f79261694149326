/*
 * The request payload: JSON in, validated C structs out. This is the only
 * place that validates input; nothing after it sees jansson.
 */
#ifndef PAYLOAD_H
#define PAYLOAD_H

#include <stddef.h>

#include "buf.h"
#include "service.h"
#include "status.h"

/* Nesting deeper than this is refused before it is looked at. */
#define PAYLOAD_MAX_DEPTH 16

struct running {
	char *service;
	char *id;
	char *ip;
};

struct payload_block;

/* A candidate checked in place but not kept (see `lazy`). */
struct payload_lazy {
	const char *name; /* in the payload's blocks */
	size_t at;	  /* where its object starts in `in_place` */
};

struct payload {
	char *table;
	struct running *running;
	size_t nr_running;
	/* Candidates in payload order; containers sorted and unique per
	 * candidate. */
	struct service_list candidates;
	/* When set, the strings of `running` live in these blocks (one free
	 * per block instead of three per entry); else each is malloc'd. */
	struct payload_block *blocks;
	/* Parsed in place (payload_parse_table_in_place): the strings of
	 * `running` inside these bytes end with a NUL over their closing
	 * quote, which payload_release() puts back. */
	char *in_place;
	size_t in_place_len;
	/* In place, the candidates are checked and not kept: `candidates`
	 * stays empty, and payload_candidate() parses one again, from these
	 * offsets, when the merge comes to it. A table's worth of them would
	 * otherwise be alive next to the cached table and the merged one. */
	struct payload_lazy *lazy;
	size_t nr_lazy;
};

void payload_init(struct payload *p);
void payload_release(struct payload *p);

/* The candidates in payload order, parsed in place or not. */
size_t payload_nr_candidates(const struct payload *p);
const char *payload_candidate_name(const struct payload *p, size_t i);
/*
 * Candidate `i`: the payload's own (a merge with MERGE_TAKE takes from it),
 * or (parsed in place) parsed again into `scratch`, which is released
 * first and is then the caller's, to take from or to release. Pass
 * `scratch` initialised (zeroed) and release it once done either way.
 */
struct service *payload_candidate(struct payload *p, size_t i,
				  struct service *scratch);
/*
 * Whether candidate `i`, parsed in place, is `svc` as it stands: the same
 * settings, default options, and its containers in its order with no
 * weights. Parses without allocating; 0 (not known) when not in place.
 */
int payload_candidate_is(struct payload *p, size_t i,
			 const struct service *svc);

/*
 * Parse and validate `len` bytes of JSON. On ST_INVALID, `err` says what is
 * wrong and `field` holds its path, e.g. "candidates[1].containers[0].ip"
 * (empty when the document as a whole is at fault). `p` is then released.
 */
enum status payload_parse(struct payload *p, const char *json, size_t len,
			  struct buf *err, struct buf *field) WARN_UNUSED;

/*
 * As payload_parse(), for a call addressed to `table` (the path's, already
 * checked): the document's "table" may be left out, and when present must
 * equal `table` (else ST_INVALID naming "table"). NULL: payload_parse().
 */
enum status payload_parse_table(struct payload *p, const char *table,
				const char *json, size_t len, struct buf *err,
				struct buf *field) WARN_UNUSED;

/*
 * payload_parse_table() on a body it may write: the strings of `running`
 * are ended in place, a NUL over their closing quote, instead of copied
 * out, and the candidates are parsed again when asked for (`lazy`) when
 * the fast path takes the document. `json` must stay until
 * payload_release(), which puts the quotes back; a parse that fails leaves
 * it as it was.
 */
enum status payload_parse_table_in_place(struct payload *p, const char *table,
					 char *json, size_t len,
					 struct buf *err,
					 struct buf *field) WARN_UNUSED;

/*
 * The same with the general JSON parser only. payload_parse() first tries a
 * parser for exactly the payload's shape and falls back to this one for
 * anything it is not sure about; both must give the same result (the unit
 * tests and fuzz/fuzz_payload.c compare them). payload_parse_table_full()
 * is payload_parse_table() the same way.
 */
enum status payload_parse_full(struct payload *p, const char *json, size_t len,
			       struct buf *err, struct buf *field) WARN_UNUSED;
enum status payload_parse_table_full(struct payload *p, const char *table,
				     const char *json, size_t len,
				     struct buf *err,
				     struct buf *field) WARN_UNUSED;

/*
 * The rule a refused payload broke, for metrics and the status page: the
 * field path of ST_INVALID's `field` without its indices
 * ("candidates[].containers[].ip"), "json" for the document as a whole, or
 * "other". A static string that never carries a value from the payload.
 */
const char *payload_reject_reason(const char *field);
/* The valid "table" of a refused payload, into `out` ("" when none). */
void payload_peek_table(const char *json, size_t len, struct buf *out);

/* Validators shared with other front ends (the agent, the stores). Each
 * returns 0 when `s` is acceptable, else -1 with the reason in `err`. */
int payload_check_table(const char *s, struct buf *err);
int payload_check_name(const char *s, struct buf *err);
/* Canonicalise an IPv4/IPv6 address into `out`. */
int payload_check_ip(const char *s, struct buf *out, struct buf *err);
/* Canonicalise a predicate for `mode` into `out` (lower-case host, no leading
 * '/'). */
int payload_check_predicate(enum config_mode mode, const char *s,
			    struct buf *out, struct buf *err);
int payload_check_cookie(const char *s, struct buf *err);
/* Port from a decimal string; for numbers already in range use it directly. */
int payload_check_port_string(const char *s, unsigned *port, struct buf *err);

/* A duration in HAProxy's syntax ("500ms", "45s", "2m", "1h") from `min_ms`
 * to `max_ms`, into `*ms`. */
int payload_check_duration(const char *s, unsigned min_ms, unsigned max_ms,
			   unsigned *ms, struct buf *err);
/* A health check path: absolute, a path and query of safe characters. */
int payload_check_health_path(const char *s, struct buf *err);
/* A decimal integer from `min` to `max` given as text; `what` names it in
 * the error. */
int payload_check_number_text(const char *what, const char *s, unsigned min,
			      unsigned max, unsigned *out, struct buf *err);

/*
 * Services in the payload's candidate shape, as a JSON array appended to
 * `out`: serviceName, port, configMode, predicate, cookie (when set),
 * containers [{id, ip}], and with PAYLOAD_JSON_TIMES also createdAt and
 * updatedAt (ms since the epoch). Deterministic, in list order.
 */
#define PAYLOAD_JSON_TIMES (1u << 0)
void payload_services_json(const struct service_list *list, unsigned flags,
			   struct buf *out);

/*
 * A service's routing settings given as text, as the agent's sources read
 * them (environment, labels, a JSON file): checked with the validators above
 * and canonicalised into `svc`, which the caller releases either way. `mode`
 * and `cookie` may be NULL or empty (host mode, not sticky); the others are
 * required. -1 with the reason in `err`.
 */
int payload_check_service_text(struct service *svc, const char *name,
			       const char *port, const char *mode,
			       const char *predicate, const char *cookie,
			       struct buf *err);

/*
 * A service's backend options given as text, as the agent's sources read
 * them (env vars / labels BALANCE, COOKIE_MODE, HEALTH_CHECK_PATH, ...). NULL
 * or empty: not given. The HEALTH_CHECK_* values need HEALTH_CHECK_PATH.
 * Call after payload_check_service_text() (cookieMode "insert" needs the
 * cookie). -1 with the reason, naming the setting, in `err`.
 */
struct payload_options_text {
	const char *balance;
	const char *cookie_mode;
	const char *check_path;
	const char *check_status;
	const char *check_interval;
	const char *check_rise;
	const char *check_fall;
	const char *maxconn;
	const char *timeout_server;
	const char *timeout_tunnel;
};
int payload_check_options_text(struct service *svc,
			       const struct payload_options_text *t,
			       struct buf *err);
/* A container weight (0 to 256) given as text; NULL or empty: WEIGHT_UNSET. */
int payload_check_weight_text(const char *s, int *weight, struct buf *err);

/*
 * A service's options and its containers' weights as one canonical JSON
 * object (sorted keys, the candidate's key names plus "weights": {id: n}),
 * appended to `out`; nothing at all when every one is at its default. This
 * is what every store backend keeps with the service (SQLite: the options
 * column, DynamoDB: the options attribute; absent or NULL: all defaults);
 * -1 over out's cap (`out` as it was).
 */
int payload_options_json(const struct service *svc, struct buf *out);
/* Read such a document back into `svc`, whose cookie and containers are
 * already loaded; every value is checked again. -1 with the reason. */
int payload_parse_options(struct service *svc, const char *json,
			  struct buf *err);

/* Check a container id (a server name) and address given as text and add
 * them to `svc`. -1 with the reason in `err`, `svc` unchanged. */
int payload_check_container_text(struct service *svc, const char *id,
				 const char *ip, struct buf *err);

#endif
