/*
 * The agent loop: source changes -> debounce -> payload -> POST to the
 * registry -> apply the answer to the local HAProxy. One per HAProxy host.
 */
#include "agent/agent.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/docker.h"
#include "agent/file.h"
#include "agent/answer.h"
#include "agent/follow.h"
#include "agent/haproxy.h"
#include "agent/runtime.h"
#include "agent/metrics_http.h"
#include "agent/source.h"
#include "clock.h"
#include "curlx.h"
#include "log.h"
#include "metrics.h"
#include "payload.h"
#include "render.h"
#include "report.h"
#include "xalloc.h"
#include "banned.h"

/* However busy the source, a change waits at most this long. */
#define AGENT_MAX_DELAY_MS 5000
/* How often the loop looks at the source and the signal flags. */
#define AGENT_TICK_MS	     50
#define AGENT_BACKOFF_MIN_MS 500
#define AGENT_BACKOFF_MAX_MS 30000
/* Largest config accepted from the registry. */
#define AGENT_MAX_CONFIG HAPROXY_CONFIG_MAX

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
	{"timeout", "MS", "limit for one registry request or one reload",
	 "10000"},
	{"check-timeout", "MS",
	 "limit for `haproxy -c` on a small config; grows with the size",
	 "10000"},
	{"check-timeout-per-mb", "MS",
	 "time `haproxy -c` is allowed for every MB of config", "12000"},
	{"once", NULL,
	 "sync once and exit: 0 applied or unchanged, 1 refused, 3 unavailable",
	 NULL},
	{"token-file", "PATH",
	 "file holding the registry token (sent as Authorization: Bearer); "
	 "must not be readable by group or others",
	 NULL},
	{"ca-file", "PEM",
	 "CA certificates that verify an https:// registry (default: the "
	 "system's)",
	 NULL},
	{"runtime", "on|off",
	 "apply changes of servers and map entries only through HAProxy's "
	 "runtime API instead of a reload",
	 "on"},
	{"drain-timeout", "MS",
	 "runtime: how long a removed server may keep its connections",
	 "10000"},
	{"drift-check", "MS",
	 "runtime: how often HAProxy's servers are compared with the file",
	 "300000"},
	{"follow", NULL,
	 "no source: apply every new config of --table as the registry "
	 "stores it (a long poll)",
	 NULL},
	{"metrics-listen", "ADDR:PORT",
	 "serve the agent's Prometheus metrics on GET /metrics (default: off)",
	 NULL},
	{"agent-id", "NAME",
	 "this host's name in the reports to the registry (default: the host "
	 "name)",
	 NULL},
	{"watch", "on|off",
	 "after a POST, long-poll --table's config and apply a newer one that "
	 "another writer stored",
	 "on"},
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
	OPT_CHECK_TIMEOUT,
	OPT_CHECK_PER_MB,
	OPT_ONCE,
	OPT_TOKEN_FILE,
	OPT_CA_FILE,
	OPT_RUNTIME,
	OPT_DRAIN_TIMEOUT,
	OPT_DRIFT_CHECK,
	OPT_FOLLOW,
	OPT_METRICS_LISTEN,
	OPT_AGENT_ID,
	OPT_WATCH,
};

/* How long one long poll (--follow, or the watch) waits for a change. */
#define AGENT_WATCH_WAIT_MS 30000

/* The sources --source can name, as NAME:ARG. */
static const struct {
	const char *name;
	source_new_fn *new_source;
} agent_sources[] = {
	{"file", file_source_new},
	{"docker", docker_source_new},
};

struct agent {
	const char *table;
	struct buf url;
	unsigned debounce_ms;
	unsigned timeout_ms;
	struct haproxy_options haproxy;
	struct runtime_options runtime;
	unsigned drift_ms;
	uint64_t drift_at;   /* when HAProxy is next compared with the file */
	char *authorization; /* "Authorization: Bearer ..."; NULL: none */
	const char *ca_file;
	struct source *source;
	CURL *curl;
	struct backoff backoff; /* between tries of one pending change */
	struct metrics_http *metrics;
	char agent_id[SERVICE_NAME_MAX + 1];
	struct buf report_url; /* PUT after each apply */
	long http_code;	       /* of the last answer; 0: none */
	uint64_t index;	       /* the X-Registry-Index of the config applied */
	/* The highest index HAProxy is known to run (`live` set once one is).
	 */
	int live;
	uint64_t live_index;
	/* The index of what HAProxy runs (0: unknown), sent as If-None-Match:
	 * an unchanged call then downloads and applies nothing. */
	uint64_t applied_index;
	/* The registry's token for the last body it answered with one, and
	 * that body's digest: the same body again is sent as the token alone
	 * (Expect: 100-continue; the body follows only if asked for). */
	char body_token[2 * REGISTRY_TOKEN_LEN + 1];
	unsigned char body_digest[REGISTRY_DIGEST_LEN];
	int body_sent; /* the last POST sent its body */
	/* The watch: a long poll of the table's config, on `multi` so that the
	 * loop goes on looking at the source while it is parked. */
	int watch_on, watch_ready, watching;
	CURLM *multi;
	CURL *watch_curl;
	struct curl_slist *watch_headers;
	struct buf watch_base; /* .../v1/tables/TABLE/config */
	struct buf watch_url, watch_body;
	struct answer watch_ans;
	uint64_t watch_index; /* the index the next poll waits on */
	uint64_t watch_at;    /* the next poll starts then, not before */
	struct backoff watch_backoff;
	/* Counters, logged with every outcome. */
	unsigned long syncs, applied, unchanged, rejected, reload_failures,
		registry_failures, check_timeouts, local_errors,
		runtime_applied, runtime_failures, drift_repairs, watch_polls,
		watch_applies, watch_failures;
};

