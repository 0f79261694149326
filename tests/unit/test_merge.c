/* The merge, step by step against the spec, and the first version's faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "merge.h"
#include "xalloc.h"

#define NOW  1800000000000LL
#define THEN 1700000000000LL

static void add_running(struct payload *p, const char *svc, const char *id,
			const char *ip)
{
	p->running =
		xrealloc(p->running, (p->nr_running + 1) * sizeof(*p->running));
	p->running[p->nr_running].service = xstrdup(svc);
	p->running[p->nr_running].id = xstrdup(id);
	p->running[p->nr_running].ip = xstrdup(ip);
	p->nr_running++;
}

static struct service *add_service(struct service_list *list, const char *name,
				   enum config_mode mode, const char *predicate,
				   unsigned port, const char *cookie)
{
	struct service *s = service_list_append(list);

	s->name = xstrdup(name);
	s->mode = mode;
	s->predicate = xstrdup(predicate);
	s->port = port;
	s->cookie = cookie ? xstrdup(cookie) : NULL;
	return s;
}

static struct service *stored_service(struct service_list *stored,
				      const char *name, const char *predicate)
{
	struct service *s = add_service(stored, name, CONFIG_MODE_HOST,
					predicate, 80, NULL);

	s->created_at = THEN;
	s->updated_at = THEN;
	s->version = 7;
	return s;
}

static void setup_payload(struct payload *p)
{
	payload_init(p);
	p->table = xstrdup("astro");
}

static int was_changed(const struct merge_result *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nr_changed; i++)
		if (!strcmp(m->services.items[m->changed[i]].name, name))
			return 1;
	return 0;
}

/* Step 2: a stored service without running containers is forgotten. */
static void test_forget_stopped_service(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;

	(void)state;
	service_list_init(&stored);
	service_put_container(stored_service(&stored, "a", "a.example"), "a1",
			      "10.0.0.1");
	service_put_container(stored_service(&stored, "b", "b.example"), "b1",
			      "10.0.0.2");
	setup_payload(&p);
	add_running(&p, "b", "b1", "10.0.0.2");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);

	assert_int_equal(m.services.nr, 1);
	assert_string_equal(m.services.items[0].name, "b");
	assert_int_equal(m.removed.nr, 1);
	assert_string_equal(m.removed.items[0].name, "a");
	assert_int_equal(m.removed.items[0].version, 7);
	/* b is unchanged: nothing to write for it. */
	assert_int_equal(m.nr_changed, 0);
	assert_int_equal(m.services.items[0].updated_at, THEN);

	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* Step 3: only containers still running under the service are kept. */
static void test_keep_only_running_containers(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;
	struct service *s;

	(void)state;
	service_list_init(&stored);
	s = stored_service(&stored, "web", "w.example");
	service_put_container(s, "c1", "10.0.0.1");
	service_put_container(s, "c2", "10.0.0.2");
	service_put_container(s, "c3", "10.0.0.3");
	setup_payload(&p);
	add_running(&p, "web", "c3", "10.0.0.3");
	add_running(&p, "web", "c1", "10.0.0.1");
	/* c2 runs, but under another service: it does not keep web's c2. */
	add_running(&p, "other", "c2", "10.0.0.2");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);

	assert_int_equal(m.services.nr, 1);
	s = &m.services.items[0];
	assert_int_equal(s->nr_containers, 2);
	assert_string_equal(s->containers[0].id, "c1");
	assert_string_equal(s->containers[1].id, "c3");
	assert_true(was_changed(&m, "web"));
	assert_int_equal(s->updated_at, NOW);
	assert_int_equal(s->created_at, THEN);
	assert_int_equal(s->version, 7);

	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* Step 4: a candidate for a known service replaces its routing settings
 * (the first version ignored them) and adds its containers. */
