/* Fleet settings: every key's good values, each bad one refused by path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "buf.h"
#include "registry.h"
#include "render.h"
#include "settings.h"

/* openssl passwd -6 -salt saltsalt secret */
#define HASH                                                                   \
	"$6$saltsalt$"                                                         \
	"TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8w"           \
	"iOQSpT0Y77vwPZN.Pq.H91p5hVO1"
/* the same with rounds=5000 and salt "abc" */
#define HASH_ROUNDS                                                            \
	"$6$rounds=5000$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/"                \
	"r6niK9YB2mdvgY.."                                                     \
	"TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1"

/* `doc` must be accepted, and its canonical form must be `canon` (when
 * given). */
static void good(const char *doc, const char *canon)
{
	struct buf err = BUF_INIT;
	struct settings s;
	char *out = NULL, *eff = NULL;

	settings_init(&s);
	if (settings_canonical(doc, strlen(doc), &out, &err) != ST_OK)
		fail_msg("refused %s: %s", doc, err.buf);
	if (canon)
		assert_string_equal(out, canon);
	if (settings_effective(out, NULL, &eff, &s, &err) != ST_OK)
		fail_msg("effective refused %s: %s", doc, err.buf);
	free(out);
	free(eff);
	settings_release(&s);
	buf_release(&err);
}

/* `doc` must be refused (alone, or once effective) with `msg` in the error,
 * the path first. */
static void bad(const char *doc, const char *msg)
{
	struct buf err = BUF_INIT;
	char *out = NULL;
	enum status st = settings_canonical(doc, strlen(doc), &out, &err);

	if (st == ST_OK) {
		assert_non_null(out);
		st = settings_effective(out, NULL, NULL, NULL, &err);
		free(out);
		out = NULL;
	}
	if (st != ST_INVALID)
		fail_msg("accepted %s", doc);
	assert_null(out);
	if (!strstr(err.buf, msg))
		fail_msg("for %s: wanted '%s' in '%s'", doc, msg, err.buf);
	buf_release(&err);
}

static void test_empty_and_canonical(void **state)
{
	(void)state;
	good("", "{}");
	good("{}", "{}");
	good("# only a comment\n", "{}");
	good("global: {nbthread: 2, maxconn: 100}",
	     "{\"global\":{\"maxconn\":100,\"nbthread\":2}}");
	good("{\"global\": {\"maxconn\": 100}}",
	     "{\"global\":{\"maxconn\":100}}");
	good("defaults:\n  redispatch: false\n  retries: 0\n",
	     "{\"defaults\":{\"redispatch\":false,\"retries\":0}}");
	bad("[1, 2]", "must be a mapping");
	bad("global: 3", "global: must be a mapping, not an integer");
	bad("a: 1\n---\nb: 2\n", "only one document");
	bad("x: &a 1\ny: *a\n", "aliases are not allowed");
	bad("global: {maxconn: 1}\nglobal: {maxconn: 2}\n", "repeated");
	bad("global: {\n", "line");
	bad("{\"global\": {\"maxconn\": 1, }", "line");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	bad("globl: {}", "globl: unknown key");
	bad("global: {maxConn: 1}", "global.maxConn: unknown key");
	bad("defaults: {timeouts: {conect: 5s}}",
	    "defaults.timeouts.conect: unknown key");
	bad("frontend: {http: {bind: [':80']}}",
	    "frontend.http.bind: unknown key");
	bad("frontend: {https: {crt: /a.pem, hsts: {maxage: 1}}}",
	    "frontend.https.hsts.maxage: unknown key");
	bad("global: {log: [{address: stdout, level: info}]}",
	    "global.log[0].level: unknown key");
	bad("stats: {bind: '127.0.0.1:8404', password: x}",
	    "stats.password: unknown key");
	bad("unmatched: {status: 404, text: x}", "unmatched.text: unknown key");
	bad("routing: {mapdir: /x}", "routing.mapdir: unknown key");
}

