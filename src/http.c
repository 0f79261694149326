/*
 * The HTTP front end: libmicrohttpd turned into API requests and API answers
 * back, store calls on worker lanes off the polling threads, framing checks
 * of our own, and time and connection limits against hostile clients.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "watch.h"
#include "xalloc.h"
#include "banned.h"

#define HTTP_DRAIN_SECONDS 30
/*
 * libmicrohttpd keeps a request's headers, its read buffer, one record per
 * query argument and the answer's headers in one per-connection pool, and
 * touches all of it on every request (a larger pool costs its size in
 * memory for every connection). A full pool gets its own HTML 431, or no
 * answer at all when it ran out on argument records: it cannot build the
 * answer and never calls us (2,000 arguments were held until the timeout).
 * So the pool gets room beyond --max-header, the limit is checked here,
 * exactly, with a JSON answer, and a request line whose argument records
 * cannot fit is answered by http_uri() through the reaper.
 */
#define HTTP_POOL_SIZE(max_header) ((max_header) + 16384)
/* libmicrohttpd 0.9.75's record of one argument (struct MHD_HTTP_Header:
 * two links, key and value with their sizes, the kind). */
#define HTTP_ARG_RECORD 56
/* How long libmicrohttpd gets to prove an estimate of http_uri() wrong: it
 * parses the arguments at once, but the headers after them may take a
 * moment (the answer would be a wrong 431 then). */
#define HTTP_ARGS_GRACE_MS 250
/* The sparkline's counts of a busy table go to the store once a second,
 * not once per change (registry_batch_changes). */
#define HTTP_CHANGES_BATCH_MS 1000
/* How often the header deadlines are checked. */
#define HTTP_REAP_MS 100
/* Non-writing store calls (/healthz) get a small lane of their own. */
#define HTTP_READ_WORKERS     2
#define HTTP_DEFAULT_WORKERS  16
#define HTTP_DEFAULT_QUEUE    64
#define HTTP_RETRY_AFTER_SECS 1
/* Bodies up to this size are tried on the polling thread (API_NOWAIT):
 * a call that fails to stay cheap there is parsed again on a worker. */
#define HTTP_INLINE_MAX (64 << 10)
/* A body buffer this large is kept for the next large body, for as long as
 * one arrives every HTTP_SPARE_KEEP_MS (see http_spare_take). */
#define HTTP_SPARE_MIN	   (1 << 20)
#define HTTP_SPARE_KEEP_MS 10000
/* A body under this is read into a buffer that the polling thread keeps
 * for its next one (http_small_take): a fresh buffer for every small call
 * went through the allocator's one lock (xalloc.c), for which the polling
 * threads then waited on each other. */
#define HTTP_SMALL_BODY 16384

enum http_lane_id {
	HTTP_LANE_WRITE,
	HTTP_LANE_READ,
	/* Woken watches: a change may wake thousands at once, which must not
	 * queue in front of /healthz. */
	HTTP_LANE_WATCH,
	HTTP_NR_LANES,
};

struct http_request;
struct http_server;

/* Threads that run API_BLOCKING routes, fed by a bounded queue. */
struct http_lane {
	const char *name;
	struct http_server *srv;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct http_request *head, *tail; /* waiting for a worker */
	unsigned len, max;
	unsigned nr_workers;
	pthread_t *workers;
	int stopping;
};

/* A connection, for the header deadline (its socket context). */
struct http_conn {
	struct http_conn *prev, *next;
	MHD_socket fd;
	uint64_t deadline_ms; /* headers due by then; 0: none pending */
	int cut;	      /* shut down by the reaper */
	const char *answer;   /* what the reaper sends; NULL: a 408 */
};

struct http_server {
	struct api *api;
	const struct http_options *opts;
	size_t pool_size;
	atomic_uint connections;
	atomic_ulong refused;
	atomic_ulong queue_full;
	atomic_ulong header_timeouts;
	atomic_uint in_flight;
	struct http_lane lanes[HTTP_NR_LANES];
	/* Every open connection, for the reaper (guarded by conns_lock). */
	pthread_mutex_t conns_lock;
	struct http_conn *conns;
	pthread_t reaper;
	pthread_mutex_t reaper_lock;
	pthread_cond_t reaper_cond;
	int reaper_stop;
	/* The largest recent body buffer, empty when none (spare_lock). */
	pthread_mutex_t spare_lock;
	struct buf spare;
	uint64_t spare_ms; /* when it was last put back */
	/* Parked watches (GET ...?index=&wait=). */
	struct registry *reg;
	struct watch *watch;
};

enum http_state {
	HTTP_NEW,    /* request line seen, headers not handled yet */
	HTTP_BODY,   /* reading the body (API_BODY), or waiting for the end */
	HTTP_QUEUED, /* suspended while a worker runs the route */
	HTTP_READY,  /* the answer waits to be queued */
	HTTP_SENT,   /* the answer is queued; what still comes is dropped */
};

/* One request, from its request line to the completion notice. */
struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct http_request *next; /* in a lane's queue */
	uint64_t start_us;
	enum http_state state;
	char *uri;    /* the request target as received, cut at '?' */
	char *method; /* NULL until the headers are complete */
	struct api_request areq;
	struct api_answer ans;
	struct buf body;
	/* The body's digest so far, on an API_DIGEST route; then its end. */
	struct registry_digest *digest;
	unsigned char body_digest[REGISTRY_DIGEST_LEN];
	int has_body;  /* Content-Length over 0 or Transfer-Encoding */
	int too_large; /* a chunked body went over --max-body */
	int close;     /* close the connection after the answer */
	unsigned status;
	size_t bytes;
};

static void http_share_free(void *cls)
{
	registry_share_release(cls);
}

/*
 * The responses of the last few small shared configs, kept per polling
 * thread (all answers are queued there). Unchanged calls get the same
 * bytes and headers again and again, and libmicrohttpd queues one
 * response to any number of connections: building one per call (its
 * headers one calloc each, under the allocator's one lock) was the
 * larger part of libmicrohttpd's share of a small call. A kept response
 * holds its share; large configs are not kept, so little is pinned.
 */
#define HTTP_KEPT_MAX (64 << 10)

struct http_kept {
	struct MHD_Response *resp; /* NULL: a free slot */
	const struct registry_share *share;
	unsigned status;
	const char *content_type;
	struct api_header headers[API_MAX_HEADERS]; /* values owned */
	size_t nr_headers;
};

struct http_kept_set {
	unsigned nr;   /* --kept-answers */
	unsigned next; /* the slot that goes when all are taken */
	struct http_kept slot[];
};

static pthread_key_t http_kept_key;
static int http_kept_ok;

static void http_kept_clear(struct http_kept *k)
{
	size_t i;

	if (!k->resp)
		return;
	MHD_destroy_response(k->resp);
	for (i = 0; i < k->nr_headers; i++)
		free(k->headers[i].value);
	memset(k, 0, sizeof(*k));
}

static void http_kept_free(void *set)
{
	struct http_kept_set *ks = set;
	size_t i;

	for (i = 0; i < ks->nr; i++)
		http_kept_clear(&ks->slot[i]);
	free(ks);
}

static int http_kept_same(const struct http_kept *k,
			  const struct api_answer *ans,
			  const struct registry_share *share)
{
	size_t i;

	if (k->share != share || k->status != ans->status ||
	    k->content_type != ans->content_type ||
	    k->nr_headers != ans->nr_headers)
		return 0;
	for (i = 0; i < k->nr_headers; i++)
		if (strcmp(k->headers[i].name, ans->headers[i].name) ||
		    strcmp(k->headers[i].value, ans->headers[i].value))
			return 0;
	return 1;
}

