/*
 * The agent's Docker source: lists and inspects containers through the
 * Docker Engine API on a unix socket, and follows /events in a thread.
 */
#include "agent/docker.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "curlx.h"
#include "log.h"
#include "payload.h"
#include "xalloc.h"
#include "banned.h"

#define DOCKER_MAX_BODY	      ((size_t)32 << 20)
#define DOCKER_MAX_EVENT      ((size_t)1 << 20)
#define DOCKER_BACKOFF_MIN_MS 250
#define DOCKER_BACKOFF_MAX_MS 10000
/* Characters of the container id used as server name, as `docker ps` shows. */
#define DOCKER_SHORT_ID 12

/* What inspecting one container taught us; containers never change settings. */
struct docker_seen {
	char *id;
	struct service svc; /* one container; valid when ok */
	int ok;
	char *reason; /* why it is skipped, when !ok */
};

struct docker_source {
	struct source src; /* first: a struct source * is a docker_source * */
	char *socket;
	char *keyword;
	char *network;
	unsigned timeout_ms;
	CURL *curl; /* the loop's handle; the events thread has its own */
	pthread_t thread;
	int thread_started;
	atomic_int stop;
	atomic_int changed;
	atomic_int forget; /* the events stream reconnected: inspect again */
	/* Inspected containers; pruned to the listed ones after every list. */
	struct docker_seen *seen;
	size_t nr_seen, alloc_seen;
	/* Containers already logged as skipped; survives resyncs, pruned to
	 * the containers still listed. */
	char **logged;
	size_t nr_logged, alloc_logged;
};

/* Actions that change what runs; podman says "died" where Docker says "die". */
static const char *const docker_actions[] = {
	"start", "die", "died", "stop", "destroy", "remove", "kill",
};

static void docker_seen_release(struct docker_seen *seen)
{
	free(seen->id);
	free(seen->reason);
	service_release(&seen->svc);
}

static void docker_seen_clear(struct docker_source *ds)
{
	size_t i;

	for (i = 0; i < ds->nr_seen; i++)
		docker_seen_release(&ds->seen[i]);
	ds->nr_seen = 0;
}

/* GET `path` from the engine into `out`; ST_NOT_FOUND for a 404. */
static enum status docker_get(CURL *curl, const struct docker_source *ds,
			      const char *path, struct buf *out,
			      struct buf *err)
{
	struct buf url = BUF_INIT;
	enum status st = ST_UNAVAILABLE;
	long code = 0;
	CURLcode rc;

	buf_addf(&url, "http://localhost%s", path);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, ds->socket);
	curl_easy_setopt(curl, CURLOPT_URL, url.buf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)ds->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)ds->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		buf_setf(err, "GET '%s' on '%s': %s", path, ds->socket,
			 curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (code == 404) {
		buf_setf(err, "GET '%s': not found", path);
		st = ST_NOT_FOUND;
		goto out;
	}
	if (code != 200) {
		buf_setf(err, "GET '%s' answered %ld: ", path, code);
		buf_addquoted(err, out->buf, out->len > 200 ? 200 : out->len);
		goto out;
	}
	st = ST_OK;
out:
	buf_release(&url);
	return st;
}

/* The value of KEY in Config.Env ("KEY=value"), else in Config.Labels. */
static const char *docker_setting(json_t *config, const char *key)
{
	json_t *env = json_object_get(config, "Env");
	json_t *labels = json_object_get(config, "Labels");
	json_t *item;
	size_t i, len = strlen(key);

	json_array_foreach(env, i, item)
	{
		const char *s = json_string_value(item);

		if (s && !strncmp(s, key, len) && s[len] == '=')
			return s + len + 1;
	}
	item = json_object_get(labels, key);
	return json_is_string(item) ? json_string_value(item) : NULL;
}

/* The address on `network`, or on the first network (by name) that has one. */
static const char *docker_address(json_t *netset, const char *network,
				  struct buf *err)
{
	json_t *networks = json_object_get(netset, "Networks");
	const char *best_name = NULL, *best = NULL, *name;
	json_t *net;

	if (network) {
		net = json_object_get(networks, network);
		if (!net) {
			buf_setf(err, "not on network '%s'", network);
			return NULL;
		}
		best = json_string_value(json_object_get(net, "IPAddress"));
	} else {
		json_object_foreach(networks, name, net)
		{
			const char *ip = json_string_value(
				json_object_get(net, "IPAddress"));

			if (ip && *ip &&
			    (!best_name || strcmp(name, best_name) < 0)) {
				best_name = name;
				best = ip;
			}
		}
		if (!best)
			best = json_string_value(
				json_object_get(netset, "IPAddress"));
	}
	if (!best || !*best) {
		buf_setf(err, "no address%s%s%s",
			 network ? " on network '" : "", network ? network : "",
			 network ? "'" : "");
		return NULL;
	}
	return best;
}

