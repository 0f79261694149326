/*
 * Payload parsing and validation: the only place where request JSON is read
 * and where every value is checked and canonicalised before the rest sees it.
 */
#include "payload.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"
#include "banned.h"

/* payload_check_name() serves both service names and container ids. */
_Static_assert(SERVICE_NAME_MAX == CONTAINER_ID_MAX,
	       "payload_check_name assumes one maximum for names and ids");

#define PORT_TYPE_ERROR                                                        \
	"must be an integer from 1 to 65535 or a string of digits"

void payload_init(struct payload *p)
{
	memset(p, 0, sizeof(*p));
	service_list_init(&p->candidates);
}

struct payload_block {
	struct payload_block *next;
	size_t used, size;
	char data[];
};

#define PAYLOAD_BLOCK_SIZE ((size_t)256 << 10)

/* The first block: a small document's strings fit in it, one allocation. A
 * large document's take less than half its size (its keys and punctuation
 * stay behind), and a block as large as the document would hold the rest
 * of it, untouched, at the heap's high-water mark. */
static void payload_blocks_start(struct payload *p, size_t len)
{
	size_t size =
		len + 1 < PAYLOAD_BLOCK_SIZE ? len + 1 : PAYLOAD_BLOCK_SIZE;
	struct payload_block *b = xmalloc(sizeof(*b) + size);

	b->size = size;
	b->used = 0;
	b->next = NULL;
	p->blocks = b;
}

/* A copy of `len` bytes and a NUL in p->blocks. */
static char *payload_strndup(struct payload *p, const char *s, size_t len)
{
	struct payload_block *b = p->blocks;
	char *ret;

	if (!b || b->size - b->used < len + 1) {
		size_t size = len + 1 > PAYLOAD_BLOCK_SIZE ? len + 1
							   : PAYLOAD_BLOCK_SIZE;

		b = xmalloc(sizeof(*b) + size);
		b->size = size;
		b->used = 0;
		b->next = p->blocks;
		p->blocks = b;
	}
	ret = b->data + b->used;
	memcpy(ret, s, len);
	ret[len] = '\0';
	b->used += len + 1;
	return ret;
}

/* A string ended in place in p->in_place gets its closing quote back. */
static void payload_unend(const struct payload *p, char *s)
{
	uintptr_t at = (uintptr_t)s, lo = (uintptr_t)p->in_place;

	if (at >= lo && at < lo + p->in_place_len)
		s[strlen(s)] = '"';
}

void payload_release(struct payload *p)
{
	size_t i;

	for (i = 0; p->in_place && i < p->nr_running; i++) {
		payload_unend(p, p->running[i].service);
		payload_unend(p, p->running[i].id);
		payload_unend(p, p->running[i].ip);
	}
	free(p->table);
	for (i = 0; !p->blocks && i < p->nr_running; i++) {
		free(p->running[i].service);
		free(p->running[i].id);
		free(p->running[i].ip);
	}
	while (p->blocks) {
		struct payload_block *next = p->blocks->next;

		free(p->blocks);
		p->blocks = next;
	}
	free(p->running);
	free(p->lazy);
	service_list_release(&p->candidates);
	payload_init(p);
}

/*
 * The bytes of service names and container ids: A-Z a-z 0-9 _ . : -, the
 * one definition payload_check_name() and the fast path both read.
 */
/* clang-format off */
static const unsigned char name_chars[256] = {
	/* 0x00 - 0x2f: '-' '.' */
	[0x2d] = 1, 1,
	/* 0x30 - 0x3f: 0-9 ':' */
	[0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	/* 0x40 - 0x5f: A-Z '_' */
	[0x40] = 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
	/* 0x60 - 0x7f: a-z */
	[0x60] = 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
	/* 0x80 - 0xff: none */
};
/* clang-format on */

/* Character classes in plain ASCII: <ctype.h> would follow the locale. */
static int is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9');
}

static int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
	       (c >= 'a' && c <= 'f');
}

static void set_quoted_error(struct buf *err, const char *what, const char *s,
			     const char *reason)
{
	buf_reset(err);
	(void)buf_addf(err, "invalid %s ", what);
	(void)buf_addquoted(err, s, strlen(s));
	(void)buf_addf(err, ": %s", reason);
}

int payload_check_table(const char *s, struct buf *err)
{
	size_t len = strlen(s), i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_alnum(c) && c != '_' && c != '-' && c != '.') {
			set_quoted_error(err, "table name", s,
					 "only A-Z a-z 0-9 _ - . are allowed");
			return -1;
		}
	}
	if (len < TABLE_NAME_MIN || len > TABLE_NAME_MAX) {
		set_quoted_error(err, "table name", s,
				 "must be 3 to 255 characters long");
		return -1;
	}
	return 0;
}

int payload_check_name(const char *s, struct buf *err)
{
	size_t len = strlen(s), i;

	if (!len) {
		buf_setf(err, "name must not be empty");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!name_chars[c]) {
			set_quoted_error(
				err, "name", s,
				"only A-Z a-z 0-9 _ . : - are allowed");
			return -1;
		}
	}
	if (len > SERVICE_NAME_MAX) {
		set_quoted_error(err, "name", s, "longer than 128 characters");
		return -1;
	}
	return 0;
}

/*
 * Why the address `a` (4 bytes for AF_INET, 16 for AF_INET6) cannot be a
 * container's, or NULL when it can. HAProxy reads a server at the
 * unspecified address as "the address the client connected to", so traffic
 * would loop back to the HAProxy host; multicast and broadcast name no one
 * server. An IPv4-mapped address (::ffff:a.b.c.d) is judged by its IPv4
 * part, as that is where a connection to it goes. Loopback is allowed.
 */
static const char *ip_refusal(int family, const unsigned char *a)
{
	static const unsigned char zero[16];
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (family == AF_INET6) {
		if (!memcmp(a, zero, 16))
			return "the unspecified address is not a container "
			       "address (HAProxy would connect to itself)";
		if (a[0] == 0xff)
			return "multicast addresses (ff00::/8) are not "
			       "container addresses";
		if (memcmp(a, mapped, sizeof(mapped)))
			return NULL;
		a += sizeof(mapped);
	}
	if (!memcmp(a, zero, 4))
		return "the unspecified address is not a container address "
		       "(HAProxy would connect to itself)";
	if ((a[0] & 0xf0) == 0xe0)
		return "multicast addresses (224.0.0.0/4) are not container "
		       "addresses";
	if (a[0] == 0xff && a[1] == 0xff && a[2] == 0xff && a[3] == 0xff)
		return "the broadcast address is not a container address";
	return NULL;
}

int payload_check_ip(const char *s, struct buf *out, struct buf *err)
{
	const char *refusal;
	unsigned char addr[sizeof(struct in6_addr)];
	char text[INET6_ADDRSTRLEN];
	int family;

	buf_reset(out);
	/* Specific reasons for forms people commonly try. */
	if (strchr(s, '%')) {
		set_quoted_error(err, "ip", s, "scope ids are not allowed");
		return -1;
	}
	if (strchr(s, '[') || strchr(s, ']')) {
		set_quoted_error(err, "ip", s,
				 "must be a bare address without brackets");
		return -1;
	}
	family = strchr(s, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(family, s, addr) != 1 ||
	    !inet_ntop(family, addr, text, sizeof(text))) {
		set_quoted_error(err, "ip", s, "not an IPv4 or IPv6 address");
		return -1;
	}
	refusal = ip_refusal(family, addr);
	if (refusal) {
		set_quoted_error(err, "ip", s, refusal);
		return -1;
	}
	if (buf_addstr(out, text)) {
		buf_setf(err, "ip does not fit in its buffer");
		return -1;
	}
	return 0;
}

static int check_host_predicate(const char *s, struct buf *out, struct buf *err)
{
	size_t len = strlen(s), i, label = 0;

	/* One trailing dot is the fully qualified form of the same name. */
	if (len && s[len - 1] == '.')
		len--;
	if (!len) {
		set_quoted_error(err, "host name", s, "must not be empty");
		return -1;
	}
	if (len > PREDICATE_MAX) {
		set_quoted_error(err, "host name", s,
				 "longer than 253 characters");
		return -1;
	}
	for (i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)s[i] : '.';

		if (c == '.') {
			if (!label) {
				set_quoted_error(err, "host name", s,
						 "has an empty label");
				return -1;
			}
			if (s[i - label] == '-' || s[i - 1] == '-') {
				set_quoted_error(
					err, "host name", s,
					"a label starts or ends with '-'");
				return -1;
			}
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-') {
			set_quoted_error(
				err, "host name", s,
				"only A-Z a-z 0-9 - and . are allowed");
			return -1;
		}
		if (++label > 63) {
			set_quoted_error(
				err, "host name", s,
				"a label is longer than 63 characters");
			return -1;
		}
	}
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (buf_addch(out, c)) {
			buf_reset(out);
			buf_setf(err, "host name does not fit in its buffer");
			return -1;
		}
	}
	return 0;
}

