/* The one result type of the project and its mapping to HTTP and exit codes. */
#ifndef STATUS_H
#define STATUS_H

#define WARN_UNUSED __attribute__((warn_unused_result))

enum status {
	ST_OK = 0,
	ST_INVALID,	/* bad input: malformed JSON or a payload rule broken */
	ST_NOT_FOUND,	/* unknown path or object */
	ST_METHOD,	/* method not allowed on a known path */
	ST_CONFLICT,	/* a concurrent writer won; the caller may retry */
	ST_UNAVAILABLE, /* the store (or a remote) failed or timed out */
	ST_TOO_LARGE,	/* input over its size limit */
	ST_HEADERS,	/* request headers over their limit */
	ST_USAGE,	/* bad command line */
	ST_INTERNAL,	/* a bug or an unexpected failure */
	ST_UNAUTHENTICATED, /* no valid token: missing, unknown, expired */
	ST_FORBIDDEN,	    /* a valid token without the scope needed */
	ST_BUSY, /* the call would have to wait, and was told not to: nothing
		  * changed, run it again where waiting is allowed */
	ST_PRECONDITION, /* If-Match named an index the table left */
};

/* HTTP status code for a result. */
unsigned status_http(enum status st);
/* Process exit code for the CLI: 0 ok, 1 invalid, 2 usage, 3 store. */
int status_exit(enum status st);
/* Short stable name, e.g. "invalid", used in logs and Lambda error types. */
const char *status_name(enum status st);

#endif
