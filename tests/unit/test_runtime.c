/* The runtime path's pure parts: which config changes it may apply without
 * a reload, the commands they become, and `show servers state` checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/runtime.h"
#include "buf.h"
#include "xalloc.h"

#define HEAD                                                                   \
	"global\n    maxconn 4096\n    hard-stop-after 30s\n\ndefaults\n"      \
	"    mode http\n\nfrontend http\n    bind :80\n"                       \
	"    use_backend api if path_api\n"

#define API(balance)                                                           \
	"\nbackend api\n    balance " balance "\n    option forwardfor\n"

static void plan(const char *live, const char *next, struct runtime_plan *p,
		 struct buf *why)
{
	buf_reset(why);
	runtime_plan_build(live, strlen(live), next, strlen(next), p, why);
}

static void test_add_remove_readdress(void **state)
{
	const char *live = HEAD API(
		"roundrobin") "    server a 10.0.0.1:80 check inter 2s\n"
			      "    server b 10.0.0.2:80 check inter 2s\n"
			      "    server c 10.0.0.3:80 check inter 2s\n";
	const char *next = HEAD API(
		"roundrobin") "    server b 10.0.0.2:80 check inter 2s\n"
			      "    server c [2001:db8::3]:8080 check inter 2s\n"
			      "    server d 10.0.0.4:80 check inter 2s\n";
	struct runtime_plan p;
	struct buf why = BUF_INIT;

	(void)state;
	plan(live, next, &p, &why);
	assert_int_equal(p.eligible, 1);
	assert_int_equal(p.added, 1);
	assert_int_equal(p.removed, 1);
	assert_int_equal(p.readdressed, 1);
	assert_int_equal(p.nr_ops, 3);
	/* Capacity first: adds, then re-addresses, then removals. */
	assert_int_equal(p.ops[0].kind, RUNTIME_OP_ADD);
	assert_string_equal(p.ops[0].srv->name, "d");
	assert_string_equal(p.ops[0].srv->args, "check inter 2s");
	assert_int_equal(p.ops[0].dynamic_cookie, 0);
	assert_int_equal(p.ops[1].kind, RUNTIME_OP_ADDR);
	assert_string_equal(p.ops[1].srv->addr, "2001:db8::3");
	assert_int_equal(p.ops[1].srv->port, 8080);
	assert_int_equal(p.ops[2].kind, RUNTIME_OP_DEL);
	assert_string_equal(p.ops[2].srv->name, "a");
	assert_string_equal(p.ops[2].srv->backend, "api");
	runtime_plan_release(&p);
	buf_release(&why);
}

static void test_not_only_servers(void **state)
{
	const char *live =
		HEAD API("roundrobin") "    server a 10.0.0.1:80 check\n";
	struct runtime_plan p;
	struct buf why = BUF_INIT;

	(void)state;
	/* A new service: a new backend and a new routing line. */
	plan(live,
	     HEAD "    use_backend web if host_web\n" API(
		     "roundrobin") "    server a 10.0.0.1:80 check\n"
				   "\nbackend web\n    balance roundrobin\n"
				   "    server w 10.0.0.9:80 check\n",
	     &p, &why);
	assert_int_equal(p.eligible, 0);
	assert_non_null(strstr(why.buf, "differs in more than servers"));
	/* Counted all the same, for the log. */
	assert_int_equal(p.added, 1);
	runtime_plan_release(&p);

	/* A settings change in the backend. */
	plan(live, HEAD API("leastconn") "    server a 10.0.0.1:80 check\n", &p,
	     &why);
	assert_int_equal(p.eligible, 0);
	runtime_plan_release(&p);

	/* A server whose options change (a new weight). */
	plan(live,
	     HEAD API("roundrobin") "    server a 10.0.0.1:80 check weight 5\n",
	     &p, &why);
	assert_int_equal(p.eligible, 0);
	assert_non_null(strstr(why.buf, "api/a changed options"));
	runtime_plan_release(&p);

	/* Only the order of the servers: nothing to send. */
	plan(HEAD API("roundrobin") "    server a 10.0.0.1:80\n    server b "
				    "10.0.0.2:80\n",
	     HEAD API("roundrobin") "    server b 10.0.0.2:80\n    server a "
				    "10.0.0.1:80\n",
	     &p, &why);
	assert_int_equal(p.eligible, 1);
	assert_int_equal(p.nr_ops, 0);
	runtime_plan_release(&p);
	buf_release(&why);
}