static void test_global(void **state)
{
	(void)state;
	good("global: {maxconn: 1}", NULL);
	good("global: {maxconn: 1000000}", NULL);
	bad("global: {maxconn: 0}", "global.maxconn: 0 is out of range");
	bad("global: {maxconn: 1000001}", "global.maxconn: 1000001 is out");
	bad("global: {maxconn: '100'}", "global.maxconn: must be an integer");
	bad("global: {maxconn: 1.5}", "global.maxconn: must be an integer");
	bad("global: {maxconn: true}", "global.maxconn: must be an integer");
	good("global: {nbthread: 64}", NULL);
	bad("global: {nbthread: 65}", "global.nbthread: 65 is out of range");
	good("global: {hardStopAfter: 1h}", NULL);
	bad("global: {hardStopAfter: 30}", "global.hardStopAfter: must be a "
					   "string");
	bad("global: {hardStopAfter: 25h}", "global.hardStopAfter: '25h' is "
					    "out of range");
	good("global: {log: []}", NULL);
	good("global: {log: [{address: stdout, format: raw}]}", NULL);
	good("global: {log: [{address: '127.0.0.1:514', facility: local3, "
	     "format: rfc5424}, {address: '[::1]:514'}]}",
	     NULL);
	bad("global: {log: {address: stdout}}", "global.log: must be a list");
	bad("global: {log: [stdout]}", "global.log[0]: must be a mapping");
	bad("global: {log: [{facility: local0}]}",
	    "global.log[0]: needs an address");
	bad("global: {log: [{address: stdout}, {address: 'host:514'}]}",
	    "global.log[1].address:");
	bad("global: {log: [{address: ':514'}]}", "global.log[0].address:");
	bad("global: {log: [{address: stdout, facility: local9}]}",
	    "global.log[0].facility: 'local9' is not one of");
	bad("global: {log: [{address: stdout, format: json}]}",
	    "global.log[0].format: 'json' is not one of rfc3164, rfc5424, raw");
	bad("global: {log: [{address: \"127.0.0.1:514\\n\"}]}",
	    "global.log[0].address:");
}

static void test_durations(void **state)
{
	static const char *const ok[] = {"1ms", "500ms", "45s",	 "2m",
					 "24h", "1d",	 "1000", "1000us"};
	static const char *const no[] = {"0",	"0ms",	"999us", "25h", "2d",
					 "5 s", "5S",	"s",	 "-1s", "1.5s",
					 "",	"5s\n", "5s#",	 "5\"s"};
	char doc[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		snprintf(doc, sizeof(doc),
			 "{\"defaults\":{\"timeouts\":{\"connect\":\"%s\"}}}",
			 ok[i]);
		good(doc, NULL);
	}
	for (i = 0; i < sizeof(no) / sizeof(*no); i++) {
		struct buf b = BUF_INIT;

		(void)buf_addstr(&b,
				 "{\"defaults\":{\"timeouts\":{\"tunnel\":");
		(void)buf_addjson(&b, no[i], strlen(no[i]));
		(void)buf_addstr(&b, "}}}");
		bad(b.buf, "defaults.timeouts.tunnel: ");
		buf_release(&b);
	}
	good("defaults: {timeouts: {connect: 1s, client: 1m, server: 1m, "
	     "httpRequest: 5s, httpKeepAlive: 2s, queue: 10s, tunnel: 1h}}",
	     NULL);
	bad("defaults: {timeouts: {client: 30}}",
	    "defaults.timeouts.client: must be a string, not an integer");
	bad("defaults: {timeouts: 5s}", "defaults.timeouts: must be a mapping");
}

static void test_defaults(void **state)
{
	(void)state;
	good("defaults: {retries: 100, redispatch: true, httplog: false, "
	     "dontlognull: true, maxconn: 10}",
	     NULL);
	bad("defaults: {retries: 101}",
	    "defaults.retries: 101 is out of range");
	bad("defaults: {retries: -1}", "defaults.retries: -1 is out of range");
	bad("defaults: {redispatch: yes}", "defaults.redispatch: must be true "
					   "or false, not a string");
	bad("defaults: {httplog: 1}",
	    "defaults.httplog: must be true or false");
	bad("defaults: {dontlognull: 'true'}", "defaults.dontlognull: must be");
	bad("defaults: {maxconn: 0}", "defaults.maxconn: 0 is out of range");
}