/* The thread's kept response for this answer, or NULL. */
static struct MHD_Response *http_kept_find(const struct api_answer *ans,
					   const struct registry_share *share)
{
	struct http_kept_set *ks;
	size_t i;

	if (!http_kept_ok || !(ks = pthread_getspecific(http_kept_key)))
		return NULL;
	for (i = 0; i < ks->nr; i++)
		if (ks->slot[i].resp &&
		    http_kept_same(&ks->slot[i], ans, share))
			return ks->slot[i].resp;
	return NULL;
}

/* Keep `resp` (its creator's reference) for answers like `ans`; 0 when it
 * was not kept and is still the caller's to destroy. */
static int http_kept_put(unsigned nr, const struct api_answer *ans,
			 const struct registry_share *share,
			 struct MHD_Response *resp)
{
	struct http_kept_set *ks;
	struct http_kept *k;
	size_t i;

	if (!http_kept_ok)
		return 0;
	ks = pthread_getspecific(http_kept_key);
	if (!ks) {
		ks = xcalloc(1, sizeof(*ks) + nr * sizeof(ks->slot[0]));
		ks->nr = nr;
		if (pthread_setspecific(http_kept_key, ks)) {
			free(ks);
			return 0;
		}
	}
	k = &ks->slot[ks->next];
	ks->next = (ks->next + 1) % ks->nr;
	http_kept_clear(k);
	k->resp = resp;
	k->share = share;
	k->status = ans->status;
	k->content_type = ans->content_type;
	for (i = 0; i < ans->nr_headers; i++) {
		k->headers[i].name = ans->headers[i].name;
		k->headers[i].value = xstrdup(ans->headers[i].value);
	}
	k->nr_headers = ans->nr_headers;
	return 1;
}

/* Queue req->ans; the share goes with the response, the body is taken. */
static enum MHD_Result http_send(struct http_request *req)
{
	struct api_answer *ans = &req->ans;
	struct registry_share *share;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len, i;
	int keep = 0;

	req->state = HTTP_SENT;
	if (buf_overflowed(&ans->body))
		api_answer_error(ans, ST_INTERNAL, "the answer is incomplete",
				 NULL);
	share = api_answer_take_share(ans);
	if (share) {
		const char *data = registry_share_data(share, &len);

		keep = !req->close && len <= HTTP_KEPT_MAX &&
		       req->srv->opts->kept_answers;
		resp = keep ? http_kept_find(ans, share) : NULL;
		if (resp) {
			/* The kept response holds the share already. */
			registry_share_release(share);
			ret = MHD_queue_response(req->conn, ans->status, resp);
			goto out;
		}
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
			len, (void *)data, http_share_free, share);
		if (!resp)
			registry_share_release(share);
	} else {
		char *data = buf_detach(&ans->body, &len);

		resp = MHD_create_response_from_buffer(len, data,
						       MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(data);
	}
	if (!resp)
		return MHD_NO;
	if (ans->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					ans->content_type);
	for (i = 0; i < ans->nr_headers; i++)
		MHD_add_response_header(resp, ans->headers[i].name,
					ans->headers[i].value);
	if (req->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	ret = MHD_queue_response(req->conn, ans->status, resp);
	if (!keep || ret != MHD_YES ||
	    !http_kept_put(req->srv->opts->kept_answers, ans, share, resp))
		MHD_destroy_response(resp);
out:
	if (ret == MHD_YES) {
		req->status = ans->status;
		req->bytes = len;
	}
	return ret;
}

/* Answer with a JSON error now and close the connection after it. */
static enum MHD_Result http_refuse(struct http_request *req, enum status st,
				   unsigned http_status, const char *msg)
{
	api_answer_error(&req->ans, st, msg, NULL);
	if (http_status)
		req->ans.status = http_status;
	req->close = 1;
	return http_send(req);
}

static const char *http_header(void *ctx, const char *name)
{
	return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}

/* What the framing checks need from the request headers. */
struct http_framing {
	unsigned content_lengths, transfer_encodings, hosts;
	const char *transfer_encoding;
	struct buf bad; /* the first problem found, empty when none */
	size_t header_bytes;
};

static int http_is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c);
}

static enum MHD_Result http_framing_header(void *cls, enum MHD_ValueKind kind,
					   const char *key, const char *value)
{
	struct http_framing *f = cls;
	const char *p;

	(void)kind;
	f->header_bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
	if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		f->content_lengths++;
	else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		f->transfer_encodings++;
		f->transfer_encoding = value;
	} else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
		f->hosts++;
	if (f->bad.len)
		return MHD_YES;
	/* "Content-Length : 5" arrives as the name "Content-Length ". */
	for (p = key; *p && http_is_tchar((unsigned char)*p); p++)
		;
	if (*p || !*key) {
		(void)buf_addstr(&f->bad, "header name ");
		(void)buf_addquoted(&f->bad, key, strlen(key));
		(void)buf_addstr(&f->bad, " is not a token");
		return MHD_YES;
	}
	for (p = value ? value : ""; *p; p++)
		if (*p == '\r' || *p == '\n') {
			(void)buf_addstr(&f->bad, "header ");
			(void)buf_addquoted(&f->bad, key, strlen(key));
			(void)buf_addstr(&f->bad, " has a line break");
			break;
		}
	return MHD_YES;
}

/*
 * Refuse what a front proxy might frame differently from us (RFC 9112
 * sections 3.2 and 6): answers 400 (501 for a transfer coding other than
 * chunked) and closes the connection, so a request smuggled behind it is
 * never read. libmicrohttpd 0.9.75 already refuses a Content-Length that is
 * not a number. Returns 0 when the request may go on.
 */
static int http_check_framing(struct http_request *req, const char *version,
			      struct http_framing *f)
{
	struct buf msg = BUF_INIT;
	unsigned code = 0;
	int ret = -1;
	const char *p;

	/* A bare CR does not end a line for libmicrohttpd: it stays in the
	 * target or in a header value, where it is refused. */
	for (p = req->uri; *p && (unsigned char)*p > ' ' && *p != 0x7f; p++)
		;
	if (!*p && req->areq.query)
		for (p = req->areq.query;
		     *p && (unsigned char)*p > ' ' && *p != 0x7f; p++)
			;
	if (*p) {
		(void)buf_addstr(&msg, "the request target has a control byte");
	} else if (f->bad.len) {
		(void)buf_addstr(&msg, f->bad.buf);
	} else if (f->content_lengths > 1) {
		(void)buf_addstr(&msg, "more than one Content-Length header");
	} else if (f->transfer_encodings && f->content_lengths) {
		(void)buf_addstr(&msg, "Content-Length with Transfer-Encoding");
	} else if (f->transfer_encodings > 1) {
		(void)buf_addstr(&msg, "more than one Transfer-Encoding");
	} else if (f->transfer_encodings &&
		   strcasecmp(f->transfer_encoding, "chunked")) {
		(void)buf_addstr(&msg, "transfer coding ");
		(void)buf_addquoted(&msg, f->transfer_encoding,
				    strlen(f->transfer_encoding));
		(void)buf_addstr(&msg, " is not supported");
		code = MHD_HTTP_NOT_IMPLEMENTED;
	} else if (f->hosts > 1) {
		(void)buf_addstr(&msg, "more than one Host header");
	} else if (!f->hosts && !strcmp(version, MHD_HTTP_VERSION_1_1)) {
		(void)buf_addstr(&msg, "an HTTP/1.1 request without Host");
	} else {
		ret = 0;
	}
	if (ret)
		(void)http_refuse(req, ST_INVALID, code, msg.buf);
	buf_release(&msg);
	return ret;
}

