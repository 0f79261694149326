/*
 * One registry call end to end, and the per-table cache that lets an
 * unchanged call skip loading and rendering: the cache is trusted only while
 * the store's table version is the one it was filled at.
 */
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "merge.h"
#include "payload.h"
#include "store/store.h"
#include "xalloc.h"
#include "banned.h"

#define REGISTRY_BUCKETS      256
#define REGISTRY_MAX_CACHED   4096
#define REGISTRY_MAX_ATTEMPTS 8

/* A rendered config, shared read-only by the cache and the answers in flight.
 */
struct registry_share {
	atomic_uint refs;
	size_t len, alloc;
	char *data;
};

struct registry_table {
	struct registry_table *next;
	char *name;
	/* one call at a time on a table, in this process */
	pthread_mutex_t lock;
	int cached;
	uint64_t version;
	struct service_list services;
	struct registry_share *config;
	/* The last call wrote: the next one likely will too, so it starts
	 * with the write lock instead of a read attempt. */
	int wrote_last;
};

struct registry {
	char *store_spec;
	char *frontend_bind;
	struct render_options render;
	unsigned caps;
	pthread_mutex_t lock; /* guards the pool and the table map */
	/* Writers of this process take turns here before the store's own
	 * lock: SQLite's busy handler waits by sleeping (up to 100 ms a
	 * time), a mutex hands over at once. */
	pthread_mutex_t write_lock;
	struct store **pool;
	size_t nr_pool, alloc_pool;
	struct registry_table *buckets[REGISTRY_BUCKETS];
	size_t nr_cached;
	/* A write failed and none has worked since: why (guarded by lock). */
	atomic_int write_failed;
	char *write_error;
};

static int64_t registry_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	share->alloc = config->alloc;
	share->data = buf_detach(config, &share->len);
	return share;
}

/*
 * Release `share`; when this was the last reference, its memory becomes
 * the (empty) buffer `out`, so that the next render reuses pages already
 * in place instead of faulting in new ones. Only the holder of a table's
 * lock can know it holds the last reference of that table's config.
 */
static void registry_share_recycle(struct registry_share *share,
				   struct buf *out)
{
	if (!share)
		return;
	if (atomic_load(&share->refs) == 1 && share->alloc) {
		out->buf = share->data;
		out->alloc = share->alloc;
		buf_setlen(out, 0);
		free(share);
		return;
	}
	registry_share_release(share);
}

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

static unsigned registry_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % REGISTRY_BUCKETS;
}

static struct registry_table *registry_table_get(struct registry *reg,
						 const char *name)
{
	struct registry_table **slot, *t;

	pthread_mutex_lock(&reg->lock);
	slot = &reg->buckets[registry_hash(name)];
	for (t = *slot; t; t = t->next)
		if (!strcmp(t->name, name))
			break;
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->name = xstrdup(name);
		pthread_mutex_init(&t->lock, NULL);
		t->next = *slot;
		*slot = t;
	}
	pthread_mutex_unlock(&reg->lock);
	return t;
}

static void registry_table_forget(struct registry *reg,
				  struct registry_table *t)
{
	if (!t->cached)
		return;
	service_list_release(&t->services);
	registry_share_release(t->config);
	t->config = NULL;
	t->cached = 0;
	pthread_mutex_lock(&reg->lock);
	reg->nr_cached--;
	pthread_mutex_unlock(&reg->lock);
}

/* Take over `services`, and a reference to `config`, as the table's state
 * at `version`. */
static void registry_table_fill(struct registry *reg, struct registry_table *t,
				uint64_t version, struct service_list *services,
				struct registry_share *config)
{
	int room;

	registry_table_forget(reg, t);
	pthread_mutex_lock(&reg->lock);
	room = reg->nr_cached < REGISTRY_MAX_CACHED;
	if (room)
		reg->nr_cached++;
	pthread_mutex_unlock(&reg->lock);
	if (!room)
		return;
	t->services = *services;
	service_list_init(services);
	t->config = registry_share_ref(config);
	t->version = version;
	t->cached = 1;
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
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->write_lock, NULL);
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

void registry_free(struct registry *reg)
{
	size_t i;

	if (!reg)
		return;
	for (i = 0; i < reg->nr_pool; i++)
		store_close(reg->pool[i]);
	free(reg->pool);
	for (i = 0; i < REGISTRY_BUCKETS; i++) {
		struct registry_table *t = reg->buckets[i], *next;

		for (; t; t = next) {
			next = t->next;
			service_list_release(&t->services);
			registry_share_release(t->config);
			pthread_mutex_destroy(&t->lock);
			free(t->name);
			free(t);
		}
	}
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
}

