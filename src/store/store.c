/*
 * Store lookup by spec, the store_*() wrappers (the one place that counts
 * and times store operations for every backend), and the generic dump.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../metrics.h"
#include "../payload.h"
#include "../xalloc.h"
#include "../banned.h"

static const struct store_backend *const store_backends[] = {
	&store_sqlite,
	&store_dynamodb,
	&store_postgres,
};

enum status store_open(const char *spec, struct store **out, struct buf *err)
{
	const char *colon = strchr(spec, ':');
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	struct buf shown = BUF_INIT;
	size_t i;

	*out = NULL;
	for (i = 0; i < ARRAY_SIZE(store_backends); i++) {
		const struct store_backend *be = store_backends[i];

		if (strlen(be->name) == len && !strncmp(be->name, spec, len))
			return be->open(colon ? colon + 1 : "", out, err);
	}
	/* Not even the name is known: the spec may hold a password. */
	store_spec_redact(spec, &shown);
	buf_setf(err,
		 "unknown store '%s' (want sqlite:PATH, dynamodb, "
		 "dynamodb:PREFIX or postgres:CONNINFO)",
		 shown.buf);
	buf_release(&shown);
	return ST_USAGE;
}

void store_spec_redact(const char *spec, struct buf *out)
{
	const char *p = spec;
	const char *scheme = strstr(spec, "://");

	while (*p) {
		size_t skip = 0;

		if (!strncmp(p, "password=", 9)) {
			(void)buf_addstr(out, "password=***");
			skip = 9;
			if (p[skip] == '\'') {
				for (skip++; p[skip] && p[skip] != '\''; skip++)
					if (p[skip] == '\\' && p[skip + 1])
						skip++;
				if (p[skip])
					skip++;
			} else {
				while (p[skip] && p[skip] != ' ' &&
				       p[skip] != '&')
					skip++;
			}
		} else if (scheme && p == scheme + 3) {
			/* "user:password@host": the last '@' before the path */
			const char *end = p + strcspn(p, "/?");
			const char *at = NULL, *q, *colon;

			for (q = p; q < end; q++)
				if (*q == '@')
					at = q;
			colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
			if (colon) {
				(void)buf_add(out, p, (size_t)(colon - p));
				(void)buf_addstr(out, ":***");
				p = at;
				continue;
			}
			(void)buf_addch(out, *p);
			skip = 1;
		} else {
			(void)buf_addch(out, *p);
			skip = 1;
		}
		p += skip;
	}
}

/* Count and time one operation that began at `start` (clock_now_us). */
static enum status store_note(const struct store *st, const char *op,
			      uint64_t start, enum status ret,
			      const struct buf *err)
{
	const char *be = st->be->name;

	metrics_counter_add(&metrics_store_operations,
			    (const char *const[]){be, op, status_name(ret)}, 1);
	metrics_observe_us(&metrics_store_duration,
			   (const char *const[]){be, op},
			   clock_now_us() - start);
	if (ret == ST_UNAVAILABLE || ret == ST_INTERNAL)
		metrics_note_store_error(be, op, err ? err->buf : "");
	return ret;
}

void store_close(struct store *st)
{
	if (st)
		st->be->close(st);
}

unsigned store_caps(const struct store *st)
{
	return st->be->caps;
}

const char *store_name(const struct store *st)
{
	return st->be->name;
}

enum status store_begin(struct store *st, const char *table, int write,
			struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "begin", start,
			  st->be->begin(st, table, write, err), err);
}

enum status store_version(struct store *st, uint64_t *version, struct buf *err)
{
	uint64_t start = clock_now_us();

	if (!(st->be->caps & STORE_CAP_VERSION))
		BUG("store '%s' has no table version", st->be->name);
	return store_note(st, "version", start,
			  st->be->version(st, version, err), err);
}

enum status store_load(struct store *st, struct service_list *out,
		       struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "load", start, st->be->load(st, out, err), err);
}

enum status store_put(struct store *st, struct service *svc, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "put", start, st->be->put(st, svc, err), err);
}

enum status store_remove(struct store *st, const struct service *svc,
			 struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "remove", start, st->be->remove(st, svc, err),
			  err);
}

enum status store_commit(struct store *st, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "commit", start, st->be->commit(st, err), err);
}

void store_rollback(struct store *st)
{
	st->be->rollback(st);
}

enum status store_ping(struct store *st, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "ping", start, st->be->ping(st, err), err);
}

void store_nowait(struct store *st, int on)
{
	if (!(st->be->caps & STORE_CAP_NOWAIT))
		BUG("store '%s' cannot be told not to wait", st->be->name);
	st->be->nowait(st, on);
}

enum status store_probe(struct store *st, struct buf *err)
{
	uint64_t start = clock_now_us();

