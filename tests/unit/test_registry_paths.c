/*
 * The registry's shortcuts against the whole way, on random call sequences:
 * one long-lived registry (table cache, body digests, the store's memo of
 * what it read, calls tried with REGISTRY_NO_WAIT first as the HTTP polling
 * thread tries them, with the body's digest taken in random pieces as it
 * arrives, If-None-Match with the index of the last answer, and the body
 * token of an earlier answer instead of the body) and, on a
 * second SQLite file, a fresh registry for every call (nothing cached).
 * Between calls another process writes both files, or the settings change;
 * every answer must be the same bytes, and a 304 only where the whole way
 * answers what the caller already has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "registry.h"

#define STEPS	 600
#define TABLES	 3
#define SERVICES 5
#define IDS	 4

static char dir[] = "/tmp/lr-paths-XXXXXX";
static char spec_fast[300], spec_ref[300];
static unsigned long rng_state;
/* The body token of call()'s last answer ("": none). */
static char last_token[2 * REGISTRY_TOKEN_LEN + 1];

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)((rng_state >> 33) % n);
}

static struct registry *open_registry(const char *spec)
{
	struct registry_options opts = {spec, {.frontend_bind = ":80"}};
	struct registry *reg = NULL;
	struct buf err = BUF_INIT;

	if (registry_new(&opts, &reg, &err) != ST_OK)
		fail_msg("registry_new: %s", err.buf);
	buf_release(&err);
	return reg;
}

/*
 * One call's whole answer as text: status, error, field, index, then the
 * body; under `cond` (NULL: none). Returns whether it was a 304
 * (res.not_modified), which has no body.
 */
static int call(struct registry *reg, const char *table, const char *json,
		unsigned flags, const struct registry_cond *cond,
		struct buf *out)
{
	struct registry_result res;
	struct buf err = BUF_INIT, field = BUF_INIT;
	enum status st;
	size_t len;
	int not_modified;

	registry_result_init(&res);
	st = registry_call_table_if(reg, table, json, strlen(json), flags, cond,
				    &res, &err, &field);
	not_modified = st == ST_OK && res.not_modified;
	memcpy(last_token, res.token, sizeof(last_token));
	buf_reset(out);
	(void)buf_addf(out, "%s|%s|%s|%llu|", status_name(st), err.buf,
		       field.buf, (unsigned long long)res.index);
	if (not_modified)
		assert_null(res.share);
	if (st == ST_OK && (flags & REGISTRY_WANT_SERVICES)) {
		registry_result_json(&res, out);
	} else if (st == ST_OK && res.share) {
		const char *data = registry_share_data(res.share, &len);

		(void)buf_add(out, data, len);
	} else if (st == ST_OK) {
		(void)buf_add(out, res.config.buf, res.config.len);
	}
	registry_result_release(&res);
	buf_release(&err);
	buf_release(&field);
	return not_modified;
}

/* The index of an answer of call() that worked, else REGISTRY_INDEX_ANY. */
static uint64_t answer_index(const char *text)
{
	const char *p = text;
	int i;

	if (strncmp(text, "ok|", 3))
		return REGISTRY_INDEX_ANY;
	for (i = 0; i < 3; i++)
		p = strchr(p, '|') + 1;
	return strtoull(p, NULL, 10);
}

/* The body's digest in random pieces, as the HTTP front end takes it. */
static void digest_in_pieces(const char *json, unsigned char *out)
{
	struct registry_digest *d = registry_digest_new();
	size_t len = strlen(json), off = 0;

	while (off < len) {
		size_t n = 1 + rnd(64);

		if (n > len - off)
			n = len - off;
		registry_digest_add(d, json + off, n);
		off += n;
	}
	registry_digest_final(d, out);
}

/* A random payload over a small universe, so that calls repeat often. */
static void random_payload(const char *table, int with_table, struct buf *out)
{
	unsigned s, i, n = 0;

	buf_reset(out);
	(void)buf_addch(out, '{');
	if (with_table)
		(void)buf_addf(out, "\"table\":\"%s\",", table);
	(void)buf_addstr(out, "\"running\":[");
	for (s = 0; s < SERVICES; s++)
		for (i = 0; i < IDS; i++)
			if (!rnd(3))
				(void)buf_addf(
					out,
					"%s{\"serviceName\":\"s%u\","
					"\"id\":\"c%u\",\"ip\":\"10.0.%u."
					"%u\"}",
					n++ ? "," : "", s, i, s, 1 + rnd(2));
	(void)buf_addstr(out, "],\"candidates\":[");
	n = 0;
	for (s = 0; s < SERVICES; s++) {
		if (rnd(3))
			continue;
		(void)buf_addf(
			out,
			"%s{\"serviceName\":\"s%u\",\"port\":%u,"
			"\"predicate\":\"s%u.example\"%s,"
			"\"containers\":[{\"id\":\"c%u\",\"ip\":\"10.0.%u."
			"1\"}]}",
			n++ ? "," : "", s,
			!rnd(40) ? 0
			: rnd(2) ? 80
				 : 8080,
			s, rnd(2) ? ",\"cookie\":\"SID\"" : "", rnd(IDS), s);
	}
	(void)buf_addstr(out, "]}");
}

