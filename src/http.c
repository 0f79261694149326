/*
 * The HTTP server: libmicrohttpd with a thread pool, a route table, bodies
 * capped before they are read in full, JSON errors and one access-log line
 * per request.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"
#include "banned.h"

#define HTTP_DRAIN_SECONDS 30
/*
 * libmicrohttpd keeps a request's headers, its read buffer and the answer's
 * headers in one per-connection pool, and answers a full pool with its own
 * HTML 431, or closes the connection when the headers fit but the answer
 * does not. So the pool gets room beyond --max-header and the limit is
 * checked here, exactly, with a JSON answer.
 */
#define HTTP_POOL_SIZE(max_header) ((max_header)*2 + 8192)

struct http_server {
	struct registry *reg;
	const struct http_options *opts;
	atomic_uint connections;
	atomic_ulong refused;
	atomic_uint in_flight;
};

/* Per-request state, from the first call of the handler to completion. */
struct http_request {
	struct timespec start;
	const struct http_route *route;
	char method[8];
	char *path;
	struct buf body;
	unsigned status;
	size_t bytes;
	int too_large;
	int answered;
};

typedef void http_handler_fn(struct http_server *srv,
			     struct MHD_Connection *conn,
			     struct http_request *req);

struct http_route {
	const char *method;
	const char *path;
	http_handler_fn *handler;
	unsigned flags;
};

#define ROUTE_BODY (1u << 0) /* reads a request body */

static http_handler_fn http_generate, http_healthz;

static const struct http_route http_routes[] = {
	{"POST", "/generate", http_generate, ROUTE_BODY},
	{"GET", "/healthz", http_healthz, 0},
};

void http_error_json(const char *msg, const char *field, struct buf *out)
{
	(void)buf_addstr(out, "{\"error\":");
	(void)buf_addjson(out, msg, strlen(msg));
	if (field && *field) {
		(void)buf_addstr(out, ",\"field\":");
		(void)buf_addjson(out, field, strlen(field));
	}
	(void)buf_addstr(out, "}");
}

/* Queue `body` (taken over) as the answer. */
static void http_respond(struct MHD_Connection *conn, struct http_request *req,
			 unsigned status, const char *content_type,
			 struct buf *body, const char *allow)
{
	struct MHD_Response *resp;
	size_t len;
	char *data = buf_detach(body, &len);

	resp = MHD_create_response_from_buffer(len, data,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				content_type);
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (MHD_queue_response(conn, status, resp) == MHD_YES) {
		req->status = status;
		req->bytes = len;
		req->answered = 1;
	}
	MHD_destroy_response(resp);
}

static void http_share_free(void *cls)
{
	registry_share_release(cls);
}

/* A 200 text/plain answer from a shared config (taken over), sent without
 * copying it: the reference goes when libmicrohttpd is done with it. */
static void http_respond_share(struct MHD_Connection *conn,
			       struct http_request *req,
			       struct registry_share *share)
{
	struct MHD_Response *resp;
	size_t len;
	const char *data = registry_share_data(share, &len);

	resp = MHD_create_response_from_buffer_with_free_callback_cls(
		len, (void *)data, http_share_free, share);
	if (!resp) {
		registry_share_release(share);
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (MHD_queue_response(conn, 200, resp) == MHD_YES) {
		req->status = 200;
		req->bytes = len;
		req->answered = 1;
	}
	MHD_destroy_response(resp);
}

static void http_respond_error(struct MHD_Connection *conn,
			       struct http_request *req, enum status st,
			       const char *msg, const char *field,
			       const char *allow)
{
	struct buf body = BUF_INIT;

	http_error_json(msg, field, &body);
	http_respond(conn, req, status_http(st), "application/json", &body,
		     allow);
}

static void http_respond_too_large(struct http_server *srv,
				   struct MHD_Connection *conn,
				   struct http_request *req)
{
	struct buf msg = BUF_INIT;

	buf_setf(&msg, "request body is larger than %zu bytes",
		 srv->opts->max_body);
	http_respond_error(conn, req, ST_TOO_LARGE, msg.buf, NULL, NULL);
	buf_release(&msg);
}

static enum MHD_Result http_add_header_size(void *cls, enum MHD_ValueKind kind,
					    const char *key, const char *value)
{
	size_t *total = cls;

	(void)kind;
	*total += strlen(key) + (value ? strlen(value) : 0) +
		  4; /* ": " and CRLF */
	return MHD_YES;
}

/* Bytes of the request line and headers, as sent (give or take spaces). */
static size_t http_header_size(struct MHD_Connection *conn, const char *method,
			       const char *url, const char *version)
{
	size_t total = strlen(method) + strlen(url) + strlen(version) + 4 + 2;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, http_add_header_size,
				  &total);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND,
				  http_add_header_size, &total);
	return total;
}

