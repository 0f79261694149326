/* The route table every front end serves, and the answers it gives. */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "clock.h"
#include "metrics.h"
#include "payload.h"
#include "registry.h"
#include "report.h"
#include "store/store.h"
#include "ui.h"
#include "xalloc.h"
#include "banned.h"

struct api {
	struct api_options opts;
};

static api_handler_fn api_generate, api_generate_early, api_healthz, api_tables,
	api_table, api_table_config, api_metrics, api_report_put, api_reports,
	api_ui, api_ui_table, api_ui_config, api_ui_style, api_ui_login_form,
	api_ui_login;

/* Matched in order; a pattern's {name} takes one whole, non-empty segment. */
static const struct api_route api_routes[] = {
	{"POST", "/generate", api_generate,
	 API_BODY | API_BLOCKING | API_NOWAIT | API_DIGEST,
	 API_SCOPE_TABLE_WRITE, api_generate_early},
	{"POST", "/v1/tables/{table}/generate", api_generate,
	 API_BODY | API_BLOCKING | API_NOWAIT | API_DIGEST,
	 API_SCOPE_TABLE_WRITE, api_generate_early},
	{"GET", "/healthz", api_healthz, API_BLOCKING, API_SCOPE_NONE, NULL},
	{"GET", "/v1/tables", api_tables, API_BLOCKING | API_OWN_TABLES,
	 API_SCOPE_TABLE_READ, NULL},
	{"GET", "/v1/tables/{table}", api_table, API_BLOCKING,
	 API_SCOPE_TABLE_READ, NULL},
	{"GET", "/v1/tables/{table}/config", api_table_config, API_BLOCKING,
	 API_SCOPE_TABLE_READ, NULL},
	{"GET", "/metrics", api_metrics, 0, API_SCOPE_FLEET_READ, NULL},
	{"PUT", "/v1/tables/{table}/agents/{agent}", api_report_put,
	 API_BODY | API_BLOCKING, API_SCOPE_TABLE_WRITE, NULL},
	{"GET", "/v1/agents", api_reports, API_BLOCKING, API_SCOPE_FLEET_READ,
	 NULL},
	{"GET", "/", api_ui, API_BLOCKING | API_HTML, API_SCOPE_FLEET_READ,
	 NULL},
	{"GET", "/ui/", api_ui, API_BLOCKING | API_HTML, API_SCOPE_FLEET_READ,
	 NULL},
	{"GET", "/ui/tables/{table}", api_ui_table, API_BLOCKING | API_HTML,
	 API_SCOPE_TABLE_READ, NULL},
	{"GET", "/ui/tables/{table}/config", api_ui_config,
	 API_BLOCKING | API_HTML, API_SCOPE_FLEET_READ, NULL},
	{"GET", "/ui/style.css", api_ui_style, 0, API_SCOPE_NONE, NULL},
	{"GET", "/ui/login", api_ui_login_form, 0, API_SCOPE_NONE, NULL},
	{"POST", "/ui/login", api_ui_login, API_BODY, API_SCOPE_NONE, NULL},
};

/* GET /v1/tables pages: the default size and the largest. */
#define API_LIST_DEFAULT 1000
#define API_LIST_MAX	 10000

struct api *api_new(const struct api_options *opts)
{
	struct api *api = xcalloc(1, sizeof(*api));

	api->opts = *opts;
	return api;
}

void api_free(struct api *api)
{
	free(api);
}

void api_request_init(struct api_request *req)
{
	memset(req, 0, sizeof(*req));
}

void api_request_release(struct api_request *req)
{
	size_t i;

	for (i = 0; i < req->nr_params; i++)
		free(req->params[i].value);
	req->nr_params = 0;
	req->route = NULL;
}

void api_answer_init(struct api_answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	buf_init(&ans->body, 0);
	ans->content_type = "application/json";
	ans->route = "-";
}

void api_answer_release(struct api_answer *ans)
{
	size_t i;

	buf_release(&ans->body);
	registry_share_release(ans->share);
	ans->share = NULL;
	for (i = 0; i < ans->nr_headers; i++)
		free(ans->headers[i].value);
	ans->nr_headers = 0;
	free(ans->park_table);
	ans->park_table = NULL;
}

void api_answer_reset(struct api_answer *ans)
{
	const char *route = ans->route;

	api_answer_release(ans);
	api_answer_init(ans);
	ans->route = route;
}

const char *api_answer_data(const struct api_answer *ans, size_t *len)
{
	if (ans->share)
		return registry_share_data(ans->share, len);
	*len = ans->body.len;
	return ans->body.buf;
}

struct registry_share *api_answer_take_share(struct api_answer *ans)
{
	struct registry_share *share = ans->share;

	ans->share = NULL;
	return share;
}

void api_answer_header(struct api_answer *ans, const char *name,
		       const char *fmt, ...)
{
	struct buf value = BUF_INIT;
	va_list ap;

	if (ans->nr_headers == API_MAX_HEADERS)
		BUG("more than %d answer headers", API_MAX_HEADERS);
	buf_grow(&value, 63); /* most values fit: formatted once */
	va_start(ap, fmt);
	(void)buf_vaddf(&value, fmt, ap);
	va_end(ap);
	ans->headers[ans->nr_headers].name = name;
	ans->headers[ans->nr_headers].value = buf_detach(&value, NULL);
	ans->nr_headers++;
}

