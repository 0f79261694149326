/* AWS settings from the environment and the store timeout (src/aws.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aws.h"

static const char *const aws_vars[] = {
	"AWS_REGION",	     "AWS_DEFAULT_REGION",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB",
	"AWS_ENDPOINT_URL",  "AWS_CA_BUNDLE",
	AWS_TIMEOUT_ENV,
};

static int clear_env(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
		unsetenv(aws_vars[i]);
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	return 0;
}

static enum status load(struct aws_config *cfg, struct buf *err)
{
	buf_reset(err);
	return aws_config_from_env(cfg, err);
}

static void test_timeout_parse(void **state)
{
	struct buf err = BUF_INIT;
	unsigned ms = 0;

	(void)state;
	assert_int_equal(aws_parse_timeout("5", &ms, &err), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(aws_parse_timeout("0.25", &ms, &err), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(aws_parse_timeout("3600", &ms, &err), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(aws_parse_timeout("0.01", &ms, &err), 0);
	assert_int_equal(ms, 10);
	assert_int_equal(aws_parse_timeout("", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("0", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("-1", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("3601", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("5s", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("0x10", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("inf", &ms, &err), -1);
	assert_int_equal(aws_parse_timeout("1..2", &ms, &err), -1);
	assert_string_equal(
		err.buf,
		"timeout '1..2' is not a number of seconds from 0.01 to 3600");
	buf_release(&err);
}

static void test_regional_endpoint(void **state)
{
	struct buf err = BUF_INIT;
	struct aws_config cfg;

	(void)state;
	setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
	assert_int_equal(load(&cfg, &err), ST_OK);
	assert_string_equal(cfg.region, "eu-west-1");
	assert_string_equal(cfg.endpoint,
			    "https://dynamodb.eu-west-1.amazonaws.com");
	assert_null(cfg.session_token);
	assert_int_equal(cfg.timeout_ms, AWS_DEFAULT_TIMEOUT_MS);
	aws_config_release(&cfg);

	/* AWS_REGION wins over AWS_DEFAULT_REGION; China has its own domain. */
	setenv("AWS_REGION", "cn-north-1", 1);
	setenv("AWS_SESSION_TOKEN", "tok", 1);
	setenv(AWS_TIMEOUT_ENV, "1.5", 1);
	assert_int_equal(load(&cfg, &err), ST_OK);
	assert_string_equal(cfg.endpoint,
			    "https://dynamodb.cn-north-1.amazonaws.com.cn");
	assert_string_equal(cfg.session_token, "tok");
	assert_int_equal(cfg.timeout_ms, 1500);
	aws_config_release(&cfg);
	buf_release(&err);
}

static void test_custom_endpoint(void **state)
{
	struct buf err = BUF_INIT;
	struct aws_config cfg;

	(void)state;
	setenv("AWS_ENDPOINT_URL", "http://generic:1", 1);
	setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000//", 1);
	assert_int_equal(load(&cfg, &err), ST_OK);
	assert_string_equal(cfg.endpoint, "http://127.0.0.1:8000");
	assert_string_equal(cfg.region, "us-east-1");
	aws_config_release(&cfg);

	unsetenv("AWS_ENDPOINT_URL_DYNAMODB");
	assert_int_equal(load(&cfg, &err), ST_OK);
	assert_string_equal(cfg.endpoint, "http://generic:1");
	aws_config_release(&cfg);

	setenv("AWS_ENDPOINT_URL", "ftp://x", 1);
	assert_int_equal(load(&cfg, &err), ST_USAGE);
	assert_string_equal(
		err.buf,
		"endpoint 'ftp://x' is not an http:// or https:// URL");
	buf_release(&err);
}

static void test_missing_or_bad(void **state)
{
	struct buf err = BUF_INIT;
	struct aws_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, &err), ST_USAGE);
	assert_non_null(strstr(err.buf, "no AWS region"));

	setenv("AWS_REGION", "eu-west-1\nx", 1);
	assert_int_equal(load(&cfg, &err), ST_USAGE);
	assert_string_equal(err.buf, "malformed AWS region 'eu-west-1\nx'");

	setenv("AWS_REGION", "eu-west-1", 1);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(load(&cfg, &err), ST_USAGE);
	assert_non_null(strstr(err.buf, "no AWS credentials"));

	setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
	setenv(AWS_TIMEOUT_ENV, "forever", 1);
	assert_int_equal(load(&cfg, &err), ST_USAGE);
	assert_non_null(strstr(err.buf, "timeout 'forever'"));
	assert_null(cfg.region);
	buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout_parse),
		cmocka_unit_test_setup(test_regional_endpoint, clear_env),
		cmocka_unit_test_setup(test_custom_endpoint, clear_env),
		cmocka_unit_test_setup(test_missing_or_bad, clear_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
