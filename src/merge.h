/*
 * One call's merge, step by step as in spec/registry.md: pure, no I/O.
 */
#ifndef MERGE_H
#define MERGE_H

#include <stdint.h>

#include "payload.h"
#include "service.h"

struct merge_result {
	/* the table after the call, sorted by name */
	struct service_list services;
	/* Indexes into `services` of the services to write (new or changed). */
	size_t *changed;
	size_t nr_changed;
	size_t alloc_changed;
	/* Stored services to delete: copies of them, with their versions. */
	struct service_list removed;
};

void merge_result_init(struct merge_result *res);
void merge_result_release(struct merge_result *res);

/*
 * Apply `p` to `stored` (sorted by name, unmodified) and fill `res`. New and
 * changed services get updated_at = now; new ones also created_at = now.
 * Backend versions are carried over from the stored service.
 */
void merge_apply(const struct service_list *stored, const struct payload *p,
		 int64_t now_ms, struct merge_result *res);

/* Only find out whether anything changes: the merge stops at the first
 * change, and `services` holds no unchanged service; `changed` and
 * `removed` are then empty exactly when nothing changes. */
#define MERGE_CHECK (1u << 0)
/* Move unchanged and removed services out of `stored` instead of copying
 * them; what is left of `stored` is only fit for service_list_release(). */
#define MERGE_MOVE (1u << 1)

/* Take over the candidates' strings and containers from the payload instead
 * of copying them; the payload is then only fit for payload_release(). */
#define MERGE_TAKE (1u << 2)

/* merge_apply() with MERGE_* flags; `p` is modified only with MERGE_TAKE. */
void merge_apply_flags(struct service_list *stored, struct payload *p,
		       int64_t now_ms, unsigned flags,
		       struct merge_result *res);

#endif