static void test_frontend_http(void **state)
{
	(void)state;
	good("frontend: {http: {binds: [':80', '127.0.0.1:8080', "
	     "'[::1]:8081'], redirectToHttps: false}}",
	     NULL);
	bad("frontend: {http: {binds: []}}", "frontend.http.binds: must be a "
					     "list of 1 to 16");
	bad("frontend: {http: {binds: ':80'}}", "frontend.http.binds: must be");
	bad("frontend: {http: {binds: [':80', 80]}}",
	    "frontend.http.binds[1]: must be a string");
	bad("frontend: {http: {binds: [':0']}}", "frontend.http.binds[0]: ");
	bad("frontend: {http: {binds: ['localhost:80']}}",
	    "frontend.http.binds[0]: ");
	bad("frontend: {http: {binds: [':80 ssl']}}",
	    "frontend.http.binds[0]: ");
	bad("frontend: {http: {binds: [\"1.2.3.4:80\\nbackend x\"]}}",
	    "frontend.http.binds[0]: ");
	bad("frontend: {http: {redirectToHttps: 1}}",
	    "frontend.http.redirectToHttps: must be true or false");
}

static void test_frontend_https(void **state)
{
	(void)state;
	good("frontend: {https: {crt: /etc/haproxy/certs}}", NULL);
	good("frontend: {https: {binds: [':443', ':8443'], crtList: "
	     "/etc/haproxy/crt-list.txt, alpn: 'h2,http/1.1', minTlsVersion: "
	     "TLSv1.3, hsts: {maxAge: 63072000, includeSubDomains: true, "
	     "preload: true}}}",
	     NULL);
	good("frontend: {http: {redirectToHttps: true}, https: {crt: "
	     "/c.pem}}",
	     NULL);
	bad("frontend: {https: {}}", "frontend.https: needs crt or crtList");
	bad("frontend: {https: {crt: /a.pem, crtList: /b.txt}}",
	    "frontend.https.crtList: crt and crtList exclude each other");
	bad("frontend: {https: {crtList: certs/list.txt}}",
	    "frontend.https.crtList: must be an absolute path");
	bad("frontend: {https: {crt: '/a b.pem'}}",
	    "frontend.https.crt: must be an absolute path of");
	bad("frontend: {https: {crt: '/a#b.pem'}}", "frontend.https.crt: ");
	bad("frontend: {https: {crt: \"/a\\\"b\"}}", "frontend.https.crt: ");
	bad("frontend: {https: {crt: \"/a\\nb\"}}", "frontend.https.crt: ");
	bad("frontend: {https: {crt: /etc/../x.pem}}",
	    "frontend.https.crt: must not contain '..'");
	bad("frontend: {https: {crt: 5}}", "frontend.https.crt: must be a "
					   "string");
	bad("frontend: {https: {crt: /a.pem, alpn: 'h2, http/1.1'}}",
	    "frontend.https.alpn: ");
	bad("frontend: {https: {crt: /a.pem, alpn: 'h2,,x'}}",
	    "frontend.https.alpn: ");
	bad("frontend: {https: {crt: /a.pem, alpn: ''}}",
	    "frontend.https.alpn: ");
	bad("frontend: {https: {crt: /a.pem, alpn: 'h2,'}}",
	    "frontend.https.alpn: ");
	bad("frontend: {https: {crt: /a.pem, alpn: 'H2'}}",
	    "frontend.https.alpn: ");
	bad("frontend: {https: {crt: /a.pem, alpn: "
	    "'h2,abcdefghijklmnopqrstuvwxyz0123456'}}",
	    "frontend.https.alpn: ");
	good("frontend: {https: {crt: /a.pem, alpn: "
	     "'abcdefghijklmnopqrstuvwxyz012345,h2'}}",
	     NULL);
	bad("frontend: {https: {crt: '/a b.pem'}}",
	    "frontend.https.crt: must be an absolute path of");
	bad("frontend: {https: {crt: /a.pem, minTlsVersion: TLSv1.1}}",
	    "frontend.https.minTlsVersion: 'TLSv1.1' is not one of TLSv1.2, "
	    "TLSv1.3");
	bad("frontend: {https: {crt: /a.pem, hsts: {maxAge: -1}}}",
	    "frontend.https.hsts.maxAge: -1 is out of range");
	bad("frontend: {https: {crt: /a.pem, hsts: {preload: 1}}}",
	    "frontend.https.hsts.preload: must be true or false");
	bad("frontend: {http: {binds: [':8080']}, https: {crt: /a.pem, binds: "
	    "[':8080']}}",
	    "frontend.https.binds[0]: ");
}

