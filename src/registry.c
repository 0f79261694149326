/*
 * One registry call end to end, and the per-table cache that lets an
 * unchanged call skip loading and rendering: the cache is trusted only while
 * the store's table version is the one it was filled at.
 *
 * A call on an atomic store (SQLite) takes the read path, and the write path
 * only when the read found something to change; a store without
 * transactions (DynamoDB) has its own path, retried after a conflict. Every
 * path renders before it writes, so a config over the cap stores nothing.
 * The table's effective settings are part of what a config depends on: each
 * call reads the store's settings generation first (one cheap read on
 * SQLite; on DynamoDB, a request, so read at most once a second), and a
 * table whose settings were loaded at another generation reloads them and
 * drops its cache, so the cache key is in effect table version + settings
 * generation. On top of it, a table remembers the digest of the last body
 * that left it unchanged: the same bytes again, at the same key, are
 * answered from the cache before anything is parsed (registry_try_digest).
 * Locks, outermost first: the table's (one call per table in this process,
 * or shared by calls that only read),
 * write_lock (this process's writers), the store's, and reg->lock (the map,
 * the LRU and the pool; held only briefly, never while waiting).
 */
#include "registry.h"

#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "changes.h"
#include "clock.h"
#include "merge.h"
#include "metrics.h"
#include "payload.h"
#include "report.h"
#include "settings.h"
#include "store/store.h"
#include "xalloc.h"
#include "banned.h"

/* Tables whose services and config stay cached, least recently used out
 * first. A cached table costs its services and config (for 10,000
 * services a 4.5 MB config and about as much again for the services); a
 * table with nothing cached, or nothing stored, leaves no entry once its
 * calls are done. */
#define REGISTRY_MAX_CACHED 4096
/* Tables whose changes wait to be counted, at most, before they are. */
#define REGISTRY_MAX_PENDING  256
#define REGISTRY_MIN_BUCKETS  64
#define REGISTRY_MAX_ATTEMPTS 8
/* Backoff between attempts of the non-atomic path after a conflict. */
#define REGISTRY_BACKOFF_BASE_MS 2
#define REGISTRY_BACKOFF_CAP_MS	 64
/* How long a store without exact versions (DynamoDB, where the read is a
 * request of its own) trusts the settings generation it last read. */
#define REGISTRY_SETTINGS_CHECK_MS 1000

/* A rendered config, shared read-only by the cache and the answers in flight.
 */
struct registry_share {
	atomic_uint refs;
	size_t len;
	char *data;
};

/*
 * One table's entry in the map. It lives while a call holds a reference
 * (`refs`) or while the table is cached; the last call out frees an entry
 * with nothing cached. `refs`, `cached`, the hash chain and the LRU links
 * are guarded by reg->lock; `cached` is only changed while holding both
 * locks, so the holder of `lock` may read it without reg->lock.
 */
struct registry_table {
	struct registry_table *next;	      /* hash chain */
	struct registry_table *newer, *older; /* LRU, among cached tables */
	char *name;
	unsigned refs;
	/* One call at a time on a table, in this process; or, shared, any
	 * number of REGISTRY_NO_WAIT calls, which only read the entry (they
	 * answer ST_BUSY before anything would change it). Writers first: a
	 * waiting writer turns new shared takers away, to a worker. */
	pthread_rwlock_t lock;
	/* under `lock` (or reg->lock with refs == 0): */
	int cached;
	uint64_t version;
	struct service_list services;
	struct registry_share *config;
	/* The digest of the last body that left the cached table unchanged;
	 * set only while cached, and changed, like `cached`, under both
	 * locks (registry_table_by_digest looks under reg->lock only). */
	int have_digest;
	unsigned char digest[REGISTRY_DIGEST_LEN];
	int digest_path; /* that call named the table in its path */
	/* Drawn at random for each digest remembered and given to the caller
	 * that sent the body: it stands for the body (registry_try_token)
	 * without telling anything of the digest. */
	char token[2 * REGISTRY_TOKEN_LEN + 1]; /* in hex, as it is sent */
	/* The effective settings, loaded at settings generation
	 * `settings_gen`; kept while the entry lives, cached or not. */
	int have_settings;
	uint64_t settings_gen;
	struct settings settings;
};

/* A table's changes stored by this process and not counted yet. */
struct registry_pending {
	char *table;
	uint64_t n;
};

struct registry {
	char *store_spec;
	char *frontend_bind;
	struct render_options render;
	size_t max_config;
	unsigned caps;
	pthread_mutex_t lock; /* guards the pool and the table map */
	/* Writers of this process take turns here before the store's own
	 * lock: SQLite's busy handler waits by sleeping (up to 100 ms a
	 * time), a mutex hands over at once. */
	pthread_mutex_t write_lock;
	struct store **pool;
	size_t nr_pool, alloc_pool;
	struct registry_table **buckets;
	size_t nr_buckets; /* a power of two */
	size_t nr_tables, nr_cached;
	struct registry_table *newest, *oldest; /* the LRU of cached tables */
	/* The settings generation last read, and when (clock_now_ms), for a
	 * store without STORE_CAP_VERSION (guarded by lock). */
	uint64_t settings_gen, settings_read_ms;
	int have_settings_gen;
	/* A write failed and none has worked since: why (guarded by lock). */
	atomic_int write_failed;
	char *write_error;
	atomic_ulong body_hits, token_hits;
	/* Changes not counted in the store yet (registry_flush_changes), the
	 * oldest since `pending_ms`; counted at once while `batch_ms` is 0. */
	pthread_mutex_t changes_lock;
	struct registry_pending *pending;
	size_t nr_pending, alloc_pending;
	uint64_t pending_ms, batch_ms;
	/* A REGISTRY_NO_WAIT call found the pool empty: the next call that
	 * may wait opens one more handle for it. */
	atomic_int pool_short;
	/* Told of this process's changes (registry_set_changed), and of
	 * other processes' on a store with STORE_CAP_HINTS, from a thread
	 * listening on a handle of its own while `changed` is set. */
	registry_changed_fn *changed;
	void *changed_ctx;
	pthread_t hints_thread;
	int hints_running;
	atomic_int hints_stop;
	atomic_ulong hints;
	/* The last agent reports, bounded, over the store's. */
	struct report_cache *reports;
};

/* One call on one table, across its attempts. */
struct registry_ctx {
	struct registry *reg;
	struct registry_table *t;
	struct store *st;
	struct payload *p;
	unsigned flags;
	struct registry_result *res;
	uint64_t version; /* the store's table version in this attempt */
	int hit;	  /* t's cache is at `version` */
	/* What an attempt loaded, and at which version: a write after a read
	 * that saw the same version need not load it again. */
	struct service_list loaded;
	int have_loaded;
	uint64_t loaded_version;
	/* The render, capped at reg->max_config. */
	struct buf config;
	int nowait; /* REGISTRY_NO_WAIT */
	int have_digest;
	unsigned char digest[REGISTRY_DIGEST_LEN];
	/* A call by body token (registry_try_token): no body, no digest. */
	const char *token;
	const char *path_table; /* the table the path names, or NULL */
	/* The index the table must be at (If-Match), or REGISTRY_INDEX_ANY. */
	uint64_t expect;
	/* The index of the config the caller has, or REGISTRY_INDEX_ANY. */
	uint64_t have;
};

struct registry_digest {
	gnutls_hmac_hd_t h;
};

/*
 * The body digest is UMAC-96 under a key drawn at random when the process
 * starts: a universal hash, so a collision needs the key (one in 2^90 per
 * try), and the key and the digests never leave the process. UMAC-128 ran
 * at 8.8 GB/s against SHA-256's 1.3 (one core); UMAC-96 makes three of its
 * four passes (62 MB: 7.9 ms against 10.5). The nonce is fixed: it only
 * masks the hash, and equal bodies must give equal digests. A digest starts
 * from the thread's spare state or a copy of one keyed state: deriving
 * UMAC's keys costs 7 us.
 */
static gnutls_hmac_hd_t registry_digest_proto;
static pthread_once_t registry_digest_once = PTHREAD_ONCE_INIT;
static const unsigned char registry_digest_nonce[8];

/*
 * A finished digest's state, kept for the thread's next one (set to the
 * fixed nonce again; UMAC's output moves it on). A copy is 4.5 KB, past
 * glibc's per-thread cache, so every small call took and freed it under
 * the allocator's one lock (xalloc.c), which the polling threads then
 * waited on for one another.
 */
static pthread_key_t registry_digest_spare;

static void registry_digest_spare_free(void *h)
{
	gnutls_hmac_deinit(h, NULL);
}

static void registry_digest_init(void)
{
	unsigned char key[16];

	if (gnutls_rnd(GNUTLS_RND_KEY, key, sizeof(key)) < 0 ||
	    gnutls_hmac_init(&registry_digest_proto, GNUTLS_MAC_UMAC_96, key,
			     sizeof(key)) < 0 ||
	    pthread_key_create(&registry_digest_spare,
			       registry_digest_spare_free))
		BUG("the body digest's key failed");
	gnutls_hmac_set_nonce(registry_digest_proto, registry_digest_nonce,
			      sizeof(registry_digest_nonce));
}