/* RFC 3986 pchar minus '%' (checked apart) and minus '$' and '\'': both mean
 * something to the HAProxy config parser. */
static int is_path_char(unsigned char c)
{
	return is_alnum(c) || (c && strchr("-._~!&()*+,;=:@", c));
}

/*
 * Whether the `n` bytes of `seg` are "." or ".." once %2e / %2E are decoded:
 * HAProxy matches the raw path, but a server behind it decodes the escapes
 * and would read a dot segment there.
 */
static int is_dot_segment(const char *seg, size_t n)
{
	size_t i, dots = 0;

	for (i = 0; i < n; i++) {
		if (seg[i] == '.') {
			dots++;
		} else if (seg[i] == '%' && n - i >= 3 && seg[i + 1] == '2' &&
			   (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
			dots++;
			i += 2;
		} else {
			return 0;
		}
	}
	return dots == 1 || dots == 2;
}

static int check_path_predicate(const char *s, struct buf *out, struct buf *err)
{
	const char *p = s, *seg;
	size_t len;

	if (*p == '/')
		p++;
	len = strlen(p);
	if (!len) {
		set_quoted_error(err, "path", s, "must not be empty");
		return -1;
	}
	if (len > PREDICATE_MAX) {
		set_quoted_error(err, "path", s, "longer than 253 characters");
		return -1;
	}
	if (p[len - 1] == '/') {
		set_quoted_error(err, "path", s, "must not end with '/'");
		return -1;
	}
	for (seg = p; *seg;) {
		size_t n = strcspn(seg, "/"), i;

		if (!n) {
			set_quoted_error(err, "path", s,
					 "has an empty segment");
			return -1;
		}
		if (is_dot_segment(seg, n)) {
			set_quoted_error(err, "path", s,
					 memchr(seg, '%', n)
						 ? "has a '.' or '..' segment "
						   "(percent-encoded)"
						 : "has a '.' or '..' segment");
			return -1;
		}
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)seg[i];

			if (c == '%' && is_hex((unsigned char)seg[i + 1]) &&
			    is_hex((unsigned char)seg[i + 2])) {
				i += 2;
				continue;
			}
			if (!is_path_char(c)) {
				set_quoted_error(err, "path", s,
						 "only A-Z a-z 0-9 - . _ ~ ! & "
						 "( ) * + , ; = : @ "
						 "and %XX escapes are allowed "
						 "in segments");
				return -1;
			}
		}
		seg += n;
		if (*seg == '/')
			seg++;
	}
	if (buf_add(out, p, len)) {
		buf_setf(err, "path does not fit in its buffer");
		return -1;
	}
	return 0;
}

int payload_check_predicate(enum config_mode mode, const char *s,
			    struct buf *out, struct buf *err)
{
	buf_reset(out);
	switch (mode) {
	case CONFIG_MODE_HOST:
		return check_host_predicate(s, out, err);
	case CONFIG_MODE_PATH:
		return check_path_predicate(s, out, err);
	}
	BUG("bad config mode %d", (int)mode);
}

int payload_check_cookie(const char *s, struct buf *err)
{
	size_t len = strlen(s), i;

	if (!len) {
		buf_setf(err, "cookie name must not be empty");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* RFC 6265 token, minus what HAProxy's parser treats specially.
		 */
		if (c <= 0x20 || c >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}#$'`", c)) {
			set_quoted_error(
				err, "cookie name", s,
				"must be an RFC 6265 token without # $ ' `");
			return -1;
		}
	}
	if (len > COOKIE_NAME_MAX) {
		set_quoted_error(err, "cookie name", s,
				 "longer than 128 characters");
		return -1;
	}
	return 0;
}

int payload_check_port_string(const char *s, unsigned *port, struct buf *err)
{
	size_t len = strlen(s), i;
	unsigned v = 0;

	if (!len || len > 5) {
		set_quoted_error(err, "port", s, "must be 1 to 5 digits");
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			set_quoted_error(err, "port", s,
					 "must be 1 to 5 digits");
			return -1;
		}
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535) {
		set_quoted_error(err, "port", s, "must be from 1 to 65535");
		return -1;
	}
	*port = v;
	return 0;
}

int payload_check_duration(const char *s, unsigned min_ms, unsigned max_ms,
			   unsigned *ms, struct buf *err)
{
	static const struct {
		const char *name;
		unsigned ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	uint64_t v = 0;
	size_t i, n = 0;

	while (s[n] >= '0' && s[n] <= '9' && n < 10)
		v = v * 10 + (uint64_t)(s[n++] - '0');
	for (i = 0; n && i < ARRAY_SIZE(units); i++)
		if (!strcmp(s + n, units[i].name))
			break;
	if (!n || i == ARRAY_SIZE(units)) {
		set_quoted_error(err, "duration", s,
				 "must be digits and a unit: ms, s, m or h");
		return -1;
	}
	v *= units[i].ms;
	if (v < min_ms || v > max_ms) {
		char lo[DURATION_TEXT_MAX], hi[DURATION_TEXT_MAX];

		duration_text(min_ms, lo);
		duration_text(max_ms, hi);
		buf_reset(err);
		(void)buf_addstr(err, "invalid duration ");
		(void)buf_addquoted(err, s, strlen(s));
		(void)buf_addf(err, ": must be from %s to %s", lo, hi);
		return -1;
	}
	*ms = (unsigned)v;
	return 0;
}

int payload_check_health_path(const char *s, struct buf *err)
{
	size_t len = strlen(s), i;

	if (s[0] != '/') {
		set_quoted_error(err, "health check path", s,
				 "must start with '/'");
		return -1;
	}
	if (len > HEALTH_PATH_MAX) {
		set_quoted_error(err, "health check path", s,
				 "longer than 255 characters");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%' && is_hex((unsigned char)s[i + 1]) &&
		    is_hex((unsigned char)s[i + 2])) {
			i += 2;
			continue;
		}
		/* A path and a query: one token for HAProxy's parser. */
		if (!is_path_char(c) && c != '/' && c != '?') {
			set_quoted_error(err, "health check path", s,
					 "only A-Z a-z 0-9 - . _ ~ ! & ( ) * "
					 "+ , ; = : @ / ? and %XX escapes are "
					 "allowed");
			return -1;
		}
	}
	return 0;
}

