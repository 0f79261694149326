/*
 * payload_parse() (shape parser first) against payload_parse_full() (jansson
 * only), and payload_parse_table() against payload_parse_table_full(), on the
 * sample payloads, hand-made edge cases and many deterministic mutations of
 * them: same status, message, field and payload every time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "payload.h"
#include "service.h"
#include "xalloc.h"
#include "banned.h"

#define MUTATIONS_PER_SEED 3000

static const char *const seed_files[] = {
	"sample-data/data.json",     "sample-data/single-candidate.json",
	"tests/golden/data.json",    "tests/golden/empty.json",
	"tests/golden/mixed.json",   "tests/golden/single-candidate.json",
	"tests/golden/options.json",
};

/* Edge cases each parser must agree on, valid ones first. */
static const char *const seed_texts[] = {
	"{\"table\":\"abc\",\"running\":[]}",
	" {\"running\" : [ ] , \"table\" : \"a.b-c_d\" , \"candidates\" : [ ] "
	"} \n",
	"{\"table\":\"abc\",\"running\":[{\"ip\":\"10.0.0.1\",\"id\":\"x\","
	"\"serviceName\":\"s\"}],"
	"\"candidates\":[{\"containers\":[{\"ip\":\"::FFFF:1.2.3.4\",\"id\":"
	"\"b\"},"
	"{\"id\":\"a\",\"ip\":\"2001:DB8::1\"},{\"id\":\"b\",\"ip\":\"10.0.0."
	"9\"}],"
	"\"predicate\":\"/Api/v1\",\"configMode\":\"path\",\"port\":\"080\","
	"\"serviceName\":\"s\",\"cookie\":null}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":65535,"
	"\"predicate\":\"Example.COM.\",\"cookie\":\"SID\"}]}",
	"{\"table\":\"abc\",\"running\":[{\"serviceName\":\"s\",\"id\":\"x\","
	"\"ip\":\"010.0.0.1\"}]}",
	"{\"table\":\"abc\",\"running\":[{\"serviceName\":\"s\",\"id\":\"x\","
	"\"ip\":\"1.2.3.256\"}]}",
	"{\"table\":\"abc\",\"running\":[{\"serviceName\":\"s\",\"id\":\"x\","
	"\"ip\":\"1.2.3\"}]}",
	"{\"table\":\"abc\",\"running\":[{\"serviceName\":\"s\",\"id\":\"x\","
	"\"ip\":\"0.0.0.0\"}]}",
	"{\"table\":\"abc\",\"running\":[{\"serviceName\":\"s\",\"id\":\"x\","
	"\"ip\":\"224.0.0.1\"},{\"serviceName\":\"s\",\"id\":\"y\","
	"\"ip\":\"255.255.255.255\"},{\"serviceName\":\"s\",\"id\":\"z\","
	"\"ip\":\"127.0.0.1\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":80,\"predicate\":\"h\",\"containers\":[{\"id\":\"a\","
	"\"ip\":\"::ffff:0.0.0.0\"},{\"id\":\"b\",\"ip\":\"ff02::1\"},"
	"{\"id\":\"c\",\"ip\":\"::\"}]}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":80,\"configMode\":\"path\",\"predicate\":"
	"\"a/%2e%2E/b\"}]}",
	"{\"running\":[{\"serviceName\":\"s\",\"id\":\"x\",\"ip\":\"10.0.0.1\"}"
	"]}",
	"{\"table\":\"abd\",\"running\":[]}",
	"{\"table\":\"abc\",\"running\":[],\"extra\":1}",
	"{\"table\":\"abc\",\"table\":\"abd\",\"running\":[]}",
	"{\"table\":\"a\\u0062c\",\"running\":[]}",
	"{\"table\":\"ab\",\"running\":[]}",
	"{\"table\":\"abc\",\"running\":{}}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":null}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":80.0,"
	"\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":1e2,"
	"\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":0,"
	"\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":65536,"
	"\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":080,"
	"\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":8,"
	"\"configMode\":null,\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":8,"
	"\"configMode\":\"HOST\",\"predicate\":\"h\"}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":8,"
	"\"predicate\":\"h\",\"cookie\":nul}]}",
	/* The service options: left to the full path, which must agree. */
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":8,\"predicate\":\"h\",\"balance\":\"source\","
	"\"cookie\":\"S\",\"cookieMode\":\"insert\",\"maxconn\":10,"
	"\"timeoutServer\":\"2m\",\"timeoutTunnel\":\"1h\",\"healthCheck\":"
	"{\"path\":\"/h\",\"expectStatus\":200,\"interval\":\"2s\","
	"\"rise\":2,\"fall\":3},\"containers\":[{\"id\":\"a\",\"ip\":"
	"\"10.0.0.1\",\"weight\":0}]}]}",
	"{\"table\":\"abc\",\"running\":[],\"candidates\":[{\"serviceName\":"
	"\"s\",\"port\":8,\"predicate\":\"h\",\"healthCheck\":{\"path\":"
	"\"/h\",\"extra\":1},\"containers\":[{\"id\":\"a\",\"ip\":"
	"\"10.0.0.1\",\"weight\":257}]}]}",
	"{\"table\":\"abc\",\"running\":[]} x",
	"{\"table\":\"abc\",\"running\":[]}\0",
	"[]",
	"",
};

