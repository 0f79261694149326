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
	struct registry_options opts = {NULL, {":80"}};
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
	struct api_options opts = {r, "store down for the test", max_body, NULL,
				   NULL};
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
				      rest("POST", "/", NULL, 0, NULL), NULL),
			 404);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_no_store),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
