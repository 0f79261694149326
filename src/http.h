/*
 * The HTTP front end (libmicrohttpd): translates requests to the API layer
 * (api.h) and its answers back, runs store calls off the polling threads,
 * and keeps hostile clients from taking the server down for everyone.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

#include <sys/socket.h>

#include "api.h"
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
	unsigned threads;	  /* polling threads; 0: one per CPU */
	/* Seconds from connecting (or from the last answer) until the request
	 * headers are complete, however slowly they trickle; 0: no limit. */
	unsigned header_timeout;
	/* Connections one client address may hold; 0: no limit. */
	unsigned max_connections_per_ip;
	/* Threads that run store calls that write; 0: a default. */
	unsigned workers;
	/* Store calls waiting for a worker; over it: 503 with Retry-After.
	 * 0: a default. */
	unsigned max_queue;
	/* Responses of small shared configs kept per polling thread and
	 * queued again for answers that repeat them; 0: none. */
	unsigned kept_answers;
	/* HTTPS with these PEM files (reloaded on SIGHUP); NULL: HTTP. */
	const char *tls_cert;
	const char *tls_key;
	/* Checks tokens (started by http_serve); NULL: none asked for. */
	struct auth *auth;
	enum api_answer_format answer_format; /* of POST generate */
};

struct auth;

/* Parse "ADDR:PORT" ("[::1]:PORT", ":PORT" for any IPv4 address) into
 * `ss`; -1 with the reason in `err`. */
int http_parse_listen(const char *s, struct sockaddr_storage *ss,
		      socklen_t *len, struct buf *err);

/* 1 when `listen` ("ADDR:PORT") is a loopback address, 0 when not, -1 when
 * it is malformed. */
int http_listen_is_loopback(const char *listen);

/*
 * Serve until SIGTERM or SIGINT, then stop accepting, finish the requests in
 * flight and return ST_OK. ST_USAGE for a bad `listen`, ST_UNAVAILABLE when
 * it cannot bind.
 */
enum status http_serve(struct registry *reg, const struct http_options *opts,
		       struct buf *err) WARN_UNUSED;

#endif
