/*
 * The follower's loop: GET the table's config with ?index=&wait=, apply a
 * 200 whose index is newer, go on from a 304, back off on failures.
 */
#include "agent/follow.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agent/answer.h"
#include "clock.h"
#include "curlx.h"
#include "log.h"
#include "xalloc.h"
#include "banned.h"

#define FOLLOW_BACKOFF_MIN_MS 500
#define FOLLOW_BACKOFF_MAX_MS 30000

/* One poll's answer. */
struct follow_answer {
	long code;
	struct answer ans;
	struct buf body;
};

struct follow {
	const struct follow_options *opts;
	CURL *curl;
	struct buf base; /* .../v1/tables/TABLE/config */
	struct backoff backoff;
	/* The index of the live config, once one was applied or found live. */
	int have;
	uint64_t applied;
	/* The index the next poll waits on (0 with `polled` unset: none). */
	int polled;
	uint64_t poll_index;
	unsigned long polls, applies, failures;
};

/* libcurl's progress callback: a stop request ends a long poll early. */
static int follow_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			   curl_off_t ultotal, curl_off_t ulnow)
{
	const struct follow *f = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return *f->opts->stop ? 1 : 0;
}

/* One GET: the current config, or with f->polled a long poll from it. */
static enum status follow_get(struct follow *f, struct follow_answer *ans,
			      struct buf *err)
{
	const struct follow_options *o = f->opts;
	struct curl_slist *headers = NULL;
	struct buf url = BUF_INIT, why = BUF_INIT;
	CURLcode rc;
	enum status st = ST_UNAVAILABLE;

	const char *type = NULL;

	(void)buf_addstr(&url, f->base.buf);
	if (f->polled)
		(void)buf_addf(&url, "?index=%llu&wait=%ums",
			       (unsigned long long)f->poll_index, o->wait_ms);
	/* The map form: the config and the map files it reads. */
	headers = curl_slist_append(headers, "Accept: application/json");
	if (o->authorization)
		headers = curl_slist_append(headers, o->authorization);
	curl_easy_reset(f->curl);
	if (o->ca_file)
		curl_easy_setopt(f->curl, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(f->curl, CURLOPT_URL, url.buf);
	curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, &ans->body);
	curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, answer_header);
	curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, &ans->ans);
	curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, follow_progress);
	curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
	curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(o->timeout_ms < 3000 ? o->timeout_ms : 3000));
	/* The wait, its jitter (up to 1/16) and the request itself. */
	curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS,
			 (long)(o->wait_ms + o->wait_ms / 16 + o->timeout_ms));
	curl_easy_setopt(f->curl, CURLOPT_USERAGENT,
			 "lambda-registry-agent/" LR_VERSION);
	rc = curl_easy_perform(f->curl);
	if (rc != CURLE_OK) {
		buf_setf(err, "GET '%s': %s", url.buf, curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &ans->code);
	if ((ans->code == 200 || ans->code == 304) && !ans->ans.has_index) {
		buf_setf(err, "GET '%s' answered %ld without X-Registry-Index",
			 url.buf, ans->code);
		goto out;
	}
	if (ans->code != 200 && ans->code != 304) {
		buf_setf(err, "GET '%s' answered %ld: ", url.buf, ans->code);
		buf_addquoted(err, ans->body.buf,
			      ans->body.len > 300 ? 300 : ans->body.len);
		goto out;
	}
	curl_easy_getinfo(f->curl, CURLINFO_CONTENT_TYPE, &type);
	if (ans->code == 200 &&
	    answer_parse(type, &ans->body, &ans->ans, &why)) {
		buf_setf(err, "GET '%s' answered, but %s", url.buf, why.buf);
		goto out;
	}
	st = ST_OK;
out:
	curl_slist_free_all(headers);
	buf_release(&url);
	buf_release(&why);
	return st;
}

