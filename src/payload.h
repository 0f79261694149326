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
};

void payload_init(struct payload *p);
void payload_release(struct payload *p);

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

/* Check a container id (a server name) and address given as text and add
 * them to `svc`. -1 with the reason in `err`, `svc` unchanged. */
int payload_check_container_text(struct service *svc, const char *id,
				 const char *ip, struct buf *err);

#endif
