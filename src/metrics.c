/* Counters, gauges and histograms, their Prometheus text, and recent events. */
#include "metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "service.h"
#include "xalloc.h"
#include "banned.h"

#define METRICS_MAX_LABELS 3

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

/* Duration buckets, in microseconds and as written in `le`. */
static const uint64_t metrics_bucket_us[] = {
	100,   250,    500,    1000,   2500,	5000,	 10000,	  25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const metrics_bucket_le[] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
	"0.01",	  "0.025",   "0.05",   "0.1",	"0.25",	  "0.5",
	"1",	  "2.5",     "5",      "10",
};
#define METRICS_NR_BUCKETS ARRAY_SIZE(metrics_bucket_us)

/*
 * One label set of a family. Published at the head of the family's list
 * with a release store and never changed or freed afterwards, so readers
 * walk the list without a lock.
 */
struct metrics_series {
	struct metrics_series *next;
	uint64_t hash; /* metrics_hash() of the values */
	char *values[METRICS_MAX_LABELS];
	/* A counter's count, or a double's bits (gauges, METRICS_DOUBLE). */
	_Atomic uint64_t value;
	_Atomic uint64_t sum_us;
	_Atomic uint64_t buckets[METRICS_NR_BUCKETS + 1]; /* last: +Inf */
};

struct metrics_family {
	const char *name, *help;
	enum metrics_type type;
	unsigned group;
	size_t nr_labels;
	const char *labels[METRICS_MAX_LABELS];
	size_t max_series;
	struct metrics_series solo; /* the series of a family without labels */
	_Atomic(struct metrics_series *) head;
	size_t nr_series; /* guarded by metrics_lock */
};

#define METRICS_FAMILY(var, n, h, t, g, max, ...)                              \
	struct metrics_family var = {                                          \
		.name = n,                                                     \
		.help = h,                                                     \
		.type = t,                                                     \
		.group = g,                                                    \
		.nr_labels = sizeof((const char *[]){NULL, __VA_ARGS__}) /     \
				     sizeof(const char *) -                    \
			     1,                                                \
		.labels = {__VA_ARGS__},                                       \
		.max_series = max,                                             \
	}

METRICS_FAMILY(metrics_http_requests, "lambda_registry_http_requests_total",
	       "HTTP requests answered, by route pattern and status code.",
	       METRICS_COUNTER, METRICS_SERVE, METRICS_MAX_SERIES, "route",
	       "code");
METRICS_FAMILY(metrics_http_duration,
	       "lambda_registry_http_request_duration_seconds",
	       "Time from the request line to the end of the answer.",
	       METRICS_HISTOGRAM, METRICS_SERVE, METRICS_MAX_SERIES, "route");
METRICS_FAMILY(metrics_payload_rejections,
	       "lambda_registry_payload_rejections_total",
	       "Payloads refused, by the validation rule they broke.",
	       METRICS_COUNTER, METRICS_SERVE, METRICS_MAX_SERIES, "reason");
METRICS_FAMILY(metrics_store_operations,
	       "lambda_registry_store_operations_total",
	       "Store operations by backend, operation and result.",
	       METRICS_COUNTER, METRICS_SERVE, METRICS_MAX_SERIES, "backend",
	       "op", "result");
METRICS_FAMILY(metrics_store_duration,
	       "lambda_registry_store_operation_duration_seconds",
	       "Duration of store operations.", METRICS_HISTOGRAM,
	       METRICS_SERVE, METRICS_MAX_SERIES, "backend", "op");
METRICS_FAMILY(metrics_cache_hits, "lambda_registry_cache_hits_total",
	       "Calls answered from the per-table cache.", METRICS_COUNTER,
	       METRICS_SERVE, 1);
METRICS_FAMILY(metrics_unparsed_calls, "lambda_registry_unparsed_calls_total",
	       "Unchanged calls answered before their body was parsed: by its "
	       "digest (body) or by its body token (token).",
	       METRICS_COUNTER, METRICS_SERVE, 2, "by");
METRICS_FAMILY(metrics_cache_misses, "lambda_registry_cache_misses_total",
	       "Calls that had to load the table from the store.",
	       METRICS_COUNTER, METRICS_SERVE, 1);
METRICS_FAMILY(metrics_renders, "lambda_registry_renders_total",
	       "HAProxy configs rendered.", METRICS_COUNTER, METRICS_SERVE, 1);
