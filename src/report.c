/* Agent reports: validation, their one JSON form, and the bounded copy of
 * the last ones kept in memory over the store. */
#include "report.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "store/store.h"
#include "xalloc.h"
#include "banned.h"

/* Counts and indexes above this are refused as nonsense. */
#define REPORT_MAX_NUMBER ((json_int_t)1 << 53)

static const char *const report_methods[] = {"noop", "runtime", "reload"};

/* A member that must be a whole number in [0, REPORT_MAX_NUMBER]. */
static int report_number(json_t *root, const char *key, uint64_t *out,
			 struct buf *err)
{
	json_t *v = json_object_get(root, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > REPORT_MAX_NUMBER) {
		buf_setf(err, "must be a whole number from 0 to 2^53");
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* A member that must be a string of 1..max bytes each accepted by `ok`. */
static int report_text(json_t *root, const char *key, char *out, size_t max,
		       int (*ok)(int c), const char *what, struct buf *err)
{
	json_t *v = json_object_get(root, key);
	const char *s;
	size_t len, i;

	if (!json_is_string(v)) {
		buf_setf(err, "must be a string");
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (!len || len > max) {
		buf_setf(err, "must be 1 to %zu characters", max);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (!ok((unsigned char)s[i])) {
			buf_setf(err, "must be %s", what);
			return -1;
		}
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

static int report_result_char(int c)
{
	return (c >= 'a' && c <= 'z') || c == '_';
}

static int report_version_char(int c)
{
	return c > ' ' && c < 127;
}

enum status report_parse(const char *json, size_t len, struct report *out,
			 struct buf *err, struct buf *field)
{
	json_error_t jerr;
	json_t *root, *v;
	enum status st = ST_INVALID;
	size_t i;

	memset(out, 0, sizeof(*out));
	buf_reset(field);
	root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		buf_setf(err, "must be a JSON object");
		goto out;
	}
	buf_setf(field, "appliedIndex");
	if (report_number(root, "appliedIndex", &out->applied_index, err))
		goto out;
	buf_setf(field, "method");
	v = json_object_get(root, "method");
	for (i = 0; json_is_string(v) && i < ARRAY_SIZE(report_methods); i++)
		if (!strcmp(json_string_value(v), report_methods[i]))
			out->method = report_methods[i];
	if (!out->method) {
		buf_setf(err, "must be noop, runtime or reload");
		goto out;
	}
	buf_setf(field, "result");
	if (report_text(root, "result", out->result, sizeof(out->result) - 1,
			report_result_char, "lower-case letters and '_'", err))
		goto out;
	buf_setf(field, "haproxyVersion");
	if (report_text(root, "haproxyVersion", out->haproxy_version,
			sizeof(out->haproxy_version) - 1, report_version_char,
			"printable ASCII without spaces", err))
		goto out;
	buf_setf(field, "up");
	if (report_number(root, "up", &out->up, err))
		goto out;
	buf_setf(field, "down");
	if (report_number(root, "down", &out->down, err))
		goto out;
	/* Only in what the registry stored; it sets its own on a put. */
	v = json_object_get(root, "receivedAt");
	if (json_is_integer(v))
		out->received_ms = (int64_t)json_integer_value(v);
	buf_reset(field);
	st = ST_OK;
out:
	json_decref(root);
	return st;
}

void report_json(const struct report *r, struct buf *out)
{
	(void)buf_addf(out, "{\"appliedIndex\":%llu,\"method\":\"%s\"",
		       (unsigned long long)r->applied_index, r->method);
	(void)buf_addstr(out, ",\"result\":");
	(void)buf_addjson(out, r->result, strlen(r->result));
	(void)buf_addstr(out, ",\"haproxyVersion\":");
	(void)buf_addjson(out, r->haproxy_version, strlen(r->haproxy_version));
	(void)buf_addf(out, ",\"up\":%llu,\"down\":%llu,\"receivedAt\":%lld}",
		       (unsigned long long)r->up, (unsigned long long)r->down,
		       (long long)r->received_ms);
}

struct report_cache {
	size_t max_agents, max_table;
	pthread_mutex_t lock;	    /* guards everything below */
	struct store_doc_list docs; /* sorted by key */
	uint64_t generation;	    /* of the kind, when docs were listed */
	uint64_t checked_ms;	    /* clock_now_ms of the last check */
	int loaded;
};

struct report_cache *report_cache_new(size_t max_agents, size_t max_table)
{
	struct report_cache *c = xcalloc(1, sizeof(*c));

	c->max_agents = max_agents;
	c->max_table = max_table;
	pthread_mutex_init(&c->lock, NULL);
	store_doc_list_init(&c->docs);
	return c;
}

void report_cache_free(struct report_cache *c)
{
	if (!c)
		return;
	store_doc_list_release(&c->docs);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Whether `key` ("TABLE/AGENT") is about `table` (`len` bytes). */
static int report_key_in(const char *key, const char *table, size_t len)
{
	return !strncmp(key, table, len) && key[len] == '/';
}

/*
 * The index in `docs` of the report a new agent of `table` displaces, or -1
 * when there is room: the table's oldest when the table is at its cap, else
 * the oldest of all when all are at theirs. Oldest is the earliest stored,
 * ties broken by key.
 */
static long report_victim(const struct store_doc_list *docs, const char *table,
			  size_t max_agents, size_t max_table)
{
	size_t len = strlen(table), in_table = 0, i;
	long oldest = -1, oldest_table = -1;

	for (i = 0; i < docs->nr; i++) {
		const struct store_doc *d = &docs->items[i];

		if (oldest < 0 ||
		    d->updated_at < docs->items[oldest].updated_at)
			oldest = (long)i;
		if (!report_key_in(d->key, table, len))
			continue;
		in_table++;
		if (oldest_table < 0 ||
		    d->updated_at < docs->items[oldest_table].updated_at)
			oldest_table = (long)i;
	}
	if (in_table >= max_table)
		return oldest_table;
	return docs->nr >= max_agents ? oldest : -1;
}

static void report_docs_remove(struct store_doc_list *docs, size_t i)
{
	store_doc_release(&docs->items[i]);
	memmove(&docs->items[i], &docs->items[i + 1],
		(docs->nr - i - 1) * sizeof(*docs->items));
	docs->nr--;
}

/* The index of `key` in sorted `docs`, or where it would go (`*found` 0). */
static size_t report_docs_find(const struct store_doc_list *docs,
			       const char *key, int *found)
{
	size_t lo = 0, hi = docs->nr;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(docs->items[mid].key, key);

		if (!cmp) {
			*found = 1;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Make room in the store for a new agent of `table`. */
static enum status report_evict_stored(struct report_cache *c, struct store *st,
				       const char *table, struct buf *err)
{
	struct store_doc_list docs;
	enum status ret;
	long victim;

	store_doc_list_init(&docs);
	/* Past the cap by what racing processes may have added at once. */
	ret = store_doc_list(st, REPORT_KIND, "", c->max_agents * 2, &docs,
			     err);
	while (ret == ST_OK &&
	       (victim = report_victim(&docs, table, c->max_agents,
				       c->max_table)) >= 0) {
		ret = store_doc_delete(st, REPORT_KIND, docs.items[victim].key,
				       err);
		/* Another process deleted it first: just as good. */
		if (ret == ST_NOT_FOUND) {
			buf_reset(err);
			ret = ST_OK;
		}
		report_docs_remove(&docs, (size_t)victim);
	}
	store_doc_list_release(&docs);
	return ret;
}

/* The stored report as memory keeps it (the caller holds the lock). */
static void report_remember(struct report_cache *c, const char *table,
			    const char *key, const char *json, uint64_t version,
			    int64_t at)
{
	struct store_doc *d;
	size_t i;
	long victim;
	int found;

	i = report_docs_find(&c->docs, key, &found);
	if (!found) {
		while ((victim = report_victim(&c->docs, table, c->max_agents,
					       c->max_table)) >= 0) {
			report_docs_remove(&c->docs, (size_t)victim);
			if ((size_t)victim < i)
				i--;
		}
		(void)store_doc_list_append(&c->docs);
		memmove(&c->docs.items[i + 1], &c->docs.items[i],
			(c->docs.nr - i - 1) * sizeof(*c->docs.items));
		memset(&c->docs.items[i], 0, sizeof(*c->docs.items));
		c->docs.items[i].key = xstrdup(key);
	}
	d = &c->docs.items[i];
	free(d->value);
	d->value = xstrdup(json);
	d->version = version;
	d->updated_at = at;
}

enum status report_cache_put(struct report_cache *c, struct store *st,
			     const char *table, const char *agent,
			     struct report *r, struct buf *err)
{
	struct buf key = BUF_INIT, json = BUF_INIT;
	struct store_doc doc = {0};
	uint64_t version = 0;
	enum status ret;

	(void)buf_addf(&key, "%s/%s", table, agent);
	r->received_ms = (int64_t)clock_real_ms();
	report_json(r, &json);
	ret = store_doc_get(st, REPORT_KIND, key.buf, &doc, err);
	if (ret == ST_NOT_FOUND) {
		buf_reset(err);
		ret = report_evict_stored(c, st, table, err);
	}
	if (ret == ST_OK)
		ret = store_doc_put(st, REPORT_KIND, key.buf, json.buf,
				    STORE_DOC_ANY, &version, err);
	if (ret != ST_OK)
		goto out;
	pthread_mutex_lock(&c->lock);
	/* Evictions and other processes moved the generation: the next
	 * check lists again, and finds this report there too. */
	if (c->loaded)
		report_remember(c, table, key.buf, json.buf, version,
				r->received_ms);
	pthread_mutex_unlock(&c->lock);
out:
	store_doc_release(&doc);
	buf_release(&key);
	buf_release(&json);
	return ret;
}

static void report_docs_copy(const struct store_doc_list *from,
			     struct store_doc_list *to)
{
	size_t i;

	for (i = 0; i < from->nr; i++) {
		struct store_doc *d = store_doc_list_append(to);

		d->key = xstrdup(from->items[i].key);
		d->value = xstrdup(from->items[i].value);
		d->version = from->items[i].version;
		d->updated_at = from->items[i].updated_at;
	}
}

enum status report_cache_list(struct report_cache *c, struct store *st,
			      struct store_doc_list *out, struct buf *err)
{
	struct store_doc_list docs;
	uint64_t now = clock_now_ms(), gen;
	enum status ret = ST_OK;

	store_doc_list_init(&docs);
	pthread_mutex_lock(&c->lock);
	if (c->loaded && now - c->checked_ms < REPORT_FRESH_MS)
		goto copy;
	pthread_mutex_unlock(&c->lock);
	/* The generation before the listing: a put between them only makes
	 * the next check list again. */
	ret = store_doc_generation(st, REPORT_KIND, &gen, err);
	pthread_mutex_lock(&c->lock);
	if (ret != ST_OK || (c->loaded && gen == c->generation))
		goto checked;
	pthread_mutex_unlock(&c->lock);
	ret = store_doc_list(st, REPORT_KIND, "", c->max_agents, &docs, err);
	pthread_mutex_lock(&c->lock);
	if (ret != ST_OK)
		goto checked;
	store_doc_list_release(&c->docs);
	c->docs = docs;
	store_doc_list_init(&docs);
	c->generation = gen;
	c->loaded = 1;
checked:
	if (ret == ST_OK)
		c->checked_ms = now;
copy:
	if (ret == ST_OK)
		report_docs_copy(&c->docs, out);
	pthread_mutex_unlock(&c->lock);
	store_doc_list_release(&docs);
	return ret;
}