static struct http_conn *http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* After an answer: the next request's headers are due by `deadline_ms`. */
static void http_conn_set_deadline(struct http_server *srv,
				   struct MHD_Connection *conn,
				   uint64_t deadline_ms)
{
	struct http_conn *c = http_conn_of(conn);

	if (!c)
		return;
	pthread_mutex_lock(&srv->conns_lock);
	c->deadline_ms = deadline_ms;
	c->answer = NULL;
	pthread_mutex_unlock(&srv->conns_lock);
}

/*
 * The request's headers are in: no deadline until the answer. -1 when the
 * reaper got there first (it wrote its answer and shut the socket down, so
 * libmicrohttpd must write nothing more). The reaper checks and writes
 * under the same lock, so exactly one of the two answers.
 */
static int http_conn_headers_done(struct http_server *srv,
				  struct MHD_Connection *conn)
{
	struct http_conn *c = http_conn_of(conn);
	int ret = 0;

	if (!c)
		return 0;
	pthread_mutex_lock(&srv->conns_lock);
	if (c->cut)
		ret = -1;
	c->deadline_ms = 0;
	c->answer = NULL;
	pthread_mutex_unlock(&srv->conns_lock);
	return ret;
}

/* Lane of a blocking route: whatever may write the store queues apart from
 * the reads, so /healthz never waits behind writers held by a lock. */
static struct http_lane *http_lane_of(struct http_server *srv,
				      const struct api_route *route)
{
	if (route->scope >= API_SCOPE_TABLE_WRITE)
		return &srv->lanes[HTTP_LANE_WRITE];
	return &srv->lanes[HTTP_LANE_READ];
}

/*
 * Hand the request to a worker: suspend the connection first (a worker may
 * finish and resume it before this returns; resuming a connection that is
 * not suspended yet would be lost), then queue it. -1 when the queue is
 * full or stopping: nothing was suspended.
 */
static int http_lane_submit(struct http_lane *lane, struct http_request *req)
{
	int ret = -1;

	pthread_mutex_lock(&lane->lock);
	if (!lane->stopping && lane->len < lane->max) {
		req->state = HTTP_QUEUED;
		MHD_suspend_connection(req->conn);
		req->next = NULL;
		if (lane->tail)
			lane->tail->next = req;
		else
			lane->head = req;
		lane->tail = req;
		lane->len++;
		pthread_cond_signal(&lane->cond);
		ret = 0;
	}
	pthread_mutex_unlock(&lane->lock);
	return ret;
}

/* Queue a request that is suspended already (a watch woken), past the cap:
 * it holds its connection anyway, and a change may wake thousands. */
static void http_lane_push(struct http_lane *lane, struct http_request *req)
{
	pthread_mutex_lock(&lane->lock);
	req->next = NULL;
	if (lane->tail)
		lane->tail->next = req;
	else
		lane->head = req;
	lane->tail = req;
	lane->len++;
	pthread_cond_signal(&lane->cond);
	pthread_mutex_unlock(&lane->lock);
}

/* A parked watch's end: run its route again on the watch lane. */
static void http_watch_wake(void *ctx, enum watch_reason why)
{
	struct http_request *req = ctx;

	metrics_watchers_add(-1);
	req->areq.watch_final = why != WATCH_CHANGED;
	/*
	 * A watch's answer closes its connection. Kept alive, libmicrohttpd
	 * would clear the connection's whole pool for the next request
	 * (--max-header + 16K, faulted in): at 10,000 watchers woken
	 * together that memset was half of the CPU, and it would keep the
	 * whole pool resident per watcher. A follower connects again, once per
	 * change or wait; on shutdown a client that polls again must not find
	 * the connection open either.
	 */
	req->close = 1;
	api_answer_reset(&req->ans);
	http_lane_push(&req->srv->lanes[HTTP_LANE_WATCH], req);
}

static enum status http_watch_index(void *ctx, const char *table,
				    uint64_t *index, struct buf *err)
{
	int exists;

	return registry_table_index(ctx, table, index, &exists, err);
}

/* This process stored a change: its watchers need not wait for a check. */
static void http_changed(void *ctx, const char *table)
{
	watch_hint(ctx, table);
}

/*
 * Run the route of a request on a worker. 1 when it parked (it stays
 * suspended, and belongs to the watch until woken), 0 when it has its
 * answer. Once the watch stops, a watch is answered as at its deadline.
 */
static int http_run(struct http_server *srv, struct http_request *req)
{
	api_finish(srv->api, &req->areq, &req->ans);
	if (!req->ans.park_table)
		return 0;
	req->areq.watch_deadline_ms = req->ans.park_deadline_ms;
	/* Counted before it parks: the wake may come before park returns. */
	metrics_watchers_add(1);
	if (!watch_park(srv->watch, req->ans.park_table, req->ans.park_index,
			req->ans.park_deadline_ms, http_watch_wake, req))
		return 1;
	metrics_watchers_add(-1);
	req->areq.watch_final = 1;
	req->close = 1;
	api_answer_reset(&req->ans);
	api_finish(srv->api, &req->areq, &req->ans);
	return 0;
}

/* A worker: run queued routes until the lane stops and its queue is empty. */
static void *http_worker(void *arg)
{
	struct http_lane *lane = arg;
	struct http_server *srv = lane->srv;

	for (;;) {
		struct http_request *req;

		pthread_mutex_lock(&lane->lock);
		while (!lane->head && !lane->stopping)
			pthread_cond_wait(&lane->cond, &lane->lock);
		req = lane->head;
		if (req) {
			lane->head = req->next;
			if (!lane->head)
				lane->tail = NULL;
			lane->len--;
		}
		pthread_mutex_unlock(&lane->lock);
		if (!req)
			break;
		if (http_run(srv, req))
			continue;
		/* MHD_resume_connection() takes libmicrohttpd's lock, which the
		 * polling thread takes before it calls us again: the answer is
		 * seen complete there. */
		req->state = HTTP_READY;
		MHD_resume_connection(req->conn);
	}
	return NULL;
}

static void http_lane_start(struct http_lane *lane, struct http_server *srv,
			    const char *name, unsigned workers, unsigned max)
{
	unsigned i;

	lane->name = name;
	lane->srv = srv;
	lane->max = max;
	pthread_mutex_init(&lane->lock, NULL);
	pthread_cond_init(&lane->cond, NULL);
	lane->workers = xcalloc(workers, sizeof(*lane->workers));
	for (i = 0; i < workers; i++) {
		if (pthread_create(&lane->workers[i], NULL, http_worker, lane))
			break;
		lane->nr_workers++;
	}
}

/* Let the workers finish what is queued, then join them. */
static void http_lane_stop(struct http_lane *lane)
{
	unsigned i;

	pthread_mutex_lock(&lane->lock);
	lane->stopping = 1;
	pthread_cond_broadcast(&lane->cond);
	pthread_mutex_unlock(&lane->lock);
	for (i = 0; i < lane->nr_workers; i++)
		pthread_join(lane->workers[i], NULL);
	free(lane->workers);
	pthread_cond_destroy(&lane->cond);
	pthread_mutex_destroy(&lane->lock);
}