static const char *const tokens[] = {
	"null",
	"\"x\"",
	"\"id\":\"a\",",
	"1e2",
	"\\u0041",
	"-1",
	"65536",
	"\"port\":80,",
	"{}",
	"[]",
	",",
	":",
	"\"",
	"\\",
	"true",
	"\"ip\":\"::1\",",
	"\"ip\":\"0.0.0.0\",",
	"%2e",
	"%2E.",
	"224.",
	"::ffff:",
	"\"cookie\":null,",
	"\"serviceName\":\"s\",",
	"\xc3\xa9",
	"\x7f",
	"0",
	"\t",
	"/",
	".",
};

static unsigned long rng_state = 88172645463325252UL;

static unsigned long rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void assert_same_service(const struct service *x,
				const struct service *y)
{
	size_t j;

	assert_string_equal(x->name, y->name);
	assert_int_equal(x->port, y->port);
	assert_int_equal(x->mode, y->mode);
	assert_string_equal(x->predicate, y->predicate);
	assert_int_equal(!x->cookie, !y->cookie);
	if (x->cookie)
		assert_string_equal(x->cookie, y->cookie);
	assert_int_equal(x->nr_containers, y->nr_containers);
	for (j = 0; j < x->nr_containers; j++) {
		assert_string_equal(x->containers[j].id, y->containers[j].id);
		assert_string_equal(x->containers[j].ip, y->containers[j].ip);
		assert_int_equal(x->containers[j].weight,
				 y->containers[j].weight);
	}
	assert_true(service_options_equal(&x->opts, &y->opts));
}

/* Either may have been parsed in place, its candidates parsed again here. */
static void assert_same_payload(struct payload *a, struct payload *b)
{
	struct service sa, sb;
	size_t i;

	assert_string_equal(a->table, b->table);
	assert_int_equal(a->nr_running, b->nr_running);
	for (i = 0; i < a->nr_running; i++) {
		assert_string_equal(a->running[i].service,
				    b->running[i].service);
		assert_string_equal(a->running[i].id, b->running[i].id);
		assert_string_equal(a->running[i].ip, b->running[i].ip);
	}
	memset(&sa, 0, sizeof(sa));
	memset(&sb, 0, sizeof(sb));
	assert_int_equal(payload_nr_candidates(a), payload_nr_candidates(b));
	for (i = 0; i < payload_nr_candidates(a); i++) {
		assert_string_equal(payload_candidate_name(a, i),
				    payload_candidate_name(b, i));
		assert_same_service(payload_candidate(a, i, &sa),
				    payload_candidate(b, i, &sb));
	}
	service_release(&sa);
	service_release(&sb);
}

/*
 * The parse in place, on a copy it may write, must give what the full path
 * gave (`st`, `err`, `field`, `full`), and leave the copy as it was once
 * failed or released.
 */
