/*
 * Fleet settings: YAML or JSON in, a checked JSON tree (canonical text for
 * the store) and a typed struct out, with every error naming its key path.
 */
#include "settings.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "render.h"
#include "xalloc.h"
#include "banned.h"

#define SETTINGS_MAX_DEPTH 16

/* ---- YAML (or JSON, which is YAML) to a jansson tree ---- */

struct settings_yaml {
	yaml_parser_t parser;
	yaml_event_t ev;
	int have_ev;
	struct buf *err;
};

static int settings_yaml_next(struct settings_yaml *y)
{
	if (y->have_ev)
		yaml_event_delete(&y->ev);
	y->have_ev = 0;
	if (!yaml_parser_parse(&y->parser, &y->ev)) {
		buf_setf(y->err, "line %zu: %s",
			 y->parser.problem_mark.line + 1,
			 y->parser.problem ? y->parser.problem
					   : "malformed document");
		return -1;
	}
	y->have_ev = 1;
	return 0;
}

static int settings_is_int(const char *s)
{
	size_t i = (*s == '-' || *s == '+') ? 1 : 0;

	if (!s[i] || strlen(s + i) > 18)
		return 0;
	for (; s[i]; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* A plain scalar resolves as YAML's core schema says; a quoted one is text. */
static json_t *settings_yaml_scalar(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, len);
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	if (!len || !strcmp(s, "null") || !strcmp(s, "~") ||
	    !strcmp(s, "Null") || !strcmp(s, "NULL"))
		return json_null();
	if (settings_is_int(s))
		return json_integer(strtoll(s, NULL, 10));
	return json_stringn(s, len);
}

/* The value starting at the current event, new reference; NULL on error. */
static json_t *settings_yaml_value(struct settings_yaml *y, int depth)
{
	json_t *v = NULL, *item;

	if (depth > SETTINGS_MAX_DEPTH) {
		buf_setf(y->err, "nested deeper than %d levels",
			 SETTINGS_MAX_DEPTH);
		return NULL;
	}
	switch (y->ev.type) {
	case YAML_ALIAS_EVENT:
		buf_setf(y->err, "line %zu: aliases are not allowed",
			 y->ev.start_mark.line + 1);
		return NULL;
	case YAML_SCALAR_EVENT:
		return settings_yaml_scalar(&y->ev);
	case YAML_SEQUENCE_START_EVENT:
		v = json_array();
		for (;;) {
			if (settings_yaml_next(y))
				goto fail;
			if (y->ev.type == YAML_SEQUENCE_END_EVENT)
				return v;
			item = settings_yaml_value(y, depth + 1);
			if (!item)
				goto fail;
			json_array_append_new(v, item);
		}
	case YAML_MAPPING_START_EVENT:
		v = json_object();
		for (;;) {
			char *key;
			size_t line;

			if (settings_yaml_next(y))
				goto fail;
			if (y->ev.type == YAML_MAPPING_END_EVENT)
				return v;
			line = y->ev.start_mark.line + 1;
			if (y->ev.type != YAML_SCALAR_EVENT) {
				buf_setf(y->err,
					 "line %zu: keys must be plain text",
					 line);
				goto fail;
			}
			key = xstrdup((const char *)y->ev.data.scalar.value);
			if (json_object_get(v, key)) {
				buf_setf(y->err, "line %zu: key '%s' repeated",
					 line, key);
				free(key);
				goto fail;
			}
			if (settings_yaml_next(y)) {
				free(key);
				goto fail;
			}
			item = settings_yaml_value(y, depth + 1);
			if (!item) {
				free(key);
				goto fail;
			}
			json_object_set_new(v, key, item);
			free(key);
		}
	default:
		buf_setf(y->err, "line %zu: unexpected YAML event",
			 y->ev.start_mark.line + 1);
		return NULL;
	}
fail:
	json_decref(v);
	return NULL;
}

/* The one document of `text`, new reference; an empty text is {}. */
static json_t *settings_yaml_load(const char *text, size_t len, struct buf *err)
{
	struct settings_yaml y = {.err = err};
	json_t *root = NULL;

	if (memchr(text, '\0', len)) {
		buf_setf(err, "the document contains a NUL byte");
		return NULL;
	}
	yaml_parser_initialize(&y.parser);
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text,
				     len);
	/* stream start, then a document or the stream end */
	if (settings_yaml_next(&y) || settings_yaml_next(&y))
		goto out;
	if (y.ev.type == YAML_STREAM_END_EVENT) {
		root = json_object();
		goto out;
	}
	if (settings_yaml_next(&y))
		goto out;
	root = settings_yaml_value(&y, 0);
	if (!root)
		goto out;
	if (settings_yaml_next(&y) || settings_yaml_next(&y))
		goto fail;
	if (y.ev.type != YAML_STREAM_END_EVENT) {
		buf_setf(err, "only one document is allowed");
		goto fail;
	}
	if (json_is_null(root)) {
		json_decref(root);
		root = json_object();
	}
	if (!json_is_object(root)) {
		buf_setf(err, "the document must be a mapping of keys");
		goto fail;
	}
	goto out;
fail:
	json_decref(root);
	root = NULL;
out:
	if (y.have_ev)
		yaml_event_delete(&y.ev);
	yaml_parser_delete(&y.parser);
	return root;
}

