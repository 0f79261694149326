/* Unit tests for payload parsing: every validation rule with good and bad
 * values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "payload.h"
#include "service.h"
#include "xalloc.h"
#include "banned.h"

/* Long values, filled in by setup_long_values(). */
static char a3[4], a255[256], a256[257], a128[129], a129[130], a253[254],
	a254[255], a300[301], slash_a253[255];
static char host253[254], host253_dot[255], host254[255], label63[70],
	label64[70];

static void fill(char *dst, char c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
}

/* Host names of four labels (63 + 63 + 63 + last) joined by dots. */
static void fill_host(char *dst, size_t last)
{
	struct buf b = BUF_INIT;
	char label[64];

	fill(label, 'a', 63);
	assert_int_equal(buf_addf(&b, "%s.%s.%s.", label, label, label), 0);
	fill(label, 'b', last);
	assert_int_equal(buf_addstr(&b, label), 0);
	memcpy(dst, b.buf, b.len + 1);
	buf_release(&b);
}

static int setup_long_values(void **state)
{
	(void)state;
	fill(a3, 'a', 3);
	fill(a255, 'a', 255);
	fill(a256, 'a', 256);
	fill(a128, 'a', 128);
	fill(a129, 'a', 129);
	fill(a253, 'a', 253);
	fill(a254, 'a', 254);
	fill(a300, 'a', 300);
	slash_a253[0] = '/';
	fill(slash_a253 + 1, 'a', 253);
	fill_host(host253, 61);
	assert_int_equal(strlen(host253), 253);
	memcpy(host253_dot, host253, 253);
	host253_dot[253] = '.';
	host253_dot[254] = '\0';
	fill_host(host254, 62);
	assert_int_equal(strlen(host254), 254);
	fill(label63, 'c', 63);
	memcpy(label63 + 63, ".com", 5);
	fill(label64, 'c', 64);
	memcpy(label64 + 64, ".com", 5);
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static void assert_released(const struct payload *p)
{
	assert_null(p->table);
	assert_null(p->running);
	assert_int_equal(p->nr_running, 0);
	assert_null(p->candidates.items);
	assert_int_equal(p->candidates.nr, 0);
}

/* An error message must be one printable ASCII line. */
static void assert_printable(const char *s)
{
	for (; *s; s++)
		assert_true(*s >= 0x20 && *s < 0x7f);
}

static enum status parse_len(struct payload *p, const char *json, size_t len,
			     struct buf *err, struct buf *field)
{
	enum status st = payload_parse(p, json, len, err, field);

	if (st == ST_OK) {
		assert_int_equal(err->len, 0);
		assert_int_equal(field->len, 0);
	}
	return st;
}

static enum status parse(struct payload *p, const char *json, struct buf *err,
			 struct buf *field)
{
	return parse_len(p, json, strlen(json), err, field);
}

/*
 * `json` must be rejected with ST_INVALID at `want_field`, with `want_err`
 * (when not NULL) somewhere in the message, and leave `p` released.
 */
static void expect_invalid_len(const char *json, size_t len,
			       const char *want_field, const char *want_err)
{
	struct payload p;
	struct buf err = BUF_INIT, field = BUF_INIT;
	enum status st;

	payload_init(&p);
	st = parse_len(&p, json, len, &err, &field);
	if (st != ST_INVALID || strcmp(field.buf, want_field) ||
	    (want_err && !strstr(err.buf, want_err)))
		fail_msg("input %.200s\n  got status %d field \"%s\" err "
			 "\"%s\"\n"
			 "  want field \"%s\" err containing \"%s\"",
			 json, (int)st, field.buf, err.buf, want_field,
			 want_err ? want_err : "");
	assert_true(err.len > 0);
	assert_printable(err.buf);
	assert_released(&p);
	payload_release(&p);
	buf_release(&err);
	buf_release(&field);
}

static void expect_invalid(const char *json, const char *want_field,
			   const char *want_err)
{
	expect_invalid_len(json, strlen(json), want_field, want_err);
}

/* Parse `json`, which must be valid; the caller releases `p`. */
static void expect_valid(struct payload *p, const char *json)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	enum status st;

	payload_init(p);
	st = parse(p, json, &err, &field);
	if (st != ST_OK)
		fail_msg("input %.300s\n  rejected: field \"%s\" err \"%s\"",
			 json, field.buf, err.buf);
	buf_release(&err);
	buf_release(&field);
}

/* `tmpl` with its one "%s" replaced by `value`, into `out`. */
static void fill_template(struct buf *out, const char *tmpl, const char *value)
{
	const char *at = strstr(tmpl, "%s");

	assert_non_null(at);
	buf_reset(out);
	assert_int_equal(buf_add(out, tmpl, (size_t)(at - tmpl)), 0);
	assert_int_equal(buf_addstr(out, value), 0);
	assert_int_equal(buf_addstr(out, at + 2), 0);
}

/* The JSON string literal of a plain value. */
static void json_literal(struct buf *out, const char *value)
{
	buf_reset(out);
	assert_int_equal(buf_addjson(out, value, strlen(value)), 0);
}

/* ---- one slot per string field ---------------------------------------- */

#define RUN0  "{\"serviceName\":\"a\",\"id\":\"i\",\"ip\":\"10.0.0.1\"}"
#define CAND0 "{\"serviceName\":\"a\",\"port\":80,\"predicate\":\"a.example\"}"
#define CTR0  "{\"id\":\"x\",\"ip\":\"10.0.0.1\"}"
#define CANDS(second)                                                          \
	"{\"table\":\"tbl\",\"running\":[],\"candidates\":[" CAND0 "," second  \
	"]}"

static const char *get_table(const struct payload *p)
{
	return p->table;
}

static const char *get_running_service(const struct payload *p)
{
	return p->running[1].service;
}

static const char *get_running_id(const struct payload *p)
{
	return p->running[1].id;
}

static const char *get_running_ip(const struct payload *p)
{
	return p->running[1].ip;
}

static const char *get_cand_name(const struct payload *p)
{
	return p->candidates.items[1].name;
}

static const char *get_cand_mode(const struct payload *p)
{
	return config_mode_name(p->candidates.items[1].mode);
}

static const char *get_cand_predicate(const struct payload *p)
{
	return p->candidates.items[1].predicate;
}

static const char *get_cand_cookie(const struct payload *p)
{
	return p->candidates.items[1].cookie;
}

/* The second container in the payload is the one with address 10.0.0.2. */
static const struct container *second_container(const struct payload *p)
{
	const struct service *svc = &p->candidates.items[1];
	size_t i;

	assert_int_equal(svc->nr_containers, 2);
	for (i = 0; i < svc->nr_containers; i++)
		if (!strcmp(svc->containers[i].ip, "10.0.0.2") ||
		    strcmp(svc->containers[i].id, "x"))
			return &svc->containers[i];
	fail_msg("second container not found");
	return NULL;
}

static const char *get_ctr_id(const struct payload *p)
{
	return second_container(p)->id;
}

static const char *get_ctr_ip(const struct payload *p)
{
	return second_container(p)->ip;
}

static char port_text[16];

static const char *get_cand_port(const struct payload *p)
{
	snprintf(port_text, sizeof(port_text), "%u",
		 p->candidates.items[1].port);
	return port_text;
}

struct good {
	const char *in;	  /* plain value, sent as a JSON string */
	const char *want; /* canonical form; NULL: same as `in` */
};

struct slot {
	const char *name;
	const char *tmpl; /* the payload with one %s for the JSON value */
	const char *field;
	const char *(*get)(const struct payload *p);
	const char *type_err;
	int null_ok; /* JSON null is accepted (means absent) */
	const struct good *good;
	const char *const *bad; /* plain values, sent as JSON strings */
};

static const struct good table_good[] = {
	{"abc", NULL}, {"astro", NULL}, {"A-b_c.d", NULL}, {"0.9", NULL},
	{a3, NULL},    {a255, NULL},	{NULL, NULL},
};
static const char *const table_bad[] = {
	"ab", "a", "a:b", "a/b", "a@b", "a~b", "a+b", a256, NULL,
};

static const struct good name_good[] = {
	{"a", NULL}, {"app1", NULL}, {"app.1:x-y_Z", NULL}, {"0", NULL},
	{"-", NULL}, {"::", NULL},   {a128, NULL},	    {NULL, NULL},
};
static const char *const name_bad[] = {
	"a/b", "a@b", "a,b", "a;b", "a=b", "a*b", "a~b", "a!b", "a%b",
	"a&b", "a+b", "a(b", "a)b", "a<b", "a>b", "a|b", a129,	NULL,
};

