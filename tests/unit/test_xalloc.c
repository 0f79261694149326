/*
 * xcalloc() takes small blocks from malloc (glibc's calloc passes by the
 * thread's cache): they must still come zeroed, also when the block was
 * just freed with other bytes in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xalloc.h"

static void assert_zeroed(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			fail_msg("byte %zu of %zu is %u", i, n, p[i]);
}

static void test_xcalloc_zeroes_reused_blocks(void **state)
{
	static const size_t sizes[] = {1, 24, 568, 1024, 1025, 4488, 1 << 20};
	size_t i, round;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (round = 0; round < 3; round++) {
			unsigned char *p = xmalloc(sizes[i]);

			memset(p, 0xa5, sizes[i]);
			free(p);
			p = xcalloc(1, sizes[i]);
			assert_zeroed(p, sizes[i]);
			free(p);
			p = xcalloc(sizes[i], 1);
			assert_zeroed(p, sizes[i]);
			free(p);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xcalloc_zeroes_reused_blocks),
	};

	return cmocka_run_group_tests_name("xalloc", tests, NULL, NULL);
}