/*
 * Run the matched route: inline when it cannot wait, else on its lane. A
 * route that can be told not to wait is tried inline first (an unchanged
 * call answered from the cache costs less than the hand-off to a worker,
 * and then never waits for a lock); it goes to its lane when it would wait.
 */
static enum MHD_Result http_dispatch(struct http_server *srv,
				     struct http_request *req)
{
	const struct api_route *route = req->areq.route;

	req->areq.body = req->body.buf;
	req->areq.body_len = req->body.len;
	req->areq.body_writable = 1;
	if (!(route->flags & API_BLOCKING)) {
		api_finish(srv->api, &req->areq, &req->ans);
		return http_send(req);
	}
	if ((route->flags & API_NOWAIT) && req->body.len <= HTTP_INLINE_MAX) {
		req->areq.no_wait = 1;
		api_finish(srv->api, &req->areq, &req->ans);
		req->areq.no_wait = 0;
		if (!req->ans.busy)
			return http_send(req);
		req->ans.busy = 0;
	}
	if (!http_lane_submit(http_lane_of(srv, route), req))
		return MHD_YES;
	atomic_fetch_add(&srv->queue_full, 1);
	api_answer_error(&req->ans, ST_UNAVAILABLE,
			 "too many calls are waiting for the store", NULL);
	api_answer_header(&req->ans, "Retry-After", "%d",
			  HTTP_RETRY_AFTER_SECS);
	return http_send(req);
}

static void http_too_large(struct http_server *srv, struct http_request *req)
{
	struct buf msg = BUF_INIT;

	buf_setf(&msg, "request body is larger than %zu bytes",
		 srv->opts->max_body);
	api_answer_error(&req->ans, ST_TOO_LARGE, msg.buf, NULL);
	buf_release(&msg);
}

/*
 * A body that needs `need` bytes goes into the spare buffer if it holds them:
 * fresh pages for a large body cost more than its parse (a 62 MB body took
 * 0.7 to 3.6 s to arrive in new memory on a virtual machine, page faults
 * most of it). The spare is the largest buffer a recent body had; the
 * reaper frees it once no large body came for HTTP_SPARE_KEEP_MS.
 */
static void http_spare_take(struct http_server *srv, struct http_request *req,
			    size_t need)
{
	struct buf small = BUF_INIT;

	pthread_mutex_lock(&srv->spare_lock);
	if (srv->spare.alloc >= need) {
		struct buf tmp = req->body;

		req->body = srv->spare;
		srv->spare = tmp;
	} else if (srv->spare.alloc) {
		/* Too small: freed before the new buffer is allocated, so
		 * the heap can reuse its memory instead of holding both. */
		small = srv->spare;
		buf_init(&srv->spare, srv->opts->max_body);
	}
	pthread_mutex_unlock(&srv->spare_lock);
	buf_release(&small);
}

/* After the answer: keep the request's body buffer if it is the larger. */
static void http_spare_put(struct http_server *srv, struct http_request *req)
{
	if (req->body.alloc < HTTP_SPARE_MIN)
		return;
	buf_reset(&req->body);
	pthread_mutex_lock(&srv->spare_lock);
	if (req->body.alloc > srv->spare.alloc) {
		struct buf tmp = srv->spare;

		srv->spare = req->body;
		req->body = tmp;
	}
	srv->spare_ms = clock_now_ms();
	pthread_mutex_unlock(&srv->spare_lock);
}

static pthread_key_t http_small_key;
static pthread_once_t http_keys_once = PTHREAD_ONCE_INIT;
static int http_small_ok;

static void http_small_free(void *kept)
{
	buf_release(kept);
	free(kept);
}

static void http_keys_init(void)
{
	http_small_ok = !pthread_key_create(&http_small_key, http_small_free);
	http_kept_ok = !pthread_key_create(&http_kept_key, http_kept_free);
}

/* Read a body of under HTTP_SMALL_BODY into the thread's kept buffer,
 * or into a new one of that size that http_small_put() keeps. */
static void http_small_take(struct http_request *req)
{
	struct buf *kept =
		http_small_ok ? pthread_getspecific(http_small_key) : NULL;

	if (kept && kept->alloc) {
		size_t cap = req->body.cap;

		buf_release(&req->body);
		req->body = *kept;
		req->body.cap = cap;
		buf_init(kept, 0);
		return;
	}
	buf_grow(&req->body, HTTP_SMALL_BODY - 1);
}

static void http_small_put(struct http_request *req)
{
	struct buf *kept;

	if (req->body.alloc != HTTP_SMALL_BODY || !http_small_ok)
		return;
	kept = pthread_getspecific(http_small_key);
	if (!kept) {
		kept = xmalloc(sizeof(*kept));
		buf_init(kept, 0);
		if (pthread_setspecific(http_small_key, kept)) {
			free(kept);
			return;
		}
	}
	if (kept->alloc)
		return;
	buf_reset(&req->body);
	*kept = req->body;
	buf_init(&req->body, 0);
}

/* The reaper's: no large body for a while, so the memory goes back. */
static void http_spare_expire(struct http_server *srv)
{
	struct buf old = BUF_INIT;

	pthread_mutex_lock(&srv->spare_lock);
	if (srv->spare.alloc &&
	    clock_now_ms() - srv->spare_ms >= HTTP_SPARE_KEEP_MS) {
		old = srv->spare;
		buf_init(&srv->spare, srv->opts->max_body);
	}
	pthread_mutex_unlock(&srv->spare_lock);
	if (!old.alloc)
		return;
	buf_release(&old);
#ifdef __GLIBC__
	/* The large calls are over for now: what they freed goes back to the
	 * system too (serve keeps up to 64 MB of free heap for the next one,
	 * see main.c), instead of staying at their high-water mark. */
	malloc_trim(0);
#endif
}

/* Whether the client waits for "100 Continue" before it sends the body. */
static int http_expects_continue(struct MHD_Connection *conn,
				 const char *version)
{
	const char *expect = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

	return expect && !strcasecmp(expect, "100-continue") &&
	       !strcmp(version, MHD_HTTP_VERSION_1_1);
}