static const struct good ip_good[] = {
	{"10.0.0.1", NULL},
	{"127.0.0.1", NULL},
	{"223.255.255.255", NULL},
	{"240.0.0.1", NULL},
	{"255.255.255.254", NULL},
	{"::1", NULL},
	{"::ffff:127.0.0.1", NULL},
	{"::ffff:223.255.255.255", NULL},
	{"fe80::1", NULL},
	{"feff::1", NULL},
	{"2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
	{"0:0:0:0:0:0:0:1", "::1"},
	{"2001:DB8::A:0:0:1", "2001:db8::a:0:0:1"},
	{"::FFFF:1.2.3.4", "::ffff:1.2.3.4"},
	{"::ffff:0102:0304", "::ffff:1.2.3.4"},
	{NULL, NULL},
};
static const char *const ip_bad[] = {
	"010.0.0.1",
	"1.2.3",
	"1.2.3.4.5",
	"256.0.0.1",
	"1.2.3.4:80",
	"localhost",
	"0x7f.0.0.1",
	"fe80::1%eth0",
	"fe80::1%25eth0",
	"[::1]",
	"::1::",
	"1::2::3",
	"12345::1",
	"::ffff:1.2.3.4.5",
	"1.2.3.-4",
	"1.2.3.4/32",
	":::",
	"127.1",
	"1.2.3.4.",
	/* Unspecified, multicast and broadcast, also as IPv4-mapped. */
	"0.0.0.0",
	"::",
	"0:0:0:0:0:0:0:0",
	"224.0.0.0",
	"224.0.0.1",
	"239.255.255.255",
	"255.255.255.255",
	"ff00::",
	"ff02::1",
	"FF05::1:3",
	"::ffff:0.0.0.0",
	"::ffff:0:0",
	"::FFFF:224.0.0.1",
	"::ffff:e000:1",
	"::ffff:239.1.2.3",
	"::ffff:255.255.255.255",
	"::ffff:ffff:ffff",
	NULL,
};

static const struct good mode_good[] = {
	{"host", NULL},
	{"path", NULL},
	{NULL, NULL},
};
static const char *const mode_bad[] = {
	"HOST", "Path", "tcp", "host ", "hostpath", NULL,
};

static const struct good host_good[] = {
	{"example.com", NULL},
	{"First.Example.COM.", "first.example.com"},
	{"LOCALHOST", "localhost"},
	{"a", NULL},
	{"a-b.c-d", NULL},
	{"a--b.example", NULL},
	{"xn--bcher-kva.example", NULL},
	{"1.2.3.4", NULL},
	{"123", NULL},
	{label63, NULL},
	{host253, NULL},
	{host253_dot, host253},
	{NULL, NULL},
};
static const char *const host_bad[] = {
	"-a.com", "a-.com", "a.-b.com", "a.b-",	   "a..b",	    ".",
	"..",	  ".a",	    "a.com..",	"a_b.com", "*.example.com", "a.com:80",
	"a/b",	  "/a",	    "a.b:",	"[::1]",   label64,	    host254,
	NULL,
};

static const struct good path_good[] = {
	{"service", NULL}, {"/service", "service"},
	{"a/b/c", NULL},   {"/api/v1.2/x~y", "api/v1.2/x~y"},
	{"a%20b", NULL},   {"A%2fB", NULL},
	{"API", NULL},	   {"@:!&()*+,;=-._~", NULL},
	{"..a", NULL},	   {"a..", NULL},
	{"...", NULL},	   {"%2e%2e%2e", NULL},
	{"%2e%2ea", NULL}, {"a%2E", NULL},
	{".%2e.", NULL},   {"%2e%2e.", NULL},
	{a253, NULL},	   {slash_a253, a253},
	{NULL, NULL},
};
static const char *const path_bad[] = {
	"/",
	"//a",
	"a//b",
	"a/",
	"/a/",
	".",
	"..",
	"a/./b",
	"a/../b",
	"./a",
	"a/..",
	"a%2",
	"a%zz",
	"a%",
	"%",
	"%g0",
	"a?b",
	"a[b",
	"a]b",
	"a<b",
	"a>b",
	"a|b",
	"a^b",
	"a\"b",
	a254,
	/* Dot segments percent-encoded, in any case and mix. */
	"%2e",
	"%2E",
	"%2e%2e",
	"%2E%2E",
	"%2e%2E",
	".%2e",
	"%2e.",
	"%2E.",
	"a/%2e%2e/b",
	"a/%2E",
	"%2e/a",
	"a/.%2E/b",
	"/%2e%2e",
	"a/%2e%2e",
	NULL,
};

static const struct good cookie_good[] = {
	{"JSESSIONID", NULL}, {"SERVERID", NULL},
	{"a", NULL},	      {"a!b%c&d*e+f-g.h^i_j|k~l", NULL},
	{a128, NULL},	      {NULL, NULL},
};
static const char *const cookie_bad[] = {
	"a=b", "a;b", "a,b", "a@b", "a:b", "a/b", "a[b", "a]b",	 "a?b", "a(b",
	"a)b", "a<b", "a>b", "#a",  "$a",  "a'b", "a`b", "a\"b", a129,	NULL,
};

static const struct good port_good[] = {
	{"1", "1"},	 {"80", "80"},	 {"8080", "8080"}, {"65535", "65535"},
	{"00080", "80"}, {"00001", "1"}, {NULL, NULL},
};
static const char *const port_bad[] = {
	"0",   "65536", "99999", "123456", "000080", "-1",
	"+80", "0x50",	"1e2",	 "80.0",   "８０",   NULL,
};

#define MUST_BE_STRING "must be a string"

static const struct slot slots[] = {
	{"table", "{\"table\":%s,\"running\":[]}", "table", get_table,
	 MUST_BE_STRING, 0, table_good, table_bad},
	{"running.serviceName",
	 "{\"table\":\"tbl\",\"running\":[" RUN0
	 ",{\"serviceName\":%s,\"id\":\"i\",\"ip\":\"10.0.0.1\"}]}",
	 "running[1].serviceName", get_running_service, MUST_BE_STRING, 0,
	 name_good, name_bad},
	{"running.id",
	 "{\"table\":\"tbl\",\"running\":[" RUN0
	 ",{\"serviceName\":\"a\",\"id\":%s,\"ip\":\"10.0.0.1\"}]}",
	 "running[1].id", get_running_id, MUST_BE_STRING, 0, name_good,
	 name_bad},
	{"running.ip",
	 "{\"table\":\"tbl\",\"running\":[" RUN0
	 ",{\"serviceName\":\"a\",\"id\":\"i\",\"ip\":%s}]}",
	 "running[1].ip", get_running_ip, MUST_BE_STRING, 0, ip_good, ip_bad},
	{"candidates.serviceName",
	 CANDS("{\"serviceName\":%s,\"port\":80,\"predicate\":\"b\"}"),
	 "candidates[1].serviceName", get_cand_name, MUST_BE_STRING, 0,
	 name_good, name_bad},
	{"candidates.port",
	 CANDS("{\"serviceName\":\"b\",\"port\":%s,\"predicate\":\"b\"}"),
	 "candidates[1].port", get_cand_port,
	 "must be an integer from 1 to 65535 or a string of digits", 0,
	 port_good, port_bad},
	{"candidates.configMode",
	 CANDS("{\"serviceName\":\"b\",\"port\":80,\"configMode\":%s,"
	       "\"predicate\":\"b\"}"),
	 "candidates[1].configMode", get_cand_mode, MUST_BE_STRING, 0,
	 mode_good, mode_bad},
	{"candidates.predicate (host)",
	 CANDS("{\"serviceName\":\"b\",\"port\":80,\"configMode\":\"host\","
	       "\"predicate\":%s}"),
	 "candidates[1].predicate", get_cand_predicate, MUST_BE_STRING, 0,
	 host_good, host_bad},
	{"candidates.predicate (path)",
	 CANDS("{\"serviceName\":\"b\",\"port\":80,\"configMode\":\"path\","
	       "\"predicate\":%s}"),
	 "candidates[1].predicate", get_cand_predicate, MUST_BE_STRING, 0,
	 path_good, path_bad},
	{"candidates.cookie",
	 CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
	       "\"cookie\":%s}"),
	 "candidates[1].cookie", get_cand_cookie, "must be a string or null", 1,
	 cookie_good, cookie_bad},
	{"candidates.containers.id",
	 CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
	       "\"containers\":[" CTR0 ",{\"id\":%s,\"ip\":\"10.0.0.2\"}]}"),
	 "candidates[1].containers[1].id", get_ctr_id, MUST_BE_STRING, 0,
	 name_good, name_bad},
	{"candidates.containers.ip",
	 CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
	       "\"containers\":[" CTR0 ",{\"id\":\"y\",\"ip\":%s}]}"),
	 "candidates[1].containers[1].ip", get_ctr_ip, MUST_BE_STRING, 0,
	 ip_good, ip_bad},
};

/* Values no string field accepts (as JSON literals). */
static const char *const bad_everywhere[] = {
	"\"a\\nb\"",	    "\"a\\rb\"",      "\"a\\tb\"",	 "\"a b\"",
	"\" a\"",	    "\"a \"",	      "\"a#b\"",	 "\"a\\\"b\"",
	"\"a'b\"",	    "\"a`b\"",	      "\"a\\\\b\"",	 "\"a$b\"",
	"\"${x}\"",	    "\"%[x]\"",	      "\"a{b\"",	 "\"a}b\"",
	"\"a?b\"",	    "\"caf\\u00e9\"", "\"caf\xc3\xa9\"", "\"\\u2028\"",
	"\"a\\u0001b\"",    "\"a\\u007fb\"",  "\"a\\u00a0b\"",	 "\"\"",
	"\"x\\nbind :81\"", "\"a\\u0000b\"",
};

static void test_slots_good(void **state)
{
	struct buf doc = BUF_INIT, lit = BUF_INIT;
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(slots); i++) {
		const struct slot *s = &slots[i];

		for (j = 0; s->good[j].in; j++) {
			const struct good *g = &s->good[j];
			const char *want = g->want ? g->want : g->in;
			struct payload p;

			json_literal(&lit, g->in);
			fill_template(&doc, s->tmpl, lit.buf);
			expect_valid(&p, doc.buf);
			if (strcmp(s->get(&p), want))
				fail_msg("%s: \"%s\" gave \"%s\", want \"%s\"",
					 s->name, g->in, s->get(&p), want);
			payload_release(&p);
		}
	}
	buf_release(&doc);
	buf_release(&lit);
}

static void test_slots_bad(void **state)
{
	struct buf doc = BUF_INIT, lit = BUF_INIT;
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(slots); i++) {
		const struct slot *s = &slots[i];

		for (j = 0; s->bad[j]; j++) {
			json_literal(&lit, s->bad[j]);
			fill_template(&doc, s->tmpl, lit.buf);
			expect_invalid(doc.buf, s->field, NULL);
		}
	}
	buf_release(&doc);
	buf_release(&lit);
}

/* NUL inside a string is refused by jansson, so the document is at fault. */
static int is_nul_literal(const char *lit)
{
	return strstr(lit, "\\u0000") != NULL;
}