int payload_check_number_text(const char *what, const char *s, unsigned min,
			      unsigned max, unsigned *out, struct buf *err)
{
	uint64_t v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9' && n < 10)
		v = v * 10 + (uint64_t)(s[n++] - '0');
	if (!n || s[n] || v < min || v > max) {
		buf_reset(err);
		(void)buf_addf(err, "invalid %s ", what);
		(void)buf_addquoted(err, s, strlen(s));
		(void)buf_addf(err, ": must be an integer from %u to %u", min,
			       max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* Text from jansson may hold raw or cut-off bytes; keep the message ASCII. */
static void add_printable(struct buf *b, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			(void)buf_addf(b, "\\x%02x", c);
		else
			(void)buf_addch(b, (char)c);
	}
}

/* Path helpers: `field` is built only on the way to an error. */
static void path_push_key(struct buf *field, const char *key)
{
	if (field->len)
		(void)buf_addch(field, '.');
	(void)buf_addstr(field, key);
}

static void path_push_index(struct buf *field, size_t i)
{
	(void)buf_addf(field, "[%zu]", i);
}

/*
 * The member `key` of `obj` (borrowed), or NULL when absent. Fails, with
 * `field` pointing at the member, when it is required but absent, or of the
 * wrong type (`type` as json_typeof gives it).
 */
static int get_member(const json_t *obj, const char *key, json_type type,
		      int required, json_t **out, struct buf *err,
		      struct buf *field)
{
	static const char *const type_errors[] = {
		[JSON_OBJECT] = "must be an object",
		[JSON_ARRAY] = "must be an array",
		[JSON_STRING] = "must be a string",
	};
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v) {
		if (!required)
			return 0;
		path_push_key(field, key);
		buf_setf(err, "is required");
		return -1;
	}
	if (json_typeof(v) != type) {
		path_push_key(field, key);
		buf_setf(err, "%s", type_errors[type]);
		return -1;
	}
	*out = v;
	return 0;
}

/* A string member checked by `check` and copied; `*out` owns the copy. */
static int get_name(const json_t *obj, const char *key, char **out,
		    struct buf *err, struct buf *field)
{
	json_t *v;

	if (get_member(obj, key, JSON_STRING, 1, &v, err, field))
		return -1;
	if (payload_check_name(json_string_value(v), err)) {
		path_push_key(field, key);
		return -1;
	}
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int get_ip(const json_t *obj, const char *key, char **out,
		  struct buf *err, struct buf *field)
{
	struct buf canon = BUF_INIT;
	json_t *v;
	int ret = -1;

	if (get_member(obj, key, JSON_STRING, 1, &v, err, field))
		goto out;
	if (payload_check_ip(json_string_value(v), &canon, err)) {
		path_push_key(field, key);
		goto out;
	}
	*out = buf_detach(&canon, NULL);
	ret = 0;
out:
	buf_release(&canon);
	return ret;
}

static int parse_running(struct payload *p, const json_t *arr, struct buf *err,
			 struct buf *field)
{
	size_t i, n = json_array_size(arr);
	size_t base = field->len;

	p->running = n ? xcalloc(n, sizeof(*p->running)) : NULL;
	for (i = 0; i < n; i++) {
		const json_t *item = json_array_get(arr, i);
		struct running *r = &p->running[i];

		/* Counted first so that a release frees what is filled in. */
		p->nr_running++;
		path_push_index(field, i);
		if (!json_is_object(item)) {
			buf_setf(err, "must be an object");
			return -1;
		}
		if (get_name(item, "serviceName", &r->service, err, field) ||
		    get_name(item, "id", &r->id, err, field) ||
		    get_ip(item, "ip", &r->ip, err, field))
			return -1;
		buf_setlen(field, base);
	}
	return 0;
}

static int parse_port(const json_t *obj, unsigned *port, struct buf *err,
		      struct buf *field)
{
	json_t *v = json_object_get(obj, "port");

	if (!v) {
		buf_setf(err, "is required");
		goto fail;
	}
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);

		if (n < 1 || n > 65535) {
			buf_setf(err,
				 "invalid port %" JSON_INTEGER_FORMAT
				 ": must be from 1 to 65535",
				 n);
			goto fail;
		}
		*port = (unsigned)n;
		return 0;
	}
	if (json_is_string(v)) {
		if (payload_check_port_string(json_string_value(v), port, err))
			goto fail;
		return 0;
	}
	buf_setf(err, PORT_TYPE_ERROR);
fail:
	path_push_key(field, "port");
	return -1;
}

/* An optional integer member from `min` to `max`; `*out` is left alone
 * when it is absent. */
static int get_uint(const json_t *obj, const char *key, unsigned min,
		    unsigned max, unsigned *out, struct buf *err,
		    struct buf *field)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
	    json_integer_value(v) > (json_int_t)max) {
		if (json_is_integer(v))
			buf_setf(err,
				 "invalid %s %" JSON_INTEGER_FORMAT
				 ": must be from %u to %u",
				 key, json_integer_value(v), min, max);
		else
			buf_setf(err, "must be an integer from %u to %u", min,
				 max);
		path_push_key(field, key);
		return -1;
	}
	*out = (unsigned)json_integer_value(v);
	return 0;
}

/* An optional duration member (a string in HAProxy's syntax). */
static int get_duration(const json_t *obj, const char *key, unsigned min_ms,
			unsigned max_ms, unsigned *out, struct buf *err,
			struct buf *field)
{
	json_t *v;

	if (get_member(obj, key, JSON_STRING, 0, &v, err, field))
		return -1;
	if (v && payload_check_duration(json_string_value(v), min_ms, max_ms,
					out, err)) {
		path_push_key(field, key);
		return -1;
	}
	return 0;
}

/* An optional enumerated string member, parsed by `parse`. */
static int get_enum(const json_t *obj, const char *key,
		    int (*parse)(const char *, int *), const char *choices,
		    int *out, struct buf *err, struct buf *field)
{
	json_t *v;

	if (get_member(obj, key, JSON_STRING, 0, &v, err, field))
		return -1;
	if (v && parse(json_string_value(v), out)) {
		set_quoted_error(err, key, json_string_value(v), choices);
		path_push_key(field, key);
		return -1;
	}
	return 0;
}

static int enum_balance(const char *s, int *out)
{
	enum balance b;

	if (balance_parse(s, &b))
		return -1;
	*out = (int)b;
	return 0;
}

static int enum_cookie_mode(const char *s, int *out)
{
	enum cookie_mode m;

	if (cookie_mode_parse(s, &m))
		return -1;
	*out = (int)m;
	return 0;
}

/* Fails naming the first member of `obj` not in `keys` (NULL-terminated). */
static int check_keys(const json_t *obj, const char *const *keys,
		      struct buf *err, struct buf *field)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)obj, key, v)
	{
		for (i = 0; keys[i] && strcmp(keys[i], key); i++)
			;
		if (!keys[i]) {
			/* The key is the client's: escape what is not
			 * printable, as the path must stay one clean line. */
			buf_setf(err, "unknown key");
			if (field->len)
				(void)buf_addch(field, '.');
			add_printable(field, key, strlen(key));
			return -1;
		}
	}
	return 0;
}

static int parse_health_check(struct service_options *o, const json_t *obj,
			      struct buf *err, struct buf *field)
{
	static const char *const keys[] = {
		"path", "expectStatus", "interval", "rise", "fall", NULL,
	};
	json_t *v;

	if (check_keys(obj, keys, err, field) ||
	    get_member(obj, "path", JSON_STRING, 1, &v, err, field))
		return -1;
	if (payload_check_health_path(json_string_value(v), err)) {
		path_push_key(field, "path");
		return -1;
	}
	if (get_uint(obj, "expectStatus", 100, 599, &o->check_status, err,
		     field) ||
	    get_duration(obj, "interval", CHECK_INTER_MIN, CHECK_INTER_MAX,
			 &o->check_inter, err, field) ||
	    get_uint(obj, "rise", 1, CHECK_COUNT_MAX, &o->check_rise, err,
		     field) ||
	    get_uint(obj, "fall", 1, CHECK_COUNT_MAX, &o->check_fall, err,
		     field))
		return -1;
	o->check_path = xstrdup(json_string_value(v));
	return 0;
}

/*
 * The backend options of a candidate (or of a stored options document) from
 * the members of `obj`; absent ones keep their defaults. `o` is released by
 * the caller either way.
 */
static int parse_options(struct service_options *o, const json_t *obj,
			 struct buf *err, struct buf *field)
{
	int balance = BALANCE_ROUNDROBIN, mode = COOKIE_MODE_PREFIX;
	json_t *v;

	if (get_enum(obj, "balance", enum_balance,
		     "must be \"roundrobin\", \"leastconn\", \"first\" or "
		     "\"source\"",
		     &balance, err, field) ||
	    get_enum(obj, "cookieMode", enum_cookie_mode,
		     "must be \"prefix\" or \"insert\"", &mode, err, field))
		return -1;
	o->balance = (enum balance)balance;
	o->cookie_mode = (enum cookie_mode)mode;
	if (get_member(obj, "healthCheck", JSON_OBJECT, 0, &v, err, field))
		return -1;
	if (v) {
		size_t base = field->len;

		path_push_key(field, "healthCheck");
		if (parse_health_check(o, v, err, field))
			return -1;
		buf_setlen(field, base);
	}
	if (get_uint(obj, "maxconn", 1, SERVER_MAXCONN_MAX, &o->maxconn, err,
		     field) ||
	    get_duration(obj, "timeoutServer", TIMEOUT_MIN, TIMEOUT_MAX,
			 &o->timeout_server, err, field) ||
	    get_duration(obj, "timeoutTunnel", TIMEOUT_MIN, TIMEOUT_MAX,
			 &o->timeout_tunnel, err, field))
		return -1;
	return 0;
}

/* cookieMode "insert" and "dynamic" name the cookie HAProxy sets: they need
 * one. */
static int check_cookie_mode(const struct service *svc, struct buf *err)
{
	if (svc->opts.cookie_mode != COOKIE_MODE_PREFIX && !svc->cookie) {
		buf_setf(err, "cookieMode \"%s\" needs a cookie name",
			 cookie_mode_name(svc->opts.cookie_mode));
		return -1;
	}
	return 0;
}

static int parse_containers(struct service *svc, const json_t *arr,
			    struct buf *err, struct buf *field)
{
	size_t i, n = json_array_size(arr);
	size_t base = field->len;
	int ret = -1;

