/* key=value event lines on stderr, one write(2) each. */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "banned.h"

void log_event(const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	len = snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
		       ts.tv_nsec / 1000000);
	n += (size_t)len;
	va_start(ap, fmt);
	len = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	n += (size_t)len < sizeof(line) - n - 1 ? (size_t)len
						: sizeof(line) - n - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
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