static void test_slots_bad_everywhere(void **state)
{
	struct buf doc = BUF_INIT, lit = BUF_INIT;
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(slots); i++) {
		const struct slot *s = &slots[i];

		for (j = 0; j < ARRAY_SIZE(bad_everywhere); j++) {
			const char *v = bad_everywhere[j];

			fill_template(&doc, s->tmpl, v);
			if (is_nul_literal(v))
				expect_invalid(doc.buf, "", "invalid JSON");
			else
				expect_invalid(doc.buf, s->field, NULL);
		}
		/* Too long for every field. */
		json_literal(&lit, a300);
		fill_template(&doc, s->tmpl, lit.buf);
		expect_invalid(doc.buf, s->field, NULL);
	}
	buf_release(&doc);
	buf_release(&lit);
}

static void test_slots_wrong_types(void **state)
{
	static const char *const wrong[] = {
		"1",	 "0",  "-1",	  "1.5", "true",
		"false", "[]", "[\"a\"]", "{}",	 "{\"a\":\"b\"}",
	};
	struct buf doc = BUF_INIT;
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(slots); i++) {
		const struct slot *s = &slots[i];
		int is_port = !strcmp(s->field, "candidates[1].port");

		for (j = 0; j < ARRAY_SIZE(wrong); j++) {
			/* Integers are a right type for the port. */
			if (is_port &&
			    (!strcmp(wrong[j], "1") || !strcmp(wrong[j], "0") ||
			     !strcmp(wrong[j], "-1")))
				continue;
			fill_template(&doc, s->tmpl, wrong[j]);
			expect_invalid(doc.buf, s->field, s->type_err);
		}
		fill_template(&doc, s->tmpl, "null");
		if (s->null_ok) {
			struct payload p;

			expect_valid(&p, doc.buf);
			assert_null(s->get(&p));
			payload_release(&p);
		} else {
			expect_invalid(doc.buf, s->field, s->type_err);
		}
	}
	buf_release(&doc);
}

/* ---- ports as JSON numbers -------------------------------------------- */

static void test_port_numbers(void **state)
{
	static const struct {
		const char *lit;
		unsigned want; /* 0: rejected */
		const char *err;
	} cases[] = {
		{"1", 1, NULL},
		{"80", 80, NULL},
		{"65535", 65535, NULL},
		{"0", 0, "invalid port 0: must be from 1 to 65535"},
		{"-1", 0, "invalid port -1: must be from 1 to 65535"},
		{"-80", 0, "must be from 1 to 65535"},
		{"65536", 0, "invalid port 65536: must be from 1 to 65535"},
		{"4294967376", 0, "must be from 1 to 65535"},
		{"80.0", 0, "must be an integer"},
		{"8e1", 0, "must be an integer"},
		{"1e2", 0, "must be an integer"},
		{"80.5", 0, "must be an integer"},
		{"\"80\"", 80, NULL},
		{"\"080\"", 80, NULL},
		{"\" 80\"", 0, "invalid port \" 80\": must be 1 to 5 digits"},
		{"\"80 \"", 0, "invalid port \"80 \": must be 1 to 5 digits"},
		{"\"\"", 0, "must be 1 to 5 digits"},
		{"\"0\"", 0, "invalid port \"0\": must be from 1 to 65535"},
		{"\"65536\"", 0, "must be from 1 to 65535"},
		{"\"99999999999\"", 0, "must be 1 to 5 digits"},
	};
	struct buf doc = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		fill_template(&doc,
			      CANDS("{\"serviceName\":\"b\",\"port\":%s,"
				    "\"predicate\":\"b\"}"),
			      cases[i].lit);
		if (cases[i].want) {
			struct payload p;

			expect_valid(&p, doc.buf);
			assert_int_equal(p.candidates.items[1].port,
					 cases[i].want);
			payload_release(&p);
		} else {
			expect_invalid(doc.buf, "candidates[1].port",
				       cases[i].err);
		}
	}
	/* Too big for jansson's integers: the document is refused. */
	expect_invalid(CANDS("{\"serviceName\":\"b\",\"port\":"
			     "99999999999999999999,\"predicate\":\"b\"}"),
		       "", "invalid JSON: too big integer");
	buf_release(&doc);
}

/* ---- required fields and containers of the wrong type ------------------- */

static void test_missing_fields(void **state)
{
	static const struct {
		const char *json;
		const char *field;
	} cases[] = {
		{"{\"running\":[]}", "table"},
		{"{\"table\":\"tbl\"}", "running"},
		{"{\"table\":\"tbl\",\"candidates\":[]}", "running"},
		{"{\"table\":\"tbl\",\"running\":[" RUN0
		 ",{\"id\":\"i\",\"ip\":\"10.0.0.1\"}]}",
		 "running[1].serviceName"},
		{"{\"table\":\"tbl\",\"running\":[{\"serviceName\":\"a\","
		 "\"ip\":\"10.0.0.1\"}]}",
		 "running[0].id"},
		{"{\"table\":\"tbl\",\"running\":[{\"serviceName\":\"a\","
		 "\"id\":\"i\"}]}",
		 "running[0].ip"},
		{"{\"table\":\"tbl\",\"running\":[{}]}",
		 "running[0].serviceName"},
		{CANDS("{\"port\":80,\"predicate\":\"b\"}"),
		 "candidates[1].serviceName"},
		{CANDS("{\"serviceName\":\"b\",\"predicate\":\"b\"}"),
		 "candidates[1].port"},
		{CANDS("{\"serviceName\":\"b\",\"port\":80}"),
		 "candidates[1].predicate"},
		{CANDS("{\"serviceName\":\"b\",\"port\":80,\"configMode\":"
		       "\"path\"}"),
		 "candidates[1].predicate"},
		{CANDS("{}"), "candidates[1].serviceName"},
		{CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
		       "\"containers\":[" CTR0 ",{\"ip\":\"10.0.0.2\"}]}"),
		 "candidates[1].containers[1].id"},
		{CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
		       "\"containers\":[" CTR0 ",{\"id\":\"y\"}]}"),
		 "candidates[1].containers[1].ip"},
		{CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
		       "\"containers\":[{}]}"),
		 "candidates[1].containers[0].id"},
		/* Keys are case-sensitive. */
		{"{\"Table\":\"tbl\",\"running\":[]}", "table"},
		{"{\"table\":\"tbl\",\"running\":[{\"servicename\":\"a\","
		 "\"id\":\"i\",\"ip\":\"10.0.0.1\"}]}",
		 "running[0].serviceName"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		expect_invalid(cases[i].json, cases[i].field, "is required");
}

static void test_wrong_container_types(void **state)
{
	static const char *const not_arrays[] = {
		"null", "\"x\"", "1", "true", "{}", "{\"a\":[]}",
	};
	static const char *const not_objects[] = {
		"null", "\"x\"", "1", "true", "[]", "[{}]",
	};
	struct buf doc = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(not_arrays); i++) {
		const char *v = not_arrays[i];

		fill_template(&doc, "{\"table\":\"tbl\",\"running\":%s}", v);
		expect_invalid(doc.buf, "running", "must be an array");
		fill_template(&doc,
			      "{\"table\":\"tbl\",\"running\":[],"
			      "\"candidates\":%s}",
			      v);
		expect_invalid(doc.buf, "candidates", "must be an array");
		fill_template(&doc,
			      CANDS("{\"serviceName\":\"b\",\"port\":80,"
				    "\"predicate\":\"b\",\"containers\":%s}"),
			      v);
		expect_invalid(doc.buf, "candidates[1].containers",
			       "must be an array");
	}
	for (i = 0; i < ARRAY_SIZE(not_objects); i++) {
		const char *v = not_objects[i];

		fill_template(&doc,
			      "{\"table\":\"tbl\",\"running\":[" RUN0 ",%s]}",
			      v);
		expect_invalid(doc.buf, "running[1]", "must be an object");
		fill_template(&doc, CANDS("%s"), v);
		expect_invalid(doc.buf, "candidates[1]", "must be an object");
		fill_template(&doc,
			      CANDS("{\"serviceName\":\"b\",\"port\":80,"
				    "\"predicate\":\"b\",\"containers\":[" CTR0
				    ",%s]}"),
			      v);
		expect_invalid(doc.buf, "candidates[1].containers[1]",
			       "must be an object");
	}
	buf_release(&doc);
}

/* ---- the document as a whole ------------------------------------------ */

static void test_not_an_object(void **state)
{
	static const char *const docs[] = {
		"[]",	   "[{\"table\":\"tbl\",\"running\":[]}]",
		"1",	   "\"x\"",
		"null",	   "true",
		"  {}  x",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(docs) - 1; i++)
		expect_invalid(docs[i], "", "must be a JSON object");
	expect_invalid(docs[i], "", "invalid JSON");
}

static void test_malformed(void **state)
{
	static const char *const docs[] = {
		"",
		"   ",
		"{",
		"{\"table\":}",
		"{\"table\":\"tbl\",\"running\":[],}",
		"{\"table\":\"tbl\",\"running\":[]} x",
		"{\"table\":\"tbl\",\"running\":[]}{}",
		"{'table':'tbl','running':[]}",
		"{\"table\":\"tbl\",\"running\":[NaN]}",
		"{\"table\":\"tbl\" /* c */,\"running\":[]}",
		"{\"table\":\"tb\\l\",\"running\":[]}",
		"{\"table\":\"tbl\",\"running\":[\"\\ud800\"]}",
		"{\"table\":\"a\nb\",\"running\":[]}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(docs); i++)
		expect_invalid(docs[i], "", "invalid JSON: ");
	expect_invalid("{\n  \"table\": }", "", " at line 2 column ");
	expect_invalid_len(NULL, 0, "", "invalid JSON");
}

static void test_invalid_utf8(void **state)
{
	static const char *const bytes[] = {
		"\xff",
		"\xfe",
		"\xc0\xaf",
		"\xe0\x80\xaf",
		"\xed\xa0\x80",
		"\xc3",
		"\x80",
		"\xf4\x90\x80\x80",
		"\xf8\x88\x80\x80\x80",
	};
	struct buf doc = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bytes); i++) {
		fill_template(&doc, "{\"table\":\"ab%s\",\"running\":[]}",
			      bytes[i]);
		expect_invalid(doc.buf, "", "invalid JSON: ");
		/* Also in a field that is otherwise ignored. */
		fill_template(&doc,
			      "{\"table\":\"tbl\",\"running\":[],\"x\":\"%s\"}",
			      bytes[i]);
		expect_invalid(doc.buf, "", "invalid JSON: ");
	}
	buf_release(&doc);
}