int docker_container_parse(const char *inspect_json, size_t len,
			   const char *network, struct service *svc,
			   struct buf *err)
{
	json_error_t jerr;
	json_t *root, *config;
	const char *id, *ip;
	char short_id[DOCKER_SHORT_ID + 1];
	struct payload_options_text opts;
	int ret = -1, weight;

	root = json_loadb(inspect_json, len, 0, &jerr);
	if (!json_is_object(root)) {
		buf_setf(err, "inspect answer is not a JSON object");
		goto out;
	}
	id = json_string_value(json_object_get(root, "Id"));
	config = json_object_get(root, "Config");
	if (!id || !*id || !json_is_object(config)) {
		buf_setf(err, "inspect answer without Id or Config");
		goto out;
	}
	if (payload_check_service_text(svc,
				       docker_setting(config, "SERVICE_NAME"),
				       docker_setting(config, "PORT"),
				       docker_setting(config, "CONFIG_MODE"),
				       docker_setting(config, "PREDICATE"),
				       docker_setting(config, "COOKIE"), err))
		goto out;
	opts = (struct payload_options_text){
		.balance = docker_setting(config, "BALANCE"),
		.cookie_mode = docker_setting(config, "COOKIE_MODE"),
		.check_path = docker_setting(config, "HEALTH_CHECK_PATH"),
		.check_status = docker_setting(config, "HEALTH_CHECK_STATUS"),
		.check_interval =
			docker_setting(config, "HEALTH_CHECK_INTERVAL"),
		.check_rise = docker_setting(config, "HEALTH_CHECK_RISE"),
		.check_fall = docker_setting(config, "HEALTH_CHECK_FALL"),
		.maxconn = docker_setting(config, "MAXCONN"),
		.timeout_server = docker_setting(config, "TIMEOUT_SERVER"),
		.timeout_tunnel = docker_setting(config, "TIMEOUT_TUNNEL"),
	};
	if (payload_check_options_text(svc, &opts, err) ||
	    payload_check_weight_text(docker_setting(config, "WEIGHT"), &weight,
				      err))
		goto out;
	ip = docker_address(json_object_get(root, "NetworkSettings"), network,
			    err);
	if (!ip)
		goto out;
	memset(short_id, 0, sizeof(short_id));
	memcpy(short_id, id,
	       strlen(id) < DOCKER_SHORT_ID ? strlen(id) : DOCKER_SHORT_ID);
	if (payload_check_container_text(svc, short_id, ip, err))
		goto out;
	service_find_container(svc, short_id)->weight = weight;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

static struct docker_seen *docker_seen_find(struct docker_source *ds,
					    const char *id)
{
	size_t i;

	for (i = 0; i < ds->nr_seen; i++)
		if (!strcmp(ds->seen[i].id, id))
			return &ds->seen[i];
	return NULL;
}

static int docker_logged(const struct docker_source *ds, const char *id)
{
	size_t i;

	for (i = 0; i < ds->nr_logged; i++)
		if (!strcmp(ds->logged[i], id))
			return 1;
	return 0;
}

static int docker_listed(json_t *const *items, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(id,
			    json_string_value(json_object_get(items[i], "Id"))))
			return 1;
	return 0;
}

/*
 * Forget inspected and logged containers that are no longer listed, so both
 * lists stay as long as the list of running containers, however many come
 * and go. A container that comes back (a restart keeps its id) is inspected
 * and, when still invalid, logged again.
 */
static void docker_prune(struct docker_source *ds, json_t *const *items,
			 size_t n)
{
	size_t i, kept = 0;

	for (i = 0; i < ds->nr_seen; i++) {
		if (docker_listed(items, n, ds->seen[i].id))
			ds->seen[kept++] = ds->seen[i];
		else
			docker_seen_release(&ds->seen[i]);
	}
	ds->nr_seen = kept;
	kept = 0;
	for (i = 0; i < ds->nr_logged; i++) {
		if (docker_listed(items, n, ds->logged[i]))
			ds->logged[kept++] = ds->logged[i];
		else
			free(ds->logged[i]);
	}
	ds->nr_logged = kept;
}

/* Inspect `id` once and remember the outcome; NULL when the engine is gone. */
static struct docker_seen *docker_inspect(struct docker_source *ds,
					  const char *id, const char *name,
					  enum status *st, struct buf *err)
{
	struct buf path = BUF_INIT, body = BUF_INIT, reason = BUF_INIT,
		   q = BUF_INIT;
	struct buf q2 = BUF_INIT;
	struct docker_seen *seen = docker_seen_find(ds, id);
	char *esc = NULL;