void registry_result_release(struct registry_result *res)
{
	free(res->table);
	buf_release(&res->config);
	registry_share_release(res->share);
	service_list_release(&res->services);
	registry_result_init(res);
}

/* Put `config` into the result: a reference, or a copy in res->config. */
static void registry_answer(struct registry_result *res,
			    struct registry_share *config, unsigned flags)
{
	if (flags & REGISTRY_SHARE_CONFIG)
		res->share = registry_share_ref(config);
	else
		(void)buf_add(&res->config, config->data, config->len);
}

/* Forget a partial answer before a retry or after a failure. */
static void registry_result_reset(struct registry_result *res)
{
	buf_reset(&res->config);
	registry_share_release(res->share);
	res->share = NULL;
	service_list_release(&res->services);
}

/* The outcome of one attempt at a call. */
enum registry_attempt {
	ATTEMPT_DONE,
	ATTEMPT_NEED_WRITE, /* a read-only attempt found changes to write */
	ATTEMPT_FAILED,
};

static enum registry_attempt
registry_attempt(struct registry *reg, struct store *st,
		 struct registry_table *t, struct payload *p, int write,
		 unsigned flags, struct registry_result *res, enum status *ret,
		 struct buf *err)
{
	const int versioned = (reg->caps & STORE_CAP_VERSION) != 0;
	struct service_list loaded;
	struct service_list *stored = &loaded;
	unsigned mflags = MERGE_MOVE;
	int64_t now = registry_now_ms();
	const int atomic = (reg->caps & STORE_CAP_ATOMIC) != 0;
	struct merge_result m;
	int cache_hit, full = 1;
	enum registry_attempt outcome = ATTEMPT_FAILED;
	uint64_t version = 0;
	size_t i;

	service_list_init(&loaded);
	merge_result_init(&m);
	*ret = store_begin(st, p->table, write, err);
	if (*ret != ST_OK)
		goto out;
	if (versioned) {
		*ret = store_version(st, &version, err);
		if (*ret != ST_OK)
			goto fail;
	}
	cache_hit = versioned && t->cached && t->version == version;
	if (cache_hit) {
		stored = &t->services;
	} else {
		registry_table_forget(reg, t);
		*ret = store_load(st, &loaded, err);
		if (*ret != ST_OK)
			goto fail;
	}
	/*
	 * A read-only attempt first only finds out whether anything changes:
	 * enough for an unchanged call on the cache, and when it finds changes
	 * (the call is redone for writing). Otherwise merge in full, moving
	 * the stored services over instead of copying them; the writing
	 * attempt on an atomic store also takes the payload's candidates over,
	 * as nothing will merge that payload again.
	 */
	if (atomic && !write) {
		merge_apply_flags(stored, p, now, MERGE_CHECK, &m);
		if (cache_hit || m.nr_changed || m.removed.nr) {
			mflags = MERGE_CHECK;
			full = 0;
		} else {
			merge_result_release(&m);
		}
	}
	if (full) {
		if (write && atomic)
			mflags |= MERGE_TAKE;
		merge_apply_flags(stored, p, now, mflags, &m);
		/* What is left of a taken payload is not needed any more:
		 * give its memory back before the config is rendered. */
		if (mflags & MERGE_TAKE)
			payload_release(p);
	}
	res->changed = m.nr_changed || m.removed.nr;

	if (res->changed && !write && (reg->caps & STORE_CAP_ATOMIC)) {
		store_rollback(st);
		outcome = ATTEMPT_NEED_WRITE;
		goto out;
	}
	for (i = 0; *ret == ST_OK && i < m.removed.nr; i++)
		*ret = store_remove(st, &m.removed.items[i], err);
	for (i = 0; *ret == ST_OK && i < m.nr_changed; i++)
		*ret = store_put(st, &m.services.items[m.changed[i]], err);
	if (*ret == ST_OK && versioned && res->changed)
		*ret = store_version(st, &version, err);
	if (*ret != ST_OK)
		goto fail;
	*ret = store_commit(st, err);
	if (*ret != ST_OK)
		goto out;