static void test_nul_bytes(void **state)
{
	static const char in_string[] = "{\"table\":\"ab\0c\",\"running\":[]}";
	static const char after[] = "{\"table\":\"abc\",\"running\":[]}\0";
	static const char escaped[] =
		"{\"table\":\"ab\\u0000c\",\"running\":[]}";

	(void)state;
	expect_invalid_len(in_string, sizeof(in_string) - 1, "",
			   "invalid JSON");
	expect_invalid_len(after, sizeof(after) - 1, "", "invalid JSON");
	expect_invalid(escaped, "", "invalid JSON: \\u0000 is not allowed");
}

static void test_duplicate_keys(void **state)
{
	static const struct {
		const char *json;
		const char *err;
	} cases[] = {
		{"{\"table\":\"tbl\",\"table\":\"other\",\"running\":[]}",
		 "invalid JSON: duplicate key \"table\" at line 1 column "},
		{"{\"table\":\"tbl\",\"running\":[],\"running\":[]}",
		 "duplicate key \"running\""},
		{"{\"table\":\"tbl\",\"running\":[{\"serviceName\":\"a\","
		 "\"id\":\"i\",\"ip\":\"10.0.0.1\",\"ip\":\"10.0.0.2\"}]}",
		 "duplicate key \"ip\""},
		{CANDS("{\"serviceName\":\"b\",\"port\":80,\"port\":81,"
		       "\"predicate\":\"b\"}"),
		 "duplicate key \"port\""},
		{CANDS("{\"serviceName\":\"b\",\"port\":80,\"predicate\":\"b\","
		       "\"containers\":[{\"id\":\"x\",\"id\":\"y\","
		       "\"ip\":\"10.0.0.1\"}]}"),
		 "duplicate key \"id\""},
		/* The same key spelt with an escape is still the same key. */
		{"{\"table\":\"tbl\",\"t\\u0061ble\":\"x\",\"running\":[]}",
		 "duplicate key \"t\\u0061ble\""},
		/* Unknown fields too: no object may say two things. */
		{"{\"table\":\"tbl\",\"running\":[],\"x\":1,\"x\":2}",
		 "duplicate key \"x\""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		expect_invalid(cases[i].json, "", cases[i].err);
}

static void nest(struct buf *doc, size_t depth, const char *inner)
{
	size_t i;

	buf_reset(doc);
	assert_int_equal(
		buf_addstr(doc, "{\"table\":\"tbl\",\"running\":[],\"x\":"), 0);
	for (i = 0; i < depth; i++)
		assert_int_equal(buf_addstr(doc, i % 2 ? "[" : "{\"k\":"), 0);
	assert_int_equal(buf_addstr(doc, inner), 0);
	for (i = depth; i-- > 0;)
		assert_int_equal(buf_addch(doc, i % 2 ? ']' : '}'), 0);
	assert_int_equal(buf_addch(doc, '}'), 0);
}

static void test_depth(void **state)
{
	struct buf doc = BUF_INIT;
	struct payload p;
	size_t big = (size_t)1 << 20, i;

	(void)state;
	/* The document object is level 1. */
	nest(&doc, PAYLOAD_MAX_DEPTH - 1, "1");
	expect_valid(&p, doc.buf);
	payload_release(&p);
	nest(&doc, PAYLOAD_MAX_DEPTH, "1");
	expect_invalid(doc.buf, "", "nested deeper than 16 levels");

	/* Brackets inside strings do not count, escaped quotes included. */
	nest(&doc, PAYLOAD_MAX_DEPTH - 1,
	     "\"[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{{{\\\"[[[[[[[[[[[[[[[[["
	     "[\\\\\"");
	expect_valid(&p, doc.buf);
	payload_release(&p);

	/* A megabyte of brackets fails fast, without recursing. */
	buf_reset(&doc);
	for (i = 0; i < big; i++)
		assert_int_equal(buf_addch(&doc, '['), 0);
	expect_invalid_len(doc.buf, doc.len, "",
			   "nested deeper than 16 levels");
	buf_reset(&doc);
	for (i = 0; i < big / 5; i++)
		assert_int_equal(buf_addstr(&doc, "{\"a\":"), 0);
	expect_invalid_len(doc.buf, doc.len, "", "at line 1 column 81");
	/* Closing brackets alone are jansson's to refuse. */
	buf_reset(&doc);
	for (i = 0; i < big; i++)
		assert_int_equal(buf_addch(&doc, ']'), 0);
	expect_invalid_len(doc.buf, doc.len, "", "invalid JSON");
	buf_release(&doc);
}

/* ---- whole payloads --------------------------------------------------- */

static const char spec_example[] =
	"{\n"
	"  \"table\": \"astro\",\n"
	"  \"running\": [\n"
	"    { \"serviceName\": \"app1\", \"id\": \"a23nj53h3j4\", \"ip\": "
	"\"192.168.1.9\" }\n"
	"  ],\n"
	"  \"candidates\": [\n"
	"    {\n"
	"      \"serviceName\": \"app1\",\n"
	"      \"port\": 80,\n"
	"      \"configMode\": \"host\",\n"
	"      \"predicate\": \"first.example.com\",\n"
	"      \"cookie\": \"JSESSIONID\",\n"
	"      \"containers\": [ { \"id\": \"a23nj53h3j4\", \"ip\": "
	"\"192.168.1.9\" } ]\n"
	"    }\n"
	"  ]\n"
	"}\n";

static void test_spec_example(void **state)
{
	struct payload p;
	const struct service *svc;

	(void)state;
	expect_valid(&p, spec_example);
	assert_string_equal(p.table, "astro");
	assert_int_equal(p.nr_running, 1);
	assert_string_equal(p.running[0].service, "app1");
	assert_string_equal(p.running[0].id, "a23nj53h3j4");
	assert_string_equal(p.running[0].ip, "192.168.1.9");
	assert_int_equal(p.candidates.nr, 1);
	svc = &p.candidates.items[0];
	assert_string_equal(svc->name, "app1");
	assert_int_equal(svc->port, 80);
	assert_int_equal(svc->mode, CONFIG_MODE_HOST);
	assert_string_equal(svc->predicate, "first.example.com");
	assert_string_equal(svc->cookie, "JSESSIONID");
	assert_int_equal(svc->nr_containers, 1);
	assert_string_equal(svc->containers[0].id, "a23nj53h3j4");
	assert_string_equal(svc->containers[0].ip, "192.168.1.9");
	assert_int_equal(svc->created_at, 0);
	assert_int_equal(svc->version, 0);
	payload_release(&p);
	assert_released(&p);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_add(&b, chunk, n), 0);
	fclose(f);
	return buf_detach(&b, len);
}

static void test_sample_data(void **state)
{
	static const char *const files[] = {"data.json",
					    "single-candidate.json"};
	size_t i, found = 0;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(files); i++) {
		struct buf path = BUF_INIT, err = BUF_INIT, field = BUF_INIT;
		struct payload p;
		size_t len;
		char *json;

		assert_int_equal(buf_addf(&path, "%s/sample-data/%s",
					  LR_SOURCE_DIR, files[i]),
				 0);
		json = read_file(path.buf, &len);
		buf_release(&path);
		if (!json)
			continue;
		found++;
		payload_init(&p);
		if (payload_parse(&p, json, len, &err, &field) != ST_OK)
			fail_msg("%s: %s: %s", files[i], field.buf, err.buf);
		assert_string_equal(p.table, "astro");
		payload_release(&p);
		buf_release(&err);
		buf_release(&field);
		free(json);
	}
	if (!found)
		skip();
}

static void test_minimal_and_defaults(void **state)
{
	struct payload p;

	(void)state;
	expect_valid(&p, "{\"table\":\"tbl\",\"running\":[]}");
	assert_string_equal(p.table, "tbl");
	assert_int_equal(p.nr_running, 0);
	assert_int_equal(p.candidates.nr, 0);
	payload_release(&p);

	expect_valid(&p,
		     "{\"table\":\"tbl\",\"running\":[],\"candidates\":[]}");
	assert_int_equal(p.candidates.nr, 0);
	payload_release(&p);

	/* configMode, cookie and containers are optional. */
	expect_valid(&p, CANDS("{\"serviceName\":\"b\",\"port\":\"8080\","
			       "\"predicate\":\"B.Example\"}"));
	assert_int_equal(p.candidates.nr, 2);
	assert_int_equal(p.candidates.items[1].mode, CONFIG_MODE_HOST);
	assert_string_equal(p.candidates.items[1].predicate, "b.example");
	assert_int_equal(p.candidates.items[1].port, 8080);
	assert_null(p.candidates.items[1].cookie);
	assert_int_equal(p.candidates.items[1].nr_containers, 0);
	assert_null(p.candidates.items[1].containers);
	payload_release(&p);

	/* The predicate is checked by the mode, whatever the key order. */
	expect_valid(&p,
		     CANDS("{\"predicate\":\"/Api/V1\",\"serviceName\":\"b\","
			   "\"configMode\":\"path\",\"port\":80}"));
	assert_int_equal(p.candidates.items[1].mode, CONFIG_MODE_PATH);
	assert_string_equal(p.candidates.items[1].predicate, "Api/V1");
	payload_release(&p);
	expect_invalid(CANDS("{\"predicate\":\"/api\",\"serviceName\":\"b\","
			     "\"port\":80}"),
		       "candidates[1].predicate", "invalid host name \"/api\"");
	expect_invalid(CANDS("{\"predicate\":\"a.b/c\",\"serviceName\":\"b\","
			     "\"port\":80}"),
		       "candidates[1].predicate", NULL);
}