/* ---- the schema ---- */

enum settings_kind {
	SK_OBJECT, /* children; `present` (if >= 0) set to 1 */
	SK_UINT,   /* unsigned long in [min, max] */
	SK_BOOL,   /* int */
	SK_DURATION,
	SK_STRING, /* char *, checked by `check` */
	SK_CHOICE, /* char *, one of `choices` */
	SK_BIND,   /* char *, canonical bind */
	SK_BINDS,  /* struct settings_binds */
	SK_LOGS,   /* the list of log targets */
};

struct settings_key {
	const char *name;
	enum settings_kind kind;
	ptrdiff_t off; /* into the struct being filled; -1: none */
	const struct settings_key *children;
	unsigned long min, max;
	int (*check)(const char *s, struct buf *why);
	const char *const *choices;
};

#define S_OFF(f) ((ptrdiff_t)offsetof(struct settings, f))
#define L_OFF(f) ((ptrdiff_t)offsetof(struct settings_log, f))

#define SETTINGS_LOWER "abcdefghijklmnopqrstuvwxyz"
#define SETTINGS_ALNUM SETTINGS_LOWER "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* Whether every character of s is one of `set`. */
static int settings_all_of(const char *s, const char *set)
{
	return s[strspn(s, set)] == '\0';
}

static int settings_check_path(const char *s, struct buf *why)
{
	size_t len = strlen(s);

	if (s[0] != '/') {
		buf_setf(why, "must be an absolute path");
		return -1;
	}
	if (len > 1024) {
		buf_setf(why, "must be at most 1024 characters long");
		return -1;
	}
	/* Characters of paths on the HAProxy hosts. */
	if (!settings_all_of(s, SETTINGS_ALNUM "._-/")) {
		buf_setf(why, "must be an absolute path of A-Z a-z 0-9 . _ - / "
			      "only");
		return -1;
	}
	if (strstr(s, "/../") || (len >= 3 && !strcmp(s + len - 3, "/.."))) {
		buf_setf(why, "must not contain '..' segments");
		return -1;
	}
	return 0;
}

/* The map folder: a path the config glues "/hosts.map" to. */
static int settings_check_map_dir(const char *s, struct buf *why)
{
	size_t len = strlen(s);

	if (settings_check_path(s, why))
		return -1;
	if (len > 1 && s[len - 1] == '/') {
		buf_setf(why, "must not end with '/'");
		return -1;
	}
	return 0;
}

static int settings_check_alpn(const char *s, struct buf *why)
{
	for (;;) {
		size_t n = strspn(s, SETTINGS_LOWER "0123456789./-");

		if (!n || n > 32 || (s[n] && s[n] != ','))
			break;
		if (!s[n])
			return 0;
		s += n + 1;
	}
	buf_setf(why, "must be protocol names separated by commas, like "
		      "\"h2,http/1.1\"");
	return -1;
}

static int settings_check_user(const char *s, struct buf *why)
{
	size_t len = strlen(s);

	if (!len || len > 64 || !settings_all_of(s, SETTINGS_ALNUM "._-")) {
		buf_setf(why, "must be 1 to 64 of A-Z a-z 0-9 . _ -");
		return -1;
	}
	return 0;
}

#define SETTINGS_CRYPT SETTINGS_ALNUM "./"