/* What the loop does after a round. */
enum agent_next {
	AGENT_DONE,  /* applied or unchanged: wait for the source */
	AGENT_RETRY, /* not applied, may work later: try again after backoff */
	/* refused in a way that only new input can change: wait for the
	 * source, but do not spin on the same input */
	AGENT_WAIT,
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

static void agent_set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = agent_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void agent_log(const char *level, const char *event, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

static void agent_log(const char *level, const char *event, const char *fmt,
		      ...)
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

/*
 * POST the payload asking for the JSON answer (the config and its map
 * files); a registry that answers plain text gives the config alone.
 */
static enum status agent_post(struct agent *a, const struct buf *payload,
			      struct answer *ans, int *not_modified,
			      struct buf *err)
{
	struct curl_slist *headers = NULL;
	struct buf body = BUF_INIT, why = BUF_INIT, inm = BUF_INIT,
		   token = BUF_INIT;
	struct registry_digest *d = registry_digest_new();
	unsigned char digest[REGISTRY_DIGEST_LEN];
	enum status st = ST_UNAVAILABLE;
	const char *type = NULL;
	long code = 0, sent = 0;
	CURLcode rc;

	/* The JSON answer also carries the services and the maps. */
	buf_init(&body, 3 * AGENT_MAX_CONFIG);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Accept: application/json");
	registry_digest_add(d, payload->buf, payload->len);
	registry_digest_final(d, digest);
	/* The body HAProxy runs the answer of, again: its token may do. */
	if (a->applied_index && a->body_token[0] &&
	    !memcmp(digest, a->body_digest, sizeof(digest))) {
		buf_setf(&token, "X-Registry-Body-Token: %s", a->body_token);
		headers = curl_slist_append(headers, token.buf);
		headers = curl_slist_append(headers, "Expect: 100-continue");
	} else {
		headers = curl_slist_append(headers, "Expect:");
	}
	if (a->applied_index) {
		buf_setf(&inm, "If-None-Match: \"%llu\"",
			 (unsigned long long)a->applied_index);
		headers = curl_slist_append(headers, inm.buf);
	}
	if (a->authorization)
		headers = curl_slist_append(headers, a->authorization);
	curl_easy_reset(a->curl);
	if (a->ca_file)
		curl_easy_setopt(a->curl, CURLOPT_CAINFO, a->ca_file);
	curl_easy_setopt(a->curl, CURLOPT_URL, a->url.buf);
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, payload->buf);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)payload->len);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(a->curl, CURLOPT_HEADERFUNCTION, answer_header);
	curl_easy_setopt(a->curl, CURLOPT_HEADERDATA, ans);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(a->timeout_ms < 3000 ? a->timeout_ms : 3000));
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT,
			 "lambda-registry-agent/" LR_VERSION);
	a->http_code = 0;
	rc = curl_easy_perform(a->curl);
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR && body.len)
			buf_setf(err,
				 "answer from '%s' is larger than %zu bytes",
				 a->url.buf, body.cap);
		else
			buf_setf(err, "POST '%s': %s", a->url.buf,
				 curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &code);
	a->http_code = code;
	curl_easy_getinfo(a->curl, CURLINFO_SIZE_UPLOAD_T, &sent);
	a->body_sent = sent > 0 || !payload->len;
	if (code == 200 || code == 304) {
		memcpy(a->body_token, ans->token, sizeof(a->body_token));
		memcpy(a->body_digest, digest, sizeof(digest));
	}
	*not_modified = code == 304 && a->applied_index;
	if (*not_modified) {
		st = ST_OK;
		goto out;
	}
	if (code != 200) {
		buf_setf(err, "POST '%s' answered %ld: ", a->url.buf, code);
		buf_addquoted(err, body.buf, body.len > 300 ? 300 : body.len);
		/* For --once: a 4xx refuses this payload, a 5xx is an outage.
		 * The loop retries both: API Gateway throttles with a 429. */
		st = code >= 400 && code < 500 ? ST_INVALID : ST_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_CONTENT_TYPE, &type);
	if (answer_parse(type, &body, ans, &why)) {
		buf_setf(err, "POST '%s' answered, but %s", a->url.buf,
			 why.buf);
		goto out;
	}
	st = ST_OK;
out:
	curl_slist_free_all(headers);
	buf_release(&body);
	buf_release(&why);
	buf_release(&inm);
	buf_release(&token);
	return st;
}

/* A failed call to the registry, by its HTTP status (0: no answer). */
static void agent_count_registry_error(const struct agent *a)
{
	char code[12];

	(void)snprintf(code, sizeof(code), "%ld", a->http_code);
	metrics_counter_add(&metrics_agent_registry_errors,
			    (const char *const[]){code}, 1);
}

/* How an outcome was applied: nothing to do, at runtime, or a reload. */
static const char *agent_method(enum haproxy_outcome outcome, int runtime)
{
	if (outcome == HAPROXY_UNCHANGED)
		return "noop";
	return runtime ? "runtime" : "reload";
}

/* The metrics of one apply that ended with `outcome` (`runtime`: through
 * the runtime API, without a reload). */
static void agent_count_apply(const struct agent *a,
			      enum haproxy_outcome outcome, int runtime)
{
	int ok = outcome == HAPROXY_UNCHANGED || outcome == HAPROXY_APPLIED;

	metrics_counter_add(&metrics_agent_applies,
			    (const char *const[]){
				    agent_method(outcome, runtime),
				    ok ? "ok" : haproxy_outcome_name(outcome)},
			    1);
	if (outcome == HAPROXY_APPLIED && !runtime)
		metrics_counter_add(&metrics_agent_reloads, NULL, 1);
	if (outcome == HAPROXY_ROLLED_BACK || outcome == HAPROXY_BROKEN)
		metrics_counter_add(&metrics_agent_rollbacks, NULL, 1);
	if (outcome == HAPROXY_REJECTED)
		metrics_counter_add(&metrics_agent_config_rejections, NULL, 1);
	metrics_gauge_set(&metrics_agent_last_success, NULL, ok);
	metrics_gauge_set(&metrics_agent_last_timestamp, NULL,
			  (double)clock_real_ms() / 1000.0);
	if (ok)
		metrics_gauge_set(&metrics_agent_applied_index, NULL,
				  (double)a->index);
}

/* Servers UP and DOWN in the `status` column of `show stat` CSV ("no
 * check" counts as up: HAProxy sends it traffic). */
