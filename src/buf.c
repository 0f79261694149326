/* Growable, size-capped string buffer. */
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"
#include "banned.h"

char buf_empty[1];

void buf_init(struct buf *b, size_t cap)
{
	b->buf = buf_empty;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap ? cap : BUF_CAP_DEFAULT;
	b->overflow = 0;
}

void buf_release(struct buf *b)
{
	if (b->alloc)
		free(b->buf);
	buf_init(b, b->cap);
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *s;

	if (len)
		*len = b->len;
	s = b->alloc ? b->buf : xstrdup("");
	buf_init(b, b->cap);
	return s;
}

void buf_reset(struct buf *b)
{
	buf_setlen(b, 0);
	b->overflow = 0;
}

void buf_grow(struct buf *b, size_t extra)
{
	size_t want = b->len + extra + 1;

	if (want <= b->alloc)
		return;
	if (want < b->alloc * 2)
		want = b->alloc * 2;
	if (want < 64)
		want = 64;
	if (!b->alloc) {
		b->buf = xmalloc(want);
		b->buf[0] = '\0';
	} else {
		b->buf = xrealloc(b->buf, want);
	}
	b->alloc = want;
}

void buf_setlen(struct buf *b, size_t len)
{
	if (len > (b->alloc ? b->alloc - 1 : 0))
		BUG("buf_setlen beyond allocation (%zu)", len);
	b->len = len;
	if (b->alloc)
		b->buf[len] = '\0';
}

/* Room for `len` more bytes within the cap, or -1 (and the mark). */
static int buf_reserve(struct buf *b, size_t len)
{
	if (b->overflow)
		return -1;
	if (len > b->cap || b->len > b->cap - len) {
		b->overflow = 1;
		return -1;
	}
	if (len)
		buf_grow(b, len);
	return 0;
}

int buf_add(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len))
		return -1;
	if (!len)
		return 0;
	memcpy(b->buf + b->len, data, len);
	buf_setlen(b, b->len + len);
	return 0;
}

int buf_addstr(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addch(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

/* Formatted once into the room left when it fits; else measured there,
 * then formatted again once the buffer has grown. */
int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	size_t room = b->alloc ? b->alloc - b->len : 0;
	va_list cp;
	int n;

	if (b->overflow)
		return -1;
	va_copy(cp, ap);
	n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, cp);
	va_end(cp);
	if (n < 0)
		BUG("bad format '%s'", fmt);
	if (buf_reserve(b, (size_t)n)) {
		if (room)
			b->buf[b->len] = '\0';
		return -1;
	}
	if ((size_t)n >= room)
		vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	buf_setlen(b, b->len + (size_t)n);
	return 0;
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return ret;
}

void buf_setf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	buf_reset(b);
	va_start(ap, fmt);
	(void)buf_vaddf(b, fmt, ap);
	va_end(ap);
}

void buf_hex_encode(char *dst, const void *src, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = src;
	size_t i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = digits[p[i] >> 4];
		dst[2 * i + 1] = digits[p[i] & 15];
	}
}

int buf_addhex(struct buf *b, const void *src, size_t n)
{
	if (buf_reserve(b, n > SIZE_MAX / 2 ? SIZE_MAX : 2 * n))
		return -1;
	if (!n)
		return 0;
	buf_hex_encode(b->buf + b->len, src, n);
	buf_setlen(b, b->len + 2 * n);
	return 0;
}

int buf_addquoted(struct buf *b, const char *s, size_t len)
{
	static const size_t shown = 64;
	size_t start = b->len;
	size_t i;
	int ret = 0;

	ret |= buf_addch(b, '"');
	for (i = 0; i < len && i < shown; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			ret |= buf_addf(b, "\\%c", c);
		else if (c == '\n')
			ret |= buf_addstr(b, "\\n");
		else if (c == '\r')
			ret |= buf_addstr(b, "\\r");
		else if (c == '\t')
			ret |= buf_addstr(b, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			ret |= buf_addf(b, "\\x%02x", c);
		else
			ret |= buf_addch(b, (char)c);
	}
	if (len > shown)
		ret |= buf_addstr(b, "...");
	ret |= buf_addch(b, '"');
	if (ret)
		buf_setlen(b, start);
	return ret ? -1 : 0;
}

int buf_addjson(struct buf *b, const char *s, size_t len)
{
	size_t start = b->len;
	size_t i, run = 0;
	int ret = 0;

	ret |= buf_addch(b, '"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		ret |= buf_add(b, s + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\')
			ret |= buf_addf(b, "\\%c", c);
		else if (c == '\n')
			ret |= buf_addstr(b, "\\n");
		else if (c == '\t')
			ret |= buf_addstr(b, "\\t");
		else
			ret |= buf_addf(b, "\\u%04x", c);
	}
	ret |= buf_add(b, s + run, len - run);
	ret |= buf_addch(b, '"');
	if (ret)
		buf_setlen(b, start);
	return ret ? -1 : 0;
}

enum status buf_read_file(struct buf *out, const char *path, struct buf *err)
{
	size_t start = out->len;
	enum status st = ST_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return ST_NOT_FOUND;
		buf_setf(err, "cannot open '%s': %s", path, strerror(errno));
		return ST_UNAVAILABLE;
	}
	for (;;) {
		ssize_t n;

		buf_grow(out, 65536);
		n = read(fd, out->buf + out->len, out->alloc - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_setf(err, "cannot read '%s': %s", path,
				 strerror(errno));
			st = ST_UNAVAILABLE;
			break;
		}
		if (!n)
			break;
		if ((size_t)n > out->cap || out->len > out->cap - (size_t)n) {
			buf_setf(err, "'%s' is larger than %zu bytes", path,
				 out->cap);
			st = ST_TOO_LARGE;
			break;
		}
		buf_setlen(out, out->len + (size_t)n);
	}
	close(fd);
	if (st != ST_OK)
		buf_setlen(out, start);
	return st;
}
