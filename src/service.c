/* The shared routing-state model: services, containers and sorted lists. */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"
#include "banned.h"

static const char *const config_mode_names[] = {
	[CONFIG_MODE_HOST] = "host",
	[CONFIG_MODE_PATH] = "path",
};

const char *config_mode_name(enum config_mode mode)
{
	if ((size_t)mode >= ARRAY_SIZE(config_mode_names))
		BUG("bad config mode %d", (int)mode);
	return config_mode_names[mode];
}

int config_mode_parse(const char *s, enum config_mode *out)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(config_mode_names); i++) {
		if (!strcmp(s, config_mode_names[i])) {
			*out = (enum config_mode)i;
			return 0;
		}
	}
	return -1;
}

static const char *const balance_names[] = {
	[BALANCE_ROUNDROBIN] = "roundrobin",
	[BALANCE_LEASTCONN] = "leastconn",
	[BALANCE_FIRST] = "first",
	[BALANCE_SOURCE] = "source",
};

static const char *const cookie_mode_names[] = {
	[COOKIE_MODE_PREFIX] = "prefix",
	[COOKIE_MODE_INSERT] = "insert",
	[COOKIE_MODE_DYNAMIC] = "dynamic",
};

const char *balance_name(enum balance b)
{
	if ((size_t)b >= ARRAY_SIZE(balance_names))
		BUG("bad balance %d", (int)b);
	return balance_names[b];
}

int balance_parse(const char *s, enum balance *out)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(balance_names); i++) {
		if (!strcmp(s, balance_names[i])) {
			*out = (enum balance)i;
			return 0;
		}
	}
	return -1;
}

const char *cookie_mode_name(enum cookie_mode m)
{
	if ((size_t)m >= ARRAY_SIZE(cookie_mode_names))
		BUG("bad cookie mode %d", (int)m);
	return cookie_mode_names[m];
}

int cookie_mode_parse(const char *s, enum cookie_mode *out)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cookie_mode_names); i++) {
		if (!strcmp(s, cookie_mode_names[i])) {
			*out = (enum cookie_mode)i;
			return 0;
		}
	}
	return -1;
}

void duration_text(unsigned ms, char out[DURATION_TEXT_MAX])
{
	if (ms && !(ms % 3600000))
		snprintf(out, DURATION_TEXT_MAX, "%uh", ms / 3600000);
	else if (ms && !(ms % 60000))
		snprintf(out, DURATION_TEXT_MAX, "%um", ms / 60000);
	else if (ms && !(ms % 1000))
		snprintf(out, DURATION_TEXT_MAX, "%us", ms / 1000);
	else
		snprintf(out, DURATION_TEXT_MAX, "%ums", ms);
}

int service_options_default(const struct service_options *o)
{
	return o->balance == BALANCE_ROUNDROBIN &&
	       o->cookie_mode == COOKIE_MODE_PREFIX && !o->check_path &&
	       !o->check_status && !o->check_inter && !o->check_rise &&
	       !o->check_fall && !o->maxconn && !o->timeout_server &&
	       !o->timeout_tunnel;
}

void service_options_copy(struct service_options *dst,
			  const struct service_options *src)
{
	*dst = *src;
	dst->check_path = src->check_path ? xstrdup(src->check_path) : NULL;
}

void service_options_release(struct service_options *o)
{
	free(o->check_path);
	memset(o, 0, sizeof(*o));
}

