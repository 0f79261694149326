/*
 * Lambda events to api requests and api answers to what Lambda posts back:
 * REST proxy and HTTP API 2.0 events, and direct invocations.
 */
#include "lambda_event.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "clock.h"
#include "xalloc.h"
#include "banned.h"

/* API Gateway gives up on an integration after 29 s: a watch waits at most
 * this long, however long its wait= (documented in the README). */
#define LAMBDA_EVENT_MAX_WAIT_MS 25000
/* Lambda has no connection to park: a watch re-checks its index this often
 * (every write reaching this instance's store comes from another process). */
#define LAMBDA_EVENT_POLL_MS 100

/* A proxy event being answered; strings are borrowed from the event. */
struct lambda_event {
	json_t *event; /* borrowed */
	const char *shape;
	const char *method;
	const char *path;  /* path (REST) or rawPath (HTTP API), as sent */
	const char *stage; /* NULL when unknown */
	/* The route template API Gateway matched (REST resource, the path of
	 * an HTTP API routeKey); NULL when unknown. */
	const char *resource;
	json_t *path_params; /* pathParameters, borrowed; NULL when none */
	json_t *joined;	     /* header values joined, by name (owned) */
	struct buf route;    /* the resource with its parameters filled in */
	struct buf query;    /* the query string, percent-encoded */
	struct buf body;     /* the body, when it came in base64 */
};

static void lambda_event_init(struct lambda_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->shape = "direct";
	ev->joined = json_object();
	if (!ev->joined)
		BUG("out of memory");
	buf_init(&ev->route, LAMBDA_MAX_EVENT);
	buf_init(&ev->query, 3 * LAMBDA_MAX_EVENT);
	buf_init(&ev->body, LAMBDA_MAX_EVENT);
}

static void lambda_event_release(struct lambda_event *ev)
{
	json_decref(ev->joined);
	ev->joined = NULL;
	buf_release(&ev->route);
	buf_release(&ev->query);
	buf_release(&ev->body);
}

void lambda_answer_init(struct lambda_answer *ans)
{
	ans->is_error = 0;
	buf_init(&ans->body, LAMBDA_MAX_EVENT);
	buf_init(&ans->err_type, BUF_CAP_MESSAGE);
	ans->http = 0;
	ans->shape = "direct";
	ans->route = "-";
}

void lambda_answer_release(struct lambda_answer *ans)
{
	buf_release(&ans->body);
	buf_release(&ans->err_type);
}

void lambda_answer_error(struct lambda_answer *ans, enum status st,
			 const char *msg, const char *field)
{
	struct buf text = BUF_INIT;

	if (field && *field)
		(void)buf_addf(&text, "%s: %s", field, msg);
	else
		(void)buf_addstr(&text, msg);
	ans->is_error = 1;
	ans->http = status_http(st);
	buf_reset(&ans->err_type);
	(void)buf_addstr(&ans->err_type, status_name(st));
	buf_reset(&ans->body);
	(void)buf_addstr(&ans->body, "{\"errorMessage\":");
	(void)buf_addjson(&ans->body, text.buf, text.len);
	(void)buf_addstr(&ans->body, ",\"errorType\":");
	(void)buf_addjson(&ans->body, ans->err_type.buf, ans->err_type.len);
	(void)buf_addch(&ans->body, '}');
	buf_release(&text);
}

/* The result an api error status stands for (the first in status order). */
static enum status lambda_status_of(unsigned http)
{
	static const enum status known[] = {
		ST_INVALID,	ST_NOT_FOUND, ST_METHOD,  ST_CONFLICT,
		ST_UNAVAILABLE, ST_TOO_LARGE, ST_HEADERS, ST_INTERNAL,
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(known); i++)
		if (status_http(known[i]) == http)
			return known[i];
	return ST_INTERNAL;
}

/* An api error answer ({"error", "field"}) as Lambda's error document. */
static void lambda_answer_from_error(struct lambda_answer *ans,
				     const struct api_answer *a)
{
	struct buf msg = BUF_INIT;
	const char *data, *error, *field;
	json_t *doc;
	size_t len;

	data = api_answer_data(a, &len);
	doc = json_loadb(data, len, 0, NULL);
	error = json_string_value(json_object_get(doc, "error"));
	field = json_string_value(json_object_get(doc, "field"));
	if (!error) {
		(void)buf_addf(&msg, "the registry answered %u", a->status);
		error = msg.buf;
	}
	lambda_answer_error(ans, lambda_status_of(a->status), error, field);
	json_decref(doc);
	buf_release(&msg);
}