/* "$6$[rounds=N$]salt$hash": salt 1-16, hash 86 of crypt's alphabet. */
static int settings_check_hash(const char *s, struct buf *why)
{
	const char *p = s + 3;
	size_t n;

	if (strncmp(s, "$6$", 3))
		goto bad;
	if (!strncmp(p, "rounds=", 7)) {
		p += 7;
		for (n = 0; p[n] >= '0' && p[n] <= '9'; n++)
			;
		if (!n || n > 9 || p[n] != '$')
			goto bad;
		p += n + 1;
	}
	n = strspn(p, SETTINGS_CRYPT);
	if (!n || n > 16 || p[n] != '$')
		goto bad;
	p += n + 1;
	n = strspn(p, SETTINGS_CRYPT);
	if (n != 86 || p[n])
		goto bad;
	return 0;
bad:
	buf_setf(why, "must be a SHA-512 crypt hash ($6$salt$hash, as "
		      "'mkpasswd -m sha-512' prints)");
	return -1;
}

static int settings_check_uri(const char *s, struct buf *why)
{
	if (s[0] != '/' || strlen(s) > 256 ||
	    !settings_all_of(s, SETTINGS_ALNUM "._-/~")) {
		buf_setf(why, "must be a path like \"/stats\" of A-Z a-z 0-9 "
			      ". _ - ~ /");
		return -1;
	}
	return 0;
}

/* Text HAProxy reads back verbatim inside double quotes: no quote, no
 * backslash, no '$' (environment expansion), no control characters. */
static int settings_check_body(const char *s, struct buf *why)
{
	size_t i, len = strlen(s);

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '$' ||
		    c == '\'' || c == '#' || c == '`')
			break;
	}
	if (!len || len > 512 || i != len) {
		buf_setf(why, "must be 1 to 512 printable ASCII characters "
			      "without \" ' \\ $ # `");
		return -1;
	}
	if (s[0] == ' ' || s[len - 1] == ' ' || strstr(s, "  ")) {
		buf_setf(why, "must be words separated by single spaces");
		return -1;
	}
	return 0;
}

static int settings_check_log_address(const char *s, struct buf *why)
{
	struct buf canon = BUF_INIT;
	int ret = 0;

	if (!strcmp(s, "stdout"))
		return 0;
	if (s[0] == ':' || render_check_bind(s, &canon, why)) {
		if (s[0] == ':')
			buf_setf(why, "must be \"stdout\" or IP:PORT");
		ret = -1;
	}
	buf_release(&canon);
	return ret;
}

static const char *const settings_facilities[] = {
	"kern",	  "user",   "mail",   "daemon", "auth",	  "syslog", "lpr",
	"news",	  "uucp",   "cron",   "auth2",	"ftp",	  "ntp",    "audit",
	"alert",  "cron2",  "local0", "local1", "local2", "local3", "local4",
	"local5", "local6", "local7", NULL};
static const char *const settings_log_formats[] = {"rfc3164", "rfc5424", "raw",
						   NULL};
static const char *const settings_tls_versions[] = {"TLSv1.2", "TLSv1.3", NULL};
static const char *const settings_routing_modes[] = {"auto", "map", "acl",
						     NULL};

