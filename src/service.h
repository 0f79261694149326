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

/* Ranges of the service options, in milliseconds for durations. */
#define HEALTH_PATH_MAX	   255
#define WEIGHT_MAX	   256
#define SERVER_MAXCONN_MAX 1000000
#define CHECK_INTER_MIN	   100
#define CHECK_INTER_MAX	   3600000u
#define CHECK_COUNT_MAX	   100
#define TIMEOUT_MIN	   1
#define TIMEOUT_MAX	   86400000u
/* A container's weight when none was given (HAProxy's default applies). */
#define WEIGHT_UNSET -1

enum config_mode {
	CONFIG_MODE_HOST = 0,
	CONFIG_MODE_PATH,
};

enum balance {
	BALANCE_ROUNDROBIN = 0, /* the default */
	BALANCE_LEASTCONN,
	BALANCE_FIRST,
	BALANCE_SOURCE,
};

enum cookie_mode {
	COOKIE_MODE_PREFIX = 0, /* the default */
	COOKIE_MODE_INSERT,
	/* HAProxy inserts a value it derives from the server's address and
	 * the backend's dynamic-cookie-key: works for servers added at runtime
	 */
	COOKIE_MODE_DYNAMIC,
};

struct container {
	char *id;
	/* canonical text form from inet_ntop; in id's allocation (only
	 * service.c sets either) */
	char *ip;
	/* 0 to WEIGHT_MAX, or WEIGHT_UNSET */
	int weight;
};

/*
 * A service's optional backend settings (the candidate fields balance,
 * healthCheck, maxconn, timeoutServer, timeoutTunnel, cookieMode). All zero
 * is "not given": today's backend. Durations are in milliseconds.
 */
struct service_options {
	enum balance balance;
	enum cookie_mode cookie_mode;
	char *check_path;	 /* NULL: TCP check; else absolute, checked */
	unsigned check_status;	 /* 100-599, 0: HAProxy's default */
	unsigned check_inter;	 /* ms, 0: HAProxy's default */
	unsigned check_rise;	 /* 0: HAProxy's default */
	unsigned check_fall;	 /* 0: HAProxy's default */
	unsigned maxconn;	 /* per server, 0: none */
	unsigned timeout_server; /* ms, 0: the defaults section's */
	unsigned timeout_tunnel; /* ms, 0: none */
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
	/* Backend settings of the candidate; part of the routing settings. */
	struct service_options opts;
};

struct service_list {
	struct service *items; /* sorted by name once service_list_sort() ran */
	size_t nr;
	size_t alloc;
};

const char *config_mode_name(enum config_mode mode);
/* Parse "host" or "path"; returns -1 for anything else. */
int config_mode_parse(const char *s, enum config_mode *out);
const char *balance_name(enum balance b);
/* Parse "roundrobin", "leastconn", "first" or "source"; -1 otherwise. */
int balance_parse(const char *s, enum balance *out);
const char *cookie_mode_name(enum cookie_mode m);
/* Parse "prefix" or "insert"; -1 otherwise. */
int cookie_mode_parse(const char *s, enum cookie_mode *out);

/* A duration in milliseconds in HAProxy's syntax, in the largest unit that
 * holds it exactly: "500ms", "45s", "2m", "1h". */
#define DURATION_TEXT_MAX 16
void duration_text(unsigned ms, char out[DURATION_TEXT_MAX]);

/* Whether every option is at its default (nothing to store or render). */
int service_options_default(const struct service_options *o);
/* Deep copy; `dst` is overwritten. */
void service_options_copy(struct service_options *dst,
			  const struct service_options *src);
void service_options_release(struct service_options *o);
int service_options_equal(const struct service_options *a,
			  const struct service_options *b);

void service_release(struct service *svc);
/* Deep copy of `src` into `dst`. */
void service_copy(struct service *dst, const struct service *src);
/* Add or replace the container `id`; keeps the array sorted. A new container
 * gets WEIGHT_UNSET, a known one keeps its weight. Returns it (borrowed,
 * valid until the next put). */
struct container *service_put_container(struct service *svc, const char *id,
					const char *ip);
struct container *service_find_container(const struct service *svc,
					 const char *id);
void service_sort_containers(struct service *svc);
/* Same routing settings and options and the same containers with the same
 * weights (times and version ignored). */
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