static double http_elapsed_s(const struct http_request *req)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - req->start.tv_sec) +
	       (double)(now.tv_nsec - req->start.tv_nsec) / 1e9;
}

static int http_wants_json(struct MHD_Connection *conn)
{
	const char *accept = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);

	return accept && strstr(accept, "application/json");
}

static void http_generate(struct http_server *srv, struct MHD_Connection *conn,
			  struct http_request *req)
{
	struct buf err = BUF_INIT, field = BUF_INIT, out = BUF_INIT;
	struct registry_result res;
	int json = http_wants_json(conn);
	enum status st;

	registry_result_init(&res);
	st = registry_call(srv->reg, req->body.buf, req->body.len,
			   json ? REGISTRY_WANT_SERVICES
				: REGISTRY_SHARE_CONFIG,
			   &res, &err, &field);
	if (st != ST_OK) {
		http_respond_error(conn, req, st, err.buf, field.buf, NULL);
	} else if (json) {
		registry_result_json(&res, &out);
		http_respond(conn, req, 200, "application/json", &out, NULL);
	} else {
		http_respond_share(conn, req, res.share);
		res.share = NULL;
	}
	registry_result_release(&res);
	buf_release(&err);
	buf_release(&field);
	buf_release(&out);
}

static void http_healthz(struct http_server *srv, struct MHD_Connection *conn,
			 struct http_request *req)
{
	struct buf err = BUF_INIT, body = BUF_INIT;
	enum status st = registry_ping(srv->reg, &err);

	(void)buf_addf(&body, "{\"status\":\"%s\"",
		       st == ST_OK ? "ok" : "unavailable");
	if (st != ST_OK) {
		(void)buf_addstr(&body, ",\"error\":");
		(void)buf_addjson(&body, err.buf, err.len);
	}
	(void)buf_addf(&body, ",\"connections\":%u,\"refused\":%lu}",
		       atomic_load(&srv->connections),
		       atomic_load(&srv->refused));
	http_respond(conn, req, st == ST_OK ? 200 : 503, "application/json",
		     &body, NULL);
	buf_release(&err);
}

/* Find the route for method and path; on a miss say whether the path exists. */
static const struct http_route *
http_route_find(const char *method, const char *path, struct buf *allow)
{
	size_t i;

	if (!strcmp(method, "HEAD"))
		method = "GET";
	for (i = 0; i < ARRAY_SIZE(http_routes); i++) {
		if (strcmp(http_routes[i].path, path))
			continue;
		if (!strcmp(http_routes[i].method, method))
			return &http_routes[i];
		(void)buf_addf(allow, "%s%s", allow->len ? ", " : "",
			       http_routes[i].method);
	}
	return NULL;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;

	if (!req) {
		struct buf allow = BUF_INIT;
		const char *clen;
		size_t hsize;

		req = xcalloc(1, sizeof(*req));
		clock_gettime(CLOCK_MONOTONIC, &req->start);
		snprintf(req->method, sizeof(req->method), "%s", method);
		req->path = xstrdup(url);
		buf_init(&req->body, srv->opts->max_body);
		*con_cls = req;
		atomic_fetch_add(&srv->in_flight, 1);

		hsize = http_header_size(conn, method, url, version);
		if (hsize > srv->opts->max_header) {
			struct buf msg = BUF_INIT;

			buf_setf(&msg,
				 "request headers are larger than %zu bytes",
				 srv->opts->max_header);
			http_respond_error(conn, req, ST_HEADERS, msg.buf, NULL,
					   NULL);
			buf_release(&msg);
			return MHD_YES;
		}
		req->route = http_route_find(method, url, &allow);
		if (!req->route) {
			if (allow.len)
				http_respond_error(conn, req, ST_METHOD,
						   "method not allowed", NULL,
						   allow.buf);
			else
				http_respond_error(conn, req, ST_NOT_FOUND,
						   "no such path", NULL, NULL);
			buf_release(&allow);
			return MHD_YES;
		}
		clen = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (clen && req->route->flags & ROUTE_BODY &&
		    strtoull(clen, NULL, 10) > srv->opts->max_body) {
			/* Refuse before reading the body at all. */
			http_respond_too_large(srv, conn, req);
		} else if (clen && req->route->flags & ROUTE_BODY) {
			/* Room for the whole body at once: no copying as it
			 * grows (large allocations stay untouched until
			 * filled). */
			buf_grow(&req->body, (size_t)strtoull(clen, NULL, 10));
		}
		return MHD_YES;
	}

	if (req->answered) {
		*upload_data_size = 0; /* discard what still comes */
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* libmicrohttpd times out idle clients only; a body trickled
		 * byte by byte must still arrive within the read timeout. It
		 * cannot queue an answer in mid-body, so the connection is cut.
		 */
		if (srv->opts->read_timeout &&
		    http_elapsed_s(req) > srv->opts->read_timeout) {
			log_event("event=read_timeout path=%s received=%zu",
				  req->path, req->body.len);
			return MHD_NO;
		}
		if (!req->too_large &&
		    buf_add(&req->body, upload_data, *upload_data_size))
			req->too_large = 1;
		*upload_data_size = 0;
		if (!req->too_large)
			return MHD_YES;
	}
	if (req->too_large) {
		http_respond_too_large(srv, conn, req);
		return MHD_YES;
	}
	req->route->handler(srv, conn, req);
	return MHD_YES;
}

