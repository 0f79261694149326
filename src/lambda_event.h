/*
 * Lambda event translation: the three event shapes (direct payload, API
 * Gateway REST proxy, HTTP API payload 2.0) become a struct api_request, and
 * the struct api_answer becomes what the runtime posts back.
 */
#ifndef LAMBDA_EVENT_H
#define LAMBDA_EVENT_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

struct api;

/* Lambda caps events at 6 MB; anything larger is not from Lambda. */
#define LAMBDA_MAX_EVENT ((size_t)8 << 20)

/* What one event asks the runtime to post back. */
struct lambda_answer {
	int is_error;	     /* post to /error (direct invocations only) */
	struct buf body;     /* the JSON document to post */
	struct buf err_type; /* with is_error:
				Lambda-Runtime-Function-Error-Type */
	unsigned http;	     /* the HTTP status given or implied, for the log */
	const char *shape;   /* "direct", "rest", "http" */
	/* static: the route pattern answered, "-" for none (the metrics') */
	const char *route;
};

void lambda_answer_init(struct lambda_answer *ans);
void lambda_answer_release(struct lambda_answer *ans);

/*
 * Make `ans` Lambda's error document for a failed invocation:
 * {"errorMessage": "field: msg", "errorType": status_name(st)}.
 */
void lambda_answer_error(struct lambda_answer *ans, enum status st,
			 const char *msg, const char *field);

/*
 * Answer one event through api_handle(). A REST or HTTP API proxy event is
 * the request it describes; its answer becomes a proxy response
 * ({statusCode, headers, body, isBase64Encoded}), whatever the status. Any
 * other event is a direct invocation: the event is the body of a POST
 * /generate, a 200 text answer is posted as a JSON string, and any error
 * becomes Lambda's error document (is_error set). The size limit, the store
 * and its outages are the api's (see struct api_options). Never fails:
 * every problem becomes an answer.
 */
void lambda_event_handle(struct api *api, const char *event, size_t len,
			 struct lambda_answer *ans);

#endif
