/*
 * Changes per hour in the store: counted per table and in total, buckets
 * older than a day dropped from the document, and concurrent counters on
 * two handles (two processes) losing nothing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "changes.h"
#include "store/store.h"

#define HOUR 3600000LL

static char dir[] = "/tmp/lr-changes-XXXXXX";
static char spec[256];
static int seq;
/* An hour boundary plus a bit, so that "now" is fixed and known. */
static const int64_t now = 490000LL * HOUR + 1234;

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
	snprintf(spec, sizeof(spec), "sqlite:%s/c%d.db", dir, seq++);
	return 0;
}

static void note(struct store *st, const char *table, int64_t at)
{
	struct buf err = BUF_INIT;

	if (changes_note(st, table, at, 1, &err) != ST_OK)
		fail_msg("changes_note %s: %s", table, err.buf);
	buf_release(&err);
}

static void hours_of(struct store *st, const char *table,
		     uint64_t out[CHANGES_HOURS])
{
	struct buf err = BUF_INIT;

	if (changes_per_hour(st, table, now, out, &err) != ST_OK)
		fail_msg("changes_per_hour: %s", err.buf);
	buf_release(&err);
}

static void test_hours(void **state)
{
	struct store *st = open_store();
	uint64_t h[CHANGES_HOURS];
	struct store_doc doc = {0};
	struct buf err = BUF_INIT;
	int i;

	(void)state;
	hours_of(st, NULL, h);
	for (i = 0; i < CHANGES_HOURS; i++)
		assert_int_equal(h[i], 0);
	note(st, "t1", now - 30 * HOUR); /* older than a day */
	note(st, "t1", now - 23 * HOUR); /* the first hour shown */
	for (i = 0; i < 3; i++)
		note(st, "t1", now);
	note(st, "t2", now - HOUR);
	note(st, "t2", now);
	hours_of(st, "t1", h);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[CHANGES_HOURS - 1], 3);
	assert_int_equal(h[CHANGES_HOURS - 2], 0);
	hours_of(st, NULL, h);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[CHANGES_HOURS - 2], 1);
	assert_int_equal(h[CHANGES_HOURS - 1], 4);
	hours_of(st, "never", h);
	assert_int_equal(h[CHANGES_HOURS - 1], 0);
	/* The document keeps only the hours still shown. */
	assert_int_equal(store_doc_get(st, CHANGES_KIND, "t1", &doc, &err),
			 ST_OK);
	assert_string_equal(doc.value, "{\"hours\":[[489977,1],[490000,3]]}");
	store_doc_release(&doc);
	/* A day later every bucket has aged out of a new write. */
	note(st, "t1", now + 24 * HOUR);
	assert_int_equal(store_doc_get(st, CHANGES_KIND, "t1", &doc, &err),
			 ST_OK);
	assert_string_equal(doc.value, "{\"hours\":[[490024,1]]}");
	store_doc_release(&doc);
	buf_release(&err);
	store_close(st);
}

#define PER_THREAD 40

static void *counter(void *arg)
{
	struct store *st = open_store();
	int i;

	(void)arg;
	for (i = 0; i < PER_THREAD; i++)
		note(st, "busy", now);
	store_close(st);
	return NULL;
}

static void test_concurrent(void **state)
{
	pthread_t th[3];
	uint64_t h[CHANGES_HOURS];
	struct store *st;
	int i;

	(void)state;
	st = open_store();
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, counter, NULL),
				 0);
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	hours_of(st, "busy", h);
	assert_int_equal(h[CHANGES_HOURS - 1], 3 * PER_THREAD);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hours, fresh_store),
		cmocka_unit_test_setup(test_concurrent, fresh_store),
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