static enum status registry_get_store(struct registry *reg, struct store **out,
				      struct buf *err)
{
	*out = NULL;
	pthread_mutex_lock(&reg->lock);
	if (reg->nr_pool)
		*out = reg->pool[--reg->nr_pool];
	pthread_mutex_unlock(&reg->lock);
	if (*out)
		return ST_OK;
	return store_open(reg->store_spec, out, err);
}

/* Return a handle to the pool; one that failed is closed, so the next call
 * starts on a fresh connection once the fault is gone. */
static void registry_put_store(struct registry *reg, struct store *st,
			       int failed)
{
	if (!st)
		return;
	if (failed) {
		store_close(st);
		return;
	}
	pthread_mutex_lock(&reg->lock);
	ALLOC_GROW(reg->pool, reg->nr_pool + 1, reg->alloc_pool);
	reg->pool[reg->nr_pool++] = st;
	pthread_mutex_unlock(&reg->lock);
}

/* A share of `config` (taken over), with one reference. */
static struct registry_share *registry_share_new(struct buf *config)
{
	struct registry_share *share = xmalloc(sizeof(*share));

	atomic_init(&share->refs, 1);
	share->data = buf_detach(config, &share->len);
	return share;
}

/*
 * A new reference to `share`. The invariant: a table's share is referenced
 * only under the table's lock (registry_answer, registry_table_fill), so the
 * holder of the lock sees t->config exactly as the cache left it; answers
 * then keep their reference past the lock, and the last one frees it.
 */
static struct registry_share *registry_share_ref(struct registry_share *share)
{
	atomic_fetch_add(&share->refs, 1);
	return share;
}

void registry_share_release(struct registry_share *share)
{
	if (share && atomic_fetch_sub(&share->refs, 1) == 1) {
		free(share->data);
		free(share);
	}
}

const char *registry_share_data(const struct registry_share *share, size_t *len)
{
	*len = share->len;
	return share->data;
}

static size_t registry_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Double the hash table once it holds more entries than buckets (reg->lock).
 */
static void registry_map_grow(struct registry *reg)
{
	size_t nr = reg->nr_buckets * 2, i;
	struct registry_table **buckets = xcalloc(nr, sizeof(*buckets));

	for (i = 0; i < reg->nr_buckets; i++) {
		struct registry_table *t = reg->buckets[i], *next;

		for (; t; t = next) {
			size_t b = registry_hash(t->name) & (nr - 1);

			next = t->next;
			t->next = buckets[b];
			buckets[b] = t;
		}
	}
	free(reg->buckets);
	reg->buckets = buckets;
	reg->nr_buckets = nr;
}

static void registry_lru_unlink(struct registry *reg, struct registry_table *t)
{
	if (t->newer)
		t->newer->older = t->older;
	else
		reg->newest = t->older;
	if (t->older)
		t->older->newer = t->newer;
	else
		reg->oldest = t->newer;
	t->newer = t->older = NULL;
}

static void registry_lru_push(struct registry *reg, struct registry_table *t)
{
	t->older = reg->newest;
	t->newer = NULL;
	if (reg->newest)
		reg->newest->newer = t;
	else
		reg->oldest = t;
	reg->newest = t;
}

/* Take `t` out of the map; reg->lock held, refs == 0. */
static void registry_table_unlink(struct registry *reg,
				  struct registry_table *t)
{
	struct registry_table **slot =
		&reg->buckets[registry_hash(t->name) & (reg->nr_buckets - 1)];

	while (*slot != t)
		slot = &(*slot)->next;
	*slot = t->next;
	if (t->cached) {
		registry_lru_unlink(reg, t);
		reg->nr_cached--;
	}
	reg->nr_tables--;
}

/* Free an entry out of the map (outside reg->lock: a big table takes a
 * while). */
static void registry_table_free(struct registry_table *t)
{
	if (!t)
		return;
	service_list_release(&t->services);
	registry_share_release(t->config);
	settings_release(&t->settings);
	pthread_rwlock_destroy(&t->lock);
	free(t->name);
	free(t);
}

static void registry_lock_init(pthread_rwlock_t *lock)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

/* The entry of table `name`, with a reference the caller drops with
 * registry_table_put(). */
static struct registry_table *registry_table_get(struct registry *reg,
						 const char *name)
{
	struct registry_table **slot, *t;

	pthread_mutex_lock(&reg->lock);
	slot = &reg->buckets[registry_hash(name) & (reg->nr_buckets - 1)];
	for (t = *slot; t; t = t->next)
		if (!strcmp(t->name, name))
			break;
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->name = xstrdup(name);
		service_list_init(&t->services);
		settings_init(&t->settings);
		registry_lock_init(&t->lock);
		t->next = *slot;
		*slot = t;
		if (++reg->nr_tables > reg->nr_buckets)
			registry_map_grow(reg);
	}
	t->refs++;
	pthread_mutex_unlock(&reg->lock);
	return t;
}

/* Drop a reference; the last one frees an entry with nothing cached. */
static void registry_table_put(struct registry *reg, struct registry_table *t)
{
	struct registry_table *gone = NULL;

	pthread_mutex_lock(&reg->lock);
	if (!--t->refs && !t->cached) {
		registry_table_unlink(reg, t);
		gone = t;
	}
	pthread_mutex_unlock(&reg->lock);
	registry_table_free(gone);
}

/* The cache of the call's table is stale or consumed: drop it. */
static void registry_table_forget(struct registry_ctx *c)
{
	struct registry_table *t = c->t;

	if (!t->cached)
		return;
	service_list_release(&t->services);
	registry_share_release(t->config);
	t->config = NULL;
	pthread_mutex_lock(&c->reg->lock);
	t->cached = 0;
	t->have_digest = 0;
	registry_lru_unlink(c->reg, t);
	c->reg->nr_cached--;
	pthread_mutex_unlock(&c->reg->lock);
}

/*
 * Take over `services`, and a reference to `config`, as the table's state at
 * c->version. At the cap the least recently used table that no call holds
 * goes; when every cached table is in use, this one is not cached.
 */
static void registry_table_fill(struct registry_ctx *c,
				struct service_list *services,
				struct registry_share *config)
{
	struct registry *reg = c->reg;
	struct registry_table *t = c->t, *old, *gone = NULL;
	int room;

	registry_table_forget(c);
	if (!c->version)
		return; /* nothing stored: nothing worth keeping */
	pthread_mutex_lock(&reg->lock);
	for (old = reg->oldest; old && reg->nr_cached >= REGISTRY_MAX_CACHED;
	     old = old->newer) {
		if (!old->refs) {
			/* No call holds or waits for its lock, and none can
			 * start without reg->lock. */
			registry_table_unlink(reg, old);
			gone = old;
			break;
		}
	}
	room = reg->nr_cached < REGISTRY_MAX_CACHED;
	if (room) {
		t->services = *services;
		service_list_init(services);
		t->config = registry_share_ref(config);
		t->version = c->version;
		t->cached = 1;
		reg->nr_cached++;
		registry_lru_push(reg, t);
	}
	pthread_mutex_unlock(&reg->lock);
	registry_table_free(gone);
}

/* A new token for the table's digest: random bytes, in hex. */
static void registry_table_new_token(struct registry_table *t)
{
	unsigned char bytes[REGISTRY_TOKEN_LEN];

	if (gnutls_rnd(GNUTLS_RND_NONCE, bytes, sizeof(bytes)) < 0)
		BUG("gnutls_rnd() failed");
	buf_hex_encode(t->token, bytes, sizeof(bytes));
	t->token[2 * REGISTRY_TOKEN_LEN] = '\0';
}

/*
 * The call's body left its cached table unchanged: remember its digest,
 * with a new token unless it is the digest already remembered.
 */
static void registry_table_remember(struct registry_ctx *c)
{
	struct registry_table *t = c->t;

	if (!c->have_digest)
		return;
	pthread_mutex_lock(&c->reg->lock);
	if (t->cached) {
		if (!t->have_digest ||
		    t->digest_path != (c->path_table != NULL) ||
		    memcmp(t->digest, c->digest, REGISTRY_DIGEST_LEN)) {
			registry_table_new_token(t);
			memcpy(t->digest, c->digest, REGISTRY_DIGEST_LEN);
			t->have_digest = 1;
			t->digest_path = c->path_table != NULL;
		}
		memcpy(c->res->token, t->token, sizeof(t->token));
	}
	pthread_mutex_unlock(&c->reg->lock);
}

/* Whether the call's table still has the call's digest, or its token
 * (shared holders of its lock may remember one at the same time). */
static int registry_table_has_digest(struct registry_ctx *c)
{
	int ret;

	pthread_mutex_lock(&c->reg->lock);
	ret = c->t->have_digest &&
	      c->t->digest_path == (c->path_table != NULL) &&
	      (c->token
		       ? !strcmp(c->t->token, c->token)
		       : !memcmp(c->t->digest, c->digest, REGISTRY_DIGEST_LEN));
	pthread_mutex_unlock(&c->reg->lock);
	return ret;
}

