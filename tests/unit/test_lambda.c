/*
 * Lambda event translation on a real SQLite registry: shape detection,
 * base64 bodies, stage prefixes, routing, size limits and store outages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"
#include "buf.h"
#include "clock.h"
#include "lambda.h"
#include "lambda_event.h"
#include "registry.h"

#define PAYLOAD                                                                \
	"{\"table\":\"unit\",\"running\":[{\"serviceName\":\"web\",\"id\":"    \
	"\"c1\","                                                              \
	"\"ip\":\"10.0.0.1\"}],\"candidates\":[{\"serviceName\":\"web\","      \
	"\"port\":80,\"predicate\":\"w.example.com\",\"containers\":[{\"id\":" \
	"\"c1\",\"ip\":\"10.0.0.1\"}]}]}"
/* A valid payload small enough to measure limits with. */
#define SMALL "{\"table\":\"abc\",\"running\":[]}"

static char dir[] = "/tmp/lr-lambda-XXXXXX";
static struct registry *reg;

static int setup(void **state)
{
	struct registry_options opts = {NULL, {.frontend_bind = ":80"}};
	struct buf err = BUF_INIT;
	char spec[256];

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(spec, sizeof(spec), "sqlite:%s/l.db", dir);
	opts.store_spec = spec;
	if (registry_new(&opts, &reg, &err) != ST_OK) {
		fprintf(stderr, "registry_new: %s\n", err.buf);
		return -1;
	}
	buf_release(&err);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	registry_free(reg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static void b64(const char *in, struct buf *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
				  "stuvwxyz0123456789+/";
	size_t i, n = strlen(in);

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		(void)buf_addch(out, tab[v >> 18 & 63]);
		(void)buf_addch(out, tab[v >> 12 & 63]);
		(void)buf_addch(out, i + 1 < n ? tab[v >> 6 & 63] : '=');
		(void)buf_addch(out, i + 2 < n ? tab[v & 63] : '=');
	}
}

/* Handle `event`; returns the parsed answer document (new reference). */
static json_t *handle(struct registry *r, size_t max_body, const char *event,
		      struct lambda_answer *ans)
{
	struct api_options opts = {.reg = r,
				   .unavailable = "store down for the test",
				   .max_body = max_body};
	struct api *api = api_new(&opts);
	json_error_t jerr;
	json_t *doc;

	lambda_answer_init(ans);
	lambda_event_handle(api, event, strlen(event), ans);
	api_free(api);
	doc = json_loadb(ans->body.buf, ans->body.len, JSON_DECODE_ANY, &jerr);
	if (!doc)
		fail_msg("answer is not JSON: %s", ans->body.buf);
	return doc;
}

static json_t *rest(const char *method, const char *path, const char *body,
		    int base64, const char *accept)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:b, s:{s:s}, s:{s:s}}",
			       "httpMethod", method, "path", path, "resource",
			       path, "isBase64Encoded", base64, "headers",
			       "Accept", accept ? accept : "*/*",
			       "requestContext", "stage", "prod");

	json_object_set_new(ev, "body", body ? json_string(body) : json_null());
	return ev;
}

/* Status code of a proxy answer to `ev` (stolen). */
static int proxy_status(struct registry *r, size_t max_body, json_t *ev,
			struct buf *body)
{
	struct lambda_answer ans;
	char *text = json_dumps(ev, 0);
	json_t *doc = handle(r, max_body, text, &ans);
	int code;

	assert_false(ans.is_error);
	code = (int)json_integer_value(json_object_get(doc, "statusCode"));
	assert_int_equal(code, (int)ans.http);
	if (body) {
		buf_reset(body);
		(void)buf_addstr(
			body, json_string_value(json_object_get(doc, "body")));
	}
	json_decref(doc);
	json_decref(ev);
	free(text);
	lambda_answer_release(&ans);
	return code;
}

