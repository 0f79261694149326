/*
 * The AWS Lambda custom runtime: the Runtime API loop and the translation of
 * the three event shapes (direct payload, API Gateway REST proxy, HTTP API
 * payload 2.0) into registry calls and answers.
 */
#ifndef LAMBDA_H
#define LAMBDA_H

#include <stddef.h>

#include "buf.h"
#include "registry.h"
#include "status.h"

/* Raw option strings: lambda_run checks them, so bad ones become init errors.
 */
struct lambda_options {
	const char *runtime_api; /* "HOST:PORT" from AWS_LAMBDA_RUNTIME_API */
	const char *store_spec;	 /* as for registry_new */
	/* "ADDR:PORT", as render_check_bind takes it */
	const char *frontend_bind;
	const char *max_body; /* proxy bodies over this get 413 (K/M/G) */
};

/* What one event asks the runtime to post back. */
struct lambda_answer {
	int is_error;	     /* post to /error (direct invocations only) */
	struct buf body;     /* the JSON document to post */
	struct buf err_type; /* with is_error:
				Lambda-Runtime-Function-Error-Type */
	unsigned http;	     /* the HTTP status given or implied, for the log */
	const char *shape;   /* "direct", "rest", "http" */
};

void lambda_answer_init(struct lambda_answer *ans);
void lambda_answer_release(struct lambda_answer *ans);

/*
 * Answer one event. `reg` may be NULL when the store could not be opened;
 * the store is then reported unavailable (503, or an "unavailable" error)
 * with `why` as the message. Proxy bodies over `max_body` get 413. Never
 * fails: every problem becomes an answer.
 */
void lambda_handle_event(struct registry *reg, const char *why, size_t max_body,
			 const char *event, size_t len,
			 struct lambda_answer *ans);

/*
 * Open the registry, then fetch and answer invocations until the Runtime API
 * goes away. Init failures are posted to /runtime/init/error. Returns
 * ST_USAGE for bad options, ST_UNAVAILABLE when the Runtime API fails.
 */
enum status lambda_run(const struct lambda_options *opts,
		       struct buf *err) WARN_UNUSED;

#endif
