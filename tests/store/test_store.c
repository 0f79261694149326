/*
 * The store conformance suite: every backend must pass it. The backend comes
 * from LR_TEST_STORE ("sqlite", "dynamodb" with the AWS_* variables set, or
 * "postgres" with the conninfo in LR_TEST_PG).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "buf.h"
#include "service.h"
#include "store/store.h"
#include "xalloc.h"

static char store_spec[512];
static char sqlite_dir[] = "/tmp/lr-store-XXXXXX";
static char table_a[64], table_b[64];
static char kind_a[64], kind_b[64];

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

/* Every service option and container weight set, to non-default values. */
static void set_options(struct service *svc)
{
	size_t i;

	svc->opts.balance = BALANCE_SOURCE;
	svc->opts.cookie_mode = COOKIE_MODE_INSERT;
	svc->opts.check_path = xstrdup("/healthz?full=1");
	svc->opts.check_status = 204;
	svc->opts.check_inter = 2500;
	svc->opts.check_rise = 2;
	svc->opts.check_fall = 5;
	svc->opts.maxconn = 1000000;
	svc->opts.timeout_server = 120000;
	svc->opts.timeout_tunnel = 86400000;
	for (i = 0; i < svc->nr_containers; i++)
		svc->containers[i].weight = i == 1 ? WEIGHT_UNSET : (int)i * 64;
}

/* The service options and weights come back as they were put, from a reading
 * and from a writing call, and a service put again without them comes back
 * with the defaults. */
