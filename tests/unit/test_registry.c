/*
 * Whole calls through registry_call() on a real SQLite file: the faults of
 * the first version (spec, last section), atomic rejection, and a cache that
 * stays right when another process writes the same table.
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

#include "buf.h"
#include "registry.h"

static char dir[] = "/tmp/lr-registry-XXXXXX";
static char spec[256];
static int seq;

static struct registry *open_registry(void)
{
	struct registry_options opts = {spec, {":80"}};
	struct registry *reg = NULL;
	struct buf err = BUF_INIT;

	if (registry_new(&opts, &reg, &err) != ST_OK)
		fail_msg("registry_new: %s", err.buf);
	buf_release(&err);
	return reg;
}

static int fresh_store(void **state)
{
	(void)state;
	snprintf(spec, sizeof(spec), "sqlite:%s/r%d.db", dir, seq++);
	return 0;
}

/* Run one call; returns the status, the config in `cfg`. */
static enum status call(struct registry *reg, const char *json, struct buf *cfg,
			struct buf *field)
{
	struct registry_result res;
	struct buf err = BUF_INIT, f = BUF_INIT;
	enum status st;

	registry_result_init(&res);
	st = registry_call(reg, json, strlen(json), 0, &res, &err, &f);
	if (cfg) {
		buf_reset(cfg);
		(void)buf_add(cfg, res.config.buf, res.config.len);
	}
	if (field) {
		buf_reset(field);
		(void)buf_add(field, f.buf, f.len);
	}
	registry_result_release(&res);
	buf_release(&err);
	buf_release(&f);
	return st;
}

static void dump(struct registry *reg, const char *table, struct buf *out)
{
	struct buf err = BUF_INIT;

	buf_reset(out);
	if (registry_dump(reg, table, out, &err) != ST_OK)
		fail_msg("dump: %s", err.buf);
	buf_release(&err);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

/* Payloads are spelled out in JSON; keep them as written. */
/* clang-format off */
#define SVC(name, pred, id, ip)                                                \
	"{\"serviceName\":\"" name "\",\"port\":80,\"predicate\":\"" pred      \
	"\",\"containers\":[{\"id\":\"" id "\",\"ip\":\"" ip "\"}]}"
#define RUN(name, id, ip) "{\"serviceName\":\"" name "\",\"id\":\"" id "\",\"ip\":\"" ip "\"}"

/* The first version read back one service per call and lost the others. */
static void test_every_service_read_back(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, "{\"table\":\"tbl1\",\"running\":[" RUN("a", "a1", "10.0.0.1") "],"
				   "\"candidates\":[" SVC("a", "a.example", "a1", "10.0.0.1") "]}",
			      &cfg, NULL), ST_OK);
	assert_int_equal(call(reg, "{\"table\":\"tbl1\",\"running\":[" RUN("a", "a1", "10.0.0.1") ","
				   RUN("b", "b1", "10.0.0.2") "],"
				   "\"candidates\":[" SVC("b", "b.example", "b1", "10.0.0.2") "]}",
			      &cfg, NULL), ST_OK);
	assert_int_equal(call(reg, "{\"table\":\"tbl1\",\"running\":[" RUN("a", "a1", "10.0.0.1") ","
				   RUN("b", "b1", "10.0.0.2") ","
				   RUN("c", "c1", "10.0.0.3") "],"
				   "\"candidates\":[" SVC("c", "c.example", "c1", "10.0.0.3") "]}",
			      &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, "\nbackend a\n"));
	assert_non_null(strstr(cfg.buf, "\nbackend b\n"));
	assert_non_null(strstr(cfg.buf, "\nbackend c\n"));
	buf_release(&cfg);
	registry_free(reg);
}

/* The first version ignored `table`: tables must not see each other. */
static void test_tables_are_namespaces(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, "{\"table\":\"host-one\",\"running\":[],"
				   "\"candidates\":[" SVC("a", "a.example", "a1", "10.0.0.1") "]}",
			      &cfg, NULL), ST_OK);
	assert_int_equal(call(reg, "{\"table\":\"host-two\",\"running\":[],"
				   "\"candidates\":[" SVC("b", "b.example", "b1", "10.0.0.2") "]}",
			      &cfg, NULL), ST_OK);
	assert_null(strstr(cfg.buf, "backend a"));
	assert_non_null(strstr(cfg.buf, "\nbackend b\n"));
	buf_release(&cfg);
	registry_free(reg);
}

/* A call without candidates crashed the first version after it had deleted
 * data; here it is an ordinary "container stopped" call. */
static void test_call_without_candidates(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, "{\"table\":\"tbl3\",\"running\":[" RUN("a", "a1", "10.0.0.1") ","
				   RUN("b", "b1", "10.0.0.2") "],\"candidates\":["
				   SVC("a", "a.example", "a1", "10.0.0.1") ","
				   SVC("b", "b.example", "b1", "10.0.0.2") "]}", &cfg, NULL), ST_OK);
	assert_int_equal(call(reg, "{\"table\":\"tbl3\",\"running\":[" RUN("b", "b1", "10.0.0.2") "]}",
			      &cfg, NULL), ST_OK);
	assert_null(strstr(cfg.buf, "backend a"));
	assert_non_null(strstr(cfg.buf, "\nbackend b\n    balance roundrobin\n"));
	buf_release(&cfg);
	registry_free(reg);
}

