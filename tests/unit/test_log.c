/*
 * The batched access log: lines wait until a flush, an event or a full
 * batch, and come out whole and in order; nothing is lost at log_flush().
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char path[] = "/tmp/lr-log-XXXXXX";
static int saved_stderr = -1;

/* stderr into a fresh file for the test. */
static int capture(void **state)
{
	int fd = mkstemp(path);

	(void)state;
	if (fd < 0)
		return -1;
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return 0;
}

static int restore(void **state)
{
	(void)state;
	log_flush();
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	unlink(path);
	strcpy(path, "/tmp/lr-log-XXXXXX");
	return 0;
}

/* What the file holds now, NUL-terminated (free it). */
static char *written(void)
{
	FILE *f = fopen(path, "rb");
	char *text = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, (1 << 20) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

static void test_access_lines_wait_for_a_flush(void **state)
{
	char *text;

	(void)state;
	log_access("method=\"GET\" n=1");
	log_access("method=\"GET\" n=2");
	log_flush_stale(); /* not a second old yet */
	text = written();
	assert_string_equal(text, "");
	free(text);
	log_flush();
	text = written();
	assert_int_equal(count(text, "\n"), 2);
	assert_true(strstr(text, " n=1\n") < strstr(text, " n=2\n"));
	assert_int_equal(strncmp(text, "ts=", 3), 0);
	free(text);
}

/* The UTC time of a line's "ts=", to the second; -1 when malformed. */
static time_t line_time(const char *line)
{
	struct tm tm = {0};
	const char *end = strptime(line, "ts=%Y-%m-%dT%H:%M:%S", &tm);

	if (!end || end[0] != '.' || strspn(end + 1, "0123456789") != 3 ||
	    strncmp(end + 4, "Z ", 2))
		return -1;
	return timegm(&tm);
}

/* The time to the second is formatted once per second: a line in a new
 * second must not keep the last one's. */
static void test_each_line_has_its_time(void **state)
{
	time_t before, after, t1, t2;
	char *text, *second;

	(void)state;
	before = time(NULL);
	log_event("n=1");
	usleep(1100 * 1000);
	log_event("n=2");
	after = time(NULL);
	text = written();
	second = strchr(text, '\n');
	assert_non_null(second);
	t1 = line_time(text);
	t2 = line_time(second + 1);
	assert_true(t1 >= before && t1 <= after);
	assert_true(t2 > t1 && t2 <= after);
	free(text);
}

static void test_an_event_comes_after_the_waiting_lines(void **state)
{
	char *text;

	(void)state;
	log_access("n=1");
	log_event("event=stopping");
	text = written();
	assert_non_null(strstr(text, " n=1\n"));
	assert_non_null(strstr(text, " event=stopping\n"));
	assert_true(strstr(text, " n=1\n") < strstr(text, "event=stopping"));
	free(text);
}

static void test_a_full_batch_is_written_whole(void **state)
{
	char line[200], *text;
	unsigned i, n = 2000;

	(void)state;
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	for (i = 0; i < n; i++)
		log_access("n=%u %s", i, line);
	text = written();
	/* Most went out in batches already, each line whole. */
	assert_true(count(text, "\n") > n / 2);
	assert_true(count(text, "\n") < n);
	free(text);
	log_flush();
	text = written();
	assert_int_equal(count(text, "\n"), n);
	assert_int_equal(count(text, line), n);
	assert_non_null(strstr(text, " n=1999 "));
	free(text);
}

static void test_a_second_old_batch_goes_out(void **state)
{
	char *text;

	(void)state;
	log_access("n=old");
	usleep(1100 * 1000);
	log_flush_stale();
	text = written();
	assert_non_null(strstr(text, " n=old\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_access_lines_wait_for_a_flush, capture, restore),
		cmocka_unit_test_setup_teardown(
			test_an_event_comes_after_the_waiting_lines, capture,
			restore),
		cmocka_unit_test_setup_teardown(test_each_line_has_its_time,
						capture, restore),
		cmocka_unit_test_setup_teardown(
			test_a_full_batch_is_written_whole, capture, restore),
		cmocka_unit_test_setup_teardown(
			test_a_second_old_batch_goes_out, capture, restore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