/*
 * The cached table whose last unchanged call had the call's body digest
 * (or gave out its token) and the same table in its path (or none: then
 * the body names it), with a reference (registry_table_put() it), or NULL. A
 * scan of the LRU, newest first: it holds at most REGISTRY_MAX_CACHED tables
 * and a digest compare is cheap next to parsing even a small body.
 */
static struct registry_table *registry_table_by_digest(struct registry_ctx *c)
{
	struct registry *reg = c->reg;
	struct registry_table *t;

	pthread_mutex_lock(&reg->lock);
	for (t = reg->newest; t; t = t->older)
		if (t->have_digest &&
		    (c->token ? !strcmp(t->token, c->token)
			      : !memcmp(t->digest, c->digest,
					REGISTRY_DIGEST_LEN)) &&
		    t->digest_path == (c->path_table != NULL) &&
		    (!c->path_table || !strcmp(t->name, c->path_table)))
			break;
	if (t)
		t->refs++;
	pthread_mutex_unlock(&reg->lock);
	return t;
}

struct registry_digest *registry_digest_new(void)
{
	struct registry_digest *d = xmalloc(sizeof(*d));

	pthread_once(&registry_digest_once, registry_digest_init);
	d->h = pthread_getspecific(registry_digest_spare);
	if (d->h) {
		pthread_setspecific(registry_digest_spare, NULL);
		return d;
	}
	d->h = gnutls_hmac_copy(registry_digest_proto);
	if (!d->h)
		BUG("gnutls_hmac_copy failed");
	return d;
}

void registry_digest_add(struct registry_digest *d, const void *data,
			 size_t len)
{
	(void)gnutls_hmac(d->h, data, len);
}

void registry_digest_final(struct registry_digest *d, unsigned char *out)
{
	gnutls_hmac_output(d->h, out);
	if (!pthread_getspecific(registry_digest_spare)) {
		gnutls_hmac_set_nonce(d->h, registry_digest_nonce,
				      sizeof(registry_digest_nonce));
		if (!pthread_setspecific(registry_digest_spare, d->h))
			d->h = NULL;
	}
	if (d->h)
		gnutls_hmac_deinit(d->h, NULL);
	free(d);
}

void registry_digest_free(struct registry_digest *d)
{
	if (!d)
		return;
	gnutls_hmac_deinit(d->h, NULL);
	free(d);
}

/* A cache hit makes the table the most recently used. */
static void registry_table_touch(struct registry *reg, struct registry_table *t)
{
	pthread_mutex_lock(&reg->lock);
	if (t->cached && reg->newest != t) {
		registry_lru_unlink(reg, t);
		registry_lru_push(reg, t);
	}
	pthread_mutex_unlock(&reg->lock);
}

void registry_get_stats(struct registry *reg, struct registry_stats *out)
{
	pthread_mutex_lock(&reg->lock);
	out->tables = reg->nr_tables;
	out->cached = reg->nr_cached;
	out->buckets = reg->nr_buckets;
	pthread_mutex_unlock(&reg->lock);
	out->body_hits = atomic_load(&reg->body_hits);
	out->token_hits = atomic_load(&reg->token_hits);
}

enum status registry_new(const struct registry_options *opts,
			 struct registry **out, struct buf *err)
{
	struct registry *reg = xcalloc(1, sizeof(*reg));
	struct store *st = NULL;
	enum status ret;

	reg->store_spec = xstrdup(opts->store_spec);
	reg->frontend_bind =
		xstrdup(opts->render.frontend_bind ? opts->render.frontend_bind
						   : RENDER_DEFAULT_BIND);
	reg->render.frontend_bind = reg->frontend_bind;
	reg->max_config = BUF_CAP_DEFAULT;
	reg->nr_buckets = REGISTRY_MIN_BUCKETS;
	reg->buckets = xcalloc(reg->nr_buckets, sizeof(*reg->buckets));
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->write_lock, NULL);
	pthread_mutex_init(&reg->changes_lock, NULL);
	reg->reports =
		report_cache_new(REPORT_MAX_AGENTS, REPORT_MAX_TABLE_AGENTS);
	ret = store_open(reg->store_spec, &st, err);
	if (ret != ST_OK) {
		registry_free(reg);
		*out = NULL;
		return ret;
	}
	reg->caps = store_caps(st);
	registry_put_store(reg, st, 0);
	*out = reg;
	return ST_OK;
}

void registry_set_max_config(struct registry *reg, size_t max)
{
	reg->max_config = max ? max : BUF_CAP_DEFAULT;
}

void registry_free(struct registry *reg)
{
	size_t i;

	if (!reg)
		return;
	registry_flush_changes(reg, 0);
	free(reg->pending);
	pthread_mutex_destroy(&reg->changes_lock);
	for (i = 0; i < reg->nr_pool; i++)
		store_close(reg->pool[i]);
	free(reg->pool);
	for (i = 0; i < reg->nr_buckets; i++) {
		while (reg->buckets[i]) {
			struct registry_table *t = reg->buckets[i];

			registry_table_unlink(reg, t);
			registry_table_free(t);
		}
	}
	free(reg->buckets);
	report_cache_free(reg->reports);
	pthread_mutex_destroy(&reg->lock);
	pthread_mutex_destroy(&reg->write_lock);
	free(reg->write_error);
	free(reg->store_spec);
	free(reg->frontend_bind);
	free(reg);
}

void registry_result_init(struct registry_result *res)
{
	memset(res, 0, sizeof(*res));
	buf_init(&res->config, 0);
	service_list_init(&res->services);
	buf_init(&res->hosts_map, 0);
	buf_init(&res->paths_map, 0);
}

void registry_result_release(struct registry_result *res)
{
	free(res->table);
	buf_release(&res->config);
	registry_share_release(res->share);
	service_list_release(&res->services);
	buf_release(&res->hosts_map);
	buf_release(&res->paths_map);
	free(res->map_dir);
	registry_result_init(res);
}

/* Put `config` into the result: a reference, or a copy in res->config. */
static void registry_answer(struct registry_ctx *c,
			    struct registry_share *config,
			    const struct service_list *services)
{
	if (c->flags & REGISTRY_SHARE_CONFIG)
		c->res->share = registry_share_ref(config);
	else
		(void)buf_add(&c->res->config, config->data, config->len);
	if (c->flags & REGISTRY_WANT_SERVICES)
		service_list_copy(&c->res->services, services);
}

/* Forget a partial answer before a retry or after a failure. */
static void registry_result_reset(struct registry_result *res)
{
	res->token[0] = '\0';
	buf_reset(&res->config);
	registry_share_release(res->share);
	res->share = NULL;
	service_list_release(&res->services);
}

/*
 * Begin an attempt and find the table's services at its snapshot: the cache
 * when it is at the store's version (c->hit), else what an earlier attempt
 * loaded at that version, else a fresh load into c->loaded. Returns the
 * list, or NULL with the store's error in *ret (the call is rolled back).
 */
static struct service_list *registry_begin(struct registry_ctx *c, int write,
					   enum status *ret, struct buf *err)
{
	const int versioned = (c->reg->caps & STORE_CAP_VERSION) != 0;

	c->hit = 0;
	c->version = 0;
	*ret = store_begin(c->st, c->p->table, write, err);
	if (*ret != ST_OK)
		return NULL;
	if (versioned) {
		*ret = store_version(c->st, &c->version, err);
		if (*ret != ST_OK)
			goto fail;
		if (c->expect != REGISTRY_INDEX_ANY &&
		    c->version + c->t->settings_gen != c->expect) {
			buf_setf(err, "table '%s' is at index %llu, not %llu",
				 c->p->table,
				 (unsigned long long)(c->version +
						      c->t->settings_gen),
				 (unsigned long long)c->expect);
			*ret = ST_PRECONDITION;
			goto fail;
		}
		if (c->t->cached && c->t->version == c->version) {
			c->hit = 1;
			return &c->t->services;
		}
		if (c->have_loaded && c->loaded_version == c->version)
			return &c->loaded;
	}
	if (c->nowait) {
		*ret = ST_BUSY; /* loading and rendering are for a worker */
		goto fail;
	}
	registry_table_forget(c);
	service_list_release(&c->loaded);
	c->have_loaded = 0;
	*ret = store_load(c->st, &c->loaded, err);
	if (*ret != ST_OK)
		goto fail;
	c->have_loaded = 1;
	c->loaded_version = c->version;
	return &c->loaded;
fail:
	store_rollback(c->st);
	return NULL;
}

/* Render `services` into c->config; ST_TOO_LARGE over the cap. */
static enum status registry_render(struct registry_ctx *c,
				   const struct service_list *services,
				   struct buf *err)
{
	struct render_options opts = c->reg->render;

