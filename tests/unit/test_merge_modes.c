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
/* No options nor weights: payloads the fast parser takes (lazily). */
static int plain;

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

	if (plain)
		return;
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

/* One small difference from the stored service a candidate copies. */
static void perturb(struct service *c)
{
	switch (rnd(4)) {
	case 0:
		c->port ^= 1;
		break;
	case 1:
		free(c->predicate);
		c->predicate = xstrdup("z");
		break;
	case 2:
		if (c->cookie) {
			free(c->cookie);
			c->cookie = NULL;
		} else {
			c->cookie = xstrdup("SID");
		}
		break;
	default:
		/* Another id at the same address. */
		if (c->nr_containers) {
			struct container *k = &c->containers[0];
			char *ip = xstrdup(k->ip);

			free(k->id);
			memmove(k, k + 1, --c->nr_containers * sizeof(*k));
			service_put_container(c, "9", ip);
			free(ip);
		}
		break;
	}
}

/* A container of `c` stopped: neither running nor among its candidate's. */
static void stop_one(struct payload *p, struct service *c)
{
	char *id;
	size_t i, n = 0;

	if (!c->nr_containers)
		return;
	id = c->containers[--c->nr_containers].id; /* the ip with it */
	for (i = 0; i < p->nr_running; i++) {
		struct running *r = &p->running[i];

		if (!strcmp(r->service, c->name) && !strcmp(r->id, id)) {
			free(r->service);
			free(r->id);
			free(r->ip);
			continue;
		}
		p->running[n++] = *r;
	}
	p->nr_running = n;
	free(id);
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
		if (rnd(2)) {
			service_list_copy(&p->candidates, stored);
			if (p->candidates.nr && rnd(2))
				perturb(&p->candidates.items[rnd(
					(unsigned)p->candidates.nr)]);
			else if (p->candidates.nr && rnd(2))
				stop_one(p,
					 &p->candidates.items[rnd(
						 (unsigned)p->candidates.nr)]);
		}
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

static void assert_same_result(const struct merge_result *a,
			       const struct merge_result *b)
{
	size_t i;

	assert_int_equal(a->services.nr, b->services.nr);
	for (i = 0; i < a->services.nr; i++)
		assert_same_service(&a->services.items[i],
				    &b->services.items[i]);
	assert_int_equal(a->nr_changed, b->nr_changed);
	for (i = 0; i < a->nr_changed; i++)
		assert_int_equal(a->changed[i], b->changed[i]);
	assert_int_equal(a->removed.nr, b->removed.nr);
	for (i = 0; i < a->removed.nr; i++)
		assert_same_service(&a->removed.items[i], &b->removed.items[i]);
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

		assert_same_result(&base, &moved);

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

/* `p` as the document an agent would send. */
static void payload_json(const struct payload *p, struct buf *doc)
{
	size_t i;

	(void)buf_addstr(doc, "{\"table\":\"tbl\",\"running\":[");
	for (i = 0; i < p->nr_running; i++)
		(void)buf_addf(doc,
			       "%s{\"serviceName\":\"%s\",\"id\":\"%s\",\"ip\":"
			       "\"%s\"}",
			       i ? "," : "", p->running[i].service,
			       p->running[i].id, p->running[i].ip);
	(void)buf_addstr(doc, "],\"candidates\":");
	payload_services_json(&p->candidates, 0, doc);
	(void)buf_addch(doc, '}');
}

/*
 * Parsed in place, the candidates are parsed again as the merge comes to
 * them: every mode must give what the plain merge gives on the same
 * document parsed whole.
 */
static void test_lazy_candidates(void **state)
{
	unsigned long round;
	unsigned lazy = 0, changes = 0;

	(void)state;
	plain = 1;
	for (round = 1; round <= ROUNDS; round++) {
		struct service_list stored, stored2, stored3;
		struct buf doc = BUF_INIT, err = BUF_INIT, field = BUF_INIT;
		struct payload built, whole, in_place;
		struct merge_result base, check, copied, moved;

		service_list_init(&stored);
		service_list_init(&stored2);
		service_list_init(&stored3);
		fill_stored(&stored, round * 7919);
		fill_stored(&stored2, round * 7919);
		fill_stored(&stored3, round * 7919);
		fill_payload(&built, round * 104729, &stored);
		payload_json(&built, &doc);
		assert_int_equal(payload_parse_table_full(&whole, "tbl",
							  doc.buf, doc.len,
							  &err, &field),
				 ST_OK);
		assert_int_equal(payload_parse_table_in_place(&in_place, "tbl",
							      doc.buf, doc.len,
							      &err, &field),
				 ST_OK);
		lazy += in_place.in_place != NULL;
		merge_result_init(&base);
		merge_result_init(&check);
		merge_result_init(&copied);
		merge_result_init(&moved);

		merge_apply(&stored, &whole, NOW, &base);
		merge_apply_flags(&stored, &in_place, NOW, MERGE_CHECK, &check);
		merge_apply_flags(&stored2, &in_place, NOW, 0, &copied);
		merge_apply_flags(&stored3, &in_place, NOW,
				  MERGE_MOVE | MERGE_TAKE, &moved);

		assert_int_equal(!!(base.nr_changed || base.removed.nr),
				 !!(check.nr_changed || check.removed.nr));
		assert_true(check.services.nr <= 1);
		changes += base.nr_changed || base.removed.nr;
		assert_same_result(&base, &copied);
		assert_same_result(&base, &moved);

		merge_result_release(&base);
		merge_result_release(&check);
		merge_result_release(&copied);
		merge_result_release(&moved);
		service_list_release(&stored);
		service_list_release(&stored2);
		service_list_release(&stored3);
		payload_release(&built);
		payload_release(&whole);
		payload_release(&in_place);
		buf_release(&doc);
		buf_release(&err);
		buf_release(&field);
	}
	plain = 0;
	/* The fast path must have taken nearly all of them. */
	assert_true(lazy > ROUNDS - ROUNDS / 10);
	assert_true(changes > ROUNDS / 10 && changes < ROUNDS - ROUNDS / 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes_agree),
		cmocka_unit_test(test_lazy_candidates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
