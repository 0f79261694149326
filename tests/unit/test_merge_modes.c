/*
 * The merge's fast modes against its plain one, on many random tables and
 * payloads: MERGE_CHECK must tell a change exactly when the plain merge
 * finds one, and MERGE_MOVE | MERGE_TAKE must give the same table, the same
 * changes and the same removals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "merge.h"
#include "payload.h"
#include "service.h"
#include "xalloc.h"
#include "banned.h"

#define NOW    1800000000000LL
#define ROUNDS 3000

static unsigned long rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(rng_state >> 33) % n;
}

static const char *const names[] = {"a", "b", "c", "d", "e"};
static const char *const ids[] = {"1", "2", "3", "4"};
static const char *const ips[] = {"10.0.0.1", "10.0.0.2", "::1"};

/* Options and weights, often the defaults. */
static void random_options(struct service *svc)
{
	size_t i;

	if (rnd(2)) {
		svc->opts.balance = (enum balance)rnd(4);
		svc->opts.maxconn = rnd(2);
		if (rnd(2))
			svc->opts.check_path = xstrdup(rnd(2) ? "/a" : "/b");
	}
	for (i = 0; i < svc->nr_containers; i++)
		svc->containers[i].weight = rnd(3) ? WEIGHT_UNSET : (int)rnd(2);
}

static void fill_stored(struct service_list *list, unsigned long seed)
{
	size_t i, j;

	rng_state = seed;
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		struct service *svc;
		unsigned n;

		if (rnd(3) == 0)
			continue;
		svc = service_list_append(list);
		svc->name = xstrdup(names[i]);
		svc->port = 80 + rnd(2);
		svc->mode = rnd(2) ? CONFIG_MODE_HOST : CONFIG_MODE_PATH;
		svc->predicate = xstrdup(rnd(2) ? "x" : "y");
		svc->cookie = rnd(2) ? xstrdup("SID") : NULL;
		svc->created_at = 1000 + i;
		svc->updated_at = 2000 + i;
		svc->version = 7 + i;
		n = rnd(4);
		for (j = 0; j < n; j++)
			service_put_container(svc, ids[rnd(ARRAY_SIZE(ids))],
					      ips[rnd(ARRAY_SIZE(ips))]);
		random_options(svc);
	}
}

/* Often `stored` as it is (then nothing changes), sometimes with a
 * duplicate; else random entries. */
static void fill_running_from(struct payload *p,
			      const struct service_list *stored)
{
	size_t i, j, n = 0;

	for (i = 0; i < stored->nr; i++)
		n += stored->items[i].nr_containers;
	p->running = xcalloc(n + 1, sizeof(*p->running));
	for (i = 0; i < stored->nr; i++)
		for (j = 0; j < stored->items[i].nr_containers; j++) {
			struct running *r = &p->running[p->nr_running++];

			r->service = xstrdup(stored->items[i].name);
			r->id = xstrdup(stored->items[i].containers[j].id);
			r->ip = xstrdup(stored->items[i].containers[j].ip);
		}
	if (n && rnd(4) == 0) {
		/* One container moved to another address. */
		struct running *r = &p->running[rnd((unsigned)n)];
		const char *other =
			strcmp(r->ip, "10.0.0.1") ? "10.0.0.1" : "10.0.0.2";

		free(r->ip);
		r->ip = xstrdup(other);
	}
	if (n && rnd(3) == 0) {
		/* The same entry twice, in front: the later one decides. */
		struct running *r = &p->running[p->nr_running++];

		memmove(p->running + 1, p->running, n * sizeof(*r));
		r = &p->running[0];
		r->service = xstrdup(p->running[n].service);
		r->id = xstrdup(p->running[n].id);
		r->ip = xstrdup(rnd(2) ? p->running[n].ip : "10.9.9.9");
	}
}

