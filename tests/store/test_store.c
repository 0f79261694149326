/*
 * The store conformance suite: every backend must pass it. The backend comes
 * from LR_TEST_STORE ("sqlite", "dynamodb" with the AWS_* variables set, or
 * "postgres" with the conninfo in LR_TEST_PG).
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
#include "service.h"
#include "store/store.h"
#include "xalloc.h"

static char store_spec[512];
static char table_a[64], table_b[64];

static struct store *open_store(void)
{
	struct buf err = BUF_INIT;
	struct store *st = NULL;
	enum status ret = store_open(store_spec, &st, &err);

	if (ret != ST_OK)
		fail_msg("store_open(%s): %s", store_spec, err.buf);
	buf_release(&err);
	return st;
}

static void make_service(struct service *svc, const char *name, unsigned port,
			 const char *cookie, int nr_containers)
{
	int i;

	memset(svc, 0, sizeof(*svc));
	svc->name = xstrdup(name);
	svc->port = port;
	svc->mode = port % 2 ? CONFIG_MODE_PATH : CONFIG_MODE_HOST;
	svc->predicate = xstrdup(port % 2 ? "api/v1" : "www.example.com");
	svc->cookie = cookie ? xstrdup(cookie) : NULL;
	svc->created_at = 1700000000123;
	svc->updated_at = 1700000000456;
	for (i = 0; i < nr_containers; i++) {
		char id[32], ip[64];

		snprintf(id, sizeof(id), "c%02d", nr_containers - i);
		if (i % 2)
			snprintf(ip, sizeof(ip), "2001:db8::%x", i + 1);
		else
			snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 200,
				 i % 200 + 1);
		service_put_container(svc, id, ip);
	}
}

static void load_table(struct store *st, const char *table,
		       struct service_list *out)
{
	struct buf err = BUF_INIT;

	service_list_init(out);
	assert_int_equal(store_begin(st, table, 0, &err), ST_OK);
	if (store_load(st, out, &err) != ST_OK)
		fail_msg("load: %s", err.buf);
	store_rollback(st);
	buf_release(&err);
}

static void put_one(struct store *st, const char *table, struct service *svc)
{
	struct buf err = BUF_INIT;

	assert_int_equal(store_begin(st, table, 1, &err), ST_OK);
	if (store_put(st, svc, &err) != ST_OK)
		fail_msg("put: %s", err.buf);
	if (store_commit(st, &err) != ST_OK)
		fail_msg("commit: %s", err.buf);
	buf_release(&err);
}

static void test_empty_table(void **state)
{
	struct store *st = open_store();
	struct service_list list;
	struct buf err = BUF_INIT;

	(void)state;
	load_table(st, "never-written-table", &list);
	assert_int_equal(list.nr, 0);
	if (store_caps(st) & STORE_CAP_VERSION) {
		uint64_t v = 42;

		assert_int_equal(
			store_begin(st, "never-written-table", 0, &err), ST_OK);
		assert_int_equal(store_version(st, &v, &err), ST_OK);
		assert_int_equal(v, 0);
		store_rollback(st);
	}
	assert_int_equal(store_ping(st, &err), ST_OK);
	service_list_release(&list);
	buf_release(&err);
	store_close(st);
}

static void test_put_load_roundtrip(void **state)
{
	struct store *st = open_store();
	struct service a, b;
	struct service_list list;

	(void)state;
	make_service(&a, "web", 8080, "JSESSIONID", 5);
	make_service(&b, "api.v2:x-1", 9001, NULL, 2);
	put_one(st, table_a, &b);
	put_one(st, table_a, &a);
	load_table(st, table_a, &list);
	assert_int_equal(list.nr, 2);
	/* Sorted by name, every field and every container kept. */
	assert_string_equal(list.items[0].name, "api.v2:x-1");
	assert_true(service_equal(&list.items[0], &b));
	assert_null(list.items[0].cookie);
	assert_int_equal(list.items[0].mode, CONFIG_MODE_PATH);
	assert_true(service_equal(&list.items[1], &a));
	assert_string_equal(list.items[1].cookie, "JSESSIONID");
	assert_string_equal(list.items[1].containers[0].id, "c01");
	assert_int_equal(list.items[1].created_at, a.created_at);
	assert_int_equal(list.items[1].updated_at, a.updated_at);
	service_list_release(&list);
	service_release(&a);
	service_release(&b);
	store_close(st);
}