static void test_candidate_replaces_settings(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;
	struct service *s, *c;

	(void)state;
	service_list_init(&stored);
	service_put_container(stored_service(&stored, "web", "old.example"),
			      "c1", "10.0.0.1");
	setup_payload(&p);
	add_running(&p, "web", "c1", "10.0.0.1");
	c = add_service(&p.candidates, "web", CONFIG_MODE_PATH, "shop", 9000,
			"SID");
	service_put_container(c, "c9", "10.0.0.9");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);

	assert_int_equal(m.services.nr, 1);
	s = &m.services.items[0];
	assert_int_equal(s->mode, CONFIG_MODE_PATH);
	assert_string_equal(s->predicate, "shop");
	assert_int_equal(s->port, 9000);
	assert_string_equal(s->cookie, "SID");
	assert_int_equal(s->nr_containers, 2);
	assert_true(was_changed(&m, "web"));

	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* The options are settings too: a candidate's replace the stored ones, all
 * together, and one without them gets the defaults back. */
static void test_candidate_replaces_options(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;
	struct service *old, *c, *s;
	unsigned flags[] = {0, MERGE_MOVE | MERGE_TAKE};
	size_t f;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(flags); f++) {
		service_list_init(&stored);
		old = stored_service(&stored, "web", "web.example");
		old->opts.balance = BALANCE_LEASTCONN;
		old->opts.check_path = xstrdup("/old");
		old->opts.maxconn = 9;
		old->opts.timeout_tunnel = 1000;
		service_put_container(old, "c1", "10.0.0.1")->weight = 3;
		setup_payload(&p);
		add_running(&p, "web", "c1", "10.0.0.1");
		c = add_service(&p.candidates, "web", CONFIG_MODE_HOST,
				"web.example", 80, NULL);
		c->opts.timeout_server = 5000;
		merge_result_init(&m);
		merge_apply_flags(&stored, &p, NOW, flags[f], &m);

		assert_int_equal(m.services.nr, 1);
		s = &m.services.items[0];
		assert_int_equal(s->opts.balance, BALANCE_ROUNDROBIN);
		assert_null(s->opts.check_path);
		assert_int_equal(s->opts.maxconn, 0);
		assert_int_equal(s->opts.timeout_tunnel, 0);
		assert_int_equal(s->opts.timeout_server, 5000);
		/* c1 is only running, not in the candidate: it keeps its
		 * stored weight. */
		assert_int_equal(s->containers[0].weight, 3);
		assert_true(was_changed(&m, "web"));
		merge_result_release(&m);
		payload_release(&p);
		service_list_release(&stored);
	}
}

/* A container's weight: a candidate's container brings its own (or none),
 * a container only running keeps the stored one, and a weight alone is a
 * change to store. */
static void test_container_weights(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;
	struct service *old, *c, *s;

	(void)state;
	service_list_init(&stored);
	old = stored_service(&stored, "web", "web.example");
	service_put_container(old, "c1", "10.0.0.1")->weight = 5;
	service_put_container(old, "c2", "10.0.0.2")->weight = 6;
	service_put_container(old, "c3", "10.0.0.3")->weight = 7;

	/* No candidate: nothing changes, weights kept. */
	setup_payload(&p);
	add_running(&p, "web", "c1", "10.0.0.1");
	add_running(&p, "web", "c2", "10.0.0.2");
	add_running(&p, "web", "c3", "10.0.0.3");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);
	assert_int_equal(m.nr_changed, 0);
	assert_int_equal(m.services.items[0].containers[2].weight, 7);
	merge_result_release(&m);

	/* c1 in the candidate with a new weight, c2 in it without one, c3
	 * only running. */
	c = add_service(&p.candidates, "web", CONFIG_MODE_HOST, "web.example",
			80, NULL);
	service_put_container(c, "c1", "10.0.0.1")->weight = 0;
	service_put_container(c, "c2", "10.0.0.2");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);
	s = &m.services.items[0];
	assert_int_equal(s->nr_containers, 3);
	assert_int_equal(s->containers[0].weight, 0);
	assert_int_equal(s->containers[1].weight, WEIGHT_UNSET);
	assert_int_equal(s->containers[2].weight, 7);
	assert_true(was_changed(&m, "web"));
	merge_result_release(&m);

	/* The same weights as stored: no change. */
	service_release(&p.candidates.items[0]);
	p.candidates.nr = 0;
	c = add_service(&p.candidates, "web", CONFIG_MODE_HOST, "web.example",
			80, NULL);
	service_put_container(c, "c1", "10.0.0.1")->weight = 5;
	service_put_container(c, "c2", "10.0.0.2")->weight = 6;
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);
	assert_int_equal(m.nr_changed, 0);
	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* Step 4 with several candidates of one service: the latest settings win. */
