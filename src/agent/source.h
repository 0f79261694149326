/*
 * The agent's source contract: where the services of this host come from
 * (Docker events, a services file). The loop in agent.c sees only this.
 */
#ifndef AGENT_SOURCE_H
#define AGENT_SOURCE_H

#include "buf.h"
#include "service.h"
#include "status.h"

/* What a source may need from the command line; each takes what it uses. */
struct source_options {
	/* docker: only containers whose name holds this; NULL: all */
	const char *keyword;
	/* docker: network to take the address from; NULL: any */
	const char *network;
	unsigned timeout_ms; /* for one request to whatever feeds the source */
};

struct source;

struct source_ops {
	const char *name; /* "file", "docker": the prefix of --source */

	/*
	 * Build the current services in `out` (empty on entry; sorted by
	 * name on ST_OK). An entry or container with missing or invalid
	 * settings is logged once (event=skip) and left out; the others
	 * still count. ST_UNAVAILABLE when what feeds the source cannot be
	 * read now (worth retrying); ST_NOT_FOUND when there is nothing yet
	 * and ST_INVALID (or ST_TOO_LARGE) when it makes no sense as a whole:
	 * retrying helps only after changed() said 1. On an error `out` is
	 * left empty and `err` says why. Called from the loop only, never
	 * concurrently.
	 */
	enum status (*load)(struct source *src, struct service_list *out,
			    struct buf *err);

	/*
	 * 1 when something may have changed since the last call (the first
	 * call after creation says 1), else 0. Cheap: the loop calls it every
	 * tick. Clears the flag it reports.
	 */
	int (*changed)(struct source *src);

	/*
	 * Forget what was cached (inspected containers, the last bytes read),
	 * so that the next load starts from scratch. The caller schedules
	 * that load; resync only makes sure it sees everything anew.
	 */
	void (*resync)(struct source *src);

	/* Stop whatever the source runs (threads, connections) and free it;
	 * NULL is accepted. */
	void (*free)(struct source *src);
};

/* Every source embeds this first, so a pointer to either is the other. */
struct source {
	const struct source_ops *ops;
};

/*
 * A source's constructor: `arg` is what follows "NAME:" in --source.
 * Fails only for bad arguments or resources (ST_INVALID, ST_INTERNAL);
 * something that is down at start is the business of load().
 */
typedef enum status source_new_fn(const char *arg,
				  const struct source_options *opts,
				  struct source **out, struct buf *err);

static inline enum status source_load(struct source *src,
				      struct service_list *out, struct buf *err)
{
	return src->ops->load(src, out, err);
}

static inline int source_changed(struct source *src)
{
	return src->ops->changed(src);
}

static inline void source_resync(struct source *src)
{
	src->ops->resync(src);
}

static inline void source_free(struct source *src)
{
	if (src)
		src->ops->free(src);
}

#endif
