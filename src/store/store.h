/*
 * The store contract. A backend embeds `struct store` first in its own handle
 * and fills a `struct store_backend`; callers only use the store_*() wrappers.
 *
 * A handle is used by one thread at a time; open one per thread. Every call on
 * a table runs as: begin, [version], [load], put/remove..., commit or rollback.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>

#include "../buf.h"
#include "../service.h"
#include "../status.h"

/* version() is exact across processes, so a cache keyed on it is safe. */
#define STORE_CAP_VERSION (1u << 0)
/* begin..commit is all-or-nothing for the table (else: per service). */
#define STORE_CAP_ATOMIC (1u << 1)
/* probe() exists: a small real write that tells whether writes work now. */
#define STORE_CAP_PROBE (1u << 2)
/* Writers of different tables never wait for each other (a lock per table),
 * so the caller need not make them take turns. */
#define STORE_CAP_TABLE_LOCKS (1u << 3)
/* nowait() exists: a handle can be told to fail at once rather than wait. */
#define STORE_CAP_NOWAIT (1u << 4)
/* hints() exists: other processes' commits are announced (LISTEN/NOTIFY). */
#define STORE_CAP_HINTS (1u << 5)

struct store_backend;

/*
 * A document: a small JSON text kept beside the tables, addressed by a kind
 * ("settings", "token", "agent", ...) and a key within that kind. Settings,
 * tokens and agent reports live in every backend this way, so every process
 * on one store sees the same ones.
 */
struct store_doc {
	char *key;
	char *value;	    /* NUL-terminated JSON text */
	uint64_t version;   /* the kind's generation when it was written */
	int64_t updated_at; /* ms since the epoch */
};

struct store_doc_list {
	struct store_doc *items;
	size_t nr, alloc;
};

/* Names of tables, each a malloc'd string. */
struct store_name_list {
	char **items;
	size_t nr, alloc;
};

/* doc_put()'s `expect` for "whatever is there, if anything". */
#define STORE_DOC_ANY UINT64_MAX

struct store {
	const struct store_backend *be;
};

struct store_backend {
	const char *name; /* the prefix of a store spec: "sqlite", "dynamodb" */
	unsigned caps;

	/*
	 * Open the store named by `arg` (the spec after "name:", or "" when
	 * there is none), creating files or schema as needed. ST_USAGE for a
	 * malformed `arg`, ST_UNAVAILABLE when the store cannot be reached.
	 */
	enum status (*open)(const char *arg, struct store **out,
			    struct buf *err);

	/* Release the handle; an open transaction is rolled back. */
	void (*close)(struct store *st);

	/*
	 * Start a call on `table`. With `write` the caller intends to write:
	 * the backend may take an exclusive lock here and wait (bounded) for
	 * other writers. Without it the call sees one consistent snapshot.
	 */
	enum status (*begin)(struct store *st, const char *table, int write,
			     struct buf *err);

	/*
	 * The table's version: it changes on every commit that wrote the
	 * table, in this process or another. Once a call has written, it
	 * already gives the version its commit will publish, so the caller
	 * can cache exactly what it committed. Only with STORE_CAP_VERSION.
	 */
	enum status (*version)(struct store *st, uint64_t *version,
			       struct buf *err);

	/*
	 * Append every stored service of the table to `out`, sorted by name,
	 * each with its backend version. A table never written loads empty.
	 * Every field put() got comes back; the options and container weights
	 * travel as one string, payload_options_json() on put and
	 * payload_parse_options() on load (none stored: the defaults).
	 */
	enum status (*load)(struct store *st, struct service_list *out,
			    struct buf *err);

	/*
	 * Insert or replace `svc`. `svc->version` is the version it was loaded
	 * with (0: new); a backend without STORE_CAP_ATOMIC writes only if the
	 * stored item still has it, else returns ST_CONFLICT, here or, when it
	 * keeps the call's writes for one transaction, from commit(). On
	 * success the backend sets `svc->version` to the new version (which
	 * means nothing if commit() then fails: reload before writing again).
	 */
	enum status (*put)(struct store *st, struct service *svc,
			   struct buf *err);