static void test_latest_candidate_wins(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;

	(void)state;
	service_list_init(&stored);
	setup_payload(&p);
	service_put_container(add_service(&p.candidates, "x", CONFIG_MODE_HOST,
					  "one.example", 80, NULL),
			      "a", "10.0.0.1");
	add_service(&p.candidates, "y", CONFIG_MODE_HOST, "y.example", 80,
		    NULL);
	service_put_container(add_service(&p.candidates, "x", CONFIG_MODE_HOST,
					  "two.example", 81, NULL),
			      "b", "10.0.0.2");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);

	assert_int_equal(m.services.nr, 2);
	assert_string_equal(m.services.items[0].name, "x");
	assert_string_equal(m.services.items[0].predicate, "two.example");
	assert_int_equal(m.services.items[0].port, 81);
	assert_int_equal(m.services.items[0].nr_containers, 2);
	assert_int_equal(m.services.items[0].created_at, NOW);
	assert_int_equal(m.nr_changed, 2);

	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* Step 5: running containers of a service known only from this call's
 * candidates are added (the first version ignored them). */
static void test_running_joins_new_service(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;

	(void)state;
	service_list_init(&stored);
	setup_payload(&p);
	add_running(&p, "new", "r1", "10.0.0.5");
	add_running(&p, "unknown", "u1", "10.0.0.6");
	add_service(&p.candidates, "new", CONFIG_MODE_HOST, "new.example", 80,
		    NULL);
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);

	/* "unknown" has no routing settings anywhere: it cannot be routed. */
	assert_int_equal(m.services.nr, 1);
	assert_int_equal(m.services.items[0].nr_containers, 1);
	assert_string_equal(m.services.items[0].containers[0].id, "r1");

	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* Step 6: (service, id) identifies a container; the running address wins.
 * The first version matched ids across services and glued key parts
 * together so that q1+10.0.7.99 equalled q11+0.0.7.99. */
static void test_container_identity(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;
	struct service *s, *c;

	(void)state;
	service_list_init(&stored);
	s = stored_service(&stored, "a", "a.example");
	service_put_container(s, "q1", "10.0.7.99");
	service_put_container(s, "q11", "0.0.7.99");
	s = stored_service(&stored, "b", "b.example");
	service_put_container(s, "q1", "10.9.9.9");
	setup_payload(&p);
	add_running(&p, "a", "q1", "10.0.7.99");
	add_running(&p, "a", "q11", "0.0.7.99");
	/* b's q1 restarted with a new address. */
	add_running(&p, "b", "q1", "10.1.1.1");
	c = add_service(&p.candidates, "b", CONFIG_MODE_HOST, "b.example", 80,
			NULL);
	service_put_container(c, "q1", "10.2.2.2");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);

	assert_int_equal(m.services.nr, 2);
	assert_int_equal(m.services.items[0].nr_containers, 2);
	assert_int_equal(m.services.items[1].nr_containers, 1);
	assert_string_equal(m.services.items[1].containers[0].ip, "10.1.1.1");
	assert_false(was_changed(&m, "a"));
	assert_true(was_changed(&m, "b"));

	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* Duplicates within running collapse; the later one wins. */