	*st = ST_OK;
	if (seen)
		goto out;
	buf_init(&body, DOCKER_MAX_BODY);
	esc = curl_easy_escape(ds->curl, id, 0);
	buf_addf(&path, "/containers/%s/json", esc ? esc : "");
	*st = docker_get(ds->curl, ds, path.buf, &body, err);
	if (*st == ST_NOT_FOUND) {
		/* Gone between the list and the inspect: the next event says
		 * so. */
		*st = ST_OK;
		goto out;
	}
	if (*st != ST_OK)
		goto out;
	ALLOC_GROW(ds->seen, ds->nr_seen + 1, ds->alloc_seen);
	seen = &ds->seen[ds->nr_seen++];
	memset(seen, 0, sizeof(*seen));
	seen->id = xstrdup(id);
	if (docker_container_parse(body.buf, body.len, ds->network, &seen->svc,
				   &reason)) {
		service_release(&seen->svc);
		seen->reason = buf_detach(&reason, NULL);
		if (!docker_logged(ds, id)) {
			log_event("level=warn event=skip source=docker "
				  "container=%.12s name=%s reason=%s",
				  id, log_quote(&q, name),
				  log_quote(&q2, seen->reason));
			ALLOC_GROW(ds->logged, ds->nr_logged + 1,
				   ds->alloc_logged);
			ds->logged[ds->nr_logged++] = xstrdup(id);
		}
	} else {
		seen->ok = 1;
	}
out:
	curl_free(esc);
	buf_release(&path);
	buf_release(&body);
	buf_release(&reason);
	buf_release(&q);
	buf_release(&q2);
	return seen;
}

static int docker_cmp_created(const void *a, const void *b)
{
	json_int_t x = json_integer_value(
		json_object_get(*(json_t *const *)a, "Created"));
	json_int_t y = json_integer_value(
		json_object_get(*(json_t *const *)b, "Created"));
	const char *ia =
		json_string_value(json_object_get(*(json_t *const *)a, "Id"));
	const char *ib =
		json_string_value(json_object_get(*(json_t *const *)b, "Id"));

	if (x != y)
		return x < y ? -1 : 1;
	return strcmp(ia ? ia : "", ib ? ib : "");
}

/* Add one container's service to `out`; the newest container's settings win. */
static void docker_merge(struct service_list *out, const struct service *one)
{
	struct service *svc = NULL;
	size_t i;

	for (i = 0; i < out->nr; i++)
		if (!strcmp(out->items[i].name, one->name))
			svc = &out->items[i];
	if (!svc) {
		service_copy(service_list_append(out), one);
		return;
	}
	svc->port = one->port;
	svc->mode = one->mode;
	free(svc->predicate);
	svc->predicate = xstrdup(one->predicate);
	free(svc->cookie);
	svc->cookie = one->cookie ? xstrdup(one->cookie) : NULL;
	service_options_release(&svc->opts);
	service_options_copy(&svc->opts, &one->opts);
	for (i = 0; i < one->nr_containers; i++)
		service_put_container(svc, one->containers[i].id,
				      one->containers[i].ip)
			->weight = one->containers[i].weight;
}

static enum status docker_load(struct source *src, struct service_list *out,
			       struct buf *err)
{
	struct docker_source *ds = (struct docker_source *)src;
	struct buf body = BUF_INIT;
	json_error_t jerr;
	json_t *root = NULL, **items = NULL, *c;
	enum status st;
	size_t i, n = 0;

	if (atomic_exchange(&ds->forget, 0))
		docker_seen_clear(ds);
	buf_init(&body, DOCKER_MAX_BODY);
	st = docker_get(ds->curl, ds, "/containers/json", &body, err);
	if (st != ST_OK) {
		st = ST_UNAVAILABLE;
		goto out;
	}
	root = json_loadb(body.buf, body.len, 0, &jerr);
	if (!json_is_array(root)) {
		buf_setf(err, "/containers/json did not answer with an array");
		st = ST_UNAVAILABLE;
		goto out;
	}
	items = xcalloc(json_array_size(root) + 1, sizeof(*items));
	json_array_foreach(root, i, c)
	{
		json_t *names = json_object_get(c, "Names");
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *name = json_string_value(json_array_get(names, 0));

		if (!id)
			continue;
		if (name && *name == '/')
			name++;
		if (ds->keyword && (!name || !strstr(name, ds->keyword)))
			continue;
		items[n++] = c;
	}
	qsort(items, n, sizeof(*items), docker_cmp_created);
	for (i = 0; i < n; i++) {
		const char *id =
			json_string_value(json_object_get(items[i], "Id"));
		const char *name = json_string_value(
			json_array_get(json_object_get(items[i], "Names"), 0));
		struct docker_seen *seen;

		if (name && *name == '/')
			name++;
		seen = docker_inspect(ds, id, name ? name : "", &st, err);
		if (st != ST_OK) {
			st = ST_UNAVAILABLE;
			service_list_release(out);
			goto out;
		}
		if (seen && seen->ok)
			docker_merge(out, &seen->svc);
	}
	docker_prune(ds, items, n);
	service_list_sort(out);
	st = ST_OK;
out:
	free(items);
	json_decref(root);
	buf_release(&body);
	return st;
}

