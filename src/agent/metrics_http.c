/* A libmicrohttpd server in the agent that answers GET /metrics only. */
#include "agent/metrics_http.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "metrics.h"
#include "xalloc.h"
#include "banned.h"

/* Scrapers are few: a small server is plenty. */
#define METRICS_HTTP_CONNECTIONS 16
#define METRICS_HTTP_TIMEOUT_S	 10

struct metrics_http {
	struct MHD_Daemon *daemon;
};

static enum MHD_Result
metrics_http_answer(void *cls, struct MHD_Connection *conn, const char *url,
		    const char *method, const char *version, const char *upload,
		    size_t *size, void **state)
{
	static const char not_found[] = "{\"error\":\"no such path\"}";
	static const char not_allowed[] = "{\"error\":\"method not allowed\"}";
	struct MHD_Response *resp;
	struct buf body = BUF_INIT;
	enum MHD_Result ret;
	unsigned code = 200;
	size_t len;
	char *data;

	(void)cls;
	(void)version;
	(void)upload;
	(void)state;
	/* Answered on the first call: no route here reads a body. */
	*size = 0;
	if (strcmp(url, "/metrics")) {
		code = 404;
		(void)buf_addstr(&body, not_found);
	} else if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		code = 405;
		(void)buf_addstr(&body, not_allowed);
	} else {
		metrics_write(METRICS_AGENT, &body);
	}
	data = buf_detach(&body, &len);
	resp = MHD_create_response_from_buffer(len, data,
					       MHD_RESPMEM_MUST_FREE);
	(void)MHD_add_response_header(
		resp, "Content-Type",
		code == 200 ? "text/plain; version=0.0.4; charset=utf-8"
			    : "application/json");
	if (code == 405)
		(void)MHD_add_response_header(resp, "Allow", "GET, HEAD");
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum status metrics_http_start(const char *listen, struct metrics_http **out,
			       struct buf *err)
{
	struct sockaddr_storage ss;
	struct metrics_http *m;
	socklen_t sslen;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	*out = NULL;
	if (http_parse_listen(listen, &ss, &sslen, err))
		return ST_USAGE;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m = xcalloc(1, sizeof(*m));
	m->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, metrics_http_answer, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
		MHD_OPTION_END);
	if (!m->daemon) {
		buf_setf(err, "cannot listen on '%s' for metrics", listen);
		free(m);
		return ST_UNAVAILABLE;
	}
	*out = m;
	return ST_OK;
}

void metrics_http_stop(struct metrics_http *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->daemon);
	free(m);
}
