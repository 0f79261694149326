/*
 * AWS Lambda custom runtime: fetch invocations from the Runtime API over
 * libcurl, answer direct, REST proxy and HTTP API (2.0) events.
 */
#include "lambda.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "render.h"
#include "xalloc.h"
#include "banned.h"

#define LAMBDA_API_BASE "/2018-06-01/runtime"
/* Lambda caps events at 6 MB; anything larger is not from Lambda. */
#define LAMBDA_MAX_EVENT ((size_t)8 << 20)
#define LAMBDA_MAX_ID	 128
/* Posting an answer to the local Runtime API never takes this long. */
#define LAMBDA_POST_TIMEOUT_MS 30000L

/* A proxy request, whatever event shape it came in; strings are borrowed. */
struct lambda_request {
	const char *method;
	const char *path;     /* path, or rawPath, as sent */
	const char *stage;    /* NULL when unknown */
	const char *resource; /* REST only: the resource template */
	int want_json;	      /* Accept names application/json */
	json_t *event;
};

struct lambda_route {
	const char *method;
	const char *path;
	void (*handler)(struct registry *reg, const char *why, size_t max_body,
			const struct lambda_request *req,
			struct lambda_answer *ans);
};

void lambda_answer_init(struct lambda_answer *ans)
{
	ans->is_error = 0;
	buf_init(&ans->body, LAMBDA_MAX_EVENT);
	buf_init(&ans->err_type, BUF_CAP_MESSAGE);
	ans->http = 0;
	ans->shape = "direct";
}

void lambda_answer_release(struct lambda_answer *ans)
{
	buf_release(&ans->body);
	buf_release(&ans->err_type);
}

