/*
 * Agent reports kept in memory over a real SQLite store: both caps (all
 * agents, agents per table) hold in the store and in memory, the oldest goes
 * first, views come from memory, and another process's reports show up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "metrics.h"
#include "report.h"
#include "store/store.h"

static char dir[] = "/tmp/lr-report-XXXXXX";
static char spec[256];
static int seq;

static struct store *open_store(void)
{
	struct buf err = BUF_INIT;
	struct store *st = NULL;

	if (store_open(spec, &st, &err) != ST_OK)
		fail_msg("store_open: %s", err.buf);
	buf_release(&err);
	return st;
}

static int fresh_store(void **state)
{
	(void)state;
	snprintf(spec, sizeof(spec), "sqlite:%s/r%d.db", dir, seq++);
	return 0;
}

static void put(struct report_cache *c, struct store *st, const char *table,
		const char *agent, uint64_t index)
{
	struct report r = {index, "reload", "ok", "2.6.12", 2, 0, 0};
	struct buf err = BUF_INIT;
	struct timespec ms = {0, 3 * 1000 * 1000};

	if (report_cache_put(c, st, table, agent, &r, &err) != ST_OK)
		fail_msg("report_cache_put %s/%s: %s", table, agent, err.buf);
	buf_release(&err);
	/* "Oldest" is by the store's millisecond stamp: keep them apart. */
	nanosleep(&ms, NULL);
}

/* The keys of `list`, joined by spaces. */
static void keys(const struct store_doc_list *list, struct buf *out)
{
	size_t i;

	buf_reset(out);
	for (i = 0; i < list->nr; i++)
		(void)buf_addf(out, "%s%s", i ? " " : "", list->items[i].key);
}

static void stored_keys(struct store *st, struct buf *out)
{
	struct store_doc_list list;
	struct buf err = BUF_INIT;

	store_doc_list_init(&list);
	if (store_doc_list(st, REPORT_KIND, "", 100, &list, &err) != ST_OK)
		fail_msg("store_doc_list: %s", err.buf);
	keys(&list, out);
	store_doc_list_release(&list);
	buf_release(&err);
}

static void cached_keys(struct report_cache *c, struct store *st,
			struct buf *out)
{
	struct store_doc_list list;
	struct buf err = BUF_INIT;

	store_doc_list_init(&list);
	if (report_cache_list(c, st, &list, &err) != ST_OK)
		fail_msg("report_cache_list: %s", err.buf);
	keys(&list, out);
	store_doc_list_release(&list);
	buf_release(&err);
}

/* The store operations `op` counted so far (all stores of this process). */
static unsigned long long store_ops(const char *op)
{
	struct buf text = BUF_INIT, needle = BUF_INIT;
	unsigned long long n = 0;
	const char *p;

	metrics_write(METRICS_SERVE, &text);
	(void)buf_addf(
		&needle,
		"lambda_registry_store_operations_total{backend=\"sqlite\","
		"op=\"%s\",result=\"ok\"} ",
		op);
	p = strstr(text.buf, needle.buf);
	if (p)
		n = strtoull(p + needle.len, NULL, 10);
	buf_release(&text);
	buf_release(&needle);
	return n;
}

static void test_caps(void **state)
{
	struct store *st = open_store();
	struct report_cache *c = report_cache_new(4, 2);
	struct buf got = BUF_INIT;

	(void)state;
	cached_keys(c, st, &got);
	assert_string_equal(got.buf, "");
	put(c, st, "t1", "a1", 1);
	put(c, st, "t1", "a2", 1);
	/* t1 is at its cap of 2: its oldest (a1) makes room. */
	put(c, st, "t1", "a3", 1);
	stored_keys(st, &got);
	assert_string_equal(got.buf, "t1/a2 t1/a3");
	cached_keys(c, st, &got);
	assert_string_equal(got.buf, "t1/a2 t1/a3");
	/* An agent reporting again displaces nobody, and becomes newest. */
	put(c, st, "t1", "a2", 2);
	put(c, st, "t2", "b1", 1);
	put(c, st, "t2", "b2", 1);
	stored_keys(st, &got);
	assert_string_equal(got.buf, "t1/a2 t1/a3 t2/b1 t2/b2");
	/* All 4 are kept: the oldest of all (t1/a3) goes. */
	put(c, st, "t3", "c1", 1);
	stored_keys(st, &got);
	assert_string_equal(got.buf, "t1/a2 t2/b1 t2/b2 t3/c1");
	cached_keys(c, st, &got);
	assert_string_equal(got.buf, "t1/a2 t2/b1 t2/b2 t3/c1");
	buf_release(&got);
	report_cache_free(c);
	store_close(st);
}

