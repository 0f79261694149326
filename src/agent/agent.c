/*
 * The agent loop: source changes -> debounce -> payload -> POST to the
 * registry -> apply the answer to the local HAProxy. One per HAProxy host.
 */
#include "agent/agent.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/docker.h"
#include "agent/file.h"
#include "agent/haproxy.h"
#include "log.h"
#include "payload.h"
#include "xalloc.h"
#include "banned.h"

/* However busy the source, a change waits at most this long. */
#define AGENT_MAX_DELAY_MS 5000
/* How often the loop looks at the source and the signal flags. */
#define AGENT_TICK_MS	     50
#define AGENT_BACKOFF_MIN_MS 500
#define AGENT_BACKOFF_MAX_MS 30000
/* Characters of one quoted log value. */
#define AGENT_LOG_VALUE_MAX 1000
/* Largest config accepted from the registry. */
#define AGENT_MAX_CONFIG ((size_t)16 << 20)

const struct cli_option agent_options[] = {
	{"registry", "URL",
	 "registry base URL; the agent POSTs to URL/generate", NULL},
	{"table", "NAME", "table of this host in the registry", NULL},
	{"source", "SOURCE",
	 "docker:SOCKET (Docker Engine API) or file:PATH (JSON services)",
	 NULL},
	{"haproxy-config", "PATH",
	 "live config file HAProxy was started with (-f)", NULL},
	{"haproxy-master-socket", "PATH",
	 "master CLI socket (haproxy -W -S PATH)", NULL},
	{"debounce", "MS",
	 "quiet time that ends a burst of changes (at most 5000)", "1000"},
	{"keep", "N", "configs kept next to the live file as PATH.1 .. PATH.N",
	 "5"},
	{"keyword", "WORD", "docker: only containers whose name contains WORD",
	 NULL},
	{"network", "NAME", "docker: network whose address is used", NULL},
	{"haproxy-bin", "PATH", "haproxy binary used for `-c` checks",
	 "haproxy"},
	{"timeout", "MS", "limit for one registry request, check or reload",
	 "10000"},
	{"once", NULL,
	 "sync once and exit: 0 applied or unchanged, 1 refused, 3 unavailable",
	 NULL},
	{NULL, NULL, NULL, NULL},
};

enum {
	OPT_REGISTRY,
	OPT_TABLE,
	OPT_SOURCE,
	OPT_CONFIG,
	OPT_SOCKET,
	OPT_DEBOUNCE,
	OPT_KEEP,
	OPT_KEYWORD,
	OPT_NETWORK,
	OPT_BIN,
	OPT_TIMEOUT,
	OPT_ONCE,
};

struct agent {
	const char *table;
	struct buf url;
	unsigned debounce_ms;
	unsigned timeout_ms;
	struct haproxy_options haproxy;
	struct file_source *file;
	struct docker_source *docker;
	CURL *curl;
	/* Counters, logged with every outcome. */
	unsigned long syncs, applied, unchanged, rejected, reload_failures,
		registry_failures;
};

static volatile sig_atomic_t agent_stop;
static volatile sig_atomic_t agent_hup;

static void agent_on_signal(int sig)
{
	if (sig == SIGHUP)
		agent_hup = 1;
	else
		agent_stop = 1;
}

void agent_log(const char *level, const char *event, const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	va_list ap;

	if (fmt && *fmt) {
		va_start(ap, fmt);
		buf_vaddf(&msg, fmt, ap);
		va_end(ap);
	}
	log_event("level=%s event=%s%s%s", level, event, msg.len ? " " : "",
		  msg.buf);
	buf_release(&msg);
}

const char *agent_quote(struct buf *scratch, const char *s)
{
	size_t i, len = strlen(s);

	buf_reset(scratch);
	buf_addch(scratch, '"');
	/* A log line stays one line and stays short enough to read. */
	for (i = 0; i < len && i < AGENT_LOG_VALUE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			buf_addf(scratch, "\\%c", c);
		else if (c == '\n')
			buf_addstr(scratch, "\\n");
		else if (c < 0x20 || c == 0x7f)
			buf_addf(scratch, "\\x%02x", c);
		else
			buf_addch(scratch, (char)c);
	}
	if (len > AGENT_LOG_VALUE_MAX)
		buf_addstr(scratch, "...");
	buf_addch(scratch, '"');
	return scratch->buf;
}