static const struct settings_key settings_log_keys[] = {
	{"address", SK_STRING, L_OFF(address), NULL, 0, 0,
	 settings_check_log_address, NULL},
	{"facility", SK_CHOICE, L_OFF(facility), NULL, 0, 0, NULL,
	 settings_facilities},
	{"format", SK_CHOICE, L_OFF(format), NULL, 0, 0, NULL,
	 settings_log_formats},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_global_keys[] = {
	{"maxconn", SK_UINT, S_OFF(maxconn), NULL, 1, 1000000, NULL, NULL},
	{"hardStopAfter", SK_DURATION, S_OFF(hard_stop_after), NULL, 0, 0, NULL,
	 NULL},
	{"nbthread", SK_UINT, S_OFF(nbthread), NULL, 1, 64, NULL, NULL},
	{"log", SK_LOGS, -1, settings_log_keys, 0, 8, NULL, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

#define S_TIMEOUT(name, i)                                                     \
	{                                                                      \
		name, SK_DURATION,                                             \
			S_OFF(timeouts) + (ptrdiff_t)(i * sizeof(char *)),     \
			NULL, 0, 0, NULL, NULL                                 \
	}

static const struct settings_key settings_timeout_keys[] = {
	S_TIMEOUT("connect", SETTINGS_TIMEOUT_CONNECT),
	S_TIMEOUT("client", SETTINGS_TIMEOUT_CLIENT),
	S_TIMEOUT("server", SETTINGS_TIMEOUT_SERVER),
	S_TIMEOUT("httpRequest", SETTINGS_TIMEOUT_HTTP_REQUEST),
	S_TIMEOUT("httpKeepAlive", SETTINGS_TIMEOUT_HTTP_KEEP_ALIVE),
	S_TIMEOUT("queue", SETTINGS_TIMEOUT_QUEUE),
	S_TIMEOUT("tunnel", SETTINGS_TIMEOUT_TUNNEL),
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_defaults_keys[] = {
	{"timeouts", SK_OBJECT, -1, settings_timeout_keys, 0, 0, NULL, NULL},
	{"retries", SK_UINT, S_OFF(retries), NULL, 0, 100, NULL, NULL},
	{"redispatch", SK_BOOL, S_OFF(redispatch), NULL, 0, 0, NULL, NULL},
	{"httplog", SK_BOOL, S_OFF(httplog), NULL, 0, 0, NULL, NULL},
	{"dontlognull", SK_BOOL, S_OFF(dontlognull), NULL, 0, 0, NULL, NULL},
	{"maxconn", SK_UINT, S_OFF(defaults_maxconn), NULL, 1, 1000000, NULL,
	 NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_http_keys[] = {
	{"binds", SK_BINDS, S_OFF(http_binds), NULL, 1, 16, NULL, NULL},
	{"redirectToHttps", SK_BOOL, S_OFF(redirect_to_https), NULL, 0, 0, NULL,
	 NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_hsts_keys[] = {
	{"maxAge", SK_UINT, S_OFF(hsts_max_age), NULL, 0, 315360000, NULL,
	 NULL},
	{"includeSubDomains", SK_BOOL, S_OFF(hsts_include_subdomains), NULL, 0,
	 0, NULL, NULL},
	{"preload", SK_BOOL, S_OFF(hsts_preload), NULL, 0, 0, NULL, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_https_keys[] = {
	{"binds", SK_BINDS, S_OFF(https_binds), NULL, 1, 16, NULL, NULL},
	{"crt", SK_STRING, S_OFF(crt), NULL, 0, 0, settings_check_path, NULL},
	{"crtList", SK_STRING, S_OFF(crt_list), NULL, 0, 0, settings_check_path,
	 NULL},
	{"alpn", SK_STRING, S_OFF(alpn), NULL, 0, 0, settings_check_alpn, NULL},
	{"minTlsVersion", SK_CHOICE, S_OFF(min_tls), NULL, 0, 0, NULL,
	 settings_tls_versions},
	{"hsts", SK_OBJECT, S_OFF(hsts), settings_hsts_keys, 0, 0, NULL, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_frontend_keys[] = {
	{"http", SK_OBJECT, -1, settings_http_keys, 0, 0, NULL, NULL},
	{"https", SK_OBJECT, S_OFF(https), settings_https_keys, 0, 0, NULL,
	 NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_stats_keys[] = {
	{"bind", SK_BIND, S_OFF(stats_bind), NULL, 0, 0, NULL, NULL},
	{"user", SK_STRING, S_OFF(stats_user), NULL, 0, 0, settings_check_user,
	 NULL},
	{"passwordHash", SK_STRING, S_OFF(stats_password_hash), NULL, 0, 0,
	 settings_check_hash, NULL},
	{"uri", SK_STRING, S_OFF(stats_uri), NULL, 0, 0, settings_check_uri,
	 NULL},
	{"prometheus", SK_BOOL, S_OFF(prometheus), NULL, 0, 0, NULL, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_unmatched_keys[] = {
	{"status", SK_UINT, S_OFF(unmatched_status), NULL, 404, 503, NULL,
	 NULL},
	{"body", SK_STRING, S_OFF(unmatched_body), NULL, 0, 0,
	 settings_check_body, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* Long enough to guess at no better than its hash. */
static int settings_check_secret(const char *s, struct buf *why)
{
	size_t len = strlen(s);

	if (len < 16 || len > 256 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "abcdefghijklmnopqrstuvwxyz"
		      "0123456789+/=_.-") != len) {
		buf_setf(why, "must be 16 to 256 characters of A-Z a-z 0-9 + / "
			      "= _ . -");
		return -1;
	}
	return 0;
}

static const struct settings_key settings_routing_keys[] = {
	{"mode", SK_CHOICE, S_OFF(routing_mode), NULL, 0, 0, NULL,
	 settings_routing_modes},
	{"mapDir", SK_STRING, S_OFF(routing_map_dir), NULL, 0, 0,
	 settings_check_map_dir, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static const struct settings_key settings_root_keys[] = {
	{"global", SK_OBJECT, -1, settings_global_keys, 0, 0, NULL, NULL},
	{"defaults", SK_OBJECT, -1, settings_defaults_keys, 0, 0, NULL, NULL},
	{"frontend", SK_OBJECT, -1, settings_frontend_keys, 0, 0, NULL, NULL},
	{"stats", SK_OBJECT, S_OFF(stats), settings_stats_keys, 0, 0, NULL,
	 NULL},
	{"unmatched", SK_OBJECT, S_OFF(unmatched), settings_unmatched_keys, 0,
	 0, NULL, NULL},
	{"routing", SK_OBJECT, -1, settings_routing_keys, 0, 0, NULL, NULL},
	{"dynamicCookieSecret", SK_STRING, S_OFF(dynamic_cookie_secret), NULL,
	 0, 0, settings_check_secret, NULL},
	{NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* ---- checking the tree into the struct ---- */

/*
 * A duration in HAProxy's syntax, digits and an optional unit (none: ms),
 * from 1 ms to 24 h.
 */
static int settings_check_duration(const char *s, struct buf *why)
{
	static const struct {
		const char *unit;
		unsigned long long us;
	} units[] = {{"", 1000},	   {"us", 1},
		     {"ms", 1000},	   {"s", 1000000},
		     {"m", 60000000},	   {"h", 3600000000ULL},
		     {"d", 86400000000ULL}};
	unsigned long long n = 0;
	size_t i, nd = 0;

	while (s[nd] >= '0' && s[nd] <= '9' && nd < 12)
		n = n * 10 + (unsigned long long)(s[nd++] - '0');
	for (i = 0; nd && i < ARRAY_SIZE(units); i++) {
		if (strcmp(s + nd, units[i].unit))
			continue;
		n *= units[i].us;
		if (n < 1000 || n > 86400000000ULL) {
			buf_setf(why, "'%s' is out of range (1ms to 24h)", s);
			return -1;
		}
		return 0;
	}
	buf_setf(why,
		 "'%s' is not a duration like \"500ms\", \"45s\", \"2m\", "
		 "\"1h\"",
		 s);
	return -1;
}

static void settings_binds_release(struct settings_binds *b)
{
	size_t i;

	for (i = 0; i < b->nr; i++)
		free(b->items[i]);
	free(b->items);
	b->items = NULL;
	b->nr = 0;
}

static void settings_set_string(void *base, ptrdiff_t off, const char *s)
{
	char **p = (char **)((char *)base + off);

	free(*p);
	*p = xstrdup(s);
}

static const char *settings_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a mapping";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int settings_walk(const json_t *obj, const struct settings_key *keys,
			 void *base, struct buf *path, struct buf *err);

__attribute__((format(printf, 3, 4))) static int
settings_fail(struct buf *err, const struct buf *path, const char *fmt, ...)
{
	va_list ap;

	buf_setf(err, "%s: ", path->buf);
	va_start(ap, fmt);
	(void)buf_vaddf(err, fmt, ap);
	va_end(ap);
	return -1;
}

static int settings_value(const json_t *v, const struct settings_key *k,
			  void *base, struct buf *path, struct buf *err)
{
	struct buf why = BUF_INIT, canon = BUF_INIT;
	char *field = k->off >= 0 ? (char *)base + k->off : NULL;
	size_t i, at = path->len;
	int ret = -1;

	switch (k->kind) {
	case SK_OBJECT:
		if (!json_is_object(v)) {
			ret = settings_fail(err, path,
					    "must be a mapping, not %s",
					    settings_type_name(v));
			break;
		}
		if (field)
			*(int *)field = 1;
		ret = settings_walk(v, k->children, base, path, err);
		break;
	case SK_UINT: {
		json_int_t n;

		if (!json_is_integer(v)) {
			ret = settings_fail(err, path,
					    "must be an integer, not %s",
					    settings_type_name(v));
			break;
		}
		n = json_integer_value(v);
		if (n < (json_int_t)k->min || n > (json_int_t)k->max) {
			buf_setf(&why, "%lld is out of range (%lu to %lu)",
				 (long long)n, k->min, k->max);
			ret = settings_fail(err, path, "%s", why.buf);
			break;
		}
		if (k->min == 404 && k->max == 503 && n != 404 && n != 503) {
			ret = settings_fail(err, path, "%s",
					    "must be 404 or 503");
			break;
		}
		*(unsigned long *)field = (unsigned long)n;
		ret = 0;
		break;
	}
	case SK_BOOL:
		if (!json_is_boolean(v)) {
			ret = settings_fail(err, path,
					    "must be true or false, not %s",
					    settings_type_name(v));
			break;
		}
		*(int *)field = json_is_true(v);
		ret = 0;
		break;
	case SK_DURATION:
	case SK_STRING:
	case SK_CHOICE:
	case SK_BIND: {
		const char *s;

		if (!json_is_string(v)) {
			ret = settings_fail(err, path,
					    "must be a string, not %s",
					    settings_type_name(v));
			break;
		}
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v)) {
			ret = settings_fail(err, path, "%s",
					    "must not contain NUL bytes");
			break;
		}
		if (k->kind == SK_DURATION &&
		    settings_check_duration(s, &why)) {
			ret = settings_fail(err, path, "%s", why.buf);
			break;
		}
		if (k->kind == SK_STRING && k->check(s, &why)) {
			ret = settings_fail(err, path, "%s", why.buf);
			break;
		}
		if (k->kind == SK_CHOICE) {
			for (i = 0; k->choices[i]; i++)
				if (!strcmp(s, k->choices[i]))
					break;
			if (!k->choices[i]) {
				for (i = 0; k->choices[i]; i++)
					(void)buf_addf(&why, "%s%s",
						       i ? ", " : "",
						       k->choices[i]);
				buf_setf(err, "%s: '%s' is not one of %s",
					 path->buf, s, why.buf);
				break;
			}
		}
		if (k->kind == SK_BIND) {
			if (render_check_bind(s, &canon, &why)) {
				ret = settings_fail(err, path, "%s", why.buf);
				break;
			}
			s = canon.buf;
		}
		settings_set_string(base, k->off, s);
		ret = 0;
		break;
	}
	case SK_BINDS: {
		struct settings_binds *b = (struct settings_binds *)field;

		if (!json_is_array(v) || json_array_size(v) < k->min ||
		    json_array_size(v) > k->max) {
			buf_setf(&why, "must be a list of %lu to %lu binds",
				 k->min, k->max);
			ret = settings_fail(err, path, "%s", why.buf);
			break;
		}
		settings_binds_release(b);
		b->items = xcalloc(json_array_size(v), sizeof(*b->items));
		for (i = 0; i < json_array_size(v); i++) {
			const json_t *item = json_array_get(v, i);

			buf_setlen(path, at);
			(void)buf_addf(path, "[%zu]", i);
			if (!json_is_string(item) ||
			    strlen(json_string_value(item)) !=
				    json_string_length(item)) {
				settings_fail(err, path,
					      "must be a string like "
					      "\":80\", not %s",
					      settings_type_name(item));
				break;
			}
			if (render_check_bind(json_string_value(item), &canon,
					      &why)) {
				settings_fail(err, path, "%s", why.buf);
				break;
			}
			b->items[b->nr++] = xstrdup(canon.buf);
		}
		ret = i == json_array_size(v) ? 0 : -1;
		break;
	}
	case SK_LOGS: {
		struct settings *s = base;

		if (!json_is_array(v) || json_array_size(v) > k->max) {
			buf_setf(&why, "must be a list of at most %lu targets",
				 k->max);
			ret = settings_fail(err, path, "%s", why.buf);
			break;
		}
		for (i = 0; i < s->nr_logs; i++) {
			free(s->logs[i].address);
			free(s->logs[i].facility);
			free(s->logs[i].format);
		}
		free(s->logs);
		s->nr_logs = 0;
		s->logs = xcalloc(json_array_size(v) + 1, sizeof(*s->logs));
		for (i = 0; i < json_array_size(v); i++) {
			const json_t *item = json_array_get(v, i);
			struct settings_log *l = &s->logs[s->nr_logs++];

			buf_setlen(path, at);
			(void)buf_addf(path, "[%zu]", i);
			if (!json_is_object(item)) {
				settings_fail(err, path,
					      "must be a mapping, not %s",
					      settings_type_name(item));
				break;
			}
			if (settings_walk(item, k->children, l, path, err))
				break;
			if (!l->address) {
				settings_fail(err, path, "%s",
					      "needs an address");
				break;
			}
			if (!l->facility)
				l->facility = xstrdup("local0");
		}
		ret = i == json_array_size(v) ? 0 : -1;
		break;
	}
	}
	buf_setlen(path, at);
	buf_release(&why);
	buf_release(&canon);
	return ret;
}

static int settings_walk(const json_t *obj, const struct settings_key *keys,
			 void *base, struct buf *path, struct buf *err)
{
	const char *name;
	json_t *v;
	size_t at = path->len;

	json_object_foreach((json_t *)obj, name, v)
	{
		const struct settings_key *k;

		for (k = keys; k->name; k++)
			if (!strcmp(k->name, name))
				break;
		if (at)
			(void)buf_addch(path, '.');
		(void)buf_addstr(path, name);
		if (!k->name) {
			buf_setf(err, "%s: unknown key", path->buf);
			return -1;
		}
		/* null: the default (in overrides: the fleet's value goes) */
		if (!json_is_null(v) && settings_value(v, k, base, path, err))
			return -1;
		buf_setlen(path, at);
	}
	return 0;
}

static int settings_is_loopback(const char *bind)
{
	return !strncmp(bind, "127.", 4) || !strncmp(bind, "[::1]:", 6);
}

/* The rules that tie keys together, checked on the effective settings. */
static int settings_cross_check(const struct settings *s, struct buf *err)
{
	size_t i, j;

	if (s->https && !s->crt == !s->crt_list) {
		buf_setf(err, "%s",
			 s->crt ? "frontend.https.crtList: crt and crtList "
				  "exclude each other"
				: "frontend.https: needs crt or crtList");
		return -1;
	}
	if (s->stats) {
		if (!s->stats_bind) {
			buf_setf(err, "stats.bind: is required");
			return -1;
		}
		if (!s->stats_user != !s->stats_password_hash) {
			buf_setf(err, "%s",
				 s->stats_user ? "stats.passwordHash: is "
						 "required with stats.user"
					       : "stats.user: is required "
						 "with stats.passwordHash");
			return -1;
		}
		if (!settings_is_loopback(s->stats_bind) && !s->stats_user) {
			buf_setf(err,
				 "stats.bind: '%s' is not a loopback address; "
				 "a public stats page needs stats.user and "
				 "stats.passwordHash",
				 s->stats_bind);
			return -1;
		}
		if (s->prometheus && !strcmp(s->stats_uri, "/metrics")) {
			buf_setf(err, "stats.uri: '/metrics' is the Prometheus "
				      "exporter's");
			return -1;
		}
	}
	if (s->unmatched && !s->unmatched_status) {
		buf_setf(err, "unmatched.status: is required");
		return -1;
	}
	for (i = 0; s->stats && i < s->http_binds.nr + s->https_binds.nr; i++) {
		const char *b =
			i < s->http_binds.nr
				? s->http_binds.items[i]
				: s->https_binds.items[i - s->http_binds.nr];

		if (strcmp(b, s->stats_bind))
			continue;
		buf_setf(err, "stats.bind: '%s' is also a frontend's bind", b);
		return -1;
	}
	for (i = 0; s->https && i < s->https_binds.nr; i++) {
		for (j = 0; j < s->http_binds.nr; j++) {
			if (strcmp(s->https_binds.items[i],
				   s->http_binds.items[j]))
				continue;
			buf_setf(err,
				 "frontend.https.binds[%zu]: '%s' is also in "
				 "frontend.http.binds",
				 i, s->https_binds.items[i]);
			return -1;
		}
	}
	return 0;
}

/* ---- the public part ---- */

void settings_init(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	s->hard_stop_after = xstrdup("30s");
	s->retries = 3;
	s->redispatch = 1;
	s->httplog = -1;
	s->alpn = xstrdup("h2,http/1.1");
	s->min_tls = xstrdup("TLSv1.2");
	s->stats_uri = xstrdup("/stats");
	s->hsts_max_age = 31536000;
	s->routing_mode = xstrdup("auto");
	s->routing_map_dir = xstrdup("/etc/haproxy/maps");
}

void settings_release(struct settings *s)
{
	size_t i;

	free(s->hard_stop_after);
	for (i = 0; i < s->nr_logs; i++) {
		free(s->logs[i].address);
		free(s->logs[i].facility);
		free(s->logs[i].format);
	}
	free(s->logs);
	for (i = 0; i < SETTINGS_NR_TIMEOUTS; i++)
		free(s->timeouts[i]);
	settings_binds_release(&s->http_binds);
	settings_binds_release(&s->https_binds);
	free(s->crt);
	free(s->crt_list);
	free(s->alpn);
	free(s->min_tls);
	free(s->stats_bind);
	free(s->stats_user);
	free(s->stats_password_hash);
	free(s->stats_uri);
	free(s->unmatched_body);
	free(s->routing_mode);
	free(s->routing_map_dir);
	free(s->dynamic_cookie_secret);
	memset(s, 0, sizeof(*s));
}

/* Control bytes of keys and values quoted in `err` as \xNN, so that an
 * error is one printable line. */
static void settings_err_clean(struct buf *err)
{
	struct buf clean = BUF_INIT;
	size_t i;

	for (i = 0; i < err->len; i++) {
		unsigned char c = (unsigned char)err->buf[i];

		if (c < 0x20 || c == 0x7f)
			(void)buf_addf(&clean, "\\x%02x", c);
		else
			(void)buf_addch(&clean, (char)c);
	}
	buf_reset(err);
	(void)buf_add(err, clean.buf, clean.len);
	buf_release(&clean);
}

/* Check `root` key by key into `out` (settings_init()ed). */
static int settings_check_tree(const json_t *root, struct settings *out,
			       struct buf *err)
{
	struct buf path = BUF_INIT;
	int ret = settings_walk(root, settings_root_keys, out, &path, err);

	buf_release(&path);
	return ret;
}

enum status settings_canonical(const char *text, size_t len, char **out,
			       struct buf *err)
{
	struct settings scratch;
	json_t *root;
	enum status ret = ST_INVALID;

	*out = NULL;
	settings_init(&scratch);
	if (len > SETTINGS_MAX_BYTES) {
		buf_setf(err, "the document is larger than %d bytes",
			 SETTINGS_MAX_BYTES);
		goto out;
	}
	root = settings_yaml_load(text, len, err);
	if (!root)
		goto out;
	if (!settings_check_tree(root, &scratch, err)) {
		*out = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
		ret = ST_OK;
	}
	json_decref(root);
out:
	if (ret != ST_OK)
		settings_err_clean(err);
	settings_release(&scratch);
	return ret;
}

/* Deep-merge `over` into `dst`: mappings merge, anything else replaces,
 * null removes. */
static void settings_merge(json_t *dst, const json_t *over)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)over, key, v)
	{
		json_t *cur = json_object_get(dst, key);

		if (json_is_null(v))
			json_object_del(dst, key);
		else if (json_is_object(v) && json_is_object(cur))
			settings_merge(cur, v);
		else
			json_object_set_new(dst, key, json_deep_copy(v));
	}
}

static json_t *settings_parse_stored(const char *text, struct buf *err)
{
	json_error_t jerr;
	json_t *v;

	if (!text)
		return json_object();
	v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!v || !json_is_object(v)) {
		buf_setf(err, "stored settings are not a JSON object: %s",
			 v ? "not an object" : jerr.text);
		json_decref(v);
		return NULL;
	}
	return v;
}

enum status settings_effective(const char *defaults, const char *overrides,
			       char **json, struct settings *out,
			       struct buf *err)
{
	struct settings s;
	json_t *root = NULL, *over = NULL;
	enum status ret = ST_INVALID;

	settings_init(&s);
	if (json)
		*json = NULL;
	root = settings_parse_stored(defaults, err);
	if (!root)
		goto out;
	over = settings_parse_stored(overrides, err);
	if (!over)
		goto out;
	settings_merge(root, over);
	if (settings_check_tree(root, &s, err) || settings_cross_check(&s, err))
		goto out;
	if (json)
		*json = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
	if (out) {
		settings_release(out);
		*out = s;
		settings_init(&s);
	}
	ret = ST_OK;
out:
	if (ret != ST_OK)
		settings_err_clean(err);
	settings_release(&s);
	json_decref(root);
	json_decref(over);
	return ret;
}
