/*
 * The routing state of one table: services and their containers, as plain C
 * structs that every module shares. All strings are owned by the struct that
 * points at them and are already validated and canonical (see payload.h).
 */
#ifndef SERVICE_H
#define SERVICE_H

#include <stddef.h>
#include <stdint.h>

#define SERVICE_NAME_MAX 128
#define CONTAINER_ID_MAX 128
#define TABLE_NAME_MIN	 3
#define TABLE_NAME_MAX	 255
#define PREDICATE_MAX	 253
#define COOKIE_NAME_MAX	 128

enum config_mode {
	CONFIG_MODE_HOST = 0,
	CONFIG_MODE_PATH,
};

struct container {
	char *id;
	char *ip; /* canonical text form from inet_ntop */
};

struct service {
	char *name;
	unsigned port;
	enum config_mode mode;
	/* host mode: lower-case host name; path mode: segments without the
	 * leading '/' */
	char *predicate;
	char *cookie;		      /* NULL: not sticky */
	struct container *containers; /* sorted by id, ids unique */
	size_t nr_containers;
	size_t alloc_containers;
	int64_t created_at; /* milliseconds since the epoch */
	int64_t updated_at;
	/* Backend bookkeeping (a DynamoDB item version); 0 when unknown. */
	uint64_t version;
};

struct service_list {
	struct service *items; /* sorted by name once service_list_sort() ran */
	size_t nr;
	size_t alloc;
};

const char *config_mode_name(enum config_mode mode);
/* Parse "host" or "path"; returns -1 for anything else. */
int config_mode_parse(const char *s, enum config_mode *out);

void service_release(struct service *svc);
/* Deep copy of `src` into `dst`. */
void service_copy(struct service *dst, const struct service *src);
/* Add or replace the container `id`; keeps the array sorted. */
void service_put_container(struct service *svc, const char *id, const char *ip);
struct container *service_find_container(const struct service *svc,
					 const char *id);
void service_sort_containers(struct service *svc);
/* Same routing settings and the same containers (times and version ignored). */
int service_equal(const struct service *a, const struct service *b);

void service_list_init(struct service_list *list);
void service_list_release(struct service_list *list);
/* Append an empty, zeroed service and return it. */
struct service *service_list_append(struct service_list *list);
void service_list_sort(struct service_list *list);
/* Binary search; the list must be sorted. */
struct service *service_list_find(const struct service_list *list,
				  const char *name);
void service_list_copy(struct service_list *dst,
		       const struct service_list *src);

#endif