int agent_service_settings(struct service *svc, const char *name,
			   const char *port, const char *mode,
			   const char *predicate, const char *cookie,
			   struct buf *err)
{
	struct buf canon = BUF_INIT;
	int ret = -1;

	if (!name || !*name) {
		buf_setf(err, "no service name");
		goto out;
	}
	if (payload_check_name(name, err))
		goto out;
	svc->name = xstrdup(name);
	if (!port || !*port) {
		buf_setf(err, "no port");
		goto out;
	}
	if (payload_check_port_string(port, &svc->port, err))
		goto out;
	svc->mode = CONFIG_MODE_HOST;
	if (mode && *mode && config_mode_parse(mode, &svc->mode)) {
		buf_setf(err, "config mode '%s' is neither 'host' nor 'path'",
			 mode);
		goto out;
	}
	if (!predicate || !*predicate) {
		buf_setf(err, "no predicate");
		goto out;
	}
	if (payload_check_predicate(svc->mode, predicate, &canon, err))
		goto out;
	svc->predicate = buf_detach(&canon, NULL);
	if (cookie && *cookie) {
		if (payload_check_cookie(cookie, err))
			goto out;
		svc->cookie = xstrdup(cookie);
	}
	ret = 0;
out:
	buf_release(&canon);
	return ret;
}

int agent_service_add_container(struct service *svc, const char *id,
				const char *ip, struct buf *err)
{
	struct buf canon = BUF_INIT;
	int ret = -1;

	if (!id || !*id) {
		buf_setf(err, "container without id");
		goto out;
	}
	/* Container ids become server names: the same rules as service names.
	 */
	if (payload_check_name(id, err))
		goto out;
	if (!ip || !*ip) {
		buf_setf(err, "container '%s' has no address", id);
		goto out;
	}
	if (payload_check_ip(ip, &canon, err))
		goto out;
	service_put_container(svc, id, canon.buf);
	ret = 0;
out:
	buf_release(&canon);
	return ret;
}

/* {table, running: every container, candidates: services with containers}. */
static void agent_build_payload(const char *table,
				const struct service_list *list,
				struct buf *out)
{
	struct service_list candidates;
	size_t i, j, n = 0;

	service_list_init(&candidates);
	buf_addstr(out, "{\"table\":");
	buf_addjson(out, table, strlen(table));
	buf_addstr(out, ",\"running\":[");
	for (i = 0; i < list->nr; i++) {
		const struct service *svc = &list->items[i];

		for (j = 0; j < svc->nr_containers; j++) {
			buf_addstr(out, n++ ? ",{\"serviceName\":"
					    : "{\"serviceName\":");
			buf_addjson(out, svc->name, strlen(svc->name));
			buf_addstr(out, ",\"id\":");
			buf_addjson(out, svc->containers[j].id,
				    strlen(svc->containers[j].id));
			buf_addstr(out, ",\"ip\":");
			buf_addjson(out, svc->containers[j].ip,
				    strlen(svc->containers[j].ip));
			buf_addch(out, '}');
		}
		/* A service without containers has nothing to route to. */
		if (svc->nr_containers)
			service_copy(service_list_append(&candidates), svc);
	}
	buf_addstr(out, "],\"candidates\":");
	payload_services_json(&candidates, 0, out);
	buf_addch(out, '}');
	service_list_release(&candidates);
}

static size_t agent_curl_write(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;

	/* Returning short makes curl fail the transfer: never a cut config. */
	if (buf_add(b, data, size * nmemb))
		return 0;
	return size * nmemb;
}