	/* The answer: the cached bytes when nothing changed, else a new render.
	 */
	if (cache_hit && !res->changed) {
		/* A full merge moved the cached services out; unchanged, they
		 * go back as they were. */
		if (!(mflags & MERGE_CHECK)) {
			service_list_release(&t->services);
			t->services = m.services;
			service_list_init(&m.services);
		}
		registry_answer(res, t->config, flags);
		if (flags & REGISTRY_WANT_SERVICES)
			service_list_copy(&res->services, &t->services);
	} else {
		struct buf config = BUF_INIT;
		struct registry_share *share;

		registry_share_recycle(t->config, &config); /* replaced below */
		t->config = NULL;
		render_config(&m.services, &reg->render, &config);
		share = registry_share_new(&config);
		registry_answer(res, share, flags);
		if (flags & REGISTRY_WANT_SERVICES)
			service_list_copy(&res->services, &m.services);
		if (versioned)
			registry_table_fill(reg, t, version, &m.services,
					    share);
		registry_share_release(share);
	}
	outcome = ATTEMPT_DONE;
	goto out;
fail:
	store_rollback(st);
out:
	if (outcome == ATTEMPT_FAILED)
		registry_table_forget(reg, t);
	merge_result_release(&m);
	service_list_release(&loaded);
	return outcome;
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

enum status registry_call(struct registry *reg, const char *json, size_t len,
			  unsigned flags, struct registry_result *res,
			  struct buf *err, struct buf *field)
{
	return registry_call_table(reg, NULL, json, len, flags, res, err,
				   field);
}

enum status registry_call_table(struct registry *reg, const char *table,
				const char *json, size_t len, unsigned flags,
				struct registry_result *res, struct buf *err,
				struct buf *field)
{
	struct registry_table *t = NULL;
	struct store *st = NULL;
	struct payload p;
	enum status ret;
	unsigned attempt;
	int write = 0;

	payload_init(&p);
	ret = payload_parse_table(&p, table, json, len, err, field);
	if (ret != ST_OK)
		goto out;
	res->table = xstrdup(p.table);
	t = registry_table_get(reg, p.table);
	pthread_mutex_lock(&t->lock);
	write = t->wrote_last && (reg->caps & STORE_CAP_ATOMIC);
	ret = registry_get_store(reg, &st, err);
	if (ret != ST_OK)
		goto unlock;
	for (attempt = 0; attempt < REGISTRY_MAX_ATTEMPTS; attempt++) {
		enum registry_attempt outcome;

		registry_result_reset(res);
		if (write && !(reg->caps & STORE_CAP_TABLE_LOCKS))
			pthread_mutex_lock(&reg->write_lock);
		outcome = registry_attempt(reg, st, t, &p, write, flags, res,
					   &ret, err);
		if (write && !(reg->caps & STORE_CAP_TABLE_LOCKS))
			pthread_mutex_unlock(&reg->write_lock);
		if (outcome == ATTEMPT_NEED_WRITE) {
			write = 1;
			continue;
		}
		if (outcome == ATTEMPT_DONE)
			t->wrote_last = res->changed;
		if (outcome == ATTEMPT_DONE || ret != ST_CONFLICT)
			break;
		/* That attempt may have taken the payload apart (MERGE_TAKE).
		 */
		if (write && (reg->caps & STORE_CAP_ATOMIC)) {
			payload_release(&p);
			ret = payload_parse_table(&p, table, json, len, err,
						  field);
			if (ret != ST_OK)
				break;
		}
		/* Another writer won a conditional write: back off a little,
		 * with jitter, then load and merge again. */
		{
			struct timespec ts = {
				0, (long)(1000000L
					  << (attempt < 6 ? attempt : 6)) /
						   2 +
					   (long)(rand() % 1000000)};
			nanosleep(&ts, NULL);
		}
	}
	if (attempt == REGISTRY_MAX_ATTEMPTS) {
		buf_setf(err,
			 "table '%s' kept changing under this call; try again",
			 res->table);
		ret = ST_UNAVAILABLE;
	}
	if (ret == ST_UNAVAILABLE && (write || res->changed))
		registry_note_write(reg, 0, err->buf);
	else if (ret == ST_OK && res->changed)
		registry_note_write(reg, 1, NULL);
	if (ret != ST_OK)
		registry_result_reset(res);
	registry_put_store(reg, st, ret != ST_OK);
unlock:
	pthread_mutex_unlock(&t->lock);
out:
	payload_release(&p);
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
