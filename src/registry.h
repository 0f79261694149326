/*
 * One registry call: parse the payload, then in one store transaction load
 * the table, merge, render, write what changed and commit. Keeps a bounded
 * per-table cache of services and config, checked against the store's table
 * version. Thread-safe: calls may come from many threads at once.
 */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "changes.h"
#include "render.h"
#include "service.h"
#include "status.h"

struct registry;
struct report;
struct store_doc_list;

struct registry_options {
	const char *store_spec;
	struct render_options render;
};

struct registry_share;

/* A body token's bytes; it travels as twice as many hex digits. */
#define REGISTRY_TOKEN_LEN 16

struct registry_result {
	char *table;
	struct buf config; /* empty with REGISTRY_SHARE_CONFIG */
	/* With REGISTRY_SHARE_CONFIG: the config, shared with the cache instead
	 * of copied (see registry_share_data); registry_result_release() drops
	 * it, or take it over and call registry_share_release() when done. */
	struct registry_share *share;
	/* filled only with REGISTRY_WANT_SERVICES */
	struct service_list services;
	int changed; /* the call wrote to the store */
	/* The caller has the config at `index` (registry_cond.have): nothing
	 * else is filled in. */
	int not_modified;
	/* The table's index after the call (see registry_table_index). */
	uint64_t index;
	/* Filled by registry_table_read(): counts of the services and their
	 * servers, and the latest updated time of a service (0: none). */
	size_t nr_services, nr_servers;
	int64_t updated_at;
	/* With REGISTRY_WANT_FILES: the form of `config` (render_form with
	 * files), and in the map form the map files and their folder. */
	enum render_form form;
	struct buf hosts_map, paths_map;
	char *map_dir;
	/* The body token (registry_try_token) when the call's body is the one
	 * the table remembers as leaving it unchanged; else empty. */
	char token[2 * REGISTRY_TOKEN_LEN + 1];
};

#define REGISTRY_WANT_SERVICES (1u << 0)
#define REGISTRY_SHARE_CONFIG  (1u << 1)
/*
 * Never wait: a call that would (for a lock, a store connection, a write, a
 * cache to fill or settings to reload) gets ST_BUSY with nothing changed,
 * and should be made again where waiting is allowed. What it answers
 * otherwise (from the cache, or a payload error) is what a call without
 * the flag answers.
 */
#define REGISTRY_NO_WAIT (1u << 2)
/* An answer that carries the map files (the agent's): with the services,
 * not with REGISTRY_SHARE_CONFIG. */
#define REGISTRY_WANT_FILES (1u << 3)
/* The caller's body may be written during the call (its strings ended in
 * place, payload_parse_table_in_place()); it reads as before once the call
 * returns. */
#define REGISTRY_BODY_WRITABLE (1u << 4)

/* The bytes of a shared config; valid until the last reference goes. */
const char *registry_share_data(const struct registry_share *share,
				size_t *len);
/* Drop one reference (NULL is fine); thread-safe. */
void registry_share_release(struct registry_share *share);

enum status registry_new(const struct registry_options *opts,
			 struct registry **out, struct buf *err) WARN_UNUSED;
void registry_free(struct registry *reg);
/* A call whose config would be larger than `max` bytes gets ST_TOO_LARGE and
 * stores nothing; the default is BUF_CAP_DEFAULT. Set it before any call. */
void registry_set_max_config(struct registry *reg, size_t max);

void registry_result_init(struct registry_result *res);
void registry_result_release(struct registry_result *res);

/*
 * Apply one payload. On ST_INVALID, `field` names the offending field; on
 * ST_TOO_LARGE the config would be over its cap; on any error nothing was
 * stored.
 */
enum status registry_call(struct registry *reg, const char *json, size_t len,
			  unsigned flags, struct registry_result *res,
			  struct buf *err, struct buf *field) WARN_UNUSED;
/* The same for a call addressed to `table` (see payload_parse_table()). */
enum status registry_call_table(struct registry *reg, const char *table,
				const char *json, size_t len, unsigned flags,
				struct registry_result *res, struct buf *err,
				struct buf *field) WARN_UNUSED;

/* An index for "whatever the index is", or "none". */
#define REGISTRY_INDEX_ANY UINT64_MAX