static void test_unknown_fields_ignored(void **state)
{
	struct payload p;

	(void)state;
	expect_valid(
		&p,
		"{\"version\":2,\"table\":\"tbl\",\"extra\":{\"a\":[1,2]},"
		"\"running\":[{\"serviceName\":\"a\",\"id\":\"i\","
		"\"ip\":\"10.0.0.1\",\"labels\":{\"x\":\"y z\\n\"}}],"
		"\"candidates\":[{\"serviceName\":\"a\",\"port\":80,"
		"\"predicate\":\"a\",\"weight\":null,\"containers\":"
		"[{\"id\":\"c\",\"ip\":\"::1\",\"name\":\"$bad #value\"}]}]}");
	assert_int_equal(p.nr_running, 1);
	assert_int_equal(p.candidates.nr, 1);
	assert_int_equal(p.candidates.items[0].nr_containers, 1);
	payload_release(&p);
}

static void test_containers_sorted_unique(void **state)
{
	struct payload p;
	const struct service *svc;

	(void)state;
	expect_valid(&p, CANDS("{\"serviceName\":\"b\",\"port\":80,"
			       "\"predicate\":\"b\",\"containers\":["
			       "{\"id\":\"m\",\"ip\":\"10.0.0.1\"},"
			       "{\"id\":\"b\",\"ip\":\"10.0.0.2\"},"
			       "{\"id\":\"z\",\"ip\":\"10.0.0.3\"},"
			       "{\"id\":\"b\",\"ip\":\"10.0.0.4\"},"
			       "{\"id\":\"B\",\"ip\":\"10.0.0.5\"},"
			       "{\"id\":\"a\",\"ip\":\"2001:DB8::1\"},"
			       "{\"id\":\"m\",\"ip\":\"10.0.0.1\"}]}"));
	svc = &p.candidates.items[1];
	assert_int_equal(svc->nr_containers, 5);
	assert_string_equal(svc->containers[0].id, "B");
	assert_string_equal(svc->containers[1].id, "a");
	assert_string_equal(svc->containers[1].ip, "2001:db8::1");
	assert_string_equal(svc->containers[2].id, "b");
	assert_string_equal(svc->containers[2].ip, "10.0.0.4");
	assert_string_equal(svc->containers[3].id, "m");
	assert_string_equal(svc->containers[4].id, "z");
	payload_release(&p);

	/* An error after duplicates still reports the index in the payload. */
	expect_invalid(
		CANDS("{\"serviceName\":\"b\",\"port\":80,"
		      "\"predicate\":\"b\",\"containers\":["
		      "{\"id\":\"b\",\"ip\":\"10.0.0.2\"},"
		      "{\"id\":\"b\",\"ip\":\"10.0.0.4\"},"
		      "{\"id\":\"c\",\"ip\":\"10.0.0.256\"}]}"),
		"candidates[1].containers[2].ip",
		"invalid ip \"10.0.0.256\": not an IPv4 or IPv6 address");
}

static void test_candidates_in_payload_order(void **state)
{
	struct payload p;

	(void)state;
	expect_valid(
		&p, "{\"table\":\"tbl\",\"running\":["
		    "{\"serviceName\":\"z\",\"id\":\"1\",\"ip\":\"10.0.0.1\"},"
		    "{\"serviceName\":\"a\",\"id\":\"1\",\"ip\":\"10.0.0.1\"},"
		    "{\"serviceName\":\"z\",\"id\":\"1\",\"ip\":\"10.0.0.2\"}],"
		    "\"candidates\":["
		    "{\"serviceName\":\"z\",\"port\":1,\"predicate\":\"z\"},"
		    "{\"serviceName\":\"a\",\"port\":2,\"predicate\":\"a\"},"
		    "{\"serviceName\":\"z\",\"port\":3,\"predicate\":\"y\"}]}");
	/* Running entries are kept as sent, duplicates included. */
	assert_int_equal(p.nr_running, 3);
	assert_string_equal(p.running[0].service, "z");
	assert_string_equal(p.running[1].service, "a");
	assert_string_equal(p.running[2].ip, "10.0.0.2");
	assert_int_equal(p.candidates.nr, 3);
	assert_string_equal(p.candidates.items[0].name, "z");
	assert_int_equal(p.candidates.items[0].port, 1);
	assert_string_equal(p.candidates.items[1].name, "a");
	assert_string_equal(p.candidates.items[2].name, "z");
	assert_int_equal(p.candidates.items[2].port, 3);
	payload_release(&p);
}

/* Every error path must release what was built so far (ASan checks leaks). */
static void test_errors_release_everything(void **state)
{
	struct payload p;
	struct buf err = BUF_INIT, field = BUF_INIT;
	static const char late_error[] =
		"{\"table\":\"tbl\",\"running\":[" RUN0 "," RUN0 "],"
		"\"candidates\":[" CAND0 ",{\"serviceName\":\"b\",\"port\":80,"
		"\"predicate\":\"b\",\"cookie\":\"c\",\"containers\":[" CTR0
		",{\"id\":\"y\",\"ip\":\"10.0.0.2\"},{\"id\":\"z\",\"ip\":"
		"\"x\"}]}]}";

	(void)state;
	expect_invalid(late_error, "candidates[1].containers[2].ip", NULL);

	/* A parse that fails after a good one leaves nothing behind... */
	expect_valid(&p, spec_example);
	payload_release(&p);
	assert_int_equal(
		payload_parse(&p, late_error, strlen(late_error), &err, &field),
		ST_INVALID);
	assert_released(&p);
	/* ...and the next good one starts clean, with err and field reset. */
	assert_int_equal(payload_parse(&p, spec_example, strlen(spec_example),
				       &err, &field),
			 ST_OK);
	assert_int_equal(err.len, 0);
	assert_int_equal(field.len, 0);
	assert_string_equal(p.table, "astro");
	payload_release(&p);
	payload_release(&p);
	buf_release(&err);
	buf_release(&field);
}

/* Error text with a small cap (as the HTTP layer uses) stays bounded. */
static void test_error_messages(void **state)
{
	struct payload p;
	struct buf err, field;
	struct buf doc = BUF_INIT, lit = BUF_INIT;

	(void)state;
	buf_init(&err, BUF_CAP_MESSAGE);
	buf_init(&field, BUF_CAP_MESSAGE);
	json_literal(&lit, a300);
	fill_template(&doc, "{\"table\":%s,\"running\":[]}", lit.buf);
	payload_init(&p);
	assert_int_equal(payload_parse(&p, doc.buf, doc.len, &err, &field),
			 ST_INVALID);
	assert_string_equal(field.buf, "table");
	/* The value is shown cut short. */
	assert_non_null(strstr(err.buf, "...\": must be 3 to 255 characters"));
	assert_true(err.len < 200);

	expect_invalid(
		"{\"table\":\"tbl\",\"running\":[{\"serviceName\":"
		"\"a\\nb\",\"id\":\"i\",\"ip\":\"10.0.0.1\"}]}",
		"running[0].serviceName",
		"invalid name \"a\\nb\": only A-Z a-z 0-9 _ . : - are allowed");
	expect_invalid(
		"{\"table\":\"t b l\",\"running\":[]}", "table",
		"invalid table name \"t b l\": only A-Z a-z 0-9 _ - . are "
		"allowed");
	expect_invalid(CANDS("{\"serviceName\":\"b\",\"port\":80,"
			     "\"predicate\":\"b\",\"cookie\":\"a=b\"}"),
		       "candidates[1].cookie", "invalid cookie name \"a=b\"");
	expect_invalid(CANDS("{\"serviceName\":\"b\",\"port\":80,"
			     "\"configMode\":\"HOST\",\"predicate\":\"b\"}"),
		       "candidates[1].configMode",
		       "invalid configMode \"HOST\": must be \"host\"");
	expect_invalid("{\"table\":\"tbl\",\"running\":[{\"serviceName\":\"a\","
		       "\"id\":\"i\",\"ip\":\"caf\xc3\xa9\"}]}",
		       "running[0].ip", "invalid ip \"caf\\xc3\\xa9\"");
	buf_release(&err);
	buf_release(&field);
	buf_release(&doc);
	buf_release(&lit);
}

/* Addresses that would send traffic back to HAProxy or to no one server
 * (issue 11, defect 6): refused where they stand, with a reason. */
static void test_ip_refused(void **state)
{
	static const struct {
		const char *ip, *reason;
	} cases[] = {
		{"0.0.0.0", "the unspecified address"},
		{"::", "the unspecified address"},
		{"::ffff:0.0.0.0", "the unspecified address"},
		{"224.0.0.1", "multicast addresses (224.0.0.0/4)"},
		{"239.255.255.255", "multicast addresses (224.0.0.0/4)"},
		{"::ffff:224.0.0.1", "multicast addresses (224.0.0.0/4)"},
		{"ff02::1", "multicast addresses (ff00::/8)"},
		{"255.255.255.255", "the broadcast address"},
		{"::ffff:255.255.255.255", "the broadcast address"},
	};
	struct buf doc = BUF_INIT, want = BUF_INIT, out = BUF_INIT,
		   err = BUF_INIT, field = BUF_INIT;
	struct payload p;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		buf_reset(&want);
		assert_int_equal(buf_addf(&want, "invalid ip \"%s\": %s",
					  cases[i].ip, cases[i].reason),
				 0);
		assert_int_equal(payload_check_ip(cases[i].ip, &out, &err), -1);
		assert_int_equal(out.len, 0);
		assert_non_null(strstr(err.buf, want.buf));

		buf_reset(&doc);
		assert_int_equal(buf_addf(&doc,
					  "{\"table\":\"tbl\",\"running\":[{"
					  "\"serviceName\":\"a\",\"id\":\"i\","
					  "\"ip\":\"%s\"}]}",
					  cases[i].ip),
				 0);
		expect_invalid(doc.buf, "running[0].ip", want.buf);
		/* The same through jansson alone and addressed to a table. */
		assert_int_equal(
			payload_parse_full(&p, doc.buf, doc.len, &err, &field),
			ST_INVALID);
		assert_string_equal(field.buf, "running[0].ip");
		assert_non_null(strstr(err.buf, want.buf));
		assert_int_equal(payload_parse_table(&p, "tbl", doc.buf,
						     doc.len, &err, &field),
				 ST_INVALID);
		assert_string_equal(field.buf, "running[0].ip");

		buf_reset(&doc);
		assert_int_equal(
			buf_addf(&doc,
				 CANDS("{\"serviceName\":\"b\",\"port\":80,"
				       "\"predicate\":\"b\",\"containers\":["
				       "{\"id\":\"y\",\"ip\":\"%s\"}]}"),
				 cases[i].ip),
			0);
		expect_invalid(doc.buf, "candidates[1].containers[0].ip",
			       want.buf);
	}
	/* Loopback stays allowed, in each form. */
	assert_int_equal(payload_check_ip("127.0.0.1", &out, &err), 0);
	assert_int_equal(payload_check_ip("::1", &out, &err), 0);
	assert_int_equal(payload_check_ip("::FFFF:127.0.0.1", &out, &err), 0);
	assert_string_equal(out.buf, "::ffff:127.0.0.1");
	buf_release(&doc);
	buf_release(&want);
	buf_release(&out);
	buf_release(&err);
	buf_release(&field);
}

