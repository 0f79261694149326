/* The renderer: shape, order, determinism and the golden files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "render.h"
#include "settings.h"
#include "xalloc.h"

static struct service *add(struct service_list *l, const char *name,
			   enum config_mode mode, const char *predicate,
			   unsigned port, const char *cookie)
{
	struct service *s = service_list_append(l);

	s->name = xstrdup(name);
	s->mode = mode;
	s->predicate = xstrdup(predicate);
	s->port = port;
	s->cookie = cookie ? xstrdup(cookie) : NULL;
	return s;
}

static void render(const struct service_list *l, const char *bind,
		   struct buf *out)
{
	struct render_options opts = {.frontend_bind = bind};

	buf_reset(out);
	render_config(l, &opts, out);
}

/* Lines shared by every config: final newline, no trailing blanks, no
 * quotes or backslashes (an agent of the first version strips them). */
static void assert_clean(const struct buf *cfg)
{
	size_t i;

	assert_true(cfg->len > 0);
	assert_int_equal(cfg->buf[cfg->len - 1], '\n');
	for (i = 0; i < cfg->len; i++) {
		assert_int_not_equal(cfg->buf[i], '"');
		assert_int_not_equal(cfg->buf[i], '\\');
		assert_int_not_equal(cfg->buf[i], '\t');
		assert_int_not_equal(cfg->buf[i], '\r');
		if (cfg->buf[i] == '\n' && i)
			assert_int_not_equal(cfg->buf[i - 1], ' ');
	}
}

static void test_empty_table(void **state)
{
	struct service_list l;
	struct buf out = BUF_INIT;

	(void)state;
	service_list_init(&l);
	render(&l, NULL, &out);
	assert_clean(&out);
	assert_non_null(strstr(out.buf, "frontend http\n    bind :80\n"));
	assert_null(strstr(out.buf, "backend "));
	assert_null(strstr(out.buf, "use_backend"));
	buf_release(&out);
}

static void test_host_and_cookie(void **state)
{
	struct service_list l;
	struct buf out = BUF_INIT;
	struct service *s;

	(void)state;
	service_list_init(&l);
	s = add(&l, "app1", CONFIG_MODE_HOST, "first.example.com", 8080,
		"JSESSIONID");
	service_put_container(s, "b2", "10.0.0.2");
	service_put_container(s, "a1", "2001:db8::1");
	render(&l, "127.0.0.1:9000", &out);
	assert_clean(&out);
	assert_non_null(strstr(out.buf, "    bind 127.0.0.1:9000\n"));
	assert_non_null(strstr(out.buf,
			       "    acl host_app1 req.hdr(host),field(1,:) -i "
			       "first.example.com\n"));
	assert_non_null(strstr(out.buf, "    use_backend app1 if host_app1\n"));
	assert_non_null(strstr(
		out.buf, "\nbackend app1\n    balance roundrobin\n    option "
			 "forwardfor\n"
			 "    cookie JSESSIONID prefix nocache\n"
			 "    server a1 [2001:db8::1]:8080 check cookie a1\n"
			 "    server b2 10.0.0.2:8080 check cookie b2\n"));
	service_list_release(&l);
	buf_release(&out);
}

static void test_path_longest_prefix_first(void **state)
{
	struct service_list l;
	struct buf out = BUF_INIT;
	const char *a, *ab, *abc, *h;

	(void)state;
	service_list_init(&l);
	add(&l, "a", CONFIG_MODE_PATH, "api", 80, NULL);
	add(&l, "b", CONFIG_MODE_PATH, "api/v1/users", 80, NULL);
	add(&l, "c", CONFIG_MODE_PATH, "api/v1", 80, NULL);
	add(&l, "d", CONFIG_MODE_HOST, "d.example", 80, NULL);
	render(&l, NULL, &out);
	assert_clean(&out);
	assert_non_null(strstr(
		out.buf,
		"    acl path_a path /api\n    acl path_a path_beg /api/\n"));
	a = strstr(out.buf, "use_backend a if path_a\n");
	ab = strstr(out.buf, "use_backend c if path_c\n");
	abc = strstr(out.buf, "use_backend b if path_b\n");
	h = strstr(out.buf, "use_backend d if host_d\n");
	assert_non_null(a);
	assert_non_null(ab);
	assert_non_null(abc);
	assert_non_null(h);
	assert_true(h < abc && abc < ab && ab < a);
	/* Backends stay in name order. */
	assert_true(strstr(out.buf, "\nbackend a\n") <
		    strstr(out.buf, "\nbackend b\n"));
	assert_true(strstr(out.buf, "\nbackend b\n") <
		    strstr(out.buf, "\nbackend c\n"));
	service_list_release(&l);
	buf_release(&out);
}

