/* Agent reports: validation and their one JSON form. */
#include "report.h"

#include <jansson.h>
#include <string.h>

#include "xalloc.h"
#include "banned.h"

/* Counts and indexes above this are refused as nonsense. */
#define REPORT_MAX_NUMBER ((json_int_t)1 << 53)

static const char *const report_methods[] = {"noop", "runtime", "reload"};

/* A member that must be a whole number in [0, REPORT_MAX_NUMBER]. */
static int report_number(json_t *root, const char *key, uint64_t *out,
			 struct buf *err)
{
	json_t *v = json_object_get(root, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > REPORT_MAX_NUMBER) {
		buf_setf(err, "must be a whole number from 0 to 2^53");
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* A member that must be a string of 1..max bytes each accepted by `ok`. */
static int report_text(json_t *root, const char *key, char *out, size_t max,
		       int (*ok)(int c), const char *what, struct buf *err)
{
	json_t *v = json_object_get(root, key);
	const char *s;
	size_t len, i;

	if (!json_is_string(v)) {
		buf_setf(err, "must be a string");
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (!len || len > max) {
		buf_setf(err, "must be 1 to %zu characters", max);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (!ok((unsigned char)s[i])) {
			buf_setf(err, "must be %s", what);
			return -1;
		}
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

static int report_result_char(int c)
{
	return (c >= 'a' && c <= 'z') || c == '_';
}

static int report_version_char(int c)
{
	return c > ' ' && c < 127;
}

enum status report_parse(const char *json, size_t len, struct report *out,
			 struct buf *err, struct buf *field)
{
	json_error_t jerr;
	json_t *root, *v;
	enum status st = ST_INVALID;
	size_t i;

	memset(out, 0, sizeof(*out));
	buf_reset(field);
	root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		buf_setf(err, "must be a JSON object");
		goto out;
	}
	buf_setf(field, "appliedIndex");
	if (report_number(root, "appliedIndex", &out->applied_index, err))
		goto out;
	buf_setf(field, "method");
	v = json_object_get(root, "method");
	for (i = 0; json_is_string(v) && i < ARRAY_SIZE(report_methods); i++)
		if (!strcmp(json_string_value(v), report_methods[i]))
			out->method = report_methods[i];
	if (!out->method) {
		buf_setf(err, "must be noop, runtime or reload");
		goto out;
	}
	buf_setf(field, "result");
	if (report_text(root, "result", out->result, sizeof(out->result) - 1,
			report_result_char, "lower-case letters and '_'", err))
		goto out;
	buf_setf(field, "haproxyVersion");
	if (report_text(root, "haproxyVersion", out->haproxy_version,
			sizeof(out->haproxy_version) - 1, report_version_char,
			"printable ASCII without spaces", err))
		goto out;
	buf_setf(field, "up");
	if (report_number(root, "up", &out->up, err))
		goto out;
	buf_setf(field, "down");
	if (report_number(root, "down", &out->down, err))
		goto out;
	/* Only in what the registry stored; it sets its own on a put. */
	v = json_object_get(root, "receivedAt");
	if (json_is_integer(v))
		out->received_ms = (int64_t)json_integer_value(v);
	buf_reset(field);
	st = ST_OK;
out:
	json_decref(root);
	return st;
}

void report_json(const struct report *r, struct buf *out)
{
	(void)buf_addf(out, "{\"appliedIndex\":%llu,\"method\":\"%s\"",
		       (unsigned long long)r->applied_index, r->method);
	(void)buf_addstr(out, ",\"result\":");
	(void)buf_addjson(out, r->result, strlen(r->result));
	(void)buf_addstr(out, ",\"haproxyVersion\":");
	(void)buf_addjson(out, r->haproxy_version, strlen(r->haproxy_version));
	(void)buf_addf(out, ",\"up\":%llu,\"down\":%llu,\"receivedAt\":%lld}",
		       (unsigned long long)r->up, (unsigned long long)r->down,
		       (long long)r->received_ms);
}