METRICS_FAMILY(metrics_watchers, "lambda_registry_watchers",
	       "Open watch connections.", METRICS_GAUGE, METRICS_SERVE, 1);
METRICS_FAMILY(metrics_auth_failures, "lambda_registry_auth_failures_total",
	       "Requests refused for their token, by status code.",
	       METRICS_COUNTER, METRICS_SERVE, METRICS_MAX_SERIES, "code");
METRICS_FAMILY(metrics_agent_reports, "lambda_registry_agent_reports_total",
	       "Agent reports received, by result.", METRICS_COUNTER,
	       METRICS_SERVE, METRICS_MAX_SERIES, "result");
static METRICS_FAMILY(metrics_table_version, "lambda_registry_table_version",
		      "The store's version of the table (0: not versioned).",
		      METRICS_GAUGE, METRICS_SERVE, METRICS_MAX_TABLES,
		      "table");
static METRICS_FAMILY(metrics_table_services_g,
		      "lambda_registry_table_services",
		      "Services stored in the table.", METRICS_GAUGE,
		      METRICS_SERVE, METRICS_MAX_TABLES, "table");
static METRICS_FAMILY(metrics_table_servers, "lambda_registry_table_servers",
		      "Servers (containers) across the table's services.",
		      METRICS_GAUGE, METRICS_SERVE, METRICS_MAX_TABLES,
		      "table");
static METRICS_FAMILY(metrics_table_last_change,
		      "lambda_registry_table_last_change_timestamp_seconds",
		      "When a service of the table last changed.",
		      METRICS_GAUGE, METRICS_SERVE, METRICS_MAX_TABLES,
		      "table");
static METRICS_FAMILY(metrics_dropped,
		      "lambda_registry_metrics_series_dropped_total",
		      "Updates left out because a family reached its series "
		      "cap.",
		      METRICS_COUNTER, METRICS_SERVE | METRICS_AGENT, 1);

METRICS_FAMILY(metrics_agent_applies, "lambda_registry_agent_applies_total",
	       "Configs applied, by method and result.", METRICS_COUNTER,
	       METRICS_AGENT, METRICS_MAX_SERIES, "method", "result");
METRICS_FAMILY(metrics_agent_reloads, "lambda_registry_agent_reloads_total",
	       "HAProxy reloads through the master CLI.", METRICS_COUNTER,
	       METRICS_AGENT, 1);
METRICS_FAMILY(metrics_agent_rollbacks, "lambda_registry_agent_rollbacks_total",
	       "Applies rolled back to the previous config.", METRICS_COUNTER,
	       METRICS_AGENT, 1);
METRICS_FAMILY(metrics_agent_config_rejections,
	       "lambda_registry_agent_config_rejections_total",
	       "Configs that haproxy -c refused.", METRICS_COUNTER,
	       METRICS_AGENT, 1);
METRICS_FAMILY(metrics_agent_registry_errors,
	       "lambda_registry_agent_registry_errors_total",
	       "Failed calls to the registry, by HTTP status (0: no answer).",
	       METRICS_COUNTER, METRICS_AGENT, METRICS_MAX_SERIES, "code");
METRICS_FAMILY(metrics_agent_last_success,
	       "lambda_registry_agent_last_apply_success",
	       "1 when the last apply worked, else 0.", METRICS_GAUGE,
	       METRICS_AGENT, 1);
METRICS_FAMILY(metrics_agent_last_timestamp,
	       "lambda_registry_agent_last_apply_timestamp_seconds",
	       "When the last apply ended.", METRICS_GAUGE, METRICS_AGENT, 1);
METRICS_FAMILY(metrics_agent_applied_index,
	       "lambda_registry_agent_applied_index",
	       "The registry's index of the config HAProxy runs.",
	       METRICS_GAUGE, METRICS_AGENT, 1);
METRICS_FAMILY(metrics_agent_runtime_duration,
	       "lambda_registry_agent_runtime_command_duration_seconds",
	       "Duration of HAProxy master and runtime CLI commands.",
	       METRICS_HISTOGRAM, METRICS_AGENT, 1);

static METRICS_FAMILY(metrics_build_info, "lambda_registry_build_info",
		      "The running build.", METRICS_GAUGE,
		      METRICS_SERVE | METRICS_AGENT, 1, "version");
static METRICS_FAMILY(metrics_rss, "process_resident_memory_bytes",
		      "Resident memory size in bytes.", METRICS_GAUGE,
		      METRICS_SERVE | METRICS_AGENT, 1);