/* POST the payload; the answer's body is the config. */
static enum status agent_post(struct agent *a, const struct buf *payload,
			      struct buf *config, struct buf *err)
{
	struct curl_slist *headers = NULL;
	struct buf body = BUF_INIT;
	enum status st = ST_UNAVAILABLE;
	long code = 0;
	CURLcode rc;

	buf_init(&body, AGENT_MAX_CONFIG);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_reset(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_URL, a->url.buf);
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, payload->buf);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)payload->len);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, agent_curl_write);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(a->timeout_ms < 3000 ? a->timeout_ms : 3000));
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT,
			 "lambda-registry-agent/" LR_VERSION);
	rc = curl_easy_perform(a->curl);
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR && body.len)
			buf_setf(err,
				 "config from '%s' is larger than %zu bytes",
				 a->url.buf, AGENT_MAX_CONFIG);
		else
			buf_setf(err, "POST '%s': %s", a->url.buf,
				 curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		buf_setf(err, "POST '%s' answered %ld: ", a->url.buf, code);
		buf_addquoted(err, body.buf, body.len > 300 ? 300 : body.len);
		/* 4xx: this payload will not do better next time; 5xx: it may.
		 */
		st = code >= 400 && code < 500 ? ST_INVALID : ST_UNAVAILABLE;
		goto out;
	}
	if (!body.len || body.buf[body.len - 1] != '\n' ||
	    memchr(body.buf, '\0', body.len)) {
		buf_setf(err, "POST '%s' answered with %s", a->url.buf,
			 body.len ? "a config that is not text ending in a "
				    "newline"
				  : "an empty config");
		goto out;
	}
	buf_reset(config);
	buf_add(config, body.buf, body.len);
	st = ST_OK;
out:
	curl_slist_free_all(headers);
	buf_release(&body);
	return st;
}

static enum status agent_load(struct agent *a, struct service_list *list,
			      struct buf *err)
{
	if (a->file)
		return file_source_load(a->file, list, err);
	return docker_source_load(a->docker, list, err);
}

static int agent_source_changed(struct agent *a)
{
	if (a->file)
		return file_source_changed(a->file);
	return docker_source_changed(a->docker);
}

/*
 * One round: read the source, ask the registry, apply. ST_UNAVAILABLE means
 * "try again later"; anything else ends the round.
 */
static enum status agent_sync(struct agent *a, const char *why)
{
	struct buf payload = BUF_INIT, config = BUF_INIT, err = BUF_INIT,
		   q = BUF_INIT;
	struct service_list list;
	enum haproxy_outcome outcome;
	struct timespec t0, t1;
	enum status st;
	size_t i, nr_containers = 0;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	service_list_init(&list);
	a->syncs++;
	st = agent_load(a, &list, &err);
	if (st != ST_OK) {
		agent_log("error", "source_failed", "status=%s error=%s",
			  status_name(st), agent_quote(&q, err.buf));
		goto out;
	}
	for (i = 0; i < list.nr; i++)
		nr_containers += list.items[i].nr_containers;
	agent_build_payload(a->table, &list, &payload);

	st = agent_post(a, &payload, &config, &err);
	if (st != ST_OK) {
		a->registry_failures++;
		agent_log("error", "registry_failed",
			  "status=%s registry_failures=%lu error=%s",
			  status_name(st), a->registry_failures,
			  agent_quote(&q, err.buf));
		goto out;
	}