static void test_replace_and_remove(void **state)
{
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	struct service a, a2;
	struct service_list list;

	(void)state;
	make_service(&a, "svc", 80, NULL, 1);
	put_one(st, table_b, &a);
	load_table(st, table_b, &list);
	assert_int_equal(list.nr, 1);

	/* Replace with what was loaded (carrying its version). */
	make_service(&a2, "svc", 81, "SID", 3);
	a2.version = list.items[0].version;
	service_list_release(&list);
	put_one(st, table_b, &a2);
	load_table(st, table_b, &list);
	assert_int_equal(list.nr, 1);
	assert_true(service_equal(&list.items[0], &a2));

	assert_int_equal(store_begin(st, table_b, 1, &err), ST_OK);
	assert_int_equal(store_remove(st, &list.items[0], &err), ST_OK);
	assert_int_equal(store_commit(st, &err), ST_OK);
	service_list_release(&list);
	load_table(st, table_b, &list);
	assert_int_equal(list.nr, 0);

	service_list_release(&list);
	service_release(&a);
	service_release(&a2);
	buf_release(&err);
	store_close(st);
}

static void test_tables_are_separate(void **state)
{
	struct store *st = open_store();
	struct service x;
	struct service_list la, lb;
	char t1[80], t2[80];

	(void)state;
	snprintf(t1, sizeof(t1), "%s-one", table_a);
	snprintf(t2, sizeof(t2), "%s-two", table_a);
	make_service(&x, "shared-name", 80, NULL, 1);
	put_one(st, t1, &x);
	load_table(st, t1, &la);
	load_table(st, t2, &lb);
	assert_int_equal(la.nr, 1);
	assert_int_equal(lb.nr, 0);
	service_list_release(&la);
	service_list_release(&lb);
	service_release(&x);
	store_close(st);
}

static void test_version_changes_on_write_only(void **state)
{
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	uint64_t v0, v1, v2, v3;
	struct service x;
	char t[80];

	(void)state;
	if (!(store_caps(st) & STORE_CAP_VERSION)) {
		store_close(st);
		skip();
	}
	snprintf(t, sizeof(t), "%s-ver", table_a);
	assert_int_equal(store_begin(st, t, 0, &err), ST_OK);
	assert_int_equal(store_version(st, &v0, &err), ST_OK);
	assert_int_equal(store_commit(st, &err), ST_OK);

	make_service(&x, "v", 80, NULL, 1);
	assert_int_equal(store_begin(st, t, 1, &err), ST_OK);
	assert_int_equal(store_put(st, &x, &err), ST_OK);
	/* Inside the writing call, version() already gives the new version. */
	assert_int_equal(store_version(st, &v1, &err), ST_OK);
	assert_int_equal(store_commit(st, &err), ST_OK);
	assert_int_not_equal(v0, v1);

	assert_int_equal(store_begin(st, t, 0, &err), ST_OK);
	assert_int_equal(store_version(st, &v2, &err), ST_OK);
	assert_int_equal(store_commit(st, &err), ST_OK);
	assert_int_equal(v1, v2);

	/* A write seen from a second handle changes the version there too. */
	{
		struct store *other = open_store();

		assert_int_equal(store_begin(other, t, 1, &err), ST_OK);
		assert_int_equal(store_remove(other, &x, &err), ST_OK);
		assert_int_equal(store_commit(other, &err), ST_OK);
		store_close(other);
	}
	assert_int_equal(store_begin(st, t, 0, &err), ST_OK);
	assert_int_equal(store_version(st, &v3, &err), ST_OK);
	store_rollback(st);
	assert_int_not_equal(v2, v3);

	service_release(&x);
	buf_release(&err);
	store_close(st);
}

static void test_rollback_discards(void **state)
{
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	struct service_list list;
	struct service x;
	char t[80];

	(void)state;
	if (!(store_caps(st) & STORE_CAP_ATOMIC)) {
		store_close(st);
		skip();
	}
	snprintf(t, sizeof(t), "%s-rb", table_a);
	make_service(&x, "gone", 80, NULL, 1);
	assert_int_equal(store_begin(st, t, 1, &err), ST_OK);
	assert_int_equal(store_put(st, &x, &err), ST_OK);
	store_rollback(st);
	load_table(st, t, &list);
	assert_int_equal(list.nr, 0);
	service_list_release(&list);
	service_release(&x);
	buf_release(&err);
	store_close(st);
}