	for (i = 0; i < n; i++) {
		const json_t *item = json_array_get(arr, i);
		char *id = NULL, *ip = NULL;
		unsigned weight = 0;

		path_push_index(field, i);
		if (!json_is_object(item)) {
			buf_setf(err, "must be an object");
			goto out;
		}
		if (get_name(item, "id", &id, err, field) ||
		    get_ip(item, "ip", &ip, err, field) ||
		    get_uint(item, "weight", 0, WEIGHT_MAX, &weight, err,
			     field)) {
			free(id);
			free(ip);
			goto out;
		}
		/* A repeated id: the later entry's address and weight win. */
		service_put_container(svc, id, ip)->weight =
			json_object_get(item, "weight") ? (int)weight
							: WEIGHT_UNSET;
		free(id);
		free(ip);
		buf_setlen(field, base);
	}
	ret = 0;
out:
	return ret;
}

static int parse_candidate(struct service *svc, const json_t *obj,
			   struct buf *err, struct buf *field)
{
	struct buf canon = BUF_INIT;
	json_t *v;
	int ret = -1;

	if (!json_is_object(obj)) {
		buf_setf(err, "must be an object");
		goto out;
	}
	if (get_name(obj, "serviceName", &svc->name, err, field) ||
	    parse_port(obj, &svc->port, err, field))
		goto out;

	/* JSON null is not "absent" here: it is a wrong type. */
	if (get_member(obj, "configMode", JSON_STRING, 0, &v, err, field))
		goto out;
	svc->mode = CONFIG_MODE_HOST;
	if (v && config_mode_parse(json_string_value(v), &svc->mode)) {
		set_quoted_error(err, "configMode", json_string_value(v),
				 "must be \"host\" or \"path\"");
		path_push_key(field, "configMode");
		goto out;
	}

	if (get_member(obj, "predicate", JSON_STRING, 1, &v, err, field))
		goto out;
	if (payload_check_predicate(svc->mode, json_string_value(v), &canon,
				    err)) {
		path_push_key(field, "predicate");
		goto out;
	}
	svc->predicate = buf_detach(&canon, NULL);

	/* Here null means no cookie, as absence does. */
	v = json_object_get(obj, "cookie");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			buf_setf(err, "must be a string or null");
			path_push_key(field, "cookie");
			goto out;
		}
		if (payload_check_cookie(json_string_value(v), err)) {
			path_push_key(field, "cookie");
			goto out;
		}
		svc->cookie = xstrdup(json_string_value(v));
	}
	if (parse_options(&svc->opts, obj, err, field))
		goto out;
	if (check_cookie_mode(svc, err)) {
		path_push_key(field, "cookieMode");
		goto out;
	}

	if (get_member(obj, "containers", JSON_ARRAY, 0, &v, err, field))
		goto out;
	if (v) {
		path_push_key(field, "containers");
		if (parse_containers(svc, v, err, field))
			goto out;
	}
	ret = 0;
out:
	buf_release(&canon);
	return ret;
}

/*
 * jansson recurses per nesting level, so refuse deep documents before it
 * sees them: count brackets outside strings. Returns the offset of the
 * first bracket too deep, or `len` when the depth is fine.
 */
static size_t payload_scan_depth(const char *json, size_t len)
{
	size_t i, depth = 0;
	int in_string = 0;

	for (i = 0; i < len; i++) {
		char c = json[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_string = 1;
			break;
		case '[':
		case '{':
			if (++depth > PAYLOAD_MAX_DEPTH)
				return i;
			break;
		case ']':
		case '}':
			if (depth)
				depth--;
			break;
		}
	}
	return len;
}

static void set_json_error(struct buf *err, const json_error_t *jerr)
{
	static const char dup_prefix[] = "duplicate object key near '";
	const char *text = jerr->text;
	size_t len = strlen(text);

	buf_setf(err, "invalid JSON: ");
	if (json_error_code(jerr) == json_error_duplicate_key &&
	    !strncmp(text, dup_prefix, strlen(dup_prefix)) && len >= 2 &&
	    text[len - 1] == '\'') {
		/* jansson quotes the raw key token: '"name"'. */
		const char *key = text + strlen(dup_prefix);
		size_t key_len = (size_t)(text + len - 1 - key);

		if (key_len >= 2 && key[0] == '"' && key[key_len - 1] == '"') {
			key++;
			key_len -= 2;
		}
		(void)buf_addstr(err, "duplicate key \"");
		add_printable(err, key, key_len);
		(void)buf_addch(err, '"');
	} else {
		add_printable(err, text, len);
	}
	if (jerr->line > 0)
		(void)buf_addf(err, " at line %d column %d", jerr->line,
			       jerr->column);
}

/*
 * The fast path: a small parser for exactly the payload's shape, without a
 * JSON tree. It accepts only documents it is sure about (no escapes, no
 * unknown or repeated keys, nothing but ASCII in strings, ports as plain
 * integers) whose every value passes the same checks; for anything else it
 * gives up and the full path below (jansson) decides, so errors and edge
 * cases keep one implementation.
 */
struct fast {
	const char *s, *end;
	struct buf canon; /* scratch for canonical forms */
	struct buf scratch;
	const char
		*doc; /* its start: p->in_place, when set, is the same bytes */
	/* a candidate's containers, before they go into its service */
	struct fast_pending {
		char *id, *ip;
	} * pending;
	size_t nr_pending, alloc_pending;
};

static void fast_release(struct fast *f)
{
	buf_release(&f->canon);
	buf_release(&f->scratch);
	free(f->pending);
}

struct fast_str {
	const char *s;
	size_t len;
};

static void fast_ws(struct fast *f)
{
	while (f->s < f->end && (*f->s == ' ' || *f->s == '\n' ||
				 *f->s == '\r' || *f->s == '\t'))
		f->s++;
}

/* Skip white space and take `c`. */
static int fast_take(struct fast *f, char c)
{
	fast_ws(f);
	if (f->s >= f->end || *f->s != c)
		return -1;
	f->s++;
	return 0;
}

/* Peek at the next significant byte (0 at the end). */
static char fast_peek(struct fast *f)
{
	fast_ws(f);
	return f->s < f->end ? *f->s : 0;
}

/* A string token (see the note on escapes inside). */
static int fast_string(struct fast *f, struct fast_str *out)
{
	const char *p;

	if (fast_take(f, '"'))
		return -1;
	/* Up to the next quote, escaped or not: every value is then checked
	 * by a rule that refuses '\\', control and non-ASCII bytes, and every
	 * key must equal a known name, so a string with an escape can only
	 * end in the full path. */
	for (p = f->s; p < f->end && *p != '"'; p++)
		/* A raw control byte is not JSON, and a NUL would cut the C
		 * string the checks see: leave both to the full path. */
		if ((unsigned char)*p < 0x20)
			return -1;
	if (p >= f->end)
		return -1;
	out->s = f->s;
	out->len = (size_t)(p - f->s);
	f->s = p + 1;
	return 0;
}

#define fast_is(t, lit)                                                        \
	((t)->len == sizeof(lit) - 1 && !memcmp((t)->s, lit, sizeof(lit) - 1))

/* `t` as a C string in f->scratch (valid until the next call). */
static const char *fast_cstr(struct fast *f, const struct fast_str *t)
{
	buf_reset(&f->scratch);
	if (buf_add(&f->scratch, t->s, t->len))
		return NULL;
	return f->scratch.buf;
}

/* Service names and container ids, as payload_check_name() accepts them. */
static int fast_name(const struct fast_str *t)
{
	size_t i;

	if (!t->len || t->len > SERVICE_NAME_MAX)
		return -1;
	for (i = 0; i < t->len; i++)
		if (!name_chars[(unsigned char)t->s[i]])
			return -1;
	return 0;
}

/* An IPv4 address already in the form inet_ntop() gives (four decimal
 * parts of 0-255 without leading zeros) is its own canonical form; its
 * bytes go to `a`. */
static int fast_is_canonical_ipv4(const struct fast_str *t, unsigned char *a)
{
	size_t i = 0, part;

	for (part = 0; part < 4; part++) {
		size_t start;
		unsigned v = 0;

		if (part && (i >= t->len || t->s[i++] != '.'))
			return 0;
		start = i;
		while (i < t->len && t->s[i] >= '0' && t->s[i] <= '9' &&
		       i - start < 3)
			v = v * 10 + (unsigned)(t->s[i++] - '0');
		if (i == start || v > 255 ||
		    (t->s[start] == '0' && i - start > 1))
			return 0;
		a[part] = (unsigned char)v;
	}
	return i == t->len;
}

/* Replace `t` by its canonical address (in f->canon when it differs). */
static int fast_ip(struct fast *f, struct fast_str *t)
{
	struct buf err = BUF_INIT;
	unsigned char a[4];
	const char *s;
	int ret = -1;

	/* A refused address is left to the full path, which says why. */
	if (fast_is_canonical_ipv4(t, a))
		return ip_refusal(AF_INET, a) ? -1 : 0;
	s = fast_cstr(f, t);
	if (s && !payload_check_ip(s, &f->canon, &err)) {
		t->s = f->canon.buf;
		t->len = f->canon.len;
		ret = 0;
	}
	buf_release(&err);
	return ret;
}