/* The answer to a failed direct invocation: Lambda's error document. */
static void lambda_answer_error(struct lambda_answer *ans, enum status st,
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

/* A proxy response: {statusCode, headers, body, isBase64Encoded}. */
static void lambda_answer_proxy(struct lambda_answer *ans, unsigned code,
				const char *ctype, const char *allow,
				const char *body, size_t len)
{
	ans->is_error = 0;
	ans->http = code;
	buf_reset(&ans->body);
	(void)buf_addf(
		&ans->body,
		"{\"statusCode\":%u,\"headers\":{\"Content-Type\":", code);
	(void)buf_addjson(&ans->body, ctype, strlen(ctype));
	if (allow) {
		(void)buf_addstr(&ans->body, ",\"Allow\":");
		(void)buf_addjson(&ans->body, allow, strlen(allow));
	}
	(void)buf_addstr(&ans->body, "},\"body\":");
	(void)buf_addjson(&ans->body, body, len);
	(void)buf_addstr(&ans->body, ",\"isBase64Encoded\":false}");
}

static void lambda_answer_proxy_error(struct lambda_answer *ans, enum status st,
				      const char *msg, const char *field,
				      const char *allow)
{
	struct buf json = BUF_INIT;

	http_error_json(msg, field, &json);
	lambda_answer_proxy(ans, status_http(st), "application/json", allow,
			    json.buf, json.len);
	buf_release(&json);
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

/* Borrowed string member, or NULL when absent or not a string. */
static const char *lambda_get_string(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* Does any value of header `name` (any case) in `headers` contain `needle`? */
static int lambda_header_has(json_t *headers, const char *name,
			     const char *needle)
{
	const char *key;
	json_t *value;

	if (!json_is_object(headers))
		return 0;
	json_object_foreach(headers, key, value)
	{
		size_t i;

		if (strcasecmp(key, name))
			continue;
		if (json_is_string(value) &&
		    strstr(json_string_value(value), needle))
			return 1;
		if (json_is_array(value)) /* multiValueHeaders */
			for (i = 0; i < json_array_size(value); i++) {
				const char *s = json_string_value(
					json_array_get(value, i));

				if (s && strstr(s, needle))
					return 1;
			}
	}
	return 0;
}

/* The request body, decoded when the event says it is base64. */
static enum status lambda_request_body(const struct lambda_request *req,
				       size_t max_body, struct buf *out,
				       struct buf *err)
{
	json_t *body = json_object_get(req->event, "body");
	json_t *b64 = json_object_get(req->event, "isBase64Encoded");
	enum status st = ST_OK;
	int rc;

	if (!body || json_is_null(body))
		goto out; /* no body: the payload check reports it */
	if (!json_is_string(body)) {
		buf_setf(err, "event field 'body' is not a string");
		st = ST_INVALID;
		goto out;
	}
	if (b64 && !json_is_boolean(b64)) {
		buf_setf(err, "event field 'isBase64Encoded' is not a boolean");
		st = ST_INVALID;
		goto out;
	}
	if (json_is_true(b64))
		rc = lambda_base64_decode(json_string_value(body),
					  json_string_length(body), out);
	else
		rc = buf_add(out, json_string_value(body),
			     json_string_length(body))
			     ? -2
			     : 0;
	if (rc == -1) {
		buf_setf(err, "request body is not valid base64");
		st = ST_INVALID;
	} else if (rc) {
		buf_setf(err, "request body is larger than %zu bytes",
			 max_body);
		st = ST_TOO_LARGE;
	}
out:
	return st;
}

static void lambda_route_generate(struct registry *reg, const char *why,
				  size_t max_body,
				  const struct lambda_request *req,
				  struct lambda_answer *ans)
{
	struct buf body, err = BUF_INIT, field = BUF_INIT, json = BUF_INIT;
	struct registry_result res;
	enum status st;

	buf_init(&body, max_body);
	registry_result_init(&res);
	st = lambda_request_body(req, max_body, &body, &err);
	if (st != ST_OK) {
		lambda_answer_proxy_error(ans, st, err.buf, NULL, NULL);
		goto out;
	}
	if (!reg) {
		lambda_answer_proxy_error(ans, ST_UNAVAILABLE, why, NULL, NULL);
		goto out;
	}
	st = registry_call(reg, body.buf, body.len,
			   req->want_json ? REGISTRY_WANT_SERVICES : 0, &res,
			   &err, &field);
	if (st != ST_OK) {
		lambda_answer_proxy_error(ans, st, err.buf, field.buf, NULL);
		goto out;
	}
	if (req->want_json) {
		registry_result_json(&res, &json);
		lambda_answer_proxy(ans, 200, "application/json", NULL,
				    json.buf, json.len);
	} else {
		lambda_answer_proxy(ans, 200, "text/plain; charset=utf-8", NULL,
				    res.config.buf, res.config.len);
	}
out:
	registry_result_release(&res);
	buf_release(&body);
	buf_release(&err);
	buf_release(&field);
	buf_release(&json);
}

/* As the HTTP server's /healthz: 200 when the store answers, else 503. */
static void lambda_route_healthz(struct registry *reg, const char *why,
				 size_t max_body,
				 const struct lambda_request *req,
				 struct lambda_answer *ans)
{
	struct buf err = BUF_INIT, body = BUF_INIT;
	enum status st = ST_UNAVAILABLE;

	(void)max_body;
	(void)req;
	if (!reg)
		(void)buf_addstr(&err, why);
	else
		st = registry_ping(reg, &err);
	(void)buf_addf(&body, "{\"status\":\"%s\"",
		       st == ST_OK ? "ok" : "unavailable");
	if (st != ST_OK) {
		(void)buf_addstr(&body, ",\"error\":");
		(void)buf_addjson(&body, err.buf, err.len);
	}
	(void)buf_addch(&body, '}');
	lambda_answer_proxy(ans, st == ST_OK ? 200 : 503, "application/json",
			    NULL, body.buf, body.len);
	buf_release(&err);
	buf_release(&body);
}

/* The same routes as the HTTP server. */
static const struct lambda_route lambda_routes[] = {
	{"POST", "/generate", lambda_route_generate},
	{"GET", "/healthz", lambda_route_healthz},
};

static int lambda_route_known(const char *path)
{
	size_t i;

	for (i = 0; path && i < ARRAY_SIZE(lambda_routes); i++)
		if (!strcmp(lambda_routes[i].path, path))
			return 1;
	return 0;
}

/*
 * The route path of a request: the path as sent, else with the stage
 * prefix taken off (HTTP API rawPath keeps it), else the REST resource.
 */
static const char *lambda_route_path(const struct lambda_request *req)
{
	size_t n;

	if (lambda_route_known(req->path))
		return req->path;
	if (req->path && req->stage && *req->stage &&
	    strcmp(req->stage, "$default")) {
		n = strlen(req->stage);
		if (req->path[0] == '/' &&
		    !strncmp(req->path + 1, req->stage, n) &&
		    lambda_route_known(req->path + 1 + n))
			return req->path + 1 + n;
	}
	if (lambda_route_known(req->resource))
		return req->resource;
	return req->path;
}

static void lambda_proxy(struct registry *reg, const char *why, size_t max_body,
			 const struct lambda_request *req,
			 struct lambda_answer *ans)
{
	struct buf allow = BUF_INIT;
	const char *path = lambda_route_path(req);
	const char *method = strcmp(req->method, "HEAD") ? req->method : "GET";
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lambda_routes); i++) {
		if (strcmp(lambda_routes[i].path, path))
			continue;
		if (!strcmp(lambda_routes[i].method, method)) {
			lambda_routes[i].handler(reg, why, max_body, req, ans);
			goto out;
		}
		if (allow.len)
			(void)buf_addstr(&allow, ", ");
		(void)buf_addstr(&allow, lambda_routes[i].method);
	}
	/* The HTTP server's words, so that clients see one API. */
	if (allow.len)
		lambda_answer_proxy_error(ans, ST_METHOD, "method not allowed",
					  NULL, allow.buf);
	else
		lambda_answer_proxy_error(ans, ST_NOT_FOUND, "no such path",
					  NULL, NULL);
out:
	buf_release(&allow);
}

/*
 * Fill `req` from a proxy event. Returns 0 for a REST or HTTP API event,
 * 1 when the event is not a proxy event, -1 for a broken proxy event.
 */
static int lambda_parse_request(json_t *ev, struct lambda_request *req,
				struct lambda_answer *ans, struct buf *err)
{
	json_t *ctx = json_object_get(ev, "requestContext");
	json_t *http = json_object_get(ctx, "http");
	const char *version = lambda_get_string(ev, "version");

	memset(req, 0, sizeof(*req));
	req->event = ev;
	if (version && !strcmp(version, "2.0") && json_is_object(http)) {
		ans->shape = "http";
		req->method = lambda_get_string(http, "method");
		req->path = lambda_get_string(ev, "rawPath");
		if (!req->path)
			req->path = lambda_get_string(http, "path");
	} else if (json_object_get(ev, "httpMethod")) {
		/* REST proxy events; HTTP API 1.0 events have the same shape.
		 */
		ans->shape = "rest";
		req->method = lambda_get_string(ev, "httpMethod");
		req->path = lambda_get_string(ev, "path");
		req->resource = lambda_get_string(ev, "resource");
	} else {
		return 1;
	}
	req->stage = lambda_get_string(ctx, "stage");
	if (!req->method || !req->path) {
		buf_setf(err, "%s event without %s", ans->shape,
			 !req->method ? "a method" : "a path");
		return -1;
	}
	req->want_json =
		lambda_header_has(json_object_get(ev, "headers"), "accept",
				  "application/json") ||
		lambda_header_has(json_object_get(ev, "multiValueHeaders"),
				  "accept", "application/json");
	return 0;
}

static void lambda_direct(struct registry *reg, const char *why,
			  const char *event, size_t len,
			  struct lambda_answer *ans)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	struct registry_result res;
	enum status st;

	registry_result_init(&res);
	ans->shape = "direct";
	if (!reg) {
		lambda_answer_error(ans, ST_UNAVAILABLE, why, NULL);
		goto out;
	}
	st = registry_call(reg, event, len, 0, &res, &err, &field);
	if (st != ST_OK) {
		lambda_answer_error(ans, st, err.buf, field.buf);
		goto out;
	}
	/* The config itself, as a JSON string, as the first version answered.
	 */
	ans->is_error = 0;
	ans->http = 200;
	buf_reset(&ans->body);
	(void)buf_addjson(&ans->body, res.config.buf, res.config.len);
out:
	registry_result_release(&res);
	buf_release(&err);
	buf_release(&field);
}

