/*
 * AWS Lambda custom runtime: fetch invocations from the Runtime API over
 * libcurl, answer each through lambda_event_handle(), post the answers.
 */
#include "lambda.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "cli.h"
#include "clock.h"
#include "curlx.h"
#include "lambda_event.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "render.h"
#include "xalloc.h"
#include "store/store.h"
#include "banned.h"

#define LAMBDA_API_BASE "/2018-06-01/runtime"
#define LAMBDA_MAX_ID	128
/* Posting an answer to the local Runtime API never takes this long. */
#define LAMBDA_POST_TIMEOUT_MS 30000L
/* A deadline further than this from now is no deadline Lambda sent. */
#define LAMBDA_DEADLINE_WINDOW_MS ((uint64_t)24 * 3600 * 1000)

/* The Runtime API client: one curl handle, kept alive across invocations. */
struct lambda_client {
	CURL *curl;
	struct curl_slist *json_headers;
	const char *api;
	struct buf url;
	struct buf body;       /* response body of the last request */
	struct buf request_id; /* headers of the last invocation */
	struct buf deadline;
	struct buf trace;
	int deadline_logged; /* event=deadline_ignored was logged */
	char curl_err[CURL_ERROR_SIZE];
};

static void lambda_client_release(struct lambda_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->json_headers);
	buf_release(&c->url);
	buf_release(&c->body);
	buf_release(&c->request_id);
	buf_release(&c->deadline);
	buf_release(&c->trace);
}

#define LAMBDA_HOST_CHARS                                                      \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]"

static enum status lambda_client_init(struct lambda_client *c, const char *api,
				      struct buf *err)
{
	enum status st = ST_USAGE;

	memset(c, 0, sizeof(*c));
	buf_init(&c->url, BUF_CAP_MESSAGE);
	buf_init(&c->body, LAMBDA_MAX_EVENT);
	buf_init(&c->request_id, BUF_CAP_MESSAGE);
	buf_init(&c->deadline, BUF_CAP_MESSAGE);
	buf_init(&c->trace, BUF_CAP_MESSAGE);
	c->api = api;
	if (!api || !*api) {
		buf_setf(err, "AWS_LAMBDA_RUNTIME_API is not set: not running "
			      "on Lambda");
		goto out;
	}
	/* It goes into URLs: a host and a port, nothing else. */
	if (strspn(api, LAMBDA_HOST_CHARS) != strlen(api) ||
	    strlen(api) > 255) {
		buf_setf(err, "AWS_LAMBDA_RUNTIME_API '%s' is not HOST:PORT",
			 api);
		goto out;
	}
	st = ST_INTERNAL;
	curlx_global_init();
	c->curl = curl_easy_init();
	c->json_headers =
		curl_slist_append(NULL, "Content-Type: application/json");
	/* The API is local: no proxy, no 100-continue round trip. */
	if (c->json_headers)
		c->json_headers = curl_slist_append(c->json_headers, "Expect:");
	if (!c->curl || !c->json_headers) {
		buf_setf(err, "cannot start libcurl");
		goto out;
	}
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->body);
	st = ST_OK;
out:
	return st;
}

/* Run the request set up on the handle; ST_OK when the API answered `want`. */
static enum status lambda_client_perform(struct lambda_client *c, long want,
					 struct buf *err)
{
	CURLcode rc;
	long code = 0;

	buf_reset(&c->body);
	c->curl_err[0] = '\0';
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		buf_setf(err, "runtime api %s: %s", c->url.buf,
			 c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc));
		return rc == CURLE_WRITE_ERROR ? ST_TOO_LARGE : ST_UNAVAILABLE;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != want) {
		buf_setf(err, "runtime api %s answered %ld: %.200s", c->url.buf,
			 code, c->body.buf);
		return code == 413 ? ST_TOO_LARGE : ST_UNAVAILABLE;
	}
	return ST_OK;
}

/* Copy the last response's header `name` into `out` (empty when absent). */
static void lambda_client_header(struct lambda_client *c, const char *name,
				 struct buf *out)
{
	struct curl_header *h = NULL;

	buf_reset(out);
	if (curl_easy_header(c->curl, name, 0, CURLH_HEADER, -1, &h) ==
		    CURLHE_OK &&
	    h->value)
		(void)buf_addstr(out, h->value);
	if (buf_overflowed(out))
		buf_reset(out); /* a cut id or deadline is worse than none */
}