struct docker_stream {
	struct docker_source *ds;
	struct buf line;
	long code;     /* status of the response being received */
	int connected; /* the engine accepted the stream */
};

/* One event (one JSON line) from /events. */
static void docker_on_event(struct docker_stream *s, const char *text,
			    size_t len)
{
	json_t *ev = json_loadb(text, len, 0, NULL);
	const char *action, *id, *name;
	struct buf q = BUF_INIT;
	size_t i;

	if (!ev)
		return;
	action = json_string_value(json_object_get(ev, "Action"));
	if (!action)
		action = json_string_value(json_object_get(ev, "status"));
	id = json_string_value(json_object_get(ev, "id"));
	if (!id)
		id = json_string_value(
			json_object_get(json_object_get(ev, "Actor"), "ID"));
	name = json_string_value(json_object_get(
		json_object_get(json_object_get(ev, "Actor"), "Attributes"),
		"name"));
	for (i = 0; action && i < ARRAY_SIZE(docker_actions); i++) {
		if (strcmp(action, docker_actions[i]))
			continue;
		log_event("level=info event=docker_event action=%s "
			  "container=%.12s name=%s",
			  action, id ? id : "",
			  log_quote(&q, name ? name : ""));
		atomic_store(&s->ds->changed, 1);
		break;
	}
	json_decref(ev);
	buf_release(&q);
}

static size_t docker_stream_write(char *data, size_t size, size_t nmemb,
				  void *ctx)
{
	struct docker_stream *s = ctx;
	size_t len = size * nmemb, i, start = 0;

	if (s->code != 200)
		return len; /* an error body; the status is logged on return */
	if (!s->connected) {
		/* (Re)connected: whatever happened meanwhile was missed. */
		s->connected = 1;
		atomic_store(&s->ds->forget, 1);
		atomic_store(&s->ds->changed, 1);
		struct buf q = BUF_INIT;

		log_event("level=info event=docker_connected socket=%s",
			  log_quote(&q, s->ds->socket));
		buf_release(&q);
	}
	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (buf_add(&s->line, data + start, i - start))
			return 0;
		if (s->line.len)
			docker_on_event(s, s->line.buf, s->line.len);
		buf_reset(&s->line);
		start = i + 1;
	}
	if (buf_add(&s->line, data + start, len - start))
		return 0;
	return len;
}

static int docker_stream_progress(void *ctx, curl_off_t dltotal,
				  curl_off_t dlnow, curl_off_t ultotal,
				  curl_off_t ulnow)
{
	struct docker_stream *s = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(&s->ds->stop) ? 1 : 0;
}

static size_t docker_stream_header(char *data, size_t size, size_t nitems,
				   void *ctx)
{
	struct docker_stream *s = ctx;
	size_t len = size * nitems;

	if (len > 9 && !memcmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', len);

		s->code = sp ? strtol(sp + 1, NULL, 10) : 0;
	}
	/* The engine sends headers at once but may send no event for long. */
	if (len == 2 && !memcmp(data, "\r\n", 2) && s->code == 200)
		(void)docker_stream_write(data, 0, 0, s);
	return len;
}