static void test_direct(void **state)
{
	struct lambda_answer ans;
	json_t *doc;

	(void)state;
	doc = handle(reg, 1 << 20, PAYLOAD, &ans);
	assert_false(ans.is_error);
	assert_true(json_is_string(doc));
	assert_non_null(
		strstr(json_string_value(doc), "server c1 10.0.0.1:80"));
	assert_string_equal(ans.shape, "direct");
	json_decref(doc);
	lambda_answer_release(&ans);

	doc = handle(reg, 1 << 20, "{\"table\":\"unit\"}", &ans);
	assert_true(ans.is_error);
	assert_string_equal(ans.err_type.buf, "invalid");
	assert_string_equal(
		json_string_value(json_object_get(doc, "errorType")),
		"invalid");
	assert_non_null(
		strstr(json_string_value(json_object_get(doc, "errorMessage")),
		       "running"));
	json_decref(doc);
	lambda_answer_release(&ans);

	/* Not even an object: still a direct (invalid) payload. */
	doc = handle(reg, 1 << 20, "\"hello\"", &ans);
	assert_true(ans.is_error);
	json_decref(doc);
	lambda_answer_release(&ans);
}

static void test_base64(void **state)
{
	struct buf enc = BUF_INIT, body = BUF_INIT;
	size_t n;

	(void)state;
	b64(PAYLOAD, &enc);
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("POST", "/generate", enc.buf, 1, NULL),
			     &body),
		200);
	assert_non_null(strstr(body.buf, "backend web"));

	/* Without its padding. */
	while (enc.len && enc.buf[enc.len - 1] == '=')
		buf_setlen(&enc, enc.len - 1);
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("POST", "/generate", enc.buf, 1, NULL), NULL),
		200);

	/* A stray character, data after padding, a lone last character. */
	buf_reset(&enc);
	b64(SMALL, &enc);
	n = enc.len;
	(void)buf_addstr(&enc, "*");
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("POST", "/generate", enc.buf, 1, NULL),
			     &body),
		400);
	assert_non_null(strstr(body.buf, "base64"));
	buf_setlen(&enc, n);
	(void)buf_addstr(&enc, "=A");
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("POST", "/generate", enc.buf, 1, NULL), NULL),
		400);
	buf_setlen(&enc, n);
	(void)buf_addstr(&enc, "Q");
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("POST", "/generate", enc.buf, 1, NULL), NULL),
		400);
	/* The decoded size counts against the limit, not the encoded one. */
	buf_reset(&enc);
	b64(SMALL, &enc);
	assert_int_equal(
		proxy_status(reg, strlen(SMALL),
			     rest("POST", "/generate", enc.buf, 1, NULL), NULL),
		200);
	assert_int_equal(
		proxy_status(reg, strlen(SMALL) - 1,
			     rest("POST", "/generate", enc.buf, 1, NULL), NULL),
		413);
	assert_int_equal(proxy_status(reg, strlen(SMALL) - 1,
				      rest("POST", "/generate", SMALL, 0, NULL),
				      NULL),
			 413);
	buf_release(&enc);
	buf_release(&body);
}

static void test_routes(void **state)
{
	struct buf body = BUF_INIT;
	json_t *ev;

	(void)state;
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("GET", "/healthz", NULL, 0, NULL),
				      &body),
			 200);
	assert_string_equal(body.buf, "{\"status\":\"ok\"}");
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("HEAD", "/healthz", NULL, 0, NULL),
				      NULL),
			 200);
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("DELETE", "/generate", NULL, 0, NULL), &body),
		405);
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("POST", "/nowhere", NULL, 0, NULL),
				      NULL),
			 404);
	/* "/" is the status page: GET only. */
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("POST", "/", NULL, 0, NULL), NULL),
			 405);
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("POST", "/generate", PAYLOAD, 0,
					   "application/json"),
				      &body),
			 200);
	assert_non_null(strstr(body.buf, "\"services\""));

	/* A custom domain path: the REST resource still names the route. */
	ev = rest("POST", "/registry/generate", PAYLOAD, 0, NULL);
	json_object_set_new(ev, "resource", json_string("/generate"));
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 200);

	/* HTTP API 2.0: rawPath with and without the stage. */
	ev = json_pack("{s:s, s:s, s:s, s:b, s:{s:s, s:{s:s}}}", "version",
		       "2.0", "rawPath", "/live/generate", "body", PAYLOAD,
		       "isBase64Encoded", 0, "requestContext", "stage", "live",
		       "http", "method", "POST");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 200);
	ev = json_pack("{s:s, s:s, s:s, s:{s:s, s:{s:s}}}", "version", "2.0",
		       "rawPath", "/live/generate", "body", PAYLOAD,
		       "requestContext", "stage", "$default", "http", "method",
		       "POST");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 404);

	/* Broken proxy events. */
	ev = json_pack("{s:i, s:s}", "httpMethod", 1, "path", "/generate");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 400);
	ev = rest("POST", "/generate", NULL, 0, NULL);
	json_object_set_new(ev, "isBase64Encoded", json_string("yes"));
	json_object_set_new(ev, "body", json_string(PAYLOAD));
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 400);
	buf_release(&body);
}

