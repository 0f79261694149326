/*
 * The AWS Lambda custom runtime: the Runtime API client loop. The events
 * themselves are translated by lambda_event.h.
 */
#ifndef LAMBDA_H
#define LAMBDA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

/* Raw option strings: lambda_run checks them, so bad ones become init errors.
 */
struct lambda_options {
	const char *runtime_api; /* "HOST:PORT" from AWS_LAMBDA_RUNTIME_API */
	const char *store_spec;	 /* as for registry_new */
	/* "ADDR:PORT", as render_check_bind takes it */
	const char *frontend_bind;
	const char *max_body; /* bodies and direct events over this get 413
				 (K/M/G) */
	/* --auth: "required", "off" or "auto" (API Gateway is no loopback:
	 * auto requires tokens). Direct invocations never need one. */
	const char *auth;
	/* --answer-format: "text" or "json-string" (api_answer_format_parse) */
	const char *answer_format;
};

/*
 * Lambda's deadline from a Lambda-Runtime-Deadline-Ms value (epoch ms), for
 * a process whose real clock reads `now_ms`. Returns 1 with *deadline_ms
 * set; 0 when `value` is NULL or empty; -1 when it is no plausible epoch
 * time in ms (not all digits, or more than a day from now: some local
 * emulators send a relative "5000"), which the caller treats as absent.
 */
int lambda_deadline_parse(const char *value, uint64_t now_ms,
			  uint64_t *deadline_ms);

/*
 * Open the registry, then fetch and answer invocations until the Runtime API
 * goes away. Init failures are posted to /runtime/init/error. Returns
 * ST_USAGE for bad options, ST_UNAVAILABLE when the Runtime API fails.
 */
enum status lambda_run(const struct lambda_options *opts,
		       struct buf *err) WARN_UNUSED;

#endif