static METRICS_FAMILY(metrics_cpu, "process_cpu_seconds_total",
		      "User and system CPU time spent in seconds.",
		      METRICS_COUNTER, METRICS_SERVE | METRICS_AGENT, 1);
static METRICS_FAMILY(metrics_start, "process_start_time_seconds",
		      "Start time of the process since the epoch in seconds.",
		      METRICS_GAUGE, METRICS_SERVE | METRICS_AGENT, 1);
static METRICS_FAMILY(metrics_fds, "process_open_fds",
		      "Number of open file descriptors.", METRICS_GAUGE,
		      METRICS_SERVE | METRICS_AGENT, 1);
static METRICS_FAMILY(metrics_max_fds, "process_max_fds",
		      "Maximum number of open file descriptors.", METRICS_GAUGE,
		      METRICS_SERVE | METRICS_AGENT, 1);

static struct metrics_family *const metrics_families[] = {
	&metrics_http_requests,
	&metrics_http_duration,
	&metrics_payload_rejections,
	&metrics_store_operations,
	&metrics_store_duration,
	&metrics_cache_hits,
	&metrics_cache_misses,
	&metrics_unparsed_calls,
	&metrics_renders,
	&metrics_watchers,
	&metrics_auth_failures,
	&metrics_agent_reports,
	&metrics_table_version,
	&metrics_table_services_g,
	&metrics_table_servers,
	&metrics_table_last_change,
	&metrics_dropped,
	&metrics_agent_applies,
	&metrics_agent_reloads,
	&metrics_agent_rollbacks,
	&metrics_agent_config_rejections,
	&metrics_agent_registry_errors,
	&metrics_agent_last_success,
	&metrics_agent_last_timestamp,
	&metrics_agent_applied_index,
	&metrics_agent_runtime_duration,
	&metrics_build_info,
	&metrics_rss,
	&metrics_cpu,
	&metrics_start,
	&metrics_fds,
	&metrics_max_fds,
};

/* Guards series creation and the recent events below. */
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

static struct metrics_rejection metrics_rejections[METRICS_MAX_REJECTIONS];
static size_t metrics_nr_rejections, metrics_next_rejection;
static struct metrics_store_error metrics_errors[METRICS_MAX_STORE_ERRORS];
static size_t metrics_nr_errors, metrics_next_error;

/* FNV-1a over the values, each with its end: a series is looked up on
 * every request, and a hash that differs spares the string compares. */
static uint64_t metrics_hash(const struct metrics_family *f,
			     const char *const *values)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < f->nr_labels; i++) {
		const unsigned char *p = (const unsigned char *)values[i];

		do {
			h = (h ^ *p) * 1099511628211ULL;
		} while (*p++);
	}
	return h;
}

static int metrics_same(const struct metrics_family *f,
			const struct metrics_series *s,
			const char *const *values)
{
	size_t i;

	for (i = 0; i < f->nr_labels; i++)
		if (s->values[i] != values[i] &&
		    strcmp(s->values[i], values[i]))
			return 0;
	return 1;
}

static struct metrics_series *
metrics_scan(struct metrics_family *f, const char *const *values, uint64_t hash)
{
	struct metrics_series *s;

	for (s = atomic_load_explicit(&f->head, memory_order_acquire); s;
	     s = s->next)
		if (s->hash == hash && metrics_same(f, s, values))
			return s;
	return NULL;
}

