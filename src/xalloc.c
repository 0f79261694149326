/* Allocation wrappers that abort on failure, and BUG(). */
#include "xalloc.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* A long-running server: buffers up to 32 MB (glibc's largest mmap
 * threshold; payloads and configs of tens of thousands of services)
 * are reused from the heap, as faulting in fresh pages for each call
 * costs more than the work on them (at 10,000 services, the agent's
 * call adding one container took 104 ms with a 4 MB threshold, 31 ms
 * with this; the unchanged one 18 and 9 ms; peak RSS the same). One
 * arena for the threads keeps freed memory in one place: without it
 * peak RSS at 10,000 services was 232 MiB instead of 55.
 */
void xalloc_tune_for_server(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_ARENA_MAX, 1);
#endif
}

static _Noreturn void xalloc_die(size_t size)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", size);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		xalloc_die(size);
	return p;
}

/* glibc's calloc (2.36) passes by the thread's cache and takes the arena's
 * lock, which all threads share here (xalloc_tune_for_server); a small
 * block from malloc does not, and a request's state is one. */
#define XALLOC_SMALL 1024

void *xcalloc(size_t nmemb, size_t size)
{
	size_t n;
	void *p;

	if (!__builtin_mul_overflow(nmemb, size, &n) && n <= XALLOC_SMALL) {
		p = xmalloc(n);
		memset(p, 0, n);
		return p;
	}
	p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		xalloc_die(nmemb * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (!p)
		xalloc_die(size);
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void bug_fl(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "BUG: %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
