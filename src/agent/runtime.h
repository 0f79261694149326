/*
 * Hitless changes: the difference between the live config (and its maps)
 * and the next one, when it is only `server` lines and map entries,
 * applied through HAProxy's runtime API (master CLI, `@1`) and checked
 * with `show servers state` and `show map`.
 */
#ifndef AGENT_RUNTIME_H
#define AGENT_RUNTIME_H

#include <stddef.h>

#include "agent/haproxy.h"
#include "buf.h"

/* One `server` line of a backend. */
struct runtime_server {
	char *backend;
	char *name;
	char *addr; /* without the brackets of an IPv6 address */
	unsigned port;
	char *args;  /* what follows ADDR:PORT, "" when nothing */
	size_t line; /* position in the file, for `balance first` */
};

struct runtime_servers {
	struct runtime_server *items; /* sorted by backend, then name */
	size_t nr, alloc;
};

enum runtime_op_kind {
	RUNTIME_OP_ADD,
	RUNTIME_OP_ADDR, /* same server, new address or port */
	RUNTIME_OP_DEL,
};

struct runtime_op {
	enum runtime_op_kind kind;
	/* In plan->next for ADD and ADDR, in plan->live for DEL. */
	const struct runtime_server *srv;
	int dynamic_cookie; /* ADD: the backend needs `enable dynamic-cookie` */
};

/* One line of a map file. */
struct runtime_map_entry {
	char *key, *value;
};

struct runtime_map_entries {
	struct runtime_map_entry *items; /* sorted by key */
	size_t nr, alloc;
};

enum runtime_map_op_kind {
	RUNTIME_MAP_SET, /* a key of both files, another value */
	RUNTIME_MAP_ADD, /* a key of the next file only */
	RUNTIME_MAP_DEL, /* a key of the live file only */
};

struct runtime_map_op {
	enum runtime_map_op_kind kind;
	const char *path; /* the map as the config names it */
	const struct runtime_map_entry *entry;
};

/* The map files of the live config and their next contents. */
struct runtime_map {
	char *path;
	struct runtime_map_entries live, next;
};

struct runtime_plan {
	struct runtime_servers live, next;
	struct runtime_op *ops; /* adds, then re-addresses, then removals */
	size_t nr_ops, alloc_ops;
	struct runtime_map *maps; /* the maps whose entries change */
	size_t nr_maps, alloc_maps;
	/* Every set, then every add, then every delete, so that a key in
	 * both files is never missing, whichever map it moves between. */
	struct runtime_map_op *map_ops;
	size_t nr_map_ops, alloc_map_ops;
	/* Counted whenever both files parse, eligible or not, for the log. */
	unsigned added, removed, readdressed;
	unsigned map_set, map_added, map_removed;
	int eligible;
};

/* What `runtime_apply` did. */
enum runtime_outcome {
	RUNTIME_INELIGIBLE, /* nothing sent: only a reload can apply it */
	RUNTIME_APPLIED,    /* applied, verified, and the file replaced */
	/* commands were sent but something went wrong: HAProxy may hold a
	 * mix of both configs, and the caller must reload */
	RUNTIME_FAILED,
};

struct runtime_options {
	int enabled;	   /* 0: only count the changes, for the log */
	unsigned drain_ms; /* how long a removed server may keep connections */
};

/*
 * The servers of every backend (and listen section) of `cfg`. -1 with the
 * reason in `why` when a server line is not one the agent could send back
 * (no ADDR:PORT, characters outside the safe set).
 */
int runtime_servers_parse(const char *cfg, size_t len,
			  struct runtime_servers *out, struct buf *why);
void runtime_servers_release(struct runtime_servers *s);

/*
 * The plan from `live` to `next`. plan->eligible is 1 when only server
 * lines differ and every change can be made at runtime; else 0 and `why`
 * says what needs the reload.
 */
void runtime_plan_build(const char *live, size_t live_len, const char *next,
			size_t next_len, struct runtime_plan *plan,
			struct buf *why);
void runtime_plan_release(struct runtime_plan *plan);

/*
 * The entries of a map file (lines of "KEY VALUE"); -1 with the reason in
 * `why` when a line is not one the agent could send back (characters the
 * CLI would split or read as an entry reference) or a key is there twice.
 */
int runtime_map_parse(const char *text, size_t len,
		      struct runtime_map_entries *out, struct buf *why);
void runtime_map_entries_release(struct runtime_map_entries *e);

/*
 * Add the changes from the map `path` holding `live` to it holding `next`
 * to the plan (plan->eligible 0 with the reason in `why` when they cannot
 * be made at runtime). Call after runtime_plan_build().
 */
void runtime_plan_map(struct runtime_plan *plan, const char *path,
		      const char *live, size_t live_len, const char *next,
		      size_t next_len, struct buf *why);

/*
 * Compare the text of `show map FILE` ("0xPTR KEY VALUE" lines) with
 * `want`: the same entries, each once. 0 when they agree, else -1 with the
 * first difference in `why`.
 */
int runtime_map_compare(const char *shown,
			const struct runtime_map_entries *want,
			struct buf *why);

/*
 * Compare the text of `show servers state` with `want`: the same servers,
 * addresses and ports, every one in no admin state (not in maintenance or
 * drain). 0 when they agree, else -1 with the first difference in `why`.
 */
int runtime_state_compare(const char *state, const struct runtime_servers *want,
			  struct buf *why);

/*
 * Apply `cfg` and its map `files` at runtime when they only change servers
 * of the live file and entries of the live maps: commands, `show servers
 * state` and `show map`, then the files replaced without a reload (maps
 * first). `plan` is filled for the counts (release it after), also when
 * runtime changes are off (RUNTIME_INELIGIBLE then); `err` says why not or
 * what failed.
 */
enum runtime_outcome runtime_apply(const struct haproxy_options *opts,
				   const struct runtime_options *ropts,
				   const char *cfg, size_t len,
				   const struct haproxy_file *files,
				   size_t nr_files, struct runtime_plan *plan,
				   struct buf *err);

/*
 * Compare what HAProxy runs with the live file. 0 in sync, 1 drifted (what
 * differs in `why`), -1 when it cannot tell (unreachable, a file it cannot
 * read).
 */
int runtime_check_drift(const struct haproxy_options *opts, struct buf *why);

#endif