static void lambda_answer_too_large(struct lambda_answer *ans)
{
	struct buf msg = BUF_INIT;

	(void)buf_addf(&msg, "the answer is larger than %zu bytes",
		       ans->body.cap);
	lambda_answer_error(ans, ST_TOO_LARGE, msg.buf, NULL);
	buf_release(&msg);
}

/* A proxy response: {statusCode, headers, body, isBase64Encoded}. */
static void lambda_answer_proxy(struct lambda_answer *ans,
				const struct api_answer *a)
{
	const char *data;
	size_t i, len;

	data = api_answer_data(a, &len);
	ans->is_error = 0;
	ans->http = a->status;
	buf_reset(&ans->body);
	(void)buf_addf(&ans->body, "{\"statusCode\":%u,\"headers\":{",
		       a->status);
	if (a->content_type) {
		(void)buf_addstr(&ans->body, "\"Content-Type\":");
		(void)buf_addjson(&ans->body, a->content_type,
				  strlen(a->content_type));
	}
	for (i = 0; i < a->nr_headers; i++) {
		if (i || a->content_type)
			(void)buf_addch(&ans->body, ',');
		(void)buf_addjson(&ans->body, a->headers[i].name,
				  strlen(a->headers[i].name));
		(void)buf_addch(&ans->body, ':');
		(void)buf_addjson(&ans->body, a->headers[i].value,
				  strlen(a->headers[i].value));
	}
	(void)buf_addstr(&ans->body, "},\"body\":");
	(void)buf_addjson(&ans->body, data, len);
	(void)buf_addstr(&ans->body, ",\"isBase64Encoded\":false}");
	if (buf_overflowed(&ans->body))
		lambda_answer_too_large(ans);
}

/* Member `name` of `obj` in any case (HTTP header names), or NULL. */
static json_t *lambda_get_nocase(json_t *obj, const char *name)
{
	const char *key;
	json_t *value;

	if (!json_is_object(obj))
		return NULL;
	value = json_object_get(obj, name);
	if (value)
		return value;
	json_object_foreach(obj, key, value)
	{
		if (!strcasecmp(key, name))
			return value;
	}
	return NULL;
}

/*
 * The request header `name` (api_request.header). multiValueHeaders wins,
 * its values joined with ", " as HTTP allows; the joined string is kept in
 * ev->joined so that it lives as long as the event.
 */
static const char *lambda_event_header(void *ctx, const char *name)
{
	struct lambda_event *ev = ctx;
	json_t *values, *cached = json_object_get(ev->joined, name);
	struct buf joined = BUF_INIT;
	const char *ret = json_string_value(cached);
	size_t i;

	if (cached)
		goto out;
	values = lambda_get_nocase(
		json_object_get(ev->event, "multiValueHeaders"), name);
	for (i = 0; json_is_array(values) && i < json_array_size(values); i++) {
		const char *s = json_string_value(json_array_get(values, i));

		if (!s)
			continue;
		if (joined.len)
			(void)buf_addstr(&joined, ", ");
		(void)buf_addstr(&joined, s);
	}
	if (!joined.len || buf_overflowed(&joined)) {
		ret = json_string_value(lambda_get_nocase(
			json_object_get(ev->event, "headers"), name));
		goto out;
	}
	/* set_new steals `cached` even when it fails. */
	cached = json_stringn(joined.buf, joined.len);
	if (cached && !json_object_set_new(ev->joined, name, cached))
		ret = json_string_value(cached);
out:
	buf_release(&joined);
	return ret;
}

/*
 * Member `key` of `obj` as a C string into *out (borrowed), NULL when absent
 * or null. -1 with `err` set when it is something else or holds a NUL.
 */
static int lambda_get_string(json_t *obj, const char *key, const char **out,
			     struct buf *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		buf_setf(err, "event field '%s' is not a string", key);
		return -1;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		buf_setf(err, "event field '%s' holds a NUL byte", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* Append `len` bytes percent-encoded: all but unreserved and `keep`. */
static void lambda_add_encoded(struct buf *out, const char *s, size_t len,
			       const char *keep)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c && strchr("-._~", c)) ||
		    (c && strchr(keep, c)))
			(void)buf_addch(out, (char)c);
		else
			(void)buf_addf(out, "%%%02X", c);
	}
}

static void lambda_query_add(struct buf *q, const char *key, json_t *value)
{
	if (!json_is_string(value))
		return;
	if (q->len)
		(void)buf_addch(q, '&');
	lambda_add_encoded(q, key, strlen(key), "");
	(void)buf_addch(q, '=');
	lambda_add_encoded(q, json_string_value(value),
			   json_string_length(value), "");
}

