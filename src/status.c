/* Mapping of results to HTTP statuses, exit codes and names, in one table. */
#include "status.h"

#include "xalloc.h"
#include "banned.h"

static const struct {
	enum status st;
	unsigned http;
	int exit_code;
	const char *name;
} status_table[] = {
	{ST_OK, 200, 0, "ok"},
	{ST_INVALID, 400, 1, "invalid"},
	{ST_NOT_FOUND, 404, 1, "not_found"},
	{ST_METHOD, 405, 1, "method_not_allowed"},
	{ST_CONFLICT, 409, 3, "conflict"},
	{ST_UNAVAILABLE, 503, 3, "unavailable"},
	{ST_TOO_LARGE, 413, 1, "too_large"},
	{ST_HEADERS, 431, 1, "headers_too_large"},
	{ST_USAGE, 400, 2, "usage"},
	{ST_INTERNAL, 500, 3, "internal"},
	{ST_UNAUTHENTICATED, 401, 1, "unauthenticated"},
	{ST_FORBIDDEN, 403, 1, "forbidden"},
	{ST_BUSY, 503, 3, "busy"},
	{ST_PRECONDITION, 412, 1, "precondition_failed"},
};

static unsigned status_index(enum status st)
{
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(status_table); i++)
		if (status_table[i].st == st)
			return i;
	BUG("unknown status %d", (int)st);
}

unsigned status_http(enum status st)
{
	return status_table[status_index(st)].http;
}

int status_exit(enum status st)
{
	return status_table[status_index(st)].exit_code;
}

const char *status_name(enum status st)
{
	return status_table[status_index(st)].name;
}