static void test_stats(void **state)
{
	(void)state;
	good("stats: {bind: '127.0.0.1:8404'}", NULL);
	good("stats: {bind: '[::1]:8404', uri: /haproxy-stats, prometheus: "
	     "true}",
	     NULL);
	good("stats: {bind: ':8404', user: admin, passwordHash: '" HASH "'}",
	     NULL);
	good("stats: {bind: ':8404', user: admin, passwordHash: "
	     "'" HASH_ROUNDS "'}",
	     NULL);
	bad("stats: {}", "stats.bind: is required");
	bad("stats: {bind: ':8404'}", "stats.bind: ':8404' is not a loopback");
	bad("stats: {bind: '10.0.0.1:8404'}", "stats.bind: '10.0.0.1:8404' is "
					      "not a loopback");
	bad("stats: {bind: '127.0.0.1:8404', user: admin}",
	    "stats.passwordHash: is required with stats.user");
	bad("stats: {bind: '127.0.0.1:8404', passwordHash: '" HASH "'}",
	    "stats.user: is required with stats.passwordHash");
	bad("stats: {bind: ':8404', user: admin, passwordHash: "
	    "'$1$abc$defghijkl'}",
	    "stats.passwordHash: must be a SHA-512 crypt hash");
	bad("stats: {bind: ':8404', user: admin, passwordHash: '" HASH "x'}",
	    "stats.passwordHash: ");
	bad("stats: {bind: ':8404', user: admin, passwordHash: "
	    "'$6$salt$abc def'}",
	    "stats.passwordHash: ");
	bad("stats: {bind: '127.0.0.1:8404', user: 'ad min', passwordHash: "
	    "'" HASH "'}",
	    "stats.user: must be 1 to 64");
	bad("stats: {bind: '127.0.0.1:8404', user: ''}", "stats.user: ");
	bad("stats: {bind: '127.0.0.1:8404', uri: stats}",
	    "stats.uri: must be a path");
	bad("stats: {bind: '127.0.0.1:8404', uri: '/a b'}", "stats.uri: ");
	bad("stats: {bind: '127.0.0.1:8404', uri: '/a#b'}", "stats.uri: ");
	bad("stats: {bind: '127.0.0.1:8404', uri: /metrics, prometheus: true}",
	    "stats.uri: '/metrics' is the Prometheus");
	bad("stats: {bind: '127.0.0.1:8404', prometheus: on}",
	    "stats.prometheus: must be true or false");
	bad("stats: {bind: 8404}", "stats.bind: must be a string");
	bad("frontend: {http: {binds: ['127.0.0.1:8404']}}\nstats: {bind: "
	    "'127.0.0.1:8404'}",
	    "stats.bind: '127.0.0.1:8404' is also a frontend's bind");
}

static void test_unmatched_and_routing(void **state)
{
	(void)state;
	good("unmatched: {status: 404}", NULL);
	good("unmatched: {status: 503, body: 'No service here (yet).'}", NULL);
	bad("unmatched: {status: 500}", "unmatched.status: must be 404 or 503");
	bad("unmatched: {status: 200}", "unmatched.status: 200 is out of "
					"range");
	bad("unmatched: {status: '404'}", "unmatched.status: must be an "
					  "integer");
	bad("unmatched: {body: x}", "unmatched.status: is required");
	bad("unmatched: {status: 404, body: 'a\"b'}", "unmatched.body: ");
	bad("unmatched: {status: 404, body: \"a\\nb\"}", "unmatched.body: ");
	bad("unmatched: {status: 404, body: 'a#b'}", "unmatched.body: ");
	bad("unmatched: {status: 404, body: 'a$HOME'}", "unmatched.body: ");
	bad("unmatched: {status: 404, body: 'a\\b'}", "unmatched.body: ");
	bad("unmatched: {status: 404, body: 'a  b'}", "unmatched.body: must be "
						      "words separated");
	bad("unmatched: {status: 404, body: ' a'}", "unmatched.body: ");
	bad("unmatched: {status: 404, body: ''}", "unmatched.body: ");
	good("routing: {mode: auto}", NULL);
	good("routing: {mode: map, mapDir: /etc/haproxy/maps}", NULL);
	good("routing: {mode: acl}", NULL);
	bad("routing: {mode: flat}", "routing.mode: 'flat' is not one of auto, "
				     "map, acl");
	bad("routing: {mapDir: maps}", "routing.mapDir: must be an absolute "
				       "path");
	bad("routing: {mapDir: /etc/maps/}",
	    "routing.mapDir: must not end with '/'");
	bad("routing: {mapDir: '/etc/ma ps'}", "routing.mapDir: must be an "
					       "absolute path of");
	bad("routing: {mapDir: '/etc/m(a)ps'}", "routing.mapDir: ");
	bad("routing: {mapDir: /etc/../maps}", "routing.mapDir: must not "
					       "contain '..'");
	good("routing: {mapDir: /}", NULL);
}