/* "%2e" is a '.' to the server behind HAProxy (issue 11, defect 7). */
static void test_path_encoded_dots(void **state)
{
	static const char *const bad[] = {
		"%2e%2e", "%2E%2E", "%2e%2E", "%2E%2e",	    ".%2e",
		"%2e.",	  "%2e",    "%2E",    "a/%2e%2e/b", "a/.%2E",
	};
	struct buf out = BUF_INIT, err = BUF_INIT, want = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		buf_reset(&want);
		assert_int_equal(buf_addf(&want,
					  "invalid path \"%s\": has a '.' or "
					  "'..' segment (percent-encoded)",
					  bad[i]),
				 0);
		assert_int_equal(payload_check_predicate(CONFIG_MODE_PATH,
							 bad[i], &out, &err),
				 -1);
		assert_string_equal(err.buf, want.buf);
		assert_int_equal(out.len, 0);
	}
	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_PATH, "a/..", &out, &err),
		-1);
	assert_string_equal(err.buf,
			    "invalid path \"a/..\": has a '.' or '..' segment");
	/* Three dots are a name, escaped or not; in host mode "%" is refused
	 * anyway. */
	assert_int_equal(payload_check_predicate(CONFIG_MODE_PATH, "%2e.%2E",
						 &out, &err),
			 0);
	assert_string_equal(out.buf, "%2e.%2E");
	expect_invalid(
		CANDS("{\"serviceName\":\"b\",\"port\":80,"
		      "\"configMode\":\"path\",\"predicate\":"
		      "\"/api/%2E%2e\"}"),
		"candidates[1].predicate",
		"invalid path \"/api/%2E%2e\": has a '.' or '..' segment "
		"(percent-encoded)");
	buf_release(&out);
	buf_release(&err);
	buf_release(&want);
}

/* Every byte, alone between two good ones, against the documented class of
 * names: the check and both parsers agree with it. */
static void test_name_bytes(void **state)
{
	static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "abcdefghijklmnopqrstuvwxyz"
				      "0123456789_.:-";
	struct buf doc = BUF_INIT, err = BUF_INIT, field = BUF_INIT;
	struct payload p;
	unsigned c;

	(void)state;
	for (c = 1; c < 256; c++) {
		char name[4] = {'a', (char)c, 'b', '\0'};
		int want = strchr(allowed, (int)c) != NULL;
		enum status st, st_full;

		assert_int_equal(payload_check_name(name, &err), want ? 0 : -1);
		buf_reset(&doc);
		assert_int_equal(buf_addstr(&doc,
					    "{\"table\":\"tbl\","
					    "\"running\":[{\"serviceName\":"),
				 0);
		/* Raw where JSON allows it, so the fast path sees the byte. */
		if (c >= 0x20 && c != '"' && c != '\\')
			assert_int_equal(buf_addf(&doc, "\"%s\"", name), 0);
		else
			assert_int_equal(buf_addjson(&doc, name, 3), 0);
		assert_int_equal(
			buf_addstr(&doc,
				   ",\"id\":\"i\",\"ip\":\"10.0.0.1\"}]}"),
			0);
		st = payload_parse(&p, doc.buf, doc.len, &err, &field);
		payload_release(&p);
		st_full =
			payload_parse_full(&p, doc.buf, doc.len, &err, &field);
		payload_release(&p);
		if (st != (want ? ST_OK : ST_INVALID) || st_full != st)
			fail_msg("byte 0x%02x: payload_parse %d, full %d, want "
				 "%s",
				 c, (int)st, (int)st_full,
				 want ? "accepted" : "refused");
	}
	buf_release(&doc);
	buf_release(&err);
	buf_release(&field);
}

/* ---- the validators on their own -------------------------------------- */

static void test_check_helpers(void **state)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	unsigned port = 0;

	(void)state;
	assert_int_equal(payload_check_table("astro", &err), 0);
	assert_int_equal(payload_check_table("as", &err), -1);
	assert_string_equal(err.buf,
			    "invalid table name \"as\": must be 3 to 255 "
			    "characters long");
	assert_int_equal(payload_check_table("", &err), -1);

	assert_int_equal(payload_check_name("app:1", &err), 0);
	assert_int_equal(payload_check_name("", &err), -1);
	assert_string_equal(err.buf, "name must not be empty");
	assert_int_equal(payload_check_name(a128, &err), 0);
	assert_int_equal(payload_check_name(a129, &err), -1);

	/* `out` is replaced, not appended to. */
	assert_int_equal(buf_addstr(&out, "junk"), 0);
	assert_int_equal(payload_check_ip("2001:DB8:0:0:0:0:0:1", &out, &err),
			 0);
	assert_string_equal(out.buf, "2001:db8::1");
	assert_int_equal(payload_check_ip("fe80::1%1", &out, &err), -1);
	assert_string_equal(
		err.buf, "invalid ip \"fe80::1%1\": scope ids are not allowed");
	assert_int_equal(out.len, 0);
	assert_int_equal(payload_check_ip("[::1]", &out, &err), -1);
	assert_non_null(strstr(err.buf, "without brackets"));

	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_HOST, "A.B.", &out, &err),
		0);
	assert_string_equal(out.buf, "a.b");
	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_PATH, "/A/b", &out, &err),
		0);
	assert_string_equal(out.buf, "A/b");
	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_PATH, "", &out, &err), -1);
	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_HOST, "", &out, &err), -1);
	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_PATH, "a/", &out, &err),
		-1);
	assert_string_equal(err.buf,
			    "invalid path \"a/\": must not end with '/'");
	assert_int_equal(
		payload_check_predicate(CONFIG_MODE_HOST, "a..b", &out, &err),
		-1);
	assert_string_equal(err.buf,
			    "invalid host name \"a..b\": has an empty label");

	assert_int_equal(payload_check_cookie("SID", &err), 0);
	assert_int_equal(payload_check_cookie("", &err), -1);
	assert_int_equal(payload_check_cookie("a b", &err), -1);

	assert_int_equal(payload_check_port_string("443", &port, &err), 0);
	assert_int_equal(port, 443);
	assert_int_equal(payload_check_port_string("0443", &port, &err), 0);
	assert_int_equal(port, 443);
	port = 7;
	assert_int_equal(payload_check_port_string("65536", &port, &err), -1);
	assert_int_equal(port, 7);
	assert_int_equal(payload_check_port_string("", &port, &err), -1);
	assert_int_equal(payload_check_port_string("８", &port, &err), -1);
	buf_release(&out);
	buf_release(&err);
}

/* ---- services back to JSON -------------------------------------------- */

static void test_services_json(void **state)
{
	static const char want[] =
		"[{\"serviceName\":\"a\",\"port\":80,\"configMode\":\"host\","
		"\"predicate\":\"a.example\",\"containers\":[]},"
		"{\"serviceName\":\"b\",\"port\":8080,\"configMode\":\"path\","
		"\"predicate\":\"api/v1\",\"cookie\":\"SID\",\"containers\":["
		"{\"id\":\"x\",\"ip\":\"10.0.0.1\"},{\"id\":\"y\",\"ip\":\"::"
		"1\"}]}]";
	struct payload p, again;
	struct buf out = BUF_INIT, doc = BUF_INIT;
	struct service_list list;
	struct service *svc;
	size_t i;

	(void)state;
	expect_valid(&p,
		     CANDS("{\"serviceName\":\"b\",\"port\":\"8080\","
			   "\"configMode\":\"path\",\"predicate\":\"/api/v1\","
			   "\"cookie\":\"SID\",\"containers\":["
			   "{\"id\":\"y\",\"ip\":\"0::1\"}," CTR0 "]}"));
	assert_int_equal(buf_addstr(&out, "prefix:"), 0);
	payload_services_json(&p.candidates, 0, &out);
	assert_string_equal(out.buf + strlen("prefix:"), want);

	/* What it writes parses back to the same services. */
	assert_int_equal(buf_addf(&doc,
				  "{\"table\":\"tbl\",\"running\":[],"
				  "\"candidates\":%s}",
				  out.buf + strlen("prefix:")),
			 0);
	expect_valid(&again, doc.buf);
	assert_int_equal(again.candidates.nr, p.candidates.nr);
	for (i = 0; i < p.candidates.nr; i++)
		assert_true(service_equal(&again.candidates.items[i],
					  &p.candidates.items[i]));
	payload_release(&again);
	payload_release(&p);

	/* Empty list. */
	buf_reset(&out);
	service_list_init(&list);
	payload_services_json(&list, 0, &out);
	assert_string_equal(out.buf, "[]");

	/* Strings are escaped, whatever they hold. */
	svc = service_list_append(&list);
	svc->name = xstrdup("q\"\\\n");
	svc->port = 1;
	svc->mode = CONFIG_MODE_HOST;
	svc->predicate = xstrdup("p");
	buf_reset(&out);
	payload_services_json(&list, 0, &out);
	assert_string_equal(out.buf,
			    "[{\"serviceName\":\"q\\\"\\\\\\n\",\"port\":1,"
			    "\"configMode\":\"host\",\"predicate\":\"p\","
			    "\"containers\":[]}]");

	/* Over the cap, `out` is left as it was. */
	buf_release(&out);
	buf_init(&out, 16);
	assert_int_equal(buf_addstr(&out, "keep"), 0);
	payload_services_json(&list, 0, &out);
	assert_string_equal(out.buf, "keep");

	service_list_release(&list);
	buf_release(&out);
	buf_release(&doc);
}