static void test_no_store(void **state)
{
	struct lambda_answer ans;
	struct buf body = BUF_INIT;
	json_t *doc;

	(void)state;
	assert_int_equal(
		proxy_status(NULL, 1 << 20,
			     rest("POST", "/generate", PAYLOAD, 0, NULL),
			     &body),
		503);
	assert_non_null(strstr(body.buf, "store down for the test"));
	assert_int_equal(proxy_status(NULL, 1 << 20,
				      rest("GET", "/healthz", NULL, 0, NULL),
				      NULL),
			 503);
	doc = handle(NULL, 1 << 20, PAYLOAD, &ans);
	assert_true(ans.is_error);
	assert_string_equal(ans.err_type.buf, "unavailable");
	json_decref(doc);
	lambda_answer_release(&ans);
	buf_release(&body);
}

/* The "field" member of a JSON error body, or "" (borrowed from `body`). */
static const char *error_field(const struct buf *body, json_t **doc)
{
	const char *field;

	*doc = json_loadb(body->buf, body->len, 0, NULL);
	field = json_string_value(json_object_get(*doc, "field"));
	return field ? field : "";
}

static json_t *http_api(const char *method, const char *raw_path,
			const char *stage, const char *body)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:{s:s}, s:{s:s, s:{s:s}}}",
			 "version", "2.0", "routeKey", "$default", "rawPath",
			 raw_path, "body", body, "isBase64Encoded", 0,
			 "headers", "accept", "*/*", "requestContext", "stage",
			 stage, "http", "method", method);
}

/* A REST event for a resource template with its path parameters. */
static json_t *rest_resource(const char *path, const char *resource,
			     const char *param, const char *value)
{
	json_t *ev = rest("POST", path, PAYLOAD, 0, NULL);

	json_object_set_new(ev, "resource", json_string(resource));
	json_object_set_new(ev, "pathParameters",
			    json_pack("{s:s}", param, value));
	return ev;
}