static void test_dynamic_cookie_secret(void **state)
{
	(void)state;
	good("dynamicCookieSecret: 0123456789abcdef+/=_.-", NULL);
	bad("dynamicCookieSecret: short", "dynamicCookieSecret: must be 16 to "
					  "256 characters");
	bad("dynamicCookieSecret: \"0123456789abcdef\\n    bind :81\"",
	    "dynamicCookieSecret: must be 16 to 256 characters");
	bad("dynamicCookieSecret: 42", "dynamicCookieSecret");
}

static void test_merge(void **state)
{
	struct buf err = BUF_INIT;
	struct settings s;
	char *eff = NULL;

	(void)state;
	settings_init(&s);
	assert_int_equal(settings_effective(
				 "{\"global\":{\"maxconn\":10,\"nbthread\":2},"
				 "\"frontend\":{\"https\":{\"crt\":\"/a\"}}}",
				 "{\"global\":{\"maxconn\":20},\"frontend\":"
				 "{\"https\":{\"crt\":null,\"crtList\":\"/"
				 "l\"}}}",
				 &eff, &s, &err),
			 ST_OK);
	assert_string_equal(eff,
			    "{\"frontend\":{\"https\":{\"crtList\":\"/l\"}"
			    "},\"global\":{\"maxconn\":20,\"nbthread\":2}}");
	assert_int_equal(s.maxconn, 20);
	assert_int_equal(s.nbthread, 2);
	assert_null(s.crt);
	assert_string_equal(s.crt_list, "/l");
	assert_string_equal(s.alpn, "h2,http/1.1");
	free(eff);
	/* refused once merged: nothing of `s` changes */
	assert_int_equal(settings_effective("{\"frontend\":{\"https\":{\"crt\":"
					    "\"/a\"}}}",
					    "{\"frontend\":{\"https\":{"
					    "\"crtList\":\"/l\"}}}",
					    NULL, &s, &err),
			 ST_INVALID);
	assert_non_null(strstr(err.buf, "exclude each other"));
	assert_string_equal(s.crt_list, "/l");
	assert_int_equal(settings_effective(NULL, NULL, &eff, NULL, &err),
			 ST_OK);
	assert_string_equal(eff, "{}");
	free(eff);
	settings_release(&s);
	buf_release(&err);
}

static void test_defaults_struct(void **state)
{
	struct settings s;

	(void)state;
	settings_init(&s);
	assert_string_equal(s.hard_stop_after, "30s");
	assert_int_equal(s.retries, 3);
	assert_true(s.redispatch);
	assert_int_equal(s.httplog, -1);
	assert_string_equal(s.alpn, "h2,http/1.1");
	assert_string_equal(s.min_tls, "TLSv1.2");
	assert_string_equal(s.stats_uri, "/stats");
	assert_false(s.https || s.stats || s.unmatched);
	settings_release(&s);
}

static void test_size_and_depth(void **state)
{
	struct buf b = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < 40; i++)
		(void)buf_addstr(&b, "{\"a\":");
	for (i = 0; i < 40; i++)
		(void)buf_addch(&b, '}');
	bad(b.buf, "nested deeper");
	buf_reset(&b);
	(void)buf_addstr(&b, "# ");
	for (i = 0; i < SETTINGS_MAX_BYTES; i++)
		(void)buf_addch(&b, 'x');
	bad(b.buf, "larger than");
	buf_release(&b);
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