static void test_balance_and_cookies(void **state)
{
	struct runtime_plan p;
	struct buf why = BUF_INIT;
	static const struct {
		const char *balance;
		int eligible;
	} cases[] = {
		{"roundrobin", 1}, {"leastconn", 1}, {"first", 1},
		{"random", 0},	   {"static-rr", 0}, {"source", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf live = BUF_INIT, next = BUF_INIT;

		buf_addf(&live,
			 HEAD "\nbackend api\n    balance %s\n"
			      "    server a 10.0.0.1:80 check\n",
			 cases[i].balance);
		buf_addf(&next, "%s    server b 10.0.0.2:80 check\n", live.buf);
		plan(live.buf, next.buf, &p, &why);
		assert_int_equal(p.eligible, cases[i].eligible);
		runtime_plan_release(&p);
		/* Removing and re-addressing never depend on the algorithm. */
		plan(next.buf, live.buf, &p, &why);
		assert_int_equal(p.eligible, 1);
		runtime_plan_release(&p);
		buf_release(&live);
		buf_release(&next);
	}
	/* source takes added servers with consistent hashing only. */
	plan(HEAD API("source") "    hash-type consistent\n    server a "
				"10.0.0.1:80\n",
	     HEAD API("source") "    hash-type consistent\n    server a "
				"10.0.0.1:80\n"
				"    server b 10.0.0.2:80\n",
	     &p, &why);
	assert_int_equal(p.eligible, 1);
	runtime_plan_release(&p);

	/* first: an added server must come after the ones it joins. */
	plan(HEAD API("first") "    server b 10.0.0.2:80\n",
	     HEAD API("first") "    server a 10.0.0.1:80\n    server b "
			       "10.0.0.2:80\n",
	     &p, &why);
	assert_int_equal(p.eligible, 0);
	runtime_plan_release(&p);

	/* Static per-server cookies: a reload, whatever the change. */
	plan(HEAD API("roundrobin") "    cookie SRV insert indirect nocache\n"
				    "    server a 10.0.0.1:80 check cookie a\n",
	     HEAD API("roundrobin") "    cookie SRV insert indirect nocache\n"
				    "    server a 10.0.0.1:80 check cookie a\n"
				    "    server b 10.0.0.2:80 check cookie b\n",
	     &p, &why);
	assert_int_equal(p.eligible, 0);
	assert_non_null(strstr(why.buf, "static server cookies"));
	runtime_plan_release(&p);

	/* Dynamic cookies: added, then `enable dynamic-cookie`. */
	plan(HEAD API("roundrobin") "    cookie SRV insert indirect nocache "
				    "dynamic\n"
				    "    dynamic-cookie-key k\n"
				    "    server a 10.0.0.1:80 check\n",
	     HEAD API("roundrobin") "    cookie SRV insert indirect nocache "
				    "dynamic\n"
				    "    dynamic-cookie-key k\n"
				    "    server a 10.0.0.1:80 check\n"
				    "    server b 10.0.0.2:80 check\n",
	     &p, &why);
	assert_int_equal(p.eligible, 1);
	assert_int_equal(p.nr_ops, 1);
	assert_int_equal(p.ops[0].dynamic_cookie, 1);
	runtime_plan_release(&p);
	buf_release(&why);
}

static void test_unreadable_servers(void **state)
{
	struct runtime_servers s;
	struct buf why = BUF_INIT;
	static const char *const bad[] = {
		"\nbackend a\n    server x host.example:80\n",
		"\nbackend a\n    server x 10.0.0.1\n",
		"\nbackend a\n    server x 10.0.0.1:99999\n",
		"\nbackend a\n    server x 10.0.0.1:80 check;quit\n",
		"\nbackend a\n    server x 10.0.0.1:80 # comment\n",
		"\nbackend a\n    server x 10.0.0.1:80\n    server x "
		"10.0.0.2:80\n",
		"\nbackend a;b\n    server x 10.0.0.1:80\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&why);
		assert_int_equal(
			runtime_servers_parse(bad[i], strlen(bad[i]), &s, &why),
			-1);
		assert_true(why.len > 0);
	}
	/* Server lines outside a backend are not servers of one. */
	assert_int_equal(runtime_servers_parse("frontend f\n    server x\n", 24,
					       &s, &why),
			 0);
	assert_int_equal(s.nr, 0);
	runtime_servers_release(&s);
	buf_release(&why);
}

#define STATE_HEAD                                                             \
	"1\n# be_id be_name srv_id srv_name srv_addr srv_op_state "            \
	"srv_admin_state srv_uweight srv_iweight srv_time_since_last_change "  \
	"srv_check_status srv_check_result srv_check_health srv_check_state "  \
	"srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port "    \
	"srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "  \
	"srv_agent_port\n"
#define ROW(be, name, addr, admin, port)                                       \
	"2 " be " 1 " name " " addr " 2 " admin                                \
	" 1 1 613 8 2 0 6 0 0 0 - " port " - 0 0 - - 0\n"

static void test_state_compare(void **state)
{
	const char *cfg = "\nbackend api\n    server a 10.0.0.1:80 check\n"
			  "    server b [::1]:8080 check\n";
	struct runtime_servers want;
	struct buf why = BUF_INIT;

	(void)state;
	assert_int_equal(runtime_servers_parse(cfg, strlen(cfg), &want, &why),
			 0);
	assert_int_equal(
		runtime_state_compare(
			STATE_HEAD ROW("api", "b", "::1", "0", "8080")
				ROW("api", "a", "10.0.0.1", "0", "80") "\n",
			&want, &why),
		0);
	assert_int_equal(
		runtime_state_compare(
			STATE_HEAD ROW("api", "a", "10.0.0.1", "0", "80"),
			&want, &why),
		-1);
	assert_non_null(strstr(why.buf, "api/b is missing"));
	assert_int_equal(
		runtime_state_compare(
			STATE_HEAD ROW("api", "a", "10.0.0.1", "0", "80")
				ROW("api", "b", "::1", "0", "8080")
					ROW("api", "c", "10.0.0.3", "0", "80"),
			&want, &why),
		-1);
	assert_non_null(strstr(why.buf, "api/c is not in the file"));
	assert_int_equal(
		runtime_state_compare(
			STATE_HEAD ROW("api", "a", "10.0.0.1", "0", "81")
				ROW("api", "b", "::1", "0", "8080"),
			&want, &why),
		-1);
	assert_non_null(strstr(why.buf, "port 81"));
	/* Drain (8) or maintenance (1) is not what the file says. */
	assert_int_equal(
		runtime_state_compare(
			STATE_HEAD ROW("api", "a", "10.0.0.1", "8", "80")
				ROW("api", "b", "::1", "0", "8080"),
			&want, &why),
		-1);
	assert_non_null(strstr(why.buf, "admin state 8"));
	assert_int_equal(
		runtime_state_compare("Unknown command\n", &want, &why), -1);
	assert_int_equal(runtime_state_compare("", &want, &why), -1);
	runtime_servers_release(&want);
	buf_release(&why);
}

#define HOSTS "/m/hosts.map"
#define PATHS "/m/paths.map"

/* The map ops of a plan as "KIND PATH KEY [VALUE]" lines. */
static void map_ops_text(const struct runtime_plan *p, struct buf *out)
{
	static const char *const kinds[] = {"set", "add", "del"};
	size_t i;

	buf_reset(out);
	for (i = 0; i < p->nr_map_ops; i++) {
		const struct runtime_map_op *op = &p->map_ops[i];

		buf_addf(out, "%s %s %s", kinds[op->kind], op->path,
			 op->entry->key);
		if (op->kind != RUNTIME_MAP_DEL)
			buf_addf(out, " %s", op->entry->value);
		buf_addch(out, '\n');
	}
}

static void plan_maps(struct runtime_plan *p, const char *hosts_live,
		      const char *hosts_next, const char *paths_live,
		      const char *paths_next, struct buf *why)
{
	plan(HEAD API("roundrobin") "    server a 10.0.0.1:80\n",
	     HEAD API("roundrobin") "    server a 10.0.0.1:80\n", p, why);
	runtime_plan_map(p, HOSTS, hosts_live, strlen(hosts_live), hosts_next,
			 strlen(hosts_next), why);
	runtime_plan_map(p, PATHS, paths_live, strlen(paths_live), paths_next,
			 strlen(paths_next), why);
}

static void test_map_diff(void **state)
{
	struct runtime_plan p;
	struct buf why = BUF_INIT, ops = BUF_INIT;

	(void)state;
	/* A host moved from api to web, web's old host gone, a new one for
	 * api; a path predicate changed. Sets first, then adds, then
	 * deletes: a key of both files is never missing. */
	plan_maps(&p,
		  "a.example.com api\nb.example.com web\n"
		  "c.example.com web\n",
		  "a.example.com web\nc.example.com web\n"
		  "d.example.com api\n",
		  "/old/ api\n/same/ web\n", "/new/ api\n/same/ web\n", &why);
	assert_int_equal(p.eligible, 1);
	map_ops_text(&p, &ops);
	assert_string_equal(ops.buf, "set " HOSTS " a.example.com web\n"
				     "add " HOSTS " d.example.com api\n"
				     "add " PATHS " /new/ api\n"
				     "del " HOSTS " b.example.com\n"
				     "del " PATHS " /old/\n");
	assert_int_equal(p.map_set, 1);
	assert_int_equal(p.map_added, 2);
	assert_int_equal(p.map_removed, 2);
	assert_int_equal(p.nr_ops, 0);
	assert_int_equal(p.nr_maps, 2);
	assert_int_equal(p.maps[0].next.nr, 3);
	runtime_plan_release(&p);

	/* The same entries in another order: nothing to send. */
	plan_maps(&p, "b.example.com web\na.example.com api\n",
		  "a.example.com api\nb.example.com web\n", "", "", &why);
	assert_int_equal(p.eligible, 1);
	assert_int_equal(p.nr_map_ops, 0);
	runtime_plan_release(&p);

	/* From an empty map and back to one. */
	plan_maps(&p, "", "a.example.com api\n", "/p/ api\n", "", &why);
	assert_int_equal(p.eligible, 1);
	map_ops_text(&p, &ops);
	assert_string_equal(ops.buf, "add " HOSTS " a.example.com api\n"
				     "del " PATHS " /p/\n");
	runtime_plan_release(&p);
	buf_release(&ops);
	buf_release(&why);
}

static void test_map_refused(void **state)
{
	static const char *const bad[] = {
		"a;show%20info api\n", /* ';' would start another command */
		"#1 api\n",	       /* an entry reference, not a key */
		"a\\b api\n",	       /* an escape */
		"a api extra\n",       /* three words */
		"a\n",		       /* no value */
		"a api\na web\n",      /* a key twice */
		"a \"api\"\n",
	};
	struct runtime_plan p;
	struct buf why = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		plan_maps(&p, "a api\n", bad[i], "", "", &why);
		assert_int_equal(p.eligible, 0);
		assert_non_null(strstr(why.buf, HOSTS));
		runtime_plan_release(&p);
		/* The live side is read the same way. */
		plan_maps(&p, "", "", bad[i], "a api\n", &why);
		assert_int_equal(p.eligible, 0);
		assert_non_null(strstr(why.buf, PATHS));
		runtime_plan_release(&p);
	}
	/* A config change keeps its own reason, maps or not. */
	plan(HEAD API("roundrobin"), HEAD API("leastconn"), &p, &why);
	runtime_plan_map(&p, HOSTS, "a api\n", 6, "a web\n", 6, &why);
	assert_int_equal(p.eligible, 0);
	assert_non_null(strstr(why.buf, "differs in more than servers"));
	runtime_plan_release(&p);
	buf_release(&why);
}