static void agent_count_servers(const char *csv, struct report *r)
{
	const char *line = csv, *p;
	long column = -1;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		long i = 0;

		if (line[0] == '#') {
			for (p = line + 2; p < line + len; i++) {
				size_t f = strcspn(p, ",\n");

				if (f == 6 && !strncmp(p, "status", 6))
					column = i;
				p += f + 1;
			}
		} else if (column >= 0 && len) {
			for (p = line; i < column && p < line + len; i++)
				p += strcspn(p, ",\n") + 1;
			if (p < line + len && (!strncmp(p, "UP", 2) ||
					       !strncmp(p, "no check", 8)))
				r->up++;
			else if (p < line + len && !strncmp(p, "DOWN", 4))
				r->down++;
		}
		line = end ? end + 1 : NULL;
	}
}

/*
 * Tell the registry what this host runs now: PUT the report, with the
 * version and server states HAProxy gives over the master CLI. A failure
 * is logged and counted; the next apply reports again.
 */
static void agent_report(struct agent *a, enum haproxy_outcome outcome,
			 int runtime)
{
	struct curl_slist *headers = NULL;
	struct buf json = BUF_INIT, out = BUF_INIT, err = BUF_INIT,
		   q = BUF_INIT, body = BUF_INIT;
	struct report r;
	size_t i, n = 0;
	CURLcode rc;
	long code = 0;

	memset(&r, 0, sizeof(r));
	r.applied_index = a->index;
	r.method = agent_method(outcome, runtime);
	(void)snprintf(r.result, sizeof(r.result), "%s",
		       haproxy_outcome_name(outcome));
	if (haproxy_master_command(a->haproxy.master_socket,
				   "show version;quit", a->timeout_ms, &out,
				   &err) == ST_OK)
		for (i = 0; i < out.len && n + 1 < sizeof(r.haproxy_version) &&
			    out.buf[i] > ' ' && out.buf[i] < 127;
		     i++)
			r.haproxy_version[n++] = out.buf[i];
	if (!n)
		(void)snprintf(r.haproxy_version, sizeof(r.haproxy_version),
			       "unknown");
	buf_reset(&out);
	if (haproxy_master_command(a->haproxy.master_socket,
				   "@1 show stat -1 4 -1;quit", a->timeout_ms,
				   &out, &err) == ST_OK)
		agent_count_servers(out.buf, &r);
	report_json(&r, &json);
	buf_init(&body, BUF_CAP_MESSAGE);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	if (a->authorization)
		headers = curl_slist_append(headers, a->authorization);
	curl_easy_reset(a->curl);
	if (a->ca_file)
		curl_easy_setopt(a->curl, CURLOPT_CAINFO, a->ca_file);
	curl_easy_setopt(a->curl, CURLOPT_URL, a->report_url.buf);
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, json.buf);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)json.len);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT,
			 "lambda-registry-agent/" LR_VERSION);
	rc = curl_easy_perform(a->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		a->http_code = code;
		agent_count_registry_error(a);
		if (rc != CURLE_OK)
			buf_setf(&err, "%s", curl_easy_strerror(rc));
		else
			buf_setf(&err, "answered %ld: %s", code, body.buf);
		agent_log("error", "report_failed", "error=%s",
			  log_quote(&q, err.buf));
	}
	curl_slist_free_all(headers);
	buf_release(&json);
	buf_release(&out);
	buf_release(&err);
	buf_release(&q);
	buf_release(&body);
}

/* A config at `index` is live (0: the registry gave none). */
static void agent_set_live(struct agent *a, uint64_t index)
{
	a->applied_index = index;
	a->live = 1;
	if (index > a->live_index)
		a->live_index = index;
}

/*
 * Apply an answer of the registry (to a POST, or to the watch): at runtime
 * where that is enough, else through a checked, rolled-back reload. `what`
 * says why for the log line; `t0` is when the round began. The status and
 * `next` are as agent_sync() gives them.
 */
static enum status agent_apply(struct agent *a, struct answer *ans,
			       const char *what, uint64_t t0,
			       enum agent_next *next)
{
	struct buf err = BUF_INIT, q = BUF_INIT, rt = BUF_INIT, q2 = BUF_INIT;
	struct haproxy_file files[HAPROXY_MAX_FILES];
	struct buf *config = &ans->config;
	struct runtime_plan plan;
	enum runtime_outcome ro;
	enum haproxy_outcome outcome;
	enum status st = ST_OK;
	unsigned long long ms;
	size_t nr_files;