const char *api_answer_get_header(const struct api_answer *ans,
				  const char *name)
{
	size_t i;

	for (i = 0; i < ans->nr_headers; i++)
		if (!strcasecmp(ans->headers[i].name, name))
			return ans->headers[i].value;
	return NULL;
}

void api_error_json(const char *msg, const char *field, struct buf *out)
{
	(void)buf_addstr(out, "{\"error\":");
	(void)buf_addjson(out, msg, strlen(msg));
	if (field && *field) {
		(void)buf_addstr(out, ",\"field\":");
		(void)buf_addjson(out, field, strlen(field));
	}
	(void)buf_addstr(out, "}");
}

void api_answer_error(struct api_answer *ans, enum status st, const char *msg,
		      const char *field)
{
	registry_share_release(ans->share);
	ans->share = NULL;
	buf_reset(&ans->body);
	api_error_json(msg, field, &ans->body);
	ans->status = status_http(st);
	ans->content_type = "application/json";
}

const char *api_param(const struct api_request *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nr_params; i++)
		if (!strcmp(req->params[i].name, name))
			return req->params[i].value;
	return NULL;
}

static int api_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode `len` bytes of a query component; -1 on a bad escape or a NUL. */
static int api_query_decode(const char *s, size_t len, struct buf *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = api_hex(s[i + 1]);
			lo = api_hex(s[i + 2]);
			if (hi < 0 || lo < 0 || !(hi | lo))
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (buf_addch(out, c))
			return -1;
	}
	return 0;
}