/* A body's digest (registry_digest_final). */
#define REGISTRY_DIGEST_LEN 12

/* What registry_call_table_if() is told beyond the body. */
struct registry_cond {
	/* Store only while the table's index is `expect`: ST_PRECONDITION
	 * (nothing stored) when it moved on. Exact on an atomic store, where
	 * the check runs inside the write transaction. */
	uint64_t expect;
	/* The index of the config the caller has (If-None-Match): a body
	 * byte for byte the last one that left the table unchanged, with
	 * the table still at `have`, sets res->not_modified and fills in
	 * nothing else. */
	uint64_t have;
	/* registry_digest_final() of the body, computed as it arrived; NULL:
	 * the call computes it when it needs it. */
	const unsigned char *digest;
};

#define REGISTRY_COND_NONE                                                     \
	{                                                                      \
		REGISTRY_INDEX_ANY, REGISTRY_INDEX_ANY, NULL                   \
	}

/*
 * An unchanged call told by a token instead of its body: the
 * registry_result.token of an earlier answer to a call with that body,
 * `table` as that call's path named it (or NULL), and the index the caller
 * has (If-None-Match). ST_OK with res->not_modified, res->table, res->index
 * and res->token while the token still stands for the last body that left
 * the table unchanged and the table is at `have`; ST_NOT_FOUND when the
 * call needs its body; ST_BUSY (never waits) or a store error otherwise,
 * when the body is needed as well. Fills in nothing but with ST_OK.
 */
enum status registry_try_token(struct registry *reg, const char *table,
			       const char *token, uint64_t have,
			       struct registry_result *res,
			       struct buf *err) WARN_UNUSED;

/* The digest of a body, in pieces: init, add each piece, then final. */
struct registry_digest;
struct registry_digest *registry_digest_new(void);
void registry_digest_add(struct registry_digest *d, const void *data,
			 size_t len);
/* Write the digest to `out` and free `d`. */
void registry_digest_final(struct registry_digest *d, unsigned char *out);
/* Free `d` without a digest (NULL: nothing). */
void registry_digest_free(struct registry_digest *d);

/* registry_call_table() under the conditions `cond` (NULL: none). */
enum status registry_call_table_if(struct registry *reg, const char *table,
				   const char *json, size_t len, unsigned flags,
				   const struct registry_cond *cond,
				   struct registry_result *res, struct buf *err,
				   struct buf *field) WARN_UNUSED;

/*
 * A table's index: one number kept in the store, the same for every process
 * on it, that grows on every stored change of the table or of the settings
 * (documents of kind "settings"), and stays put otherwise. It is the table's
 * version plus the settings generation: both only grow, and every change
 * moves one of them. A store that was reset gives a lower one. Cheap: no
 * load, no render. `*exists` tells whether the table was ever written.
 */
enum status registry_table_index(struct registry *reg, const char *table,
				 uint64_t *index, int *exists,
				 struct buf *err) WARN_UNUSED;

/*
 * A table as stored now, without a payload: its config (as a copy, or with
 * REGISTRY_SHARE_CONFIG a share), its services with REGISTRY_WANT_SERVICES,
 * the counts, times and index. ST_NOT_FOUND for a table never written.
 */
enum status registry_table_read(struct registry *reg, const char *table,
				unsigned flags, struct registry_result *res,
				struct buf *err) WARN_UNUSED;

/* The names of tables ever written, after `after`, at most `limit` (see
 * store_table_list). */
enum status registry_table_names(struct registry *reg, const char *after,
				 size_t limit, char ***names, size_t *nr,
				 struct buf *err) WARN_UNUSED;

/*
 * Called after this process stored a change of `table`, or with NULL after
 * a settings change (any table's index may have moved); from the thread
 * that made it, with no lock held. NULL `fn`: none.
 */
typedef void registry_changed_fn(void *ctx, const char *table);
/*
 * The changes per hour (changes.h) of what this process stores: counted in
 * the store after every change, or with `ms` > 0 added up per table in
 * memory and counted by registry_flush_changes() (a crash loses what was
 * not counted; registry_free() counts it). Each count is a store
 * transaction of its own, which a busy writer should not pay per change.
 */
