/*
 * libFuzzer harness: one Lambda event through lambda_event_handle(), on a
 * real SQLite store and on none; every answer must have Lambda's shapes.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "check.h"
#include "lambda_event.h"
#include "registry.h"
#include "render.h"
#include "banned.h"

/* Small, so that inputs reach the 413 paths too. */
#define FUZZ_MAX_BODY 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct registry *fuzz_reg;
static struct api *fuzz_api, *fuzz_api_down;
static char fuzz_dir[256];

static void fuzz_cleanup(void)
{
	api_free(fuzz_api);
	api_free(fuzz_api_down);
	registry_free(fuzz_reg);
	check_registry_remove(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct api_options aopts = {0};

	(void)argc;
	(void)argv;
	fuzz_reg = check_registry_open(fuzz_dir, sizeof(fuzz_dir), NULL);
	aopts.reg = fuzz_reg;
	aopts.max_body = FUZZ_MAX_BODY;
	fuzz_api = api_new(&aopts);
	aopts.reg = NULL;
	aopts.unavailable = "no store in this run";
	fuzz_api_down = api_new(&aopts);
	atexit(fuzz_cleanup);
	return 0;
}

static int fuzz_status_known(json_int_t code)
{
	static const json_int_t known[] = {200, 400, 404, 405, 413, 503};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i] == code)
			return 1;
	return 0;
}

/* A proxy response: {statusCode, headers{Content-Type}, body, false}. */
static void fuzz_check_proxy(json_t *doc, const struct lambda_answer *ans,
			     int down)
{
	json_t *code = json_object_get(doc, "statusCode");
	json_t *headers = json_object_get(doc, "headers");
	json_t *body = json_object_get(doc, "body");
	json_t *error;

	if (ans->is_error)
		check_fail("a %s event became an invocation error", ans->shape);
	if (!json_is_integer(code) ||
	    !fuzz_status_known(json_integer_value(code)) ||
	    json_integer_value(code) != (json_int_t)ans->http)
		check_fail("proxy statusCode %u unexpected", ans->http);
	if (down && ans->http == 200)
		check_fail("200 without a store");
	if (!json_is_string(json_object_get(headers, "Content-Type")) ||
	    !json_is_string(body) ||
	    !json_is_false(json_object_get(doc, "isBase64Encoded")))
		check_fail("proxy response without its members");
	if (ans->http == 200)
		return;
	/* Errors are the api's JSON: {"error": "...", "field"?: "..."}. */
	error = json_loadb(json_string_value(body), json_string_length(body), 0,
			   NULL);
	if (!json_is_string(json_object_get(error, "error")))
		check_fail("proxy error %u without an error message",
			   ans->http);
	json_decref(error);
}

static void fuzz_one(struct api *api, const char *event, size_t len, int down)
{
	struct lambda_answer ans;
	json_t *doc;

	lambda_answer_init(&ans);
	lambda_event_handle(api, event, len, &ans);
	if (check_strict_json(ans.body.buf, ans.body.len))
		check_fail("the answer is not RFC 8259 JSON");
	doc = json_loadb(ans.body.buf, ans.body.len, JSON_DECODE_ANY, NULL);
	if (!doc)
		check_fail("the answer does not parse");
	if (strcmp(ans.shape, "direct")) {
		fuzz_check_proxy(doc, &ans, down);
	} else if (ans.is_error) {
		if (!json_is_string(json_object_get(doc, "errorMessage")) ||
		    !json_is_string(json_object_get(doc, "errorType")) ||
		    strcmp(json_string_value(json_object_get(doc, "errorType")),
			   ans.err_type.buf))
			check_fail("direct error without its members");
		if (!strcmp(ans.err_type.buf, "internal"))
			check_fail("a direct event caused an internal error");
	} else {
		if (down)
			check_fail("a direct answer without a store");
		if (!json_is_string(doc) || len > FUZZ_MAX_BODY)
			check_fail("direct answer is no config string");
	}
	json_decref(doc);
	lambda_answer_release(&ans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(fuzz_api, (const char *)data, size, 0);
	fuzz_one(fuzz_api_down, (const char *)data, size, 1);
	return 0;
}
