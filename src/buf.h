/*
 * A growable string buffer with a size cap per use. `b->buf` is never NULL
 * and always NUL-terminated, so it can be handed to C string functions.
 */
#ifndef BUF_H
#define BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "status.h"

#define BUF_CAP_DEFAULT ((size_t)64 << 20)
#define BUF_CAP_MESSAGE ((size_t)4096)

struct buf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t cap;   /* appends that would make len exceed this fail */
	int overflow; /* sticky: an append failed, later ones do nothing */
};

#define BUF_INIT                                                               \
	{                                                                      \
		buf_empty, 0, 0, BUF_CAP_DEFAULT, 0                            \
	}

extern char buf_empty[];

/* Start an empty buffer that may hold at most `cap` bytes (0: the default). */
void buf_init(struct buf *b, size_t cap);
/* Free the memory and leave `b` empty and reusable. */
void buf_release(struct buf *b);
/* Hand the string over to the caller (free() it) and leave `b` empty. */
char *buf_detach(struct buf *b, size_t *len);
void buf_reset(struct buf *b);
void buf_grow(struct buf *b, size_t extra);
void buf_setlen(struct buf *b, size_t len);

/*
 * Appenders return 0, or -1 when the cap would be exceeded. Overflow is
 * sticky (curl dynbuf's rule): the first failed append leaves the content as
 * it was and marks the buffer, later appends do nothing and return -1, and
 * the code that sends or stores the buffer checks buf_overflowed() once.
 * buf_reset(), buf_release() and buf_setf() clear the mark.
 */
int buf_add(struct buf *b, const void *data, size_t len);
int buf_addstr(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Nonzero once an append failed: the content is incomplete. */
static inline int buf_overflowed(const struct buf *b)
{
	return b->overflow;
}
/* Replace the content with a formatted message (for error out-parameters). */
void buf_setf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Write `n` bytes as 2 * `n` lowercase hex digits to `dst` (no NUL). */
void buf_hex_encode(char *dst, const void *src, size_t n);
/* Append `n` bytes as lowercase hex. */
int buf_addhex(struct buf *b, const void *src, size_t n);
/* Append `s` as a quoted, printable form for error messages: "a\nb". */
int buf_addquoted(struct buf *b, const char *s, size_t len);
/* Append `s` as a JSON string literal, quotes included (valid UTF-8 expected).
 */
int buf_addjson(struct buf *b, const char *s, size_t len);

/*
 * Append the whole file at `path`. ST_NOT_FOUND when it does not exist,
 * ST_TOO_LARGE over the cap, ST_UNAVAILABLE on other errors (`err` says
 * which); on an error `out` is left as it was.
 */
enum status buf_read_file(struct buf *out, const char *path,
			  struct buf *err) WARN_UNUSED;

#endif