static void test_deterministic(void **state)
{
	struct service_list l;
	struct buf one = BUF_INIT, two = BUF_INIT;
	int i;

	(void)state;
	service_list_init(&l);
	for (i = 0; i < 20; i++) {
		char name[16];
		struct service *s;

		snprintf(name, sizeof(name), "s%02d", i);
		s = add(&l, name, i % 3 ? CONFIG_MODE_HOST : CONFIG_MODE_PATH,
			i % 3 ? "h.example" : "p", 80, i % 2 ? "C" : NULL);
		service_put_container(s, "x", "10.0.0.1");
	}
	render(&l, NULL, &one);
	render(&l, NULL, &two);
	assert_int_equal(one.len, two.len);
	assert_memory_equal(one.buf, two.buf, one.len);
	service_list_release(&l);
	buf_release(&one);
	buf_release(&two);
}

/* Over the buffer's cap the render stops, marks the buffer and keeps only
 * what fit: never an abort, whatever the cap and wherever it falls. */
static void test_over_cap_is_sticky(void **state)
{
	struct render_options opts = {.frontend_bind = NULL};
	struct service_list l;
	struct buf full = BUF_INIT;
	size_t cap;
	int i;

	(void)state;
	service_list_init(&l);
	for (i = 0; i < 50; i++) {
		char name[16];
		struct service *s;

		snprintf(name, sizeof(name), "s%02d", i);
		s = add(&l, name, i % 3 ? CONFIG_MODE_HOST : CONFIG_MODE_PATH,
			i % 3 ? "h.example" : "p", 80, i % 2 ? "C" : NULL);
		service_put_container(s, "x", "10.0.0.1");
		service_put_container(s, "y", "2001:db8::2");
	}
	render_config(&l, &opts, &full);
	assert_false(buf_overflowed(&full));
	for (cap = 1; cap < full.len; cap += cap < 300 ? 1 : 97) {
		struct buf cut;

		buf_init(&cut, cap);
		render_config(&l, &opts, &cut);
		assert_true(buf_overflowed(&cut));
		assert_true(cut.len <= cap);
		assert_memory_equal(cut.buf, full.buf, cut.len);
		assert_int_equal(cut.buf[cut.len], '\0');
		buf_release(&cut);
	}
	/* A cap that the buffer's doubling passes on the way. */
	{
		struct service_list one;
		struct service *s;
		struct buf big, cut;
		char id[32];

		service_list_init(&one);
		s = add(&one, "many", CONFIG_MODE_HOST, "m.example", 80, "SID");
		for (i = 0; i < 5000; i++) {
			snprintf(id, sizeof(id), "c%05d", i);
			service_put_container(s, id, "10.0.0.1");
		}
		buf_init(&big, 0);
		render_config(&one, &opts, &big);
		assert_false(buf_overflowed(&big));
		assert_true(big.len > 150000);
		buf_init(&cut, 100000);
		render_config(&one, &opts, &cut);
		assert_true(buf_overflowed(&cut));
		assert_true(cut.len <= 100000);
		assert_memory_equal(cut.buf, big.buf, cut.len);
		buf_release(&cut);
		buf_release(&big);
		service_list_release(&one);
	}
	/* Exactly the config's size fits. */
	{
		struct buf exact;

		buf_init(&exact, full.len);
		render_config(&l, &opts, &exact);
		assert_false(buf_overflowed(&exact));
		assert_int_equal(exact.len, full.len);
		buf_release(&exact);
	}
	service_list_release(&l);
	buf_release(&full);
}

/* The backend block of `name` in `cfg`, up to the next blank line. */
static char *backend_of(const struct buf *cfg, const char *name)
{
	char head[160];
	const char *at, *end;

	snprintf(head, sizeof(head), "\nbackend %s\n", name);
	at = strstr(cfg->buf, head);
	assert_non_null(at);
	at++;
	end = strstr(at, "\n\n");
	return xstrndup(at, end ? (size_t)(end - at + 1) : strlen(at));
}