	opts.settings = &c->t->settings;
	opts.table = c->t->name;
	opts.form = render_form(opts.settings, 0);
	buf_reset(&c->config);
	metrics_counter_add(&metrics_renders, NULL, 1);
	render_config(services, &opts, &c->config);
	if (!buf_overflowed(&c->config))
		return ST_OK;
	buf_setf(err,
		 "the config of table '%s' (%zu services) would be larger than "
		 "%zu bytes; nothing was stored",
		 c->res->table, services->nr, c->reg->max_config);
	buf_release(&c->config);
	return ST_TOO_LARGE;
}

/*
 * The form for an answer with the map files; in the map form the config
 * and the maps rendered from the answer's services (the cache keeps the
 * plain answer's form). Within the cap whenever the ACL form was: maps
 * carry less per service.
 */
static enum status registry_files(struct registry_ctx *c, struct buf *err)
{
	struct registry_result *res = c->res;
	struct render_options opts = c->reg->render;

	opts.settings = &c->t->settings;
	opts.form = render_form(opts.settings, 1);
	res->form = opts.form;
	if (opts.form != RENDER_FORM_MAP)
		return ST_OK;
	buf_release(&res->config);
	buf_init(&res->config, c->reg->max_config);
	buf_release(&res->hosts_map);
	buf_init(&res->hosts_map, c->reg->max_config);
	buf_release(&res->paths_map);
	buf_init(&res->paths_map, c->reg->max_config);
	render_config(&res->services, &opts, &res->config);
	render_maps(&res->services, &res->hosts_map, &res->paths_map);
	res->map_dir = xstrdup(opts.settings->routing_map_dir);
	if (!buf_overflowed(&res->config) && !buf_overflowed(&res->hosts_map) &&
	    !buf_overflowed(&res->paths_map))
		return ST_OK;
	buf_setf(err,
		 "the config or maps of table '%s' would be larger than %zu "
		 "bytes",
		 res->table, c->reg->max_config);
	return ST_TOO_LARGE;
}

/* Answer with the render in c->config, and cache it with `services` (taken
 * over) at c->version when the store is versioned. */
static void registry_publish(struct registry_ctx *c,
			     struct service_list *services)
{
	struct registry_share *share = registry_share_new(&c->config);

	metrics_table_services(c->res->table, c->version, services);
	registry_answer(c, share, services);
	if (c->reg->caps & STORE_CAP_VERSION)
		registry_table_fill(c, services, share);
	registry_share_release(share);
}

/* Write what the merge changed; the version its commit will publish. */
static enum status registry_store_changes(struct registry_ctx *c,
					  struct merge_result *m,
					  struct buf *err)
{
	enum status ret = ST_OK;
	size_t i;

	for (i = 0; ret == ST_OK && i < m->removed.nr; i++)
		ret = store_remove(c->st, &m->removed.items[i], err);
	for (i = 0; ret == ST_OK && i < m->nr_changed; i++)
		ret = store_put(c->st, &m->services.items[m->changed[i]], err);
	if (ret == ST_OK && (c->reg->caps & STORE_CAP_VERSION) &&
	    (m->nr_changed || m->removed.nr))
		ret = store_version(c->st, &c->version, err);
	return ret;
}

/*
 * The read path of an atomic store: a read transaction that only finds out
 * whether the call changes anything (MERGE_CHECK: no copies, it stops at the
 * first change). An unchanged call is answered from here, from the cache or
 * by rendering what was loaded (unchanged, it is the table after the call),
 * and never waits for another writer. A changed one sets *need_write.
 */
static enum status registry_read(struct registry_ctx *c, int *need_write,
				 struct buf *err)
{
	struct service_list *stored;
	struct merge_result m;
	enum status ret;

	*need_write = 0;
	merge_result_init(&m);
	stored = registry_begin(c, 0, &ret, err);
	if (!stored)
		goto out;
	merge_apply_flags(stored, c->p, (int64_t)clock_real_ms(), MERGE_CHECK,
			  &m);
	store_rollback(c->st); /* a read: nothing to commit */
	if (m.nr_changed || m.removed.nr) {
		*need_write = 1;
		goto out;
	}
	if (c->hit) {
		registry_table_touch(c->reg, c->t);
		registry_answer(c, c->t->config, &c->t->services);
		registry_table_remember(c);
		goto out;
	}
	ret = registry_render(c, stored, err);
	if (ret != ST_OK)
		goto out;
	c->have_loaded = 0; /* taken over by the cache */
	registry_publish(c, stored);
	registry_table_remember(c);
out:
	merge_result_release(&m);
	return ret;
}

/*
 * The write path of an atomic store: one write transaction (the store's
 * lock, after this process's writers) that merges in full, moving the
 * stored services and the payload's candidates over instead of copying them
 * (at 10,000 services this saves about a third of the call); nothing merges
 * this payload again, and the cache it moved from is dropped. The config is
 * rendered before anything is written, so a config over the cap stores
 * nothing.
 */
static enum status registry_write(struct registry_ctx *c, struct buf *err)
{
	struct service_list *stored;
	struct merge_result m;
	enum status ret;

	merge_result_init(&m);
	/* A store that locks per table lets writers of other tables go on. */
	if (!(c->reg->caps & STORE_CAP_TABLE_LOCKS))
		pthread_mutex_lock(&c->reg->write_lock);
	stored = registry_begin(c, 1, &ret, err);
	if (!stored)
		goto out;
	merge_apply_flags(stored, c->p, (int64_t)clock_real_ms(),
			  MERGE_MOVE | MERGE_TAKE, &m);
	/* Give what is left of the payload back before rendering. */
	payload_release(c->p);
	registry_table_forget(c);
	service_list_release(&c->loaded);
	c->have_loaded = 0;
	c->res->changed = m.nr_changed || m.removed.nr;
	ret = registry_render(c, &m.services, err);
	if (ret == ST_OK)
		ret = registry_store_changes(c, &m, err);
	if (ret != ST_OK) {
		store_rollback(c->st);
		goto out;
	}
	ret = store_commit(c->st, err);
out:
	if (!(c->reg->caps & STORE_CAP_TABLE_LOCKS))
		pthread_mutex_unlock(&c->reg->write_lock);
	if (ret == ST_OK)
		registry_publish(c, &m.services);
	merge_result_release(&m);
	return ret;
}

/*
 * The path of a store without transactions (DynamoDB): each put and remove
 * is conditional on the version it was loaded with, so a concurrent writer
 * makes one fail with ST_CONFLICT, and the caller starts over. The payload
 * stays whole for that. The config is rendered before the first write.
 */
static enum status registry_nonatomic(struct registry_ctx *c, struct buf *err)
{
	struct service_list *stored;
	struct merge_result m;
	enum status ret;
	int unchanged_hit;

	merge_result_init(&m);
	stored = registry_begin(c, 0, &ret, err);
	if (!stored)
		goto out;
	merge_apply_flags(stored, c->p, (int64_t)clock_real_ms(), MERGE_MOVE,
			  &m);
	c->res->changed = m.nr_changed || m.removed.nr;
	unchanged_hit = c->hit && !c->res->changed;
	if (unchanged_hit) {
		/* Unchanged, the moved services go back as they were. */
		service_list_release(&c->t->services);
		c->t->services = m.services;
		service_list_init(&m.services);
	} else {
		registry_table_forget(c);
		ret = registry_render(c, &m.services, err);
	}
	if (ret == ST_OK)
		ret = registry_store_changes(c, &m, err);
	if (ret != ST_OK) {
		store_rollback(c->st);
		goto out;
	}
	ret = store_commit(c->st, err);
	if (ret != ST_OK)
		goto out;
	if (unchanged_hit)
		registry_answer(c, c->t->config, &c->t->services);
	else
		registry_publish(c, &m.services);
out:
	if (ret != ST_OK)
		registry_table_forget(c);
	service_list_release(&c->loaded);
	c->have_loaded = 0;
	merge_result_release(&m);
	return ret;
}

/* Remember a failed write for /healthz until a write (a call's or a probe's)
 * works. */
static void registry_note_write(struct registry *reg, int ok, const char *why)
{
	if (ok && !atomic_load(&reg->write_failed))
		return;
	pthread_mutex_lock(&reg->lock);
	free(reg->write_error);
	reg->write_error = ok ? NULL : xstrdup(why);
	atomic_store(&reg->write_failed, !ok);
	pthread_mutex_unlock(&reg->lock);
}

/* Count a refused payload by its rule and keep it for the status page. */
static void registry_note_rejection(const char *table, const char *json,
				    size_t len, enum status ret,
				    const struct buf *field)
{
	const char *rule = payload_reject_reason(field->buf);
	struct buf peek = BUF_INIT;

	if (ret != ST_INVALID)
		return;
	metrics_counter_add(&metrics_payload_rejections,
			    (const char *const[]){rule}, 1);
	if (!table)
		payload_peek_table(json, len, &peek);
	metrics_note_rejection(table ? table : peek.buf, field->buf, rule);
	buf_release(&peek);
}

/*
 * Count `n` stored changes of `table` for the sparkline, after the table's
 * lock is gone and behind this process's writers: left to the store's busy
 * wait, counts of two tables fought over SQLite's one write lock. The
 * changes themselves are committed: a failure here (logged and counted by
 * the store's wrappers) only loses them from the page's counts.
 */