static void fill_payload(struct payload *p, unsigned long seed,
			 const struct service_list *stored)
{
	unsigned i, n;

	rng_state = seed;
	payload_init(p);
	p->table = xstrdup("tbl");
	if (rnd(2)) {
		fill_running_from(p, stored);
		/* The agent's call: every service again as a candidate. */
		if (rnd(2))
			service_list_copy(&p->candidates, stored);
		return;
	}
	n = rnd(10);
	p->running = n ? xcalloc(n, sizeof(*p->running)) : NULL;
	for (i = 0; i < n; i++) {
		p->running[i].service = xstrdup(names[rnd(ARRAY_SIZE(names))]);
		p->running[i].id = xstrdup(ids[rnd(ARRAY_SIZE(ids))]);
		p->running[i].ip = xstrdup(ips[rnd(ARRAY_SIZE(ips))]);
	}
	p->nr_running = n;
	/* Half of the time in order, as agents usually send it. */
	if (rnd(2)) {
		size_t a, b;

		for (a = 1; a < n; a++)
			for (b = a; b > 0; b--) {
				struct running *x = &p->running[b - 1],
					       *y = &p->running[b];
				int cmp = strcmp(x->service, y->service);
				struct running tmp;

				if (cmp < 0 ||
				    (!cmp && strcmp(x->id, y->id) <= 0))
					break;
				tmp = *x;
				*x = *y;
				*y = tmp;
			}
	}
	n = rnd(4);
	for (i = 0; i < n; i++) {
		struct service *c = service_list_append(&p->candidates);
		unsigned j, k = rnd(3);

		c->name = xstrdup(names[rnd(ARRAY_SIZE(names))]);
		c->port = 80 + rnd(2);
		c->mode = rnd(2) ? CONFIG_MODE_HOST : CONFIG_MODE_PATH;
		c->predicate = xstrdup(rnd(2) ? "x" : "y");
		c->cookie = rnd(2) ? xstrdup("SID") : NULL;
		for (j = 0; j < k; j++)
			service_put_container(c, ids[rnd(ARRAY_SIZE(ids))],
					      ips[rnd(ARRAY_SIZE(ips))]);
		random_options(c);
	}
}

static void assert_same_service(const struct service *a,
				const struct service *b)
{
	assert_true(service_equal(a, b));
	assert_int_equal(a->created_at, b->created_at);
	assert_int_equal(a->updated_at, b->updated_at);
	assert_int_equal(a->version, b->version);
}

static void test_modes_agree(void **state)
{
	unsigned long round;
	unsigned changes = 0;

	(void)state;
	for (round = 1; round <= ROUNDS; round++) {
		struct service_list stored, stored2;
		struct payload p, p2;
		struct merge_result base, check, moved;
		size_t i;

		service_list_init(&stored);
		service_list_init(&stored2);
		fill_stored(&stored, round * 7919);
		fill_stored(&stored2, round * 7919);
		fill_payload(&p, round * 104729, &stored);
		fill_payload(&p2, round * 104729, &stored);
		merge_result_init(&base);
		merge_result_init(&check);
		merge_result_init(&moved);

		merge_apply(&stored, &p, NOW, &base);
		merge_apply_flags(&stored, &p, NOW, MERGE_CHECK, &check);
		merge_apply_flags(&stored2, &p2, NOW, MERGE_MOVE | MERGE_TAKE,
				  &moved);

		assert_int_equal(!!(base.nr_changed || base.removed.nr),
				 !!(check.nr_changed || check.removed.nr));
		changes += base.nr_changed || base.removed.nr;
		/* The check keeps no unchanged service, only the first
		 * change it stopped at. */
		assert_true(check.services.nr <= 1);
		assert_int_equal(check.services.nr, check.nr_changed);

		assert_int_equal(base.services.nr, moved.services.nr);
		for (i = 0; i < base.services.nr; i++)
			assert_same_service(&base.services.items[i],
					    &moved.services.items[i]);
		assert_int_equal(base.nr_changed, moved.nr_changed);
		for (i = 0; i < base.nr_changed; i++)
			assert_int_equal(base.changed[i], moved.changed[i]);
		assert_int_equal(base.removed.nr, moved.removed.nr);
		for (i = 0; i < base.removed.nr; i++)
			assert_same_service(&base.removed.items[i],
					    &moved.removed.items[i]);

		merge_result_release(&base);
		merge_result_release(&check);
		merge_result_release(&moved);
		service_list_release(&stored);
		service_list_release(&stored2);
		payload_release(&p);
		payload_release(&p2);
	}
	/* Both outcomes must be common for the comparison to mean much. */
	assert_true(changes > ROUNDS / 10 && changes < ROUNDS - ROUNDS / 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
