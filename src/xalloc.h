/* Allocation wrappers: running out of memory is not recoverable here, so abort.
 */
#ifndef XALLOC_H
#define XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* glibc's malloc as `serve` runs it (see xalloc.c); the in-process
 * benchmarks take it too, to measure what the server does. */
void xalloc_tune_for_server(void);

/* Grow array `x` (with `alloc` slots) so that it holds at least `nr` items. */
#define ALLOC_GROW(x, nr, alloc)                                               \
	do {                                                                   \
		if ((nr) > (alloc)) {                                          \
			(alloc) = (alloc) < 8 ? 8 : (alloc)*2;                 \
			if ((alloc) < (nr))                                    \
				(alloc) = (nr);                                \
			(x) = xrealloc((x), (alloc) * sizeof(*(x)));           \
		}                                                              \
	} while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A programmer error: report where and abort. */
#define BUG(...) bug_fl(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void bug_fl(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
