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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_remove_readdress),
		cmocka_unit_test(test_not_only_servers),
		cmocka_unit_test(test_balance_and_cookies),
		cmocka_unit_test(test_unreadable_servers),
		cmocka_unit_test(test_state_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
