/* Store specs as messages show them: passwords replaced, the rest kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "store/store.h"

static void check_redact(const char *spec, const char *want)
{
	struct buf b = BUF_INIT;

	store_spec_redact(spec, &b);
	assert_string_equal(b.buf, want);
	buf_release(&b);
}

static void test_keywords(void **state)
{
	(void)state;
	check_redact("postgres:host=db password=sekrit user=lr",
		     "postgres:host=db password=*** user=lr");
	check_redact("postgres:password='a b\\' c' dbname=x",
		     "postgres:password=*** dbname=x");
	check_redact("postgres:password=", "postgres:password=***");
	check_redact("postgres:host=db", "postgres:host=db");
}

static void test_uri(void **state)
{
	(void)state;
	check_redact("postgres:postgresql://bob:sekrit@db:5432/ops?schema=lr",
		     "postgres:postgresql://bob:***@db:5432/ops?schema=lr");
	check_redact("postgres:postgresql://bob:p@ss@db/ops",
		     "postgres:postgresql://bob:***@db/ops");
	check_redact(
		"postgres:postgresql://bob@db/ops?password=x&sslmode=on",
		"postgres:postgresql://bob@db/ops?password=***&sslmode=on");
	check_redact("postgres:postgresql://db:5432/ops",
		     "postgres:postgresql://db:5432/ops");
}

static void test_other_stores(void **state)
{
	(void)state;
	check_redact("sqlite:./registry.db", "sqlite:./registry.db");
	check_redact("dynamodb:prod-", "dynamodb:prod-");
	check_redact("", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_other_stores),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