/* ---- service options -------------------------------------------------- */

#define OPT_DOC(members)                                                       \
	"{\"table\":\"tbl\",\"running\":[],\"candidates\":[{\"serviceName\":"  \
	"\"s\",\"port\":80,\"predicate\":\"h\"," members "}]}"

static void test_options_good(void **state)
{
	struct payload p;
	const struct service *svc;

	(void)state;
	expect_valid(&p, OPT_DOC("\"balance\":\"leastconn\",\"maxconn\":1,"
				 "\"timeoutServer\":\"500ms\","
				 "\"timeoutTunnel\":\"24h\",\"cookie\":\"S\","
				 "\"cookieMode\":\"insert\",\"healthCheck\":{"
				 "\"path\":\"/a/b%20c?x=1&y=2\","
				 "\"expectStatus\":599,\"interval\":\"100ms\","
				 "\"rise\":1,\"fall\":100},\"containers\":["
				 "{\"id\":\"a\",\"ip\":\"10.0.0.1\","
				 "\"weight\":0},{\"id\":\"b\",\"ip\":"
				 "\"10.0.0.2\",\"weight\":256},{\"id\":\"c\","
				 "\"ip\":\"10.0.0.3\"}]"));
	svc = &p.candidates.items[0];
	assert_int_equal(svc->opts.balance, BALANCE_LEASTCONN);
	assert_int_equal(svc->opts.cookie_mode, COOKIE_MODE_INSERT);
	assert_int_equal(svc->opts.maxconn, 1);
	assert_int_equal(svc->opts.timeout_server, 500);
	assert_int_equal(svc->opts.timeout_tunnel, 86400000);
	assert_string_equal(svc->opts.check_path, "/a/b%20c?x=1&y=2");
	assert_int_equal(svc->opts.check_status, 599);
	assert_int_equal(svc->opts.check_inter, 100);
	assert_int_equal(svc->opts.check_rise, 1);
	assert_int_equal(svc->opts.check_fall, 100);
	assert_int_equal(svc->containers[0].weight, 0);
	assert_int_equal(svc->containers[1].weight, 256);
	assert_int_equal(svc->containers[2].weight, WEIGHT_UNSET);
	payload_release(&p);

	/* Each balance, the other bounds, and the defaults. */
	expect_valid(&p, OPT_DOC("\"balance\":\"first\",\"maxconn\":1000000,"
				 "\"timeoutServer\":\"1ms\",\"healthCheck\":{"
				 "\"path\":\"/\",\"expectStatus\":100,"
				 "\"interval\":\"1h\"}"));
	svc = &p.candidates.items[0];
	assert_int_equal(svc->opts.balance, BALANCE_FIRST);
	assert_int_equal(svc->opts.maxconn, 1000000);
	assert_int_equal(svc->opts.timeout_server, 1);
	assert_int_equal(svc->opts.check_inter, 3600000);
	assert_int_equal(svc->opts.check_rise, 0);
	payload_release(&p);
	expect_valid(&p, OPT_DOC("\"balance\":\"source\","
				 "\"timeoutTunnel\":\"2m\","
				 "\"cookieMode\":\"prefix\""));
	svc = &p.candidates.items[0];
	assert_int_equal(svc->opts.balance, BALANCE_SOURCE);
	assert_int_equal(svc->opts.timeout_tunnel, 120000);
	assert_int_equal(svc->opts.cookie_mode, COOKIE_MODE_PREFIX);
	payload_release(&p);
	expect_valid(&p, OPT_DOC("\"balance\":\"roundrobin\""));
	assert_true(service_options_default(&p.candidates.items[0].opts));
	payload_release(&p);
}

static void test_options_bad(void **state)
{
	static const struct {
		const char *members, *field, *err;
	} cases[] = {
		/* wrong types */
		{"\"balance\":1", "candidates[0].balance", "must be a string"},
		{"\"balance\":null", "candidates[0].balance",
		 "must be a string"},
		{"\"maxconn\":\"10\"", "candidates[0].maxconn",
		 "must be an integer from 1 to 1000000"},
		{"\"maxconn\":1.5", "candidates[0].maxconn", "integer"},
		{"\"timeoutServer\":30", "candidates[0].timeoutServer",
		 "must be a string"},
		{"\"timeoutTunnel\":[]", "candidates[0].timeoutTunnel",
		 "must be a string"},
		{"\"cookie\":\"S\",\"cookieMode\":true",
		 "candidates[0].cookieMode", "must be a string"},
		{"\"healthCheck\":\"/h\"", "candidates[0].healthCheck",
		 "must be an object"},
		{"\"healthCheck\":{\"path\":1}",
		 "candidates[0].healthCheck.path", "must be a string"},
		{"\"healthCheck\":{\"path\":\"/\",\"expectStatus\":\"200\"}",
		 "candidates[0].healthCheck.expectStatus", "integer"},
		{"\"healthCheck\":{\"path\":\"/\",\"interval\":2000}",
		 "candidates[0].healthCheck.interval", "must be a string"},
		{"\"healthCheck\":{\"path\":\"/\",\"rise\":true}",
		 "candidates[0].healthCheck.rise", "integer"},
		{"\"containers\":[{\"id\":\"a\",\"ip\":\"10.0.0.1\","
		 "\"weight\":\"1\"}]",
		 "candidates[0].containers[0].weight", "integer"},
		/* unknown values and keys, missing members */
		{"\"balance\":\"random\"", "candidates[0].balance",
		 "\"roundrobin\", \"leastconn\", \"first\" or \"source\""},
		{"\"balance\":\"LEASTCONN\"", "candidates[0].balance", NULL},
		{"\"cookie\":\"S\",\"cookieMode\":\"rewrite\"",
		 "candidates[0].cookieMode", "\"prefix\" or \"insert\""},
		{"\"cookieMode\":\"insert\"", "candidates[0].cookieMode",
		 "needs a cookie"},
		{"\"cookie\":null,\"cookieMode\":\"insert\"",
		 "candidates[0].cookieMode", "needs a cookie"},
		{"\"healthCheck\":{}", "candidates[0].healthCheck.path",
		 "is required"},
		{"\"healthCheck\":{\"path\":\"/\",\"intervall\":\"2s\"}",
		 "candidates[0].healthCheck.intervall", "unknown key"},
		/* the client's key, escaped in the path */
		{"\"healthCheck\":{\"path\":\"/\",\"ri\\u000dse\":1}",
		 "candidates[0].healthCheck.ri\\x0dse", "unknown key"},
		/* out of range */
		{"\"maxconn\":0", "candidates[0].maxconn", "from 1 to 1000000"},
		{"\"maxconn\":1000001", "candidates[0].maxconn", NULL},
		{"\"maxconn\":-1", "candidates[0].maxconn", NULL},
		{"\"timeoutServer\":\"0ms\"", "candidates[0].timeoutServer",
		 "must be from 1ms to 24h"},
		{"\"timeoutServer\":\"25h\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutTunnel\":\"86400001ms\"",
		 "candidates[0].timeoutTunnel", NULL},
		{"\"timeoutTunnel\":\"99999999999h\"",
		 "candidates[0].timeoutTunnel", NULL},
		{"\"healthCheck\":{\"path\":\"/\",\"expectStatus\":99}",
		 "candidates[0].healthCheck.expectStatus", "from 100 to 599"},
		{"\"healthCheck\":{\"path\":\"/\",\"expectStatus\":600}",
		 "candidates[0].healthCheck.expectStatus", NULL},
		{"\"healthCheck\":{\"path\":\"/\",\"interval\":\"99ms\"}",
		 "candidates[0].healthCheck.interval",
		 "must be from 100ms to 1h"},
		{"\"healthCheck\":{\"path\":\"/\",\"interval\":\"61m\"}",
		 "candidates[0].healthCheck.interval", NULL},
		{"\"healthCheck\":{\"path\":\"/\",\"rise\":0}",
		 "candidates[0].healthCheck.rise", "from 1 to 100"},
		{"\"healthCheck\":{\"path\":\"/\",\"fall\":101}",
		 "candidates[0].healthCheck.fall", NULL},
		{"\"containers\":[{\"id\":\"a\",\"ip\":\"10.0.0.1\","
		 "\"weight\":257}]",
		 "candidates[0].containers[0].weight", "from 0 to 256"},
		{"\"containers\":[{\"id\":\"a\",\"ip\":\"10.0.0.1\"},{\"id\":"
		 "\"b\",\"ip\":\"10.0.0.2\",\"weight\":-1}]",
		 "candidates[0].containers[1].weight", NULL},
		/* malformed durations and metacharacters */
		{"\"timeoutServer\":\"30\"", "candidates[0].timeoutServer",
		 "digits and a unit"},
		{"\"timeoutServer\":\"30 s\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutServer\":\"30s\\n\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutServer\":\"1.5s\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutServer\":\"-1s\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutServer\":\"1us\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutServer\":\"s\"", "candidates[0].timeoutServer",
		 NULL},
		{"\"timeoutTunnel\":\"1d\"", "candidates[0].timeoutTunnel",
		 NULL},
		{"\"healthCheck\":{\"path\":\"healthz\"}",
		 "candidates[0].healthCheck.path", "must start with '/'"},
		{"\"healthCheck\":{\"path\":\"\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/a b\"}",
		 "candidates[0].healthCheck.path", "are allowed"},
		{"\"healthCheck\":{\"path\":\"/a\\nbind :81\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/a#b\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/${HOME}\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/a'b\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/a\\\"b\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/a\\\\b\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/a%zz\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"healthCheck\":{\"path\":\"/\\u00e9\"}",
		 "candidates[0].healthCheck.path", NULL},
		{"\"balance\":\"leastconn\\n\"", "candidates[0].balance", NULL},
		{"\"balance\":\"source hash-type\"", "candidates[0].balance",
		 NULL},
	};
	struct buf doc = BUF_INIT, members = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		buf_reset(&doc);
		assert_int_equal(
			buf_addf(&doc,
				 "{\"table\":\"tbl\",\"running\":[],"
				 "\"candidates\":[{\"serviceName\":\"s\","
				 "\"port\":80,\"predicate\":\"h\",%s}]}",
				 cases[i].members),
			0);
		expect_invalid(doc.buf, cases[i].field, cases[i].err);
	}
	/* A health check path longer than 255 bytes. */
	buf_reset(&members);
	(void)buf_addf(&members, "\"healthCheck\":{\"path\":\"/%s\"}", a255);
	buf_reset(&doc);
	(void)buf_addf(&doc,
		       "{\"table\":\"tbl\",\"running\":[],\"candidates\":[{"
		       "\"serviceName\":\"s\",\"port\":80,\"predicate\":\"h\","
		       "%s}]}",
		       members.buf);
	expect_invalid(doc.buf, "candidates[0].healthCheck.path",
		       "longer than 255");
	/* The second candidate's error names it. */
	expect_invalid(CANDS("{\"serviceName\":\"b\",\"port\":80,"
			     "\"predicate\":\"b\",\"healthCheck\":{\"path\":"
			     "\"/\",\"interval\":\"2\"}}"),
		       "candidates[1].healthCheck.interval", "unit");
	buf_release(&doc);
	buf_release(&members);
}