static void test_options_roundtrip(void **state)
{
	struct store *st = open_store();
	struct service a, b;
	struct service_list list;
	char tbl[80];

	(void)state;
	snprintf(tbl, sizeof(tbl), "%s-opts", table_a);
	make_service(&a, "opts", 8080, "SRV", 5);
	set_options(&a);
	make_service(&b, "plain", 8082, NULL, 1);
	b.opts.balance = BALANCE_LEASTCONN;
	put_one(st, tbl, &a);
	put_one(st, tbl, &b);
	load_table(st, tbl, &list);
	assert_int_equal(list.nr, 2);
	assert_true(service_equal(&list.items[0], &a));
	assert_string_equal(list.items[0].opts.check_path, "/healthz?full=1");
	assert_int_equal(list.items[0].containers[0].weight, 0);
	assert_int_equal(list.items[0].containers[1].weight, WEIGHT_UNSET);
	assert_int_equal(list.items[0].containers[4].weight, 256);
	assert_true(service_equal(&list.items[1], &b));
	assert_int_equal(list.items[1].opts.balance, BALANCE_LEASTCONN);
	service_list_release(&list);
	/* A writing call loads them too (a backend may read differently). */
	{
		struct buf err = BUF_INIT;

		service_list_init(&list);
		assert_int_equal(store_begin(st, tbl, 1, &err), ST_OK);
		if (store_load(st, &list, &err) != ST_OK)
			fail_msg("load in a write call: %s", err.buf);
		store_rollback(st);
		buf_release(&err);
		assert_int_equal(list.nr, 2);
		assert_true(service_equal(&list.items[0], &a));
		assert_true(service_equal(&list.items[1], &b));
		service_list_release(&list);
	}

	/* Back to the defaults: nothing of the old options is left. */
	service_options_release(&a.opts);
	for (size_t i = 0; i < a.nr_containers; i++)
		a.containers[i].weight = WEIGHT_UNSET;
	put_one(st, tbl, &a);
	load_table(st, tbl, &list);
	assert_true(service_equal(&list.items[0], &a));
	assert_true(service_options_default(&list.items[0].opts));
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

/* Tables ever written are listed in byte order, in pages after a name. */
static void test_table_list(void **state)
{
	struct store *st = open_store();
	struct store_name_list list;
	struct service_list cur;
	struct buf err = BUF_INIT;
	struct service x;
	char prefix[80], names[4][96], after[96];
	static const char *const suffix[] = {"b", "B", "a-2", "a"};
	static const int order[] = {1, 3, 2, 0}; /* "B" < "a" < "a-2" < "b" */
	size_t i, seen = 0;

	(void)state;
	snprintf(prefix, sizeof(prefix), "%s-list-", table_b);
	for (i = 0; i < ARRAY_SIZE(suffix); i++) {
		snprintf(names[i], sizeof(names[i]), "%s%s", prefix, suffix[i]);
		make_service(&x, "svc", 80, NULL, 1);
		put_one(st, names[i], &x);
		service_release(&x);
	}
	/* emptied again: still a table that was written */
	assert_int_equal(store_begin(st, names[0], 1, &err), ST_OK);
	service_list_init(&cur);
	assert_int_equal(store_load(st, &cur, &err), ST_OK);
	assert_int_equal(cur.nr, 1);
	assert_int_equal(store_remove(st, &cur.items[0], &err), ST_OK);
	assert_int_equal(store_commit(st, &err), ST_OK);
	service_list_release(&cur);
	/* begun for a write and rolled back: never written */
	snprintf(after, sizeof(after), "%sc", prefix);
	assert_int_equal(store_begin(st, after, 1, &err), ST_OK);
	store_rollback(st);

	snprintf(after, sizeof(after), "%s", prefix);
	store_name_list_init(&list);
	for (;;) {
		store_name_list_release(&list);
		if (store_table_list(st, after, 3, &list, &err) != ST_OK)
			fail_msg("table_list: %s", err.buf);
		assert_true(list.nr <= 3);
		for (i = 0; i < list.nr; i++) {
			if (strncmp(list.items[i], prefix, strlen(prefix)))
				break;
			assert_true(seen < ARRAY_SIZE(order));
			assert_string_equal(list.items[i], names[order[seen]]);
			seen++;
		}
		if (i < list.nr || list.nr < 3)
			break;
		snprintf(after, sizeof(after), "%s", list.items[list.nr - 1]);
	}
	assert_int_equal(seen, ARRAY_SIZE(order));
	store_name_list_release(&list);
	/* after the last one: none of them */
	snprintf(after, sizeof(after), "%s", names[0]);
	assert_int_equal(store_table_list(st, after, 10, &list, &err), ST_OK);
	for (i = 0; i < list.nr; i++)
		assert_true(strncmp(list.items[i], prefix, strlen(prefix)));
	store_name_list_release(&list);
	buf_release(&err);
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

/*
 * End a writing call after a put or remove that returned `ret`: a backend
 * that sends writes at once reports a conflict there, one that keeps them
 * for a transaction (DynamoDB's TransactWriteItems) from commit().
 */
static enum status write_end(struct store *st, enum status ret)
{
	struct buf err = BUF_INIT;

	if (ret == ST_OK)
		ret = store_commit(st, &err);
	else
		store_rollback(st);
	buf_release(&err);
	return ret;
}

static void test_stale_write_conflicts(void **state)
{
	struct store *one = open_store(), *two;
	struct buf err = BUF_INIT;
	struct service_list l1, l2;
	struct service x;
	uint64_t stale;
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
	stale = l2.items[0].version;
	assert_int_equal(store_begin(two, t, 1, &err), ST_OK);
	assert_int_equal(write_end(two, store_put(two, &l2.items[0], &err)),
			 ST_CONFLICT);
	/* After a failed commit the version put() set means nothing. */
	l2.items[0].version = stale;
	assert_int_equal(store_begin(two, t, 1, &err), ST_OK);
	assert_int_equal(write_end(two, store_remove(two, &l2.items[0], &err)),
			 ST_CONFLICT);

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
		assert_int_equal(write_end(two, store_put(two, &dup, &err)),
				 ST_CONFLICT);
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

/* The SQLite-only tests below run on their own files in sqlite_dir. */
static int sqlite_only(void)
{
	return !strncmp(store_spec, "sqlite:", 7);
}

static enum status open_spec(const char *spec, struct store **out,
			     struct buf *err)
{
	buf_reset(err);
	return store_open(spec, out, err);
}

/* Processes starting together on a new file all get the schema (one of two
 * used to exit with "creating the schema: database is locked"). */
static void test_sqlite_concurrent_create(void **state)
{
	const int pairs = 40, per = 3;
	int pair, i, failed = 0;

	(void)state;
	if (!sqlite_only())
		skip();
	for (pair = 0; pair < pairs; pair++) {
		char spec[600];
		pid_t pids[3];

		snprintf(spec, sizeof(spec), "sqlite:%s/create-%d.db",
			 sqlite_dir, pair);
		for (i = 0; i < per; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (!pids[i]) {
				struct buf err = BUF_INIT;
				struct store *st = NULL;
				enum status ret = open_spec(spec, &st, &err);

				if (ret == ST_OK)
					ret = store_ping(st, &err);
				if (ret != ST_OK)
					fprintf(stderr, "open %s: %s\n", spec,
						err.buf);
				store_close(st);
				_exit(ret == ST_OK ? 0 : 1);
			}
		}
		for (i = 0; i < per; i++) {
			int status;

			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* A database of schema version 1 (before the service options) is migrated
 * on open: its services load with the default options and new ones keep
 * theirs. */
static void test_sqlite_migrate_v1(void **state)
{
	static const char v1[] =
		"CREATE TABLE tables (name TEXT PRIMARY KEY, version INTEGER "
		"NOT NULL) WITHOUT ROWID;"
		"CREATE TABLE services (tbl TEXT NOT NULL, name TEXT NOT NULL,"
		" port INTEGER NOT NULL, mode TEXT NOT NULL, predicate TEXT "
		"NOT NULL, cookie TEXT, containers TEXT NOT NULL, created_at "
		"INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY "
		"(tbl, name)) WITHOUT ROWID;"
		"INSERT INTO tables VALUES ('tbl', 1);"
		"INSERT INTO services VALUES ('tbl', 'old', 80, 'host', "
		"'old.example.com', 'C', 'c1 10.0.0.1\n', 1, 2);"
		"PRAGMA user_version = 1;";
	struct buf err = BUF_INIT;
	struct store *st = NULL;
	struct service_list list;
	struct service x;
	sqlite3 *db;
	char spec[600], path[512];
	int version = 0;

	(void)state;
	if (!sqlite_only())
		skip();
	snprintf(path, sizeof(path), "%s/v1.db", sqlite_dir);
	snprintf(spec, sizeof(spec), "sqlite:%s", path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(open_spec(spec, &st, &err), ST_OK);
	load_table(st, "tbl", &list);
	assert_int_equal(list.nr, 1);
	assert_string_equal(list.items[0].cookie, "C");
	assert_true(service_options_default(&list.items[0].opts));
	assert_int_equal(list.items[0].containers[0].weight, WEIGHT_UNSET);
	service_list_release(&list);
	make_service(&x, "new", 80, "C", 2);
	set_options(&x);
	put_one(st, "tbl", &x);
	load_table(st, "tbl", &list);
	assert_int_equal(list.nr, 2);
	assert_true(service_equal(&list.items[0], &x));
	service_list_release(&list);
	store_close(st);

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	{
		sqlite3_stmt *stmt;

		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version",
						    -1, &stmt, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
		version = sqlite3_column_int(stmt, 0);
		sqlite3_finalize(stmt);
	}
	sqlite3_close(db);
	assert_int_equal(version, 3);
	service_release(&x);
	buf_release(&err);
}

/* A removed database file is noticed by the next transaction, ping and
 * open: ST_UNAVAILABLE, never a write into the unlinked file, and never a
 * new empty database created in its place. */
static void test_sqlite_removed_file(void **state)
{
	struct buf err = BUF_INIT;
	struct store *st = NULL, *again = NULL;
	struct service x;
	char spec[600], path[512];

	(void)state;
	if (!sqlite_only())
		skip();
	snprintf(path, sizeof(path), "%s/removed.db", sqlite_dir);
	snprintf(spec, sizeof(spec), "sqlite:%s", path);
	assert_int_equal(open_spec(spec, &st, &err), ST_OK);
	make_service(&x, "kept", 80, NULL, 1);
	put_one(st, "tbl", &x);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(store_ping(st, &err), ST_UNAVAILABLE);
	assert_non_null(strstr(err.buf, "removed"));
	assert_int_equal(store_begin(st, "tbl", 1, &err), ST_UNAVAILABLE);
	assert_int_equal(store_begin(st, "tbl", 0, &err), ST_UNAVAILABLE);
	assert_int_equal(open_spec(spec, &again, &err), ST_UNAVAILABLE);
	assert_null(again);
	assert_int_equal(access(path, F_OK), -1);
	/* A write that began before the file went is not committed into it. */
	store_close(st);
	st = NULL;
	snprintf(path, sizeof(path), "%s/removed2.db", sqlite_dir);
	snprintf(spec, sizeof(spec), "sqlite:%s", path);
	assert_int_equal(open_spec(spec, &st, &err), ST_OK);
	assert_int_equal(store_begin(st, "tbl", 1, &err), ST_OK);
	assert_int_equal(store_put(st, &x, &err), ST_OK);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(store_commit(st, &err), ST_UNAVAILABLE);
	store_close(st);
	service_release(&x);
	buf_release(&err);
}

static int chattr(const char *flag, const char *path)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "chattr %s '%s' 2>/dev/null", flag, path);
	return system(cmd);
}

/*
 * The -shm file made immutable while the store is open: a clean
 * ST_UNAVAILABLE before the transaction, and if it happens inside one (the
 * race the check cannot close), the SIGBUS SQLite's store into the mapping
 * raises is survived: the store fails and the process stays up. Runs in a
 * child, as the second part leaves the process refusing every database.
 */
static void test_sqlite_shm_unwritable(void **state)
{
	char spec[600], path[512], shm[520];
	int status;
	pid_t pid;

	(void)state;
	if (!sqlite_only())
		skip();
	snprintf(path, sizeof(path), "%s/shm.db", sqlite_dir);
	snprintf(shm, sizeof(shm), "%s-shm", path);
	snprintf(spec, sizeof(spec), "sqlite:%s", path);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct buf err = BUF_INIT;
		struct store *st = NULL;
		sqlite3 *raw = NULL;
		struct service x;
		int code = 0;

		make_service(&x, "svc", 80, NULL, 3);
		if (open_spec(spec, &st, &err) != ST_OK)
			_exit(10);
		put_one(st, "tbl", &x);
		if (chattr("+i", shm)) {
			printf("skipped: chattr +i does not work here (needs "
			       "root and a file system with the attribute)\n");
			_exit(77);
		}
		sync();
		if (store_begin(st, "tbl", 1, &err) != ST_UNAVAILABLE ||
		    !strstr(err.buf, "shared-memory"))
			code = 11;
		if (!code && store_ping(st, &err) != ST_UNAVAILABLE)
			code = 12;
		chattr("-i", shm);
		/* Recovered once the file is writable again. */
		if (!code && store_ping(st, &err) != ST_OK)
			code = 13;
		/* A write the check cannot see coming: another connection of
		 * the process (SQLite shares one -shm mapping among them)
		 * writes after the flag is set. The SIGBUS is survived, the
		 * store then refuses to go on, and the commit that began before
		 * is not reported done. */
		if (!code && store_begin(st, "tbl", 1, &err) != ST_OK)
			code = 14;
		x.version = 1;
		service_put_container(&x, "more", "10.9.9.9");
		if (!code && store_put(st, &x, &err) != ST_OK)
			code = 15;
		store_rollback(st);
		if (!code && sqlite3_open(path, &raw) != SQLITE_OK)
			code = 16;
		if (!code && chattr("+i", shm))
			code = 17;
		sync();
		if (!code)
			(void)sqlite3_exec(raw,
					   "INSERT INTO tables (name, version) "
					   "VALUES ('raw', 1)",
					   NULL, NULL, NULL);
		if (!code && (store_ping(st, &err) != ST_UNAVAILABLE ||
			      !strstr(err.buf, "while in use")))
			code = 18;
		if (!code && store_begin(st, "tbl", 1, &err) != ST_UNAVAILABLE)
			code = 19;
		sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				  NULL);
		sqlite3_close(raw);
		chattr("-i", shm);
		if (code)
			fprintf(stderr, "shm step %d: %s\n", code, err.buf);
		store_close(st);
		_exit(code);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	chattr("-i", shm);
	if (WIFSIGNALED(status))
		fail_msg("the child died of signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static uint64_t doc_generation(struct store *st, const char *kind)
{
	struct buf err = BUF_INIT;
	uint64_t gen = 0;

	if (store_doc_generation(st, kind, &gen, &err) != ST_OK)
		fail_msg("doc_generation: %s", err.buf);
	buf_release(&err);
	return gen;
}

static uint64_t doc_put(struct store *st, const char *kind, const char *key,
			const char *value, uint64_t expect)
{
	struct buf err = BUF_INIT;
	uint64_t version = 0;

	if (store_doc_put(st, kind, key, value, expect, &version, &err) !=
	    ST_OK)
		fail_msg("doc_put %s/%s: %s", kind, key, err.buf);
	buf_release(&err);
	return version;
}

static void test_documents(void **state)
{
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	struct store_doc doc;
	uint64_t gen0, v1, v2, gen;

	(void)state;
	assert_int_equal(store_doc_get(st, kind_a, "k1", &doc, &err),
			 ST_NOT_FOUND);
	gen0 = doc_generation(st, kind_a);
	assert_int_equal(gen0, 0);
	v1 = doc_put(st, kind_a, "k1", "{\"a\":1}", STORE_DOC_ANY);
	assert_true(v1 > gen0);
	assert_true(doc_generation(st, kind_a) >= v1);
	assert_int_equal(store_doc_get(st, kind_a, "k1", &doc, &err), ST_OK);
	assert_string_equal(doc.key, "k1");
	assert_string_equal(doc.value, "{\"a\":1}");
	assert_int_equal(doc.version, v1);
	assert_true(doc.updated_at > 1700000000000);
	store_doc_release(&doc);
	/* expect: 0 means "none there", any other number must match */
	gen = doc_generation(st, kind_a);
	assert_int_equal(store_doc_put(st, kind_a, "k1", "{}", 0, NULL, &err),
			 ST_CONFLICT);
	assert_int_equal(
		store_doc_put(st, kind_a, "k1", "{}", v1 + 1000, NULL, &err),
		ST_CONFLICT);
	assert_int_equal(store_doc_get(st, kind_a, "k1", &doc, &err), ST_OK);
	assert_string_equal(doc.value, "{\"a\":1}");
	assert_int_equal(doc.version, v1);
	store_doc_release(&doc);
	v2 = doc_put(st, kind_a, "k1", "{\"a\":2}", v1);
	assert_true(v2 > v1);
	assert_true(doc_generation(st, kind_a) > gen);
	assert_int_equal(store_doc_put(st, kind_a, "k1", "{}", v1, NULL, &err),
			 ST_CONFLICT);
	(void)doc_put(st, kind_a, "k2", "[]", 0);
	/* the other kind is untouched */
	assert_int_equal(doc_generation(st, kind_b), 0);
	assert_int_equal(store_doc_get(st, kind_b, "k1", &doc, &err),
			 ST_NOT_FOUND);
	/* delete */
	gen = doc_generation(st, kind_a);
	assert_int_equal(store_doc_delete(st, kind_a, "k2", &err), ST_OK);
	assert_true(doc_generation(st, kind_a) > gen);
	assert_int_equal(store_doc_get(st, kind_a, "k2", &doc, &err),
			 ST_NOT_FOUND);
	gen = doc_generation(st, kind_a);
	assert_int_equal(store_doc_delete(st, kind_a, "k2", &err),
			 ST_NOT_FOUND);
	assert_int_equal(store_doc_delete(st, kind_b, "k1", &err),
			 ST_NOT_FOUND);
	assert_int_equal(doc_generation(st, kind_a), gen);
	/* a deleted key may be created again with expect 0 */
	assert_true(doc_put(st, kind_a, "k2", "[1]", 0) > gen);
	buf_release(&err);
	store_close(st);
}

static void test_document_list(void **state)
{
	static const char *const keys[] = {"b", "a", "c", "aa", "B", "d-1"};
	static const char *const sorted[] = {"B", "a", "aa", "b", "c", "d-1"};
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	struct store_doc_list list;
	char after[32] = "";
	size_t i, seen = 0;

	(void)state;
	store_doc_list_init(&list);
	assert_int_equal(store_doc_list(st, kind_b, "", 10, &list, &err),
			 ST_OK);
	assert_int_equal(list.nr, 0);
	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		char value[32];

		snprintf(value, sizeof(value), "{\"i\":%zu}", i);
		(void)doc_put(st, kind_b, keys[i], value, STORE_DOC_ANY);
	}
	/* a document of another kind is not listed */
	(void)doc_put(st, kind_a, "aaa", "{}", STORE_DOC_ANY);
	/* pages of two, each after the last key of the one before */
	for (;;) {
		store_doc_list_release(&list);
		if (store_doc_list(st, kind_b, after, 2, &list, &err) != ST_OK)
			fail_msg("doc_list: %s", err.buf);
		assert_true(list.nr <= 2);
		if (!list.nr)
			break;
		for (i = 0; i < list.nr; i++) {
			assert_true(seen < ARRAY_SIZE(sorted));
			assert_string_equal(list.items[i].key, sorted[seen]);
			assert_true(list.items[i].version > 0);
			seen++;
		}
		snprintf(after, sizeof(after), "%s",
			 list.items[list.nr - 1].key);
	}
	assert_int_equal(seen, ARRAY_SIZE(sorted));
	store_doc_list_release(&list);
	assert_int_equal(store_doc_list(st, kind_b, "", 100, &list, &err),
			 ST_OK);
	assert_int_equal(list.nr, ARRAY_SIZE(sorted));
	assert_string_equal(list.items[1].value, "{\"i\":1}");
	store_doc_list_release(&list);
	buf_release(&err);
	store_close(st);
}

/* A put in another process moves the generation this one reads. */
static void test_document_generation_across_processes(void **state)
{
	struct store *st = open_store();
	uint64_t before = doc_generation(st, kind_a), after;
	int status = 0, round;
	pid_t pid;

	(void)state;
	for (round = 0; round < 2; round++) {
		pid = fork();
		assert_true(pid >= 0);
		if (!pid) {
			struct store *child = NULL;
			struct buf err = BUF_INIT;
			int ok = store_open(store_spec, &child, &err) == ST_OK;

			if (ok)
				ok = round ? store_doc_delete(child, kind_a,
							      "child",
							      &err) == ST_OK
					   : store_doc_put(child, kind_a,
							   "child", "{}",
							   STORE_DOC_ANY, NULL,
							   &err) == ST_OK;
			if (!ok)
				fprintf(stderr, "child: %s\n", err.buf);
			_exit(ok ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		after = doc_generation(st, kind_a);
		assert_true(after > before);
		before = after;
	}
	store_close(st);
}

/*
 * Processes count up one document by compare-and-swap (get, then put with
 * the version read, again on ST_CONFLICT): none of the increments is lost,
 * and every put that won got a version of its own.
 */
static void test_document_expect_across_processes(void **state)
{
	enum { NR_CHILDREN = 4, NR_ROUNDS = 10 };
	struct store *st = open_store();
	struct buf err = BUF_INIT;
	struct store_doc doc;
	pid_t pids[NR_CHILDREN];
	int i, count = -1;

	(void)state;
	(void)doc_put(st, kind_b, "counter", "{\"n\":0}", 0);
	for (i = 0; i < NR_CHILDREN; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			struct store *child = NULL;
			int done = 0, ok;

			ok = store_open(store_spec, &child, &err) == ST_OK;
			while (ok && done < NR_ROUNDS) {
				struct store_doc cur;
				char value[32];
				int n = -1;

				ok = store_doc_get(child, kind_b, "counter",
						   &cur, &err) == ST_OK &&
				     sscanf(cur.value, "{\"n\":%d}", &n) == 1;
				if (ok) {
					enum status ret;

					snprintf(value, sizeof(value),
						 "{\"n\":%d}", n + 1);
					ret = store_doc_put(
						child, kind_b, "counter", value,
						cur.version, NULL, &err);
					done += ret == ST_OK;
					ok = ret == ST_OK || ret == ST_CONFLICT;
				}
				store_doc_release(&cur);
			}
			if (!ok)
				fprintf(stderr, "child: %s\n", err.buf);
			if (child)
				store_close(child);
			_exit(ok ? 0 : 1);
		}
	}
	for (i = 0; i < NR_CHILDREN; i++) {
		int status = 0;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(store_doc_get(st, kind_b, "counter", &doc, &err),
			 ST_OK);
	assert_int_equal(sscanf(doc.value, "{\"n\":%d}", &count), 1);
	assert_int_equal(count, NR_CHILDREN * NR_ROUNDS);
	assert_true(doc.version <= doc_generation(st, kind_b));
	store_doc_release(&doc);
	buf_release(&err);
	store_close(st);
}

/* Feed `sql` to psql on the test cluster; 0 when it worked. */
static int run_psql(const char *sql)
{
	const char *bin = getenv("LR_TEST_PG_BIN");
	const char *conninfo = getenv("LR_TEST_PG");
	char cmd[1024];
	FILE *p;
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "'%s%spsql' -X -q -v ON_ERROR_STOP=1 -d '%s' >/dev/null",
		 bin ? bin : "", bin ? "/" : "", conninfo ? conninfo : "");
	p = popen(cmd, "w");
	if (!p)
		return -1;
	fputs(sql, p);
	rc = pclose(p);
	return rc;
}

/*
 * PostgreSQL only: a schema of version `from` (1: the tables; 2: and the
 * documents, one of them stored) is migrated when several processes open it
 * at once, each of them writing a document at once: the old rows load, with
 * the default options, and new services keep theirs.
 */
static void postgres_migrate_from(int from)
{
	enum { NR_CHILDREN = 4 };
	char saved[sizeof(store_spec)], schema[64];
	const uint64_t docs_before = from >= 2 ? 1 : 0;
	struct buf sql = BUF_INIT;
	struct service_list list;
	pid_t pids[NR_CHILDREN];
	struct store_doc doc;
	struct service x;
	struct store *st;
	int i;

	if (strncmp(store_spec, "postgres:", 9))
		skip();
	snprintf(schema, sizeof(schema), "lrmig%d_%ld_%d", from,
		 (long)time(NULL), (int)getpid());
	(void)buf_addf(
		&sql,
		"CREATE SCHEMA %s;"
		"CREATE TABLE %s.meta (key text PRIMARY KEY, value bigint NOT "
		"NULL);"
		"CREATE TABLE %s.tables (name text PRIMARY KEY, version bigint "
		"NOT NULL);"
		"CREATE TABLE %s.services (tbl text NOT NULL, name text NOT "
		"NULL, port integer NOT NULL, mode text NOT NULL, predicate "
		"text NOT NULL, cookie text, containers text NOT NULL, "
		"created_at bigint NOT NULL, updated_at bigint NOT NULL, "
		"PRIMARY KEY (tbl, name));"
		"INSERT INTO %s.meta VALUES ('schema_version', %d);"
		"INSERT INTO %s.tables VALUES ('old', 1);"
		"INSERT INTO %s.services VALUES ('old', 'web', 80, 'host', "
		"'www.example.com', NULL, E'c1 10.0.0.1\\n', 1, 2);",
		schema, schema, schema, schema, schema, from, schema, schema);
	if (from >= 2)
		(void)buf_addf(
			&sql,
			"CREATE TABLE %s.docs (kind text NOT NULL, key text "
			"COLLATE \"C\" NOT NULL, value text NOT NULL, version "
			"bigint NOT NULL, updated_at bigint NOT NULL, PRIMARY "
			"KEY (kind, key));"
			"CREATE TABLE %s.doc_generations (kind text PRIMARY "
			"KEY, generation bigint NOT NULL);"
			"INSERT INTO %s.docs VALUES ('token', 'old', '[]', 1, "
			"1700000000000);"
			"INSERT INTO %s.doc_generations VALUES ('token', 1);",
			schema, schema, schema, schema);
	if (run_psql(sql.buf))
		fail_msg("psql could not create a version %d schema", from);
	buf_release(&sql);
	memcpy(saved, store_spec, sizeof(saved));
	snprintf(store_spec + strlen(store_spec),
		 sizeof(store_spec) - strlen(store_spec), " schema=%s", schema);
	for (i = 0; i < NR_CHILDREN; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			struct store *child = NULL;
			struct buf err = BUF_INIT;
			char key[16];
			int ok = store_open(store_spec, &child, &err) == ST_OK;

			snprintf(key, sizeof(key), "k%d", i);
			if (ok)
				ok = store_doc_put(child, "token", key, "{}", 0,
						   NULL, &err) == ST_OK;
			if (!ok)
				fprintf(stderr, "child: %s\n", err.buf);
			if (child)
				store_close(child);
			_exit(ok ? 0 : 1);
		}
	}
	for (i = 0; i < NR_CHILDREN; i++) {
		int status = 0;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	st = open_store();
	memcpy(store_spec, saved, sizeof(saved));
	load_table(st, "old", &list);
	assert_int_equal(list.nr, 1);
	assert_string_equal(list.items[0].name, "web");
	assert_int_equal(list.items[0].nr_containers, 1);
	assert_true(service_options_default(&list.items[0].opts));
	assert_int_equal(list.items[0].containers[0].weight, WEIGHT_UNSET);
	service_list_release(&list);
	make_service(&x, "new", 8080, "C", 2);
	set_options(&x);
	put_one(st, "old", &x);
	load_table(st, "old", &list);
	assert_int_equal(list.nr, 2);
	assert_true(service_equal(&list.items[0], &x));
	service_list_release(&list);
	service_release(&x);
	assert_int_equal(doc_generation(st, "token"),
			 docs_before + NR_CHILDREN);
	assert_int_equal(doc_put(st, "token", "x", "{}", 0),
			 docs_before + NR_CHILDREN + 1);
	if (from >= 2) {
		struct buf err = BUF_INIT;

		assert_int_equal(store_doc_get(st, "token", "old", &doc, &err),
				 ST_OK);
		assert_string_equal(doc.value, "[]");
		assert_int_equal(doc.version, 1);
		store_doc_release(&doc);
		buf_release(&err);
	}
	store_close(st);
}

static void test_postgres_migrate_v1(void **state)
{
	(void)state;
	postgres_migrate_from(1);
}

static void test_postgres_migrate_v2(void **state)
{
	(void)state;
	postgres_migrate_from(2);
}

/* SQLite only: a database of schema version 1 gains the documents on open. */
static void test_sqlite_migration(void **state)
{
	static const char v1[] =
		"CREATE TABLE tables (name TEXT PRIMARY KEY, version INTEGER "
		"NOT NULL) WITHOUT ROWID;"
		"CREATE TABLE services (tbl TEXT NOT NULL, name TEXT NOT NULL,"
		" port INTEGER NOT NULL, mode TEXT NOT NULL, predicate TEXT "
		"NOT NULL, cookie TEXT, containers TEXT NOT NULL, created_at "
		"INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY "
		"(tbl, name)) WITHOUT ROWID;"
		"INSERT INTO tables VALUES ('old', 1);"
		"INSERT INTO services VALUES ('old', 'web', 80, 'host', "
		"'www.example.com', NULL, 'c1 10.0.0.1\n', 1, 2);"
		"PRAGMA user_version = 1;";
	char saved[sizeof(store_spec)];
	struct service_list list;
	struct store *st;
	sqlite3 *db;

	(void)state;
	if (strncmp(store_spec, "sqlite:", 7))
		skip();
	memcpy(saved, store_spec, sizeof(saved));
	assert_true(strlen(store_spec) + 4 < sizeof(store_spec));
	snprintf(store_spec + strlen(store_spec),
		 sizeof(store_spec) - strlen(store_spec), ".v1");
	assert_int_equal(sqlite3_open(store_spec + 7, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_store();
	memcpy(store_spec, saved, sizeof(saved));
	load_table(st, "old", &list);
	assert_int_equal(list.nr, 1);
	assert_string_equal(list.items[0].name, "web");
	service_list_release(&list);
	assert_int_equal(doc_generation(st, "token"), 0);
	assert_int_equal(doc_put(st, "token", "x", "{}", 0), 1);
	store_close(st);
}

/* The version of `table` as `st` reads it in a read call. */
static uint64_t read_version(struct store *st, const char *table)
{
	struct buf err = BUF_INIT;
	uint64_t v = 0;

	assert_int_equal(store_begin(st, table, 0, &err), ST_OK);
	if (store_version(st, &v, &err) != ST_OK)
		fail_msg("version: %s", err.buf);
	store_rollback(st);
	buf_release(&err);
	return v;
}

/*
 * The index check from SQLite's wal-index header against the pragma it
 * spares: a long-lived handle reads versions while other processes write
 * (the store's own writes, a bare SQLite connection's commits that bump
 * no version of ours, checkpoints that reset the WAL) in a random order;
 * after every step it must read what a new handle, which cannot take the
 * shortcut on its first read, reads. Seeded from LR_TEST_SEED or the time.
 */
static void test_sqlite_header_check_random(void **state)
{
	const char *seed_env = getenv("LR_TEST_SEED");
	unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10)
				 : (unsigned)time(NULL);
	const char *tables[] = {table_a, table_b};
	struct store *st;
	char db[600];
	int step, unchanged = 0;

	(void)state;
	if (!sqlite_only())
		skip();
	print_message("seed %u (LR_TEST_SEED)\n", seed);
	srand(seed);
	snprintf(db, sizeof(db), "%s", store_spec + strlen("sqlite:"));
	st = open_store();
	for (step = 0; step < 300; step++) {
		const char *t = tables[rand() % 2];
		int what = rand() % 8, status = 0;
		struct store *fresh;
		uint64_t got, want;
		pid_t pid;

		if (what < 3) {
			/* Reads only: the shortcut may answer. */
			unchanged++;
		} else if (what < 6) {
			pid = fork();
			assert_true(pid >= 0);
			if (!pid) {
				struct store *child = NULL;
				struct buf err = BUF_INIT;
				sqlite3 *raw = NULL;
				int ok;

				if (what == 3) {
					struct service x;

					make_service(&x, "s", 80 + step % 7,
						     NULL, 1 + step % 3);
					ok = store_open(store_spec, &child,
							&err) == ST_OK;
					if (ok) {
						put_one(child, t, &x);
						store_close(child);
					}
					_exit(ok ? 0 : 1);
				}
				ok = sqlite3_open(db, &raw) == SQLITE_OK &&
				     sqlite3_exec(
					     raw,
					     what == 4 ? "CREATE TABLE IF NOT "
							 "EXISTS t_other(x);"
							 "INSERT INTO t_other "
							 "VALUES (1)"
						       : "PRAGMA wal_checkpoint"
							 "(TRUNCATE)",
					     NULL, NULL, NULL) == SQLITE_OK;
				sqlite3_close(raw);
				_exit(ok ? 0 : 1);
			}
			assert_int_equal(waitpid(pid, &status, 0), pid);
			assert_true(WIFEXITED(status) && !WEXITSTATUS(status));
		} else {
			struct service x;

			make_service(&x, "own", 90 + step % 5, NULL, 1);
			put_one(st, t, &x);
			service_release(&x);
		}
		got = read_version(st, t);
		fresh = open_store();
		want = read_version(fresh, t);
		store_close(fresh);
		if (got != want)
			fail_msg("step %d (seed %u): version %llu, the file "
				 "has %llu",
				 step, seed, (unsigned long long)got,
				 (unsigned long long)want);
	}
	/* The shortcut reads SQLite's own mapping: the connection still
	 * holds its shared lock on the -shm file (in the lock bytes at 120 to
	 * 135), which another process's write lock there would meet. Closing
	 * a descriptor of our own on that file would have dropped it, and
	 * another process could then truncate the file under SQLite. */
	{
		char shm[620];
		int status = 0;
		pid_t pid;

		snprintf(shm, sizeof(shm), "%s-shm", db);
		pid = fork();
		assert_true(pid >= 0);
		if (!pid) {
			struct flock fl = {.l_type = F_WRLCK,
					   .l_whence = SEEK_SET,
					   .l_start = 120,
					   .l_len = 16};
			int fd = open(shm, O_RDWR);

			_exit(fd >= 0 && !fcntl(fd, F_GETLK, &fl) &&
					      fl.l_type != F_UNLCK
				      ? 0
				      : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && !WEXITSTATUS(status));
	}
	/* The shortcut was taken, on at least most of the unchanged steps. */
	assert_true(store_sqlite_header_hits(st) >
		    (unsigned long)unchanged / 2);
	store_close(st);
}

int main(void)
{
	const char *backend = getenv("LR_TEST_STORE");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_table),
		cmocka_unit_test(test_put_load_roundtrip),
		cmocka_unit_test(test_options_roundtrip),
		cmocka_unit_test(test_replace_and_remove),
		cmocka_unit_test(test_tables_are_separate),
		cmocka_unit_test(test_table_list),
		cmocka_unit_test(test_version_changes_on_write_only),
		cmocka_unit_test(test_rollback_discards),
		cmocka_unit_test(test_stale_write_conflicts),
		cmocka_unit_test(test_many_services),
		cmocka_unit_test(test_sqlite_concurrent_create),
		cmocka_unit_test(test_sqlite_migrate_v1),
		cmocka_unit_test(test_sqlite_removed_file),
		cmocka_unit_test(test_sqlite_shm_unwritable),
		cmocka_unit_test(test_sqlite_header_check_random),
		cmocka_unit_test(test_documents),
		cmocka_unit_test(test_document_list),
		cmocka_unit_test(test_document_generation_across_processes),
		cmocka_unit_test(test_document_expect_across_processes),
		cmocka_unit_test(test_sqlite_migration),
		cmocka_unit_test(test_postgres_migrate_v1),
		cmocka_unit_test(test_postgres_migrate_v2),
	};
	char *dir = sqlite_dir;
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
	snprintf(kind_a, sizeof(kind_a), "kind-a-%ld-%d", (long)time(NULL),
		 (int)getpid());
	snprintf(kind_b, sizeof(kind_b), "kind-b-%ld-%d", (long)time(NULL),
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