/* Object members: '{' then for each member its key, or the end. */
static int fast_member(struct fast *f, int first, struct fast_str *key)
{
	char c = fast_peek(f);

	if (c == '}') {
		f->s++;
		return 1;
	}
	if (!first) {
		if (c != ',')
			return -1;
		f->s++;
	}
	if (fast_string(f, key) || fast_take(f, ':'))
		return -1;
	return 0;
}

/* Array items: 0 before each item, 1 at the end, -1 on anything else. */
static int fast_item(struct fast *f, int first)
{
	char c = fast_peek(f);

	if (c == ']') {
		f->s++;
		return 1;
	}
	if (!first) {
		if (c != ',')
			return -1;
		f->s++;
	}
	return 0;
}

/* {"id": ..., "ip": ...} (and "serviceName" with `service`), the strings
 * copied into p->blocks. */
static int fast_container(struct fast *f, struct payload *p, char **service,
			  char **id, char **ip)
{
	struct fast_str key, val;
	int r, first = 1;

	if (fast_take(f, '{'))
		return -1;
	while (!(r = fast_member(f, first, &key))) {
		char **slot;

		first = 0;
		if (service && fast_is(&key, "serviceName"))
			slot = service;
		else if (fast_is(&key, "id"))
			slot = id;
		else if (fast_is(&key, "ip"))
			slot = ip;
		else
			return -1;
		if (*slot || fast_string(f, &val))
			return -1;
		if (slot == ip ? fast_ip(f, &val) : fast_name(&val))
			return -1;
		/* A running entry's string, as the document has it, ends in
		 * place (payload_release() puts the quote back); a canonical
		 * form, or a candidate's container (copied into its service),
		 * goes to the blocks. */
		if (service && p->in_place && val.s != f->canon.buf) {
			*slot = p->in_place + (val.s - f->doc);
			(*slot)[val.len] = '\0';
		} else {
			*slot = payload_strndup(p, val.s, val.len);
		}
	}
	if (r < 0 || !*id || !*ip || (service && !*service))
		return -1;
	return 0;
}

static int fast_running(struct fast *f, struct payload *p)
{
	size_t alloc = 0;
	int r, first = 1;

	if (fast_take(f, '['))
		return -1;
	while (!(r = fast_item(f, first))) {
		struct running *run;

		first = 0;
		ALLOC_GROW(p->running, p->nr_running + 1, alloc);
		run = &p->running[p->nr_running++];
		memset(run, 0, sizeof(*run));
		if (fast_container(f, p, &run->service, &run->id, &run->ip))
			return -1;
	}
	return r < 0 ? -1 : 0;
}

/*
 * A candidate's containers into `svc` (NULL: only checked), gathered first
 * so that its array is allocated once at its size: grown one by one it
 * would hold 8 slots for 5, in the cached table too, which takes the arrays
 * over.
 */
static int fast_containers(struct fast *f, struct payload *p,
			   struct service *svc)
{
	struct payload_block *b = p->blocks;
	size_t used = b->used, i;
	int r, first = 1;

	f->nr_pending = 0;
	if (fast_take(f, '['))
		return -1;
	while (!(r = fast_item(f, first))) {
		first = 0;
		ALLOC_GROW(f->pending, f->nr_pending + 1, f->alloc_pending);
		f->pending[f->nr_pending].id = f->pending[f->nr_pending].ip =
			NULL;
		if (fast_container(f, p, NULL, &f->pending[f->nr_pending].id,
				   &f->pending[f->nr_pending].ip))
			return -1;
		f->nr_pending++;
	}
	if (r < 0)
		return -1;
	if (svc && f->nr_pending > svc->alloc_containers - svc->nr_containers) {
		svc->alloc_containers = svc->nr_containers + f->nr_pending;
		svc->containers = xrealloc(svc->containers,
					   svc->alloc_containers *
						   sizeof(*svc->containers));
	}
	for (i = 0; svc && i < f->nr_pending; i++)
		service_put_container(svc, f->pending[i].id, f->pending[i].ip);
	/* The service holds copies (or, only checked, none): the block takes
	 * these back (unless they began a new one). */
	if (p->blocks == b)
		b->used = used;
	return 0;
}

/* A port given as a plain integer of 1 to 65535. */
static int fast_port_number(struct fast *f, unsigned *port)
{
	unsigned v = 0;
	size_t n = 0;

	fast_ws(f);
	if (f->s >= f->end || *f->s < '1' || *f->s > '9')
		return -1;
	while (f->s < f->end && *f->s >= '0' && *f->s <= '9' && n < 6) {
		v = v * 10 + (unsigned)(*f->s++ - '0');
		n++;
	}
	/* A fraction or exponent makes it a real: the full path says so. */
	if (n > 5 || v > 65535 ||
	    (f->s < f->end && (*f->s == '.' || *f->s == 'e' || *f->s == 'E' ||
			       (*f->s >= '0' && *f->s <= '9'))))
		return -1;
	*port = v;
	return 0;
}

enum fast_key {
	FK_NAME = 1u << 0,
	FK_PORT = 1u << 1,
	FK_MODE = 1u << 2,
	FK_PREDICATE = 1u << 3,
	FK_COOKIE = 1u << 4,
	FK_CONTAINERS = 1u << 5,
};

/* A candidate into `svc`, or with `svc` NULL only checked (its name, as the
 * document has it, into *name: the lazy parse keeps no more). */
static int fast_candidate(struct fast *f, struct payload *p,
			  struct service *svc, struct fast_str *name)
{
	struct buf err = BUF_INIT;
	struct fast_str key, val, predicate = {NULL, 0};
	struct service check;
	const char *s;
	unsigned seen = 0, bit;
	int r, first = 1, ret = -1;

	if (!svc) {
		memset(&check, 0, sizeof(check));
		svc = &check;
	} else {
		name = NULL;
	}
	svc->mode = CONFIG_MODE_HOST;
	if (fast_take(f, '{'))
		goto out;
	while (!(r = fast_member(f, first, &key))) {
		first = 0;
		if (fast_is(&key, "serviceName"))
			bit = FK_NAME;
		else if (fast_is(&key, "port"))
			bit = FK_PORT;
		else if (fast_is(&key, "configMode"))
			bit = FK_MODE;
		else if (fast_is(&key, "predicate"))
			bit = FK_PREDICATE;
		else if (fast_is(&key, "cookie"))
			bit = FK_COOKIE;
		else if (fast_is(&key, "containers"))
			bit = FK_CONTAINERS;
		else
			goto out;
		if (seen & bit)
			goto out;
		seen |= bit;
		switch (bit) {
		case FK_NAME:
			if (fast_string(f, &val) || fast_name(&val))
				goto out;
			if (name)
				*name = val;
			else
				svc->name = xstrndup(val.s, val.len);
			break;
		case FK_PORT:
			if (fast_peek(f) == '"') {
				if (fast_string(f, &val) ||
				    !(s = fast_cstr(f, &val)) ||
				    payload_check_port_string(s, &svc->port,
							      &err))
					goto out;
			} else if (fast_port_number(f, &svc->port)) {
				goto out;
			}
			break;
		case FK_MODE:
			if (fast_string(f, &val) || !(s = fast_cstr(f, &val)) ||
			    config_mode_parse(s, &svc->mode))
				goto out;
			break;
		case FK_PREDICATE:
			/* Checked once the mode is known, as members come in
			 * any order. */
			if (fast_string(f, &predicate))
				goto out;
			break;
		case FK_COOKIE:
			if (fast_peek(f) == 'n') {
				if (f->end - f->s < 4 ||
				    memcmp(f->s, "null", 4))
					goto out;
				f->s += 4;
				break;
			}
			if (fast_string(f, &val) || !(s = fast_cstr(f, &val)) ||
			    payload_check_cookie(s, &err))
				goto out;
			if (!name)
				svc->cookie = xstrndup(val.s, val.len);
			break;
		case FK_CONTAINERS:
			if (fast_containers(f, p, name ? NULL : svc))
				goto out;
			break;
		}
	}
	if (r < 0 || !(seen & FK_NAME) || !(seen & FK_PORT) ||
	    !(seen & FK_PREDICATE))
		goto out;
	if (!(s = fast_cstr(f, &predicate)) ||
	    payload_check_predicate(svc->mode, s, &f->canon, &err))
		goto out;
	if (!name)
		svc->predicate = xstrndup(f->canon.buf, f->canon.len);
	ret = 0;
out:
	buf_release(&err);
	return ret;
}