static void registry_count_changes(struct registry *reg, const char *table,
				   uint64_t n)
{
	struct buf err = BUF_INIT;
	struct store *st = NULL;
	enum status ret = registry_get_store(reg, &st, &err);

	if (ret == ST_OK) {
		if (!(reg->caps & STORE_CAP_TABLE_LOCKS))
			pthread_mutex_lock(&reg->write_lock);
		ret = changes_note(st, table, (int64_t)clock_real_ms(), n,
				   &err);
		if (!(reg->caps & STORE_CAP_TABLE_LOCKS))
			pthread_mutex_unlock(&reg->write_lock);
	}
	/* Only an unreachable store costs the handle: the table call that
	 * follows on it must not pay for a sparkline's trouble. */
	registry_put_store(reg, st, ret == ST_UNAVAILABLE);
	buf_release(&err);
}

/* The sparkline's count of a change this process stored: at once, or
 * added up with the table's others until registry_flush_changes(). */
static void registry_note_change(struct registry *reg, const char *table)
{
	size_t i;

	pthread_mutex_lock(&reg->changes_lock);
	if (!reg->batch_ms) {
		pthread_mutex_unlock(&reg->changes_lock);
		registry_count_changes(reg, table, 1);
		return;
	}
	for (i = 0; i < reg->nr_pending; i++)
		if (!strcmp(reg->pending[i].table, table))
			break;
	if (i == reg->nr_pending) {
		ALLOC_GROW(reg->pending, reg->nr_pending + 1,
			   reg->alloc_pending);
		reg->pending[i].table = xstrdup(table);
		reg->pending[i].n = 0;
		if (!reg->nr_pending++)
			reg->pending_ms = clock_now_ms();
	}
	reg->pending[i].n++;
	pthread_mutex_unlock(&reg->changes_lock);
	/* Many tables changing at once: count them now rather than scan a
	 * long list for every change. */
	if (i >= REGISTRY_MAX_PENDING)
		registry_flush_changes(reg, 0);
}

void registry_batch_changes(struct registry *reg, uint64_t ms)
{
	pthread_mutex_lock(&reg->changes_lock);
	reg->batch_ms = ms;
	pthread_mutex_unlock(&reg->changes_lock);
}

void registry_flush_changes(struct registry *reg, uint64_t age_ms)
{
	struct registry_pending *list;
	size_t i, nr;

	pthread_mutex_lock(&reg->changes_lock);
	if (!reg->nr_pending || clock_now_ms() - reg->pending_ms < age_ms) {
		pthread_mutex_unlock(&reg->changes_lock);
		return;
	}
	list = reg->pending;
	nr = reg->nr_pending;
	reg->pending = NULL;
	reg->nr_pending = reg->alloc_pending = 0;
	pthread_mutex_unlock(&reg->changes_lock);
	for (i = 0; i < nr; i++) {
		registry_count_changes(reg, list[i].table, list[i].n);
		free(list[i].table);
	}
	free(list);
}

enum status registry_call(struct registry *reg, const char *json, size_t len,
			  unsigned flags, struct registry_result *res,
			  struct buf *err, struct buf *field)
{
	return registry_call_table_if(reg, NULL, json, len, flags, NULL, res,
				      err, field);
}

enum status registry_call_table(struct registry *reg, const char *table,
				const char *json, size_t len, unsigned flags,
				struct registry_result *res, struct buf *err,
				struct buf *field)
{
	return registry_call_table_if(reg, table, json, len, flags, NULL, res,
				      err, field);
}

static void registry_tell_changed(struct registry *reg, const char *table);

/* How long one wait for hints lasts: the stop flag is seen this often. */
#define REGISTRY_HINTS_WAIT_MS 200

/* Forward the store's hints to the hook, reconnecting after a failure. */
static void *registry_hints_main(void *arg)
{
	struct registry *reg = arg;
	struct store_name_list names;
	struct buf err = BUF_INIT;
	struct store *st = NULL;
	struct backoff bo;

	store_name_list_init(&names);
	backoff_init(&bo, 100, 5000);
	while (!atomic_load(&reg->hints_stop)) {
		enum status ret =
			st ? ST_OK : store_open(reg->store_spec, &st, &err);
		int all = 0;
		size_t i;

		if (ret == ST_OK)
			ret = store_hints(st, REGISTRY_HINTS_WAIT_MS, &names,
					  &all, &err);
		if (ret != ST_OK) {
			uint64_t ms = backoff_next_ms(&bo);

			/* Nothing is lost: the watch's own checks go on. */
			while (ms && !atomic_load(&reg->hints_stop)) {
				uint64_t step = ms < 100 ? ms : 100;

				clock_sleep_ms(step);
				ms -= step;
			}
			continue;
		}
		backoff_reset(&bo);
		if (all || names.nr)
			atomic_fetch_add(&reg->hints, all ? 1 : names.nr);
		if (all)
			registry_tell_changed(reg, NULL);
		for (i = 0; !all && i < names.nr; i++)
			registry_tell_changed(reg, names.items[i]);
		store_name_list_release(&names);
	}
	if (st)
		store_close(st);
	buf_release(&err);
	return NULL;
}

void registry_set_changed(struct registry *reg, registry_changed_fn *fn,
			  void *ctx)
{
	if (!fn && reg->hints_running) {
		atomic_store(&reg->hints_stop, 1);
		pthread_join(reg->hints_thread, NULL);
		reg->hints_running = 0;
	}
	pthread_mutex_lock(&reg->lock);
	reg->changed = fn;
	reg->changed_ctx = ctx;
	pthread_mutex_unlock(&reg->lock);
	if (fn && !reg->hints_running && (reg->caps & STORE_CAP_HINTS)) {
		atomic_store(&reg->hints_stop, 0);
		reg->hints_running = !pthread_create(&reg->hints_thread, NULL,
						     registry_hints_main, reg);
	}
}

unsigned long registry_hints_received(struct registry *reg)
{
	return atomic_load(&reg->hints);
}

/* Tell the hook (if any) that `table` (NULL: any) changed. */
static void registry_tell_changed(struct registry *reg, const char *table)
{
	registry_changed_fn *fn;
	void *ctx;

	pthread_mutex_lock(&reg->lock);
	fn = reg->changed;
	ctx = reg->changed_ctx;
	pthread_mutex_unlock(&reg->lock);
	if (fn)
		fn(ctx, table);
}

/* This process changed the settings: its next call reads the generation. */
static void registry_settings_changed(struct registry *reg)
{
	pthread_mutex_lock(&reg->lock);
	reg->have_settings_gen = 0;
	pthread_mutex_unlock(&reg->lock);
}

/* The text of settings document `key` into `*out` (NULL when none). */
static enum status registry_settings_doc(struct store *st, const char *key,
					 char **out, struct buf *err)
{
	struct store_doc doc = {0};
	enum status ret = store_doc_get(st, SETTINGS_KIND, key, &doc, err);

	*out = NULL;
	if (ret == ST_NOT_FOUND)
		return ST_OK;
	if (ret == ST_OK) {
		*out = doc.value;
		doc.value = NULL;
	}
	store_doc_release(&doc);
	return ret;
}

/* The effective settings of `table` as stored now, into `*json` and `*out`
 * when not NULL (as settings_effective()). */
static enum status registry_settings_load(struct store *st, const char *table,
					  char **json, struct settings *out,
					  struct buf *err)
{
	char *dflt = NULL, *over = NULL;
	struct buf why = BUF_INIT;
	enum status ret;

	ret = registry_settings_doc(st, SETTINGS_DEFAULT_KEY, &dflt, err);
	if (ret == ST_OK && table)
		ret = registry_settings_doc(st, table, &over, err);
	if (ret != ST_OK)
		goto out;
	ret = settings_effective(dflt, over, json, out, &why);
	if (ret != ST_OK)
		buf_setf(err,
			 "the stored settings of table '%s' do not hold: %s",
			 table ? table : SETTINGS_DEFAULT_KEY, why.buf);
out:
	free(dflt);
	free(over);
	buf_release(&why);
	return ret;
}

/* The store's settings generation: read now when the store has exact
 * versions (a local read), else at most every REGISTRY_SETTINGS_CHECK_MS. */
static enum status registry_settings_gen(struct registry_ctx *c, uint64_t *gen,
					 struct buf *err)
{
	struct registry *reg = c->reg;
	uint64_t now = clock_now_ms();
	enum status ret;
	int fresh;

	if (reg->caps & STORE_CAP_VERSION)
		return store_doc_generation(c->st, SETTINGS_KIND, gen, err);
	pthread_mutex_lock(&reg->lock);
	fresh = reg->have_settings_gen &&
		now - reg->settings_read_ms < REGISTRY_SETTINGS_CHECK_MS;
	*gen = reg->settings_gen;
	pthread_mutex_unlock(&reg->lock);
	if (fresh)
		return ST_OK;
	ret = store_doc_generation(c->st, SETTINGS_KIND, gen, err);
	if (ret != ST_OK)
		return ret;
	pthread_mutex_lock(&reg->lock);
	reg->settings_gen = *gen;
	reg->settings_read_ms = now;
	reg->have_settings_gen = 1;
	pthread_mutex_unlock(&reg->lock);
	return ST_OK;
}