void lambda_handle_event(struct registry *reg, const char *why, size_t max_body,
			 const char *event, size_t len,
			 struct lambda_answer *ans)
{
	struct lambda_request req;
	struct buf err = BUF_INIT;
	json_error_t jerr;
	json_t *ev;
	int kind;

	if (!why)
		why = "the store is unavailable";
	ev = json_loadb(event, len, 0, &jerr);
	if (!json_is_object(ev)) {
		/* Not an object: no proxy event; the payload check says why. */
		lambda_direct(reg, why, event, len, ans);
		goto out;
	}
	kind = lambda_parse_request(ev, &req, ans, &err);
	if (kind > 0)
		lambda_direct(reg, why, event, len, ans);
	else if (kind < 0)
		lambda_answer_proxy_error(ans, ST_INVALID, err.buf, NULL, NULL);
	else
		lambda_proxy(reg, why, max_body, &req, ans);
out:
	json_decref(ev);
	buf_release(&err);
}

/* The Runtime API client: one curl handle, kept alive across invocations. */
struct lambda_client {
	CURL *curl;
	struct curl_slist *json_headers;
	const char *api;
	struct buf url;
	struct buf body;       /* response body of the last request */
	struct buf request_id; /* headers of the last invocation */
	struct buf deadline;
	struct buf trace;
	char curl_err[CURL_ERROR_SIZE];
	int global; /* curl_global_init done */
};

