/* The string buffer: caps, JSON, quoting and hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_cap(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_string_equal(b.buf, "");
	assert_int_equal(buf_addstr(&b, "12345678"), 0);
	assert_int_equal(buf_addch(&b, '9'), -1);
	assert_int_equal(buf_addf(&b, "%d", 1), -1);
	assert_string_equal(b.buf, "12345678");
	buf_release(&b);
	assert_string_equal(b.buf, "");
	assert_int_equal(b.cap, 8);
}

/* buf_addf formats into the room left when it fits, else grows first;
 * over the cap it appends nothing, with room or without. */
static void test_addf_room(void **state)
{
	struct buf b;
	char want[300];
	int i;

	(void)state;
	buf_init(&b, 280);
	buf_grow(&b, 15); /* 16 bytes: room for 15 */
	assert_int_equal(buf_addf(&b, "%s", "0123456789abcd"), 0);
	assert_int_equal(b.len, 14);
	assert_int_equal(buf_addf(&b, "%d", 5), 0); /* exactly the room */
	assert_string_equal(b.buf, "0123456789abcd5");
	assert_int_equal(buf_addf(&b, "%s-%d", "grow", 42), 0);
	assert_string_equal(b.buf, "0123456789abcd5grow-42");
	assert_int_equal(buf_addf(&b, "%s", ""), 0);
	assert_int_equal(b.len, 22);
	for (i = 0; i < 25; i++)
		assert_int_equal(buf_addf(&b, "%010d", i), 0);
	assert_int_equal(b.len, 272);
	assert_true(b.alloc - b.len > 9); /* room, but the cap is 280 */
	assert_int_equal(buf_addf(&b, "%09d", 7), -1);
	assert_int_equal(b.len, 272);
	assert_int_equal(strlen(b.buf), 272);
	strcpy(want, "0123456789abcd5grow-42");
	for (i = 0; i < 25; i++)
		snprintf(want + strlen(want), 11, "%010d", i);
	assert_string_equal(b.buf, want);
	assert_int_equal(buf_addf(&b, "%d", 1), -1); /* sticky */
	buf_release(&b);
}

static void test_json(void **state)
{
	struct buf b = BUF_INIT;
	const char in[] = "a\"b\\c\nd\te\001f\x7fg";

	(void)state;
	assert_int_equal(buf_addjson(&b, in, sizeof(in) - 1), 0);
	assert_string_equal(b.buf, "\"a\\\"b\\\\c\\nd\\te\\u0001f\x7fg\"");
	buf_release(&b);
}

static void test_quoted(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_addquoted(&b, "x\ny\"\xff", 5), 0);
	assert_string_equal(b.buf, "\"x\\ny\\\"\\xff\"");
	buf_release(&b);
}

static void test_hex_encoding(void **state)
{
	unsigned char bytes[100];
	char dst[2 * sizeof(bytes)];
	struct buf b;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 37 + 5);
	buf_hex_encode(dst, "\x00\x0f\xa0\xff", 4);
	assert_memory_equal(dst, "000fa0ff", 8);
	/* A long run, and the cap: all of it or nothing. */
	buf_init(&b, 0);
	assert_int_equal(buf_addhex(&b, bytes, sizeof(bytes)), 0);
	buf_hex_encode(dst, bytes, sizeof(bytes));
	assert_int_equal(b.len, sizeof(dst));
	assert_memory_equal(b.buf, dst, sizeof(dst));
	buf_release(&b);
	buf_init(&b, 8);
	assert_int_equal(buf_addhex(&b, "\x12\x34", 2), 0);
	assert_int_equal(buf_addhex(&b, "\x56\x78\x9a", 3), -1);
	assert_true(buf_overflowed(&b));
	assert_string_equal(b.buf, "1234");
	buf_release(&b);
	buf_init(&b, 100);
	assert_int_equal(buf_addhex(&b, bytes, sizeof(bytes)), -1);
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void test_detach(void **state)
{
	struct buf b = BUF_INIT;
	size_t len;
	char *s;

	(void)state;
	s = buf_detach(&b, &len);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	assert_int_equal(buf_addstr(&b, "hello"), 0);
	s = buf_detach(&b, &len);
	assert_string_equal(s, "hello");
	assert_int_equal(len, 5);
	assert_int_equal(b.len, 0);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_addf_room),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_hex_encoding),
		cmocka_unit_test(test_detach),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