	if (!(st->be->caps & STORE_CAP_PROBE))
		return store_note(st, "ping", start, st->be->ping(st, err),
				  err);
	return store_note(st, "probe", start, st->be->probe(st, err), err);
}

void store_containers_text(const struct service *svc, struct buf *out)
{
	size_t i;

	for (i = 0; i < svc->nr_containers; i++)
		(void)buf_addf(out, "%s %s\n", svc->containers[i].id,
			       svc->containers[i].ip);
}

int store_containers_parse(struct service *svc, const char *text)
{
	while (*text) {
		const char *sp = strchr(text, ' ');
		const char *nl = sp ? strchr(sp, '\n') : NULL;
		char *id, *ip;

		if (!sp || !nl || sp == text || nl == sp + 1)
			return -1;
		id = xstrndup(text, (size_t)(sp - text));
		ip = xstrndup(sp + 1, (size_t)(nl - sp - 1));
		service_put_container(svc, id, ip);
		free(id);
		free(ip);
		text = nl + 1;
	}
	return 0;
}

void store_doc_release(struct store_doc *doc)
{
	free(doc->key);
	free(doc->value);
	memset(doc, 0, sizeof(*doc));
}

void store_doc_list_init(struct store_doc_list *list)
{
	memset(list, 0, sizeof(*list));
}

void store_doc_list_release(struct store_doc_list *list)
{
	size_t i;

	for (i = 0; i < list->nr; i++)
		store_doc_release(&list->items[i]);
	free(list->items);
	store_doc_list_init(list);
}

struct store_doc *store_doc_list_append(struct store_doc_list *list)
{
	struct store_doc *doc;

	if (list->nr == list->alloc) {
		list->alloc = list->alloc ? list->alloc * 2 : 8;
		list->items = xrealloc(list->items,
				       list->alloc * sizeof(*list->items));
	}
	doc = &list->items[list->nr++];
	memset(doc, 0, sizeof(*doc));
	return doc;
}

enum status store_doc_get(struct store *st, const char *kind, const char *key,
			  struct store_doc *out, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "doc_get", start,
			  st->be->doc_get(st, kind, key, out, err), err);
}

enum status store_doc_put(struct store *st, const char *kind, const char *key,
			  const char *value, uint64_t expect, uint64_t *version,
			  struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(
		st, "doc_put", start,
		st->be->doc_put(st, kind, key, value, expect, version, err),
		err);
}

enum status store_doc_delete(struct store *st, const char *kind,
			     const char *key, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "doc_delete", start,
			  st->be->doc_delete(st, kind, key, err), err);
}

enum status store_doc_list(struct store *st, const char *kind,
			   const char *after, size_t limit,
			   struct store_doc_list *out, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "doc_list", start,
			  st->be->doc_list(st, kind, after, limit, out, err),
			  err);
}

enum status store_doc_generation(struct store *st, const char *kind,
				 uint64_t *generation, struct buf *err)
{
	uint64_t start = clock_now_us();

	return store_note(st, "doc_generation", start,
			  st->be->doc_generation(st, kind, generation, err),
			  err);
}

void store_name_list_init(struct store_name_list *list)
{
	memset(list, 0, sizeof(*list));
}

void store_name_list_release(struct store_name_list *list)
{
	size_t i;

	for (i = 0; i < list->nr; i++)
		free(list->items[i]);
	free(list->items);
	store_name_list_init(list);
}

void store_name_list_add(struct store_name_list *list, const char *name,
			 size_t len)
{
	ALLOC_GROW(list->items, list->nr + 1, list->alloc);
	list->items[list->nr++] = xstrndup(name, len);
}

enum status store_table_list(struct store *st, const char *after, size_t limit,
			     struct store_name_list *out, struct buf *err)
{
	return st->be->table_list(st, after ? after : "", limit, out, err);
}

enum status store_hints(struct store *st, unsigned timeout_ms,
			struct store_name_list *out, int *all, struct buf *err)
{
	if (!(st->be->caps & STORE_CAP_HINTS))
		BUG("store '%s' sends no hints", st->be->name);
	return st->be->hints(st, timeout_ms, out, all, err);
}

enum status store_dump(struct store *st, const char *table, struct buf *out,
		       struct buf *err)
{
	struct service_list list;
	enum status ret;

	service_list_init(&list);
	ret = store_begin(st, table, 0, err);
	if (ret != ST_OK)
		goto out;
	ret = store_load(st, &list, err);
	store_rollback(st);
	if (ret != ST_OK)
		goto out;
	(void)buf_addstr(out, "{\"table\":");
	(void)buf_addjson(out, table, strlen(table));
	(void)buf_addstr(out, ",\"services\":");
	payload_services_json(&list, PAYLOAD_JSON_TIMES, out);
	(void)buf_addch(out, '}');
out:
	service_list_release(&list);
	return ret;
}