	/* Delete `svc` (by name), with the same version check as put(). */
	enum status (*remove)(struct store *st, const struct service *svc,
			      struct buf *err);

	/*
	 * End the call; what was put or removed becomes visible and durable,
	 * and the table version changes if anything was written. ST_CONFLICT
	 * means nothing was applied and the whole call should be retried.
	 */
	enum status (*commit)(struct store *st, struct buf *err);

	/* Abandon the call; with STORE_CAP_ATOMIC nothing it wrote remains. */
	void (*rollback)(struct store *st);

	/*
	 * Answer whether the store is reachable and usable, in bounded time
	 * and without waiting for another writer's lock (a held lock is
	 * contention, not a fault).
	 */
	enum status (*ping)(struct store *st, struct buf *err);

	/*
	 * Only with STORE_CAP_PROBE: make one small durable write that changes
	 * no table's data or version, in bounded time. ST_OK when it worked or
	 * when another writer holds the lock (contention is not a fault);
	 * ST_UNAVAILABLE when the write failed (read-only, full disk, I/O).
	 */
	enum status (*probe)(struct store *st, struct buf *err);

	/*
	 * Documents. Each doc_* call is a transaction of its own, never inside
	 * a table call (begin..commit), and bounded in time like the rest.
	 * Every backend implements them.
	 */

	/* The document `kind`/`key` into `out` (store_doc_release() it);
	 * ST_NOT_FOUND when there is none. */
	enum status (*doc_get)(struct store *st, const char *kind,
			       const char *key, struct store_doc *out,
			       struct buf *err);

	/*
	 * Store `value` (JSON text) as `kind`/`key`, durably. With `expect`
	 * other than STORE_DOC_ANY the put happens only if the current
	 * version is `expect` (0: there is none), else ST_CONFLICT and
	 * nothing changes. Bumps the kind's generation; the document's
	 * version becomes that generation, into `*version` when not NULL.
	 */
	enum status (*doc_put)(struct store *st, const char *kind,
			       const char *key, const char *value,
			       uint64_t expect, uint64_t *version,
			       struct buf *err);

	/* Delete `kind`/`key` and bump the kind's generation; ST_NOT_FOUND
	 * when there was none (and nothing changes). */
	enum status (*doc_delete)(struct store *st, const char *kind,
				  const char *key, struct buf *err);

	/* Append the documents of `kind` whose keys sort after `after` ("":
	 * from the first) in byte order, at most `limit` of them. */
	enum status (*doc_list)(struct store *st, const char *kind,
				const char *after, size_t limit,
				struct store_doc_list *out, struct buf *err);

	/*
	 * The kind's generation: a number that grows on every put or delete
	 * of a document of `kind`, by any process on the store, and never goes
	 * back (0 before the first). One cheap read tells a process whether
	 * what it cached of that kind (settings, tokens) is still current.
	 */
	enum status (*doc_generation)(struct store *st, const char *kind,
				      uint64_t *generation, struct buf *err);

	/*
	 * Only with STORE_CAP_NOWAIT: while `on`, no call on the handle waits
	 * for a lock or sleeps in a retry; one that would gets ST_BUSY and
	 * leaves nothing changed (a begin that got ST_BUSY is no call).
	 */
	void (*nowait)(struct store *st, int on);

	/*
	 * Append the names of the tables that were ever written (a version
	 * above 0, even if every service has gone since) sorting after
	 * `after` ("": from the first) in byte order, at most `limit` of
	 * them. A call of its own, never inside begin..commit; every backend
	 * implements it.
	 */
	enum status (*table_list)(struct store *st, const char *after,
				  size_t limit, struct store_name_list *out,
				  struct buf *err);

	/*
	 * Only with STORE_CAP_HINTS, on a handle used for nothing else: wait
	 * up to `timeout_ms` for announcements that a commit (of any process)
	 * wrote a table, appending the tables' names to `out` (a name may
	 * repeat); none at the timeout. A hint says only "re-read the
	 * version". `*all` is set when hints may have been missed (the first
	 * call, which starts listening, and the first after a reconnect, as
	 * announcements are not replayed): any table may have changed.
	 */
	enum status (*hints)(struct store *st, unsigned timeout_ms,
			     struct store_name_list *out, int *all,
			     struct buf *err);
};