	*next = AGENT_RETRY;
	memset(&plan, 0, sizeof(plan));
	/* The index of the config HAProxy gets, for the metrics and the
	 * report. */
	a->index = ans->index;
	nr_files = answer_files(ans, files);
	/* Why not at runtime, or what failed there: for the reload's line. */
	ro = runtime_apply(&a->haproxy, &a->runtime, config->buf, config->len,
			   files, nr_files, &plan, &rt);
	ms = (unsigned long long)(clock_now_ms() - t0);
	if (ro == RUNTIME_APPLIED) {
		a->runtime_applied++;
		agent_set_live(a, ans->index);
		*next = AGENT_DONE;
		agent_log("info", "applied",
			  "method=runtime servers_added=%u servers_removed=%u "
			  "servers_readdressed=%u map_set=%u map_added=%u "
			  "map_removed=%u ms=%llu %s bytes=%zu",
			  plan.added, plan.removed, plan.readdressed,
			  plan.map_set, plan.map_added, plan.map_removed, ms,
			  what, config->len);
		agent_count_apply(a, HAPROXY_APPLIED, 1);
		agent_report(a, HAPROXY_APPLIED, 1);
		goto out;
	}
	if (ro == RUNTIME_FAILED) {
		a->runtime_failures++;
		agent_log("warning", "runtime_failed",
			  "runtime_failures=%lu error=%s note=\"falling back "
			  "to a reload\"",
			  a->runtime_failures, log_quote(&q, rt.buf));
		/* Whatever the reload path does, HAProxy may hold runtime
		 * changes the file does not: compare them soon. */
		a->drift_at = 0;
	}
	buf_reset(&err);
	st = haproxy_apply_set(&a->haproxy, config->buf, config->len, files,
			       nr_files, &outcome, &err);
	ms = (unsigned long long)(clock_now_ms() - t0);
	if (outcome == HAPROXY_APPLIED && ro == RUNTIME_FAILED)
		a->drift_at = clock_now_ms() + a->drift_ms;
	switch (outcome) {
	case HAPROXY_UNCHANGED:
		a->unchanged++;
		agent_set_live(a, ans->index);
		*next = AGENT_DONE;
		agent_log("info", "unchanged", "%s bytes=%zu ms=%llu", what,
			  config->len, ms);
		break;
	case HAPROXY_APPLIED:
		a->applied++;
		agent_set_live(a, ans->index);
		*next = AGENT_DONE;
		agent_log("info", "applied",
			  "method=reload servers_added=%u servers_removed=%u "
			  "servers_readdressed=%u ms=%llu %s bytes=%zu "
			  "reloads=%lu runtime=%s",
			  plan.added, plan.removed, plan.readdressed, ms, what,
			  config->len, a->applied, log_quote(&q2, rt.buf));
		break;
	case HAPROXY_REJECTED:
		a->rejected++;
		agent_log("error", "config_rejected",
			  "bytes=%zu rejected=%lu error=%s", config->len,
			  a->rejected, log_quote(&q, err.buf));
		break;
	case HAPROXY_CHECK_TIMEOUT:
		a->check_timeouts++;
		*next = AGENT_WAIT;
		agent_log("error", "check_timeout",
			  "bytes=%zu limit_ms=%u check_timeouts=%lu error=%s",
			  config->len,
			  haproxy_check_timeout_ms(&a->haproxy, config->len),
			  a->check_timeouts, log_quote(&q, err.buf));
		break;
	case HAPROXY_DEFERRED:
		agent_log("error", "haproxy_unreachable", "error=%s",
			  log_quote(&q, err.buf));
		break;
	case HAPROXY_LOCAL_ERROR:
		a->local_errors++;
		agent_log("error", "local_error", "local_errors=%lu error=%s",
			  a->local_errors, log_quote(&q, err.buf));
		break;
	case HAPROXY_ROLLED_BACK:
	case HAPROXY_BROKEN:
		a->reload_failures++;
		agent_log("error", "reload_failed",
			  "outcome=%s reload_failures=%lu error=%s",
			  haproxy_outcome_name(outcome), a->reload_failures,
			  log_quote(&q, err.buf));
		/* For --once: the reload failed, whatever the reason. */
		if (st == ST_OK || st == ST_UNAVAILABLE)
			st = ST_INVALID;
		break;
	}
	agent_count_apply(a, outcome, 0);
	/* After anything but success, ask for the whole answer again. */
	if (outcome != HAPROXY_UNCHANGED && outcome != HAPROXY_APPLIED)
		a->applied_index = 0;
	/* A master that did not answer has nothing to report. */
	if (outcome != HAPROXY_DEFERRED)
		agent_report(a, outcome, 0);
out:
	runtime_plan_release(&plan);
	buf_release(&rt);
	buf_release(&q2);
	buf_release(&err);
	buf_release(&q);
	return st;
}

/* The watch goes on from `ans`, this process's own POST answer: a poll
 * still waiting on an older index would only bring this config back. */
static void agent_watch_restart(struct agent *a, const struct answer *ans)
{
	if (!a->watch_on || !ans->has_index)
		return;
	if (a->watching && a->watch_index != ans->index) {
		curl_multi_remove_handle(a->multi, a->watch_curl);
		a->watching = 0;
	}
	a->watch_ready = 1;
	if (!a->watching) {
		a->watch_index = ans->index;
		a->watch_at = 0;
		backoff_reset(&a->watch_backoff);
	}
}