int api_query(const struct api_request *req, const char *name, struct buf *out)
{
	const char *p = req->query;
	size_t nlen = strlen(name);

	buf_reset(out);
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (klen == nlen && !memcmp(p, name, nlen)) {
			if (!eq)
				return 1;
			return api_query_decode(eq + 1, len - klen - 1, out)
				       ? -1
				       : 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

/*
 * Does `path` match `pattern`? Literal segments compare exactly (no
 * decoding: "/generate%00x" is not "/generate"); a {name} segment takes
 * one non-empty segment, recorded in `req` when it is given.
 */
static int api_match(const char *pattern, const char *path,
		     struct api_request *req)
{
	const char *p = pattern, *s = path;

	while (*p) {
		if (*p == '{') {
			const char *close = strchr(p, '}');
			const char *end = strchr(s, '/');
			size_t len = end ? (size_t)(end - s) : strlen(s);

			if (!close)
				BUG("bad route pattern '%s'", pattern);
			if (!len)
				return 0;
			if (req) {
				if (req->nr_params == API_MAX_PARAMS)
					BUG("too many parameters in '%s'",
					    pattern);
				/* The name is set by api_take_params(). */
				req->params[req->nr_params].name = NULL;
				req->params[req->nr_params].value =
					xstrndup(s, len);
				req->nr_params++;
			}
			p = close + 1;
			s += len;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return !*s;
}

/* The route parameter names, as static strings (patterns use these only). */
static const char *api_param_name(const char *brace)
{
	if (!strncmp(brace, "{table}", 7))
		return "table";
	if (!strncmp(brace, "{agent}", 7))
		return "agent";
	BUG("unknown route parameter at '%s'", brace);
}

/* Record the parameters of `route` for `path` (already known to match). */
static void api_take_params(const struct api_route *route, const char *path,
			    struct api_request *req)
{
	const char *p;
	size_t i = 0;

	api_request_release(req);
	if (!api_match(route->pattern, path, req))
		BUG("route '%s' no longer matches", route->pattern);
	for (p = strchr(route->pattern, '{'); p; p = strchr(p + 1, '{'))
		req->params[i++].name = api_param_name(p);
}

static unsigned api_scope_perm(enum api_scope scope)
{
	switch (scope) {
	case API_SCOPE_TABLE_READ:
	case API_SCOPE_FLEET_READ:
		return AUTH_READ;
	case API_SCOPE_TABLE_WRITE:
		return AUTH_WRITE;
	case API_SCOPE_ADMIN:
		return AUTH_ADMIN;
	case API_SCOPE_NONE:
		break;
	}
	BUG("no permission for scope %d", (int)scope);
}

/* Fill `ans` for a refused check; -1 when refused, 0 when allowed. */
static int api_auth_answer(enum auth_result r, struct api_answer *ans)
{
	switch (r) {
	case AUTH_OK:
	case AUTH_NEED_TABLE:
		return 0;
	case AUTH_UNAUTHENTICATED:
		metrics_counter_add(&metrics_auth_failures,
				    (const char *const[]){"401"}, 1);
		api_answer_error(ans, ST_UNAUTHENTICATED,
				 "a valid bearer token is required", NULL);
		api_answer_header(ans, "WWW-Authenticate",
				  "Bearer realm=\"lambda-registry\"");
		return -1;
	case AUTH_FORBIDDEN:
		break;
	}
	metrics_counter_add(&metrics_auth_failures,
			    (const char *const[]){"403"}, 1);
	api_answer_error(ans, ST_FORBIDDEN, "the token does not allow this",
			 NULL);
	return -1;
}

/*
 * The scope check of api_begin(). A route without a path table whose token
 * holds only some tables (POST /generate with "table:edge-*:write") is left
 * to api_finish(), which knows the body's table.
 */
static int api_authorize(struct api *api, struct api_request *req,
			 const struct api_route *route, const char *table,
			 struct api_answer *ans)
{
	struct buf cookie = BUF_INIT;
	const char *authorization;
	enum auth_result r;

	if (!api->opts.auth || route->scope == API_SCOPE_NONE || req->trusted)
		return 0;
	authorization = req->header
				? req->header(req->header_ctx, "Authorization")
				: NULL;
	if (!authorization && route->flags & API_HTML &&
	    !ui_cookie_token(
		    req->header ? req->header(req->header_ctx, "Cookie") : NULL,
		    &cookie))
		authorization = cookie.buf;
	r = auth_check(api->opts.auth, authorization, table,
		       api_scope_perm(route->scope));
	buf_release(&cookie);
	/* Some tables only is not enough for a route about all of them. */
	if (r == AUTH_NEED_TABLE && route->scope == API_SCOPE_FLEET_READ)
		r = AUTH_FORBIDDEN;
	if (api_auth_answer(r, ans))
		return -1;
	req->auth_pending = r == AUTH_NEED_TABLE;
	return 0;
}

/* The deferred check: the body's table, parsed as the handler will. */
static int api_authorize_body(struct api *api, struct api_request *req,
			      struct api_answer *ans)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	struct payload p;
	enum auth_result r;
	enum status st;
	int ret = -1;

	payload_init(&p);
	st = payload_parse(&p, req->body, req->body_len, &err, &field);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, field.buf);
		goto out;
	}
	r = auth_check(api->opts.auth,
		       req->header
			       ? req->header(req->header_ctx, "Authorization")
			       : NULL,
		       p.table, api_scope_perm(req->route->scope));
	if (r == AUTH_NEED_TABLE)
		r = AUTH_FORBIDDEN;
	ret = api_auth_answer(r, ans);
	payload_release(&p);
out:
	buf_release(&err);
	buf_release(&field);
	return ret;
}

/* An HTML answer of the status page, under its CSP. */
static void api_html(struct api_answer *ans, unsigned status)
{
	ans->status = status;
	ans->content_type = "text/html; charset=utf-8";
	api_answer_header(ans, "Content-Security-Policy", "%s", UI_CSP);
	api_answer_header(ans, "X-Content-Type-Options", "nosniff");
	api_answer_header(ans, "Cache-Control", "no-store");
}

/* A refused status page: the login form instead of JSON, same status. */
static void api_html_refusal(struct api_answer *ans)
{
	buf_reset(&ans->body);
	ui_login_page(ans->status == 401
			      ? "A token is needed to see this page."
			      : "This token cannot read every table.",
		      &ans->body);
	api_html(ans, ans->status);
}

int api_begin(struct api *api, struct api_request *req, struct api_answer *ans)
{
	struct buf allow = BUF_INIT, err = BUF_INIT;
	const char *method = req->method ? req->method : "";
	const char *path = req->path ? req->path : "";
	const struct api_route *route = NULL;
	const char *table;
	size_t i;
	int ret = -1;

	if (!strcmp(method, "HEAD"))
		method = "GET";
	for (i = 0; i < ARRAY_SIZE(api_routes); i++) {
		if (!api_match(api_routes[i].pattern, path, NULL))
			continue;
		if (!strcmp(api_routes[i].method, method)) {
			route = &api_routes[i];
			break;
		}
		if (!strstr(allow.buf, api_routes[i].method))
			(void)buf_addf(&allow, "%s%s", allow.len ? ", " : "",
				       api_routes[i].method);
	}
	if (!route) {
		if (allow.len) {
			if (strstr(allow.buf, "GET"))
				(void)buf_addstr(&allow, ", HEAD");
			api_answer_error(ans, ST_METHOD, "method not allowed",
					 NULL);
			api_answer_header(ans, "Allow", "%s", allow.buf);
		} else {
			api_answer_error(ans, ST_NOT_FOUND, "no such path",
					 NULL);
		}
		goto out;
	}
	ans->route = route->pattern;
	api_take_params(route, path, req);
	table = api_param(req, "table");
	if (table && payload_check_table(table, &err)) {
		api_answer_error(ans, ST_INVALID, err.buf, "table");
		goto out;
	}
	if (api_authorize(api, req, route, table, ans)) {
		if (route->flags & API_HTML)
			api_html_refusal(ans);
		goto out;
	}
	req->route = route;
	ret = 0;
out:
	buf_release(&allow);
	buf_release(&err);
	return ret;
}

void api_finish(struct api *api, struct api_request *req,
		struct api_answer *ans)
{
	if (!req->route)
		BUG("api_finish() without a matched route");
	if (req->body_len > api->opts.max_body && api->opts.max_body) {
		struct buf msg = BUF_INIT;

		buf_setf(&msg, "request body is larger than %zu bytes",
			 api->opts.max_body);
		api_answer_error(ans, ST_TOO_LARGE, msg.buf, NULL);
		buf_release(&msg);
		return;
	}
	if (req->auth_pending && !(req->route->flags & API_OWN_TABLES) &&
	    api_authorize_body(api, req, ans))
		return;
	req->route->handler(api, req, ans);
}

int api_early(struct api *api, struct api_request *req, struct api_answer *ans)
{
	if (!req->route || !req->route->early)
		return 0;
	req->route->early(api, req, ans);
	return ans->status != 0;
}

void api_handle(struct api *api, struct api_request *req,
		struct api_answer *ans)
{
	if (!api_begin(api, req, ans))
		api_finish(api, req, ans);
}

static int api_wants_json(const struct api_request *req)
{
	const char *accept =
		req->header ? req->header(req->header_ctx, "Accept") : NULL;

	return accept && strstr(accept, "application/json");
}

int api_answer_format_parse(const char *s, enum api_answer_format *out)
{
	if (!strcmp(s, "text"))
		*out = API_ANSWER_TEXT;
	else if (!strcmp(s, "json-string"))
		*out = API_ANSWER_JSON_STRING;
	else
		return -1;
	return 0;
}

static const char *api_req_header(const struct api_request *req,
				  const char *name)
{
	return req->header ? req->header(req->header_ctx, name) : NULL;
}

static void api_unavailable(struct api *api, struct api_answer *ans)
{
	api_answer_error(ans, ST_UNAVAILABLE,
			 api->opts.unavailable ? api->opts.unavailable
					       : "the store is unavailable",
			 NULL);
}

/* A whole decimal number of 0 or more, all of `s`; -1 when it is not. */
static int api_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* An entity tag as we give them: an index in quotes. */
static int api_parse_etag(const char *s, size_t len, uint64_t *out)
{
	char digits[24];

	if (len < 3 || len > sizeof(digits) + 1 || s[0] != '"' ||
	    s[len - 1] != '"')
		return -1;
	memcpy(digits, s + 1, len - 2);
	digits[len - 2] = '\0';
	return api_parse_u64(digits, out);
}

/* The index of header `name` (If-Match, If-None-Match) into *expect
 * (REGISTRY_INDEX_ANY: none, or "*"); -1 when it is malformed. */
static int api_if_index(const struct api_request *req, const char *name,
			uint64_t *expect)
{
	const char *v = api_req_header(req, name);
	size_t len;

	*expect = REGISTRY_INDEX_ANY;
	if (!v)
		return 0;
	while (*v == ' ' || *v == '\t')
		v++;
	len = strlen(v);
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 1 && *v == '*')
		return 0;
	return api_parse_etag(v, len, expect);
}

