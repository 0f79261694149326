/*
 * What the registry answers an agent (a POST to /generate, or a GET of a
 * table's config): the config and, in the map form, the map files it names.
 * Shared by the agent and the follower, which apply it the same way.
 */
#ifndef AGENT_ANSWER_H
#define AGENT_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "agent/haproxy.h"
#include "buf.h"
#include "registry.h"

struct answer {
	struct buf config;
	struct buf paths[HAPROXY_MAX_FILES], data[HAPROXY_MAX_FILES];
	size_t nr_files;
	int has_index; /* the answer carried X-Registry-Index */
	uint64_t index;
	/* X-Registry-Body-Token: it stands for the body posted (empty: none) */
	char token[2 * REGISTRY_TOKEN_LEN + 1];
};

void answer_init(struct answer *ans);
void answer_release(struct answer *ans);

/* libcurl's header callback (its data: the answer): X-Registry-Index and
 * X-Registry-Body-Token. */
size_t answer_header(char *line, size_t size, size_t n, void *ctx);

/*
 * The body of a 200 into `ans`: the JSON answer ("config", and "files" with
 * "mapDir") when `content_type` says JSON, else the plain config. Only the
 * map files the registry renders are taken. -1 with a message naming what
 * is wrong with it.
 */
int answer_parse(const char *content_type, const struct buf *body,
		 struct answer *ans, struct buf *err);

/* The map files as haproxy_apply_set() takes them; returns how many. */
size_t answer_files(const struct answer *ans,
		    struct haproxy_file files[HAPROXY_MAX_FILES]);

#endif