static void test_table_routes(void **state)
{
	struct buf body = BUF_INIT;
	json_t *ev, *doc;

	(void)state;
	/* The path as sent, and the template API Gateway matched. */
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("POST", "/v1/tables/unit/generate",
					   PAYLOAD, 0, NULL),
				      &body),
			 200);
	assert_non_null(strstr(body.buf, "server c1 10.0.0.1:80"));
	ev = rest_resource("/v1/tables/unit/generate",
			   "/v1/tables/{table}/generate", "table", "unit");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 200);
	/* A custom domain's base path: only the resource names the route. */
	ev = rest_resource("/registry/v1/tables/unit/generate",
			   "/v1/tables/{table}/generate", "table", "unit");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 200);
	/* A greedy proxy resource. */
	ev = rest_resource("/registry/v1/tables/unit/generate", "/{proxy+}",
			   "proxy", "v1/tables/unit/generate");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, &body), 200);
	assert_non_null(strstr(body.buf, "backend web"));
	/* A parameter that is missing, or would add a segment: no route. */
	ev = rest_resource("/registry/v1/tables/unit/generate",
			   "/v1/tables/{table}/generate", "other", "unit");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 404);
	ev = rest_resource("/registry/v1/tables/unit/generate",
			   "/v1/tables/{table}/generate", "table", "a/b");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 404);
	/* A table name the store refuses, even when percent-encoded. */
	ev = rest_resource("/registry/v1/tables/x/generate",
			   "/v1/tables/{table}/generate", "table", "a b");
	assert_int_equal(proxy_status(reg, 1 << 20, ev, &body), 400);
	assert_string_equal(error_field(&body, &doc), "table");
	json_decref(doc);

	/* HTTP API 2.0: under a named stage and under $default. */
	ev = http_api("POST", "/live/v1/tables/unit/generate", "live", PAYLOAD);
	assert_int_equal(proxy_status(reg, 1 << 20, ev, &body), 200);
	assert_non_null(strstr(body.buf, "server c1 10.0.0.1:80"));
	ev = http_api("POST", "/v1/tables/unit/generate", "$default", PAYLOAD);
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 200);
	/* The route key's template, when a base path hides the route. */
	ev = http_api("POST", "/base/v1/tables/unit/generate", "$default",
		      PAYLOAD);
	json_object_set_new(ev, "routeKey",
			    json_string("POST /v1/tables/{table}/generate"));
	json_object_set_new(ev, "pathParameters",
			    json_pack("{s:s}", "table", "unit"));
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 200);

	/* The path names one table, the payload another. */
	assert_int_equal(proxy_status(reg, 1 << 20,
				      rest("POST", "/v1/tables/other/generate",
					   PAYLOAD, 0, NULL),
				      &body),
			 400);
	assert_string_equal(error_field(&body, &doc), "table");
	json_decref(doc);
	ev = http_api("POST", "/live/v1/tables/other/generate", "live",
		      PAYLOAD);
	assert_int_equal(proxy_status(reg, 1 << 20, ev, &body), 400);
	assert_string_equal(error_field(&body, &doc), "table");
	json_decref(doc);
	ev = http_api("POST", "/v1/tables/bad!name/generate", "$default",
		      PAYLOAD);
	assert_int_equal(proxy_status(reg, 1 << 20, ev, &body), 400);
	assert_string_equal(error_field(&body, &doc), "table");
	json_decref(doc);
	/* The pattern route knows its methods. */
	ev = http_api("GET", "/live/v1/tables/unit/generate", "live", PAYLOAD);
	assert_int_equal(proxy_status(reg, 1 << 20, ev, NULL), 405);
	buf_release(&body);
}

static char *answer_header(struct registry *r, json_t *ev, const char *name,
			   int *code);

/* A GET of the table's config with a query, through HTTP API 2.0; `secs`
 * the time it took. */
static int watch_get(const char *query, struct buf *body, double *secs)
{
	json_t *ev = http_api("GET", "/v1/tables/unitw/config", "$default", "");
	uint64_t t0 = clock_now_ms();
	int code;

	json_object_set_new(ev, "rawQueryString", json_string(query));
	code = proxy_status(reg, 1 << 20, ev, body);
	*secs = (double)(clock_now_ms() - t0) / 1000;
	return code;
}

/* Watches in Lambda: no connection to park, the wait is a poll here. */
static void test_watch(void **state)
{
	struct buf body = BUF_INIT, q = BUF_INIT;
	const char *p = "{\"table\":\"unitw\",\"running\":[{\"serviceName\":"
			"\"web\",\"id\":\"c1\",\"ip\":\"10.0.0.1\"}],"
			"\"candidates\":[{\"serviceName\":\"web\",\"port\":80,"
			"\"predicate\":\"w.example.com\",\"containers\":[{"
			"\"id\":\"c1\",\"ip\":\"10.0.0.1\"}]}]}";
	double secs;
	char *index;
	int code;

	(void)state;
	index = answer_header(reg, rest("POST", "/generate", p, 0, NULL),
			      "X-Registry-Index", &code);
	assert_int_equal(code, 200);
	assert_non_null(index);
	/* the index it is at: a 304 after the wait (and its jitter) */
	buf_setf(&q, "index=%s&wait=300ms", index);
	free(index);
	assert_int_equal(watch_get(q.buf, &body, &secs), 304);
	assert_true(secs >= 0.3 && secs < 0.3 * 17 / 16 + 5);
	/* another index: the config at once */
	assert_int_equal(watch_get("index=0&wait=20s", &body, &secs), 200);
	assert_true(strcmp(q.buf, "index=0&wait=300ms"));
	assert_true(secs < 10);
	assert_non_null(strstr(body.buf, "backend web"));
	assert_int_equal(watch_get("index=1&wait=6m", &body, &secs), 400);
	assert_non_null(strstr(body.buf, "\"wait\""));
	buf_release(&body);
	buf_release(&q);
}