static void test_service_options(void **state)
{
	struct service_list l;
	struct buf out = BUF_INIT;
	struct render_options opts = {.frontend_bind = ":80"};
	struct settings https;
	struct service *s;
	char *b;

	(void)state;
	service_list_init(&l);
	s = add(&l, "api", CONFIG_MODE_HOST, "api.example.com", 8080, NULL);
	s->opts.balance = BALANCE_LEASTCONN;
	s->opts.check_path = xstrdup("/healthz");
	s->opts.check_status = 200;
	s->opts.check_inter = 2000;
	s->opts.check_rise = 2;
	s->opts.check_fall = 3;
	s->opts.maxconn = 50;
	s->opts.timeout_server = 90000;
	s->opts.timeout_tunnel = 3600000;
	service_put_container(s, "a1", "10.0.0.1")->weight = 0;
	service_put_container(s, "a2", "10.0.0.2");
	s = add(&l, "shop", CONFIG_MODE_HOST, "shop.example.com", 80, "SRV");
	s->opts.balance = BALANCE_SOURCE;
	s->opts.cookie_mode = COOKIE_MODE_INSERT;
	service_put_container(s, "s1", "10.0.1.1")->weight = 256;
	s = add(&l, "first", CONFIG_MODE_HOST, "first.example.com", 80, "F");
	s->opts.balance = BALANCE_FIRST;
	s->opts.timeout_server = 1500;
	service_put_container(s, "f1", "::1");
	service_list_sort(&l);

	render(&l, ":80", &out);
	assert_clean(&out);
	b = backend_of(&out, "api");
	assert_string_equal(
		b, "backend api\n"
		   "    balance leastconn\n"
		   "    option forwardfor\n"
		   "    timeout server 90s\n"
		   "    timeout tunnel 1h\n"
		   "    option httpchk GET /healthz\n"
		   "    http-check expect status 200\n"
		   "    server a1 10.0.0.1:8080 check inter 2s rise 2 fall 3 "
		   "maxconn 50 weight 0\n"
		   "    server a2 10.0.0.2:8080 check inter 2s rise 2 fall 3 "
		   "maxconn 50\n");
	free(b);
	b = backend_of(&out, "shop");
	assert_string_equal(b,
			    "backend shop\n"
			    "    balance source\n"
			    "    hash-type consistent\n"
			    "    option forwardfor\n"
			    "    cookie SRV insert indirect nocache httponly\n"
			    "    server s1 10.0.1.1:80 check weight 256 cookie "
			    "s1\n");
	free(b);
	b = backend_of(&out, "first");
	assert_string_equal(b, "backend first\n"
			       "    balance first\n"
			       "    option forwardfor\n"
			       "    timeout server 1500ms\n"
			       "    cookie F prefix nocache\n"
			       "    server f1 [::1]:80 check cookie f1\n");
	free(b);

	/* With HTTPS on, an inserted cookie is secure; a prefix one has no
	 * attributes of its own. */
	{
		static const char doc[] =
			"{\"frontend\":{\"https\":{\"binds\":[\":443\"],"
			"\"crt\":\"/etc/haproxy/certs\"}}}";
		struct buf err = BUF_INIT;

		settings_init(&https);
		assert_int_equal(
			settings_effective(doc, NULL, NULL, &https, &err),
			ST_OK);
		buf_release(&err);
	}
	opts.settings = &https;
	buf_reset(&out);
	render_config(&l, &opts, &out);
	settings_release(&https);
	assert_non_null(strstr(
		out.buf,
		"    cookie SRV insert indirect nocache httponly secure\n"));
	assert_non_null(strstr(out.buf, "    cookie F prefix nocache\n"));
	service_list_release(&l);
	buf_release(&out);
}

/* cookieMode dynamic: HAProxy's own values from a per-backend key that is
 * stable, differs per table, backend and secret, and needs no server value. */
