/* The agent's --metrics-listen: GET /metrics on a small HTTP server. */
#ifndef AGENT_METRICS_HTTP_H
#define AGENT_METRICS_HTTP_H

#include "buf.h"
#include "status.h"

struct metrics_http;

/*
 * Serve the agent's metrics on `listen` ("ADDR:PORT") from a thread of its
 * own until metrics_http_stop(). ST_USAGE for a bad address, ST_UNAVAILABLE
 * when it cannot bind.
 */
enum status metrics_http_start(const char *listen, struct metrics_http **out,
			       struct buf *err) WARN_UNUSED;
void metrics_http_stop(struct metrics_http *m);

#endif