/* Start the next long poll, when one is due. */
static void agent_watch_start(struct agent *a)
{
	if (!a->watch_ready || a->watching || clock_now_ms() < a->watch_at)
		return;
	answer_release(&a->watch_ans);
	answer_init(&a->watch_ans);
	buf_reset(&a->watch_body);
	buf_reset(&a->watch_url);
	(void)buf_addf(&a->watch_url, "%s?index=%llu&wait=%ums",
		       a->watch_base.buf, (unsigned long long)a->watch_index,
		       AGENT_WATCH_WAIT_MS);
	curl_easy_reset(a->watch_curl);
	if (a->ca_file)
		curl_easy_setopt(a->watch_curl, CURLOPT_CAINFO, a->ca_file);
	curl_easy_setopt(a->watch_curl, CURLOPT_URL, a->watch_url.buf);
	curl_easy_setopt(a->watch_curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->watch_curl, CURLOPT_HTTPHEADER, a->watch_headers);
	curl_easy_setopt(a->watch_curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(a->watch_curl, CURLOPT_WRITEDATA, &a->watch_body);
	curl_easy_setopt(a->watch_curl, CURLOPT_HEADERFUNCTION, answer_header);
	curl_easy_setopt(a->watch_curl, CURLOPT_HEADERDATA, &a->watch_ans);
	curl_easy_setopt(a->watch_curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(a->timeout_ms < 3000 ? a->timeout_ms : 3000));
	/* The wait, its jitter (up to 1/16) and the request itself. */
	curl_easy_setopt(a->watch_curl, CURLOPT_TIMEOUT_MS,
			 (long)(AGENT_WATCH_WAIT_MS + AGENT_WATCH_WAIT_MS / 16 +
				a->timeout_ms));
	curl_easy_setopt(a->watch_curl, CURLOPT_USERAGENT,
			 "lambda-registry-agent/" LR_VERSION);
	if (curl_multi_add_handle(a->multi, a->watch_curl) != CURLM_OK) {
		a->watch_at =
			clock_now_ms() + backoff_next_ms(&a->watch_backoff);
		return;
	}
	a->watching = 1;
	a->watch_polls++;
}

/* A poll that failed: the next one waits on the same index, after a
 * backoff. */
static void agent_watch_failed(struct agent *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void agent_watch_failed(struct agent *a, const char *fmt, ...)
{
	struct buf msg = BUF_INIT, q = BUF_INIT;
	uint64_t ms = backoff_next_ms(&a->watch_backoff);
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	a->watch_failures++;
	a->watch_at = clock_now_ms() + ms;
	agent_log("error", "watch_failed",
		  "watch_failures=%lu retry_in_ms=%llu index=%llu error=%s",
		  a->watch_failures, (unsigned long long)ms,
		  (unsigned long long)a->watch_index, log_quote(&q, msg.buf));
	buf_release(&msg);
	buf_release(&q);
}

/* A poll's end: a 304 polls again, a 200 at a newer index is applied like
 * a POST's answer. */
static void agent_watch_done(struct agent *a, CURLcode rc)
{
	struct answer *ans = &a->watch_ans;
	struct buf what = BUF_INIT, err = BUF_INIT;
	const char *type = NULL;
	enum agent_next next;
	long code = 0;

	curl_multi_remove_handle(a->multi, a->watch_curl);
	a->watching = 0;
	if (rc != CURLE_OK) {
		agent_watch_failed(a, "GET '%s': %s", a->watch_url.buf,
				   curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(a->watch_curl, CURLINFO_RESPONSE_CODE, &code);
	if ((code != 200 && code != 304) || !ans->has_index) {
		buf_addquoted(&err, a->watch_body.buf,
			      a->watch_body.len > 300 ? 300
						      : a->watch_body.len);
		agent_watch_failed(
			a, "GET '%s' answered %ld%s: %s", a->watch_url.buf,
			code, ans->has_index ? "" : " without X-Registry-Index",
			err.buf);
		goto out;
	}
	curl_easy_getinfo(a->watch_curl, CURLINFO_CONTENT_TYPE, &type);
	if (code == 200 && answer_parse(type, &a->watch_body, ans, &err)) {
		agent_watch_failed(a, "GET '%s' answered, but %s",
				   a->watch_url.buf, err.buf);
		goto out;
	}
	backoff_reset(&a->watch_backoff);
	/* The next poll waits on the store's index as it is now, even when
	 * that is lower than the live one (a reset store): waiting on any
	 * other would answer at once, again and again. */
	a->watch_index = ans->index;
	a->watch_at = 0;
	if (code == 304)
		goto out;
	if (a->live && ans->index <= a->live_index) {
		agent_log("info", "older_index",
			  "why=watch index=%llu live=%llu",
			  (unsigned long long)ans->index,
			  (unsigned long long)a->live_index);
		goto out;
	}
	(void)buf_addf(&what, "why=watch index=%llu",
		       (unsigned long long)ans->index);
	(void)agent_apply(a, ans, what.buf, clock_now_ms(), &next);
	if (next == AGENT_RETRY) {
		/* Not applied, but may be later: fetch the live index's
		 * successor again after a backoff. */
		a->watch_index = a->live_index;
		a->watch_at =
			clock_now_ms() + backoff_next_ms(&a->watch_backoff);
	} else if (next == AGENT_DONE) {
		a->watch_applies++;
	}
out:
	buf_release(&what);
	buf_release(&err);
}

/*
 * Wait up to `ms` for the watch (or just wait, without one): the loop's
 * tick. A parked poll costs the loop nothing, a source event is seen at
 * the next tick as without a watch.
 */
static void agent_watch_wait(struct agent *a, unsigned ms)
{
	struct timespec tick = {0, (long)ms * 1000000L};
	int running = 0;
	CURLMsg *msg;
	int left;

	if (a->watch_on)
		agent_watch_start(a);
	if (!a->watching) {
		/* A bare nanosleep(): signals cut it short. */
		nanosleep(&tick, NULL);
		return;
	}
	/* poll() ends early on a signal: the loop sees the flags. */
	curl_multi_poll(a->multi, NULL, 0, (int)ms, NULL);
	curl_multi_perform(a->multi, &running);
	while ((msg = curl_multi_info_read(a->multi, &left)))
		if (msg->msg == CURLMSG_DONE &&
		    msg->easy_handle == a->watch_curl)
			agent_watch_done(a, msg->data.result);
}

/*
 * One round: read the source, ask the registry, apply. The status is what
 * --once exits with (ST_OK, ST_UNAVAILABLE: try later, else refused); `next`
 * is what the loop does about it. Everything that did not reach HAProxy and
 * everything HAProxy did not keep is retried with backoff, since a registry
 * behind API Gateway throttles (429) or answers a page that is no config, and
 * a folder or a port may be fixed meanwhile. Only two things wait for new
 * input instead: a source that makes no sense (retrying reads the same), and
 * a config whose `haproxy -c` ran out of time (retrying burns the same CPU
 * for the same timeout, forever).
 */
static enum status agent_sync(struct agent *a, const char *why,
			      enum agent_next *next)
{
	struct buf payload = BUF_INIT, err = BUF_INIT, q = BUF_INIT,
		   what = BUF_INIT;
	struct answer ans;
	struct service_list list;
	uint64_t t0 = clock_now_ms();
	enum status st;
	size_t i, nr_containers = 0;
	int not_modified = 0;

	*next = AGENT_RETRY;
	service_list_init(&list);
	answer_init(&ans);
	a->syncs++;
	st = source_load(a->source, &list, &err);
	if (st != ST_OK) {
		agent_log("error", "source_failed",
			  "source=%s status=%s error=%s", a->source->ops->name,
			  status_name(st), log_quote(&q, err.buf));
		if (st != ST_UNAVAILABLE)
			*next = AGENT_WAIT;
		goto out;
	}
	for (i = 0; i < list.nr; i++)
		nr_containers += list.items[i].nr_containers;
	agent_build_payload(a->table, &list, &payload);

	st = agent_post(a, &payload, &ans, &not_modified, &err);
	if (st != ST_OK) {
		agent_count_registry_error(a);
		a->registry_failures++;
		agent_log("error", "registry_failed",
			  "status=%s registry_failures=%lu error=%s",
			  status_name(st), a->registry_failures,
			  log_quote(&q, err.buf));
		goto out;
	}
	/* The watch may have applied a newer index (another writer's, stored
	 * after this one): going back to this answer would undo it. */
	if (ans.has_index && a->live && ans.index < a->live_index) {
		*next = AGENT_DONE;
		agent_log("info", "older_index", "why=%s index=%llu live=%llu",
			  why, (unsigned long long)ans.index,
			  (unsigned long long)a->live_index);
		goto out;
	}
	if (not_modified) {
		a->unchanged++;
		*next = AGENT_DONE;
		agent_log("info", "unchanged",
			  "why=%s services=%zu containers=%zu not_modified=1 "
			  "body_sent=%d ms=%llu",
			  why, list.nr, nr_containers, a->body_sent,
			  (unsigned long long)(clock_now_ms() - t0));
		agent_count_apply(a, HAPROXY_UNCHANGED, 0);
		agent_report(a, HAPROXY_UNCHANGED, 0);
		agent_watch_restart(a, &ans);
		goto out;
	}
	(void)buf_addf(&what, "why=%s services=%zu containers=%zu", why,
		       list.nr, nr_containers);
	st = agent_apply(a, &ans, what.buf, t0, next);
	agent_watch_restart(a, &ans);
out:
	service_list_release(&list);
	buf_release(&payload);
	answer_release(&ans);
	buf_release(&err);
	buf_release(&q);
	buf_release(&what);
	return st;
}

/* HAProxy's servers against the live file; a difference is repaired by a
 * reload, which makes HAProxy read the file again. */
static void agent_check_drift(struct agent *a)
{
	struct buf why = BUF_INIT, err = BUF_INIT, q = BUF_INIT, q2 = BUF_INIT;
	int r = runtime_check_drift(&a->haproxy, &why);

	a->drift_at = clock_now_ms() + a->drift_ms;
	if (r < 0) {
		agent_log("warning", "drift_unknown", "error=%s",
			  log_quote(&q, why.buf));
		goto out;
	}
	if (!r)
		goto out;
	if (haproxy_reload(a->haproxy.master_socket, a->haproxy.timeout_ms,
			   &err) != ST_OK) {
		agent_log("error", "drift", "why=%s repaired=no error=%s",
			  log_quote(&q, why.buf), log_quote(&q2, err.buf));
		/* Try again at the next tick's pace, not in minutes. */
		a->drift_at = clock_now_ms() + AGENT_BACKOFF_MIN_MS;
		goto out;
	}
	a->drift_repairs++;
	agent_log("info", "drift", "why=%s repaired=reload drift_repairs=%lu",
		  log_quote(&q, why.buf), a->drift_repairs);
out:
	buf_release(&why);
	buf_release(&err);
	buf_release(&q);
	buf_release(&q2);
}

static int agent_loop(struct agent *a)
{
	uint64_t now = clock_now_ms(), first = now, last = now, retry_at = 0;
	const char *why = "start";
	int pending = 1, immediate = 1;

	while (!agent_stop) {
		now = clock_now_ms();
		if (a->runtime.enabled && now >= a->drift_at) {
			agent_check_drift(a);
			continue;
		}
		if (agent_hup) {
			agent_hup = 0;
			agent_log("info", "resync", "why=sighup");
			source_resync(a->source);
			pending = immediate = 1;
			retry_at = 0;
			backoff_reset(&a->backoff);
			why = "sighup";
		}
		if (source_changed(a->source)) {
			if (!pending) {
				first = now;
				why = "change";
			}
			/* New input (or an engine that is back) is worth a try
			 * now rather than at the end of a long backoff; the
			 * debounce still spaces the tries. */
			if (retry_at) {
				retry_at = 0;
				backoff_reset(&a->backoff);
			}
			pending = 1;
			last = now;
		}
		if (pending && now >= retry_at &&
		    (immediate || now - last >= a->debounce_ms ||
		     now - first >= AGENT_MAX_DELAY_MS)) {
			enum agent_next next;
			uint64_t wait_ms;

			(void)agent_sync(a, why, &next);
			immediate = 0;
			if (next == AGENT_RETRY) {
				/* Full jitter, but never a busy loop. */
				wait_ms = backoff_next_ms(&a->backoff);
				if (wait_ms < AGENT_TICK_MS)
					wait_ms = AGENT_TICK_MS;
				agent_log("info", "retry",
					  "in_ms=%llu attempt=%u",
					  (unsigned long long)wait_ms,
					  a->backoff.attempt);
				retry_at = clock_now_ms() + wait_ms;
				why = "retry";
			} else {
				pending = 0;
				retry_at = 0;
				backoff_reset(&a->backoff);
			}
			continue;
		}
		agent_watch_wait(a, AGENT_TICK_MS);
	}
	agent_log("info", "stop",
		  "syncs=%lu reloads=%lu unchanged=%lu rejected=%lu "
		  "reload_failures=%lu registry_failures=%lu "
		  "check_timeouts=%lu local_errors=%lu runtime_applied=%lu "
		  "runtime_failures=%lu drift_repairs=%lu watch_polls=%lu "
		  "watch_applies=%lu watch_failures=%lu",
		  a->syncs, a->applied, a->unchanged, a->rejected,
		  a->reload_failures, a->registry_failures, a->check_timeouts,
		  a->local_errors, a->runtime_applied, a->runtime_failures,
		  a->drift_repairs, a->watch_polls, a->watch_applies,
		  a->watch_failures);
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

/* The source --source names, as NAME:ARG; -1 with a message on stderr. */
static int agent_open_source(struct agent *a, const char *spec,
			     const struct source_options *opts)
{
	struct buf err = BUF_INIT;
	size_t i, len;
	int ret = -1;

	for (i = 0; i < ARRAY_SIZE(agent_sources); i++) {
		len = strlen(agent_sources[i].name);
		if (strncmp(spec, agent_sources[i].name, len) ||
		    spec[len] != ':')
			continue;
		if (agent_sources[i].new_source(spec + len + 1, opts,
						&a->source, &err) != ST_OK)
			fprintf(stderr, "lambda-registry agent: --source: %s\n",
				err.buf);
		else
			ret = 0;
		goto out;
	}
	buf_setf(&err, "'%s' names no source; known:", spec);
	for (i = 0; i < ARRAY_SIZE(agent_sources); i++)
		buf_addf(&err, " %s:...", agent_sources[i].name);
	fprintf(stderr, "lambda-registry agent: --source: %s\n", err.buf);
out:
	buf_release(&err);
	return ret;
}

/*
 * The token from --token-file into "Authorization: Bearer ..." (the file's
 * first line, surrounding white space dropped). A file that group or others
 * may read is refused: the token would no longer be this host's secret.
 */
static int agent_read_token(const char *path, char **header)
{
	struct buf text = BUF_INIT, err = BUF_INIT, line = BUF_INIT;
	struct stat sb;
	size_t start = 0, end;
	int ret = -1;

	buf_init(&text, 4096);
	if (stat(path, &sb)) {
		fprintf(stderr,
			"lambda-registry agent: --token-file '%s': %s\n", path,
			strerror(errno));
		goto out;
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		fprintf(stderr,
			"lambda-registry agent: --token-file '%s' is readable "
			"by group or others (mode %03o); chmod 600 it\n",
			path, (unsigned)(sb.st_mode & 0777));
		goto out;
	}
	if (buf_read_file(&text, path, &err) != ST_OK) {
		fprintf(stderr, "lambda-registry agent: --token-file: %s\n",
			err.buf);
		goto out;
	}
	while (start < text.len && isspace((unsigned char)text.buf[start]))
		start++;
	end = start;
	while (end < text.len && !isspace((unsigned char)text.buf[end]))
		end++;
	if (end == start) {
		fprintf(stderr,
			"lambda-registry agent: --token-file '%s' is empty\n",
			path);
		goto out;
	}
	(void)buf_addstr(&line, "Authorization: Bearer ");
	(void)buf_add(&line, text.buf + start, end - start);
	*header = buf_detach(&line, NULL);
	ret = 0;
out:
	if (text.len)
		memset(text.buf, 0, text.len);
	buf_release(&text);
	buf_release(&err);
	buf_release(&line);
	return ret;
}

/* Whether the host of `url` ("http://HOST[:PORT]/...") is loopback. */
static int agent_url_is_loopback(const char *url)
{
	const char *host = strstr(url, "://"), *end;
	size_t len;

	if (!host)
		return 0;
	host += 3;
	if (*host == '[')
		return !strncmp(host, "[::1]", 5);
	end = host + strcspn(host, ":/?#");
	len = (size_t)(end - host);
	return (len == 9 && !strncasecmp(host, "localhost", 9)) ||
	       !strncmp(host, "127.", 4);
}

/* --agent-id, or the host name, as a name the registry accepts. */
static int agent_set_id(struct agent *a, const char *given)
{
	struct buf err = BUF_INIT;
	char host[256] = "";
	const char *id = given;
	int ret = 0;

	if (!id || !*id) {
		if (gethostname(host, sizeof(host) - 1))
			host[0] = '\0';
		id = host;
	}
	if (payload_check_name(id, &err) || strlen(id) > SERVICE_NAME_MAX) {
		fprintf(stderr, "lambda-registry agent: --agent-id: %s%s\n",
			err.buf,
			given ? "" : " (the host name; give --agent-id)");
		ret = -1;
	} else {
		/* At most SERVICE_NAME_MAX bytes: checked above. */
		memcpy(a->agent_id, id, strlen(id) + 1);
	}
	buf_release(&err);
	return ret;
}

int agent_main(const char *const *v, int argc, char **argv)
{
	struct agent a;
	struct source_options sopts;
	struct buf err = BUF_INIT, q = BUF_INIT, q2 = BUF_INIT, q3 = BUF_INIT;
	const char *src = v[OPT_SOURCE];
	enum agent_next next;
	int code = 2;
	size_t i;
	enum status st;

	memset(&a, 0, sizeof(a));
	buf_init(&a.url, 0);
	buf_init(&a.report_url, 0);
	buf_init(&a.watch_base, 0);
	buf_init(&a.watch_url, 0);
	buf_init(&a.watch_body, 3 * AGENT_MAX_CONFIG);
	answer_init(&a.watch_ans);
	backoff_init(&a.backoff, AGENT_BACKOFF_MIN_MS, AGENT_BACKOFF_MAX_MS);
	backoff_init(&a.watch_backoff, AGENT_BACKOFF_MIN_MS,
		     AGENT_BACKOFF_MAX_MS);
	if (argc > 0) {
		fprintf(stderr,
			"lambda-registry agent: unexpected argument '%s'\n",
			argv[0]);
		goto out;
	}
	for (i = OPT_REGISTRY; i <= OPT_SOCKET; i++) {
		if (i == OPT_SOURCE && v[OPT_FOLLOW]) {
			if (src) {
				fprintf(stderr, "lambda-registry agent: "
						"--follow takes no --source\n");
				goto out;
			}
			continue;
		}
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
	    agent_parse_ms("timeout", v[OPT_TIMEOUT], 600000, &a.timeout_ms) ||
	    agent_parse_ms("check-timeout", v[OPT_CHECK_TIMEOUT],
			   HAPROXY_CHECK_TIMEOUT_MAX_MS,
			   &a.haproxy.check_timeout_ms) ||
	    agent_parse_ms("check-timeout-per-mb", v[OPT_CHECK_PER_MB],
			   HAPROXY_CHECK_TIMEOUT_MAX_MS,
			   &a.haproxy.check_ms_per_mb) ||
	    agent_parse_ms("drain-timeout", v[OPT_DRAIN_TIMEOUT], 3600000,
			   &a.runtime.drain_ms) ||
	    agent_parse_ms("drift-check", v[OPT_DRIFT_CHECK], 86400000,
			   &a.drift_ms))
		goto out;
	if (strcmp(v[OPT_RUNTIME], "on") && strcmp(v[OPT_RUNTIME], "off")) {
		fprintf(stderr, "lambda-registry agent: --runtime: must be on "
				"or off\n");
		goto out;
	}
	a.runtime.enabled = !strcmp(v[OPT_RUNTIME], "on");
	if (strcmp(v[OPT_WATCH], "on") && strcmp(v[OPT_WATCH], "off")) {
		fprintf(stderr, "lambda-registry agent: --watch: must be on "
				"or off\n");
		goto out;
	}
	/* --once syncs and exits: nothing to watch for. */
	a.watch_on = !strcmp(v[OPT_WATCH], "on") && !v[OPT_ONCE];
	if (a.drift_ms < 1000) {
		fprintf(stderr, "lambda-registry agent: --drift-check: must be "
				"at least 1000\n");
		goto out;
	}
	if (a.timeout_ms < 100) {
		fprintf(stderr, "lambda-registry agent: --timeout: must be at "
				"least 100\n");
		goto out;
	}
	if (a.haproxy.check_timeout_ms < 100) {
		fprintf(stderr, "lambda-registry agent: --check-timeout: must "
				"be at least 100\n");
		goto out;
	}
	buf_addstr(&a.url, v[OPT_REGISTRY]);
	while (a.url.len && a.url.buf[a.url.len - 1] == '/')
		buf_setlen(&a.url, a.url.len - 1);
	if (v[OPT_FOLLOW] && a.url.len >= 9 &&
	    !strcmp(a.url.buf + a.url.len - 9, "/generate"))
		buf_setlen(&a.url, a.url.len - 9);
	if (!v[OPT_FOLLOW] &&
	    (a.url.len < 9 || strcmp(a.url.buf + a.url.len - 9, "/generate")))
		buf_addstr(&a.url, "/generate");
	if (agent_set_id(&a, v[OPT_AGENT_ID]))
		goto out;
	(void)buf_add(&a.report_url, a.url.buf, a.url.len - 9);
	(void)buf_addf(&a.report_url, "/v1/tables/%s/agents/%s", a.table,
		       a.agent_id);
	(void)buf_add(&a.watch_base, a.url.buf, a.url.len - 9);
	(void)buf_addf(&a.watch_base, "/v1/tables/%s/config", a.table);
	if (v[OPT_TOKEN_FILE] &&
	    agent_read_token(v[OPT_TOKEN_FILE], &a.authorization))
		goto out;
	a.ca_file = v[OPT_CA_FILE];
	if (!strncasecmp(a.url.buf, "http://", 7) &&
	    !agent_url_is_loopback(a.url.buf))
		agent_log("warning", "plain_http",
			  "registry=%s note=\"the token and the payloads cross "
			  "the network unencrypted; use https://\"",
			  log_quote(&q, a.url.buf));
	a.haproxy.config = v[OPT_CONFIG];
	a.haproxy.master_socket = v[OPT_SOCKET];
	a.haproxy.bin = v[OPT_BIN];
	a.haproxy.timeout_ms = a.timeout_ms;

	if (v[OPT_FOLLOW]) {
		struct follow_options fopts = {
			.registry = a.url.buf,
			.table = a.table,
			.authorization = a.authorization,
			.ca_file = a.ca_file,
			.timeout_ms = a.timeout_ms,
			.wait_ms = AGENT_WATCH_WAIT_MS,
			.haproxy = &a.haproxy,
			.stop = &agent_stop,
		};

		agent_set_signals();
		code = follow_run(&fopts);
		goto out;
	}
	curlx_global_init();
	a.curl = curl_easy_init();
	if (a.watch_on) {
		a.multi = curl_multi_init();
		a.watch_curl = curl_easy_init();
		a.watch_headers =
			curl_slist_append(NULL, "Accept: application/json");
		if (a.authorization)
			a.watch_headers = curl_slist_append(a.watch_headers,
							    a.authorization);
	}
	if (!a.curl ||
	    (a.watch_on && (!a.multi || !a.watch_curl || !a.watch_headers))) {
		fprintf(stderr,
			"lambda-registry agent: cannot initialise libcurl\n");
		code = 3;
		goto out;
	}
	memset(&sopts, 0, sizeof(sopts));
	sopts.keyword =
		v[OPT_KEYWORD] && *v[OPT_KEYWORD] ? v[OPT_KEYWORD] : NULL;
	sopts.network =
		v[OPT_NETWORK] && *v[OPT_NETWORK] ? v[OPT_NETWORK] : NULL;
	sopts.timeout_ms = a.timeout_ms;
	if (agent_open_source(&a, src, &sopts))
		goto out;
	if (v[OPT_METRICS_LISTEN] && *v[OPT_METRICS_LISTEN]) {
		st = metrics_http_start(v[OPT_METRICS_LISTEN], &a.metrics,
					&err);
		if (st != ST_OK) {
			fprintf(stderr,
				"lambda-registry agent: --metrics-listen: %s\n",
				err.buf);
			code = st == ST_USAGE ? 2 : 3;
			goto out;
		}
	}

	agent_set_signals();

	agent_log("info", "start",
		  "table=%s source=%s registry=%s config=%s debounce_ms=%u "
		  "check_timeout_ms=%u check_timeout_per_mb=%u watch=%s",
		  log_quote(&err, a.table), log_quote(&q, src),
		  log_quote(&q2, a.url.buf), log_quote(&q3, a.haproxy.config),
		  a.debounce_ms, a.haproxy.check_timeout_ms,
		  a.haproxy.check_ms_per_mb, a.watch_on ? "on" : "off");
	if (v[OPT_ONCE]) {
		st = agent_sync(&a, "once", &next);
		code = st == ST_OK ? 0 : st == ST_UNAVAILABLE ? 3 : 1;
		goto out;
	}
	code = agent_loop(&a);
out:
	metrics_http_stop(a.metrics);
	source_free(a.source);
	buf_release(&a.report_url);
	if (a.curl)
		curl_easy_cleanup(a.curl);
	if (a.watching)
		curl_multi_remove_handle(a.multi, a.watch_curl);
	if (a.watch_curl)
		curl_easy_cleanup(a.watch_curl);
	if (a.multi)
		curl_multi_cleanup(a.multi);
	curl_slist_free_all(a.watch_headers);
	buf_release(&a.watch_base);
	buf_release(&a.watch_url);
	buf_release(&a.watch_body);
	answer_release(&a.watch_ans);
	buf_release(&a.url);
	free(a.authorization);
	buf_release(&q);
	buf_release(&q2);
	buf_release(&q3);
	buf_release(&err);
	return code;
}
