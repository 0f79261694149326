/*
 * The Docker source: running containers from the Docker Engine API over its
 * unix socket (Docker or `podman system service`), followed through /events.
 */
#ifndef AGENT_DOCKER_H
#define AGENT_DOCKER_H

#include "agent/source.h"
#include "buf.h"
#include "service.h"
#include "status.h"

/*
 * A source over the engine socket `arg` (--source docker:SOCKET), with the
 * options' keyword, network and timeout. Starts following the engine's
 * events in a thread of its own; an engine that is down is retried with
 * backoff. load() lists the running containers (/containers/json), inspects
 * the ones not seen before, and builds one service per SERVICE_NAME (the
 * newest container's settings win); what it learnt about containers that are
 * no longer listed is dropped. ST_UNAVAILABLE when the engine cannot be
 * reached. changed() is 1 after a container event or a reconnect of the
 * events stream; resync() makes the next load inspect every container again.
 */
source_new_fn docker_source_new;

/* Containers the source remembers having inspected; exposed for tests. */
size_t docker_source_nr_seen(const struct source *src);

/*
 * Build one container's entry from its inspect document (JSON): service
 * settings from Config.Env, else from Config.Labels; the address from
 * NetworkSettings. Exposed for tests. -1 with the reason in `err`.
 */
int docker_container_parse(const char *inspect_json, size_t len,
			   const char *network, struct service *svc,
			   struct buf *err);

#endif