static void compare_in_place(const char *table, const char *json, size_t len,
			     enum status st, const struct buf *err,
			     const struct buf *field, struct payload *full)
{
	struct buf err3 = BUF_INIT, field3 = BUF_INIT;
	char *copy = xmalloc(len + 1);
	struct payload p3;
	enum status st3;

	if (len)
		memcpy(copy, json, len);
	st3 = payload_parse_table_in_place(&p3, table, copy, len, &err3,
					   &field3);
	if (st3 != st || strcmp(err3.buf, err->buf) ||
	    strcmp(field3.buf, field->buf))
		fail_msg("in place, table %s, input %.*s\n  in place: %d %s: "
			 "%s\n  full: %d %s: %s",
			 table ? table : "(none)", (int)len, json, (int)st3,
			 field3.buf, err3.buf, (int)st, field->buf, err->buf);
	if (st3 == ST_OK)
		assert_same_payload(&p3, full);
	else if (len)
		assert_memory_equal(copy, json, len);
	payload_release(&p3);
	if (len)
		assert_memory_equal(copy, json, len);
	free(copy);
	buf_release(&err3);
	buf_release(&field3);
}

/* The same for a call addressed to the table "abc" of most seeds. */
static void compare_table(const char *json, size_t len)
{
	struct buf err1 = BUF_INIT, field1 = BUF_INIT, err2 = BUF_INIT,
		   field2 = BUF_INIT;
	struct payload p1, p2;
	enum status st1, st2;

	st1 = payload_parse_table(&p1, "abc", json, len, &err1, &field1);
	st2 = payload_parse_table_full(&p2, "abc", json, len, &err2, &field2);
	if (st1 != st2 || strcmp(err1.buf, err2.buf) ||
	    strcmp(field1.buf, field2.buf))
		fail_msg("table input %.*s\n  fast+full: %d %s: %s\n  full: "
			 "%d %s: %s",
			 (int)len, json, (int)st1, field1.buf, err1.buf,
			 (int)st2, field2.buf, err2.buf);
	if (st1 == ST_OK) {
		assert_string_equal(p1.table, "abc");
		assert_same_payload(&p1, &p2);
	}
	compare_in_place("abc", json, len, st2, &err2, &field2, &p2);
	payload_release(&p1);
	payload_release(&p2);
	buf_release(&err1);
	buf_release(&field1);
	buf_release(&err2);
	buf_release(&field2);
}

/* Returns 1 when the input was valid. */
static int compare(const char *json, size_t len)
{
	struct buf err1 = BUF_INIT, field1 = BUF_INIT, err2 = BUF_INIT,
		   field2 = BUF_INIT;
	struct payload p1, p2;
	enum status st1, st2;

	payload_init(&p1);
	payload_init(&p2);
	st1 = payload_parse(&p1, json, len, &err1, &field1);
	st2 = payload_parse_full(&p2, json, len, &err2, &field2);
	if (st1 != st2 || strcmp(err1.buf, err2.buf) ||
	    strcmp(field1.buf, field2.buf))
		fail_msg(
			"input %.*s\n  fast+full: %d %s: %s\n  full: %d %s: %s",
			(int)len, json, (int)st1, field1.buf, err1.buf,
			(int)st2, field2.buf, err2.buf);
	if (st1 == ST_OK)
		assert_same_payload(&p1, &p2);
	compare_in_place(NULL, json, len, st2, &err2, &field2, &p2);
	payload_release(&p1);
	payload_release(&p2);
	buf_release(&err1);
	buf_release(&field1);
	buf_release(&err2);
	buf_release(&field2);
	compare_table(json, len);
	return st1 == ST_OK;
}

static void mutate(const struct buf *in, struct buf *out)
{
	size_t pos = in->len ? rng() % in->len : 0, n = 1 + rng() % 8;
	const char *tok;

	buf_reset(out);
	(void)buf_add(out, in->buf, in->len);
	switch (rng() % 4) {
	case 0: /* replace one byte */
		if (out->len)
			out->buf[pos] = tokens[rng() % ARRAY_SIZE(tokens)][0];
		break;
	case 1: /* delete a few bytes */
		if (pos + n > out->len)
			n = out->len - pos;
		memmove(out->buf + pos, out->buf + pos + n, out->len - pos - n);
		buf_setlen(out, out->len - n);
		break;
	case 2: /* insert a token */
		tok = tokens[rng() % ARRAY_SIZE(tokens)];
		buf_setlen(out, pos);
		(void)buf_addstr(out, tok);
		(void)buf_add(out, in->buf + pos, in->len - pos);
		break;
	default: /* repeat a few bytes */
		if (pos + n > in->len)
			n = in->len - pos;
		buf_setlen(out, pos + n);
		(void)buf_add(out, in->buf + pos, in->len - pos);
		break;
	}
}