static size_t lambda_on_body(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (buf_add(b, data, size * n))
		return 0; /* over the cap: curl stops with CURLE_WRITE_ERROR */
	return size * n;
}

/* Copy the value of header `name` if `line` ("Name: value\r\n") is it. */
static void lambda_header_take(const char *line, size_t len, const char *name,
			       struct buf *out)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
		return;
	line += n + 1;
	len -= n + 1;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
		       line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	buf_reset(out);
	(void)buf_add(out, line, len);
}

static size_t lambda_on_header(char *data, size_t size, size_t n, void *arg)
{
	struct lambda_client *c = arg;

	lambda_header_take(data, size * n, "Lambda-Runtime-Aws-Request-Id",
			   &c->request_id);
	lambda_header_take(data, size * n, "Lambda-Runtime-Deadline-Ms",
			   &c->deadline);
	lambda_header_take(data, size * n, "Lambda-Runtime-Trace-Id",
			   &c->trace);
	return size * n;
}

static void lambda_client_release(struct lambda_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->json_headers);
	buf_release(&c->url);
	buf_release(&c->body);
	buf_release(&c->request_id);
	buf_release(&c->deadline);
	buf_release(&c->trace);
	if (c->global)
		curl_global_cleanup();
}

#define LAMBDA_HOST_CHARS                                                      \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]"

static enum status lambda_client_init(struct lambda_client *c, const char *api,
				      struct buf *err)
{
	enum status st = ST_USAGE;