/* Whether If-None-Match names `index` (or is "*"); a list is allowed. */
static int api_none_match(const struct api_request *req, uint64_t index)
{
	const char *v = api_req_header(req, "If-None-Match");

	while (v && *v) {
		size_t len;
		uint64_t tag;

		v += strspn(v, " \t,");
		len = strcspn(v, ",");
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (len == 1 && *v == '*')
			return 1;
		if (len > 2 && !strncmp(v, "W/", 2)) {
			v += 2;
			len -= 2;
		}
		if (!api_parse_etag(v, len, &tag) && tag == index)
			return 1;
		v += strcspn(v, ",");
	}
	return 0;
}

static void api_index_headers(struct api_answer *ans, uint64_t index)
{
	api_answer_header(ans, "ETag", "\"%llu\"", (unsigned long long)index);
	api_answer_header(ans, "X-Registry-Index", "%llu",
			  (unsigned long long)index);
}

/* The token that stands for the call's body in a next call (see
 * api_generate_early), when the registry gave one. */
static void api_body_token(struct api_answer *ans,
			   const struct registry_result *res)
{
	if (res->token[0])
		api_answer_header(ans, "X-Registry-Body-Token", "%s",
				  res->token);
}

/* 304: the client has what there is, at `index`. */
static void api_not_modified(struct api_answer *ans, uint64_t index)
{
	registry_share_release(ans->share);
	ans->share = NULL;
	buf_reset(&ans->body);
	ans->status = 304;
	/* A 304 sends no representation, so it names no media type. */
	ans->content_type = NULL;
	api_index_headers(ans, index);
}

/* "250ms", "30s", "5m" into milliseconds; -1 when malformed. */
static int api_parse_wait(const char *s, uint64_t *ms)
{
	size_t n = strspn(s, "0123456789");
	char digits[16];
	uint64_t v, unit;

	if (!n || n >= sizeof(digits))
		return -1;
	if (!strcmp(s + n, "ms"))
		unit = 1;
	else if (!strcmp(s + n, "s"))
		unit = 1000;
	else if (!strcmp(s + n, "m"))
		unit = 60000;
	else
		return -1;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (api_parse_u64(digits, &v) || v > UINT64_MAX / unit)
		return -1;
	*ms = v * unit;
	return 0;
}