/* The series of `values`, created when new; NULL past the family's cap. */
static struct metrics_series *metrics_find(struct metrics_family *f,
					   const char *const *values)
{
	struct metrics_series *s;
	uint64_t hash;
	size_t i;

	if (!f->nr_labels)
		return &f->solo;
	hash = metrics_hash(f, values);
	s = metrics_scan(f, values, hash);
	if (s)
		return s;
	pthread_mutex_lock(&metrics_lock);
	s = metrics_scan(f, values, hash);
	if (s)
		goto out;
	if (f->nr_series >= f->max_series) {
		atomic_fetch_add_explicit(&metrics_dropped.solo.value, 1,
					  memory_order_relaxed);
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	s->hash = hash;
	for (i = 0; i < f->nr_labels; i++)
		s->values[i] = xstrdup(values[i]);
	s->next = atomic_load_explicit(&f->head, memory_order_relaxed);
	f->nr_series++;
	atomic_store_explicit(&f->head, s, memory_order_release);
out:
	pthread_mutex_unlock(&metrics_lock);
	return s;
}

void metrics_counter_add(struct metrics_family *f, const char *const *values,
			 uint64_t n)
{
	struct metrics_series *s = metrics_find(f, values);

	if (s)
		atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

static uint64_t metrics_bits(double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	return bits;
}

static double metrics_double(uint64_t bits)
{
	double v;

	memcpy(&v, &bits, sizeof(v));
	return v;
}

void metrics_gauge_set(struct metrics_family *f, const char *const *values,
		       double v)
{
	struct metrics_series *s = metrics_find(f, values);

	if (s)
		atomic_store_explicit(&s->value, metrics_bits(v),
				      memory_order_relaxed);
}

void metrics_gauge_add(struct metrics_family *f, const char *const *values,
		       double delta)
{
	struct metrics_series *s = metrics_find(f, values);
	uint64_t old;

	if (!s)
		return;
	old = atomic_load_explicit(&s->value, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
		&s->value, &old, metrics_bits(metrics_double(old) + delta),
		memory_order_relaxed, memory_order_relaxed))
		;
}

void metrics_observe_us(struct metrics_family *f, const char *const *values,
			uint64_t us)
{
	struct metrics_series *s = metrics_find(f, values);
	size_t i;

	if (!s)
		return;
	for (i = 0; i < METRICS_NR_BUCKETS && us > metrics_bucket_us[i]; i++)
		;
	atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sum_us, us, memory_order_relaxed);
}

void metrics_http_request(const char *route, unsigned code, uint64_t us)
{
	char text[12];

	(void)snprintf(text, sizeof(text), "%u", code);
	metrics_counter_add(&metrics_http_requests,
			    (const char *const[]){route, text}, 1);
	metrics_observe_us(&metrics_http_duration, (const char *const[]){route},
			   us);
}

void metrics_watchers_add(long delta)
{
	metrics_gauge_add(&metrics_watchers, NULL, (double)delta);
}

void metrics_table_services(const char *table, uint64_t version,
			    const struct service_list *services)
{
	const char *const values[] = {table};
	uint64_t servers = 0;
	int64_t last = 0;
	size_t i;

	for (i = 0; i < services->nr; i++) {
		const struct service *svc = &services->items[i];

		servers += svc->nr_containers;
		if (svc->updated_at > last)
			last = svc->updated_at;
	}
	metrics_gauge_set(&metrics_table_version, values, (double)version);
	metrics_gauge_set(&metrics_table_services_g, values,
			  (double)services->nr);
	metrics_gauge_set(&metrics_table_servers, values, (double)servers);
	metrics_gauge_set(&metrics_table_last_change, values,
			  (double)last / 1000.0);
}

void metrics_init(void)
{
	metrics_gauge_set(&metrics_start, NULL,
			  (double)clock_real_ms() / 1000.0);
	metrics_gauge_set(&metrics_build_info,
			  (const char *const[]){LR_VERSION}, 1);
}

/* Read the process figures from /proc just before they are written. */
static void metrics_collect_process(void)
{
	unsigned long utime = 0, stime = 0;
	long pages = 0, tick = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	struct dirent *de;
	FILE *f;
	DIR *d;
	long fds = 0;

	f = fopen("/proc/self/stat", "r");
	if (f) {
		/* Fields 14 and 15, after the command in parentheses. */
		char line[1024];

		if (fgets(line, sizeof(line), f)) {
			const char *p = strrchr(line, ')');

			if (p &&
			    sscanf(p + 2,
				   "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				   "%*u %*u %lu %lu",
				   &utime, &stime) == 2 &&
			    tick > 0)
				metrics_gauge_set(&metrics_cpu, NULL,
						  (double)(utime + stime) /
							  (double)tick);
		}
		fclose(f);
	}
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%*d %ld", &pages) == 1)
			metrics_gauge_set(&metrics_rss, NULL,
					  (double)pages * (double)page);
		fclose(f);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
		/* Less the descriptor of the listing itself. */
		metrics_gauge_set(&metrics_fds, NULL, (double)(fds - 1));
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		metrics_gauge_set(&metrics_max_fds, NULL, (double)rl.rlim_cur);
}