/* The first call: the headers are complete. Check them, match the route. */
static enum MHD_Result http_start(struct http_server *srv,
				  struct http_request *req, const char *method,
				  const char *version)
{
	struct MHD_Connection *conn = req->conn;
	struct http_framing f = {0};
	const char *clen;
	enum MHD_Result ret;
	size_t hsize;

	buf_init(&f.bad, BUF_CAP_MESSAGE);
	req->method = xstrdup(method);
	if (http_conn_headers_done(srv, conn)) {
		ret = MHD_NO;
		goto out;
	}
	MHD_get_connection_values(conn, MHD_HEADER_KIND, http_framing_header,
				  &f);
	clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_CONTENT_LENGTH);
	req->has_body =
		f.transfer_encodings || (clen && strtoull(clen, NULL, 10) > 0);
	/* The request line as sent, the headers give or take spaces. */
	hsize = strlen(method) + strlen(req->uri) +
		(req->areq.query ? strlen(req->areq.query) + 1 : 0) +
		strlen(version) + 4 + f.header_bytes;
	if (hsize > srv->opts->max_header) {
		struct buf msg = BUF_INIT;

		buf_setf(&msg, "request headers are larger than %zu bytes",
			 srv->opts->max_header);
		ret = http_refuse(req, ST_HEADERS, 0, msg.buf);
		buf_release(&msg);
		goto out;
	}
	if (http_check_framing(req, version, &f)) {
		ret = req->status ? MHD_YES : MHD_NO;
		goto out;
	}
	req->areq.method = req->method;
	req->areq.path = req->uri;
	req->areq.header = http_header;
	req->areq.header_ctx = conn;
	req->areq.tls = srv->opts->tls_cert != NULL;
	/*
	 * libmicrohttpd closes the connection after an answer queued in this
	 * first call, so without a body the answer waits for the next call
	 * (the end of the request) and the connection stays open. With a body
	 * we do not read, answering now and closing is what keeps its bytes
	 * from being taken for a next request.
	 */
	if (api_begin(srv->api, &req->areq, &req->ans)) {
		req->close = req->has_body;
		if (req->has_body) {
			ret = http_send(req);
		} else {
			req->state = HTTP_READY;
			ret = MHD_YES;
		}
		goto out;
	}
	if (!(req->areq.route->flags & API_BODY)) {
		req->close = req->has_body;
		if (req->has_body) {
			ret = http_dispatch(srv, req);
		} else {
			req->state =
				HTTP_BODY; /* nothing comes: dispatched next */
			ret = MHD_YES;
		}
		goto out;
	}
	if (clen && strtoull(clen, NULL, 10) > srv->opts->max_body) {
		/* Refuse before reading the body at all. */
		http_too_large(srv, req);
		req->close = 1;
		ret = http_send(req);
		goto out;
	}
	/* A client that waits for "100 Continue" may be answered from its
	 * headers (an unchanged call by its body token): none of the body is
	 * read, and the connection closes after the answer. */
	if (http_expects_continue(conn, version) &&
	    api_early(srv->api, &req->areq, &req->ans)) {
		req->close = 1;
		ret = http_send(req);
		goto out;
	}
	/* Room for the whole body at once: no copying as it grows (large
	 * allocations stay untouched until filled). */
	if (clen) {
		size_t len = (size_t)strtoull(clen, NULL, 10);

		/* A new buffer gets room to spare: a body a little larger
		 * next time (a container more) takes it over, instead of
		 * growing it (doubling, and copying what it held). */
		if (len >= HTTP_SPARE_MIN) {
			http_spare_take(srv, req, len + 1);
			if (!req->body.alloc)
				len += len / 16;
		} else if (len < HTTP_SMALL_BODY) {
			http_small_take(req);
		}
		buf_grow(&req->body, len);
	}
	if (req->areq.route->flags & API_DIGEST)
		req->digest = registry_digest_new();
	req->state = HTTP_BODY;
	ret = MHD_YES;
out:
	buf_release(&f.bad);
	return ret;
}

/* A call in HTTP_BODY: more of the body, or (none left) its end. */
static enum MHD_Result http_body(struct http_server *srv,
				 struct http_request *req, const char *data,
				 size_t *size)
{
	struct buf scratch = BUF_INIT;
	enum MHD_Result ret = MHD_YES;

	if (!*size) {
		if (req->too_large) {
			http_too_large(srv, req);
			ret = http_send(req);
		} else {
			if (req->digest) {
				registry_digest_final(req->digest,
						      req->body_digest);
				req->digest = NULL;
				req->areq.body_digest = req->body_digest;
			}
			ret = http_dispatch(srv, req);
		}
		goto out;
	}
	/* libmicrohttpd times out idle clients only; a body trickled byte by
	 * byte must still arrive within the read timeout. It cannot queue an
	 * answer in mid-body, so the connection is cut. */
	if (srv->opts->read_timeout &&
	    clock_now_us() - req->start_us >
		    (uint64_t)srv->opts->read_timeout * 1000000) {
		log_event("event=read_timeout path=%s received=%zu",
			  log_quote(&scratch, req->uri), req->body.len);
		ret = MHD_NO;
		goto out;
	}
	if (!req->too_large && buf_add(&req->body, data, *size))
		req->too_large = 1;
	/* Hashed while the next piece is on its way, not after the end. */
	if (!req->too_large && req->digest)
		registry_digest_add(req->digest, data, *size);
	*size = 0;
out:
	buf_release(&scratch);
	return ret;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	enum MHD_Result ret = MHD_YES;

	(void)url;  /* the raw target comes from http_uri() */
	(void)conn; /* req->conn */
	if (!req)
		return MHD_NO; /* http_uri() runs first for every request */
	switch (req->state) {
	case HTTP_NEW:
		ret = http_start(srv, req, method, version);
		break;
	case HTTP_BODY:
		ret = http_body(srv, req, upload_data, upload_data_size);
		break;
	case HTTP_QUEUED:
		break; /* not called while suspended */
	case HTTP_READY:
		ret = http_send(req);
		*upload_data_size = 0; /* discard what still comes */
		break;
	case HTTP_SENT:
		*upload_data_size = 0;
		break;
	}
	return ret;
}

/* What the reaper sends before it shuts a connection down. */
static const char http_408[] =
	"HTTP/1.1 408 Request Timeout\r\n"
	"Connection: close\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 45\r\n\r\n"
	"{\"error\":\"the request headers took too long\"}";
static const char http_431_args[] =
	"HTTP/1.1 431 Request Header Fields Too Large\r\n"
	"Connection: close\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 43\r\n\r\n"
	"{\"error\":\"too many arguments in the query\"}";

/*
 * Will libmicrohttpd run its pool dry on this target's argument records
 * (then it neither answers nor calls us)? The estimate counts the target
 * twice (the read buffer grows in steps) and room for the headers; when it
 * says yes, the reaper answers 431 shortly unless http_start() runs first
 * and calls it off (see http_conn_headers_done()).
 */
static void http_uri_check_args(struct http_server *srv,
				struct MHD_Connection *conn, const char *uri)
{
	const char *q = strchr(uri, '?');
	size_t records = 0;
	struct http_conn *c;

	for (; q && *q; q++)
		records += *q == '&';
	if (records * HTTP_ARG_RECORD + strlen(uri) * 2 + 8192 <=
	    srv->pool_size)
		return;
	c = http_conn_of(conn);
	if (!c)
		return;
	pthread_mutex_lock(&srv->conns_lock);
	c->deadline_ms = clock_now_ms() + HTTP_ARGS_GRACE_MS;
	c->answer = http_431_args;
	pthread_mutex_unlock(&srv->conns_lock);
}

/* Called with the request target as received, before libmicrohttpd parses
 * it: our request object starts here (it becomes *con_cls). */
static void *http_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_server *srv = cls;
	struct http_request *req = xcalloc(1, sizeof(*req));
	char *q;

	req->srv = srv;
	req->conn = conn;
	req->start_us = clock_now_us();
	req->uri = xstrdup(uri);
	api_request_init(&req->areq);
	api_answer_init(&req->ans);
	buf_init(&req->body, srv->opts->max_body);
	q = strchr(req->uri, '?');
	if (q) {
		*q = '\0';
		req->areq.query = q + 1;
	}
	atomic_fetch_add(&srv->in_flight, 1);
	http_uri_check_args(srv, conn, uri);
	return req;
}

/* Leave the target as it is: routes match the path as received. */
static size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	return strlen(s);
}