void registry_batch_changes(struct registry *reg, uint64_t ms);
/* Count what waits, when the oldest waited `age_ms` (0: whatever waits). */
void registry_flush_changes(struct registry *reg, uint64_t age_ms);
/* On a store with STORE_CAP_HINTS (PostgreSQL), setting `fn` also starts a
 * thread that passes other processes' commits on to it as they are
 * announced; setting NULL stops it. Call it from one thread. */
void registry_set_changed(struct registry *reg, registry_changed_fn *fn,
			  void *ctx);
/* Announcements received from the store so far (a batch that may have
 * missed some counts as one). */
unsigned long registry_hints_received(struct registry *reg);

/*
 * {"table":...,"services":[...],"config":"...","files":{...}} for a result
 * with services. "files" is {} in the ACL form, {"hosts.map":"...",
 * "paths.map":"..."} in the map form, with "mapDir" (the folder the config
 * names them in). The map form's config depends on the backends only, so
 * an answer whose config is unchanged changed map entries alone.
 */
void registry_result_json(const struct registry_result *res, struct buf *out);

/*
 * Whether the store answers and, after a failed write, takes writes again.
 * Never waits long for another process's write lock (a read, and a probe
 * that counts a held lock as working).
 */
enum status registry_ping(struct registry *reg, struct buf *err) WARN_UNUSED;

/* The per-table map, for tests and metrics. */
struct registry_stats {
	size_t tables;	/* entries: cached tables and calls in flight */
	size_t cached;	/* tables whose services and config are cached */
	size_t buckets; /* size of the hash table */
	/* calls answered from the digest of their body (registry.c) */
	unsigned long body_hits;
	/* unchanged calls answered from a body token, without their body */
	unsigned long token_hits;
};

void registry_get_stats(struct registry *reg, struct registry_stats *out);

/*
 * Fleet settings (settings.h), stored as documents: `table` NULL means the
 * fleet's defaults, else that table's overrides. put() checks `text` (YAML
 * or JSON) and, for a table, the settings it would give with the stored
 * defaults; on ST_INVALID `err` names the key path and nothing is stored.
 * get() appends the stored document as canonical JSON ("{}" when none), or
 * with `effective` the defaults deep-merged with the table's overrides.
 * delete() gives ST_NOT_FOUND when nothing was stored. Every table's next
 * call renders with what changed.
 */
enum status registry_settings_put(struct registry *reg, const char *table,
				  const char *text, size_t len,
				  struct buf *err) WARN_UNUSED;
enum status registry_settings_get(struct registry *reg, const char *table,
				  int effective, struct buf *out,
				  struct buf *err) WARN_UNUSED;
enum status registry_settings_delete(struct registry *reg, const char *table,
				     struct buf *err) WARN_UNUSED;

/*
 * Keep `r` as the last report of agent `agent` (payload_check_name's rule)
 * on `table`, stamped with the time now, as a store document and then in
 * memory; a new agent past report.h's caps displaces the oldest report.
 */
enum status registry_report_put(struct registry *reg, const char *table,
				const char *agent, struct report *r,
				struct buf *err) WARN_UNUSED;
/* Every kept report, keys "TABLE/AGENT-ID" in byte order, into `out`:
 * from memory, checked against the store (report_cache_list). */
enum status registry_reports(struct registry *reg, struct store_doc_list *out,
			     struct buf *err) WARN_UNUSED;
/* Stored changes per hour over the last day, the current hour last: of
 * `table`, or of every table when NULL (see changes_per_hour). */
enum status registry_changes_per_hour(struct registry *reg, const char *table,
				      uint64_t out[CHANGES_HOURS],
				      struct buf *err) WARN_UNUSED;
/*
 * What the status page shows of `table`: its stored services, its version
 * (0 without STORE_CAP_VERSION) and the config they render to with the
 * table's effective settings, read without writing anything.
 */
enum status registry_view(struct registry *reg, const char *table,
			  struct service_list *services, uint64_t *version,
			  struct buf *config, struct buf *err) WARN_UNUSED;

/* Deterministic JSON of a table's stored state (see store_dump). */
enum status registry_dump(struct registry *reg, const char *table,
			  struct buf *out, struct buf *err) WARN_UNUSED;

#endif
