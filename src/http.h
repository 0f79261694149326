/* The HTTP front end (libmicrohttpd): routes as a table, JSON errors, access
 * log. */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

#include "buf.h"
#include "registry.h"
#include "status.h"

#define HTTP_DEFAULT_MAX_BODY ((size_t)1 << 20)

struct http_options {
	const char *listen;	  /* "ADDR:PORT", "[::1]:PORT" */
	size_t max_body;	  /* bodies over this get 413 */
	unsigned read_timeout;	  /* seconds an idle or slow client may take */
	unsigned max_connections; /* connections over this are refused */
	size_t max_header;	  /* bytes of request headers; over: 431 */
	unsigned threads;	  /* worker threads; 0: one per CPU */
};

/*
 * Serve until SIGTERM or SIGINT, then stop accepting, finish the requests in
 * flight and return ST_OK. ST_USAGE for a bad `listen`, ST_UNAVAILABLE when
 * it cannot bind.
 */
enum status http_serve(struct registry *reg, const struct http_options *opts,
		       struct buf *err) WARN_UNUSED;

/* {"error": msg, "field": field} (field omitted when empty). */
void http_error_json(const char *msg, const char *field, struct buf *out);

#endif
