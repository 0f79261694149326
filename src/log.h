/* One line per event on stderr, as key=value pairs. */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

/* Write "ts=... <fmt>\n" to stderr in one write, so lines never interleave,
 * after the access lines still waiting (so the order holds). */
void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The same line, batched: written with the next event, once 32 KiB wait,
 * or by log_flush_stale() a second after, or sooner once lines stop coming.
 * A process that logs access lines calls log_flush() before it exits and
 * log_flush_stale() several times a second.
 */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write every access line still waiting. */
void log_flush(void);
/* The same, when the oldest has waited a second or the newest 50 ms. */
void log_flush_stale(void);

struct buf;

/* The longest value log_quote() writes before it cuts with "...". */
#define LOG_VALUE_MAX 1000

/*
 * `s` as one log value: always in double quotes, with '"', '\\', control
 * bytes and DEL escaped, so a value from a client (a URL with %0A decoded,
 * a header) can never end the line or forge a key. Written into `scratch`
 * (reset first); returns scratch->buf.
 */
const char *log_quote(struct buf *scratch, const char *s);
/* The same for `len` bytes that may hold a NUL. */
const char *log_quote_mem(struct buf *scratch, const char *s, size_t len);

#endif