/* Apply a 200 at a newer index; 0 when done with it, -1 to retry. */
static int follow_apply(struct follow *f, struct answer *ans)
{
	struct haproxy_file files[HAPROXY_MAX_FILES];
	struct buf err = BUF_INIT, q = BUF_INIT;
	enum haproxy_outcome outcome;
	uint64_t t0 = clock_now_ms();
	int ret = 0;

	/* Never back: a reset store gives lower indexes until it passes
	 * ours, and the config it has then is the one to follow. */
	if (f->have && ans->index <= f->applied) {
		log_event("level=info event=older_index index=%llu "
			  "applied=%llu",
			  (unsigned long long)ans->index,
			  (unsigned long long)f->applied);
		goto out;
	}
	/* The outcome says all the status does, and more. */
	if (haproxy_apply_set(f->opts->haproxy, ans->config.buf,
			      ans->config.len, files, answer_files(ans, files),
			      &outcome, &err) != ST_OK &&
	    outcome == HAPROXY_APPLIED)
		BUG("haproxy_apply_set() failed with a config applied");
	switch (outcome) {
	case HAPROXY_UNCHANGED:
	case HAPROXY_APPLIED:
		f->have = 1;
		f->applied = ans->index;
		if (outcome == HAPROXY_APPLIED)
			f->applies++;
		/* Named as the agent names them (event=applied method=...). */
		log_event("level=info event=%s index=%llu bytes=%zu files=%zu "
			  "ms=%llu reloads=%lu",
			  outcome == HAPROXY_APPLIED ? "applied method=reload"
						     : "unchanged",
			  (unsigned long long)ans->index, ans->config.len,
			  ans->nr_files,
			  (unsigned long long)(clock_now_ms() - t0),
			  f->applies);
		break;
	case HAPROXY_REJECTED:
	case HAPROXY_CHECK_TIMEOUT:
	case HAPROXY_ROLLED_BACK:
	case HAPROXY_BROKEN:
		/* Fetching the same index again gives the same refusal:
		 * wait for the next one. */
		log_event("level=error event=%s index=%llu error=%s",
			  haproxy_outcome_name(outcome),
			  (unsigned long long)ans->index,
			  log_quote(&q, err.buf));
		break;
	case HAPROXY_DEFERRED:
	case HAPROXY_LOCAL_ERROR:
		log_event("level=error event=%s index=%llu error=%s",
			  haproxy_outcome_name(outcome),
			  (unsigned long long)ans->index,
			  log_quote(&q, err.buf));
		ret = -1;
		break;
	}
out:
	buf_release(&err);
	buf_release(&q);
	return ret;
}

/* Sleep `ms` in small steps, so that a stop request is seen. */
static void follow_sleep(const struct follow *f, uint64_t ms)
{
	uint64_t until = clock_now_ms() + ms;

	while (!*f->opts->stop && clock_now_ms() < until) {
		struct timespec tick = {0, 50 * 1000000L};

		nanosleep(&tick, NULL);
	}
}

int follow_run(const struct follow_options *opts)
{
	struct follow f;
	struct buf err = BUF_INIT, q = BUF_INIT;
	int code = 0;

	memset(&f, 0, sizeof(f));
	f.opts = opts;
	buf_init(&f.base, 0);
	(void)buf_addf(&f.base, "%s/v1/tables/%s/config", opts->registry,
		       opts->table);
	backoff_init(&f.backoff, FOLLOW_BACKOFF_MIN_MS, FOLLOW_BACKOFF_MAX_MS);
	curlx_global_init();
	f.curl = curl_easy_init();
	if (!f.curl) {
		fprintf(stderr,
			"lambda-registry agent: cannot initialise libcurl\n");
		code = 3;
		goto out;
	}
	log_event("level=info event=follow table=%s url=%s wait_ms=%u",
		  opts->table, log_quote(&q, f.base.buf), opts->wait_ms);
	while (!*opts->stop) {
		struct follow_answer ans;
		enum status st;
		int retry = 0;

		memset(&ans, 0, sizeof(ans));
		answer_init(&ans.ans);
		/* The JSON answer holds the config, the services and the maps.
		 */
		buf_init(&ans.body, 3 * HAPROXY_CONFIG_MAX);
		buf_reset(&err);
		f.polls++;
		st = follow_get(&f, &ans, &err);
		if (*opts->stop) {
			answer_release(&ans.ans);
			buf_release(&ans.body);
			break;
		}
		if (st != ST_OK) {
			f.failures++;
			log_event("level=error event=registry_failed "
				  "failures=%lu error=%s",
				  f.failures, log_quote(&q, err.buf));
			retry = 1;
		} else if (ans.code == 200) {
			retry = follow_apply(&f, &ans.ans);
			/* After a refusal or an older index: wait for the
			 * next change rather than fetch this one again. */
			f.polled = !retry || f.polled;
			if (!retry)
				f.poll_index = ans.ans.index;
		} else {
			f.polled = 1;
			f.poll_index = ans.ans.index;
		}
		answer_release(&ans.ans);
		buf_release(&ans.body);
		if (retry) {
			uint64_t ms = backoff_next_ms(&f.backoff);

			log_event("level=info event=retry in_ms=%llu",
				  (unsigned long long)ms);
			follow_sleep(&f, ms);
		} else {
			backoff_reset(&f.backoff);
		}
	}
	log_event("level=info event=stop polls=%lu reloads=%lu failures=%lu "
		  "applied=%llu",
		  f.polls, f.applies, f.failures,
		  (unsigned long long)f.applied);
out:
	if (f.curl)
		curl_easy_cleanup(f.curl);
	buf_release(&f.base);
	buf_release(&err);
	buf_release(&q);
	return code;
}