/* The query parameters of a read: ?index=N (a watch) and ?wait=D. */
struct api_watch {
	int watching;
	uint64_t index;
	uint64_t wait_ms;
};

/* Parse them; -1 with a 400 naming the parameter in `ans`. */
static int api_watch_params(const struct api_request *req, struct api_watch *w,
			    struct api_answer *ans)
{
	struct buf v = BUF_INIT;
	int ret = -1, r;

	memset(w, 0, sizeof(*w));
	w->wait_ms = API_WAIT_DEFAULT_MS;
	r = api_query(req, "index", &v);
	if (r < 0 || (r > 0 && api_parse_u64(v.buf, &w->index))) {
		api_answer_error(ans, ST_INVALID,
				 "index must be a whole number of 0 or more",
				 "index");
		goto out;
	}
	w->watching = r > 0;
	r = api_query(req, "wait", &v);
	if (r < 0 || (r > 0 && api_parse_wait(v.buf, &w->wait_ms))) {
		api_answer_error(ans, ST_INVALID,
				 "wait must be a number with ms, s or m "
				 "(\"30s\")",
				 "wait");
		goto out;
	}
	if (w->wait_ms > API_WAIT_MAX_MS) {
		api_answer_error(ans, ST_INVALID, "wait must be at most 5m",
				 "wait");
		goto out;
	}
	ret = 0;
out:
	buf_release(&v);
	return ret;
}

/*
 * The start of a table read: the watch parameters and the table's index,
 * cheaply. Returns 1 when `ans` is complete (an error, a 304 for a matching
 * If-None-Match, or a watch that parks), 0 when the handler reads the table.
 */
static int api_read_start(struct api *api, const struct api_request *req,
			  struct api_answer *ans)
{
	const char *table = api_param(req, "table");
	struct buf err = BUF_INIT;
	struct api_watch w;
	uint64_t index, now;
	int exists, ret = 1;
	enum status st;

	if (!api->opts.reg) {
		api_unavailable(api, ans);
		goto out;
	}
	if (api_watch_params(req, &w, ans))
		goto out;
	st = registry_table_index(api->opts.reg, table, &index, &exists, &err);
	if (st == ST_OK && !exists) {
		buf_setf(&err, "nothing is stored for table '%s'", table);
		st = ST_NOT_FOUND;
	}
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf,
				 st == ST_INVALID ? "table" : NULL);
		goto out;
	}
	if (w.watching && index == w.index) {
		now = clock_now_ms();
		if (!req->watch_deadline_ms) {
			struct backoff bo;

			/* Jitter of up to 1/16: watchers woken together do
			 * not all come back together. */
			backoff_init(&bo, 1, 1);
			ans->park_deadline_ms =
				now + w.wait_ms +
				backoff_random(&bo) % (w.wait_ms / 16 + 1);
		} else {
			ans->park_deadline_ms = req->watch_deadline_ms;
		}
		if (!req->watch_final && now < ans->park_deadline_ms) {
			ans->park_table = xstrdup(table);
			ans->park_index = index;
			goto out;
		}
		ans->park_deadline_ms = 0;
		api_not_modified(ans, index);
		goto out;
	}
	if (api_none_match(req, index)) {
		api_not_modified(ans, index);
		goto out;
	}
	ret = 0;
out:
	buf_release(&err);
	return ret;
}

/* GET /v1/tables/{table}/config: what /generate would answer now. */
static void api_table_config(struct api *api, const struct api_request *req,
			     struct api_answer *ans)
{
	struct registry_result res;
	struct buf err = BUF_INIT;
	int json = api_wants_json(req);
	enum status st;

	registry_result_init(&res);
	if (api_read_start(api, req, ans))
		goto out;
	st = registry_table_read(api->opts.reg, api_param(req, "table"),
				 json ? REGISTRY_WANT_SERVICES |
						 REGISTRY_WANT_FILES
				      : REGISTRY_SHARE_CONFIG,
				 &res, &err);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, NULL);
		goto out;
	}
	ans->status = 200;
	api_index_headers(ans, res.index);
	if (json) {
		registry_result_json(&res, &ans->body);
		ans->content_type = "application/json";
	} else {
		ans->share = res.share;
		res.share = NULL;
		ans->content_type = "text/plain; charset=utf-8";
	}
out:
	registry_result_release(&res);
	buf_release(&err);
}

static void api_updated_json(int64_t updated_at, struct buf *out)
{
	if (updated_at)
		(void)buf_addf(out, "%lld", (long long)updated_at);
	else
		(void)buf_addstr(out, "null");
}

/* GET /v1/tables/{table}: the stored services. */
static void api_table(struct api *api, const struct api_request *req,
		      struct api_answer *ans)
{
	struct registry_result res;
	struct buf err = BUF_INIT;
	enum status st;

