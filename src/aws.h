/*
 * AWS access for the DynamoDB store: settings from the standard AWS_*
 * environment variables, and DynamoDB JSON-protocol requests signed with
 * SigV4 by libcurl, retried with backoff inside a time budget.
 */
#ifndef AWS_H
#define AWS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

/* Budget of one store call (all its requests and retries), in milliseconds. */
#define AWS_DEFAULT_TIMEOUT_MS 5000u
#define AWS_TIMEOUT_ENV	       "LAMBDA_REGISTRY_STORE_TIMEOUT"

struct aws_config {
	char *region;
	char *access_key;
	char *secret_key;
	char *session_token; /* NULL: none */
	char *endpoint;	     /* base URL without a trailing '/' */
	char *ca_bundle;     /* NULL: curl's default CA certificates */
	unsigned timeout_ms; /* budget of one store call */
};

/*
 * Read AWS_REGION (or AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_DYNAMODB (or
 * AWS_ENDPOINT_URL), AWS_CA_BUNDLE and LAMBDA_REGISTRY_STORE_TIMEOUT (seconds,
 * decimals allowed). Without an endpoint the regional HTTPS endpoint is used;
 * with one the region defaults to us-east-1. ST_USAGE when a setting is missing
 * or malformed; `cfg` is then released.
 */
enum status aws_config_from_env(struct aws_config *cfg,
				struct buf *err) WARN_UNUSED;
void aws_config_release(struct aws_config *cfg);

/* Parse a timeout in seconds ("5", "0.5") into milliseconds; -1 if malformed.
 */
int aws_parse_timeout(const char *s, unsigned *ms, struct buf *err);

struct aws_client;

struct aws_response {
	long http_status; /* 0: no answer was received */
	char type[128];	  /* error type without its namespace, "" when none */
	struct buf body;  /* the last answer's body */
};

void aws_response_init(struct aws_response *res);
void aws_response_release(struct aws_response *res);

/*
 * A client owns one curl handle, so connections are kept alive between
 * requests; use it from one thread at a time. It takes over `cfg` (steals its
 * strings and leaves it empty).
 */
struct aws_client *aws_client_new(struct aws_config *cfg);
void aws_client_free(struct aws_client *c);
const struct aws_config *aws_client_config(const struct aws_client *c);
/* HTTP requests sent so far, retries included. */
unsigned long aws_client_requests(const struct aws_client *c);

/*
 * POST one DynamoDB request: operation `op` (e.g. "Scan") with the JSON
 * `body`. Throttling, 5xx answers and transport errors are retried with
 * exponential backoff and full jitter while time is left before `deadline`
 * (a clock_now_ms() value). ST_OK when the final answer is 2xx. Anything else
 * is ST_UNAVAILABLE with the cause in `err`; when DynamoDB answered with an
 * error, `res->type` names it (e.g. "ConditionalCheckFailedException") so the
 * caller can map it.
 */
enum status aws_dynamodb_request(struct aws_client *c, const char *op,
				 const char *body, size_t len,
				 uint64_t deadline, struct aws_response *res,
				 struct buf *err) WARN_UNUSED;

#endif