/* Another process makes this call on `spec`; its exit status is 0 when it
 * got ST_OK. */
static int call_elsewhere(const char *spec, const char *table, const char *json)
{
	pid_t pid = fork();
	int status = 0;

	if (pid < 0)
		fail_msg("fork failed");
	if (!pid) {
		struct registry *reg = open_registry(spec);
		struct registry_result res;
		struct buf err = BUF_INIT, field = BUF_INIT;
		enum status st;

		registry_result_init(&res);
		st = registry_call_table(reg, table, json, strlen(json), 0,
					 &res, &err, &field);
		_exit(st == ST_OK ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		fail_msg("the other process did not finish");
	return WEXITSTATUS(status);
}

static void put_settings(const char *spec, const char *table, const char *text)
{
	struct registry *reg = open_registry(spec);
	struct buf err = BUF_INIT;

	if (registry_settings_put(reg, table, text, strlen(text), &err) !=
	    ST_OK)
		fail_msg("settings: %s", err.buf);
	buf_release(&err);
	registry_free(reg);
}

static void test_shortcuts_answer_as_the_whole_way(void **state)
{
	static const char *const tables[TABLES] = {"tbl-a", "tbl-b", "tbl-c"};
	struct registry *fast, *ref;
	struct registry_stats stats;
	struct buf last[TABLES], body = BUF_INIT, a = BUF_INIT, b = BUF_INIT,
				 text = BUF_INIT;
	/* The last whole answer of each table (`seen`), its index and the
	 * flags and path it was asked with: what a caller has. */
	struct buf seen[TABLES];
	uint64_t seen_index[TABLES];
	unsigned seen_flags[TABLES];
	int seen_path[TABLES];
	unsigned char digest[REGISTRY_DIGEST_LEN];
	/* The last body token each table's answers gave, the body and the
	 * path form it stood for: a caller that sends the same bytes again
	 * may send the token instead. */
	char token[TABLES][2 * REGISTRY_TOKEN_LEN + 1];
	struct buf token_body[TABLES];
	int token_path[TABLES];
	unsigned step, inline_answers = 0, not_modified = 0, by_token = 0, t;

	(void)state;
	rng_state = (unsigned long)time(NULL);
	print_message("seed %lu\n", rng_state);
	for (t = 0; t < TABLES; t++) {
		buf_init(&last[t], 0);
		buf_init(&seen[t], 0);
		seen_index[t] = REGISTRY_INDEX_ANY;
		seen_flags[t] = 0;
		seen_path[t] = -1;
		token[t][0] = '\0';
		buf_init(&token_body[t], 0);
		token_path[t] = -1;
	}
	fast = open_registry(spec_fast);
	for (step = 0; step < STEPS; step++) {
		unsigned op = rnd(20), flags;
		int by_path = rnd(2), nm;
		const char *path_table;
		struct registry_cond cond = REGISTRY_COND_NONE;

		t = rnd(TABLES);
		/* Often asked as last time, so that 304s come up. */
		if (seen_path[t] >= 0 && rnd(2))
			by_path = seen_path[t];
		path_table = by_path ? tables[t] : NULL;
		if (op == 0) {
			/* Another process writes the same call to both. */
			random_payload(tables[t], 1, &body);
			assert_int_equal(
				call_elsewhere(spec_fast, NULL, body.buf),
				call_elsewhere(spec_ref, NULL, body.buf));
			continue;
		}
		if (op == 1) {
			const char *key = rnd(2) ? tables[t] : NULL;

			buf_setf(&text, "global: {maxconn: %u}", 100 + rnd(3));
			put_settings(spec_fast, key, text.buf);
			put_settings(spec_ref, key, text.buf);
			continue;
		}
		/* Mostly the table's last body again, byte for byte. */
		if (op < 12 && last[t].len) {
			buf_reset(&body);
			(void)buf_add(&body, last[t].buf, last[t].len);
		} else {
			random_payload(tables[t], !by_path || rnd(2), &body);
			if (!by_path) {
				buf_reset(&last[t]);
				(void)buf_add(&last[t], body.buf, body.len);
			}
		}
		flags = rnd(2) ? REGISTRY_WANT_SERVICES : REGISTRY_SHARE_CONFIG;
		if (seen_flags[t] && rnd(2))
			flags = seen_flags[t];
		if (rnd(2)) {
			digest_in_pieces(body.buf, digest);
			cond.digest = digest;
		}
		/* Asked as the caller of the last whole answer asks, now and
		 * then with an index it never had. */
		if (seen_flags[t] == flags && seen_path[t] == by_path &&
		    seen_index[t] != REGISTRY_INDEX_ANY && rnd(4))
			cond.have = seen_index[t] + (rnd(4) ? 0 : 1);
		nm = 0;
		if (cond.have != REGISTRY_INDEX_ANY && token[t][0] &&
		    token_path[t] == by_path &&
		    !strcmp(token_body[t].buf, body.buf) && rnd(2)) {
			struct registry_result res;
			struct buf err = BUF_INIT;
			char wrong[sizeof(token[t])];
			enum status st;

			registry_result_init(&res);
			/* One digit off stands for nothing. */
			memcpy(wrong, token[t], sizeof(wrong));
			wrong[rnd(2 * REGISTRY_TOKEN_LEN)] ^= 1;
			assert_int_not_equal(
				registry_try_token(fast, path_table, wrong,
						   cond.have, &res, &err),
				ST_OK);
			st = registry_try_token(fast, path_table, token[t],
						cond.have, &res, &err);
			if (st == ST_OK) {
				assert_true(res.not_modified);
				assert_true(res.index == cond.have);
				assert_string_equal(res.token, token[t]);
				nm = 1;
				by_token++;
			}
			registry_result_release(&res);
			buf_release(&err);
		}
		if (!nm) {
			nm = call(fast, path_table, body.buf,
				  flags | REGISTRY_NO_WAIT, &cond, &a);
			if (!strncmp(a.buf, "busy|", 5))
				nm = call(fast, path_table, body.buf, flags,
					  &cond, &a);
			else
				inline_answers++;
			if (last_token[0]) {
				memcpy(token[t], last_token, sizeof(token[t]));
				buf_reset(&token_body[t]);
				(void)buf_add(&token_body[t], body.buf,
					      body.len);
				token_path[t] = by_path;
			}
		}
		ref = open_registry(spec_ref);
		call(ref, path_table, body.buf, flags, NULL, &b);
		registry_free(ref);
		if (nm) {
			/* The caller has it: the whole way answers that. */
			not_modified++;
			if (answer_index(b.buf) != cond.have ||
			    strcmp(seen[t].buf, b.buf))
				fail_msg("step %u: 304, but the whole way "
					 "answered\n%s\nnot\n%s\nfor %s",
					 step, b.buf, seen[t].buf, body.buf);
			continue;
		}
		buf_reset(&seen[t]);
		(void)buf_add(&seen[t], a.buf, a.len);
		seen_index[t] = answer_index(a.buf);
		seen_flags[t] = flags;
		seen_path[t] = by_path;
		if (strcmp(a.buf, b.buf))
			fail_msg(
				"step %u: the shortcut answered\n%s\nthe whole "
				"way\n%s\nfor %s",
				step, a.buf, b.buf, body.buf);
	}
	registry_get_stats(fast, &stats);
	print_message("%u of %u calls answered without waiting, %lu from the "
		      "body digest, %u of them 304, %u by body token\n",
		      inline_answers, STEPS, stats.body_hits, not_modified,
		      by_token);
	assert_int_equal(stats.token_hits, by_token);
	assert_true(by_token > STEPS / 200);
	/* Every shortcut was taken, not only the whole way. */
	assert_true(inline_answers > STEPS / 10);
	assert_true(stats.body_hits > STEPS / 30);
	assert_true(not_modified > STEPS / 100);
	registry_free(fast);
	for (t = 0; t < TABLES; t++) {
		buf_release(&last[t]);
		buf_release(&seen[t]);
		buf_release(&token_body[t]);
	}
	buf_release(&body);
	buf_release(&a);
	buf_release(&b);
	buf_release(&text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shortcuts_answer_as_the_whole_way),
	};
	char cmd[128];
	int ret;

	if (!mkdtemp(dir))
		return 1;
	snprintf(spec_fast, sizeof(spec_fast), "sqlite:%s/fast.db", dir);
	snprintf(spec_ref, sizeof(spec_ref), "sqlite:%s/ref.db", dir);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		ret = 1;
	return ret;
}