static int str_equal_null(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

int service_options_equal(const struct service_options *a,
			  const struct service_options *b)
{
	return a->balance == b->balance && a->cookie_mode == b->cookie_mode &&
	       str_equal_null(a->check_path, b->check_path) &&
	       a->check_status == b->check_status &&
	       a->check_inter == b->check_inter &&
	       a->check_rise == b->check_rise &&
	       a->check_fall == b->check_fall && a->maxconn == b->maxconn &&
	       a->timeout_server == b->timeout_server &&
	       a->timeout_tunnel == b->timeout_tunnel;
}

void service_release(struct service *svc)
{
	size_t i;

	for (i = 0; i < svc->nr_containers; i++)
		free(svc->containers[i].id); /* the ip with it */
	free(svc->containers);
	free(svc->name);
	free(svc->predicate);
	free(svc->cookie);
	service_options_release(&svc->opts);
	memset(svc, 0, sizeof(*svc));
}

/*
 * A container's id and ip share one allocation, the ip after the id's NUL:
 * half the allocations of a table (at 10,000 services, 100,000 fewer
 * 32-byte chunks in each list a call holds).
 */
static void container_set(struct container *c, const char *id, const char *ip)
{
	size_t id_len = strlen(id), ip_len = strlen(ip);
	char *s = xmalloc(id_len + ip_len + 2);

	memcpy(s, id, id_len + 1);
	memcpy(s + id_len + 1, ip, ip_len + 1);
	c->id = s;
	c->ip = s + id_len + 1;
}

void service_copy(struct service *dst, const struct service *src)
{
	size_t i;

	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->predicate = xstrdup(src->predicate);
	dst->cookie = src->cookie ? xstrdup(src->cookie) : NULL;
	service_options_copy(&dst->opts, &src->opts);
	dst->alloc_containers = src->nr_containers;
	dst->containers =
		src->nr_containers
			? xmalloc(src->nr_containers * sizeof(*dst->containers))
			: NULL;
	for (i = 0; i < src->nr_containers; i++) {
		container_set(&dst->containers[i], src->containers[i].id,
			      src->containers[i].ip);
		dst->containers[i].weight = src->containers[i].weight;
	}
}

/* Index of `id`, or of where it would go (with *found = 0). */
static size_t service_container_pos(const struct service *svc, const char *id,
				    int *found)
{
	size_t lo = 0, hi = svc->nr_containers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(svc->containers[mid].id, id);

		if (!cmp) {
			*found = 1;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

struct container *service_find_container(const struct service *svc,
					 const char *id)
{
	int found;
	size_t pos = service_container_pos(svc, id, &found);

	return found ? &svc->containers[pos] : NULL;
}

struct container *service_put_container(struct service *svc, const char *id,
					const char *ip)
{
	int found;
	size_t pos;

	/* Appending in order is the common case (loads, sorted payloads). */
	if (!svc->nr_containers ||
	    strcmp(svc->containers[svc->nr_containers - 1].id, id) < 0) {
		pos = svc->nr_containers;
		found = 0;
	} else {
		pos = service_container_pos(svc, id, &found);
	}
	if (found) {
		struct container *c = &svc->containers[pos];

		if (strcmp(c->ip, ip)) {
			char *old = c->id;

			container_set(c, old, ip);
			free(old);
		}
		return &svc->containers[pos];
	}
	ALLOC_GROW(svc->containers, svc->nr_containers + 1,
		   svc->alloc_containers);
	memmove(svc->containers + pos + 1, svc->containers + pos,
		(svc->nr_containers - pos) * sizeof(*svc->containers));
	container_set(&svc->containers[pos], id, ip);
	svc->containers[pos].weight = WEIGHT_UNSET;
	svc->nr_containers++;
	return &svc->containers[pos];
}

static int container_cmp(const void *a, const void *b)
{
	return strcmp(((const struct container *)a)->id,
		      ((const struct container *)b)->id);
}

void service_sort_containers(struct service *svc)
{
	if (svc->nr_containers > 1)
		qsort(svc->containers, svc->nr_containers,
		      sizeof(*svc->containers), container_cmp);
}

int service_equal(const struct service *a, const struct service *b)
{
	size_t i;

	if (strcmp(a->name, b->name) || a->port != b->port ||
	    a->mode != b->mode || strcmp(a->predicate, b->predicate) ||
	    !str_equal_null(a->cookie, b->cookie) ||
	    !service_options_equal(&a->opts, &b->opts) ||
	    a->nr_containers != b->nr_containers)
		return 0;
	for (i = 0; i < a->nr_containers; i++)
		if (strcmp(a->containers[i].id, b->containers[i].id) ||
		    strcmp(a->containers[i].ip, b->containers[i].ip) ||
		    a->containers[i].weight != b->containers[i].weight)
			return 0;
	return 1;
}

void service_list_init(struct service_list *list)
{
	memset(list, 0, sizeof(*list));
}

void service_list_release(struct service_list *list)
{
	size_t i;

	for (i = 0; i < list->nr; i++)
		service_release(&list->items[i]);
	free(list->items);
	service_list_init(list);
}

struct service *service_list_append(struct service_list *list)
{
	struct service *svc;

	ALLOC_GROW(list->items, list->nr + 1, list->alloc);
	svc = &list->items[list->nr++];
	memset(svc, 0, sizeof(*svc));
	return svc;
}

static int service_cmp(const void *a, const void *b)
{
	return strcmp(((const struct service *)a)->name,
		      ((const struct service *)b)->name);
}

void service_list_sort(struct service_list *list)
{
	if (list->nr > 1)
		qsort(list->items, list->nr, sizeof(*list->items), service_cmp);
}

struct service *service_list_find(const struct service_list *list,
				  const char *name)
{
	size_t lo = 0, hi = list->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(list->items[mid].name, name);

		if (!cmp)
			return &list->items[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void service_list_copy(struct service_list *dst, const struct service_list *src)
{
	size_t i;

	service_list_init(dst);
	if (!src->nr)
		return;
	dst->items = xmalloc(src->nr * sizeof(*dst->items));
	dst->alloc = src->nr;
	for (i = 0; i < src->nr; i++)
		service_copy(&dst->items[i], &src->items[i]);
	dst->nr = src->nr;
}