/* The proxy answer's header `name`, or NULL. */
static char *answer_header(struct registry *r, json_t *ev, const char *name,
			   int *code)
{
	struct lambda_answer ans;
	char *text = json_dumps(ev, 0);
	json_t *doc = handle(r, 1 << 20, text, &ans);
	const char *value = json_string_value(
		json_object_get(json_object_get(doc, "headers"), name));
	char *ret = value ? strdup(value) : NULL;

	*code = (int)json_integer_value(json_object_get(doc, "statusCode"));
	json_decref(doc);
	json_decref(ev);
	free(text);
	lambda_answer_release(&ans);
	return ret;
}

static void test_headers(void **state)
{
	json_t *ev;
	char *value;
	int code;

	(void)state;
	/* Allow comes from the api, as on HTTP. */
	value = answer_header(reg, rest("GET", "/generate", NULL, 0, NULL),
			      "Allow", &code);
	assert_int_equal(code, 405);
	assert_string_equal(value, "POST");
	free(value);
	value = answer_header(reg, rest("GET", "/healthz", NULL, 0, NULL),
			      "Content-Type", &code);
	assert_int_equal(code, 200);
	assert_string_equal(value, "application/json");
	free(value);

	/* Repeated Accept headers (multiValueHeaders) count together. */
	ev = rest("POST", "/generate", PAYLOAD, 0, NULL);
	json_object_set_new(ev, "multiValueHeaders",
			    json_pack("{s:[s, s]}", "accept", "text/plain",
				      "application/json"));
	value = answer_header(reg, ev, "Content-Type", &code);
	assert_int_equal(code, 200);
	assert_string_equal(value, "application/json");
	free(value);
	/* HTTP API header names come in lower case. */
	ev = http_api("POST", "/generate", "$default", PAYLOAD);
	json_object_set_new(ev, "headers",
			    json_pack("{s:s}", "accept", "application/json"));
	value = answer_header(reg, ev, "Content-Type", &code);
	assert_int_equal(code, 200);
	assert_string_equal(value, "application/json");
	free(value);

	/* A 304 sends no representation: no Content-Type, the index stays. */
	free(answer_header(reg, rest("POST", "/generate", PAYLOAD, 0, NULL),
			   "X-Registry-Index", &code));
	value = answer_header(reg, rest("POST", "/generate", PAYLOAD, 0, NULL),
			      "X-Registry-Index", &code);
	assert_int_equal(code, 200);
	assert_non_null(value);
	ev = rest("POST", "/generate", PAYLOAD, 0, NULL);
	json_object_set_new(json_object_get(ev, "headers"), "If-None-Match",
			    json_sprintf("\"%s\"", value));
	json_incref(ev);
	assert_null(answer_header(reg, ev, "Content-Type", &code));
	assert_int_equal(code, 304);
	free(value);
	value = answer_header(reg, ev, "ETag", &code);
	assert_int_equal(code, 304);
	assert_non_null(value);
	free(value);
}