static void test_memory_and_other_process(void **state)
{
	struct store *st = open_store(), *other_st = open_store();
	struct report_cache *c = report_cache_new(8, 8);
	struct report_cache *other = report_cache_new(8, 8);
	struct store_doc_list list;
	struct buf got = BUF_INIT, err = BUF_INIT;
	unsigned long long lists, gens;
	uint64_t t0;
	int i;

	(void)state;
	put(c, st, "t", "mine", 7);
	cached_keys(c, st, &got);
	t0 = clock_now_ms();
	assert_string_equal(got.buf, "t/mine");
	/* Views right after need no store operation at all (checked only
	 * while they all ran within REPORT_FRESH_MS of the check). */
	lists = store_ops("doc_list");
	gens = store_ops("doc_generation");
	for (i = 0; i < 50; i++) {
		cached_keys(c, st, &got);
		assert_string_equal(got.buf, "t/mine");
	}
	if (clock_now_ms() - t0 < REPORT_FRESH_MS) {
		assert_int_equal(store_ops("doc_list"), lists);
		assert_int_equal(store_ops("doc_generation"), gens);
	}
	/* The report read back is what was put, with its stamp. */
	store_doc_list_init(&list);
	assert_int_equal(report_cache_list(c, st, &list, &err), ST_OK);
	assert_int_equal(list.nr, 1);
	assert_non_null(strstr(list.items[0].value, "\"appliedIndex\":7"));
	assert_non_null(strstr(list.items[0].value, "\"receivedAt\":"));
	store_doc_list_release(&list);
	/* Another process's report shows within REPORT_FRESH_MS. */
	put(other, other_st, "t", "theirs", 3);
	t0 = clock_now_ms();
	do {
		cached_keys(c, st, &got);
		if (!strcmp(got.buf, "t/mine t/theirs"))
			break;
		usleep(20 * 1000);
	} while (clock_now_ms() - t0 < 30 * 1000);
	assert_string_equal(got.buf, "t/mine t/theirs");
	assert_true(store_ops("doc_list") > lists);
	buf_release(&got);
	buf_release(&err);
	report_cache_free(c);
	report_cache_free(other);
	store_close(st);
	store_close(other_st);
}

static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"{}",
		"{\"appliedIndex\":-1,\"method\":\"reload\",\"result\":\"ok\","
		"\"haproxyVersion\":\"2.6\",\"up\":1,\"down\":0}",
		"{\"appliedIndex\":1,\"method\":\"push\",\"result\":\"ok\","
		"\"haproxyVersion\":\"2.6\",\"up\":1,\"down\":0}",
		"{\"appliedIndex\":1,\"method\":\"reload\",\"result\":\"<b>\","
		"\"haproxyVersion\":\"2.6\",\"up\":1,\"down\":0}",
	};
	static const char *const fields[] = {"appliedIndex", "appliedIndex",
					     "method", "result"};
	struct buf err = BUF_INIT, field = BUF_INIT;
	struct report r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(
			report_parse(bad[i], strlen(bad[i]), &r, &err, &field),
			ST_INVALID);
		assert_string_equal(field.buf, fields[i]);
	}
	buf_release(&err);
	buf_release(&field);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_caps, fresh_store),
		cmocka_unit_test_setup(test_memory_and_other_process,
				       fresh_store),
		cmocka_unit_test(test_parse_refuses),
	};
	char cmd[512];
	int rc;

	if (!mkdtemp(dir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	return rc;
}