static void docker_sleep_ms(struct docker_source *ds, unsigned ms)
{
	while (ms && !atomic_load(&ds->stop)) {
		unsigned step = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)step * 1000000L};

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static void *docker_events_thread(void *arg)
{
	struct docker_source *ds = arg;
	struct docker_stream s;
	struct buf url = BUF_INIT, q = BUF_INIT, q2 = BUF_INIT;
	struct backoff backoff;
	uint64_t wait_ms;
	CURL *curl = curl_easy_init();
	char *filters;

	memset(&s, 0, sizeof(s));
	s.ds = ds;
	backoff_init(&backoff, DOCKER_BACKOFF_MIN_MS, DOCKER_BACKOFF_MAX_MS);
	buf_init(&s.line, DOCKER_MAX_EVENT);
	/* Only container events; the actions are picked here, since Docker and
	 * podman name some of them differently. */
	filters = curl_easy_escape(curl, "{\"type\":[\"container\"]}", 0);
	buf_addf(&url, "http://localhost/events?filters=%s",
		 filters ? filters : "");
	while (curl && !atomic_load(&ds->stop)) {
		CURLcode rc;
		long code = 0;

		s.connected = 0;
		s.code = 0;
		buf_reset(&s.line);
		curl_easy_reset(curl);
		curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, ds->socket);
		curl_easy_setopt(curl, CURLOPT_URL, url.buf);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
				 (long)ds->timeout_ms);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
				 docker_stream_write);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
		curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION,
				 docker_stream_header);
		curl_easy_setopt(curl, CURLOPT_HEADERDATA, &s);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION,
				 docker_stream_progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &s);
		rc = curl_easy_perform(curl);
		if (atomic_load(&ds->stop))
			break;
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
		/* Something may have changed while the stream was down. */
		atomic_store(&ds->changed, 1);
		if (s.connected)
			backoff_reset(&backoff);
		wait_ms = backoff_next_ms(&backoff);
		log_event("level=warn event=docker_disconnected socket=%s "
			  "error=%s http=%ld retry_ms=%llu",
			  log_quote(&q, ds->socket),
			  log_quote(&q2, curl_easy_strerror(rc)), code,
			  (unsigned long long)wait_ms);
		docker_sleep_ms(ds, (unsigned)wait_ms);
	}
	curl_free(filters);
	buf_release(&q);
	buf_release(&q2);
	if (curl)
		curl_easy_cleanup(curl);
	buf_release(&url);
	buf_release(&s.line);
	return NULL;
}

static void docker_free(struct source *src)
{
	struct docker_source *ds = (struct docker_source *)src;

	if (!ds)
		return;
	if (ds->thread_started) {
		atomic_store(&ds->stop, 1);
		pthread_join(ds->thread, NULL);
	}
	docker_seen_clear(ds);
	free(ds->seen);
	while (ds->nr_logged)
		free(ds->logged[--ds->nr_logged]);
	free(ds->logged);
	if (ds->curl)
		curl_easy_cleanup(ds->curl);
	free(ds->socket);
	free(ds->keyword);
	free(ds->network);
	free(ds);
}

static int docker_changed(struct source *src)
{
	struct docker_source *ds = (struct docker_source *)src;

	return atomic_exchange(&ds->changed, 0);
}

static void docker_resync(struct source *src)
{
	struct docker_source *ds = (struct docker_source *)src;

	atomic_store(&ds->forget, 1);
	atomic_store(&ds->changed, 1);
}

static const struct source_ops docker_ops = {
	.name = "docker",
	.load = docker_load,
	.changed = docker_changed,
	.resync = docker_resync,
	.free = docker_free,
};

size_t docker_source_nr_seen(const struct source *src)
{
	if (src->ops != &docker_ops)
		BUG("not a docker source");
	return ((const struct docker_source *)src)->nr_seen;
}

enum status docker_source_new(const char *arg,
			      const struct source_options *opts,
			      struct source **out, struct buf *err)
{
	struct docker_source *ds = NULL;
	enum status st = ST_INTERNAL;
	int r;

	*out = NULL;
	if (!arg || !*arg) {
		buf_setf(err, "no socket path after 'docker:'");
		st = ST_INVALID;
		goto out;
	}
	curlx_global_init();
	ds = xcalloc(1, sizeof(*ds));
	ds->src.ops = &docker_ops;
	ds->socket = xstrdup(arg);
	ds->keyword = opts->keyword ? xstrdup(opts->keyword) : NULL;
	ds->network = opts->network ? xstrdup(opts->network) : NULL;
	ds->timeout_ms = opts->timeout_ms;
	atomic_init(&ds->stop, 0);
	atomic_init(&ds->changed, 1);
	atomic_init(&ds->forget, 0);
	ds->curl = curl_easy_init();
	if (!ds->curl) {
		buf_setf(err, "cannot initialise libcurl");
		goto out;
	}
	r = pthread_create(&ds->thread, NULL, docker_events_thread, ds);
	if (r) {
		buf_setf(err, "cannot start the events thread: %s",
			 strerror(r));
		goto out;
	}
	ds->thread_started = 1;
	*out = &ds->src;
	ds = NULL;
	st = ST_OK;
out:
	if (ds)
		docker_free(&ds->src);
	return st;
}