/* Open a store from a spec such as "sqlite:./registry.db" or "dynamodb:prod-".
 */
enum status store_open(const char *spec, struct store **out,
		       struct buf *err) WARN_UNUSED;
/*
 * Append `spec` as it may be shown in messages and logs: the value of a
 * "password=" and the password of a URI's "user:password@" replaced by "***".
 */
void store_spec_redact(const char *spec, struct buf *out);
void store_close(struct store *st);
unsigned store_caps(const struct store *st);
const char *store_name(const struct store *st);

enum status store_begin(struct store *st, const char *table, int write,
			struct buf *err) WARN_UNUSED;
enum status store_version(struct store *st, uint64_t *version,
			  struct buf *err) WARN_UNUSED;
enum status store_load(struct store *st, struct service_list *out,
		       struct buf *err) WARN_UNUSED;
enum status store_put(struct store *st, struct service *svc,
		      struct buf *err) WARN_UNUSED;
enum status store_remove(struct store *st, const struct service *svc,
			 struct buf *err) WARN_UNUSED;
enum status store_commit(struct store *st, struct buf *err) WARN_UNUSED;
void store_rollback(struct store *st);
enum status store_ping(struct store *st, struct buf *err) WARN_UNUSED;
/* nowait(); a backend without STORE_CAP_NOWAIT must not be asked. */
void store_nowait(struct store *st, int on);
/* probe(), or ping() for a backend without STORE_CAP_PROBE. */
enum status store_probe(struct store *st, struct buf *err) WARN_UNUSED;

/*
 * The containers of a service as SQL backends keep them in one text column:
 * "id ip\n" lines in the service's (sorted) order. Parsing appends to `svc`
 * and returns -1 for a malformed text (a damaged database).
 */
void store_containers_text(const struct service *svc, struct buf *out);
int store_containers_parse(struct service *svc, const char *text);

void store_doc_release(struct store_doc *doc);
void store_doc_list_init(struct store_doc_list *list);
void store_doc_list_release(struct store_doc_list *list);
/* Append an empty document to `list` and return it. */
struct store_doc *store_doc_list_append(struct store_doc_list *list);

enum status store_doc_get(struct store *st, const char *kind, const char *key,
			  struct store_doc *out, struct buf *err) WARN_UNUSED;
enum status store_doc_put(struct store *st, const char *kind, const char *key,
			  const char *value, uint64_t expect, uint64_t *version,
			  struct buf *err) WARN_UNUSED;
enum status store_doc_delete(struct store *st, const char *kind,
			     const char *key, struct buf *err) WARN_UNUSED;
enum status store_doc_list(struct store *st, const char *kind,
			   const char *after, size_t limit,
			   struct store_doc_list *out,
			   struct buf *err) WARN_UNUSED;
enum status store_doc_generation(struct store *st, const char *kind,
				 uint64_t *generation,
				 struct buf *err) WARN_UNUSED;

void store_name_list_init(struct store_name_list *list);
void store_name_list_release(struct store_name_list *list);
/* Append a copy of `name` (`len` bytes) to `list`. */
void store_name_list_add(struct store_name_list *list, const char *name,
			 size_t len);
enum status store_table_list(struct store *st, const char *after, size_t limit,
			     struct store_name_list *out,
			     struct buf *err) WARN_UNUSED;
enum status store_hints(struct store *st, unsigned timeout_ms,
			struct store_name_list *out, int *all,
			struct buf *err) WARN_UNUSED;

/*
 * Every stored service of `table` with its times, as deterministic JSON, for
 * tests and operators (the `dump` subcommand).
 */
enum status store_dump(struct store *st, const char *table, struct buf *out,
		       struct buf *err) WARN_UNUSED;

extern const struct store_backend store_sqlite;
/* Index checks a sqlite handle answered from SQLite's wal-index header
 * without a read transaction (see sqlite_fresh); 0 for other backends. */
unsigned long store_sqlite_header_hits(const struct store *st);
extern const struct store_backend store_dynamodb;
extern const struct store_backend store_postgres;

#endif