/* Parsed in place, each candidate is only checked, and its name and offset
 * kept (see payload_candidate()). */
static int fast_candidates(struct fast *f, struct payload *p)
{
	size_t alloc = 0;
	int r, first = 1;

	if (fast_take(f, '['))
		return -1;
	while (!(r = fast_item(f, first))) {
		struct fast_str name;
		size_t at;

		first = 0;
		if (!p->in_place) {
			if (fast_candidate(f, p,
					   service_list_append(&p->candidates),
					   NULL))
				return -1;
			continue;
		}
		fast_ws(f);
		at = (size_t)(f->s - f->doc);
		if (fast_candidate(f, p, NULL, &name))
			return -1;
		ALLOC_GROW(p->lazy, p->nr_lazy + 1, alloc);
		p->lazy[p->nr_lazy].name = payload_strndup(p, name.s, name.len);
		p->lazy[p->nr_lazy++].at = at;
	}
	return r < 0 ? -1 : 0;
}

size_t payload_nr_candidates(const struct payload *p)
{
	return p->in_place ? p->nr_lazy : p->candidates.nr;
}

const char *payload_candidate_name(const struct payload *p, size_t i)
{
	return p->in_place ? p->lazy[i].name : p->candidates.items[i].name;
}

/* A parser at candidate `i` of a payload parsed in place. */
static void fast_start_at(struct fast *f, const struct payload *p, size_t i)
{
	*f = (struct fast){p->in_place + p->lazy[i].at,
			   p->in_place + p->in_place_len,
			   BUF_INIT,
			   BUF_INIT,
			   p->in_place,
			   NULL,
			   0,
			   0};
}

struct service *payload_candidate(struct payload *p, size_t i,
				  struct service *scratch)
{
	struct fast f;

	if (!p->in_place)
		return &p->candidates.items[i];
	service_release(scratch);
	fast_start_at(&f, p, i);
	/* The same bytes, checked by the same code when the payload was
	 * parsed: only a body changed under the payload gets here. */
	if (fast_candidate(&f, p, scratch, NULL))
		BUG("candidate %zu of a parsed payload no longer parses", i);
	fast_release(&f);
	return scratch;
}

static int fast_str_is(const struct fast_str *t, const char *s)
{
	return !strncmp(t->s, s, t->len) && !s[t->len];
}

/* The next string value is `s`, byte for byte. */
static int fast_string_is(struct fast *f, const char *s)
{
	struct fast_str val;

	return !fast_string(f, &val) && fast_str_is(&val, s);
}

/* The containers, in the document's order, are `svc`'s (sorted, unique),
 * each {"id", "ip"} as it is stored and without a weight. */
static int fast_containers_are(struct fast *f, const struct service *svc)
{
	struct fast_str key;
	size_t k = 0;
	int r, first = 1;

	if (fast_take(f, '['))
		return 0;
	while (!(r = fast_item(f, first))) {
		const struct container *c = &svc->containers[k];
		int m, first_member = 1;
		unsigned seen = 0;

		first = 0;
		if (k >= svc->nr_containers || c->weight != WEIGHT_UNSET ||
		    fast_take(f, '{'))
			return 0;
		while (!(m = fast_member(f, first_member, &key))) {
			first_member = 0;
			if (fast_is(&key, "id") && fast_string_is(f, c->id))
				seen |= 1;
			else if (fast_is(&key, "ip") &&
				 fast_string_is(f, c->ip))
				seen |= 2;
			else
				return 0;
		}
		if (m < 0 || seen != 3)
			return 0;
		k++;
	}
	return r > 0 && k == svc->nr_containers;
}

/*
 * Without parsing the candidate into anything: its bytes were checked when
 * the payload was parsed, and the stored forms are canonical (their own
 * canonical form, which fuzz_payload checks), so a value that reads as the
 * stored one byte for byte parses to it. Any other spelling (a port as a
 * string, an address in another form, containers out of order) answers 0,
 * and the merge builds the candidate instead.
 */
int payload_candidate_is(struct payload *p, size_t i, const struct service *svc)
{
	struct fast f;
	struct fast_str key;
	unsigned port = 0, seen = 0;
	int r = 0, first = 1, ok = 1;

	if (!p->in_place || !service_options_default(&svc->opts))
		return 0;
	/* Only reads: nothing to release. */
	fast_start_at(&f, p, i);
	if (fast_take(&f, '{'))
		return 0;
	while (ok && !(r = fast_member(&f, first, &key))) {
		first = 0;
		if (fast_is(&key, "serviceName")) {
			ok = fast_string_is(&f, svc->name);
		} else if (fast_is(&key, "port")) {
			ok = !fast_port_number(&f, &port) && port == svc->port;
		} else if (fast_is(&key, "configMode")) {
			ok = fast_string_is(&f, config_mode_name(svc->mode));
			seen |= FK_MODE;
		} else if (fast_is(&key, "predicate")) {
			ok = fast_string_is(&f, svc->predicate);
		} else if (fast_is(&key, "cookie")) {
			if (fast_peek(&f) == 'n') {
				ok = !svc->cookie;
				f.s += 4; /* null, as checked */
			} else {
				ok = svc->cookie &&
				     fast_string_is(&f, svc->cookie);
			}
			seen |= FK_COOKIE;
		} else if (fast_is(&key, "containers")) {
			ok = fast_containers_are(&f, svc);
			seen |= FK_CONTAINERS;
		} else {
			ok = 0;
		}
	}
	/* What the document leaves out has its default. */
	return ok && r > 0 &&
	       ((seen & FK_MODE) || svc->mode == CONFIG_MODE_HOST) &&
	       ((seen & FK_COOKIE) || !svc->cookie) &&
	       ((seen & FK_CONTAINERS) || !svc->nr_containers);
}

/* 0 with `p` filled, or -1 (with `p` released) to leave it to the full path.
 * With `table_optional`, a document without "table" is complete. */
static int payload_parse_fast(struct payload *p, const char *json, size_t len,
			      int table_optional, char *writable)
{
	struct fast f = {json, json + len, BUF_INIT, BUF_INIT,
			 json, NULL,	   0,	     0};
	struct fast_str key, val;
	unsigned seen = 0;
	int r, first = 1, ret = -1;

	p->in_place = writable;
	p->in_place_len = writable ? len : 0;
	payload_blocks_start(p, len);
	if (fast_take(&f, '{'))
		goto out;
	while (!(r = fast_member(&f, first, &key))) {
		unsigned bit;

		first = 0;
		bit = fast_is(&key, "table")	    ? 1
		      : fast_is(&key, "running")    ? 2
		      : fast_is(&key, "candidates") ? 4
						    : 0;
		if (!bit || (seen & bit))
			goto out;
		seen |= bit;
		if (bit == 1) {
			if (fast_string(&f, &val) || val.len < TABLE_NAME_MIN ||
			    val.len > TABLE_NAME_MAX)
				goto out;
			p->table = xstrndup(val.s, val.len);
			if (payload_check_table(p->table, &f.scratch))
				goto out;
		} else if (bit == 2) {
			if (fast_running(&f, p))
				goto out;
		} else if (fast_candidates(&f, p)) {
			goto out;
		}
	}
	fast_ws(&f);
	if (!table_optional && !(seen & 1))
		goto out;
	if (r < 0 || !(seen & 2) || f.s != f.end)
		goto out;
	ret = 0;
out:
	fast_release(&f);
	if (ret)
		payload_release(p);
	return ret;
}

static enum status payload_parse_doc(struct payload *p, const char *json,
				     size_t len, int table_optional,
				     struct buf *err, struct buf *field);

/* What payload_parse_table() adds to a parse that gave `st`. */
static enum status payload_match_table(struct payload *p, const char *table,
				       enum status st, struct buf *err,
				       struct buf *field)
{
	if (st != ST_OK)
		return st;
	if (!p->table) {
		p->table = xstrdup(table);
	} else if (strcmp(p->table, table)) {
		buf_setf(err, "must equal the table in the path, ");
		(void)buf_addquoted(err, table, strlen(table));
		buf_setf(field, "table");
		payload_release(p);
		return ST_INVALID;
	}
	return ST_OK;
}

/* The fast path, else the full one (on `json`, as a failed fast parse
 * leaves it); with `table`, as payload_parse_table(). */
static enum status payload_parse_any(struct payload *p, const char *table,
				     const char *json, char *writable,
				     size_t len, struct buf *err,
				     struct buf *field)
{
	enum status st;

	payload_init(p);
	if (json &&
	    !payload_parse_fast(p, json, len, table != NULL, writable)) {
		buf_reset(err);
		buf_reset(field);
		st = ST_OK;
	} else {
		st = payload_parse_doc(p, json, len, table != NULL, err, field);
	}
	return table ? payload_match_table(p, table, st, err, field) : st;
}