static void render_dynamic(const char *doc, const char *table, struct buf *out)
{
	struct service_list l;
	struct settings s;
	struct render_options opts = {.frontend_bind = ":80"};
	struct buf err = BUF_INIT;
	struct service *svc;

	service_list_init(&l);
	svc = add(&l, "shop", CONFIG_MODE_HOST, "shop.example.com", 80, "SRV");
	svc->opts.cookie_mode = COOKIE_MODE_DYNAMIC;
	service_put_container(svc, "s1", "10.0.1.1");
	settings_init(&s);
	if (doc)
		assert_int_equal(settings_effective(doc, NULL, NULL, &s, &err),
				 ST_OK);
	opts.settings = &s;
	opts.table = table;
	buf_reset(out);
	render_config(&l, &opts, out);
	assert_clean(out);
	settings_release(&s);
	service_list_release(&l);
	buf_release(&err);
}

static const char *cookie_key(const struct buf *cfg)
{
	const char *k = strstr(cfg->buf, "    dynamic-cookie-key ");

	assert_non_null(k);
	k += strlen("    dynamic-cookie-key ");
	assert_int_equal(strspn(k, "0123456789abcdef"), 32);
	assert_int_equal(k[32], '\n');
	return k;
}

static void test_dynamic_cookie(void **state)
{
	static const char secret[] =
		"{\"dynamicCookieSecret\":\"0123456789abcdef-secret\"}";
	static const char other[] =
		"{\"dynamicCookieSecret\":\"another-secret-of-16+\"}";
	struct buf a = BUF_INIT, b = BUF_INIT;

	(void)state;
	render_dynamic(secret, "t1", &a);
	assert_non_null(strstr(a.buf, "    cookie SRV insert indirect nocache "
				      "dynamic\n    dynamic-cookie-key "));
	assert_non_null(strstr(a.buf, "    server s1 10.0.1.1:80 check\n"));
	render_dynamic(secret, "t1", &b);
	assert_string_equal(a.buf, b.buf);
	render_dynamic(secret, "t2", &b);
	assert_memory_not_equal(cookie_key(&a), cookie_key(&b), 32);
	render_dynamic(other, "t1", &b);
	assert_memory_not_equal(cookie_key(&a), cookie_key(&b), 32);
	render_dynamic(NULL, "t1", &b);
	assert_memory_not_equal(cookie_key(&a), cookie_key(&b), 32);
	assert_null(strstr(a.buf, "0123456789abcdef-secret"));
	buf_release(&a);
	buf_release(&b);
}

/* A service without options renders as before the options existed. */
static void test_options_absent_unchanged(void **state)
{
	struct service_list l;
	struct buf out = BUF_INIT;
	struct service *s;
	char *b;

	(void)state;
	service_list_init(&l);
	s = add(&l, "web", CONFIG_MODE_HOST, "web.example.com", 80, "JS");
	service_put_container(s, "w1", "10.0.0.1");
	render(&l, ":80", &out);
	b = backend_of(&out, "web");
	assert_string_equal(b, "backend web\n"
			       "    balance roundrobin\n"
			       "    option forwardfor\n"
			       "    cookie JS prefix nocache\n"
			       "    server w1 10.0.0.1:80 check cookie w1\n");
	free(b);
	service_list_release(&l);
	buf_release(&out);
}

/* Map lines sorted by key, one per key: of two services with one key, the
 * first by name, as the ACL form's rule order gives it. */
static void test_maps_contents(void **state)
{
	struct service_list l;
	struct buf hosts = BUF_INIT, paths = BUF_INIT;

	(void)state;
	service_list_init(&l);
	add(&l, "a", CONFIG_MODE_PATH, "a", 80, NULL);
	add(&l, "a-b", CONFIG_MODE_PATH, "a-b", 80, NULL);
	add(&l, "ab", CONFIG_MODE_PATH, "a/b", 80, NULL);
	add(&l, "dup1", CONFIG_MODE_HOST, "x.example.com", 80, NULL);
	add(&l, "dup2", CONFIG_MODE_HOST, "x.example.com", 80, NULL);
	add(&l, "p1", CONFIG_MODE_PATH, "same", 80, NULL);
	add(&l, "p2", CONFIG_MODE_PATH, "same", 80, NULL);
	add(&l, "z", CONFIG_MODE_HOST, "a.example.com", 80, NULL);
	render_maps(&l, &hosts, &paths);
	assert_string_equal(hosts.buf, "a.example.com z\n"
				       "x.example.com dup1\n");
	/* "/a-b/" < "/a/" < "/a/b/": byte order of the keys as written. */
	assert_string_equal(paths.buf, "/a-b/ a-b\n"
				       "/a/ a\n"
				       "/a/b/ ab\n"
				       "/same/ p1\n");
	buf_release(&hosts);
	buf_release(&paths);
	service_list_release(&l);
	service_list_init(&l);
	render_maps(&l, &hosts, &paths);
	assert_int_equal(hosts.len, 0);
	assert_int_equal(paths.len, 0);
	buf_release(&hosts);
	buf_release(&paths);
	service_list_release(&l);
}