static void http_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	struct timespec end;
	long long us;

	(void)conn;
	if (!req)
		return;
	clock_gettime(CLOCK_MONOTONIC, &end);
	us = (long long)(end.tv_sec - req->start.tv_sec) * 1000000 +
	     (end.tv_nsec - req->start.tv_nsec) / 1000;
	log_event(
		"method=%s path=%s status=%u bytes=%zu us=%lld%s", req->method,
		req->path, req->answered ? req->status : 0, req->bytes, us,
		toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
	buf_release(&req->body);
	free(req->path);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

static void http_notify_connection(void *cls, struct MHD_Connection *conn,
				   void **socket_context,
				   enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *srv = cls;

	(void)conn;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&srv->connections, 1);
	else
		atomic_fetch_sub(&srv->connections, 1);
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

static int http_parse_listen(const char *s, struct sockaddr_storage *ss,
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

enum status http_serve(struct registry *reg, const struct http_options *opts,
		       struct buf *err)
{
	struct http_server srv = {.reg = reg, .opts = opts};
	struct sockaddr_storage ss;
	struct MHD_Daemon *d = NULL;
	sigset_t sigs, old;
	socklen_t sslen = 0;
	unsigned threads = opts->threads;
	unsigned flags;
	MHD_socket listener;
	int sig = 0, waited;

	if (http_parse_listen(opts->listen, &ss, &sslen, err))
		return ST_USAGE;
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 && n < 64 ? (unsigned)n : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Over a file size limit, SQLite should see EFBIG, not kill the server.
	 */
	signal(SIGXFSZ, SIG_IGN);
	/* The MHD threads inherit this mask, so only sigwait() sees these. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
		MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	d = MHD_start_daemon(
		flags, 0, http_accept_policy, &srv, http_access, &srv,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_TIMEOUT, opts->read_timeout,
		MHD_OPTION_CONNECTION_LIMIT,
		opts->max_connections + threads * 2,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		HTTP_POOL_SIZE(opts->max_header),
		/* Grow the read buffer in large steps: a large body then
		 * arrives in few reads (3 MB took 5 ms longer in 1 KiB steps).
		 */
		MHD_OPTION_CONNECTION_MEMORY_INCREMENT,
		(size_t)(opts->max_header / 2), MHD_OPTION_NOTIFY_COMPLETED,
		http_completed, &srv, MHD_OPTION_NOTIFY_CONNECTION,
		http_notify_connection, &srv, MHD_OPTION_LISTEN_BACKLOG_SIZE,
		1024, MHD_OPTION_END);
	if (!d) {
		buf_setf(err, "cannot listen on '%s': %s", opts->listen,
			 errno ? strerror(errno)
			       : "libmicrohttpd refused the options");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return ST_UNAVAILABLE;
	}
	log_event("event=listening listen=%s threads=%u max_body=%zu",
		  opts->listen, threads, opts->max_body);

	sigwait(&sigs, &sig);
	log_event("event=stopping signal=%d in_flight=%u", sig,
		  atomic_load(&srv.in_flight));
	/* Stop accepting, let the requests in flight finish, then stop. */
	listener = MHD_quiesce_daemon(d);
	/* Closing it now makes new connections fail at once instead of
	 * waiting in the backlog for an accept that never comes. */
	if (listener != MHD_INVALID_SOCKET)
		close(listener);
	for (waited = 0;
	     atomic_load(&srv.in_flight) && waited < HTTP_DRAIN_SECONDS * 100;
	     waited++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(d);
	/* Signals that came during the drain must not kill us on unblocking. */
	while (sigtimedwait(&sigs, NULL, &(struct timespec){0, 0}) > 0)
		;
	/* SIGTERM and SIGINT stay blocked: the process is on its way out, and a
	 * second SIGTERM (a supervisor repeating itself) must not turn a clean
	 * exit into death by signal while the store is being closed. */
	sigaddset(&old, SIGTERM);
	sigaddset(&old, SIGINT);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_event("event=stopped");
	return ST_OK;
}