/*
 * Make c->t->settings current: the settings generation, and a reload (which
 * drops the table's cache, rendered from the old settings) only when it
 * moved. Runs before the table's transaction, as the document calls must.
 */
static enum status registry_table_settings(struct registry_ctx *c,
					   struct buf *err)
{
	struct registry_table *t = c->t;
	struct settings fresh;
	uint64_t gen;
	enum status ret;

	ret = registry_settings_gen(c, &gen, err);
	if (ret != ST_OK || (t->have_settings && t->settings_gen == gen))
		return ret;
	if (c->nowait)
		return ST_BUSY;
	settings_init(&fresh);
	ret = registry_settings_load(c->st, t->name, NULL, &fresh, err);
	if (ret == ST_OK) {
		registry_table_forget(c);
		settings_release(&t->settings);
		t->settings = fresh;
		t->settings_gen = gen;
		t->have_settings = 1;
	} else {
		settings_release(&fresh);
		if (ret == ST_INVALID)
			ret = ST_UNAVAILABLE; /* the store's fault, not the
						 call's */
	}
	return ret;
}

/* Attempts of the non-atomic path, with jittered backoff after conflicts. */
static enum status registry_retry_nonatomic(struct registry_ctx *c,
					    struct buf *err)
{
	struct backoff bo;
	enum status ret;
	unsigned attempt;

	for (attempt = 0;; attempt++) {
		registry_result_reset(c->res);
		ret = registry_nonatomic(c, err);
		if (ret != ST_CONFLICT)
			return ret;
		if (attempt + 1 == REGISTRY_MAX_ATTEMPTS)
			break;
		if (!attempt)
			backoff_init(&bo, REGISTRY_BACKOFF_BASE_MS,
				     REGISTRY_BACKOFF_CAP_MS);
		clock_sleep_ms(backoff_next_ms(&bo));
	}
	buf_setf(err, "table '%s' kept changing under this call; try again",
		 c->res->table);
	return ST_UNAVAILABLE;
}

/* The table's lock; shared and without waiting (-1 when it would wait) for
 * REGISTRY_NO_WAIT. */
static int registry_lock_table(struct registry_ctx *c)
{
	if (c->nowait)
		return pthread_rwlock_tryrdlock(&c->t->lock) ? -1 : 0;
	pthread_rwlock_wrlock(&c->t->lock);
	return 0;
}

/* A store handle for the call; without waiting, only one from the pool. */
static enum status registry_ctx_get_store(struct registry_ctx *c,
					  struct buf *err)
{
	struct registry *reg = c->reg;
	enum status ret;

	if (!c->nowait)
		return registry_get_store(reg, &c->st, err);
	c->st = NULL;
	pthread_mutex_lock(&reg->lock);
	if (reg->nr_pool)
		c->st = reg->pool[--reg->nr_pool];
	pthread_mutex_unlock(&reg->lock);
	ret = c->st ? ST_OK : ST_BUSY;
	if (c->st)
		store_nowait(c->st, 1);
	else
		atomic_store(&reg->pool_short, 1);
	return ret;
}

/* Open the handle a REGISTRY_NO_WAIT call missed, where opening may wait. */
static void registry_pool_refill(struct registry *reg)
{
	struct store *st = NULL;
	struct buf err = BUF_INIT;

	if (atomic_exchange(&reg->pool_short, 0) &&
	    store_open(reg->store_spec, &st, &err) == ST_OK)
		registry_put_store(reg, st, 0);
	buf_release(&err);
}

/* Give the handle back: closed when the call failed for the store's sake. */
static void registry_ctx_put_store(struct registry_ctx *c, enum status ret)
{
	if (c->st && c->nowait)
		store_nowait(c->st, 0);
	registry_put_store(c->reg, c->st,
			   ret != ST_OK && ret != ST_TOO_LARGE &&
				   ret != ST_BUSY && ret != ST_PRECONDITION);
	c->st = NULL;
}

/*
 * The shortcut of an unchanged call: a body byte for byte the one that last
 * left this table's cache unchanged. The same bytes parse to the same
 * payload, and a payload that changed nothing on these services changes
 * nothing on them again (the merge is deterministic, and the time only
 * stamps what changes), so while the cache is at the store's version and
 * the settings generation is the one it was rendered at (a new one drops
 * the cache, and the digest with it), the read path's answer is the cache.
 * Returns 1 when the call is answered (*ret), 0 when it must go the whole
 * way; a store error is answered here as the whole way would answer it.
 */
static int registry_try_digest(struct registry_ctx *c, enum status *ret,
			       struct buf *err)
{
	uint64_t version = 0;
	int answered = 1, hit, same;

	c->t = registry_table_by_digest(c);
	if (!c->t)
		return 0;
	if (registry_lock_table(c)) {
		*ret = ST_BUSY;
		goto put;
	}
	*ret = registry_ctx_get_store(c, err);
	if (*ret == ST_OK)
		*ret = registry_table_settings(c, err);
	if (*ret == ST_OK && registry_table_has_digest(c)) {
		*ret = store_begin(c->st, c->t->name, 0, err);
		if (*ret == ST_OK) {
			*ret = store_version(c->st, &version, err);
			store_rollback(c->st);
		}
		hit = *ret == ST_OK && c->t->cached && c->t->version == version;
		/* Same bytes, same index: the caller has this answer. */
		same = c->have != REGISTRY_INDEX_ANY &&
		       c->have == version + c->t->settings_gen;
		/* A token stands for the body only to say "not modified":
		 * anything else needs the body. */
		if (hit && (same || !c->token)) {
			c->res->table = xstrdup(c->t->name);
			c->res->index = version + c->t->settings_gen;
			c->res->not_modified = same;
			registry_table_touch(c->reg, c->t);
			pthread_mutex_lock(&c->reg->lock);
			memcpy(c->res->token, c->t->token, sizeof(c->t->token));
			pthread_mutex_unlock(&c->reg->lock);
			atomic_fetch_add(c->token ? &c->reg->token_hits
						  : &c->reg->body_hits,
					 1);
			metrics_counter_add(
				&metrics_unparsed_calls,
				(const char *const[]){c->token ? "token"
							       : "body"},
				1);
			if (!same)
				registry_answer(c, c->t->config,
						&c->t->services);
			if (!same && (c->flags & REGISTRY_WANT_FILES))
				*ret = registry_files(c, err);
		} else if (*ret == ST_OK) {
			answered = 0;
		}
	} else if (*ret == ST_OK) {
		answered = 0;
	}
	if (*ret != ST_OK)
		registry_result_reset(c->res);
	registry_ctx_put_store(c, *ret);
	pthread_rwlock_unlock(&c->t->lock);
put:
	registry_table_put(c->reg, c->t);
	c->t = NULL;
	return answered;
}

enum status registry_call_table_if(struct registry *reg, const char *table,
				   const char *json, size_t len, unsigned flags,
				   const struct registry_cond *cond,
				   struct registry_result *res, struct buf *err,
				   struct buf *field)
{
	static const struct registry_cond none = REGISTRY_COND_NONE;
	const unsigned read_path = STORE_CAP_ATOMIC | STORE_CAP_VERSION;
	struct registry_ctx c;
	struct payload p;
	enum status ret;
	int need_write = 0, tried_write;

