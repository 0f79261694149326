/*
 * The API layer: one route table for every front end. HTTP and Lambda turn
 * what they received into a struct api_request, call api_begin() and
 * api_finish() (or api_handle()), and send the struct api_answer back. They
 * hold no routing and no answer formats of their own.
 */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

struct auth;
struct registry;
struct registry_share;

#define API_MAX_PARAMS	4
#define API_MAX_HEADERS 8

/* What a route needs of the front end (bits of api_route.flags). */
#define API_BODY (1u << 0) /* reads a request body (else none is read) */
#define API_BLOCKING                                                           \
	(1u << 1) /* may wait on the store: never run it where                 \
		   * a wait stalls other clients */
/* The handler honours api_request.no_wait (see there). */
#define API_NOWAIT (1u << 2)
/* A token valid for some tables only is let through; the handler shows
 * only what it allows (a listing of tables). */
#define API_OWN_TABLES (1u << 3)
/* The status page: refusals come as HTML, and a "lr_token" cookie stands
 * for a missing Authorization header. */
#define API_HTML (1u << 4)
/* The handler uses api_request.body_digest: the front end hashes the body
 * as it arrives, so nothing reads it again for that. */
#define API_DIGEST (1u << 5)

/* Long polls (?index=N&wait=D): the default wait and the longest. */
#define API_WAIT_DEFAULT_MS 30000
#define API_WAIT_MAX_MS	    300000

/* The permission a route needs; checked before its handler runs. */
enum api_scope {
	API_SCOPE_NONE = 0,    /* open, tells nothing about tables */
	API_SCOPE_TABLE_READ,  /* read the path's {table} */
	API_SCOPE_FLEET_READ,  /* read every table: admin or table:*:read */
	API_SCOPE_TABLE_WRITE, /* write the path's {table} (implies read) */
	API_SCOPE_ADMIN,
};

/*
 * How POST generate answers by default: the config as text, or as one JSON
 * string (what the first version's API Gateway answered, and what its agent,
 * cosmonaut, unwraps). `?format=text|json-string` chooses per request and
 * wins over `Accept: application/json`, which wins over the default.
 */
enum api_answer_format {
	API_ANSWER_TEXT = 0,
	API_ANSWER_JSON_STRING,
};

/* "text" or "json-string"; -1 for anything else. */
int api_answer_format_parse(const char *s, enum api_answer_format *out);

struct api_options {
	struct registry *reg;	 /* NULL: every store route answers 503 */
	const char *unavailable; /* why reg is NULL */
	size_t max_body;	 /* larger bodies get 413 */
	/* Appends front-end members to /healthz (",\"connections\":3"). */
	void (*health)(void *ctx, struct buf *json);
	void *health_ctx;
	/* NULL: no route needs a token. Borrowed. */
	struct auth *auth;
	enum api_answer_format answer_format; /* of POST generate */
};

struct api;

struct api_param {
	const char *name;
	char *value; /* the raw path segment, not decoded */
};

struct api_request {
	/* Set by the front end; borrowed, valid until the answer is sent. */
	const char *method; /* as received */
	const char *path;   /* as received, not decoded, without the query */
	const char *query;  /* after '?', not decoded; NULL when none */
	/* A request header by name, any case; NULL when absent. */
	const char *(*header)(void *ctx, const char *name);
	void *header_ctx;
	const char *body;
	size_t body_len;
	/* The body's bytes are the front end's to give: the call may write
	 * them while it runs (see REGISTRY_BODY_WRITABLE). */
	int body_writable;
	/* It came over TLS to this process (cookies get Secure). */
	int tls;
	/* registry_digest_final() of the body when the front end hashed it
	 * as it arrived; NULL: not hashed. */
	const unsigned char *body_digest;
	/* Authorized by the front end itself (a direct Lambda invocation,
	 * which IAM allowed): no token is asked for. */
	int trusted;
	/* Set on an API_NOWAIT route where waiting would stall other clients:
	 * a handler that would wait sets api_answer.busy and nothing else, and
	 * the front end runs it again where it may wait. */
	int no_wait;

	/* Set by api_begin(); api_request_release() frees them. */
	const struct api_route *route;
	struct api_param params[API_MAX_PARAMS];
	size_t nr_params;
	/* The token is valid for some tables only: api_finish() checks the
	 * body's table before the handler runs. */
	int auth_pending;

	/* A watch run again (see api_answer.park_table), set by the front
	 * end: the deadline the first run chose, and whether it must answer
	 * now (the deadline passed or the server stops) rather than wait. */
	uint64_t watch_deadline_ms;
	int watch_final;
};