/* A missing configMode gave a use_backend without its ACL. */
static void test_missing_config_mode_is_host(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, "{\"table\":\"tbl4\",\"running\":[],\"candidates\":["
				   SVC("a", "a.example", "a1", "10.0.0.1") "]}", &cfg, NULL), ST_OK);
	assert_int_equal(count(cfg.buf, "acl host_a "), 1);
	assert_int_equal(count(cfg.buf, "use_backend a if host_a\n"), 1);
	buf_release(&cfg);
	registry_free(reg);
}

/* '&' stays '&' (the first version HTML-escaped it), output ends in a newline. */
static void test_no_html_escaping(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, "{\"table\":\"tbl5\",\"running\":[],\"candidates\":[{"
				   "\"serviceName\":\"q\",\"port\":80,\"configMode\":\"path\","
				   "\"predicate\":\"a&b\",\"containers\":[]}]}", &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, " path /a&b\n"));
	assert_null(strstr(cfg.buf, "&amp;"));
	assert_int_equal(cfg.buf[cfg.len - 1], '\n');
	buf_release(&cfg);
	registry_free(reg);
}

/* An injection attempt is refused, names the field and changes nothing. */
static void test_rejected_call_changes_nothing(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT, field = BUF_INIT, before = BUF_INIT, after = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, "{\"table\":\"tbl6\",\"running\":[" RUN("a", "a1", "10.0.0.1") "],"
				   "\"candidates\":[" SVC("a", "a.example", "a1", "10.0.0.1") "]}",
			      &cfg, NULL), ST_OK);
	dump(reg, "tbl6", &before);
	/* The first candidate is fine, the second is not: nothing is applied. */
	assert_int_equal(call(reg, "{\"table\":\"tbl6\",\"running\":[],\"candidates\":["
				   SVC("b", "b.example", "b1", "10.0.0.2") ","
				   SVC("c", "c.example\\n    bind :81", "c1", "10.0.0.3") "]}",
			      &cfg, &field), ST_INVALID);
	assert_string_equal(field.buf, "candidates[1].predicate");
	assert_int_equal(cfg.len, 0);
	dump(reg, "tbl6", &after);
	assert_string_equal(before.buf, after.buf);
	assert_non_null(strstr(after.buf, "\"serviceName\":\"a\""));
	buf_release(&cfg);
	buf_release(&field);
	buf_release(&before);
	buf_release(&after);
	registry_free(reg);
}

/* Same state, same bytes; a call that changes nothing writes nothing. */
static void test_unchanged_call_writes_nothing(void **state)
{
	struct registry *reg = open_registry();
	struct buf one = BUF_INIT, two = BUF_INIT, d1 = BUF_INIT, d2 = BUF_INIT;
	const char *json = "{\"table\":\"tbl7\",\"running\":[" RUN("a", "a1", "10.0.0.1") "],"
			   "\"candidates\":[" SVC("a", "a.example", "a1", "10.0.0.1") "]}";

	(void)state;
	assert_int_equal(call(reg, json, &one, NULL), ST_OK);
	dump(reg, "tbl7", &d1);
	usleep(5000); /* a write would now carry a later updatedAt */
	assert_int_equal(call(reg, json, &two, NULL), ST_OK);
	dump(reg, "tbl7", &d2);
	assert_string_equal(one.buf, two.buf);
	assert_string_equal(d1.buf, d2.buf);
	buf_release(&one);
	buf_release(&two);
	buf_release(&d1);
	buf_release(&d2);
	registry_free(reg);
}

/* Two registries on one file stand for two processes: each one's cache
 * must notice what the other wrote. */
static void test_cache_sees_other_writers(void **state)
{
	struct registry *r1 = open_registry(), *r2 = open_registry();
	struct buf cfg = BUF_INIT;
	const char *run_ab = "{\"table\":\"tbl8\",\"running\":[" RUN("a", "a1", "10.0.0.1") ","
			     RUN("b", "b1", "10.0.0.2") "]";
	struct buf json = BUF_INIT;

	(void)state;
	assert_int_equal(call(r1, "{\"table\":\"tbl8\",\"running\":[],\"candidates\":["
				  SVC("a", "a.example", "a1", "10.0.0.1") "]}", &cfg, NULL), ST_OK);
	/* r1 now has t8 cached; r2 adds b. */
	assert_int_equal(call(r2, "{\"table\":\"tbl8\",\"running\":[" RUN("a", "a1", "10.0.0.1") "],"
				  "\"candidates\":[" SVC("b", "b.example", "b1", "10.0.0.2") "]}",
			      &cfg, NULL), ST_OK);
	(void)buf_addf(&json, "%s}", run_ab);
	assert_int_equal(call(r1, json.buf, &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, "\nbackend a\n"));
	assert_non_null(strstr(cfg.buf, "\nbackend b\n"));
	buf_release(&cfg);
	buf_release(&json);
	registry_free(r1);
	registry_free(r2);
}

/* clang-format on */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_every_service_read_back,
				       fresh_store),
		cmocka_unit_test_setup(test_tables_are_namespaces, fresh_store),
		cmocka_unit_test_setup(test_call_without_candidates,
				       fresh_store),
		cmocka_unit_test_setup(test_missing_config_mode_is_host,
				       fresh_store),
		cmocka_unit_test_setup(test_no_html_escaping, fresh_store),
		cmocka_unit_test_setup(test_rejected_call_changes_nothing,
				       fresh_store),
		cmocka_unit_test_setup(test_unchanged_call_writes_nothing,
				       fresh_store),
		cmocka_unit_test_setup(test_cache_sees_other_writers,
				       fresh_store),
	};
	char cmd[128];
	int ret;

	if (!mkdtemp(dir))
		return 1;
	ret = cmocka_run_group_tests_name("registry", tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) && !ret)
		ret = 1;
	return ret;
}