static void test_running_duplicates_collapse(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;

	(void)state;
	service_list_init(&stored);
	service_put_container(stored_service(&stored, "a", "a.example"), "x",
			      "10.0.0.1");
	setup_payload(&p);
	add_running(&p, "a", "x", "10.0.0.2");
	add_running(&p, "a", "x", "10.0.0.3");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);
	assert_int_equal(m.services.items[0].nr_containers, 1);
	assert_string_equal(m.services.items[0].containers[0].ip, "10.0.0.3");
	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* The first version read back one service per call; every stored service
 * must survive a call that names only another one. */
static void test_all_services_survive(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;
	char name[16], id[16];
	int i;

	(void)state;
	service_list_init(&stored);
	setup_payload(&p);
	for (i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		snprintf(id, sizeof(id), "c%02d", i);
		service_put_container(
			stored_service(&stored, name, "x.example"), id,
			"10.0.0.1");
		add_running(&p, name, id, "10.0.0.1");
	}
	service_put_container(add_service(&p.candidates, "s25",
					  CONFIG_MODE_HOST, "new.example", 80,
					  NULL),
			      "z", "10.0.0.2");
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);
	assert_int_equal(m.services.nr, 50);
	assert_int_equal(m.nr_changed, 1);
	assert_int_equal(m.removed.nr, 0);
	assert_string_equal(m.services.items[25].predicate, "new.example");
	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* A call without candidates is a plain "container stopped" call. */
static void test_no_candidates(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m;

	(void)state;
	service_list_init(&stored);
	service_put_container(stored_service(&stored, "a", "a.example"), "x",
			      "10.0.0.1");
	setup_payload(&p);
	merge_result_init(&m);
	merge_apply(&stored, &p, NOW, &m);
	assert_int_equal(m.services.nr, 0);
	assert_int_equal(m.removed.nr, 1);
	merge_result_release(&m);
	payload_release(&p);
	service_list_release(&stored);
}

/* An identical call changes nothing, and the output stays sorted. */
static void test_unchanged_call_and_order(void **state)
{
	struct service_list stored;
	struct payload p;
	struct merge_result m1, m2;
	size_t i;

	(void)state;
	service_list_init(&stored);
	setup_payload(&p);
	add_running(&p, "zeta", "b", "10.0.0.2");
	add_running(&p, "alpha", "z", "10.0.0.3");
	add_running(&p, "alpha", "a", "10.0.0.4");
	add_service(&p.candidates, "zeta", CONFIG_MODE_HOST, "z.example", 80,
		    NULL);
	add_service(&p.candidates, "alpha", CONFIG_MODE_PATH, "a", 80, "C");
	merge_result_init(&m1);
	merge_apply(&stored, &p, NOW, &m1);
	assert_string_equal(m1.services.items[0].name, "alpha");
	assert_string_equal(m1.services.items[0].containers[0].id, "a");
	assert_string_equal(m1.services.items[1].name, "zeta");

	merge_result_init(&m2);
	merge_apply(&m1.services, &p, NOW + 1000, &m2);
	assert_int_equal(m2.nr_changed, 0);
	assert_int_equal(m2.removed.nr, 0);
	for (i = 0; i < m2.services.nr; i++)
		assert_int_equal(m2.services.items[i].updated_at, NOW);
	merge_result_release(&m1);
	merge_result_release(&m2);
	payload_release(&p);
	service_list_release(&stored);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forget_stopped_service),
		cmocka_unit_test(test_keep_only_running_containers),
		cmocka_unit_test(test_candidate_replaces_settings),
		cmocka_unit_test(test_latest_candidate_wins),
		cmocka_unit_test(test_candidate_replaces_options),
		cmocka_unit_test(test_container_weights),
		cmocka_unit_test(test_running_joins_new_service),
		cmocka_unit_test(test_container_identity),
		cmocka_unit_test(test_running_duplicates_collapse),
		cmocka_unit_test(test_all_services_survive),
		cmocka_unit_test(test_no_candidates),
		cmocka_unit_test(test_unchanged_call_and_order),
	};

	return cmocka_run_group_tests_name("merge", tests, NULL, NULL);
}