static void http_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	struct buf qmethod = BUF_INIT, qpath = BUF_INIT;
	unsigned next_s = srv->opts->header_timeout + srv->opts->read_timeout;
	uint64_t us;

	if (!req)
		return;
	us = clock_now_us() - req->start_us;
	if (req->state == HTTP_SENT)
		metrics_http_request(req->ans.route, req->status, us);
	log_access("method=%s path=%s route=%s status=%u bytes=%zu us=%llu%s",
		   req->method ? log_quote(&qmethod, req->method) : "-",
		   log_quote(&qpath, req->uri), req->ans.route,
		   req->state == HTTP_SENT ? req->status : 0, req->bytes,
		   (unsigned long long)us,
		   toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
							      : " aborted=1");
	/* The next request on this connection may idle for the read timeout
	 * and then has the header timeout for its headers. */
	if (srv->opts->header_timeout)
		http_conn_set_deadline(
			srv, conn, clock_now_ms() + (uint64_t)next_s * 1000);
	api_request_release(&req->areq);
	api_answer_release(&req->ans);
	http_spare_put(srv, req);
	http_small_put(req);
	buf_release(&req->body);
	registry_digest_free(req->digest);
	buf_release(&qmethod);
	buf_release(&qpath);
	free(req->method);
	free(req->uri);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

static void http_notify_connection(void *cls, struct MHD_Connection *conn,
				   void **socket_context,
				   enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *srv = cls;
	struct http_conn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		atomic_fetch_add(&srv->connections, 1);
		c = xcalloc(1, sizeof(*c));
		c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
		if (srv->opts->header_timeout)
			c->deadline_ms =
				clock_now_ms() +
				(uint64_t)srv->opts->header_timeout * 1000;
		pthread_mutex_lock(&srv->conns_lock);
		c->next = srv->conns;
		if (c->next)
			c->next->prev = c;
		srv->conns = c;
		pthread_mutex_unlock(&srv->conns_lock);
		*socket_context = c;
		return;
	}
	atomic_fetch_sub(&srv->connections, 1);
	if (!c)
		return;
	/* libmicrohttpd closes the socket after this returns: unlinked
	 * first, the reaper never shuts down a reused descriptor. */
	pthread_mutex_lock(&srv->conns_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&srv->conns_lock);
	free(c);
	*socket_context = NULL;
}

/*
 * The reaper: libmicrohttpd only times out connections that go idle, so a
 * client trickling a header byte a second would hold its connection for
 * ever. Connections whose headers are past their deadline get a 408 and are
 * shut down; libmicrohttpd then sees the end of the stream and closes them
 * as usual. Writing to its socket is safe here: a deadline is pending only
 * while no answer is being sent (before the headers are complete, and after
 * the last answer went out in full).
 */

static void *http_reaper(void *arg)
{
	struct http_server *srv = arg;

	pthread_mutex_lock(&srv->reaper_lock);
	while (!srv->reaper_stop) {
		struct timespec ts;
		struct http_conn *c;
		uint64_t now = clock_now_ms();
		unsigned long cut = 0, args = 0;

		pthread_mutex_lock(&srv->conns_lock);
		for (c = srv->conns; c; c = c->next) {
			const char *answer = c->answer ? c->answer : http_408;

			if (c->cut || !c->deadline_ms || now < c->deadline_ms ||
			    c->fd == MHD_INVALID_SOCKET)
				continue;
			(void)!send(c->fd, answer, strlen(answer),
				    MSG_DONTWAIT | MSG_NOSIGNAL);
			shutdown(c->fd, SHUT_RDWR);
			c->cut = 1;
			if (c->answer)
				args++;
			else
				cut++;
		}
		pthread_mutex_unlock(&srv->conns_lock);
		if (args)
			log_event("event=too_many_arguments refused=%lu", args);
		if (cut) {
			unsigned long n =
				atomic_fetch_add(&srv->header_timeouts, cut) +
				cut;

			log_event("event=header_timeout cut=%lu total=%lu "
				  "limit_s=%u",
				  cut, n, srv->opts->header_timeout);
		}
		log_flush_stale();
		registry_flush_changes(srv->reg, HTTP_CHANGES_BATCH_MS);
		http_spare_expire(srv);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += HTTP_REAP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->reaper_cond, &srv->reaper_lock,
				       &ts);
	}
	pthread_mutex_unlock(&srv->reaper_lock);
	return NULL;
}

/* The front end's members of /healthz. */
static void http_health(void *ctx, struct buf *json)
{
	struct http_server *srv = ctx;
	unsigned queued[HTTP_NR_LANES];
	size_t i;

	for (i = 0; i < HTTP_NR_LANES; i++) {
		pthread_mutex_lock(&srv->lanes[i].lock);
		queued[i] = srv->lanes[i].len;
		pthread_mutex_unlock(&srv->lanes[i].lock);
	}
	(void)buf_addf(json,
		       ",\"connections\":%u,\"refused\":%lu,\"queued\":%u,"
		       "\"queue_full\":%lu,\"header_timeouts\":%lu,"
		       "\"watching\":%u,\"store_hints\":%lu",
		       atomic_load(&srv->connections),
		       atomic_load(&srv->refused),
		       queued[HTTP_LANE_WRITE] + queued[HTTP_LANE_READ],
		       atomic_load(&srv->queue_full),
		       atomic_load(&srv->header_timeouts),
		       srv->watch ? watch_parked(srv->watch) : 0,
		       registry_hints_received(srv->reg));
}

/* Over the cap, a new connection is closed at once and counted. */
static enum MHD_Result
http_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct http_server *srv = cls;

	(void)addr;
	(void)addrlen;
	if (atomic_load(&srv->connections) >= srv->opts->max_connections) {
		unsigned long n = atomic_fetch_add(&srv->refused, 1) + 1;

		/* Log the first refusal and then every 1000th, not each one. */
		if (n == 1 || n % 1000 == 0)
			log_event(
				"event=connection_refused refused=%lu limit=%u",
				n, srv->opts->max_connections);
		return MHD_NO;
	}
	return MHD_YES;
}
int http_parse_listen(const char *s, struct sockaddr_storage *ss,
		      socklen_t *len, struct buf *err)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	unsigned long port;
	char *end;
	size_t hlen;

	if (!colon || !colon[1]) {
		buf_setf(err, "--listen '%s' is not ADDR:PORT", s);
		return -1;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535) {
		buf_setf(err, "--listen '%s' has a bad port", s);
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (hlen >= sizeof(host)) {
		buf_setf(err, "--listen '%s' has a bad address", s);
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			goto bad;
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (!hlen || !strcmp(host, "*"))
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto bad;
		*len = sizeof(*sin);
	}
	return 0;
bad:
	buf_setf(err, "--listen '%s' has a bad address", s);
	return -1;
}

/* The address as --listen gave it, with the port the daemon is bound to
 * (another than given for port 0: the system picked it). */
static void http_bound_address(struct MHD_Daemon *d, const char *listen,
			       struct buf *out)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	const char *colon = strrchr(listen, ':');

	if (!info || !info->port || !colon) {
		buf_addstr(out, listen);
		return;
	}
	buf_add(out, listen, (size_t)(colon - listen));
	buf_addf(out, ":%u", (unsigned)info->port);
}

/* ---- TLS ------------------------------------------------------------------
 */

#define HTTP_TLS_MAX_CHAIN 16

/* One loaded certificate chain and key. */
struct http_tls_cred {
	gnutls_pcert_st chain[HTTP_TLS_MAX_CHAIN];
	unsigned nr;
	gnutls_privkey_t key;
	struct http_tls_cred *older;
};

/*
 * The credentials handshakes use. libmicrohttpd's certificate callback has
 * no context pointer, so this is the process's one listener's. A reload
 * (SIGHUP) pushes a new set under the lock; the sets before it are kept
 * until the server stops, since a handshake that took one may still be
 * signing with its key: connections already open are not touched at all.
 */