	memset(c, 0, sizeof(*c));
	buf_init(&c->url, BUF_CAP_MESSAGE);
	buf_init(&c->body, LAMBDA_MAX_EVENT);
	buf_init(&c->request_id, BUF_CAP_MESSAGE);
	buf_init(&c->deadline, BUF_CAP_MESSAGE);
	buf_init(&c->trace, BUF_CAP_MESSAGE);
	c->api = api;
	if (!api || !*api) {
		buf_setf(err, "AWS_LAMBDA_RUNTIME_API is not set: not running "
			      "on Lambda");
		goto out;
	}
	/* It goes into URLs: a host and a port, nothing else. */
	if (strspn(api, LAMBDA_HOST_CHARS) != strlen(api) ||
	    strlen(api) > 255) {
		buf_setf(err, "AWS_LAMBDA_RUNTIME_API '%s' is not HOST:PORT",
			 api);
		goto out;
	}
	st = ST_INTERNAL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		buf_setf(err, "cannot start libcurl");
		goto out;
	}
	c->global = 1;
	c->curl = curl_easy_init();
	c->json_headers =
		curl_slist_append(NULL, "Content-Type: application/json");
	/* The API is local: no proxy, no 100-continue round trip. */
	if (c->json_headers)
		c->json_headers = curl_slist_append(c->json_headers, "Expect:");
	if (!c->curl || !c->json_headers) {
		buf_setf(err, "cannot start libcurl");
		goto out;
	}
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, lambda_on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->body);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, lambda_on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
	st = ST_OK;
out:
	return st;
}

/* Run the request set up on the handle; ST_OK when the API answered `want`. */
static enum status lambda_client_perform(struct lambda_client *c, long want,
					 struct buf *err)
{
	CURLcode rc;
	long code = 0;

	buf_reset(&c->body);
	c->curl_err[0] = '\0';
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		buf_setf(err, "runtime api %s: %s", c->url.buf,
			 c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc));
		return rc == CURLE_WRITE_ERROR ? ST_TOO_LARGE : ST_UNAVAILABLE;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != want) {
		buf_setf(err, "runtime api %s answered %ld: %.200s", c->url.buf,
			 code, c->body.buf);
		return code == 413 ? ST_TOO_LARGE : ST_UNAVAILABLE;
	}
	return ST_OK;
}

/* GET the next invocation: blocks for as long as Lambda has none to give. */
static enum status lambda_client_next(struct lambda_client *c, struct buf *err)
{
	buf_reset(&c->request_id);
	buf_reset(&c->deadline);
	buf_reset(&c->trace);
	buf_reset(&c->url);
	(void)buf_addf(&c->url, "http://%s" LAMBDA_API_BASE "/invocation/next",
		       c->api);
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url.buf);
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 0L);
	return lambda_client_perform(c, 200, err);
}

/* POST a JSON document to `path` (under the API base); the API answers 202. */
static enum status lambda_client_post(struct lambda_client *c, const char *path,
				      const char *body, size_t len,
				      const char *error_type, struct buf *err)
{
	struct curl_slist *headers = c->json_headers, *extra = NULL;
	struct buf line = BUF_INIT;
	enum status st;

	buf_reset(&c->url);
	(void)buf_addf(&c->url, "http://%s" LAMBDA_API_BASE "%s", c->api, path);
	if (error_type) {
		(void)buf_addf(&line, "Lambda-Runtime-Function-Error-Type: %s",
			       error_type);
		extra = curl_slist_append(NULL, line.buf);
		if (!extra)
			BUG("out of memory");
		extra->next = c->json_headers;
		headers = extra;
	}
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url.buf);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, LAMBDA_POST_TIMEOUT_MS);
	st = lambda_client_perform(c, 202, err);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	if (extra) {
		extra->next = NULL;
		curl_slist_free_all(extra);
	}
	buf_release(&line);
	return st;
}

/* Lambda's error document for failures outside an event. */
static void lambda_error_document(enum status st, const char *msg,
				  struct buf *out)
{
	const char *type = status_name(st);

	buf_reset(out);
	(void)buf_addstr(out, "{\"errorMessage\":");
	(void)buf_addjson(out, msg, strlen(msg));
	(void)buf_addstr(out, ",\"errorType\":");
	(void)buf_addjson(out, type, strlen(type));
	(void)buf_addch(out, '}');
}