enum status payload_parse(struct payload *p, const char *json, size_t len,
			  struct buf *err, struct buf *field)
{
	return payload_parse_any(p, NULL, json, NULL, len, err, field);
}

enum status payload_parse_table(struct payload *p, const char *table,
				const char *json, size_t len, struct buf *err,
				struct buf *field)
{
	return payload_parse_any(p, table, json, NULL, len, err, field);
}

enum status payload_parse_table_in_place(struct payload *p, const char *table,
					 char *json, size_t len,
					 struct buf *err, struct buf *field)
{
	return payload_parse_any(p, table, json, json, len, err, field);
}

enum status payload_parse_table_full(struct payload *p, const char *table,
				     const char *json, size_t len,
				     struct buf *err, struct buf *field)
{
	enum status st;

	if (!table)
		return payload_parse_full(p, json, len, err, field);
	st = payload_parse_doc(p, json, len, 1, err, field);
	return payload_match_table(p, table, st, err, field);
}

/* `p` is overwritten: pass it initialised or released, never holding data. */
enum status payload_parse_full(struct payload *p, const char *json, size_t len,
			       struct buf *err, struct buf *field)
{
	return payload_parse_doc(p, json, len, 0, err, field);
}

static enum status payload_parse_doc(struct payload *p, const char *json,
				     size_t len, int table_optional,
				     struct buf *err, struct buf *field)
{
	enum status st = ST_INVALID;
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *nul;
	size_t deep, i, line = 1, col = 1;

	payload_init(p);
	buf_reset(err);
	buf_reset(field);
	if (!json)
		json = "";