/*
 * A REST event's query parameters (API Gateway decoded them) encoded again
 * as a query string: multiValueQueryStringParameters when present, as it
 * keeps repeated keys, else queryStringParameters.
 */
static void lambda_rest_query(json_t *root, struct buf *q)
{
	json_t *multi =
		json_object_get(root, "multiValueQueryStringParameters");
	json_t *single = json_object_get(root, "queryStringParameters");
	const char *key;
	json_t *value;
	size_t i;

	if (json_is_object(multi)) {
		json_object_foreach(multi, key, value)
		{
			for (i = 0;
			     json_is_array(value) && i < json_array_size(value);
			     i++)
				lambda_query_add(q, key,
						 json_array_get(value, i));
		}
	} else if (json_is_object(single)) {
		json_object_foreach(single, key, value)
		{
			lambda_query_add(q, key, value);
		}
	}
}

/*
 * Fill `ev` from a proxy event. Returns 0 for a REST or HTTP API event, 1
 * when the event is no proxy event, -1 with `err` set for a broken one.
 */
static int lambda_event_parse(struct lambda_event *ev, json_t *root,
			      struct buf *err)
{
	json_t *ctx = json_object_get(root, "requestContext");
	json_t *http = json_object_get(ctx, "http");
	json_t *version = json_object_get(root, "version");
	const char *raw_query = NULL, *route_key = NULL;

	ev->event = root;
	if (json_is_string(version) &&
	    !strcmp(json_string_value(version), "2.0") &&
	    json_is_object(http)) {
		ev->shape = "http";
		if (lambda_get_string(http, "method", &ev->method, err) ||
		    lambda_get_string(root, "rawPath", &ev->path, err) ||
		    (!ev->path &&
		     lambda_get_string(http, "path", &ev->path, err)) ||
		    lambda_get_string(root, "rawQueryString", &raw_query,
				      err) ||
		    lambda_get_string(root, "routeKey", &route_key, err))
			return -1;
		if (raw_query)
			(void)buf_addstr(&ev->query, raw_query);
		/* "POST /v1/tables/{table}/generate", or "$default". */
		if (route_key && strchr(route_key, ' ') &&
		    strchr(route_key, ' ')[1] == '/')
			ev->resource = strchr(route_key, ' ') + 1;
	} else if (json_object_get(root, "httpMethod")) {
		/* REST proxy events; HTTP API 1.0 events have the same shape.
		 */
		ev->shape = "rest";
		if (lambda_get_string(root, "httpMethod", &ev->method, err) ||
		    lambda_get_string(root, "path", &ev->path, err) ||
		    lambda_get_string(root, "resource", &ev->resource, err))
			return -1;
		lambda_rest_query(root, &ev->query);
	} else {
		return 1;
	}
	if (lambda_get_string(ctx, "stage", &ev->stage, err))
		return -1;
	ev->path_params = json_object_get(root, "pathParameters");
	if (!ev->method || !ev->path) {
		buf_setf(err, "%s event without %s", ev->shape,
			 !ev->method ? "a method" : "a path");
		return -1;
	}
	if (buf_overflowed(&ev->query)) {
		buf_setf(err, "the query string is longer than %zu bytes",
			 ev->query.cap);
		return -1;
	}
	return 0;
}

/*
 * `tmpl` ("/v1/tables/{table}/generate", "/{proxy+}") with each {name} or
 * greedy {name+} replaced by pathParameters' `name`, percent-encoded, as the
 * api takes raw path segments; only a greedy value keeps its '/'. -1 when a
 * parameter is missing, empty, not a string, or a plain one holds a '/'.
 */
static int lambda_fill_template(const char *tmpl, json_t *params,
				struct buf *out)
{
	const char *p = tmpl;

	buf_reset(out);
	while (*p) {
		const char *close, *value;
		size_t n;
		int greedy;
		json_t *v;

		if (*p != '{') {
			(void)buf_addch(out, *p++);
			continue;
		}
		close = strchr(p, '}');
		if (!close)
			return -1;
		n = (size_t)(close - p - 1);
		greedy = n && close[-1] == '+';
		if (greedy)
			n--;
		v = json_is_object(params) && n
			    ? json_object_getn(params, p + 1, n)
			    : NULL;
		value = json_string_value(v);
		if (!value || !json_string_length(v) ||
		    (!greedy && memchr(value, '/', json_string_length(v))))
			return -1;
		lambda_add_encoded(out, value, json_string_length(v),
				   greedy ? "/" : "");
		p = close + 1;
	}
	return buf_overflowed(out) ? -1 : 0;
}