static struct {
	pthread_mutex_t lock;
	struct http_tls_cred *cur;
} http_tls = {PTHREAD_MUTEX_INITIALIZER, NULL};

static void http_tls_cred_free(struct http_tls_cred *c)
{
	unsigned i;

	for (i = 0; i < c->nr; i++)
		gnutls_pcert_deinit(&c->chain[i]);
	if (c->key)
		gnutls_privkey_deinit(c->key);
	free(c);
}

static enum status http_tls_load(const char *cert, const char *key,
				 struct http_tls_cred **out, struct buf *err)
{
	struct http_tls_cred *c = xcalloc(1, sizeof(*c));
	gnutls_datum_t data = {NULL, 0};
	enum status ret = ST_USAGE;
	int rc;

	*out = NULL;
	if ((rc = gnutls_load_file(cert, &data)) < 0) {
		buf_setf(err, "--tls-cert '%s': %s", cert, gnutls_strerror(rc));
		goto out;
	}
	c->nr = HTTP_TLS_MAX_CHAIN;
	rc = gnutls_pcert_list_import_x509_raw(c->chain, &c->nr, &data,
					       GNUTLS_X509_FMT_PEM, 0);
	gnutls_free(data.data);
	data.data = NULL;
	if (rc < 0 || !c->nr) {
		c->nr = 0;
		buf_setf(err, "--tls-cert '%s': %s", cert,
			 rc < 0 ? gnutls_strerror(rc) : "no certificate");
		goto out;
	}
	if ((rc = gnutls_load_file(key, &data)) < 0) {
		buf_setf(err, "--tls-key '%s': %s", key, gnutls_strerror(rc));
		goto out;
	}
	if (gnutls_privkey_init(&c->key) < 0)
		BUG("gnutls_privkey_init failed");
	rc = gnutls_privkey_import_x509_raw(c->key, &data, GNUTLS_X509_FMT_PEM,
					    NULL, 0);
	gnutls_memset(data.data, 0, data.size);
	gnutls_free(data.data);
	if (rc < 0) {
		buf_setf(err, "--tls-key '%s': %s", key, gnutls_strerror(rc));
		goto out;
	}
	*out = c;
	c = NULL;
	ret = ST_OK;
out:
	if (c)
		http_tls_cred_free(c);
	return ret;
}

static int http_tls_retrieve(gnutls_session_t session,
			     const gnutls_datum_t *req_ca_dn, int nreqs,
			     const gnutls_pk_algorithm_t *pk_algos,
			     int pk_algos_length, gnutls_pcert_st **pcert,
			     unsigned int *pcert_length,
			     gnutls_privkey_t *privkey)
{
	struct http_tls_cred *c;

	(void)session;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	pthread_mutex_lock(&http_tls.lock);
	c = http_tls.cur;
	pthread_mutex_unlock(&http_tls.lock);
	if (!c)
		return -1;
	*pcert = c->chain;
	*pcert_length = c->nr;
	*privkey = c->key;
	return 0;
}

static void http_tls_push(struct http_tls_cred *c)
{
	pthread_mutex_lock(&http_tls.lock);
	c->older = http_tls.cur;
	http_tls.cur = c;
	pthread_mutex_unlock(&http_tls.lock);
}

/* SIGHUP: the files again; on an error the old ones stay in use. */
static void http_tls_reload(const struct http_options *opts)
{
	struct http_tls_cred *c = NULL;
	struct buf err = BUF_INIT, q = BUF_INIT;

	if (http_tls_load(opts->tls_cert, opts->tls_key, &c, &err) != ST_OK) {
		log_event("event=tls_reload_failed level=warning error=%s",
			  log_quote(&q, err.buf));
	} else {
		http_tls_push(c);
		log_event("event=tls_reloaded cert=%s",
			  log_quote(&q, opts->tls_cert));
	}
	buf_release(&err);
	buf_release(&q);
}

static void http_tls_release_all(void)
{
	struct http_tls_cred *c, *next;

	pthread_mutex_lock(&http_tls.lock);
	c = http_tls.cur;
	http_tls.cur = NULL;
	pthread_mutex_unlock(&http_tls.lock);
	for (; c; c = next) {
		next = c->older;
		http_tls_cred_free(c);
	}
}

int http_listen_is_loopback(const char *listen)
{
	struct sockaddr_storage ss;
	struct buf err = BUF_INIT;
	socklen_t len;
	int ret = -1;

	if (!http_parse_listen(listen, &ss, &len, &err)) {
		if (ss.ss_family == AF_INET6)
			ret = IN6_IS_ADDR_LOOPBACK(
				&((struct sockaddr_in6 *)&ss)->sin6_addr);
		else
			ret = (ntohl(((struct sockaddr_in *)&ss)
					     ->sin_addr.s_addr) >>
			       24) == 127;
	}
	buf_release(&err);
	return ret;
}

/*
 * Every connection (a parked watch too) holds a descriptor: raise the soft
 * open-files limit toward what --max-connections needs, as far as the hard
 * limit allows, and log what it is, so that a shortfall shows before the
 * accepts fail.
 */
static void http_raise_nofile(unsigned max_connections)
{
	/* The store, logs, the listener and libmicrohttpd's own. */
	const rlim_t need = (rlim_t)max_connections + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < need) {
		struct rlimit want = rl;

		want.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		if (!setrlimit(RLIMIT_NOFILE, &want))
			rl = want;
	}
	log_event("event=open_files limit=%llu hard=%llu max_connections=%u "
		  "enough=%s",
		  (unsigned long long)rl.rlim_cur,
		  (unsigned long long)rl.rlim_max, max_connections,
		  rl.rlim_cur >= need ? "yes" : "no");
}

enum status http_serve(struct registry *reg, const struct http_options *opts,
		       struct buf *err)
{
	struct http_server srv = {
		.opts = opts, .pool_size = HTTP_POOL_SIZE(opts->max_header)};
	struct api_options aopts = {0};
	struct buf bound = BUF_INIT;
	struct sockaddr_storage ss;
	struct MHD_Daemon *d = NULL;
	sigset_t sigs, old;
	socklen_t sslen = 0;
	unsigned threads = opts->threads;
	unsigned workers = opts->workers ? opts->workers : HTTP_DEFAULT_WORKERS;
	unsigned max_queue =
		opts->max_queue ? opts->max_queue : HTTP_DEFAULT_QUEUE;
	unsigned flags;
	enum status ret = ST_OK;
	MHD_socket listener = MHD_INVALID_SOCKET;
	int sig = 0, waited;
	size_t i;

