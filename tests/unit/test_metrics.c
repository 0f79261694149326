/* Metrics: exact counts under threads, histogram buckets, the table cap,
 * label escaping, recent events; the rejection rules and the UI's token
 * parsing that feed them. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "payload.h"
#include "service.h"
#include "ui.h"

#define THREADS	   4
#define PER_THREAD 100000

static void *bump(void *arg)
{
	const char *route = arg;
	int i;

	for (i = 0; i < PER_THREAD; i++)
		metrics_http_request(route, 200 + (unsigned)(i % 2), 10);
	return NULL;
}

/* The value of the line that starts with `prefix` in `text`, or -1. */
static double line_value(const char *text, const char *prefix)
{
	const char *p = text;
	size_t len = strlen(prefix);

	while (p && *p) {
		if (!strncmp(p, prefix, len) && p[len] == ' ')
			return strtod(p + len + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static void test_threads(void **state)
{
	pthread_t t[THREADS];
	struct buf out = BUF_INIT;
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, bump,
						(void *)"/unit/{table}"),
				 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	metrics_write(METRICS_SERVE, &out);
	assert_true(line_value(out.buf,
			       "lambda_registry_http_requests_total{"
			       "route=\"/unit/{table}\",code=\"200\"}") ==
		    THREADS * PER_THREAD / 2);
	assert_true(line_value(out.buf,
			       "lambda_registry_http_requests_total{"
			       "route=\"/unit/{table}\",code=\"201\"}") ==
		    THREADS * PER_THREAD / 2);
	assert_true(line_value(out.buf,
			       "lambda_registry_http_request_duration_seconds_"
			       "count{route=\"/unit/{table}\"}") ==
		    THREADS * PER_THREAD);
	buf_release(&out);
}

static void test_histogram(void **state)
{
	struct buf out = BUF_INIT;
	const char *r = "/unit/histogram";

	(void)state;
	metrics_http_request(r, 200, 50);
	metrics_http_request(r, 200, 100); /* le is inclusive */
	metrics_http_request(r, 200, 101);
	metrics_http_request(r, 200, 20000000);
	metrics_write(METRICS_SERVE, &out);
#define B(le)                                                                  \
	line_value(out.buf, "lambda_registry_http_request_duration_seconds_"   \
			    "bucket{route=\"/unit/histogram\",le=\"" le "\"}")
	assert_true(B("0.0001") == 2);
	assert_true(B("0.00025") == 3);
	assert_true(B("10") == 3);
	assert_true(B("+Inf") == 4);
#undef B
	assert_true(line_value(out.buf,
			       "lambda_registry_http_request_duration_seconds_"
			       "sum{route=\"/unit/histogram\"}") == 20.000251);
	buf_release(&out);
}

static void test_escaping_and_order(void **state)
{
	struct buf out = BUF_INIT;
	const char *help, *type, *a, *b;

	(void)state;
	metrics_http_request("/a\"b\\c\nd", 404, 1);
	metrics_write(METRICS_SERVE, &out);
	assert_non_null(strstr(
		out.buf, "{route=\"/a\\\"b\\\\c\\nd\",code=\"404\"} 1\n"));
	/* HELP then TYPE, families sorted by name. */
	help = strstr(out.buf, "# HELP lambda_registry_cache_hits_total ");
	type = strstr(out.buf,
		      "# TYPE lambda_registry_cache_hits_total counter");
	assert_non_null(help);
	assert_true(type > help);
	a = strstr(out.buf, "# HELP lambda_registry_build_info");
	b = strstr(out.buf, "# HELP process_start_time_seconds");
	assert_true(a && b && a < b);
	assert_null(strstr(out.buf, "lambda_registry_agent_applies_total"));
	buf_release(&out);
	metrics_write(METRICS_AGENT, &out);
	assert_non_null(strstr(out.buf, "lambda_registry_agent_applies_total"));
	assert_null(strstr(out.buf, "lambda_registry_http_requests_total"));
	buf_release(&out);
}

static void test_table_cap(void **state)
{
	struct service_list list;
	struct metrics_table *tables;
	struct buf out = BUF_INIT;
	char name[32];
	size_t nr, i;
	double dropped;

	(void)state;
	service_list_init(&list);
	for (i = 0; i < METRICS_MAX_TABLES + 5; i++) {
		(void)snprintf(name, sizeof(name), "cap-%05zu", i);
		metrics_table_services(name, i, &list);
	}
	tables = metrics_tables(&nr);
	assert_int_equal(nr, METRICS_MAX_TABLES);
	assert_string_equal(tables[0].table, "cap-00000");
	assert_int_equal(tables[7].version, 7);
	metrics_tables_free(tables, nr);
	metrics_write(METRICS_SERVE, &out);
	dropped = line_value(out.buf,
			     "lambda_registry_metrics_series_dropped_total");
	/* Four gauges per table left out. */
	assert_true(dropped == 5 * 4);
	assert_null(strstr(out.buf, "cap-01000"));
	buf_release(&out);
}

static void test_recent(void **state)
{
	struct metrics_rejection *r =
		calloc(METRICS_MAX_REJECTIONS, sizeof(*r));
	char field[32];
	size_t i;

	(void)state;
	for (i = 0; i < METRICS_MAX_REJECTIONS + 5; i++) {
		(void)snprintf(field, sizeof(field), "f%zu", i);
		metrics_note_rejection("t1", field, "json");
	}
	assert_int_equal(metrics_recent_rejections(r, METRICS_MAX_REJECTIONS),
			 METRICS_MAX_REJECTIONS);
	assert_string_equal(r[0].field, "f104");
	assert_string_equal(r[METRICS_MAX_REJECTIONS - 1].field, "f5");
	free(r);
}

static void test_reasons(void **state)
{
	(void)state;
	assert_string_equal(payload_reject_reason(""), "json");
	assert_string_equal(payload_reject_reason(NULL), "json");
	assert_string_equal(payload_reject_reason("table"), "table");
	assert_string_equal(
		payload_reject_reason("candidates[12].containers[0].ip"),
		"candidates[].containers[].ip");
	assert_string_equal(payload_reject_reason("running[3].id"),
			    "running[].id");
	assert_string_equal(
		payload_reject_reason("candidates[0].healthCheck.<script>"),
		"other");
}

static void test_tokens(void **state)
{
	struct buf b = BUF_INIT;
	const char form[] = "x=1&token=lr_ABC_d-e_f&y=2";

	(void)state;
	assert_int_equal(ui_login_token(form, sizeof(form) - 1, &b), 0);
	assert_string_equal(b.buf, "lr_ABC_d-e_f");
	assert_int_equal(ui_login_token("token=a%0Db", 11, &b), -1);
	assert_int_equal(ui_login_token("token=", 6, &b), -1);
	assert_int_equal(ui_login_token("tokens=abc", 10, &b), -1);
	assert_int_equal(ui_cookie_token("a=b; lr_token=lr_X_y; c=d", &b), 0);
	assert_string_equal(b.buf, "Bearer lr_X_y");
	assert_int_equal(ui_cookie_token("lr_token=a\r\nX: y", &b), -1);
	assert_int_equal(ui_cookie_token(NULL, &b), -1);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_escaping_and_order),
		cmocka_unit_test(test_table_cap),
		cmocka_unit_test(test_recent),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_tokens),
	};

	metrics_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