/* GET the next invocation: blocks for as long as Lambda has none to give. */
static enum status lambda_client_next(struct lambda_client *c, struct buf *err)
{
	enum status st;

	buf_reset(&c->url);
	(void)buf_addf(&c->url, "http://%s" LAMBDA_API_BASE "/invocation/next",
		       c->api);
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url.buf);
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 0L);
	st = lambda_client_perform(c, 200, err);
	/* Also after an event over the cap: its headers came before it. */
	lambda_client_header(c, "Lambda-Runtime-Aws-Request-Id",
			     &c->request_id);
	lambda_client_header(c, "Lambda-Runtime-Deadline-Ms", &c->deadline);
	lambda_client_header(c, "Lambda-Runtime-Trace-Id", &c->trace);
	return st;
}

/* POST a JSON document to `path` (under the API base); the API answers 202. */
static enum status lambda_client_post(struct lambda_client *c, const char *path,
				      const char *body, size_t len,
				      const char *error_type, struct buf *err)
{
	struct curl_slist *headers = c->json_headers, *extra = NULL;
	struct buf line = BUF_INIT;
	enum status st;

	buf_reset(&c->url);
	(void)buf_addf(&c->url, "http://%s" LAMBDA_API_BASE "%s", c->api, path);
	if (error_type) {
		(void)buf_addf(&line, "Lambda-Runtime-Function-Error-Type: %s",
			       error_type);
		extra = curl_slist_append(NULL, line.buf);
		if (!extra)
			BUG("out of memory");
		extra->next = c->json_headers;
		headers = extra;
	}
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url.buf);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, LAMBDA_POST_TIMEOUT_MS);
	st = lambda_client_perform(c, 202, err);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	if (extra) {
		extra->next = NULL;
		curl_slist_free_all(extra);
	}
	buf_release(&line);
	return st;
}