/* A valid payload of over 1.1 MB (one long predicate). */
static void big_payload(struct buf *out)
{
	size_t i;

	(void)buf_addstr(out,
			 "{\"table\":\"unit\",\"running\":[{\"serviceName\":"
			 "\"web\",\"id\":\"c1\",\"ip\":\"10.0.0.1\"}],"
			 "\"candidates\":[{\"serviceName\":\"web\","
			 "\"port\":80,\"predicate\":\"");
	for (i = 0; i < 1100000 / 8; i++)
		(void)buf_addstr(out, "abcdefg.");
	(void)buf_addstr(out, "example.com\",\"containers\":[{\"id\":\"c1\","
			      "\"ip\":\"10.0.0.1\"}]}]}");
}

/* Issue 11, defect 10: direct events obey --max-body as proxy events do. */
static void test_direct_max_body(void **state)
{
	struct lambda_answer ans;
	struct buf big = BUF_INIT;
	json_t *doc;

	(void)state;
	big_payload(&big);
	assert_true(big.len > 1100000);
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     rest("POST", "/generate", big.buf, 0, NULL), NULL),
		413);
	assert_int_equal(
		proxy_status(reg, 1 << 20,
			     http_api("POST", "/generate", "$default", big.buf),
			     NULL),
		413);
	doc = handle(reg, 1 << 20, big.buf, &ans);
	assert_true(ans.is_error);
	assert_int_equal(ans.http, 413);
	assert_string_equal(ans.err_type.buf, "too_large");
	assert_string_equal(
		json_string_value(json_object_get(doc, "errorType")),
		"too_large");
	assert_non_null(
		strstr(json_string_value(json_object_get(doc, "errorMessage")),
		       "larger than 1048576 bytes"));
	json_decref(doc);
	lambda_answer_release(&ans);

	/* At the limit it passes; one byte under, it does not. */
	doc = handle(reg, strlen(PAYLOAD), PAYLOAD, &ans);
	assert_false(ans.is_error);
	json_decref(doc);
	lambda_answer_release(&ans);
	doc = handle(reg, strlen(PAYLOAD) - 1, PAYLOAD, &ans);
	assert_true(ans.is_error);
	assert_string_equal(ans.err_type.buf, "too_large");
	json_decref(doc);
	lambda_answer_release(&ans);
	buf_release(&big);
}

/* Issue 11, defect 10: a relative or garbled deadline is no deadline. */
static void test_deadline(void **state)
{
	uint64_t now = 1764633600000ull, deadline = 0;
	char text[32];

	(void)state;
	assert_int_equal(lambda_deadline_parse(NULL, now, &deadline), 0);
	assert_int_equal(lambda_deadline_parse("", now, &deadline), 0);
	snprintf(text, sizeof(text), "%llu", (unsigned long long)now + 3000);
	assert_int_equal(lambda_deadline_parse(text, now, &deadline), 1);
	assert_true(deadline == now + 3000);
	/* Passed already: still a deadline (the caller refuses the work). */
	snprintf(text, sizeof(text), "%llu", (unsigned long long)now - 1000);
	assert_int_equal(lambda_deadline_parse(text, now, &deadline), 1);
	assert_true(deadline == now - 1000);
	/* Relative ms, epoch seconds, epoch microseconds, junk. */
	assert_int_equal(lambda_deadline_parse("5000", now, &deadline), -1);
	snprintf(text, sizeof(text), "%llu",
		 (unsigned long long)(now / 1000 + 30));
	assert_int_equal(lambda_deadline_parse(text, now, &deadline), -1);
	snprintf(text, sizeof(text), "%llu", (unsigned long long)(now * 1000));
	assert_int_equal(lambda_deadline_parse(text, now, &deadline), -1);
	assert_int_equal(lambda_deadline_parse("-5000", now, &deadline), -1);
	assert_int_equal(
		lambda_deadline_parse(" 1764633603000", now, &deadline), -1);
	assert_int_equal(
		lambda_deadline_parse("99999999999999999999", now, &deadline),
		-1);
	assert_int_equal(lambda_deadline_parse("soon", now, &deadline), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_no_store),
		cmocka_unit_test(test_table_routes),
		cmocka_unit_test(test_watch),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_direct_max_body),
		cmocka_unit_test(test_deadline),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
