/*
 * The Docker source: running containers from the Docker Engine API over its
 * unix socket (Docker or `podman system service`), followed through /events.
 */
#ifndef AGENT_DOCKER_H
#define AGENT_DOCKER_H

#include "buf.h"
#include "service.h"
#include "status.h"

struct docker_options {
	const char *socket; /* path of the engine's unix socket */
	/* only containers whose name holds this; NULL: all */
	const char *keyword;
	const char *network; /* network to take the address from; NULL: any */
	unsigned timeout_ms; /* for one API request */
};

struct docker_source;

/*
 * Start following the engine's events in a thread of its own. Fails only
 * for bad options; an engine that is down is retried with backoff.
 */
enum status docker_source_new(const struct docker_options *opts,
			      struct docker_source **out,
			      struct buf *err) WARN_UNUSED;
/* Stop the events thread and free everything. */
void docker_source_free(struct docker_source *ds);

/*
 * 1 when a container event arrived or the events stream reconnected since
 * the last call.
 */
int docker_source_changed(struct docker_source *ds);

/* Forget what was learnt about containers, so the next load inspects all. */
void docker_source_resync(struct docker_source *ds);

/*
 * List the running containers (/containers/json), inspect the ones not seen
 * before, and build the services in `out` (sorted by name). A container with
 * missing or invalid settings is logged once and skipped. ST_UNAVAILABLE
 * when the engine cannot be reached.
 */
enum status docker_source_load(struct docker_source *ds,
			       struct service_list *out,
			       struct buf *err) WARN_UNUSED;

/*
 * Build one container's entry from its inspect document (JSON): service
 * settings from Config.Env, else from Config.Labels; the address from
 * NetworkSettings. Exposed for tests. -1 with the reason in `err`.
 */
int docker_container_parse(const char *inspect_json, size_t len,
			   const char *network, struct service *svc,
			   struct buf *err);

#endif
