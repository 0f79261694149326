/* The registry's answer as the agent and the follower take it: the plain
 * and the JSON form, the map files it may carry, X-Registry-Index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/answer.h"
#include "buf.h"
#include "xalloc.h"

static int parse(const char *type, const char *text, struct answer *ans,
		 struct buf *err)
{
	struct buf body = BUF_INIT;
	int r;

	buf_addstr(&body, text);
	r = answer_parse(type, &body, ans, err);
	buf_release(&body);
	return r;
}

static void test_plain(void **state)
{
	struct buf err = BUF_INIT;
	struct answer ans;

	(void)state;
	answer_init(&ans);
	assert_int_equal(
		parse("text/plain; charset=utf-8", "global\n", &ans, &err), 0);
	assert_string_equal(ans.config.buf, "global\n");
	assert_int_equal(ans.nr_files, 0);
	answer_release(&ans);
	answer_init(&ans);
	assert_int_equal(parse(NULL, "", &ans, &err), -1);
	assert_non_null(strstr(err.buf, "empty"));
	assert_int_equal(parse(NULL, "global", &ans, &err), -1);
	assert_non_null(strstr(err.buf, "newline"));
	answer_release(&ans);
	buf_release(&err);
}

static void test_json(void **state)
{
	struct haproxy_file files[HAPROXY_MAX_FILES];
	struct buf err = BUF_INIT;
	struct answer ans;
	size_t i, n;
	int seen = 0;

	(void)state;
	answer_init(&ans);
	assert_int_equal(
		parse("application/json",
		      "{\"config\":\"global\\n\",\"mapDir\":\"/m/maps\","
		      "\"files\":{\"hosts.map\":\"a.example.com web\\n\","
		      "\"paths.map\":\"/p/ api\\n\"}}",
		      &ans, &err),
		0);
	assert_string_equal(ans.config.buf, "global\n");
	n = answer_files(&ans, files);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		if (!strcmp(files[i].path, "/m/maps/hosts.map")) {
			assert_int_equal(files[i].len, 18);
			assert_memory_equal(files[i].data,
					    "a.example.com web\n", 18);
			seen |= 1;
		} else if (!strcmp(files[i].path, "/m/maps/paths.map")) {
			assert_memory_equal(files[i].data, "/p/ api\n", 8);
			seen |= 2;
		}
	}
	assert_int_equal(seen, 3);
	answer_release(&ans);

	/* The ACL form: an empty "files" and no map folder. */
	answer_init(&ans);
	assert_int_equal(parse("application/json",
			       "{\"config\":\"global\\n\",\"files\":{}}", &ans,
			       &err),
			 0);
	assert_int_equal(ans.nr_files, 0);
	answer_release(&ans);
	buf_release(&err);
}

static void test_json_refused(void **state)
{
	static const char *const bad[] = {
		"{\"config\":\"global\"}",
		"{\"config\":1}",
		"[1]",
		"{\"config\":\"global\\n\",\"mapDir\":\"/m/../etc\","
		"\"files\":{\"hosts.map\":\"a b\\n\"}}",
		"{\"config\":\"global\\n\",\"mapDir\":\"relative\","
		"\"files\":{\"hosts.map\":\"a b\\n\"}}",
		"{\"config\":\"global\\n\",\"mapDir\":\"/m\","
		"\"files\":{\"evil.map\":\"a b\\n\"}}",
		"{\"config\":\"global\\n\",\"mapDir\":\"/m\","
		"\"files\":{\"hosts.map\":\"a b c\\n\"}}",
		"{\"config\":\"global\\n\",\"mapDir\":\"/m\","
		"\"files\":{\"hosts.map\":\"a b\"}}",
		"{\"config\":\"global\\n\",\"files\":{\"hosts.map\":\"a "
		"b\\n\"}}",
	};
	struct buf err = BUF_INIT;
	struct answer ans;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		answer_init(&ans);
		buf_reset(&err);
		assert_int_equal(parse("application/json", bad[i], &ans, &err),
				 -1);
		assert_true(err.len > 0);
		answer_release(&ans);
	}
	buf_release(&err);
}

static void test_header(void **state)
{
	struct answer ans;
	char line[64];

	(void)state;
	answer_init(&ans);
	snprintf(line, sizeof(line), "X-Registry-Index: 42\r\n");
	assert_int_equal(answer_header(line, 1, strlen(line), &ans),
			 strlen(line));
	assert_int_equal(ans.has_index, 1);
	assert_int_equal(ans.index, 42);
	answer_release(&ans);
	answer_init(&ans);
	snprintf(line, sizeof(line), "x-registry-index: none\r\n");
	answer_header(line, 1, strlen(line), &ans);
	assert_int_equal(ans.has_index, 0);
	snprintf(line, sizeof(line), "ETag: \"7\"\r\n");
	answer_header(line, 1, strlen(line), &ans);
	assert_int_equal(ans.has_index, 0);
	answer_release(&ans);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_refused),
		cmocka_unit_test(test_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