	if (http_parse_listen(opts->listen, &ss, &sslen, err))
		return ST_USAGE;
	http_raise_nofile(opts->max_connections);
	pthread_once(&http_keys_once, http_keys_init);
	if (opts->tls_cert) {
		struct http_tls_cred *c;

		if (MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) !=
		    MHD_YES) {
			buf_setf(err, "this libmicrohttpd has no TLS "
				      "certificate callback");
			return ST_USAGE;
		}
		ret = http_tls_load(opts->tls_cert, opts->tls_key, &c, err);
		if (ret != ST_OK)
			return ret;
		http_tls_push(c);
	}
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 && n < 64 ? (unsigned)n : 2;
	}
	aopts.reg = reg;
	aopts.max_body = opts->max_body;
	aopts.health = http_health;
	aopts.health_ctx = &srv;
	aopts.auth = opts->auth;
	aopts.answer_format = opts->answer_format;
	srv.api = api_new(&aopts);
	pthread_mutex_init(&srv.conns_lock, NULL);
	pthread_mutex_init(&srv.reaper_lock, NULL);
	pthread_cond_init(&srv.reaper_cond, NULL);
	pthread_mutex_init(&srv.spare_lock, NULL);
	buf_init(&srv.spare, opts->max_body);

	signal(SIGPIPE, SIG_IGN);
	/* Over a file size limit, SQLite should see EFBIG, not kill the server.
	 */
	signal(SIGXFSZ, SIG_IGN);
	/* Every thread started from here inherits this mask, so only
	 * sigwait() sees these. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);

	/*
	 * Store calls never run on the polling threads: a call waiting for a
	 * lock there stalls every connection that thread serves (/healthz
	 * took 9.8 s behind a locked SQLite). Writing routes queue for one
	 * lane; the rest (/healthz: its ping is a read, which SQLite in WAL
	 * mode answers while another process holds the write lock, but it may
	 * open a store connection or probe after a failed write) get a small
	 * lane of their own, so they never wait behind writers.
	 */
	http_lane_start(&srv.lanes[HTTP_LANE_WRITE], &srv, "write", workers,
			max_queue);
	http_lane_start(&srv.lanes[HTTP_LANE_READ], &srv, "read",
			HTTP_READ_WORKERS, max_queue);
	http_lane_start(&srv.lanes[HTTP_LANE_WATCH], &srv, "watch",
			HTTP_READ_WORKERS, max_queue);
	srv.reg = reg;
	registry_batch_changes(reg, HTTP_CHANGES_BATCH_MS);
	srv.watch = watch_new(&(struct watch_options){.index = http_watch_index,
						      .index_ctx = reg});
	if (!srv.watch) {
		buf_setf(err, "cannot start a thread: %s", strerror(errno));
		ret = ST_UNAVAILABLE;
		goto stop_lanes;
	}
	registry_set_changed(reg, http_changed, srv.watch);
	if (opts->auth) {
		ret = auth_start(opts->auth, err);
		if (ret != ST_OK)
			goto stop_lanes;
	}
	if (pthread_create(&srv.reaper, NULL, http_reaper, &srv)) {
		buf_setf(err, "cannot start a thread: %s", strerror(errno));
		ret = ST_UNAVAILABLE;
		goto stop_lanes;
	}

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (opts->tls_cert)
		flags |= MHD_USE_TLS;
	d = MHD_start_daemon(
		flags, 0, http_accept_policy, &srv, http_access, &srv,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_TIMEOUT, opts->read_timeout,
		MHD_OPTION_CONNECTION_LIMIT,
		opts->max_connections + threads * 2,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		opts->max_connections_per_ip,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv.pool_size,
		/* Grow the read buffer in large steps: a large body then
		 * arrives in few reads (3 MB took 5 ms longer in 1 KiB steps).
		 */
		MHD_OPTION_CONNECTION_MEMORY_INCREMENT,
		(size_t)(opts->max_header / 2), MHD_OPTION_NOTIFY_COMPLETED,
		http_completed, &srv, MHD_OPTION_NOTIFY_CONNECTION,
		http_notify_connection, &srv, MHD_OPTION_URI_LOG_CALLBACK,
		http_uri, &srv, MHD_OPTION_UNESCAPE_CALLBACK, http_unescape,
		&srv, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		/* Without TLS the option is left out by ending the list here.
		 */
		opts->tls_cert ? MHD_OPTION_HTTPS_CERT_CALLBACK
			       : MHD_OPTION_END,
		http_tls_retrieve, MHD_OPTION_END);
	if (!d) {
		buf_setf(err, "cannot listen on '%s': %s", opts->listen,
			 errno ? strerror(errno)
			       : "libmicrohttpd refused the options");
		ret = ST_UNAVAILABLE;
		goto stop_reaper;
	}
	http_bound_address(d, opts->listen, &bound);
	log_event("event=listening listen=%s threads=%u workers=%u "
		  "max_queue=%u max_body=%zu header_timeout=%u "
		  "max_connections_per_ip=%u tls=%s auth=%s",
		  bound.buf, threads, workers, max_queue, opts->max_body,
		  opts->header_timeout, opts->max_connections_per_ip,
		  opts->tls_cert ? "yes" : "no",
		  opts->auth ? "tokens" : "none");
	buf_release(&bound);

	for (;;) {
		sigwait(&sigs, &sig);
		if (sig != SIGHUP)
			break;
		if (opts->tls_cert)
			http_tls_reload(opts);
	}
	log_event("event=stopping signal=%d in_flight=%u", sig,
		  atomic_load(&srv.in_flight));
	/* Stop accepting, let the requests in flight finish, then stop. */
	listener = MHD_quiesce_daemon(d);
	/* Shut down now, new connections fail at once instead of waiting in
	 * the backlog for an accept that never comes. Closed only after
	 * libmicrohttpd stopped: each polling thread takes the socket out of
	 * its epoll set on its own time after the quiesce, and aborts the
	 * process ("Failed to remove listen FD from epoll set") when it is
	 * closed already, as happened once under load in t50. */
	if (listener != MHD_INVALID_SOCKET)
		shutdown(listener, SHUT_RDWR);
	/* Parked watches are answered now (304 at their index, or what
	 * changed), not at their deadlines. */
	watch_stop(srv.watch);
	for (waited = 0;
	     atomic_load(&srv.in_flight) && waited < HTTP_DRAIN_SECONDS * 100;
	     waited++)
		clock_sleep_ms(10);
stop_reaper:
	pthread_mutex_lock(&srv.reaper_lock);
	srv.reaper_stop = 1;
	pthread_cond_signal(&srv.reaper_cond);
	pthread_mutex_unlock(&srv.reaper_lock);
	pthread_join(srv.reaper, NULL);
stop_lanes:
	if (srv.watch) {
		watch_stop(srv.watch);
		registry_set_changed(reg, NULL, NULL);
	}
	/* Workers finish what is queued and resume those connections before
	 * libmicrohttpd stops (it must not stop with suspended ones). */
	for (i = 0; i < HTTP_NR_LANES; i++)
		http_lane_stop(&srv.lanes[i]);
	for (waited = 0; d && atomic_load(&srv.in_flight) && waited < 100;
	     waited++)
		clock_sleep_ms(10);
	if (d)
		MHD_stop_daemon(d);
	if (listener != MHD_INVALID_SOCKET)
		close(listener);
	/* Signals that came during the drain must not kill us on unblocking. */
	while (sigtimedwait(&sigs, NULL, &(struct timespec){0, 0}) > 0)
		;
	/* SIGTERM and SIGINT stay blocked: the process is on its way out, and a
	 * second SIGTERM (a supervisor repeating itself) must not turn a clean
	 * exit into death by signal while the store is being closed. */
	if (ret == ST_OK) {
		sigaddset(&old, SIGTERM);
		sigaddset(&old, SIGINT);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	api_free(srv.api);
	watch_free(srv.watch);
	http_tls_release_all();
	pthread_cond_destroy(&srv.reaper_cond);
	pthread_mutex_destroy(&srv.reaper_lock);
	buf_release(&srv.spare);
	pthread_mutex_destroy(&srv.spare_lock);
	pthread_mutex_destroy(&srv.conns_lock);
	if (ret == ST_OK)
		log_event("event=stopped");
	log_flush();
	return ret;
}