	deep = payload_scan_depth(json, len);
	/* jansson skips a raw NUL after a number or literal ("80\0,"): refuse
	 * every raw NUL here, as JSON does. */
	nul = memchr(json, '\0', len);
	if (nul && (size_t)(nul - json) < deep)
		deep = (size_t)(nul - json);
	else
		nul = NULL;
	if (deep < len) {
		for (i = 0; i < deep; i++) {
			if (json[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		if (nul)
			buf_setf(
				err,
				"invalid JSON: NUL byte at line %zu column %zu",
				line, col);
		else
			buf_setf(err,
				 "invalid JSON: nested deeper than %d levels "
				 "at line "
				 "%zu column %zu",
				 PAYLOAD_MAX_DEPTH, line, col);
		goto out;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root) {
		set_json_error(err, &jerr);
		goto out;
	}
	if (!json_is_object(root)) {
		buf_setf(err, "must be a JSON object");
		goto out;
	}

	if (get_member(root, "table", JSON_STRING, !table_optional, &v, err,
		       field))
		goto out;
	if (v && payload_check_table(json_string_value(v), err)) {
		path_push_key(field, "table");
		goto out;
	}
	if (v)
		p->table = xstrdup(json_string_value(v));

	if (get_member(root, "running", JSON_ARRAY, 1, &v, err, field))
		goto out;
	path_push_key(field, "running");
	if (parse_running(p, v, err, field))
		goto out;
	buf_reset(field);

	if (get_member(root, "candidates", JSON_ARRAY, 0, &v, err, field))
		goto out;
	for (i = 0; v && i < json_array_size(v); i++) {
		struct service *svc = service_list_append(&p->candidates);

		buf_reset(field);
		path_push_key(field, "candidates");
		path_push_index(field, i);
		if (parse_candidate(svc, json_array_get(v, i), err, field))
			goto out;
	}
	buf_reset(field);
	st = ST_OK;
out:
	json_decref(root);
	if (st != ST_OK)
		payload_release(p);
	return st;
}

/* ",\"key\":value" for each option not at its default, keys sorted. */
static int add_options_json(struct buf *out, const struct service_options *o)
{
	char text[DURATION_TEXT_MAX];
	int ret = 0;

	if (o->balance != BALANCE_ROUNDROBIN)
		ret |= buf_addf(out, ",\"balance\":\"%s\"",
				balance_name(o->balance));
	if (o->cookie_mode != COOKIE_MODE_PREFIX)
		ret |= buf_addf(out, ",\"cookieMode\":\"%s\"",
				cookie_mode_name(o->cookie_mode));
	if (o->check_path) {
		ret |= buf_addstr(out, ",\"healthCheck\":{");
		if (o->check_status)
			ret |= buf_addf(out, "\"expectStatus\":%u,",
					o->check_status);
		if (o->check_fall)
			ret |= buf_addf(out, "\"fall\":%u,", o->check_fall);
		if (o->check_inter) {
			duration_text(o->check_inter, text);
			ret |= buf_addf(out, "\"interval\":\"%s\",", text);
		}
		ret |= buf_addstr(out, "\"path\":");
		ret |= buf_addjson(out, o->check_path, strlen(o->check_path));
		if (o->check_rise)
			ret |= buf_addf(out, ",\"rise\":%u", o->check_rise);
		ret |= buf_addch(out, '}');
	}
	if (o->maxconn)
		ret |= buf_addf(out, ",\"maxconn\":%u", o->maxconn);
	if (o->timeout_server) {
		duration_text(o->timeout_server, text);
		ret |= buf_addf(out, ",\"timeoutServer\":\"%s\"", text);
	}
	if (o->timeout_tunnel) {
		duration_text(o->timeout_tunnel, text);
		ret |= buf_addf(out, ",\"timeoutTunnel\":\"%s\"", text);
	}
	return ret;
}

int payload_options_json(const struct service *svc, struct buf *out)
{
	size_t start = out->len, i, n = 0;
	int ret = 0;

	ret |= add_options_json(out, &svc->opts);
	for (i = 0; i < svc->nr_containers; i++) {
		const struct container *c = &svc->containers[i];

		if (c->weight == WEIGHT_UNSET)
			continue;
		ret |= buf_addstr(out, n++ ? "," : ",\"weights\":{");
		ret |= buf_addjson(out, c->id, strlen(c->id));
		ret |= buf_addf(out, ":%d", c->weight);
	}
	if (n)
		ret |= buf_addch(out, '}');
	if (ret) {
		buf_setlen(out, start);
		return -1;
	}
	/* The members start with ',': it becomes the object's '{'. */
	if (out->len > start) {
		out->buf[start] = '{';
		ret |= buf_addch(out, '}');
	}
	if (ret) {
		buf_setlen(out, start);
		return -1;
	}
	return 0;
}

int payload_parse_options(struct service *svc, const char *json,
			  struct buf *err)
{
	static const char *const keys[] = {
		"balance",	 "cookieMode",	  "healthCheck", "maxconn",
		"timeoutServer", "timeoutTunnel", "weights",	 NULL,
	};
	struct buf field = BUF_INIT;
	json_error_t jerr;
	json_t *root, *weights, *v;
	const char *id;
	int ret = -1;

	root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		buf_setf(err, "options are not a JSON object");
		goto out;
	}
	if (check_keys(root, keys, err, &field) ||
	    parse_options(&svc->opts, root, err, &field) ||
	    check_cookie_mode(svc, err) ||
	    get_member(root, "weights", JSON_OBJECT, 0, &weights, err, &field))
		goto out;
	json_object_foreach(weights, id, v)
	{
		struct container *c = service_find_container(svc, id);

		buf_reset(&field);
		(void)buf_addstr(&field, "weights.");
		add_printable(&field, id, strlen(id));
		if (!c) {
			buf_setf(err, "no such container");
			goto out;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > WEIGHT_MAX) {
			buf_setf(err, "must be an integer from 0 to %d",
				 WEIGHT_MAX);
			goto out;
		}
		c->weight = (int)json_integer_value(v);
	}
	buf_reset(&field);
	ret = 0;
out:
	if (ret && field.len) {
		struct buf msg = BUF_INIT;

		(void)buf_addf(&msg, "options.%s: %s", field.buf, err->buf);
		buf_reset(err);
		(void)buf_add(err, msg.buf, msg.len);
		buf_release(&msg);
	}
	json_decref(root);
	buf_release(&field);
	return ret;
}

void payload_services_json(const struct service_list *list, unsigned flags,
			   struct buf *out)
{
	size_t start = out->len, i, j;
	int ret = 0;

	ret |= buf_addch(out, '[');
	for (i = 0; i < list->nr; i++) {
		const struct service *svc = &list->items[i];

		ret |= buf_addstr(out, i ? ",{\"serviceName\":"
					 : "{\"serviceName\":");
		ret |= buf_addjson(out, svc->name, strlen(svc->name));
		ret |= buf_addf(
			out,
			",\"port\":%u,\"configMode\":\"%s\",\"predicate\":",
			svc->port, config_mode_name(svc->mode));
		ret |= buf_addjson(out, svc->predicate, strlen(svc->predicate));
		if (svc->cookie) {
			ret |= buf_addstr(out, ",\"cookie\":");
			ret |= buf_addjson(out, svc->cookie,
					   strlen(svc->cookie));
		}
		ret |= add_options_json(out, &svc->opts);
		ret |= buf_addstr(out, ",\"containers\":[");
		for (j = 0; j < svc->nr_containers; j++) {
			const struct container *c = &svc->containers[j];

			ret |= buf_addstr(out, j ? ",{\"id\":" : "{\"id\":");
			ret |= buf_addjson(out, c->id, strlen(c->id));
			ret |= buf_addstr(out, ",\"ip\":");
			ret |= buf_addjson(out, c->ip, strlen(c->ip));
			if (c->weight != WEIGHT_UNSET)
				ret |= buf_addf(out, ",\"weight\":%d",
						c->weight);
			ret |= buf_addch(out, '}');
		}
		ret |= buf_addch(out, ']');
		if (flags & PAYLOAD_JSON_TIMES)
			ret |= buf_addf(
				out, ",\"createdAt\":%lld,\"updatedAt\":%lld",
				(long long)svc->created_at,
				(long long)svc->updated_at);
		ret |= buf_addch(out, '}');
	}
	ret |= buf_addch(out, ']');
	/* Over the cap: leave `out` as it was rather than half a document. */
	if (ret)
		buf_setlen(out, start);
}

int payload_check_service_text(struct service *svc, const char *name,
			       const char *port, const char *mode,
			       const char *predicate, const char *cookie,
			       struct buf *err)
{
	struct buf canon = BUF_INIT;
	int ret = -1;

	if (!name || !*name) {
		buf_setf(err, "no service name");
		goto out;
	}
	if (payload_check_name(name, err))
		goto out;
	svc->name = xstrdup(name);
	if (!port || !*port) {
		buf_setf(err, "no port");
		goto out;
	}
	if (payload_check_port_string(port, &svc->port, err))
		goto out;
	svc->mode = CONFIG_MODE_HOST;
	if (mode && *mode && config_mode_parse(mode, &svc->mode)) {
		set_quoted_error(err, "config mode", mode,
				 "neither 'host' nor 'path'");
		goto out;
	}
	if (!predicate || !*predicate) {
		buf_setf(err, "no predicate");
		goto out;
	}
	if (payload_check_predicate(svc->mode, predicate, &canon, err))
		goto out;
	svc->predicate = buf_detach(&canon, NULL);
	if (cookie && *cookie) {
		if (payload_check_cookie(cookie, err))
			goto out;
		svc->cookie = xstrdup(cookie);
	}
	ret = 0;
out:
	buf_release(&canon);
	return ret;
}

int payload_check_container_text(struct service *svc, const char *id,
				 const char *ip, struct buf *err)
{
	struct buf canon = BUF_INIT;
	int ret = -1;

	if (!id || !*id) {
		buf_setf(err, "container without id");
		goto out;
	}
	/* Container ids become server names: the rules of service names. */
	if (payload_check_name(id, err))
		goto out;
	if (!ip || !*ip) {
		buf_setf(err, "container '%s' has no address", id);
		goto out;
	}
	if (payload_check_ip(ip, &canon, err))
		goto out;
	service_put_container(svc, id, canon.buf);
	ret = 0;
out:
	buf_release(&canon);
	return ret;
}

/* One option given as text: `check` it if set; -1 names `what` in `err`. */
static int options_text_uint(const char *what, const char *s, unsigned min,
			     unsigned max, unsigned *out, struct buf *err)
{
	return s && *s &&
	       payload_check_number_text(what, s, min, max, out, err);
}

static int options_text_duration(const char *what, const char *s, unsigned min,
				 unsigned max, unsigned *out, struct buf *err)
{
	struct buf why = BUF_INIT;
	int ret = 0;

	if (s && *s && payload_check_duration(s, min, max, out, &why)) {
		buf_setf(err, "%s: %s", what, why.buf);
		ret = -1;
	}
	buf_release(&why);
	return ret;
}

int payload_check_options_text(struct service *svc,
			       const struct payload_options_text *t,
			       struct buf *err)
{
	struct service_options *o = &svc->opts;
	int ret = -1;

	if (t->balance && *t->balance &&
	    balance_parse(t->balance, &o->balance)) {
		set_quoted_error(err, "balance", t->balance,
				 "neither roundrobin, leastconn, first nor "
				 "source");
		goto out;
	}
	if (t->cookie_mode && *t->cookie_mode &&
	    cookie_mode_parse(t->cookie_mode, &o->cookie_mode)) {
		set_quoted_error(err, "cookie mode", t->cookie_mode,
				 "neither prefix nor insert");
		goto out;
	}
	if (check_cookie_mode(svc, err))
		goto out;
	if (t->check_path && *t->check_path) {
		if (payload_check_health_path(t->check_path, err))
			goto out;
		o->check_path = xstrdup(t->check_path);
	} else if ((t->check_status && *t->check_status) ||
		   (t->check_interval && *t->check_interval) ||
		   (t->check_rise && *t->check_rise) ||
		   (t->check_fall && *t->check_fall)) {
		buf_setf(err, "health check settings without a health check "
			      "path");
		goto out;
	}
	if (options_text_uint("health check status", t->check_status, 100, 599,
			      &o->check_status, err) ||
	    options_text_duration("health check interval", t->check_interval,
				  CHECK_INTER_MIN, CHECK_INTER_MAX,
				  &o->check_inter, err) ||
	    options_text_uint("health check rise", t->check_rise, 1,
			      CHECK_COUNT_MAX, &o->check_rise, err) ||
	    options_text_uint("health check fall", t->check_fall, 1,
			      CHECK_COUNT_MAX, &o->check_fall, err) ||
	    options_text_uint("maxconn", t->maxconn, 1, SERVER_MAXCONN_MAX,
			      &o->maxconn, err) ||
	    options_text_duration("timeout server", t->timeout_server,
				  TIMEOUT_MIN, TIMEOUT_MAX, &o->timeout_server,
				  err) ||
	    options_text_duration("timeout tunnel", t->timeout_tunnel,
				  TIMEOUT_MIN, TIMEOUT_MAX, &o->timeout_tunnel,
				  err))
		goto out;
	ret = 0;
out:
	return ret;
}

int payload_check_weight_text(const char *s, int *weight, struct buf *err)
{
	unsigned v;

	*weight = WEIGHT_UNSET;
	if (!s || !*s)
		return 0;
	if (payload_check_number_text("weight", s, 0, WEIGHT_MAX, &v, err))
		return -1;
	*weight = (int)v;
	return 0;
}

static const char *const payload_rules[] = {
	"table",
	"running",
	"running[]",
	"running[].serviceName",
	"running[].id",
	"running[].ip",
	"candidates",
	"candidates[]",
	"candidates[].serviceName",
	"candidates[].port",
	"candidates[].configMode",
	"candidates[].predicate",
	"candidates[].cookie",
	"candidates[].cookieMode",
	"candidates[].balance",
	"candidates[].healthCheck",
	"candidates[].healthCheck.path",
	"candidates[].healthCheck.expectStatus",
	"candidates[].healthCheck.interval",
	"candidates[].healthCheck.rise",
	"candidates[].healthCheck.fall",
	"candidates[].maxconn",
	"candidates[].timeoutServer",
	"candidates[].timeoutTunnel",
	"candidates[].containers",
	"candidates[].containers[]",
	"candidates[].containers[].id",
	"candidates[].containers[].ip",
	"candidates[].containers[].weight",
};

const char *payload_reject_reason(const char *field)
{
	struct buf shape = BUF_INIT;
	const char *ret = "other";
	size_t i;

	if (!field || !*field)
		return "json";
	for (; *field; field++) {
		(void)buf_addch(&shape, *field);
		if (*field == '[')
			while (field[1] && field[1] != ']')
				field++;
	}
	for (i = 0; i < ARRAY_SIZE(payload_rules); i++)
		if (!strcmp(shape.buf, payload_rules[i]))
			ret = payload_rules[i];
	buf_release(&shape);
	return ret;
}

void payload_peek_table(const char *json, size_t len, struct buf *out)
{
	struct buf err = BUF_INIT;
	json_t *root = json ? json_loadb(json, len, 0, NULL) : NULL;
	json_t *v = root ? json_object_get(root, "table") : NULL;

	buf_reset(out);
	if (json_is_string(v) &&
	    !payload_check_table(json_string_value(v), &err))
		(void)buf_addstr(out, json_string_value(v));
	json_decref(root);
	buf_release(&err);
}