static void test_form(void **state)
{
	struct settings s;

	(void)state;
	assert_int_equal(render_form(NULL, 0), RENDER_FORM_ACL);
	assert_int_equal(render_form(NULL, 1), RENDER_FORM_MAP);
	settings_init(&s);
	assert_int_equal(render_form(&s, 0), RENDER_FORM_ACL);
	assert_int_equal(render_form(&s, 1), RENDER_FORM_MAP);
	free(s.routing_mode);
	s.routing_mode = xstrdup("map");
	assert_int_equal(render_form(&s, 0), RENDER_FORM_MAP);
	assert_int_equal(render_form(&s, 1), RENDER_FORM_MAP);
	free(s.routing_mode);
	s.routing_mode = xstrdup("acl");
	assert_int_equal(render_form(&s, 0), RENDER_FORM_ACL);
	assert_int_equal(render_form(&s, 1), RENDER_FORM_ACL);
	settings_release(&s);
}

/* The map form names no predicate: a change of predicates alone leaves the
 * config's bytes as they were, and only the maps differ. */
static void test_map_config_names_no_predicate(void **state)
{
	struct service_list l;
	struct settings s;
	struct render_options opts = {.settings = &s, .form = RENDER_FORM_MAP};
	struct buf one = BUF_INIT, two = BUF_INIT;

	(void)state;
	settings_init(&s);
	service_list_init(&l);
	add(&l, "app", CONFIG_MODE_HOST, "one.example.com", 80, NULL);
	add(&l, "web", CONFIG_MODE_PATH, "web/v1", 80, NULL);
	render_config(&l, &opts, &one);
	free(l.items[0].predicate);
	l.items[0].predicate = xstrdup("two.example.com");
	free(l.items[1].predicate);
	l.items[1].predicate = xstrdup("web/v2");
	render_config(&l, &opts, &two);
	assert_string_equal(one.buf, two.buf);
	assert_null(strstr(one.buf, "example.com"));
	assert_null(strstr(one.buf, "acl "));
	assert_non_null(
		strstr(one.buf, "map_str(/etc/haproxy/maps/hosts.map)\n"));
	assert_non_null(
		strstr(one.buf,
		       "path,concat(/),map_beg(/etc/haproxy/maps/paths.map)"));
	assert_non_null(strstr(one.buf, "\nbackend web\n"));
	buf_release(&one);
	buf_release(&two);
	service_list_release(&l);
	settings_release(&s);
}

static void test_check_bind(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{":80", ":80"},
		{"*:8080", ":8080"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"[::1]:80", "[::1]:80"},
		{"[2001:DB8:0::1]:443", "[2001:db8::1]:443"},
	};
	static const char *const bad[] = {
		"",	   "80",      ":0",
		":65536",  ":80x",    "1.2.3:80",
		"[::1:80", "host:80", "127.0.0.1:80\nbind :81",
		"::1:80",  ":123456", "[fe80::1%eth0]:80",
	};
	struct buf out = BUF_INIT, err = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(render_check_bind(good[i].in, &out, &err), 0);
		assert_string_equal(out.buf, good[i].out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&err);
		if (!render_check_bind(bad[i], &out, &err))
			fail_msg("bind '%s' was accepted", bad[i]);
		assert_true(err.len > 0);
	}
	buf_release(&out);
	buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_table),
		cmocka_unit_test(test_host_and_cookie),
		cmocka_unit_test(test_dynamic_cookie),
		cmocka_unit_test(test_path_longest_prefix_first),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_over_cap_is_sticky),
		cmocka_unit_test(test_check_bind),
		cmocka_unit_test(test_maps_contents),
		cmocka_unit_test(test_form),
		cmocka_unit_test(test_map_config_names_no_predicate),
		cmocka_unit_test(test_service_options),
		cmocka_unit_test(test_options_absent_unchanged),
	};

	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
