/*
 * AWS settings from the environment and DynamoDB JSON-protocol requests:
 * SigV4-signed by libcurl, one kept-alive connection per client, retries
 * with exponential backoff and full jitter, all inside a deadline.
 */
#include "aws.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "curlx.h"
#include "xalloc.h"
#include "banned.h"

#define AWS_MAX_BODY	    ((size_t)32 << 20)
#define AWS_BACKOFF_BASE_MS 25u
#define AWS_BACKOFF_CAP_MS  1000u
/* Throttling and 5xx clear up with time; a refused connection rarely does. */
#define AWS_MAX_ATTEMPTS	   10u
#define AWS_MAX_TRANSPORT_ATTEMPTS 3u

struct aws_client {
	struct aws_config cfg;
	CURL *curl;
	char *url;
	char *sigv4;
	char errbuf[CURL_ERROR_SIZE];
	unsigned long requests;
	struct backoff backoff; /* between the attempts of one request */
};

static const char *aws_getenv(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int aws_parse_timeout(const char *s, unsigned *ms, struct buf *err)
{
	const char *p;
	char *end;
	double secs;

	for (p = s; *p; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			break;
	errno = 0;
	secs = *s && !*p ? strtod(s, &end) : -1;
	if (secs < 0 || errno || *end || !isfinite(secs) || secs < 0.01 ||
	    secs > 3600) {
		buf_setf(err,
			 "timeout '%s' is not a number of seconds from 0.01 to "
			 "3600",
			 s);
		return -1;
	}
	*ms = (unsigned)(secs * 1000 + 0.5);
	return 0;
}

void aws_config_release(struct aws_config *cfg)
{
	free(cfg->region);
	free(cfg->access_key);
	free(cfg->secret_key);
	free(cfg->session_token);
	free(cfg->endpoint);
	free(cfg->ca_bundle);
	memset(cfg, 0, sizeof(*cfg));
}

enum status aws_config_from_env(struct aws_config *cfg, struct buf *err)
{
	const char *region = aws_getenv("AWS_REGION");
	const char *endpoint = aws_getenv("AWS_ENDPOINT_URL_DYNAMODB");
	const char *key = aws_getenv("AWS_ACCESS_KEY_ID");
	const char *secret = aws_getenv("AWS_SECRET_ACCESS_KEY");
	const char *timeout = aws_getenv(AWS_TIMEOUT_ENV);
	struct buf url = BUF_INIT;
	enum status ret = ST_USAGE;
	const char *p;

	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = AWS_DEFAULT_TIMEOUT_MS;
	if (!region)
		region = aws_getenv("AWS_DEFAULT_REGION");
	if (!endpoint)
		endpoint = aws_getenv("AWS_ENDPOINT_URL");
	if (!region && !endpoint) {
		buf_setf(err, "no AWS region: set AWS_REGION (or "
			      "AWS_ENDPOINT_URL_DYNAMODB)");
		goto out;
	}
	if (!region)
		region = "us-east-1";
	for (p = region; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			break;
	if (*p || p - region > 64) {
		buf_setf(err, "malformed AWS region '%s'", region);
		goto out;
	}
	if (!key || !secret) {
		buf_setf(err, "no AWS credentials: set AWS_ACCESS_KEY_ID and "
			      "AWS_SECRET_ACCESS_KEY");
		goto out;
	}
	if (timeout && aws_parse_timeout(timeout, &cfg->timeout_ms, err))
		goto out;
	if (endpoint) {
		if (strncmp(endpoint, "http://", 7) &&
		    strncmp(endpoint, "https://", 8)) {
			buf_setf(err,
				 "endpoint '%s' is not an http:// or https:// "
				 "URL",
				 endpoint);
			goto out;
		}
		(void)buf_addstr(&url, endpoint);
		while (url.len && url.buf[url.len - 1] == '/')
			buf_setlen(&url, url.len - 1);
	} else {
		(void)buf_addf(&url, "https://dynamodb.%s.amazonaws.com%s",
			       region, strncmp(region, "cn-", 3) ? "" : ".cn");
	}
	cfg->region = xstrdup(region);
	cfg->access_key = xstrdup(key);
	cfg->secret_key = xstrdup(secret);
	cfg->session_token = aws_getenv("AWS_SESSION_TOKEN")
				     ? xstrdup(aws_getenv("AWS_SESSION_TOKEN"))
				     : NULL;
	cfg->endpoint = buf_detach(&url, NULL);
	/* Where the CA file is not where libcurl was built to look (Lambda). */
	cfg->ca_bundle = aws_getenv("AWS_CA_BUNDLE")
				 ? xstrdup(aws_getenv("AWS_CA_BUNDLE"))
				 : NULL;
	ret = ST_OK;
out:
	if (ret != ST_OK)
		aws_config_release(cfg);
	buf_release(&url);
	return ret;
}

void aws_response_init(struct aws_response *res)
{
	res->http_status = 0;
	res->type[0] = '\0';
	buf_init(&res->body, AWS_MAX_BODY);
}

void aws_response_release(struct aws_response *res)
{
	buf_release(&res->body);
	res->http_status = 0;
	res->type[0] = '\0';
}

struct aws_client *aws_client_new(struct aws_config *cfg)
{
	struct aws_client *c = xcalloc(1, sizeof(*c));
	struct buf s = BUF_INIT;

	curlx_global_init();
	c->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	c->curl = curl_easy_init();
	if (!c->curl)
		BUG("curl_easy_init failed");
	(void)buf_addf(&s, "%s/", c->cfg.endpoint);
	c->url = buf_detach(&s, NULL);
	(void)buf_addf(&s, "aws:amz:%s:dynamodb", c->cfg.region);
	c->sigv4 = buf_detach(&s, NULL);
	backoff_init(&c->backoff, AWS_BACKOFF_BASE_MS, AWS_BACKOFF_CAP_MS);

	curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_AWS_SIGV4, c->sigv4);
	curl_easy_setopt(c->curl, CURLOPT_USERNAME, c->cfg.access_key);
	curl_easy_setopt(c->curl, CURLOPT_PASSWORD, c->cfg.secret_key);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, curlx_write_buf);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	if (c->cfg.ca_bundle)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cfg.ca_bundle);
	/*
	 * Larger bodies go with "Expect: 100-continue"; do not wait for the
	 * 100. (Removing the header with "Expect:" would get it signed by
	 * curl yet not sent, which AWS rejects.)
	 */
	curl_easy_setopt(c->curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
	buf_release(&s);
	return c;
}

void aws_client_free(struct aws_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	aws_config_release(&c->cfg);
	free(c->url);
	free(c->sigv4);
	free(c);
}

const struct aws_config *aws_client_config(const struct aws_client *c)
{
	return &c->cfg;
}

unsigned long aws_client_requests(const struct aws_client *c)
{
	return c->requests;
}

/* Fill res->type and `msg` from an error body {"__type": "ns#Type", "message":
 * ...}. */
static void aws_parse_error(struct aws_response *res, struct buf *msg)
{
	json_t *doc = json_loadb(res->body.buf, res->body.len, 0,
				 NULL); /* new reference */
	const char *type = NULL, *text = NULL, *hash;

	buf_reset(msg);
	if (json_is_object(doc)) {
		type = json_string_value(json_object_get(doc, "__type"));
		text = json_string_value(json_object_get(doc, "message"));
		if (!text)
			text = json_string_value(
				json_object_get(doc, "Message"));
	}
	if (type) {
		hash = strrchr(type, '#');
		type = hash ? hash + 1 : type;
		if (strlen(type) < sizeof(res->type))
			memcpy(res->type, type, strlen(type) + 1);
	}
	if (text)
		(void)buf_addstr(msg, text);
	json_decref(doc);
}

static int aws_is_throttling(const char *type)
{
	return !strcmp(type, "ProvisionedThroughputExceededException") ||
	       !strcmp(type, "ThrottlingException") ||
	       !strcmp(type, "RequestLimitExceeded") ||
	       !strcmp(type, "InternalServerError");
}

/* Errors that another attempt cannot fix. */
static int aws_is_permanent(CURLcode rc)
{
	return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ||
	       rc == CURLE_WRITE_ERROR || rc == CURLE_OUT_OF_MEMORY ||
	       rc == CURLE_BAD_FUNCTION_ARGUMENT || rc == CURLE_NOT_BUILT_IN ||
	       rc == CURLE_PEER_FAILED_VERIFICATION ||
	       rc == CURLE_SSL_CACERT_BADFILE;
}

static void aws_transport_cause(struct aws_client *c, CURLcode rc,
				long timeout_ms, struct buf *cause)
{
	long os_errno = 0;

	buf_reset(cause);
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		(void)buf_addf(cause, "no answer within %ld ms", timeout_ms);
		return;
	}
	if (rc == CURLE_COULDNT_RESOLVE_HOST) {
		(void)buf_addstr(cause, "cannot resolve the host name");
		return;
	}
	if (rc == CURLE_WRITE_ERROR) {
		(void)buf_addf(cause, "answer larger than %zu bytes",
			       AWS_MAX_BODY);
		return;
	}
	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_COULDNT_CONNECT && os_errno)
		(void)buf_addstr(cause, strerror((int)os_errno));
	else
		(void)buf_addstr(cause, c->errbuf[0] ? c->errbuf
						     : curl_easy_strerror(rc));
	/* Messages here are lower case, like the rest of ours. */
	if (cause->len && isupper((unsigned char)cause->buf[0]) &&
	    !(cause->len > 1 && isupper((unsigned char)cause->buf[1])))
		cause->buf[0] = (char)tolower((unsigned char)cause->buf[0]);
}