	registry_result_init(&res);
	if (api_read_start(api, req, ans))
		goto out;
	st = registry_table_read(api->opts.reg, api_param(req, "table"),
				 REGISTRY_WANT_SERVICES | REGISTRY_SHARE_CONFIG,
				 &res, &err);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, NULL);
		goto out;
	}
	ans->status = 200;
	api_index_headers(ans, res.index);
	(void)buf_addstr(&ans->body, "{\"table\":");
	(void)buf_addjson(&ans->body, res.table, strlen(res.table));
	(void)buf_addf(&ans->body, ",\"index\":%llu,\"updatedAt\":",
		       (unsigned long long)res.index);
	api_updated_json(res.updated_at, &ans->body);
	(void)buf_addstr(&ans->body, ",\"services\":");
	payload_services_json(&res.services, 0, &ans->body);
	(void)buf_addch(&ans->body, '}');
out:
	registry_result_release(&res);
	buf_release(&err);
}

/* Whether the request's token may read `table` (no token needed: yes). */
static int api_may_read(struct api *api, const struct api_request *req,
			const char *table)
{
	if (!req->auth_pending)
		return 1;
	return auth_check(api->opts.auth, api_req_header(req, "Authorization"),
			  table, AUTH_READ) == AUTH_OK;
}

/* GET /v1/tables: the tables in byte order, a page after ?after=. */
/*
 * A page's ?after=NAME&limit=N into `after` and `limit` (which holds the
 * default); -1 with `ans` the 400 naming the parameter.
 */
static int api_page_query(const struct api_request *req, struct buf *after,
			  uint64_t *limit, uint64_t max, struct api_answer *ans)
{
	struct buf v = BUF_INIT, msg = BUF_INIT;
	int r, ret = -1;

	if (api_query(req, "after", after) < 0) {
		api_answer_error(ans, ST_INVALID, "after has a bad escape",
				 "after");
		goto out;
	}
	r = api_query(req, "limit", &v);
	if (r < 0 || (r > 0 && (api_parse_u64(v.buf, limit) || !*limit ||
				*limit > max))) {
		(void)buf_addf(&msg,
			       "limit must be a whole number from 1 to %llu",
			       (unsigned long long)max);
		api_answer_error(ans, ST_INVALID, msg.buf, "limit");
		goto out;
	}
	ret = 0;
out:
	buf_release(&v);
	buf_release(&msg);
	return ret;
}

static void api_tables(struct api *api, const struct api_request *req,
		       struct api_answer *ans)
{
	struct buf err = BUF_INIT, after = BUF_INIT;
	char **names = NULL;
	size_t nr = 0, i, shown = 0;
	uint64_t limit = API_LIST_DEFAULT;
	enum status st;

	if (!api->opts.reg) {
		api_unavailable(api, ans);
		goto out;
	}
	if (api_page_query(req, &after, &limit, API_LIST_MAX, ans))
		goto out;
	st = registry_table_names(api->opts.reg, after.buf, (size_t)limit,
				  &names, &nr, &err);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, NULL);
		goto out;
	}
	(void)buf_addstr(&ans->body, "{\"tables\":[");
	for (i = 0; i < nr; i++) {
		struct registry_result res;

		if (!api_may_read(api, req, names[i]))
			continue;
		registry_result_init(&res);
		buf_reset(&err);
		st = registry_table_read(api->opts.reg, names[i],
					 REGISTRY_SHARE_CONFIG, &res, &err);
		if (st == ST_OK) {
			(void)buf_addstr(&ans->body, shown++ ? "," : "");
			(void)buf_addstr(&ans->body, "{\"table\":");
			(void)buf_addjson(&ans->body, names[i],
					  strlen(names[i]));
			(void)buf_addf(&ans->body,
				       ",\"index\":%llu,\"updatedAt\":",
				       (unsigned long long)res.index);
			api_updated_json(res.updated_at, &ans->body);
			(void)buf_addf(&ans->body,
				       ",\"services\":%zu,\"servers\":%zu}",
				       res.nr_services, res.nr_servers);
		}
		registry_result_release(&res);
		/* A table that went since the listing is not shown; a store
		 * that fails fails the page. */
		if (st != ST_OK && st != ST_NOT_FOUND) {
			api_answer_error(ans, st, err.buf, NULL);
			goto out;
		}
	}
	(void)buf_addstr(&ans->body, "],\"next\":");
	if (nr == limit)
		(void)buf_addjson(&ans->body, names[nr - 1],
				  strlen(names[nr - 1]));
	else
		(void)buf_addstr(&ans->body, "null");
	(void)buf_addch(&ans->body, '}');
	ans->status = 200;
out:
	for (i = 0; i < nr; i++)
		free(names[i]);
	free(names);
	buf_release(&err);
	buf_release(&after);
}