struct api_header {
	const char *name; /* static */
	char *value;
};

struct api_answer {
	unsigned status;
	const char *content_type; /* static; NULL: no body (a 304) */
	struct buf body;
	/* When set, the body is this shared config instead of `body` (sent
	 * without a copy; see api_answer_data and api_answer_take_share). */
	struct registry_share *share;
	struct api_header headers[API_MAX_HEADERS];
	size_t nr_headers;
	/* The matched route's pattern for logs and metrics, never the raw
	 * path; "-" when nothing matched. */
	const char *route;
	int busy; /* see api_request.no_wait */
	/*
	 * Set instead of an answer by a watch whose table is still at
	 * `park_index`: the front end keeps the request without a thread
	 * until that table's index moves (any other value: a change, or a
	 * reset store) or `park_deadline_ms` (clock_now_ms) comes, then runs
	 * api_finish() again with watch_deadline_ms set (and watch_final at
	 * the deadline or on shutdown) on a fresh answer.
	 */
	char *park_table;
	uint64_t park_index;
	uint64_t park_deadline_ms;
};

typedef void api_handler_fn(struct api *api, const struct api_request *req,
			    struct api_answer *ans);

struct api_route {
	const char *method;
	const char *pattern; /* "/v1/tables/{table}/generate" */
	api_handler_fn *handler;
	unsigned flags;
	enum api_scope scope;
	/* NULL, or what may answer from the headers alone before the body is
	 * read (api_early): it fills in `ans` when it answers, and leaves it
	 * untouched otherwise. Never waits on the store. */
	api_handler_fn *early;
};

/* `opts` is copied; the registry stays the caller's. */
struct api *api_new(const struct api_options *opts);
void api_free(struct api *api);

void api_request_init(struct api_request *req);
void api_request_release(struct api_request *req);
void api_answer_init(struct api_answer *ans);
void api_answer_release(struct api_answer *ans);

/* The path parameter `name` of the matched route (raw), or NULL. */
const char *api_param(const struct api_request *req, const char *name);
/*
 * The query parameter `name`, decoded (%XX and '+'), into `out`. Returns 1
 * when present, 0 when absent, -1 when malformed (a bad escape or a NUL).
 */
int api_query(const struct api_request *req, const char *name, struct buf *out);

/*
 * Match the route for the request's method and path, and check what can be
 * checked before a body is read: path parameters, then the token against the
 * route's scope (401 with WWW-Authenticate for no valid token, 403 for a
 * token without the scope; the same whether the table exists or not).
 * Returns 0 with req->route set: read the body if the route has API_BODY,
 * then call api_finish(). Returns -1 with `ans` filled (404, 405 with Allow,
 * 400, 401, 403): send it and read no body. HEAD is matched as GET. Never
 * waits on the store.
 */
int api_begin(struct api *api, struct api_request *req, struct api_answer *ans);
/*
 * For a front end that can answer before the body arrives (HTTP, when the
 * client sent Expect: 100-continue and waits), after api_begin() returned
 * 0: 1 with `ans` filled when the route answers without the body (send it,
 * read no body), 0 when it needs the body (read it, then api_finish()).
 * Never waits on the store.
 */
int api_early(struct api *api, struct api_request *req, struct api_answer *ans);
/* Make `ans` a fresh answer for another run of the same request's route. */
void api_answer_reset(struct api_answer *ans);

/* Run the matched route's handler on the complete request. */
void api_finish(struct api *api, struct api_request *req,
		struct api_answer *ans);
/* api_begin() and api_finish() for a front end that has the body already. */
void api_handle(struct api *api, struct api_request *req,
		struct api_answer *ans);

/* The answer's body bytes, whether owned or shared. */
const char *api_answer_data(const struct api_answer *ans, size_t *len);
/* Take the shared config over (NULL when there is none): the caller
 * releases it with registry_share_release() after sending. */
struct registry_share *api_answer_take_share(struct api_answer *ans);
/* Add a header to the answer; `name` must be a static string. */
void api_answer_header(struct api_answer *ans, const char *name,
		       const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The header `name` of the answer (any case), or NULL. */
const char *api_answer_get_header(const struct api_answer *ans,
				  const char *name);
/* A JSON error answer: {"error": msg, "field": field} with st's status. */
void api_answer_error(struct api_answer *ans, enum status st, const char *msg,
		      const char *field);

/* {"error": msg, "field": field} (field left out when NULL or empty). */
void api_error_json(const char *msg, const char *field, struct buf *out);

#endif
