/*
 * The merge of one call (spec "One call, step by step"): stored services and
 * a payload in, the table after the call and what changed out. Pure.
 */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"
#include "banned.h"

void merge_result_init(struct merge_result *res)
{
	memset(res, 0, sizeof(*res));
	service_list_init(&res->services);
	service_list_init(&res->removed);
}

void merge_result_release(struct merge_result *res)
{
	service_list_release(&res->services);
	service_list_release(&res->removed);
	free(res->changed);
	merge_result_init(res);
}

/* Sort key for payload entries: by name, then payload order (stable). */
struct merge_ref {
	const char *name;
	const char *id;
	size_t idx;
};

static int merge_ref_cmp(const void *a, const void *b)
{
	const struct merge_ref *x = a, *y = b;
	int cmp = strcmp(x->name, y->name);

	if (cmp)
		return cmp;
	if (x->id && y->id && (cmp = strcmp(x->id, y->id)))
		return cmp;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The run of refs named `name` starting at *pos, advancing *pos past it. */
static size_t merge_take_run(const struct merge_ref *refs, size_t nr,
			     size_t *pos, const char *name)
{
	size_t start = *pos;

	while (*pos < nr && !strcmp(refs[*pos].name, name))
		(*pos)++;
	return *pos - start;
}

static void merge_set_settings(struct service *dst, const struct service *src)
{
	dst->port = src->port;
	dst->mode = src->mode;
	dst->predicate = xstrdup(src->predicate);
	dst->cookie = src->cookie ? xstrdup(src->cookie) : NULL;
	/* All of them together: a candidate without an option gets its
	 * default back. */
	service_options_copy(&dst->opts, &src->opts);
}

/* Sort refs unless they already are (agents often send `running` in order). */
static void merge_sort_refs(struct merge_ref *refs, size_t nr)
{
	size_t i;

	for (i = 1; i < nr; i++)
		if (merge_ref_cmp(&refs[i - 1], &refs[i]) > 0)
			break;
	if (i < nr)
		qsort(refs, nr, sizeof(*refs), merge_ref_cmp);
}

/*
 * The running entries in (service, id, payload) order: `refs` when they had
 * to be sorted, else the payload's own array, which already is in order
 * (agents usually send it so), without a copy.
 */
struct merge_runs {
	const struct running *running;
	struct merge_ref *refs;
};

static const struct running *merge_run(const struct merge_runs *runs, size_t k)
{
	return &runs->running[runs->refs ? runs->refs[k].idx : k];
}

static void merge_runs_init(struct merge_runs *runs, const struct payload *p)
{
	size_t i;

	runs->running = p->running;
	runs->refs = NULL;
	for (i = 1; i < p->nr_running; i++) {
		const struct running *a = &p->running[i - 1],
				     *b = &p->running[i];
		int cmp = strcmp(a->service, b->service);

		if (cmp > 0 || (!cmp && strcmp(a->id, b->id) > 0))
			break;
	}
	if (i >= p->nr_running)
		return;
	runs->refs = xcalloc(p->nr_running, sizeof(*runs->refs));
	for (i = 0; i < p->nr_running; i++)
		runs->refs[i] = (struct merge_ref){p->running[i].service,
						   p->running[i].id, i};
	qsort(runs->refs, p->nr_running, sizeof(*runs->refs), merge_ref_cmp);
}

/*
 * Whether the runs [r0, r0 + nr) (`old`'s running entries, sorted by id and
 * then payload order) change nothing of it: each is one of its containers
 * at the same address, where the last of duplicates wins. *matched counts
 * the containers they name; old ones without a run stay only when a
 * candidate names them.
 */
static int merge_runs_within(const struct service *old,
			     const struct merge_runs *runs, size_t r0,
			     size_t nr, size_t *matched)
{
	size_t k, n = 0;

	*matched = 0;
	for (k = 0; k < nr; k++) {
		const struct running *r = merge_run(runs, r0 + k);

		if (k + 1 < nr &&
		    !strcmp(merge_run(runs, r0 + k + 1)->id, r->id))
			continue; /* a later duplicate decides */
		/* Both sorted by id: skip the old ones that do not run. */
		while (n < old->nr_containers &&
		       strcmp(old->containers[n].id, r->id) < 0)
			n++;
		if (n >= old->nr_containers ||
		    strcmp(old->containers[n].id, r->id) ||
		    strcmp(old->containers[n].ip, r->ip))
			return 0;
		n++;
		(*matched)++;
	}
	return 1;
}

/*
 * Whether `old` stays as it is with `nr_c` candidates (the first is `ci`)
 * and the runs [r0, r0 + nr). Without a candidate, the runs must be all of
 * it. With one, they must be within it and the candidate must be `old` as
 * it stands: the agent's call on a service that did not change, which only
 * a payload parsed in place tells without building the candidate. With a
 * candidate and no run, the service would be created anew (a new
 * created_at).
 */
static int merge_keeps(struct payload *p, size_t nr_c, size_t ci,
		       const struct service *old, const struct merge_runs *runs,
		       size_t r0, size_t nr)
{
	size_t matched;

	if (nr_c > 1 || !merge_runs_within(old, runs, r0, nr, &matched))
		return 0;
	if (!nr_c)
		return matched == old->nr_containers;
	return nr && payload_candidate_is(p, ci, old);
}

void merge_apply(const struct service_list *stored, const struct payload *p,
		 int64_t now_ms, struct merge_result *res)
{
	/* Without flags nothing in `stored` is touched. */
	merge_apply_flags((struct service_list *)stored, (struct payload *)p,
			  now_ms, 0, res);
}

/* The one candidate for a service becomes it, without copies (MERGE_TAKE). */
static void merge_take_candidate(struct service *svc, struct service *c)
{
	svc->name = c->name;
	svc->port = c->port;
	svc->mode = c->mode;
	svc->predicate = c->predicate;
	svc->cookie = c->cookie;
	svc->opts = c->opts;
	svc->containers = c->containers;
	svc->nr_containers = c->nr_containers;
	svc->alloc_containers = c->alloc_containers;
	c->name = c->predicate = c->cookie = NULL;
	memset(&c->opts, 0, sizeof(c->opts));
	c->containers = NULL;
	c->nr_containers = c->alloc_containers = 0;
}

void merge_apply_flags(struct service_list *stored, struct payload *p,
		       int64_t now_ms, unsigned flags, struct merge_result *res)
{
	const size_t nr_cands = payload_nr_candidates(p);
	struct merge_ref *cref = xcalloc(nr_cands, sizeof(*cref));
	struct service scratch;
	struct merge_runs runs;
	size_t i, si = 0, ci = 0, ri = 0;

	memset(&scratch, 0, sizeof(scratch));
	for (i = 0; i < nr_cands; i++)
		cref[i] = (struct merge_ref){payload_candidate_name(p, i), NULL,
					     i};
	merge_sort_refs(cref, nr_cands);
	merge_runs_init(&runs, p);
	/* The table after an agent's call is the one before, give or take:
	 * doubling from 8 would leave up to half of the array unused. */
	if (!(flags & MERGE_CHECK)) {
		res->services.alloc =
			(stored->nr > nr_cands ? stored->nr : nr_cands) + 1;
		res->services.items = xmalloc(res->services.alloc *
					      sizeof(*res->services.items));
	}

	/* Walk stored and candidate names together, in byte order. */
	while (si < stored->nr || ci < nr_cands) {
		struct service *old = NULL;
		const char *name;
		size_t c0 = ci, nr_c, r0, nr_r, k;
		struct service *svc, *cand;

		if (ci >= nr_cands ||
		    (si < stored->nr &&
		     strcmp(stored->items[si].name, cref[ci].name) <= 0))
			name = stored->items[si].name;
		else
			name = cref[ci].name;
		if (si < stored->nr && !strcmp(stored->items[si].name, name))
			old = &stored->items[si++];
		nr_c = merge_take_run(cref, nr_cands, &ci, name);

		/* Running entries of services that sort before this one belong
		 * to no known service: they have no routing settings. */
		while (ri < p->nr_running &&
		       strcmp(merge_run(&runs, ri)->service, name) < 0)
			ri++;
		r0 = ri;
		while (ri < p->nr_running &&
		       !strcmp(merge_run(&runs, ri)->service, name))
			ri++;
		nr_r = ri - r0;

		/* Step 2: a stored service without running containers is
		 * forgotten. */
		if (!nr_c && !nr_r) {
			if (flags & MERGE_CHECK) {
				service_copy(service_list_append(&res->removed),
					     old);
				break;
			}
			svc = service_list_append(&res->removed);
			if (flags & MERGE_MOVE) {
				*svc = *old;
				memset(old, 0, sizeof(*old));
			} else {
				service_copy(svc, old);
			}
			continue;
		}
		/* The common case, a service that stays as it is: no need to
		 * build it anew, nor (MERGE_CHECK) to keep it at all. */
		if (old && merge_keeps(p, nr_c, nr_c ? cref[c0].idx : 0, old,
				       &runs, r0, nr_r)) {
			if (flags & MERGE_CHECK)
				continue;
			svc = service_list_append(&res->services);
			if (flags & MERGE_MOVE) {
				*svc = *old;
				memset(old, 0, sizeof(*old));
			} else {
				service_copy(svc, old);
			}
			continue;
		}

		svc = service_list_append(&res->services);
		cand = nr_c == 1 ? payload_candidate(p, cref[c0].idx, &scratch)
				 : NULL;
		/* The payload's own only with MERGE_TAKE; one parsed again
		 * into the scratch is ours. Its containers are sorted and
		 * unique, as the loop below would make them. */
		if (cand && (cand == &scratch || (flags & MERGE_TAKE))) {
			merge_take_candidate(svc, cand);
			nr_c = 0;
		} else {
			svc->name = xstrdup(name);
			/* Step 4: the latest candidate's settings win. */
			merge_set_settings(
				svc, nr_c ? payload_candidate(
						    p, cref[c0 + nr_c - 1].idx,
						    &scratch)
					  : old);
		}
		/* Steps 3, 5, 6: the containers are the candidates' new ones
		 * and those running under this service; running addresses win,
		 * and a later duplicate wins over an earlier one. */
		for (k = c0; k < c0 + nr_c; k++) {
			size_t j;

			cand = payload_candidate(p, cref[k].idx, &scratch);
			/* A candidate's container brings its weight, or none
			 * (back to the default), as settings do. */
			for (j = 0; j < cand->nr_containers; j++)
				service_put_container(svc,
						      cand->containers[j].id,
						      cand->containers[j].ip)
					->weight = cand->containers[j].weight;
		}
		for (k = r0; k < r0 + nr_r; k++) {
			const struct running *r = merge_run(&runs, k);
			const struct container *was = NULL;
			struct container *c;

			/* Only running: it keeps the weight stored for it. */
			if (old && !service_find_container(svc, r->id))
				was = service_find_container(old, r->id);
			c = service_put_container(svc, r->id, r->ip);
			if (was)
				c->weight = was->weight;
		}

		if (old) {
			svc->version = old->version;
			/* Forgotten in step 2 and created anew in step 4? */
			svc->created_at = nr_r ? old->created_at : now_ms;
			svc->updated_at = old->updated_at;
		} else {
			svc->created_at = now_ms;
		}
		/* Step 7: remember what changed. */
		if (!old || !service_equal(old, svc)) {
			svc->updated_at = now_ms;
			ALLOC_GROW(res->changed, res->nr_changed + 1,
				   res->alloc_changed);
			res->changed[res->nr_changed++] = res->services.nr - 1;
		} else if (flags & MERGE_CHECK) {
			/* Not kept: the check of an unchanged table of 10,000
			 * services would hold a copy of it. */
			service_release(svc);
			res->services.nr--;
		}
		/* Built anew, the stored one is of no more use: freed as the
		 * walk goes, the two tables are not both whole at its end. */
		if (old && (flags & MERGE_MOVE))
			service_release(old);
		if ((flags & MERGE_CHECK) &&
		    (res->nr_changed || res->removed.nr))
			break; /* the answer is known */
	}
	service_release(&scratch);
	free(cref);
	free(runs.refs);
}