static int64_t lambda_now_us(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A request id goes into a URL: allow only what Lambda's ids are made of. */
static int lambda_id_ok(const struct buf *id)
{
	return id->len && id->len <= LAMBDA_MAX_ID &&
	       strspn(id->buf,
		      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789-_.") == id->len;
}

/* Milliseconds left before the deadline header, or INT64_MAX without one. */
static int64_t lambda_time_left_ms(const struct buf *deadline)
{
	int64_t left = INT64_MAX;
	char *end;
	long long ms;

	if (deadline->len) {
		ms = strtoll(deadline->buf, &end, 10);
		if (!*end && ms > 0)
			left = (int64_t)ms -
			       lambda_now_us(CLOCK_REALTIME) / 1000;
	}
	return left;
}

/*
 * Answer the invocation just fetched (`fetched`: ST_TOO_LARGE when its event
 * did not fit), and log one line for it.
 */
static enum status lambda_invoke(struct lambda_client *c, struct registry *reg,
				 const char *why, size_t max_body,
				 enum status fetched, int64_t start_us,
				 struct buf *err)
{
	struct buf path = BUF_INIT, msg = BUF_INIT;
	struct lambda_answer ans;
	int64_t left = lambda_time_left_ms(&c->deadline);
	enum status st = ST_OK;

	lambda_answer_init(&ans);
	if (c->trace.len)
		setenv("_X_AMZN_TRACE_ID", c->trace.buf, 1);
	else
		unsetenv("_X_AMZN_TRACE_ID");
	if (fetched == ST_TOO_LARGE) {
		(void)buf_addf(&msg, "the event is larger than %zu bytes",
			       LAMBDA_MAX_EVENT);
		lambda_answer_error(&ans, ST_TOO_LARGE, msg.buf, NULL);
	} else if (left <= 0) {
		/* Lambda is about to stop us: no store work nobody awaits. */
		(void)buf_addf(&msg, "the deadline passed %lld ms ago",
			       (long long)-left);
		lambda_answer_error(&ans, ST_UNAVAILABLE, msg.buf, NULL);
	} else {
		lambda_handle_event(reg, why, max_body, c->body.buf,
				    c->body.len, &ans);
	}
	(void)buf_addf(&path, "/invocation/%s/%s", c->request_id.buf,
		       ans.is_error ? "error" : "response");
	st = lambda_client_post(c, path.buf, ans.body.buf, ans.body.len,
				ans.is_error ? ans.err_type.buf : NULL, err);
	if (st == ST_TOO_LARGE) {
		/* Lambda refused the answer's size: still answer, with an
		 * error. */
		lambda_answer_error(&ans, ST_TOO_LARGE,
				    "the answer is over Lambda's size limit",
				    NULL);
		buf_reset(&path);
		(void)buf_addf(&path, "/invocation/%s/error",
			       c->request_id.buf);
		st = lambda_client_post(c, path.buf, ans.body.buf, ans.body.len,
					ans.err_type.buf, err);
	}
	fprintf(stderr,
		"lambda request_id=%s shape=%s status=%u %s=%zu us=%lld "
		"trace=%s\n",
		c->request_id.buf, ans.shape, ans.http,
		ans.is_error ? "error_bytes" : "bytes", ans.body.len,
		(long long)(lambda_now_us(CLOCK_MONOTONIC) - start_us),
		c->trace.len ? c->trace.buf : "-");
	lambda_answer_release(&ans);
	buf_release(&path);
	buf_release(&msg);
	return st;
}

/*
 * The bundled libcurl looks for CA certificates where Debian keeps them, and
 * AL2023 keeps them elsewhere. Unless set already, point AWS_CA_BUNDLE (the
 * AWS SDKs' variable, for the store's HTTPS client) at a bundle that exists.
 */
static void lambda_find_ca_bundle(void)
{
	static const char *const known[] = {
		"/etc/pki/tls/certs/ca-bundle.crt",   /* Amazon Linux, RHEL */
		"/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu */
		"/etc/ssl/cert.pem",
	};
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	size_t i;

	if (getenv("AWS_CA_BUNDLE") || (v->age >= CURLVERSION_SEVENTH &&
					v->cainfo && !access(v->cainfo, R_OK)))
		return; /* chosen, or libcurl's own default is there */
	for (i = 0; i < ARRAY_SIZE(known); i++)
		if (!access(known[i], R_OK))
			break;
	if (i < ARRAY_SIZE(known)) {
		setenv("AWS_CA_BUNDLE", known[i], 0);
		fprintf(stderr, "lambda ca_bundle=%s\n", known[i]);
	}
}

/* Open the registry; an unreachable store is retried per invocation. */
static enum status lambda_open(const struct lambda_options *opts,
			       const char *bind, struct registry **reg,
			       struct buf *why)
{
	struct registry_options ropts = {opts->store_spec, {bind}};
	enum status st;

	buf_reset(why);
	st = registry_new(&ropts, reg, why);
	if (st != ST_OK) {
		*reg = NULL;
		fprintf(stderr, "lambda store=%s open=%s: %s\n",
			opts->store_spec, status_name(st), why->buf);
	}
	return st;
}

enum status lambda_run(const struct lambda_options *opts, struct buf *err)
{
	int64_t t0 = lambda_now_us(CLOCK_MONOTONIC), ready, start;
	struct buf bind = BUF_INIT, why = BUF_INIT, doc = BUF_INIT;
	struct registry *reg = NULL;
	struct lambda_client c;
	unsigned long long max_body = 0;
	unsigned long count = 0;
	enum status st;

	st = lambda_client_init(&c, opts->runtime_api, err);
	if (st != ST_OK)
		goto out; /* no API to report to */
	lambda_find_ca_bundle();

	if (render_check_bind(opts->frontend_bind, &bind, &why)) {
		buf_setf(err, "--frontend-bind: %s", why.buf);
		st = ST_USAGE;
	} else if (cli_parse_size(opts->max_body, (size_t)1 << 30, &max_body,
				  &why) ||
		   !max_body) {
		buf_setf(err, "--max-body: %s",
			 why.len ? why.buf : "must be at least 1");
		st = ST_USAGE;
	} else {
		st = lambda_open(opts, bind.buf, &reg, &why);
		/* Unreachable is no init error: 503 until it is back. */
		if (st == ST_UNAVAILABLE)
			st = ST_OK;
		else if (st != ST_OK)
			buf_setf(err, "store '%s': %s", opts->store_spec,
				 why.buf);
	}
	if (st != ST_OK) {
		enum status post;
		struct buf post_err = BUF_INIT;

		lambda_error_document(st, err->buf, &doc);
		post = lambda_client_post(&c, "/init/error", doc.buf, doc.len,
					  status_name(st), &post_err);
		if (post != ST_OK)
			fprintf(stderr, "lambda: %s\n", post_err.buf);
		buf_release(&post_err);
		goto out;
	}

	ready = lambda_now_us(CLOCK_MONOTONIC);
	for (;;) {
		st = lambda_client_next(&c, err);
		start = lambda_now_us(CLOCK_MONOTONIC);
		if (st != ST_OK &&
		    (st != ST_TOO_LARGE || !lambda_id_ok(&c.request_id)))
			goto out;
		if (!lambda_id_ok(&c.request_id)) {
			/* Without a usable id there is nothing to answer to. */
			fprintf(stderr, "lambda: invocation without a valid "
					"request id, skipped\n");
			continue;
		}
		if (!reg && st == ST_OK)
			(void)lambda_open(opts, bind.buf, &reg, &why);
		st = lambda_invoke(&c, reg, why.buf, (size_t)max_body, st,
				   start, err);
		if (st != ST_OK && st != ST_TOO_LARGE)
			goto out;
		/* From entry to the first answer; init: libcurl, the store. */
		if (!count++)
			fprintf(stderr,
				"lambda cold_start_us=%lld init_us=%lld\n",
				(long long)(lambda_now_us(CLOCK_MONOTONIC) -
					    t0),
				(long long)(ready - t0));
	}
out:
	registry_free(reg);
	lambda_client_release(&c);
	buf_release(&bind);
	buf_release(&why);
	buf_release(&doc);
	return st;
}