/*
 * api_begin() on `path`: 1 when it matched a route, 0 when it knows the
 * path but refused the request (405, a bad parameter), -1 when it knows no
 * such path; `ans` holds the refusal.
 */
static int lambda_try_path(struct api *api, const char *path,
			   struct api_request *req, struct api_answer *ans)
{
	int rc = 1;

	api_request_release(req);
	api_answer_release(ans);
	api_answer_init(ans);
	req->path = path;
	if (api_begin(api, req, ans))
		rc = ans->status == 404 ? -1 : 0;
	return rc;
}

/* The path without a named stage's prefix ("/live/generate"), or NULL. */
static const char *lambda_unstaged_path(const struct lambda_event *ev)
{
	size_t n = ev->stage ? strlen(ev->stage) : 0;

	if (!n || !strcmp(ev->stage, "$default") || ev->path[0] != '/' ||
	    strncmp(ev->path + 1, ev->stage, n) || ev->path[1 + n] != '/')
		return NULL;
	return ev->path + 1 + n;
}

/*
 * Match the event's route, trying in turn: the path as sent; the path
 * without the stage prefix (an HTTP API rawPath keeps a named stage); the
 * template API Gateway matched (REST resource, HTTP API routeKey) with the
 * path parameters filled in, which also covers a custom domain's base path
 * and {proxy+}. The first that names a route decides, even when the api
 * refuses it; when none does, the answer is the api's 404 (the same for
 * every path). Returns 0 with req->route set (go on with api_finish()), -1
 * with `ans` filled.
 */
static int lambda_event_begin(struct api *api, struct lambda_event *ev,
			      struct api_request *req, struct api_answer *ans)
{
	const char *paths[3];
	size_t i;
	int rc = -1;

	paths[0] = ev->path;
	paths[1] = lambda_unstaged_path(ev);
	paths[2] = ev->resource && !lambda_fill_template(ev->resource,
							 ev->path_params,
							 &ev->route)
			   ? ev->route.buf
			   : NULL;
	for (i = 0; i < ARRAY_SIZE(paths) && rc < 0; i++)
		if (paths[i])
			rc = lambda_try_path(api, paths[i], req, ans);
	return rc > 0 ? 0 : -1;
}

static int lambda_base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Standard base64 as API Gateway sends it; padding optional. -1 on a bad
 * character, -2 when `out` would grow over its cap.
 */
static int lambda_base64_decode(const char *s, size_t len, struct buf *out)
{
	unsigned long acc = 0;
	size_t i, pad = 0, chars = 0;
	int bits = 0;

	for (i = 0; i < len; i++) {
		int v;

		if (s[i] == '=') {
			pad++;
			continue;
		}
		v = lambda_base64_value(s[i]);
		if (v < 0 || pad)
			return -1;
		chars++;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (buf_addch(out, (char)((acc >> bits) & 0xff)))
				return -2;
			acc &= (1ul << bits) - 1;
		}
	}
	/* One character alone carries no full byte; padding must fill a quad.
	 */
	if (chars % 4 == 1 || pad > 2 || (pad && (chars + pad) % 4))
		return -1;
	return 0;
}

/*
 * The request body: borrowed from the event, or decoded from base64 into
 * ev->body. The api applies the size limit to the decoded bytes; the event
 * cap bounds what decoding can allocate.
 */
static enum status lambda_event_body(struct lambda_event *ev,
				     struct api_request *req, struct buf *err)
{
	json_t *body = json_object_get(ev->event, "body");
	json_t *b64 = json_object_get(ev->event, "isBase64Encoded");
	enum status st = ST_OK;
	int rc;

	req->body = "";
	req->body_len = 0;
	if (!body || json_is_null(body))
		goto out; /* no body: the payload check reports it */
	if (!json_is_string(body)) {
		buf_setf(err, "event field 'body' is not a string");
		st = ST_INVALID;
		goto out;
	}
	if (b64 && !json_is_null(b64) && !json_is_boolean(b64)) {
		buf_setf(err, "event field 'isBase64Encoded' is not a boolean");
		st = ST_INVALID;
		goto out;
	}
	if (!json_is_true(b64)) {
		req->body = json_string_value(body);
		req->body_len = json_string_length(body);
		goto out;
	}
	rc = lambda_base64_decode(json_string_value(body),
				  json_string_length(body), &ev->body);
	if (rc == -1) {
		buf_setf(err, "request body is not valid base64");
		st = ST_INVALID;
	} else if (rc) {
		buf_setf(err, "request body is larger than %zu bytes",
			 ev->body.cap);
		st = ST_TOO_LARGE;
	} else {
		req->body = ev->body.buf;
		req->body_len = ev->body.len;
	}
out:
	return st;
}