static void test_map_many_changes(void **state)
{
	struct buf next = BUF_INIT, why = BUF_INIT;
	struct runtime_plan p;
	int i;

	(void)state;
	for (i = 0; i < 2001; i++)
		buf_addf(&next, "h%d.example.com api\n", i);
	plan_maps(&p, "", next.buf, "", "", &why);
	assert_int_equal(p.eligible, 0);
	assert_non_null(strstr(why.buf, "2001 map entries change"));
	runtime_plan_release(&p);
	buf_setlen(&next, 0);
	for (i = 0; i < 2000; i++)
		buf_addf(&next, "h%d.example.com api\n", i);
	plan_maps(&p, "", next.buf, "", "", &why);
	assert_int_equal(p.eligible, 1);
	assert_int_equal(p.map_added, 2000);
	runtime_plan_release(&p);
	buf_release(&next);
	buf_release(&why);
}

static void test_map_compare(void **state)
{
	const char *file = "a.example.com api\nb.example.com web\n";
	struct runtime_map_entries want;
	struct buf why = BUF_INIT;

	(void)state;
	assert_int_equal(runtime_map_parse(file, strlen(file), &want, &why), 0);
	assert_int_equal(want.nr, 2);
	assert_int_equal(
		runtime_map_compare("0x55ebb9eba770 b.example.com web\n"
				    "0x55ebb9eba720 a.example.com api\n"
				    "\n",
				    &want, &why),
		0);
	assert_int_equal(
		runtime_map_compare("0x1 a.example.com api\n", &want, &why),
		-1);
	assert_non_null(strstr(why.buf, "b.example.com is missing"));
	assert_int_equal(runtime_map_compare("0x1 a.example.com api\n"
					     "0x2 b.example.com web\n"
					     "0x3 c.example.com web\n",
					     &want, &why),
			 -1);
	assert_non_null(strstr(why.buf, "c.example.com is not in the file"));
	assert_int_equal(runtime_map_compare("0x1 a.example.com web\n"
					     "0x2 b.example.com web\n",
					     &want, &why),
			 -1);
	assert_non_null(strstr(why.buf, "gives web, not api"));
	/* `add map` of a key that is there makes two entries. */
	assert_int_equal(runtime_map_compare("0x1 a.example.com api\n"
					     "0x2 b.example.com web\n"
					     "0x3 b.example.com api\n",
					     &want, &why),
			 -1);
	assert_non_null(strstr(why.buf, "twice"));
	assert_int_equal(
		runtime_map_compare("Unknown map identifier. Please use #<id> "
				    "or <file>.\n",
				    &want, &why),
		-1);
	assert_non_null(strstr(why.buf, "Unknown map identifier"));
	runtime_map_entries_release(&want);
	/* An empty map is shown as nothing. */
	assert_int_equal(runtime_map_parse("", 0, &want, &why), 0);
	assert_int_equal(runtime_map_compare("\n", &want, &why), 0);
	runtime_map_entries_release(&want);
	buf_release(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_remove_readdress),
		cmocka_unit_test(test_not_only_servers),
		cmocka_unit_test(test_balance_and_cookies),
		cmocka_unit_test(test_unreadable_servers),
		cmocka_unit_test(test_state_compare),
		cmocka_unit_test(test_map_diff),
		cmocka_unit_test(test_map_refused),
		cmocka_unit_test(test_map_many_changes),
		cmocka_unit_test(test_map_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
