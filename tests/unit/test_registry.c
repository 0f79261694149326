/*
 * Whole calls through registry_call() on a real SQLite file: the faults of
 * the first version (spec, last section), atomic rejection, and a cache that
 * stays right when another process writes the same table.
 */
#include <pthread.h>
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
#include "registry.h"
#include "store/store.h"

static char dir[] = "/tmp/lr-registry-XXXXXX";
static char spec[256];
static int seq;

static struct registry *open_registry(void)
{
	struct registry_options opts = {spec, {.frontend_bind = ":80"}};
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

/* Service settings go to the store and the dump; a call with a bad one is
 * refused, naming it, and changes nothing; a later candidate without them
 * puts the defaults back. */
static void test_service_settings_stored(void **state)
{
	static const char good[] =
		"{\"table\":\"tblo\",\"running\":[{\"serviceName\":\"a\",\"id\":"
		"\"a1\",\"ip\":\"10.0.0.1\"}],\"candidates\":[{\"serviceName\":"
		"\"a\",\"port\":80,\"predicate\":\"a.example\",\"balance\":"
		"\"leastconn\",\"healthCheck\":{\"path\":\"/h\",\"interval\":"
		"\"2000ms\"},\"containers\":[{\"id\":\"a1\",\"ip\":\"10.0.0.1\","
		"\"weight\":0}]}]}";
	static const char bad[] =
		"{\"table\":\"tblo\",\"running\":[{\"serviceName\":\"a\",\"id\":"
		"\"a1\",\"ip\":\"10.0.0.1\"}],\"candidates\":[{\"serviceName\":"
		"\"a\",\"port\":80,\"predicate\":\"a.example\",\"healthCheck\":{"
		"\"path\":\"/h\",\"interval\":\"2 s\"}}]}";
	static const char plain[] =
		"{\"table\":\"tblo\",\"running\":[{\"serviceName\":\"a\",\"id\":"
		"\"a1\",\"ip\":\"10.0.0.1\"}],\"candidates\":[{\"serviceName\":"
		"\"a\",\"port\":80,\"predicate\":\"a.example\",\"containers\":[{"
		"\"id\":\"a1\",\"ip\":\"10.0.0.1\"}]}]}";
	static const char running[] =
		"{\"table\":\"tblo\",\"running\":[{\"serviceName\":\"a\",\"id\":"
		"\"a1\",\"ip\":\"10.0.0.1\"}]}";
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT, field = BUF_INIT, before = BUF_INIT,
		   after = BUF_INIT;

	(void)state;
	assert_int_equal(call(reg, good, &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, "    balance leastconn\n"));
	assert_non_null(strstr(cfg.buf, " check inter 2s weight 0\n"));
	dump(reg, "tblo", &before);
	assert_non_null(strstr(before.buf,
			       "\"balance\":\"leastconn\",\"healthCheck\":{"
			       "\"interval\":\"2s\",\"path\":\"/h\"}"));
	assert_non_null(strstr(before.buf, "\"weight\":0"));

	/* A running-only call keeps them, weight included. */
	assert_int_equal(call(reg, running, &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, " check inter 2s weight 0\n"));

	assert_int_equal(call(reg, bad, &cfg, &field), ST_INVALID);
	assert_string_equal(field.buf, "candidates[0].healthCheck.interval");
	dump(reg, "tblo", &after);
	assert_string_equal(before.buf, after.buf);

	assert_int_equal(call(reg, plain, &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, "    balance roundrobin\n"));
	assert_null(strstr(cfg.buf, "httpchk"));
	assert_null(strstr(cfg.buf, "weight"));
	dump(reg, "tblo", &after);
	assert_null(strstr(after.buf, "balance"));
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

/* A config over the cap is ST_TOO_LARGE with a reason and stores nothing,
 * so the table stays usable (it used to be committed before the render
 * aborted, and then crashed every later call). */
static void test_config_over_cap_stores_nothing(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT, before = BUF_INIT, after = BUF_INIT;
	struct buf json = BUF_INIT, small = BUF_INIT;
	struct registry_result res;
	struct buf err = BUF_INIT, field = BUF_INIT;
	int i;

	(void)state;
	registry_set_max_config(reg, 4096);
	(void)buf_addstr(&small, "{\"table\":\"big1\",\"running\":[{"
				 "\"serviceName\":\"a\",\"id\":\"a1\","
				 "\"ip\":\"10.0.0.1\"}],\"candidates\":[{"
				 "\"serviceName\":\"a\",\"port\":80,"
				 "\"predicate\":\"a.example\",\"containers\":"
				 "[{\"id\":\"a1\",\"ip\":\"10.0.0.1\"}]}]}");
	assert_int_equal(call(reg, small.buf, &cfg, NULL), ST_OK);
	dump(reg, "big1", &before);
	(void)buf_addstr(&json, "{\"table\":\"big1\",\"running\":[");
	for (i = 0; i < 100; i++)
		(void)buf_addf(&json,
			       "%s{\"serviceName\":\"s%03d\",\"id\":\"c%03d\","
			       "\"ip\":\"10.0.1.%d\"}",
			       i ? "," : "", i, i, i + 1);
	(void)buf_addstr(&json, "],\"candidates\":[");
	for (i = 0; i < 100; i++)
		(void)buf_addf(&json,
			       "%s{\"serviceName\":\"s%03d\",\"port\":80,"
			       "\"predicate\":\"s%03d.example\"}",
			       i ? "," : "", i, i);
	(void)buf_addstr(&json, "]}");
	registry_result_init(&res);
	assert_int_equal(registry_call(reg, json.buf, json.len,
				       REGISTRY_SHARE_CONFIG, &res, &err,
				       &field),
			 ST_TOO_LARGE);
	assert_non_null(strstr(err.buf, "larger than 4096 bytes"));
	assert_null(res.share);
	registry_result_release(&res);
	dump(reg, "big1", &after);
	assert_string_equal(before.buf, after.buf);
	/* The table still answers, from the cache and from a fresh registry. */
	assert_int_equal(call(reg, small.buf, &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, "\nbackend a\n"));
	registry_free(reg);
	reg = open_registry();
	registry_set_max_config(reg, 4096);
	assert_int_equal(call(reg, small.buf, &cfg, NULL), ST_OK);
	assert_null(strstr(cfg.buf, "backend s0"));
	/* A new table over the cap is not created either. */
	memcpy(strstr(json.buf, "big1"), "big2", 4);
	assert_int_equal(call(reg, json.buf, &cfg, NULL), ST_TOO_LARGE);
	assert_int_equal(cfg.len, 0);
	dump(reg, "big2", &after);
	assert_string_equal(after.buf, "{\"table\":\"big2\",\"services\":[]}");
	buf_release(&cfg);
	buf_release(&before);
	buf_release(&after);
	buf_release(&json);
	buf_release(&small);
	buf_release(&err);
	buf_release(&field);
	registry_free(reg);
}

/* An unchanged call answers from a read while another process holds the
 * write lock, even right after a call that wrote (it used to start with the
 * write lock then, wait 10 s and fail). */
static void test_unchanged_call_does_not_wait_for_writers(void **state)
{
	struct registry *reg = open_registry();
	struct buf cfg = BUF_INIT, err = BUF_INIT;
	struct store *other = NULL;
	const char *json = "{\"table\":\"tbl9\",\"running\":[{"
			   "\"serviceName\":\"a\",\"id\":\"a1\",\"ip\":"
			   "\"10.0.0.1\"}],\"candidates\":[{\"serviceName\":"
			   "\"a\",\"port\":80,\"predicate\":\"a.example\","
			   "\"containers\":[{\"id\":\"a1\",\"ip\":"
			   "\"10.0.0.1\"}]}]}";
	struct timespec t0, t1;
	double took;

	(void)state;
	assert_int_equal(call(reg, json, &cfg, NULL), ST_OK);
	if (store_open(spec, &other, &err) != ST_OK)
		fail_msg("store_open: %s", err.buf);
	assert_int_equal(store_begin(other, "elsewhere", 1, &err), ST_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(call(reg, json, &cfg, NULL), ST_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(took < 1.0);
	assert_non_null(strstr(cfg.buf, "\nbackend a\n"));
	/* And from a registry with a cold cache. */
	{
		struct registry *cold = open_registry();

		assert_int_equal(call(cold, json, &cfg, NULL), ST_OK);
		assert_non_null(strstr(cfg.buf, "\nbackend a\n"));
		registry_free(cold);
	}
	assert_int_equal(registry_ping(reg, &err), ST_OK);
	store_rollback(other);
	store_close(other);
	buf_release(&cfg);
	buf_release(&err);
	registry_free(reg);
}

/* The per-table map stays bounded: a table with nothing stored leaves no
 * entry behind, and at most REGISTRY_MAX_CACHED (4096) tables stay cached.
 * (200,000 calls with new names used to take the RSS from 9 to 82 MB.) */
static void test_table_map_is_bounded(void **state)
{
	struct registry *reg = open_registry();
	struct registry_stats stats;
	struct buf json = BUF_INIT, cfg = BUF_INIT;
	int i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		buf_reset(&json);
		(void)buf_addf(&json,
			       "{\"table\":\"empty-%06d\",\"running\":[]}", i);
		assert_int_equal(call(reg, json.buf, NULL, NULL), ST_OK);
	}
	registry_get_stats(reg, &stats);
	assert_int_equal(stats.tables, 0);
	assert_int_equal(stats.cached, 0);
	for (i = 0; i < 4200; i++) {
		buf_reset(&json);
		(void)buf_addf(&json,
			       "{\"table\":\"full-%06d\",\"running\":[],"
			       "\"candidates\":[{\"serviceName\":\"a\","
			       "\"port\":80,\"predicate\":\"a.example\"}]}",
			       i);
		assert_int_equal(call(reg, json.buf, NULL, NULL), ST_OK);
	}
	registry_get_stats(reg, &stats);
	assert_int_equal(stats.cached, 4096);
	assert_int_equal(stats.tables, 4096);
	assert_true(stats.buckets >= 4096);
	/* The oldest went; the same call still answers, from the store. */
	buf_reset(&json);
	(void)buf_addstr(&json, "{\"table\":\"full-000000\",\"running\":[],"
				"\"candidates\":[{\"serviceName\":\"a\","
				"\"port\":80,\"predicate\":\"a.example\"}]}");
	assert_int_equal(call(reg, json.buf, &cfg, NULL), ST_OK);
	assert_non_null(strstr(cfg.buf, "\nbackend a\n"));
	registry_get_stats(reg, &stats);
	assert_int_equal(stats.cached, 4096);
	buf_release(&json);
	buf_release(&cfg);
	registry_free(reg);
}

struct worker {
	struct registry *reg;
	int id, failures;
};

/* Each thread writes its own tables, then calls them all again unchanged
 * and checks the answer, while the others' fills evict from the LRU. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct buf json = BUF_INIT, cfg = BUF_INIT, want = BUF_INIT;
	int round, i;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < 1100; i++) {
			buf_reset(&json);
			(void)buf_addf(
				&json,
				"{\"table\":\"w%d-%04d\",\"running\":[{"
				"\"serviceName\":\"s%d\",\"id\":\"c%d\","
				"\"ip\":\"10.0.%d.%d\"}],\"candidates\":[{"
				"\"serviceName\":\"s%d\",\"port\":80,"
				"\"predicate\":\"s.example\",\"containers\":"
				"[{\"id\":\"c%d\",\"ip\":\"10.0.%d.%d\"}]}]}",
				w->id, i, i, i, w->id, i % 250 + 1, i, i, w->id,
				i % 250 + 1);
			buf_reset(&want);
			(void)buf_addf(&want,
				       "    server c%d 10.0.%d.%d:80 check\n",
				       i, w->id, i % 250 + 1);
			if (call(w->reg, json.buf, &cfg, NULL) != ST_OK ||
			    !strstr(cfg.buf, want.buf))
				w->failures++;
		}
	}
	buf_release(&json);
	buf_release(&cfg);
	buf_release(&want);
	return NULL;
}

static void test_concurrent_tables(void **state)
{
	struct registry *reg = open_registry();
	struct worker w[4];
	pthread_t th[4];
	struct registry_stats stats;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		w[i].reg = reg;
		w[i].id = i;
		w[i].failures = 0;
		assert_int_equal(
			pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	registry_get_stats(reg, &stats);
	assert_int_equal(stats.cached, 4096);
	assert_int_equal(stats.tables, 4096);
	registry_free(reg);
}

static void digest_of(const char *s, size_t piece, unsigned char *out)
{
	struct registry_digest *d = registry_digest_new();
	size_t len = strlen(s), off;

	for (off = 0; off < len; off += piece)
		registry_digest_add(d, s + off,
				    len - off < piece ? len - off : piece);
	registry_digest_final(d, out);
}

static void *digest_thread(void *out)
{
	digest_of("{\"table\":\"a\"}", 3, out);
	return NULL;
}

/* A digest's state is kept for the thread's next one: equal bodies must
 * still give equal digests, whatever came before on the thread. */
static void test_digest_does_not_depend_on_history(void **state)
{
	const char *body = "{\"table\":\"a\"}";
	unsigned char first[REGISTRY_DIGEST_LEN], d[REGISTRY_DIGEST_LEN];
	struct registry_digest *a, *b;
	pthread_t th;

	(void)state;
	digest_of(body, 64, first);
	digest_of("{\"table\":\"b\"}", 64, d);
	assert_memory_not_equal(first, d, sizeof(d));
	digest_of(body, 1, d);
	assert_memory_equal(first, d, sizeof(d));

	/* Two at once: one takes the kept state, the other a fresh copy. */
	a = registry_digest_new();
	b = registry_digest_new();
	registry_digest_add(a, body, strlen(body));
	registry_digest_add(b, body, 5);
	registry_digest_add(b, body + 5, strlen(body) - 5);
	registry_digest_final(b, d);
	assert_memory_equal(first, d, sizeof(d));
	registry_digest_final(a, d);
	assert_memory_equal(first, d, sizeof(d));

	/* A digest given up halfway leaves nothing behind. */
	a = registry_digest_new();
	registry_digest_add(a, body, 4);
	registry_digest_free(a);
	digest_of(body, 7, d);
	assert_memory_equal(first, d, sizeof(d));

	assert_int_equal(pthread_create(&th, NULL, digest_thread, d), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_memory_equal(first, d, sizeof(d));
}

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
		cmocka_unit_test_setup(test_service_settings_stored,
				       fresh_store),
		cmocka_unit_test_setup(test_unchanged_call_writes_nothing,
				       fresh_store),
		cmocka_unit_test_setup(test_cache_sees_other_writers,
				       fresh_store),
		cmocka_unit_test_setup(test_config_over_cap_stores_nothing,
				       fresh_store),
		cmocka_unit_test_setup(
			test_unchanged_call_does_not_wait_for_writers,
			fresh_store),
		cmocka_unit_test_setup(test_table_map_is_bounded, fresh_store),
		cmocka_unit_test_setup(test_concurrent_tables, fresh_store),
		cmocka_unit_test(test_digest_does_not_depend_on_history),
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