/*
 * api_finish(), and for a watch that would park, the wait here: run the
 * route again every LAMBDA_EVENT_POLL_MS until it answers, the last run at
 * the deadline cut to LAMBDA_EVENT_MAX_WAIT_MS from now.
 */
static void lambda_event_finish(struct api *api, struct api_request *req,
				struct api_answer *a)
{
	uint64_t cap = clock_now_ms() + LAMBDA_EVENT_MAX_WAIT_MS;

	api_finish(api, req, a);
	while (a->park_table) {
		uint64_t deadline =
			a->park_deadline_ms < cap ? a->park_deadline_ms : cap;
		uint64_t now = clock_now_ms();

		if (now < deadline)
			clock_sleep_ms(deadline - now < LAMBDA_EVENT_POLL_MS
					       ? deadline - now
					       : LAMBDA_EVENT_POLL_MS);
		req->watch_deadline_ms = deadline;
		req->watch_final = clock_now_ms() >= deadline;
		api_answer_reset(a);
		api_finish(api, req, a);
	}
}

/* A direct invocation: the event is the body of a POST /generate. */
static void lambda_event_direct(struct api *api, const char *event, size_t len,
				struct lambda_answer *ans)
{
	struct api_request req;
	struct api_answer a;
	const char *data;
	size_t dlen;

	api_request_init(&req);
	api_answer_init(&a);
	ans->shape = "direct";
	req.method = "POST";
	req.path = "/generate";
	req.body = event;
	req.body_len = len;
	/* Only IAM lets a caller invoke the function directly. */
	req.trusted = 1;
	api_handle(api, &req, &a);
	ans->route = a.route;
	if (a.status != 200) {
		lambda_answer_from_error(ans, &a);
		goto out;
	}
	data = api_answer_data(&a, &dlen);
	ans->is_error = 0;
	ans->http = 200;
	buf_reset(&ans->body);
	/* The config itself, as a JSON string, as the first version answered.
	 */
	if (!strcmp(a.content_type, "application/json"))
		(void)buf_add(&ans->body, data, dlen);
	else
		(void)buf_addjson(&ans->body, data, dlen);
	if (buf_overflowed(&ans->body))
		lambda_answer_too_large(ans);
out:
	api_request_release(&req);
	api_answer_release(&a);
}

void lambda_event_handle(struct api *api, const char *event, size_t len,
			 struct lambda_answer *ans)
{
	struct lambda_event ev;
	struct api_request req;
	struct api_answer a;
	struct buf err = BUF_INIT;
	json_t *root;
	enum status st;
	int kind = 1;

	lambda_event_init(&ev);
	api_request_init(&req);
	api_answer_init(&a);
	/* With JSON_ALLOW_NUL, so that a NUL in a proxy body stays a proxy
	 * event; lambda_get_string() refuses it where C strings are needed. */
	root = json_loadb(event, len, JSON_ALLOW_NUL, NULL);
	if (json_is_object(root))
		kind = lambda_event_parse(&ev, root, &err);
	if (kind > 0) {
		/* Not a proxy event; if not even JSON, the payload check says
		 * why. */
		lambda_event_direct(api, event, len, ans);
		goto out;
	}
	ans->shape = ev.shape;
	if (kind < 0) {
		api_answer_error(&a, ST_INVALID, err.buf, NULL);
		goto answer;
	}
	req.method = ev.method;
	req.query = ev.query.len ? ev.query.buf : NULL;
	req.header = lambda_event_header;
	req.header_ctx = &ev;
	/* API Gateway and function URLs answer HTTPS only. */
	req.tls = 1;
	if (lambda_event_begin(api, &ev, &req, &a))
		goto answer;
	if (req.route->flags & API_BODY) {
		st = lambda_event_body(&ev, &req, &err);
		if (st != ST_OK) {
			api_answer_error(&a, st, err.buf, NULL);
			goto answer;
		}
	}
	lambda_event_finish(api, &req, &a);
answer:
	ans->route = a.route;
	lambda_answer_proxy(ans, &a);
out:
	api_request_release(&req);
	api_answer_release(&a);
	lambda_event_release(&ev);
	json_decref(root);
	buf_release(&err);
}