static void api_generate(struct api *api, const struct api_request *req,
			 struct api_answer *ans)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	enum api_answer_format format = api->opts.answer_format;
	struct registry_cond cond = REGISTRY_COND_NONE;
	struct registry_result res;
	int json = 0, given;
	enum status st;

	registry_result_init(&res);
	given = api_query(req, "format", &field);
	if (given < 0 ||
	    (given > 0 && api_answer_format_parse(field.buf, &format))) {
		api_answer_error(ans, ST_INVALID, "must be text or json-string",
				 "format");
		goto out;
	}
	buf_reset(&field);
	json = !given && api_wants_json(req);
	if (!api->opts.reg) {
		api_unavailable(api, ans);
		goto out;
	}
	if (api_if_index(req, "If-Match", &cond.expect)) {
		api_answer_error(ans, ST_INVALID,
				 "If-Match must be an index in quotes, or *",
				 "If-Match");
		goto out;
	}
	if (api_if_index(req, "If-None-Match", &cond.have)) {
		api_answer_error(
			ans, ST_INVALID,
			"If-None-Match must be an index in quotes, or *",
			"If-None-Match");
		goto out;
	}
	cond.digest = req->body_digest;
	st = registry_call_table_if(
		api->opts.reg, api_param(req, "table"), req->body,
		req->body_len,
		(json ? REGISTRY_WANT_SERVICES | REGISTRY_WANT_FILES
		      : REGISTRY_SHARE_CONFIG) |
			(req->no_wait ? REGISTRY_NO_WAIT : 0) |
			(req->body_writable ? REGISTRY_BODY_WRITABLE : 0),
		&cond, &res, &err, &field);
	if (st == ST_BUSY) {
		ans->busy = 1;
		goto out;
	}
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, field.buf);
		goto out;
	}
	if (res.not_modified) {
		api_not_modified(ans, res.index);
		api_body_token(ans, &res);
		goto out;
	}
	ans->status = 200;
	api_index_headers(ans, res.index);
	api_body_token(ans, &res);
	if (json) {
		registry_result_json(&res, &ans->body);
		ans->content_type = "application/json";
	} else if (format == API_ANSWER_JSON_STRING) {
		size_t len;
		const char *config = registry_share_data(res.share, &len);

		(void)buf_addjson(&ans->body, config, len);
		ans->content_type = "application/json";
	} else {
		ans->share = res.share;
		res.share = NULL;
		ans->content_type = "text/plain; charset=utf-8";
	}
out:
	registry_result_release(&res);
	buf_release(&err);
	buf_release(&field);
}

/*
 * The agent's unchanged call, told by the body token of an earlier answer
 * (X-Registry-Body-Token, with If-None-Match) instead of its body: a 304
 * before the body is read while the token still stands for the last body
 * that left the table unchanged, and the table is at the caller's index.
 * Anything else reads the body and answers as ever, so a token that is
 * stale, forged, or from another process costs only the wait for the body.
 */
static void api_generate_early(struct api *api, const struct api_request *req,
			       struct api_answer *ans)
{
	const char *token = api_req_header(req, "X-Registry-Body-Token");
	struct registry_result res;
	struct buf err = BUF_INIT;
	uint64_t expect, have;

	if (!token || !api->opts.reg ||
	    api_if_index(req, "If-Match", &expect) ||
	    expect != REGISTRY_INDEX_ANY ||
	    api_if_index(req, "If-None-Match", &have) ||
	    have == REGISTRY_INDEX_ANY)
		return;
	registry_result_init(&res);
	/* A token for some tables only: the table the token stood for. */
	if (registry_try_token(api->opts.reg, api_param(req, "table"), token,
			       have, &res, &err) == ST_OK &&
	    (!req->auth_pending ||
	     auth_check(api->opts.auth, api_req_header(req, "Authorization"),
			res.table,
			api_scope_perm(req->route->scope)) == AUTH_OK)) {
		api_not_modified(ans, res.index);
		api_body_token(ans, &res);
	}
	registry_result_release(&res);
	buf_release(&err);
}

static void api_healthz(struct api *api, const struct api_request *req,
			struct api_answer *ans)
{
	struct buf err = BUF_INIT;
	enum status st = ST_UNAVAILABLE;

	(void)req;
	if (api->opts.reg)
		st = registry_ping(api->opts.reg, &err);
	else
		(void)buf_addstr(&err, api->opts.unavailable
					       ? api->opts.unavailable
					       : "the store is unavailable");
	(void)buf_addf(&ans->body, "{\"status\":\"%s\"",
		       st == ST_OK ? "ok" : "unavailable");
	if (st != ST_OK) {
		(void)buf_addstr(&ans->body, ",\"error\":");
		(void)buf_addjson(&ans->body, err.buf, err.len);
	}
	if (api->opts.health)
		api->opts.health(api->opts.health_ctx, &ans->body);
	(void)buf_addch(&ans->body, '}');
	ans->status = st == ST_OK ? 200 : 503;
	ans->content_type = "application/json";
	buf_release(&err);
}

static void api_metrics(struct api *api, const struct api_request *req,
			struct api_answer *ans)
{
	(void)api;
	(void)req;
	metrics_write(METRICS_SERVE, &ans->body);
	ans->status = 200;
	ans->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void api_report_put(struct api *api, const struct api_request *req,
			   struct api_answer *ans)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	const char *agent = api_param(req, "agent");
	struct report r;
	enum status st;

