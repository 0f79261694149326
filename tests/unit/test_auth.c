/* Tokens: format, hashing, constant-time compare, scopes, expiry, storage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "buf.h"
#include "store/store.h"

/* A token with the given scopes (NULL-terminated); fails on a bad one. */
static void make_token(struct auth_token *t, const char *const *scopes)
{
	struct buf err = BUF_INIT;
	struct auth_scope sc;

	auth_token_init(t);
	for (; *scopes; scopes++) {
		if (auth_scope_parse(*scopes, &sc, &err))
			fail_msg("scope '%s': %s", *scopes, err.buf);
		auth_token_add_scope(t, &sc);
	}
	t->description = strdup("");
	buf_release(&err);
}

static void test_format(void **state)
{
	struct auth_token t, u;
	struct buf text = BUF_INIT, err = BUF_INIT;
	char id[AUTH_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
	unsigned char hash[AUTH_HASH_LEN];
	size_t i;

	(void)state;
	auth_token_init(&t);
	auth_token_init(&u);
	assert_int_equal(auth_token_generate(&t, &text, &err), ST_OK);
	assert_int_equal(text.len, AUTH_TOKEN_LEN);
	assert_int_equal(text.len, 59);
	assert_memory_equal(text.buf, "lr_", 3);
	assert_int_equal(text.buf[15], '_');
	for (i = 0; i < AUTH_ID_LEN; i++)
		assert_non_null(
			strchr("abcdefghijklmnopqrstuvwxyz234567", t.id[i]));
	assert_int_equal(auth_token_split(text.buf, id, secret), 0);
	assert_string_equal(id, t.id);
	assert_int_equal(strlen(secret), AUTH_SECRET_LEN);
	auth_hash_secret(secret, hash);
	assert_memory_equal(hash, t.hash, AUTH_HASH_LEN);
	/* two tokens never share an id or a secret */
	assert_int_equal(auth_token_generate(&u, &text, &err), ST_OK);
	assert_string_not_equal(t.id, u.id);
	assert_memory_not_equal(t.hash, u.hash, AUTH_HASH_LEN);

	/* malformed: wrong prefix, lengths, alphabets, separators */
	assert_int_equal(auth_token_split("", id, secret), -1);
	assert_int_equal(
		auth_token_split("lr_abcdefghijkl_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				 id, secret),
		0);
	assert_int_equal(
		auth_token_split("lx_abcdefghijkl_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				 id, secret),
		-1);
	assert_int_equal(
		auth_token_split("lr_ABCDEFGHIJKL_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				 id, secret),
		-1);
	assert_int_equal(
		auth_token_split("lr_abcdefghijk1_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				 id, secret),
		-1);
	assert_int_equal(
		auth_token_split("lr_abcdefghijkl_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				 id, secret),
		-1);
	assert_int_equal(
		auth_token_split("lr_abcdefghijkl-"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				 id, secret),
		-1);
	assert_int_equal(
		auth_token_split("lr_abcdefghijkl_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
				 id, secret),
		-1);
	/* the last character holds 4 bits: "B" would be a second spelling */
	assert_int_equal(
		auth_token_split("lr_abcdefghijkl_"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
				 id, secret),
		-1);
	auth_token_release(&t);
	auth_token_release(&u);
	buf_release(&text);
	buf_release(&err);
}

static void test_hash(void **state)
{
	/* SHA-256("abc"), FIPS 180-2 */
	static const unsigned char abc[AUTH_HASH_LEN] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	unsigned char h[AUTH_HASH_LEN];

	(void)state;
	auth_hash_secret("abc", h);
	assert_memory_equal(h, abc, sizeof(h));
}

static void test_equal_ct(void **state)
{
	unsigned char a[32], b[32];
	size_t i;

	(void)state;
	memset(a, 7, sizeof(a));
	memcpy(b, a, sizeof(b));
	assert_true(auth_equal_ct(a, b, sizeof(a)));
	for (i = 0; i < sizeof(a); i++) {
		b[i] ^= 0x80;
		assert_false(auth_equal_ct(a, b, sizeof(a)));
		b[i] ^= 0x80;
	}
	assert_true(auth_equal_ct(a, b, 0));
}

static void test_scope_parse(void **state)
{
	static const char *const good[] = {
		"admin",	 "table:web:read",     "table:web:write",
		"table:*:read",	 "table:*:write",      "table:edge-*:write",
		"table:a*:read", "table:x.y_z-1:read",
	};
	static const char *const bad[] = {
		"",
		"Admin",
		"table:web",
		"table:web:admin",
		"table::read",
		"table:we:read", /* shorter than a table name */
		"table:e*dge:read",
		"table:**:read",
		"table:web/x:read",
		"table:web:read:x",
		"tables:web:read",
		"table:w b:write",
	};
	struct auth_scope sc;
	struct buf err = BUF_INIT, out = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
		if (auth_scope_parse(good[i], &sc, &err))
			fail_msg("'%s': %s", good[i], err.buf);
		buf_reset(&out);
		auth_scope_format(&sc, &out);
		assert_string_equal(out.buf, good[i]);
		auth_scope_release(&sc);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		buf_reset(&err);
		if (!auth_scope_parse(bad[i], &sc, &err))
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(err.buf, "scope"));
	}
	buf_release(&err);
	buf_release(&out);
}

static void test_scope_match(void **state)
{
	static const char *const exact[] = {"table:web:read", "table:api:write",
					    NULL};
	static const char *const prefix[] = {"table:edge-*:write", NULL};
	static const char *const all_read[] = {"table:*:read", NULL};
	static const char *const all_write[] = {"table:*:write", NULL};
	static const char *const admin[] = {"admin", NULL};
	struct auth_token t;

	(void)state;
	make_token(&t, exact);
	assert_true(auth_token_allows(&t, "web", AUTH_READ));
	assert_false(auth_token_allows(&t, "web", AUTH_WRITE));
	assert_true(auth_token_allows(&t, "api", AUTH_WRITE));
	assert_true(
		auth_token_allows(&t, "api", AUTH_READ)); /* write => read */
	assert_false(auth_token_allows(&t, "webx", AUTH_READ));
	assert_false(auth_token_allows(&t, "we", AUTH_READ));
	assert_false(auth_token_allows(&t, NULL, AUTH_READ));
	assert_true(auth_token_allows_some(&t, AUTH_WRITE));
	assert_false(auth_token_allows(&t, NULL, AUTH_ADMIN));
	auth_token_release(&t);

	make_token(&t, prefix);
	assert_true(auth_token_allows(&t, "edge-1", AUTH_WRITE));
	assert_true(auth_token_allows(&t, "edge-", AUTH_WRITE));
	assert_true(auth_token_allows(&t, "edge-eu-west", AUTH_READ));
	assert_false(auth_token_allows(&t, "edge", AUTH_WRITE));
	assert_false(auth_token_allows(&t, "xedge-1", AUTH_WRITE));
	assert_false(auth_token_allows(&t, "Edge-1", AUTH_WRITE));
	assert_false(auth_token_allows(&t, NULL, AUTH_WRITE));
	auth_token_release(&t);

	make_token(&t, all_read);
	assert_true(auth_token_allows(&t, "anything", AUTH_READ));
	assert_true(auth_token_allows(&t, NULL, AUTH_READ));
	assert_false(auth_token_allows(&t, "anything", AUTH_WRITE));
	assert_false(auth_token_allows_some(&t, AUTH_WRITE));
	auth_token_release(&t);

	make_token(&t, all_write);
	assert_true(auth_token_allows(&t, "anything", AUTH_WRITE));
	assert_true(auth_token_allows(&t, NULL, AUTH_WRITE));
	assert_true(auth_token_allows(&t, NULL, AUTH_READ));
	assert_false(auth_token_allows(&t, NULL, AUTH_ADMIN));
	auth_token_release(&t);

	make_token(&t, admin);
	assert_true(auth_token_allows(&t, "web", AUTH_WRITE));
	assert_true(auth_token_allows(&t, NULL, AUTH_WRITE));
	assert_true(auth_token_allows(&t, NULL, AUTH_ADMIN));
	auth_token_release(&t);
}

static void test_expiry_and_duration(void **state)
{
	static const char *const scopes[] = {"admin", NULL};
	struct buf err = BUF_INIT;
	struct auth_token t;
	uint64_t ms;

	(void)state;
	make_token(&t, scopes);
	assert_false(auth_token_expired(&t, INT64_MAX)); /* 0: never */
	t.expires_at = 1000;
	assert_false(auth_token_expired(&t, 999));
	assert_true(auth_token_expired(&t, 1000));
	assert_true(auth_token_expired(&t, 5000));
	auth_token_release(&t);

	assert_int_equal(auth_parse_duration("90s", &ms, &err), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(auth_parse_duration("15m", &ms, &err), 0);
	assert_int_equal(ms, 900000);
	assert_int_equal(auth_parse_duration("2h", &ms, &err), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(auth_parse_duration("30d", &ms, &err), 0);
	assert_int_equal(ms, 30ULL * 86400000);
	assert_int_equal(auth_parse_duration("0s", &ms, &err), -1);
	assert_int_equal(auth_parse_duration("10", &ms, &err), -1);
	assert_int_equal(auth_parse_duration("1w", &ms, &err), -1);
	assert_int_equal(auth_parse_duration("-1d", &ms, &err), -1);
	assert_int_equal(auth_parse_duration("1dd", &ms, &err), -1);
	assert_int_equal(auth_parse_duration("99999d", &ms, &err), -1);
	buf_release(&err);
}

static void test_json_roundtrip(void **state)
{
	static const char *const scopes[] = {"table:edge-*:write",
					     "table:web:read", NULL};
	struct auth_token t, u;
	struct buf json = BUF_INIT, err = BUF_INIT, text = BUF_INIT;

	(void)state;
	make_token(&t, scopes);
	assert_int_equal(auth_token_generate(&t, &text, &err), ST_OK);
	t.created_at = 1700000000000;
	t.expires_at = 1700000360000;
	free(t.description);
	t.description = strdup("edge \"hosts\"");
	auth_token_to_json(&t, &json);
	/* never the secret */
	assert_null(strstr(json.buf, text.buf + 16));
	if (auth_token_from_json(json.buf, &u, &err))
		fail_msg("from_json: %s", err.buf);
	assert_string_equal(u.id, t.id);
	assert_memory_equal(u.hash, t.hash, AUTH_HASH_LEN);
	assert_int_equal(u.nr_scopes, 2);
	assert_true(auth_token_allows(&u, "edge-9", AUTH_WRITE));
	assert_int_equal(u.created_at, t.created_at);
	assert_int_equal(u.expires_at, t.expires_at);
	assert_string_equal(u.description, t.description);
	auth_token_release(&u);
	assert_int_equal(auth_token_from_json("{\"id\":\"x\"}", &u, &err), -1);
	assert_int_equal(auth_token_from_json("not json", &u, &err), -1);
	auth_token_release(&t);
	buf_release(&json);
	buf_release(&err);
	buf_release(&text);
}

/* The cache against a real store: valid, wrong secret, revoked, expired. */
static void test_check(void **state)
{
	static const char *const scopes[] = {"table:web:write", NULL};
	char dir[] = "/tmp/lr-auth-XXXXXX", spec[128], hdr[128], cmd[160];
	struct buf err = BUF_INIT, text = BUF_INIT, old_text = BUF_INIT;
	struct store *st = NULL;
	struct auth *auth = NULL;
	struct auth_token t, old;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(spec, sizeof(spec), "sqlite:%s/a.db", dir);
	assert_int_equal(store_open(spec, &st, &err), ST_OK);
	make_token(&t, scopes);
	assert_int_equal(auth_token_generate(&t, &text, &err), ST_OK);
	assert_int_equal(auth_store_put(st, &t, &err), ST_OK);
	make_token(&old, scopes);
	assert_int_equal(auth_token_generate(&old, &old_text, &err), ST_OK);
	old.expires_at = 1;
	assert_int_equal(auth_store_put(st, &old, &err), ST_OK);
	assert_int_equal(auth_new(spec, &auth, &err), ST_OK);

	snprintf(hdr, sizeof(hdr), "Bearer %s", text.buf);
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_WRITE), AUTH_OK);
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_READ), AUTH_OK);
	assert_int_equal(auth_check(auth, hdr, "api", AUTH_WRITE),
			 AUTH_FORBIDDEN);
	assert_int_equal(auth_check(auth, hdr, NULL, AUTH_WRITE),
			 AUTH_NEED_TABLE);
	snprintf(hdr, sizeof(hdr), "bearer  %s", text.buf);
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_WRITE), AUTH_OK);
	assert_int_equal(auth_check(auth, NULL, "web", AUTH_WRITE),
			 AUTH_UNAUTHENTICATED);
	assert_int_equal(auth_check(auth, text.buf, "web", AUTH_WRITE),
			 AUTH_UNAUTHENTICATED);
	snprintf(hdr, sizeof(hdr), "Basic %s", text.buf);
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_WRITE),
			 AUTH_UNAUTHENTICATED);
	/* the right id with another secret */
	snprintf(hdr, sizeof(hdr), "Bearer lr_%s_%s", t.id,
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_WRITE),
			 AUTH_UNAUTHENTICATED);
	/* an expired token is no token */
	snprintf(hdr, sizeof(hdr), "Bearer %s", old_text.buf);
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_WRITE),
			 AUTH_UNAUTHENTICATED);
	/* revoked: gone once the cache looks at the generation again */
	assert_int_equal(auth_store_revoke(st, t.id, &err), ST_OK);
	assert_int_equal(auth_store_revoke(st, t.id, &err), ST_NOT_FOUND);
	usleep((AUTH_REFRESH_MS + 100) * 1000);
	snprintf(hdr, sizeof(hdr), "Bearer %s", text.buf);
	assert_int_equal(auth_check(auth, hdr, "web", AUTH_WRITE),
			 AUTH_UNAUTHENTICATED);

	auth_free(auth);
	store_close(st);
	auth_token_release(&t);
	auth_token_release(&old);
	buf_release(&err);
	buf_release(&text);
	buf_release(&old_text);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_equal_ct),
		cmocka_unit_test(test_scope_parse),
		cmocka_unit_test(test_scope_match),
		cmocka_unit_test(test_expiry_and_duration),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