static int metrics_cmp_family(const void *a, const void *b)
{
	const struct metrics_family *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static const struct metrics_family *metrics_sort_family;

static int metrics_cmp_series(const void *a, const void *b)
{
	const struct metrics_series *const *x = a, *const *y = b;
	size_t i;

	for (i = 0; i < metrics_sort_family->nr_labels; i++) {
		int c = strcmp((*x)->values[i], (*y)->values[i]);

		if (c)
			return c;
	}
	return 0;
}

/* A label value as the format wants it: \\, \" and \n escaped. */
static void metrics_add_value(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			(void)buf_addch(out, '\\');
		if (*s == '\n')
			(void)buf_addstr(out, "\\n");
		else
			(void)buf_addch(out, *s);
	}
}

/* name{a="x",b="y"[,le="..."]} */
static void metrics_add_name(struct buf *out, const struct metrics_family *f,
			     const char *suffix, const struct metrics_series *s,
			     const char *le)
{
	size_t i;

	(void)buf_addf(out, "%s%s", f->name, suffix);
	if (!f->nr_labels && !le)
		return;
	(void)buf_addch(out, '{');
	for (i = 0; i < f->nr_labels; i++) {
		(void)buf_addf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		metrics_add_value(out, s->values[i]);
		(void)buf_addch(out, '"');
	}
	if (le)
		(void)buf_addf(out, "%sle=\"%s\"", f->nr_labels ? "," : "", le);
	(void)buf_addch(out, '}');
}

static void metrics_add_double(struct buf *out, double v)
{
	if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
		(void)buf_addf(out, " %lld\n", (long long)v);
	else
		(void)buf_addf(out, " %.15g\n", v);
}

static void metrics_write_series(struct buf *out,
				 const struct metrics_family *f,
				 const struct metrics_series *s)
{
	uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
	uint64_t total = 0;
	size_t i;

	switch (f->type) {
	case METRICS_COUNTER:
		metrics_add_name(out, f, "", s, NULL);
		/* CPU seconds: a double read from /proc at scrape time. */
		if (f == &metrics_cpu)
			metrics_add_double(out, metrics_double(v));
		else
			(void)buf_addf(out, " %llu\n", (unsigned long long)v);
		return;
	case METRICS_GAUGE:
		metrics_add_name(out, f, "", s, NULL);
		metrics_add_double(out, metrics_double(v));
		return;
	case METRICS_HISTOGRAM:
		break;
	}
	for (i = 0; i <= METRICS_NR_BUCKETS; i++) {
		total += atomic_load_explicit(&s->buckets[i],
					      memory_order_relaxed);
		metrics_add_name(out, f, "_bucket", s,
				 i < METRICS_NR_BUCKETS ? metrics_bucket_le[i]
							: "+Inf");
		(void)buf_addf(out, " %llu\n", (unsigned long long)total);
	}
	metrics_add_name(out, f, "_sum", s, NULL);
	metrics_add_double(out, (double)atomic_load_explicit(
					&s->sum_us, memory_order_relaxed) /
					1e6);
	metrics_add_name(out, f, "_count", s, NULL);
	(void)buf_addf(out, " %llu\n", (unsigned long long)total);
}

static void metrics_write_family(struct buf *out, struct metrics_family *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	struct metrics_series **all = NULL, *s;
	size_t nr = 0, alloc = 0, i;

	(void)buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
		       f->name, types[f->type]);
	if (!f->nr_labels) {
		metrics_write_series(out, f, &f->solo);
		return;
	}
	for (s = atomic_load_explicit(&f->head, memory_order_acquire); s;
	     s = s->next) {
		ALLOC_GROW(all, nr + 1, alloc);
		all[nr++] = s;
	}
	metrics_sort_family = f;
	if (nr)
		qsort(all, nr, sizeof(*all), metrics_cmp_series);
	for (i = 0; i < nr; i++)
		metrics_write_series(out, f, all[i]);
	free(all);
}

void metrics_write(unsigned groups, struct buf *out)
{
	struct metrics_family *sorted[ARRAY_SIZE(metrics_families)];
	size_t i, nr = 0;

	metrics_collect_process();
	for (i = 0; i < ARRAY_SIZE(metrics_families); i++)
		if (metrics_families[i]->group & groups)
			sorted[nr++] = metrics_families[i];
	qsort(sorted, nr, sizeof(*sorted), metrics_cmp_family);
	/* The series sort shares one comparator state: one writer at once. */
	pthread_mutex_lock(&metrics_lock);
	for (i = 0; i < nr; i++)
		metrics_write_family(out, sorted[i]);
	pthread_mutex_unlock(&metrics_lock);
}