/* A request id goes into a URL: allow only what Lambda's ids are made of. */
static int lambda_id_ok(const struct buf *id)
{
	return id->len && id->len <= LAMBDA_MAX_ID &&
	       strspn(id->buf,
		      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789-_.") == id->len;
}

int lambda_deadline_parse(const char *value, uint64_t now_ms,
			  uint64_t *deadline_ms)
{
	uint64_t ms = 0;
	size_t i, len = value ? strlen(value) : 0;

	if (!len)
		return 0;
	/* Digits only (no sign, no space), and no more than fit. */
	if (len > 19 || strspn(value, "0123456789") != len)
		return -1;
	for (i = 0; i < len; i++)
		ms = ms * 10 + (uint64_t)(value[i] - '0');
	if (ms + LAMBDA_DEADLINE_WINDOW_MS < now_ms ||
	    ms > now_ms + LAMBDA_DEADLINE_WINDOW_MS)
		return -1;
	*deadline_ms = ms;
	return 1;
}

/*
 * Milliseconds left before the invocation's deadline, or INT64_MAX without
 * one. An implausible deadline counts as none, and is logged once.
 */
static int64_t lambda_time_left_ms(struct lambda_client *c)
{
	struct buf scratch = BUF_INIT;
	uint64_t now = clock_real_ms(), deadline = 0;
	int64_t left = INT64_MAX;
	int rc = lambda_deadline_parse(c->deadline.buf, now, &deadline);

	if (rc > 0)
		left = (int64_t)deadline - (int64_t)now;
	else if (rc < 0 && !c->deadline_logged) {
		log_event("event=deadline_ignored value=%s",
			  log_quote(&scratch, c->deadline.buf));
		c->deadline_logged = 1;
	}
	buf_release(&scratch);
	return left;
}

/*
 * Answer the invocation just fetched (`fetched`: ST_TOO_LARGE when its event
 * did not fit), and log one line for it.
 */
static enum status lambda_invoke(struct lambda_client *c, struct api *api,
				 enum status fetched, uint64_t start_us,
				 struct buf *err)
{
	struct buf path = BUF_INIT, msg = BUF_INIT;
	struct lambda_answer ans;
	int64_t left = lambda_time_left_ms(c);
	enum status st = ST_OK;

	lambda_answer_init(&ans);
	if (c->trace.len)
		setenv("_X_AMZN_TRACE_ID", c->trace.buf, 1);
	else
		unsetenv("_X_AMZN_TRACE_ID");
	if (fetched == ST_TOO_LARGE) {
		(void)buf_addf(&msg, "the event is larger than %zu bytes",
			       LAMBDA_MAX_EVENT);
		lambda_answer_error(&ans, ST_TOO_LARGE, msg.buf, NULL);
	} else if (left <= 0) {
		/* Lambda is about to stop us: no store work nobody awaits. */
		(void)buf_addf(&msg, "the deadline passed %lld ms ago",
			       (long long)-left);
		lambda_answer_error(&ans, ST_UNAVAILABLE, msg.buf, NULL);
	} else {
		lambda_event_handle(api, c->body.buf, c->body.len, &ans);
	}
	(void)buf_addf(&path, "/invocation/%s/%s", c->request_id.buf,
		       ans.is_error ? "error" : "response");
	st = lambda_client_post(c, path.buf, ans.body.buf, ans.body.len,
				ans.is_error ? ans.err_type.buf : NULL, err);
	if (st == ST_TOO_LARGE) {
		/* Lambda refused the answer's size: still answer, with an
		 * error. */
		lambda_answer_error(&ans, ST_TOO_LARGE,
				    "the answer is over Lambda's size limit",
				    NULL);
		buf_reset(&path);
		(void)buf_addf(&path, "/invocation/%s/error",
			       c->request_id.buf);
		st = lambda_client_post(c, path.buf, ans.body.buf, ans.body.len,
					ans.err_type.buf, err);
	}
	/* Counted like an HTTP request, refusals before the route included. */
	metrics_http_request(ans.route, ans.http, clock_now_us() - start_us);
	fprintf(stderr,
		"lambda request_id=%s shape=%s status=%u %s=%zu us=%llu "
		"trace=%s\n",
		c->request_id.buf, ans.shape, ans.http,
		ans.is_error ? "error_bytes" : "bytes", ans.body.len,
		(unsigned long long)(clock_now_us() - start_us),
		c->trace.len ? c->trace.buf : "-");
	lambda_answer_release(&ans);
	buf_release(&path);
	buf_release(&msg);
	return st;
}

/*
 * The bundled libcurl looks for CA certificates where Debian keeps them, and
 * AL2023 keeps them elsewhere. Unless set already, point AWS_CA_BUNDLE (the
 * AWS SDKs' variable, for the store's HTTPS client) at a bundle that exists.
 */
static void lambda_find_ca_bundle(void)
{
	static const char *const known[] = {
		"/etc/pki/tls/certs/ca-bundle.crt",   /* Amazon Linux, RHEL */
		"/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu */
		"/etc/ssl/cert.pem",
	};
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	size_t i;

	if (getenv("AWS_CA_BUNDLE") || (v->age >= CURLVERSION_SEVENTH &&
					v->cainfo && !access(v->cainfo, R_OK)))
		return; /* chosen, or libcurl's own default is there */
	for (i = 0; i < ARRAY_SIZE(known); i++)
		if (!access(known[i], R_OK))
			break;
	if (i < ARRAY_SIZE(known)) {
		setenv("AWS_CA_BUNDLE", known[i], 0);
		fprintf(stderr, "lambda ca_bundle=%s\n", known[i]);
	}
}

/*
 * Open the registry, an unreachable store is retried per invocation, and
 * (re)make the api on it: `why` says why the store is missing, and the api
 * borrows it, so it is remade whenever `why` changes.
 */
static enum status lambda_open(const struct lambda_options *opts,
			       const char *bind, size_t max_body, int need_auth,
			       struct registry **reg, struct auth **auth,
			       struct api **api, struct buf *why)
{
	struct registry_options ropts = {opts->store_spec,
					 {.frontend_bind = bind}};
	struct api_options aopts = {0};
	enum status st;

	api_free(*api);
	*api = NULL;
	buf_reset(why);
	st = registry_new(&ropts, reg, why);
	if (st != ST_OK) {
		struct buf shown = BUF_INIT;

		*reg = NULL;
		store_spec_redact(opts->store_spec, &shown);
		fprintf(stderr, "lambda store=%s open=%s: %s\n", shown.buf,
			status_name(st), why->buf);
		buf_release(&shown);
	} else if (need_auth && !*auth) {
		/* Without the tokens nothing may be served: no registry. */
		st = auth_new(opts->store_spec, auth, why);
		if (st != ST_OK) {
			struct buf shown = BUF_INIT;

			registry_free(*reg);
			*reg = NULL;
			store_spec_redact(opts->store_spec, &shown);
			fprintf(stderr, "lambda store=%s tokens=%s: %s\n",
				shown.buf, status_name(st), why->buf);
			buf_release(&shown);
		}
	}
	aopts.reg = *reg;
	aopts.auth = *auth;
	aopts.unavailable = why->len ? why->buf : NULL;
	aopts.max_body = max_body;
	/* checked by lambda_run() */
	(void)api_answer_format_parse(opts->answer_format ? opts->answer_format
							  : "text",
				      &aopts.answer_format);
	*api = api_new(&aopts);
	return st;
}

enum status lambda_run(const struct lambda_options *opts, struct buf *err)
{
	uint64_t t0 = clock_now_us(), ready, start;
	struct buf bind = BUF_INIT, why = BUF_INIT;
	struct registry *reg = NULL;
	struct auth *auth = NULL;
	struct api *api = NULL;
	enum auth_mode mode = AUTH_MODE_AUTO;
	struct lambda_client c;
	unsigned long long max_body = 0;
	enum api_answer_format format;
	unsigned long count = 0;
	enum status st;

	st = lambda_client_init(&c, opts->runtime_api, err);
	if (st != ST_OK)
		goto out; /* no API to report to */
	lambda_find_ca_bundle();

	if (render_check_bind(opts->frontend_bind, &bind, &why)) {
		buf_setf(err, "--frontend-bind: %s", why.buf);
		st = ST_USAGE;
	} else if (auth_mode_parse(opts->auth ? opts->auth : "auto", &mode)) {
		buf_setf(err, "--auth '%s' is not required, off or auto",
			 opts->auth);
		st = ST_USAGE;
	} else if (cli_parse_size(opts->max_body, (size_t)1 << 30, &max_body,
				  &why) ||
		   !max_body) {
		buf_setf(err, "--max-body: %s",
			 why.len ? why.buf : "must be at least 1");
		st = ST_USAGE;
	} else if (api_answer_format_parse(
			   opts->answer_format ? opts->answer_format : "text",
			   &format)) {
		buf_setf(err, "--answer-format '%s' is not text or json-string",
			 opts->answer_format);
		st = ST_USAGE;
	} else {
		if (mode == AUTH_MODE_OFF)
			fprintf(stderr,
				"lambda event=auth_off level=warning: API "
				"Gateway requests need no token\n");
		st = lambda_open(opts, bind.buf, (size_t)max_body,
				 mode != AUTH_MODE_OFF, &reg, &auth, &api,
				 &why);
		/* Unreachable is no init error: 503 until it is back. */
		if (st == ST_UNAVAILABLE)
			st = ST_OK;
		else if (st != ST_OK) {
			struct buf shown = BUF_INIT;

			store_spec_redact(opts->store_spec, &shown);
			buf_setf(err, "store '%s': %s", shown.buf, why.buf);
			buf_release(&shown);
		}
	}
	if (st != ST_OK) {
		struct lambda_answer doc;
		struct buf post_err = BUF_INIT;

		lambda_answer_init(&doc);
		lambda_answer_error(&doc, st, err->buf, NULL);
		if (lambda_client_post(&c, "/init/error", doc.body.buf,
				       doc.body.len, doc.err_type.buf,
				       &post_err) != ST_OK)
			fprintf(stderr, "lambda: %s\n", post_err.buf);
		lambda_answer_release(&doc);
		buf_release(&post_err);
		goto out;
	}

	ready = clock_now_us();
	for (;;) {
		st = lambda_client_next(&c, err);
		start = clock_now_us();
		if (st != ST_OK &&
		    (st != ST_TOO_LARGE || !lambda_id_ok(&c.request_id)))
			goto out;
		if (!lambda_id_ok(&c.request_id)) {
			/* Without a usable id there is nothing to answer to. */
			fprintf(stderr, "lambda: invocation without a valid "
					"request id, skipped\n");
			continue;
		}
		if (!reg && st == ST_OK)
			(void)lambda_open(opts, bind.buf, (size_t)max_body,
					  mode != AUTH_MODE_OFF, &reg, &auth,
					  &api, &why);
		st = lambda_invoke(&c, api, st, start, err);
		if (st != ST_OK && st != ST_TOO_LARGE)
			goto out;
		/* From entry to the first answer; init: libcurl, the store. */
		if (!count++)
			fprintf(stderr,
				"lambda cold_start_us=%llu init_us=%llu\n",
				(unsigned long long)(clock_now_us() - t0),
				(unsigned long long)(ready - t0));
	}
out:
	api_free(api);
	registry_free(reg);
	auth_free(auth);
	lambda_client_release(&c);
	buf_release(&bind);
	buf_release(&why);
	return st;
}