static void reg_call(struct registry *reg, const char *table, struct buf *cfg)
{
	struct registry_result res;
	struct buf err = BUF_INIT, field = BUF_INIT, json = BUF_INIT;

	(void)buf_addf(&json, "{\"table\":\"%s\",\"running\":[]}", table);
	registry_result_init(&res);
	if (registry_call(reg, json.buf, json.len, 0, &res, &err, &field) !=
	    ST_OK)
		fail_msg("call: %s %s", field.buf, err.buf);
	buf_reset(cfg);
	(void)buf_add(cfg, res.config.buf, res.config.len);
	registry_result_release(&res);
	buf_release(&err);
	buf_release(&field);
	buf_release(&json);
}

static void put(struct registry *reg, const char *table, const char *doc,
		enum status want)
{
	struct buf err = BUF_INIT;
	enum status st =
		registry_settings_put(reg, table, doc, strlen(doc), &err);

	if (st != want)
		fail_msg("put %s: %d (%s)", doc, st, err.buf);
	buf_release(&err);
}

static void get(struct registry *reg, const char *table, int effective,
		const char *want)
{
	struct buf out = BUF_INIT, err = BUF_INIT;

	assert_int_equal(
		registry_settings_get(reg, table, effective, &out, &err),
		ST_OK);
	assert_string_equal(out.buf, want);
	buf_release(&out);
	buf_release(&err);
}

/*
 * Through the registry on one SQLite file, with two registries as two
 * processes: a put by one changes the other's next call, an unchanged call
 * answers the same, a refused put stores nothing, overrides reach one table.
 */
static void test_registry_settings(void **state)
{
	char dir[] = "/tmp/lr-settings-XXXXXX", spec[256];
	struct buf a = BUF_INIT, b = BUF_INIT, err = BUF_INIT;
	struct registry *r1, *r2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(spec, sizeof(spec), "sqlite:%s/s.db", dir);
	r1 = open_registry(spec);
	r2 = open_registry(spec);
	get(r1, NULL, 0, "{}");
	get(r1, "astro", 1, "{}");
	reg_call(r1, "astro", &a);
	assert_null(strstr(a.buf, "nbthread"));
	put(r2, NULL, "global:\n  nbthread: 2\n", ST_OK);
	reg_call(r1, "astro", &b);
	assert_non_null(strstr(b.buf, "    nbthread 2\n"));
	reg_call(r1, "astro", &a);
	assert_string_equal(a.buf, b.buf);
	/* refused: nothing stored, the config stays */
	put(r2, NULL, "global: {nbthread: 2, maxconn: -1}", ST_INVALID);
	put(r2, "astro", "frontend: {https: {crtList: x}}", ST_INVALID);
	put(r2, "bad/name", "{}", ST_INVALID);
	get(r1, NULL, 0, "{\"global\":{\"nbthread\":2}}");
	get(r1, "astro", 0, "{}");
	reg_call(r1, "astro", &a);
	assert_string_equal(a.buf, b.buf);
	/* a table's overrides reach that table only */
	put(r2, "astro", "{\"global\": {\"maxconn\": 77}}", ST_OK);
	get(r1, "astro", 1, "{\"global\":{\"maxconn\":77,\"nbthread\":2}}");
	reg_call(r1, "astro", &a);
	assert_non_null(strstr(a.buf, "    maxconn 77\n"));
	reg_call(r1, "other", &a);
	assert_non_null(strstr(a.buf, "    maxconn 4096\n"));
	assert_int_equal(registry_settings_delete(r2, "astro", &err), ST_OK);
	assert_int_equal(registry_settings_delete(r2, "astro", &err),
			 ST_NOT_FOUND);
	reg_call(r1, "astro", &a);
	assert_string_equal(a.buf, b.buf);
	registry_free(r1);
	registry_free(r2);
	buf_release(&a);
	buf_release(&b);
	buf_release(&err);
	snprintf(spec, sizeof(spec), "rm -rf %s", dir);
	assert_int_equal(system(spec), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_canonical),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_global),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_frontend_http),
		cmocka_unit_test(test_frontend_https),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_unmatched_and_routing),
		cmocka_unit_test(test_dynamic_cookie_secret),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_defaults_struct),
		cmocka_unit_test(test_size_and_depth),
		cmocka_unit_test(test_registry_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
