/* One line per event on stderr, as key=value pairs. */
#ifndef LOG_H
#define LOG_H

/* Write "ts=... <fmt>\n" to stderr in one write, so lines never interleave. */
void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
