/*
 * key=value event lines on stderr. Events go out at once, one write(2)
 * each; access lines (one per request) are batched, so a busy server does
 * not pay a system call per request.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "banned.h"

#define LOG_LINE_MAX 2048
/* Access lines wait here until it is full, an event is written, the
 * oldest is LOG_BATCH_MS old, or none came for LOG_IDLE_MS
 * (log_flush_stale). Not at each moment without a request in flight: a
 * keep-alive client waiting for each answer makes that every request. */
#define LOG_BATCH_BYTES (32 << 10)
#define LOG_BATCH_MS	1000
#define LOG_IDLE_MS	50

static struct {
	pthread_mutex_t lock;
	char buf[LOG_BATCH_BYTES];
	size_t len;
	uint64_t since_ms; /* when the oldest line waiting was added */
	uint64_t last_ms;  /* when the newest was */
} log_batch = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0, 0};

/* "ts=... <fmt>\n" into `line`; its length (0 when formatting failed). */
static size_t log_format(char *line, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static size_t log_format(char *line, const char *fmt, va_list ap)
{
	/* The date and time to the second, formatted once per second per
	 * thread: gmtime_r and strftime were a few percent of a small call. */
	static _Thread_local time_t prefix_sec = -1;
	static _Thread_local char prefix[32];
	static _Thread_local size_t prefix_len;
	struct timespec ts;
	struct tm tm;
	size_t n;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != prefix_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		prefix_len = strftime(prefix, sizeof(prefix),
				      "ts=%Y-%m-%dT%H:%M:%S", &tm);
		prefix_sec = prefix_len ? ts.tv_sec : -1;
	}
	memcpy(line, prefix, prefix_len);
	n = prefix_len;
	len = snprintf(line + n, LOG_LINE_MAX - n, ".%03ldZ ",
		       ts.tv_nsec / 1000000);
	n += (size_t)len;
	len = vsnprintf(line + n, LOG_LINE_MAX - n - 1, fmt, ap);
	if (len < 0)
		return 0;
	n += (size_t)len < LOG_LINE_MAX - n - 1 ? (size_t)len
						: LOG_LINE_MAX - n - 2;
	line[n++] = '\n';
	return n;
}

/* Write what waits, then `line` (may be NULL), in one call; lock held. */
static void log_write_locked(const char *line, size_t n)
{
	struct iovec iov[2];
	int nr = 0;

	if (log_batch.len) {
		iov[nr].iov_base = log_batch.buf;
		iov[nr++].iov_len = log_batch.len;
	}
	if (line && n) {
		iov[nr].iov_base = (void *)line;
		iov[nr++].iov_len = n;
	}
	if (nr)
		(void)!writev(STDERR_FILENO, iov, nr);
	log_batch.len = 0;
}

void log_event(const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = log_format(line, fmt, ap);
	va_end(ap);
	if (!n)
		return;
	pthread_mutex_lock(&log_batch.lock);
	log_write_locked(line, n);
	pthread_mutex_unlock(&log_batch.lock);
}

void log_access(const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = log_format(line, fmt, ap);
	va_end(ap);
	if (!n)
		return;
	pthread_mutex_lock(&log_batch.lock);
	if (log_batch.len + n > sizeof(log_batch.buf))
		log_write_locked(NULL, 0);
	log_batch.last_ms = clock_now_ms();
	if (!log_batch.len)
		log_batch.since_ms = log_batch.last_ms;
	memcpy(log_batch.buf + log_batch.len, line, n);
	log_batch.len += n;
	pthread_mutex_unlock(&log_batch.lock);
}

void log_flush(void)
{
	pthread_mutex_lock(&log_batch.lock);
	log_write_locked(NULL, 0);
	pthread_mutex_unlock(&log_batch.lock);
}

void log_flush_stale(void)
{
	uint64_t now = clock_now_ms();

	pthread_mutex_lock(&log_batch.lock);
	if (log_batch.len && (now - log_batch.since_ms >= LOG_BATCH_MS ||
			      now - log_batch.last_ms >= LOG_IDLE_MS))
		log_write_locked(NULL, 0);
	pthread_mutex_unlock(&log_batch.lock);
}

const char *log_quote_mem(struct buf *scratch, const char *s, size_t len)
{
	size_t i;

	buf_reset(scratch);
	(void)buf_addch(scratch, '"');
	for (i = 0; i < len && i < LOG_VALUE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			(void)buf_addf(scratch, "\\%c", c);
		else if (c == '\n')
			(void)buf_addstr(scratch, "\\n");
		else if (c < 0x20 || c == 0x7f)
			(void)buf_addf(scratch, "\\x%02x", c);
		else
			(void)buf_addch(scratch, (char)c);
	}
	if (len > LOG_VALUE_MAX)
		(void)buf_addstr(scratch, "...");
	(void)buf_addch(scratch, '"');
	return scratch->buf;
}

const char *log_quote(struct buf *scratch, const char *s)
{
	return log_quote_mem(scratch, s, strlen(s));
}