	memset(&c, 0, sizeof(c));
	c.reg = reg;
	c.p = &p;
	c.flags = flags;
	c.res = res;
	c.nowait = (flags & REGISTRY_NO_WAIT) != 0;
	if (!cond)
		cond = &none;
	c.expect = cond->expect;
	c.have = cond->have;
	c.path_table = table;
	service_list_init(&c.loaded);
	buf_init(&c.config, reg->max_config);
	payload_init(&p);
	if (c.nowait && ((reg->caps & read_path) != read_path ||
			 !(reg->caps & STORE_CAP_NOWAIT))) {
		ret = ST_BUSY;
		goto out;
	}
	/* An If-Match is checked where the index is read: not on the
	 * shortcut. */
	if ((reg->caps & read_path) == read_path &&
	    c.expect == REGISTRY_INDEX_ANY) {
		if (cond->digest) {
			memcpy(c.digest, cond->digest, REGISTRY_DIGEST_LEN);
		} else {
			struct registry_digest *d = registry_digest_new();

			registry_digest_add(d, json, len);
			registry_digest_final(d, c.digest);
		}
		c.have_digest = 1;
		if (registry_try_digest(&c, &ret, err))
			goto out;
	}
	/* The flag says the bytes are the caller's to write: not const. */
	ret = flags & REGISTRY_BODY_WRITABLE
		      ? payload_parse_table_in_place(&p, table, (char *)json,
						     len, err, field)
		      : payload_parse_table(&p, table, json, len, err, field);
	if (ret != ST_OK) {
		registry_note_rejection(table, json, len, ret, field);
		goto out;
	}
	res->table = xstrdup(p.table);
	c.t = registry_table_get(reg, p.table);
	if (registry_lock_table(&c)) {
		ret = ST_BUSY;
		goto put;
	}
	ret = registry_ctx_get_store(&c, err);
	if (ret == ST_OK)
		ret = registry_table_settings(&c, err);
	if (ret != ST_OK)
		goto unlock;
	if (!(reg->caps & STORE_CAP_ATOMIC)) {
		ret = registry_retry_nonatomic(&c, err);
		tried_write = res->changed;
	} else {
		ret = registry_read(&c, &need_write, err);
		/* A snapshot that moved under the read (a store without read
		 * transactions): the write path takes the table's lock. */
		if (ret == ST_CONFLICT) {
			service_list_release(&c.loaded);
			c.have_loaded = 0;
			need_write = 1;
			ret = ST_OK;
		}
		if (ret == ST_OK && need_write && c.nowait)
			ret = ST_BUSY;
		if (ret == ST_OK && need_write) {
			registry_result_reset(res);
			ret = registry_write(&c, err);
		}
		tried_write = need_write && !c.nowait;
	}
	if (ret == ST_OK && (flags & REGISTRY_WANT_FILES))
		ret = registry_files(&c, err);
	/* A hit: answered from the cache, nothing loaded or rendered. */
	if (ret == ST_OK)
		metrics_counter_add(c.hit && !res->changed
					    ? &metrics_cache_hits
					    : &metrics_cache_misses,
				    NULL, 1);
	if (ret == ST_UNAVAILABLE && tried_write)
		registry_note_write(reg, 0, err->buf);
	else if (ret == ST_OK && res->changed)
		registry_note_write(reg, 1, NULL);
unlock:
	if (ret != ST_OK)
		registry_result_reset(res);
	else
		res->index = c.version + c.t->settings_gen;
	registry_ctx_put_store(&c, ret);
	pthread_rwlock_unlock(&c.t->lock);
put:
	registry_table_put(reg, c.t);
	if (ret == ST_OK && res->changed) {
		registry_tell_changed(reg, res->table);
		registry_note_change(reg, res->table);
	}
out:
	if (!c.nowait)
		registry_pool_refill(reg);
	service_list_release(&c.loaded);
	buf_release(&c.config);
	payload_release(&p);
	return ret;
}

enum status registry_try_token(struct registry *reg, const char *table,
			       const char *token, uint64_t have,
			       struct registry_result *res, struct buf *err)
{
	const unsigned read_path = STORE_CAP_ATOMIC | STORE_CAP_VERSION;
	struct registry_ctx c;
	enum status ret;

	memset(&c, 0, sizeof(c));
	c.reg = reg;
	c.res = res;
	c.nowait = 1;
	c.token = token;
	c.expect = REGISTRY_INDEX_ANY;
	c.have = have;
	c.path_table = table;
	if ((reg->caps & read_path) != read_path ||
	    !(reg->caps & STORE_CAP_NOWAIT) || have == REGISTRY_INDEX_ANY)
		return ST_NOT_FOUND;
	/* Answered by token is answered not modified (or an error). */
	if (!registry_try_digest(&c, &ret, err))
		return ST_NOT_FOUND;
	return ret;
}

void registry_result_json(const struct registry_result *res, struct buf *out)
{
	(void)buf_addstr(out, "{\"table\":");
	(void)buf_addjson(out, res->table, strlen(res->table));
	(void)buf_addstr(out, ",\"services\":");
	payload_services_json(&res->services, 0, out);
	(void)buf_addstr(out, ",\"config\":");
	(void)buf_addjson(out, res->config.buf, res->config.len);
	(void)buf_addstr(out, ",\"files\":{");
	if (res->form == RENDER_FORM_MAP) {
		(void)buf_addstr(out, "\"" RENDER_HOSTS_MAP "\":");
		(void)buf_addjson(out, res->hosts_map.buf, res->hosts_map.len);
		(void)buf_addstr(out, ",\"" RENDER_PATHS_MAP "\":");
		(void)buf_addjson(out, res->paths_map.buf, res->paths_map.len);
		(void)buf_addstr(out, "},\"mapDir\":");
		(void)buf_addjson(out, res->map_dir, strlen(res->map_dir));
	} else {
		(void)buf_addch(out, '}');
	}
	(void)buf_addch(out, '}');
}

/*
 * Reachable and, after a failed write, writable again: a store that can
 * probe is probed until a write works; one that cannot keeps reporting the
 * failure until a call's write works.
 */
enum status registry_ping(struct registry *reg, struct buf *err)
{
	struct store *st = NULL;
	enum status ret = registry_get_store(reg, &st, err);

	if (ret == ST_OK)
		ret = store_ping(st, err);
	if (ret == ST_OK && atomic_load(&reg->write_failed)) {
		if (reg->caps & STORE_CAP_PROBE) {
			ret = store_probe(st, err);
			if (ret == ST_OK)
				registry_note_write(reg, 1, NULL);
		} else {
			pthread_mutex_lock(&reg->lock);
			buf_setf(err, "the last write failed: %s",
				 reg->write_error ? reg->write_error
						  : "unknown");
			pthread_mutex_unlock(&reg->lock);
			ret = ST_UNAVAILABLE;
		}
	}
	registry_put_store(reg, st, ret != ST_OK);
	return ret;
}

enum status registry_dump(struct registry *reg, const char *table,
			  struct buf *out, struct buf *err)
{
	struct store *st = NULL;
	enum status ret;

	if (payload_check_table(table, err))
		return ST_INVALID;
	ret = registry_get_store(reg, &st, err);
	if (ret == ST_OK)
		ret = store_dump(st, table, out, err);
	registry_put_store(reg, st, ret != ST_OK);
	return ret;
}

/*
 * New fleet defaults (NULL: none) must hold with every table's overrides,
 * or they would break those tables' next calls: refuse them, naming the
 * first table they break.
 * (Two operators putting at once can still race; each put is checked
 * against what is stored when it runs.)
 */
static enum status registry_settings_check_tables(struct store *st,
						  const char *defaults,
						  struct buf *err)
{
	struct store_doc_list list;
	struct buf why = BUF_INIT;
	char *after = xstrdup("");
	enum status ret;
	size_t i;

	store_doc_list_init(&list);
	for (;;) {
		ret = store_doc_list(st, SETTINGS_KIND, after, 256, &list, err);
		if (ret != ST_OK || !list.nr)
			break;
		for (i = 0; i < list.nr; i++) {
			const struct store_doc *doc = &list.items[i];

			if (!strcmp(doc->key, SETTINGS_DEFAULT_KEY))
				continue;
			if (settings_effective(defaults, doc->value, NULL, NULL,
					       &why) == ST_OK)
				continue;
			buf_setf(err,
				 "the fleet settings would break the overrides "
				 "of "
				 "table "
				 "'%s': %s (change or delete its overrides "
				 "first)",
				 doc->key, why.buf);
			ret = ST_INVALID;
			goto out;
		}
		free(after);
		after = xstrdup(list.items[list.nr - 1].key);
		store_doc_list_release(&list);
		store_doc_list_init(&list);
	}
out:
	store_doc_list_release(&list);
	buf_release(&why);
	free(after);
	return ret;
}

enum status registry_settings_put(struct registry *reg, const char *table,
				  const char *text, size_t len, struct buf *err)
{
	char *canon = NULL, *dflt = NULL;
	struct store *st = NULL;
	enum status ret;

	if (table && payload_check_table(table, err))
		return ST_INVALID;
	ret = settings_canonical(text, len, &canon, err);
	if (ret != ST_OK)
		return ret;
	ret = registry_get_store(reg, &st, err);
	if (ret != ST_OK)
		goto out;
	/* The settings this gives must hold with what is stored beside. */
	if (table) {
		ret = registry_settings_doc(st, SETTINGS_DEFAULT_KEY, &dflt,
					    err);
		if (ret == ST_OK)
			ret = settings_effective(dflt, canon, NULL, NULL, err);
	} else {
		ret = settings_effective(canon, NULL, NULL, NULL, err);
		if (ret == ST_OK)
			ret = registry_settings_check_tables(st, canon, err);
	}
	if (ret == ST_OK)
		ret = store_doc_put(st, SETTINGS_KIND,
				    table ? table : SETTINGS_DEFAULT_KEY, canon,
				    STORE_DOC_ANY, NULL, err);
	if (ret == ST_OK) {
		registry_settings_changed(reg);
		registry_tell_changed(reg, NULL);
	}
out:
	registry_put_store(reg, st, ret != ST_OK && ret != ST_INVALID);
	free(canon);
	free(dflt);
	return ret;
}

enum status registry_settings_get(struct registry *reg, const char *table,
				  int effective, struct buf *out,
				  struct buf *err)
{
	struct store *st = NULL;
	char *text = NULL;
	enum status ret;