static void fuzz_seed(const struct buf *seed, unsigned *valid)
{
	struct buf cur = BUF_INIT, next = BUF_INIT;
	unsigned i;

	*valid += (unsigned)compare(seed->buf, seed->len);
	(void)buf_add(&cur, seed->buf, seed->len);
	for (i = 0; i < MUTATIONS_PER_SEED; i++) {
		/* Mostly one mutation away from the seed, sometimes stacked. */
		if (rng() % 4 == 0) {
			buf_reset(&cur);
			(void)buf_add(&cur, seed->buf, seed->len);
		}
		mutate(&cur, &next);
		*valid += (unsigned)compare(next.buf, next.len);
		if (rng() % 2) {
			buf_reset(&cur);
			(void)buf_add(&cur, next.buf, next.len);
		}
	}
	buf_release(&cur);
	buf_release(&next);
}

static void read_file(const char *rel, struct buf *out)
{
	char path[4096];
	char chunk[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", LR_SOURCE_DIR, rel);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_add(out, chunk, n), 0);
	fclose(f);
}

static void test_files_and_mutations(void **state)
{
	unsigned valid = 0;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(seed_files); i++) {
		struct buf seed = BUF_INIT;

		read_file(seed_files[i], &seed);
		fuzz_seed(&seed, &valid);
		buf_release(&seed);
	}
	/* The mutations must not all be trivially invalid. */
	assert_true(valid > 100);
}

static void test_edge_cases_and_mutations(void **state)
{
	unsigned valid = 0;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(seed_texts); i++) {
		struct buf seed = BUF_INIT;

		(void)buf_addstr(&seed, seed_texts[i]);
		fuzz_seed(&seed, &valid);
		buf_release(&seed);
	}
	assert_true(valid > 100);
}

/* Parsed in place, the running entries' names and ids are the document's
 * own bytes, not copies; released, the document is as it was. */
static void test_in_place_references(const char *name, struct buf *doc)
{
	struct buf err = BUF_INIT, field = BUF_INIT, orig = BUF_INIT;
	uintptr_t lo = (uintptr_t)doc->buf, hi = lo + doc->len;
	struct payload p;
	size_t i;

	(void)buf_add(&orig, doc->buf, doc->len);
	assert_int_equal(payload_parse_table_in_place(&p, NULL, doc->buf,
						      doc->len, &err, &field),
			 ST_OK);
	assert_true(p.nr_running > 0);
	/* The candidates were checked, and are parsed again when asked. */
	assert_int_equal(p.candidates.nr, 0);
	assert_true(p.nr_lazy > 0);
	for (i = 0; i < p.nr_running; i++)
		if ((uintptr_t)p.running[i].service < lo ||
		    (uintptr_t)p.running[i].service >= hi ||
		    (uintptr_t)p.running[i].id < lo ||
		    (uintptr_t)p.running[i].id >= hi)
			fail_msg("%s: running[%zu] was copied", name, i);
	payload_release(&p);
	assert_memory_equal(doc->buf, orig.buf, doc->len);
	buf_release(&orig);
	buf_release(&err);
	buf_release(&field);
}

/*
 * The fast path still takes the payloads without service options (it fills
 * p->blocks, the full path never does), and leaves those with them to the
 * full path.
 */
static void test_fast_path_taken(void **state)
{
	static const char *const fast[] = {
		"sample-data/data.json",
		"sample-data/single-candidate.json",
		"tests/golden/single-candidate.json",
	};
	struct buf doc = BUF_INIT, err = BUF_INIT, field = BUF_INIT;
	struct payload p;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(fast); i++) {
		buf_reset(&doc);
		read_file(fast[i], &doc);
		assert_int_equal(
			payload_parse(&p, doc.buf, doc.len, &err, &field),
			ST_OK);
		if (!p.blocks)
			fail_msg("%s left the fast path", fast[i]);
		payload_release(&p);
		test_in_place_references(fast[i], &doc);
	}
	buf_reset(&doc);
	read_file("tests/golden/options.json", &doc);
	assert_int_equal(payload_parse(&p, doc.buf, doc.len, &err, &field),
			 ST_OK);
	assert_null(p.blocks);
	payload_release(&p);
	buf_release(&doc);
	buf_release(&err);
	buf_release(&field);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_path_taken),
		cmocka_unit_test(test_files_and_mutations),
		cmocka_unit_test(test_edge_cases_and_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