	if (payload_check_name(agent, &err)) {
		api_answer_error(ans, ST_INVALID, err.buf, "agent");
		st = ST_INVALID;
		goto out;
	}
	st = report_parse(req->body, req->body_len, &r, &err, &field);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, field.buf);
		goto out;
	}
	if (!api->opts.reg) {
		st = ST_UNAVAILABLE;
		api_answer_error(ans, st, "the store is unavailable", NULL);
		goto out;
	}
	st = registry_report_put(api->opts.reg, api_param(req, "table"), agent,
				 &r, &err);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, NULL);
		goto out;
	}
	report_json(&r, &ans->body);
	ans->status = 200;
out:
	metrics_counter_add(&metrics_agent_reports,
			    (const char *const[]){status_name(st)}, 1);
	buf_release(&err);
	buf_release(&field);
}

static void api_reports(struct api *api, const struct api_request *req,
			struct api_answer *ans)
{
	struct buf err = BUF_INIT;
	struct store_doc_list list;
	enum status st = ST_UNAVAILABLE;
	size_t i, n = 0;

	(void)req;
	store_doc_list_init(&list);
	if (api->opts.reg)
		st = registry_reports(api->opts.reg, &list, &err);
	if (st != ST_OK) {
		api_answer_error(ans, st, err.len ? err.buf : "no store", NULL);
		goto out;
	}
	(void)buf_addstr(&ans->body, "{\"agents\":[");
	for (i = 0; i < list.nr; i++) {
		const char *slash = strchr(list.items[i].key, '/');

		if (!slash)
			continue;
		(void)buf_addstr(&ans->body,
				 n++ ? ",{\"table\":" : "{\"table\":");
		(void)buf_addjson(&ans->body, list.items[i].key,
				  (size_t)(slash - list.items[i].key));
		(void)buf_addstr(&ans->body, ",\"agent\":");
		(void)buf_addjson(&ans->body, slash + 1, strlen(slash + 1));
		(void)buf_addstr(&ans->body, ",\"report\":");
		(void)buf_addstr(&ans->body, list.items[i].value);
		(void)buf_addch(&ans->body, '}');
	}
	(void)buf_addstr(&ans->body, "]}");
	ans->status = 200;
out:
	store_doc_list_release(&list);
	buf_release(&err);
}

static void api_ui(struct api *api, const struct api_request *req,
		   struct api_answer *ans)
{
	struct buf after = BUF_INIT;
	uint64_t limit = UI_PAGE_DEFAULT;

	if (!api_page_query(req, &after, &limit, UI_PAGE_MAX, ans)) {
		ui_page(api->opts.reg, api->opts.auth != NULL, after.buf,
			(size_t)limit, &ans->body);
		api_html(ans, 200);
	}
	buf_release(&after);
}

static void api_ui_table(struct api *api, const struct api_request *req,
			 struct api_answer *ans)
{
	struct buf err = BUF_INIT;
	enum status st =
		ui_table_page(api->opts.reg, api_param(req, "table"),
			      api->opts.auth != NULL, &ans->body, &err);

	if (st != ST_OK)
		api_answer_error(ans, st, err.buf,
				 st == ST_INVALID ? "table" : NULL);
	else
		api_html(ans, 200);
	buf_release(&err);
}

static void api_ui_config(struct api *api, const struct api_request *req,
			  struct api_answer *ans)
{
	struct buf err = BUF_INIT;
	const char *table = api_param(req, "table");
	enum status st = ui_config(api->opts.reg, table, &ans->body, &err);

	if (st != ST_OK) {
		api_answer_error(ans, st, err.buf, NULL);
	} else {
		ans->status = 200;
		ans->content_type = "text/plain; charset=utf-8";
		/* The table name is [A-Za-z0-9_.-]: safe in the header. */
		api_answer_header(ans, "Content-Disposition",
				  "attachment; filename=\"%s-haproxy.cfg\"",
				  table);
	}
	buf_release(&err);
}

static void api_ui_style(struct api *api, const struct api_request *req,
			 struct api_answer *ans)
{
	(void)api;
	(void)req;
	(void)buf_addstr(&ans->body, ui_style());
	ans->status = 200;
	ans->content_type = "text/css; charset=utf-8";
	api_answer_header(ans, "X-Content-Type-Options", "nosniff");
}

static void api_ui_login_form(struct api *api, const struct api_request *req,
			      struct api_answer *ans)
{
	(void)api;
	(void)req;
	ui_login_page(NULL, &ans->body);
	api_html(ans, 200);
}

/* The login form's POST: the token into an HttpOnly cookie, then the page
 * (which checks it). */
static void api_ui_login(struct api *api, const struct api_request *req,
			 struct api_answer *ans)
{
	struct buf token = BUF_INIT;

	(void)api;
	if (ui_login_token(req->body, req->body_len, &token)) {
		ui_login_page("That is not a token.", &ans->body);
		api_html(ans, 400);
		goto out;
	}
	api_html(ans, 303);
	api_answer_header(ans, "Location", "/ui/");
	/* Behind a TLS-terminating proxy the request arrives as plain HTTP:
	 * no Secure (docs/operating.md says why and what to do). */
	api_answer_header(ans, "Set-Cookie",
			  UI_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s",
			  token.buf, req->tls ? "; Secure" : "");
out:
	buf_release(&token);
}