	buf_reset(&err);
	st = haproxy_apply(&a->haproxy, config.buf, config.len, &outcome, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	switch (outcome) {
	case HAPROXY_UNCHANGED:
		a->unchanged++;
		agent_log("info", "unchanged",
			  "why=%s services=%zu containers=%zu bytes=%zu ms=%ld",
			  why, list.nr, nr_containers, config.len, ms);
		break;
	case HAPROXY_APPLIED:
		a->applied++;
		agent_log("info", "reloaded",
			  "why=%s services=%zu containers=%zu bytes=%zu ms=%ld "
			  "reloads=%lu",
			  why, list.nr, nr_containers, config.len, ms,
			  a->applied);
		break;
	case HAPROXY_REJECTED:
		a->rejected++;
		agent_log("error", "config_rejected", "rejected=%lu error=%s",
			  a->rejected, agent_quote(&q, err.buf));
		break;
	case HAPROXY_DEFERRED:
		agent_log("error", "haproxy_unreachable", "error=%s",
			  agent_quote(&q, err.buf));
		st = ST_UNAVAILABLE;
		break;
	case HAPROXY_ROLLED_BACK:
	case HAPROXY_BROKEN:
		a->reload_failures++;
		agent_log("error", "reload_failed",
			  "outcome=%s reload_failures=%lu error=%s",
			  haproxy_outcome_name(outcome), a->reload_failures,
			  agent_quote(&q, err.buf));
		if (st == ST_OK)
			st = ST_INTERNAL;
		/* Retrying the same config would fail the same way. */
		if (st == ST_UNAVAILABLE)
			st = ST_INVALID;
		break;
	}
out:
	service_list_release(&list);
	buf_release(&payload);
	buf_release(&config);
	buf_release(&err);
	buf_release(&q);
	return st;
}

static long long agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int agent_loop(struct agent *a)
{
	long long now = agent_now_ms(), first = now, last = now, retry_at = 0;
	unsigned backoff = AGENT_BACKOFF_MIN_MS;
	const char *why = "start";
	int pending = 1, immediate = 1;

	while (!agent_stop) {
		struct timespec tick = {0, AGENT_TICK_MS * 1000000L};

		now = agent_now_ms();
		if (agent_hup) {
			agent_hup = 0;
			agent_log("info", "resync", "why=sighup");
			if (a->docker)
				docker_source_resync(a->docker);
			pending = immediate = 1;
			retry_at = 0;
			why = "sighup";
		}
		if (agent_source_changed(a)) {
			if (!pending) {
				first = now;
				why = "change";
			}
			/* New input (or an engine that is back) is worth a try
			 * now rather than at the end of a long backoff; the
			 * debounce still spaces the tries. */
			if (retry_at) {
				retry_at = 0;
				backoff = AGENT_BACKOFF_MIN_MS;
			}
			pending = 1;
			last = now;
		}
		if (pending && now >= retry_at &&
		    (immediate || now - last >= a->debounce_ms ||
		     now - first >= AGENT_MAX_DELAY_MS)) {
			enum status st = agent_sync(a, why);

			immediate = 0;
			if (st == ST_UNAVAILABLE) {
				agent_log("info", "retry", "in_ms=%u", backoff);
				retry_at = agent_now_ms() + backoff;
				backoff = backoff * 2 > AGENT_BACKOFF_MAX_MS
						  ? AGENT_BACKOFF_MAX_MS
						  : backoff * 2;
				why = "retry";
			} else {
				pending = 0;
				backoff = AGENT_BACKOFF_MIN_MS;
				retry_at = 0;
			}
			continue;
		}
		/* Signals cut the sleep short. */
		nanosleep(&tick, NULL);
	}
	agent_log("info", "stop",
		  "syncs=%lu reloads=%lu unchanged=%lu rejected=%lu "
		  "reload_failures=%lu "
		  "registry_failures=%lu",
		  a->syncs, a->applied, a->unchanged, a->rejected,
		  a->reload_failures, a->registry_failures);
	return 0;
}

static int agent_parse_ms(const char *name, const char *s,
			  unsigned long long max, unsigned *out)
{
	struct buf err = BUF_INIT;
	unsigned long long n;
	int ret = 0;

	if (cli_parse_size(s, max, &n, &err)) {
		fprintf(stderr, "lambda-registry agent: --%s: %s\n", name,
			err.buf);
		ret = -1;
	}
	*out = (unsigned)n;
	buf_release(&err);
	return ret;
}

int agent_main(const char *const *v, int argc, char **argv)
{
	struct agent a;
	struct docker_options dopts;
	struct buf err = BUF_INIT, q = BUF_INIT, q2 = BUF_INIT;
	struct sigaction sa;
	const char *src = v[OPT_SOURCE];
	int code = 2;
	size_t i;
	enum status st;

	memset(&a, 0, sizeof(a));
	buf_init(&a.url, 0);
	if (argc > 0) {
		fprintf(stderr,
			"lambda-registry agent: unexpected argument '%s'\n",
			argv[0]);
		goto out;
	}
	for (i = OPT_REGISTRY; i <= OPT_SOCKET; i++) {
		if (!v[i] || !*v[i]) {
			fprintf(stderr,
				"lambda-registry agent: --%s is required\n",
				agent_options[i].name);
			goto out;
		}
	}
	if (payload_check_table(v[OPT_TABLE], &err)) {
		fprintf(stderr, "lambda-registry agent: --table: %s\n",
			err.buf);
		goto out;
	}
	a.table = v[OPT_TABLE];
	if (agent_parse_ms("debounce", v[OPT_DEBOUNCE], AGENT_MAX_DELAY_MS,
			   &a.debounce_ms) ||
	    agent_parse_ms("keep", v[OPT_KEEP], 1000, &a.haproxy.keep) ||
	    agent_parse_ms("timeout", v[OPT_TIMEOUT], 600000, &a.timeout_ms))
		goto out;
	if (a.timeout_ms < 100) {
		fprintf(stderr, "lambda-registry agent: --timeout: must be at "
				"least 100\n");
		goto out;
	}
	buf_addstr(&a.url, v[OPT_REGISTRY]);
	while (a.url.len && a.url.buf[a.url.len - 1] == '/')
		buf_setlen(&a.url, a.url.len - 1);
	if (a.url.len < 9 || strcmp(a.url.buf + a.url.len - 9, "/generate"))
		buf_addstr(&a.url, "/generate");
	a.haproxy.config = v[OPT_CONFIG];
	a.haproxy.master_socket = v[OPT_SOCKET];
	a.haproxy.bin = v[OPT_BIN];
	a.haproxy.timeout_ms = a.timeout_ms;

	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		fprintf(stderr,
			"lambda-registry agent: cannot initialise libcurl\n");
		code = 3;
		goto out;
	}
	a.curl = curl_easy_init();
	if (!a.curl) {
		fprintf(stderr,
			"lambda-registry agent: cannot initialise libcurl\n");
		code = 3;
		goto out;
	}
	if (!strncmp(src, "file:", 5) && src[5]) {
		a.file = file_source_new(src + 5);
	} else if (!strncmp(src, "docker:", 7) && src[7]) {
		dopts.socket = src + 7;
		dopts.keyword = v[OPT_KEYWORD] && *v[OPT_KEYWORD]
					? v[OPT_KEYWORD]
					: NULL;
		dopts.network = v[OPT_NETWORK] && *v[OPT_NETWORK]
					? v[OPT_NETWORK]
					: NULL;
		dopts.timeout_ms = a.timeout_ms;
		st = docker_source_new(&dopts, &a.docker, &err);
		if (st != ST_OK) {
			fprintf(stderr, "lambda-registry agent: --source: %s\n",
				err.buf);
			goto out;
		}
	} else {
		fprintf(stderr,
			"lambda-registry agent: --source: '%s' is neither "
			"docker:SOCKET nor file:PATH\n",
			src);
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = agent_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	agent_log("info", "start",
		  "table=%s source=%s registry=%s config=%s debounce_ms=%u",
		  agent_quote(&err, a.table), agent_quote(&q, src), a.url.buf,
		  agent_quote(&q2, a.haproxy.config), a.debounce_ms);
	if (v[OPT_ONCE]) {
		st = agent_sync(&a, "once");
		code = st == ST_OK ? 0 : st == ST_UNAVAILABLE ? 3 : 1;
		goto out;
	}
	code = agent_loop(&a);
out:
	docker_source_free(a.docker);
	file_source_free(a.file);
	if (a.curl)
		curl_easy_cleanup(a.curl);
	curl_global_cleanup();
	buf_release(&a.url);
	buf_release(&q);
	buf_release(&q2);
	buf_release(&err);
	return code;
}