enum status aws_dynamodb_request(struct aws_client *c, const char *op,
				 const char *body, size_t len,
				 uint64_t deadline, struct aws_response *res,
				 struct buf *err)
{
	struct curl_slist *headers = NULL;
	struct buf hdr = BUF_INIT, cause = BUF_INIT, msg = BUF_INIT;
	uint64_t start = clock_now_ms(), now;
	enum status ret = ST_UNAVAILABLE;
	unsigned attempts = 0, max_attempts;
	int transport = 0, retry = 0;
	long code, timeout_ms;
	CURLcode rc;

	headers = curl_slist_append(headers,
				    "Content-Type: application/x-amz-json-1.0");
	(void)buf_addf(&hdr, "X-Amz-Target: DynamoDB_20120810.%s", op);
	headers = curl_slist_append(headers, hdr.buf);
	if (c->cfg.session_token) {
		buf_reset(&hdr);
		(void)buf_addf(&hdr, "X-Amz-Security-Token: %s",
			       c->cfg.session_token);
		headers = curl_slist_append(headers, hdr.buf);
	}
	if (!headers)
		BUG("curl_slist_append failed");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &res->body);
	backoff_reset(&c->backoff);

	for (;;) {
		now = clock_now_ms();
		if (now >= deadline)
			break;
		timeout_ms = (long)(deadline - now);
		buf_reset(&res->body);
		res->http_status = 0;
		res->type[0] = '\0';
		c->errbuf[0] = '\0';
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
		curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
				 timeout_ms);
		c->requests++;
		attempts++;
		rc = curl_easy_perform(c->curl);
		if (rc == CURLE_OK) {
			curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE,
					  &code);
			res->http_status = code;
			if (code >= 200 && code < 300) {
				ret = ST_OK;
				goto out;
			}
			transport = 0;
			aws_parse_error(res, &msg);
			buf_reset(&cause);
			if (res->type[0])
				(void)buf_addf(&cause, "%s: %s", res->type,
					       msg.len ? msg.buf
						       : "no message");
			else
				(void)buf_addf(&cause, "HTTP %ld", code);
			retry = code >= 500 || aws_is_throttling(res->type);
			max_attempts = AWS_MAX_ATTEMPTS;
		} else {
			transport = 1;
			aws_transport_cause(c, rc, timeout_ms, &cause);
			retry = !aws_is_permanent(rc);
			max_attempts = AWS_MAX_TRANSPORT_ATTEMPTS;
		}
		if (!retry || attempts >= max_attempts)
			break;
		{
			uint64_t delay = backoff_next_ms(&c->backoff);

			if (clock_now_ms() + delay >= deadline)
				break;
			clock_sleep_ms(delay);
		}
	}
	now = clock_now_ms();
	if (!attempts)
		buf_setf(err,
			 "dynamodb %s not sent: the call's %u ms budget "
			 "was used up",
			 op, c->cfg.timeout_ms);
	else if (transport)
		buf_setf(err,
			 "dynamodb unreachable at %s: %s (%s: %u attempt%s in "
			 "%llu ms)",
			 c->cfg.endpoint, cause.buf, op, attempts,
			 attempts == 1 ? "" : "s",
			 (unsigned long long)(now - start));
	else if (retry)
		buf_setf(err,
			 "dynamodb %s failed: %s (%u attempt%s in %llu ms)", op,
			 cause.buf, attempts, attempts == 1 ? "" : "s",
			 (unsigned long long)(now - start));
	else
		buf_setf(err, "dynamodb %s failed: %s", op, cause.buf);
out:
	/* The handle keeps pointers to these; clear them before they go. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(headers);
	buf_release(&hdr);
	buf_release(&cause);
	buf_release(&msg);
	return ret;
}