/* The stored options document: canonical, read back the same, checked. */
static void test_options_json(void **state)
{
	struct payload p;
	struct service back;
	struct buf out = BUF_INIT, err = BUF_INIT;
	const struct service *svc;
	size_t i;

	(void)state;
	expect_valid(&p, OPT_DOC("\"timeoutTunnel\":\"3600s\",\"maxconn\":7,"
				 "\"healthCheck\":{\"fall\":3,\"path\":\"/h\","
				 "\"interval\":\"2000ms\"},\"cookie\":\"S\","
				 "\"cookieMode\":\"insert\",\"balance\":"
				 "\"source\",\"containers\":[{\"id\":\"b\","
				 "\"ip\":\"10.0.0.2\"},{\"id\":\"a\",\"ip\":"
				 "\"10.0.0.1\",\"weight\":5}]"));
	svc = &p.candidates.items[0];
	assert_int_equal(payload_options_json(svc, &out), 0);
	assert_string_equal(out.buf,
			    "{\"balance\":\"source\",\"cookieMode\":\"insert\","
			    "\"healthCheck\":{\"fall\":3,\"interval\":\"2s\","
			    "\"path\":\"/h\"},\"maxconn\":7,"
			    "\"timeoutTunnel\":\"1h\",\"weights\":{\"a\":5}}");
	memset(&back, 0, sizeof(back));
	back.cookie = xstrdup("S");
	for (i = 0; i < svc->nr_containers; i++)
		service_put_container(&back, svc->containers[i].id,
				      svc->containers[i].ip);
	assert_int_equal(payload_parse_options(&back, out.buf, &err), 0);
	assert_true(service_options_equal(&back.opts, &svc->opts));
	assert_int_equal(back.containers[0].weight, 5);
	assert_int_equal(back.containers[1].weight, WEIGHT_UNSET);

	/* Damaged documents are refused, naming what is wrong. */
	assert_int_equal(
		payload_parse_options(&back, "{\"weights\":{\"zz\":1}}", &err),
		-1);
	assert_non_null(strstr(err.buf, "options.weights.zz"));
	assert_int_equal(
		payload_parse_options(&back, "{\"balance\":\"x\"}", &err), -1);
	assert_non_null(strstr(err.buf, "options.balance"));
	assert_int_equal(payload_parse_options(&back, "{\"extra\":1}", &err),
			 -1);
	assert_non_null(strstr(err.buf, "unknown key"));
	assert_int_equal(payload_parse_options(&back, "[", &err), -1);
	service_release(&back);

	/* All defaults: nothing to store. */
	buf_reset(&out);
	payload_release(&p);
	expect_valid(&p, OPT_DOC("\"cookie\":\"S\""));
	assert_int_equal(payload_options_json(&p.candidates.items[0], &out), 0);
	assert_int_equal(out.len, 0);

	/* The candidate shape shows them, and parses back the same. */
	payload_release(&p);
	expect_valid(&p, OPT_DOC("\"balance\":\"first\",\"healthCheck\":{"
				 "\"path\":\"/\",\"expectStatus\":200,"
				 "\"rise\":4},\"timeoutServer\":\"90s\","
				 "\"containers\":[{\"id\":\"a\",\"ip\":"
				 "\"10.0.0.1\",\"weight\":0}]"));
	buf_reset(&out);
	payload_services_json(&p.candidates, 0, &out);
	assert_string_equal(
		out.buf,
		"[{\"serviceName\":\"s\",\"port\":80,\"configMode\":\"host\","
		"\"predicate\":\"h\",\"balance\":\"first\",\"healthCheck\":{"
		"\"expectStatus\":200,\"path\":\"/\",\"rise\":4},"
		"\"timeoutServer\":\"90s\",\"containers\":[{\"id\":\"a\","
		"\"ip\":\"10.0.0.1\",\"weight\":0}]}]");
	payload_release(&p);
	buf_release(&out);
	buf_release(&err);
}

/* The agent's text forms of the options. */
static void test_options_text(void **state)
{
	struct payload_options_text t;
	struct service svc;
	struct buf err = BUF_INIT;
	int weight;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	memset(&t, 0, sizeof(t));
	t.balance = "leastconn";
	t.check_path = "/ready";
	t.check_status = "200";
	t.check_interval = "5s";
	t.check_rise = "2";
	t.check_fall = "3";
	t.maxconn = "100";
	t.timeout_server = "1m";
	t.timeout_tunnel = "";
	assert_int_equal(payload_check_options_text(&svc, &t, &err), 0);
	assert_int_equal(svc.opts.balance, BALANCE_LEASTCONN);
	assert_int_equal(svc.opts.check_inter, 5000);
	assert_int_equal(svc.opts.timeout_server, 60000);
	assert_int_equal(svc.opts.timeout_tunnel, 0);
	assert_int_equal(svc.opts.maxconn, 100);
	service_release(&svc);

#define BAD_TEXT(member, value, want)                                          \
	do {                                                                   \
		memset(&t, 0, sizeof(t));                                      \
		t.member = value;                                              \
		if (strcmp(#member, "check_path"))                             \
			t.check_path = "/";                                    \
		assert_int_equal(payload_check_options_text(&svc, &t, &err),   \
				 -1);                                          \
		if (!strstr(err.buf, want))                                    \
			fail_msg("%s=%s: %s", #member, value, err.buf);        \
		service_release(&svc);                                         \
	} while (0)
	BAD_TEXT(balance, "static-rr", "invalid balance");
	BAD_TEXT(cookie_mode, "insert", "needs a cookie");
	BAD_TEXT(cookie_mode, "rewrite", "invalid cookie mode");
	BAD_TEXT(check_path, "x y", "invalid health check path");
	BAD_TEXT(check_status, "2000", "invalid health check status");
	BAD_TEXT(check_interval, "1", "health check interval");
	BAD_TEXT(check_rise, "0", "invalid health check rise");
	BAD_TEXT(check_fall, "x", "invalid health check fall");
	BAD_TEXT(maxconn, "1e3", "invalid maxconn");
	BAD_TEXT(timeout_server, "25h", "timeout server");
	BAD_TEXT(timeout_tunnel, "1 s", "timeout tunnel");
#undef BAD_TEXT
	memset(&t, 0, sizeof(t));
	t.check_status = "200";
	assert_int_equal(payload_check_options_text(&svc, &t, &err), -1);
	assert_non_null(strstr(err.buf, "without a health check path"));
	service_release(&svc);

	assert_int_equal(payload_check_weight_text("0", &weight, &err), 0);
	assert_int_equal(weight, 0);
	assert_int_equal(payload_check_weight_text("", &weight, &err), 0);
	assert_int_equal(weight, WEIGHT_UNSET);
	assert_int_equal(payload_check_weight_text("257", &weight, &err), -1);
	assert_int_equal(payload_check_weight_text("-1", &weight, &err), -1);
	buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_good),
		cmocka_unit_test(test_slots_bad),
		cmocka_unit_test(test_slots_bad_everywhere),
		cmocka_unit_test(test_slots_wrong_types),
		cmocka_unit_test(test_port_numbers),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_wrong_container_types),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_sample_data),
		cmocka_unit_test(test_minimal_and_defaults),
		cmocka_unit_test(test_unknown_fields_ignored),
		cmocka_unit_test(test_containers_sorted_unique),
		cmocka_unit_test(test_candidates_in_payload_order),
		cmocka_unit_test(test_errors_release_everything),
		cmocka_unit_test(test_error_messages),
		cmocka_unit_test(test_ip_refused),
		cmocka_unit_test(test_path_encoded_dots),
		cmocka_unit_test(test_name_bytes),
		cmocka_unit_test(test_check_helpers),
		cmocka_unit_test(test_services_json),
		cmocka_unit_test(test_options_good),
		cmocka_unit_test(test_options_bad),
		cmocka_unit_test(test_options_json),
		cmocka_unit_test(test_options_text),
	};

	return cmocka_run_group_tests(tests, setup_long_values, NULL);
}