static void metrics_copy(char *dst, size_t size, const char *src)
{
	size_t len = src ? strlen(src) : 0;

	if (len >= size)
		len = size - 1;
	memcpy(dst, src ? src : "", len);
	dst[len] = '\0';
}

void metrics_note_rejection(const char *table, const char *field,
			    const char *rule)
{
	struct metrics_rejection *r;

	pthread_mutex_lock(&metrics_lock);
	r = &metrics_rejections[metrics_next_rejection];
	r->at_ms = (int64_t)clock_real_ms();
	metrics_copy(r->table, sizeof(r->table), table);
	metrics_copy(r->field, sizeof(r->field), field);
	r->rule = rule;
	metrics_next_rejection =
		(metrics_next_rejection + 1) % METRICS_MAX_REJECTIONS;
	if (metrics_nr_rejections < METRICS_MAX_REJECTIONS)
		metrics_nr_rejections++;
	pthread_mutex_unlock(&metrics_lock);
}

void metrics_note_store_error(const char *backend, const char *op,
			      const char *message)
{
	struct metrics_store_error *e;

	pthread_mutex_lock(&metrics_lock);
	e = &metrics_errors[metrics_next_error];
	e->at_ms = (int64_t)clock_real_ms();
	e->backend = backend;
	e->op = op;
	metrics_copy(e->message, sizeof(e->message), message);
	metrics_next_error =
		(metrics_next_error + 1) % METRICS_MAX_STORE_ERRORS;
	if (metrics_nr_errors < METRICS_MAX_STORE_ERRORS)
		metrics_nr_errors++;
	pthread_mutex_unlock(&metrics_lock);
}

size_t metrics_recent_rejections(struct metrics_rejection *out, size_t max)
{
	size_t i, nr;

	pthread_mutex_lock(&metrics_lock);
	nr = metrics_nr_rejections < max ? metrics_nr_rejections : max;
	for (i = 0; i < nr; i++)
		out[i] = metrics_rejections[(metrics_next_rejection +
					     METRICS_MAX_REJECTIONS - 1 - i) %
					    METRICS_MAX_REJECTIONS];
	pthread_mutex_unlock(&metrics_lock);
	return nr;
}

size_t metrics_recent_store_errors(struct metrics_store_error *out, size_t max)
{
	size_t i, nr;

	pthread_mutex_lock(&metrics_lock);
	nr = metrics_nr_errors < max ? metrics_nr_errors : max;
	for (i = 0; i < nr; i++)
		out[i] = metrics_errors[(metrics_next_error +
					 METRICS_MAX_STORE_ERRORS - 1 - i) %
					METRICS_MAX_STORE_ERRORS];
	pthread_mutex_unlock(&metrics_lock);
	return nr;
}

/* A table's gauge; 0 while a concurrent first update has not set it. */
static double metrics_table_value(struct metrics_family *f, const char *table)
{
	const char *const values[] = {table};
	struct metrics_series *s =
		metrics_scan(f, values, metrics_hash(f, values));

	return s ? metrics_double(atomic_load_explicit(&s->value,
						       memory_order_relaxed))
		 : 0;
}

static int metrics_cmp_table(const void *a, const void *b)
{
	const struct metrics_table *x = a, *y = b;

	return strcmp(x->table, y->table);
}

struct metrics_table *metrics_tables(size_t *nr)
{
	struct metrics_table *out = NULL;
	struct metrics_series *s;
	size_t alloc = 0;

	*nr = 0;
	for (s = atomic_load_explicit(&metrics_table_version.head,
				      memory_order_acquire);
	     s; s = s->next) {
		struct metrics_table *t;

		ALLOC_GROW(out, *nr + 1, alloc);
		t = &out[(*nr)++];
		t->table = xstrdup(s->values[0]);
		t->version = (uint64_t)metrics_double(
			atomic_load_explicit(&s->value, memory_order_relaxed));
		t->services = (uint64_t)metrics_table_value(
			&metrics_table_services_g, t->table);
		t->servers = (uint64_t)metrics_table_value(
			&metrics_table_servers, t->table);
		t->last_change_ms =
			(int64_t)(metrics_table_value(
					  &metrics_table_last_change,
					  t->table) *
				  1000.0);
	}
	if (*nr)
		qsort(out, *nr, sizeof(*out), metrics_cmp_table);
	return out;
}

void metrics_tables_free(struct metrics_table *tables, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++)
		free(tables[i].table);
	free(tables);
}