	if (table && payload_check_table(table, err))
		return ST_INVALID;
	ret = registry_get_store(reg, &st, err);
	if (ret != ST_OK)
		goto out;
	if (effective)
		ret = registry_settings_load(st, table, &text, NULL, err);
	else
		ret = registry_settings_doc(
			st, table ? table : SETTINGS_DEFAULT_KEY, &text, err);
	if (ret == ST_OK)
		(void)buf_addstr(out, text ? text : "{}");
out:
	registry_put_store(reg, st, ret != ST_OK && ret != ST_INVALID);
	free(text);
	return ret;
}

enum status registry_settings_delete(struct registry *reg, const char *table,
				     struct buf *err)
{
	struct store *st = NULL;
	enum status ret;

	if (table && payload_check_table(table, err))
		return ST_INVALID;
	ret = registry_get_store(reg, &st, err);
	if (ret == ST_OK && !table)
		ret = registry_settings_check_tables(st, NULL, err);
	if (ret == ST_OK)
		ret = store_doc_delete(st, SETTINGS_KIND,
				       table ? table : SETTINGS_DEFAULT_KEY,
				       err);
	if (ret == ST_OK) {
		registry_settings_changed(reg);
		registry_tell_changed(reg, NULL);
	}
	if (ret == ST_NOT_FOUND)
		buf_setf(err, "no settings are stored for %s%s%s",
			 table ? "table '" : "the fleet", table ? table : "",
			 table ? "'" : "");
	registry_put_store(reg, st,
			   ret != ST_OK && ret != ST_NOT_FOUND &&
				   ret != ST_INVALID);
	return ret;
}

/* A context for a call on `table` without a payload (`p` only names it). */
static void registry_ctx_start(struct registry_ctx *c, struct registry *reg,
			       struct payload *p, const char *table,
			       unsigned flags, struct registry_result *res)
{
	memset(c, 0, sizeof(*c));
	c->reg = reg;
	c->p = p;
	c->flags = flags;
	c->res = res;
	c->expect = REGISTRY_INDEX_ANY;
	service_list_init(&c->loaded);
	buf_init(&c->config, reg->max_config);
	payload_init(p);
	p->table = xstrdup(table);
}

static void registry_ctx_end(struct registry_ctx *c)
{
	service_list_release(&c->loaded);
	buf_release(&c->config);
	payload_release(c->p);
}

enum status registry_table_index(struct registry *reg, const char *table,
				 uint64_t *index, int *exists, struct buf *err)
{
	struct registry_result res;
	struct registry_ctx c;
	struct payload p;
	uint64_t gen = 0;
	enum status ret;

	*index = 0;
	*exists = 0;
	if (payload_check_table(table, err))
		return ST_INVALID;
	registry_result_init(&res);
	registry_ctx_start(&c, reg, &p, table, 0, &res);
	ret = registry_get_store(reg, &c.st, err);
	if (ret == ST_OK)
		ret = registry_settings_gen(&c, &gen, err);
	if (ret == ST_OK)
		ret = store_begin(c.st, table, 0, err);
	if (ret == ST_OK) {
		ret = store_version(c.st, &c.version, err);
		store_rollback(c.st);
	}
	if (ret == ST_OK) {
		*index = c.version + gen;
		*exists = c.version != 0;
	}
	registry_put_store(reg, c.st, ret != ST_OK);
	registry_ctx_end(&c);
	registry_result_release(&res);
	return ret;
}

/* The counts and latest time of `services` into the result. */
static void registry_count(struct registry_result *res,
			   const struct service_list *services)
{
	size_t i;

	res->nr_services = services->nr;
	res->nr_servers = 0;
	res->updated_at = 0;
	for (i = 0; i < services->nr; i++) {
		res->nr_servers += services->items[i].nr_containers;
		if (services->items[i].updated_at > res->updated_at)
			res->updated_at = services->items[i].updated_at;
	}
}

/*
 * The read path of a call without a payload: the cache when it is at the
 * store's version, else a load and a render that fill it, as an unchanged
 * call would.
 */
enum status registry_table_read(struct registry *reg, const char *table,
				unsigned flags, struct registry_result *res,
				struct buf *err)
{
	struct service_list *stored;
	struct registry_ctx c;
	struct payload p;
	enum status ret;

	if (payload_check_table(table, err))
		return ST_INVALID;
	registry_ctx_start(&c, reg, &p, table, flags, res);
	res->table = xstrdup(table);
	c.t = registry_table_get(reg, table);
	pthread_rwlock_wrlock(&c.t->lock);
	ret = registry_get_store(reg, &c.st, err);
	if (ret == ST_OK)
		ret = registry_table_settings(&c, err);
	if (ret != ST_OK)
		goto unlock;
	stored = registry_begin(&c, 0, &ret, err);
	if (!stored)
		goto unlock;
	store_rollback(c.st);
	if (!c.version) {
		buf_setf(err, "nothing is stored for table '%s'", table);
		ret = ST_NOT_FOUND;
		goto unlock;
	}
	registry_count(res, stored);
	res->index = c.version + c.t->settings_gen;
	if (c.hit) {
		registry_table_touch(reg, c.t);
		registry_answer(&c, c.t->config, &c.t->services);
	} else {
		ret = registry_render(&c, stored, err);
		if (ret != ST_OK)
			goto unlock;
		c.have_loaded = 0; /* taken over by the cache */
		registry_publish(&c, stored);
	}
	if (flags & REGISTRY_WANT_FILES)
		ret = registry_files(&c, err);
unlock:
	if (ret != ST_OK)
		registry_result_reset(res);
	registry_put_store(reg, c.st,
			   ret != ST_OK && ret != ST_NOT_FOUND &&
				   ret != ST_TOO_LARGE);
	pthread_rwlock_unlock(&c.t->lock);
	registry_table_put(reg, c.t);
	registry_ctx_end(&c);
	return ret;
}

enum status registry_table_names(struct registry *reg, const char *after,
				 size_t limit, char ***names, size_t *nr,
				 struct buf *err)
{
	struct store_name_list list;
	struct store *st = NULL;
	enum status ret;

	store_name_list_init(&list);
	ret = registry_get_store(reg, &st, err);
	if (ret == ST_OK)
		ret = store_table_list(st, after, limit, &list, err);
	registry_put_store(reg, st, ret != ST_OK);
	if (ret != ST_OK)
		store_name_list_release(&list);
	*names = list.items;
	*nr = list.nr;
	return ret;
}

enum status registry_report_put(struct registry *reg, const char *table,
				const char *agent, struct report *r,
				struct buf *err)
{
	struct store *st = NULL;
	enum status ret = registry_get_store(reg, &st, err);

	if (ret == ST_OK)
		ret = report_cache_put(reg->reports, st, table, agent, r, err);
	registry_put_store(reg, st, ret != ST_OK);
	return ret;
}

enum status registry_reports(struct registry *reg, struct store_doc_list *out,
			     struct buf *err)
{
	struct store *st = NULL;
	enum status ret = registry_get_store(reg, &st, err);

	if (ret == ST_OK)
		ret = report_cache_list(reg->reports, st, out, err);
	registry_put_store(reg, st, ret != ST_OK);
	return ret;
}

enum status registry_changes_per_hour(struct registry *reg, const char *table,
				      uint64_t out[CHANGES_HOURS],
				      struct buf *err)
{
	struct store *st = NULL;
	enum status ret = registry_get_store(reg, &st, err);

	memset(out, 0, CHANGES_HOURS * sizeof(*out));
	/* This process's own changes show at once. */
	registry_flush_changes(reg, 0);
	if (ret == ST_OK)
		ret = changes_per_hour(st, table, (int64_t)clock_real_ms(), out,
				       err);
	registry_put_store(reg, st, ret != ST_OK);
	return ret;
}

enum status registry_view(struct registry *reg, const char *table,
			  struct service_list *services, uint64_t *version,
			  struct buf *config, struct buf *err)
{
	struct render_options opts = reg->render;
	struct settings settings;
	struct store *st = NULL;
	enum status ret;

	*version = 0;
	settings_init(&settings);
	if (payload_check_table(table, err))
		return ST_INVALID;
	ret = registry_get_store(reg, &st, err);
	if (ret != ST_OK)
		goto out;
	ret = store_begin(st, table, 0, err);
	if (ret != ST_OK)
		goto out;
	if (reg->caps & STORE_CAP_VERSION)
		ret = store_version(st, version, err);
	if (ret == ST_OK)
		ret = store_load(st, services, err);
	store_rollback(st);
	if (ret == ST_OK)
		ret = registry_settings_load(st, table, NULL, &settings, err);
	if (ret != ST_OK)
		goto out;
	opts.settings = &settings;
	opts.table = table;
	opts.form = render_form(&settings, 0);
	render_config(services, &opts, config);
	if (buf_overflowed(config)) {
		buf_setf(err, "the config of table '%s' is over its cap",
			 table);
		ret = ST_TOO_LARGE;
	}
out:
	registry_put_store(reg, st,
			   ret != ST_OK && ret != ST_TOO_LARGE &&
				   ret != ST_INVALID);
	settings_release(&settings);
	return ret;
}