static void test_stale_write_conflicts(void **state)
{
	struct store *one = open_store(), *two;
	struct buf err = BUF_INIT;
	struct service_list l1, l2;
	struct service x;
	char t[80];

	(void)state;
	if (store_caps(one) & STORE_CAP_ATOMIC) {
		/* Atomic backends serialise writers instead (begin(write)). */
		store_close(one);
		skip();
	}
	two = open_store();
	snprintf(t, sizeof(t), "%s-cc", table_a);
	make_service(&x, "raced", 80, NULL, 1);
	put_one(one, t, &x);
	load_table(one, t, &l1);
	load_table(two, t, &l2);
	assert_int_equal(l1.nr, 1);
	assert_int_equal(l2.nr, 1);

	service_put_container(&l1.items[0], "extra1", "10.1.1.1");
	put_one(one, t, &l1.items[0]);

	/* The second writer still holds the old version: it must lose. */
	service_put_container(&l2.items[0], "extra2", "10.1.1.2");
	assert_int_equal(store_begin(two, t, 1, &err), ST_OK);
	assert_int_equal(store_put(two, &l2.items[0], &err), ST_CONFLICT);
	store_rollback(two);
	assert_int_equal(store_begin(two, t, 1, &err), ST_OK);
	assert_int_equal(store_remove(two, &l2.items[0], &err), ST_CONFLICT);
	store_rollback(two);

	service_list_release(&l1);
	service_list_release(&l2);
	load_table(two, t, &l1);
	assert_int_equal(l1.nr, 1);
	assert_non_null(service_find_container(&l1.items[0], "extra1"));
	assert_null(service_find_container(&l1.items[0], "extra2"));

	/* A new service that another writer created first also conflicts. */
	{
		struct service dup;

		make_service(&dup, "raced", 81, NULL, 1);
		assert_int_equal(store_begin(two, t, 1, &err), ST_OK);
		assert_int_equal(store_put(two, &dup, &err), ST_CONFLICT);
		store_rollback(two);
		service_release(&dup);
	}
	service_list_release(&l1);
	service_release(&x);
	buf_release(&err);
	store_close(one);
	store_close(two);
}

static void test_many_services(void **state)
{
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	struct service_list list;
	const int nr = 300;
	char t[80];
	int i;

	(void)state;
	snprintf(t, sizeof(t), "%s-many", table_a);
	assert_int_equal(store_begin(st, t, 1, &err), ST_OK);
	for (i = 0; i < nr; i++) {
		struct service s;
		char name[32];

		snprintf(name, sizeof(name), "svc-%04d", (i * 7919) % nr);
		make_service(&s, name, 80, "C", 20);
		if (store_put(st, &s, &err) != ST_OK)
			fail_msg("put %s: %s", name, err.buf);
		service_release(&s);
	}
	assert_int_equal(store_commit(st, &err), ST_OK);
	load_table(st, t, &list);
	assert_int_equal(list.nr, nr);
	for (i = 1; i < nr; i++)
		assert_true(strcmp(list.items[i - 1].name, list.items[i].name) <
			    0);
	assert_int_equal(list.items[nr - 1].nr_containers, 20);
	service_list_release(&list);
	buf_release(&err);
	store_close(st);
}

int main(void)
{
	const char *backend = getenv("LR_TEST_STORE");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_table),
		cmocka_unit_test(test_put_load_roundtrip),
		cmocka_unit_test(test_replace_and_remove),
		cmocka_unit_test(test_tables_are_separate),
		cmocka_unit_test(test_version_changes_on_write_only),
		cmocka_unit_test(test_rollback_discards),
		cmocka_unit_test(test_stale_write_conflicts),
		cmocka_unit_test(test_many_services),
	};
	char dir[] = "/tmp/lr-store-XXXXXX";
	int ret;

	if (!backend || !strcmp(backend, "sqlite")) {
		if (!mkdtemp(dir))
			return 1;
		snprintf(store_spec, sizeof(store_spec), "sqlite:%s/store.db",
			 dir);
	} else if (!strcmp(backend, "dynamodb")) {
		const char *prefix = getenv("LR_TEST_STORE_PREFIX");

		snprintf(store_spec, sizeof(store_spec), "dynamodb:%s",
			 prefix ? prefix : "lrtest-");
	} else if (!strcmp(backend, "postgres")) {
		const char *conninfo = getenv("LR_TEST_PG");

		snprintf(store_spec, sizeof(store_spec), "postgres:%s",
			 conninfo ? conninfo : "");
	} else {
		fprintf(stderr, "unknown LR_TEST_STORE '%s'\n", backend);
		return 1;
	}
	/* Fresh table names per run, so a shared server needs no cleanup. */
	snprintf(table_a, sizeof(table_a), "conf-a-%ld-%d", (long)time(NULL),
		 (int)getpid());
	snprintf(table_b, sizeof(table_b), "conf-b-%ld-%d", (long)time(NULL),
		 (int)getpid());
	ret = cmocka_run_group_tests_name(backend ? backend : "sqlite", tests,
					  NULL, NULL);
	if (!backend || !strcmp(backend, "sqlite")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			ret = ret ? ret : 1;
	}
	return ret;
}
