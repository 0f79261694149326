/*
 * The DynamoDB store backend: one DynamoDB table per payload table, one item
 * per service in the first version's layout plus a `version` number that
 * makes every put and delete a conditional write (optimistic concurrency),
 * and one head item per table whose version every writing call bumps.
 */
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../aws.h"
#include "../clock.h"
#include "../log.h"
#include "../payload.h"
#include "../xalloc.h"
#include "../banned.h"

/*
 * The version reported for an item the first version wrote (it has no
 * `version` attribute): a write then requires that the item still exists and
 * still has no version. 0 cannot be used, it means "new".
 */
#define DDB_VERSION_LEGACY UINT64_MAX
/* An item whose version attribute cannot be read; only for broken items. */
#define DDB_VERSION_UNKNOWN (UINT64_MAX - 1)

#define DDB_TABLE_MAX 255

/*
 * Items per Scan page. DynamoDB's own pages are 1 MB: parsed at once, one
 * such page of 10,000 services took the server's peak RSS from 36 to 66 MiB
 * (bench/dynamodb.py --scale). Pages of 1,000 items (about 300 KB) cost a
 * few more requests on a cold load and the same read units.
 * LAMBDA_REGISTRY_STORE_SCAN_LIMIT overrides it (0: DynamoDB's pages).
 */
#define DDB_SCAN_PAGE 1000

/*
 * Documents live in the DynamoDB table prefix + DDB_DOC_TABLE, keyed by
 * serviceName like a service table, under keys that start with DDB_DOC_MARK,
 * which no service name may contain: "#doc#KIND#KEY" for a document,
 * "#gen#KIND" for the kind's generation counter. Should a payload table be
 * called DDB_DOC_TABLE too, its services and the documents share the table
 * without meeting: load() passes over the reserved keys.
 */
#define DDB_DOC_TABLE "lambda-registry.documents"
#define DDB_DOC_MARK  '#'

/*
 * The head item of a service table, under a reserved key (DDB_DOC_MARK, so
 * load() passes over it): its `version` is the table's version. Every
 * writing call changes its services first and then moves the head from the
 * version it read to the next one, conditionally; a reader gets the head
 * (one strongly consistent GetItem) and scans only when it moved. A table
 * without a head (written by earlier releases only) has no version to
 * cache on: version() gives a number no other call gets (DDB_HEAD_NONE and
 * a counter) until the first write creates the head.
 */
#define DDB_HEAD_KEY  "#head"
#define DDB_HEAD_NONE (UINT64_C(1) << 63)

/* TransactWriteItems takes at most 100 actions; one is the head's. */
#define DDB_TRANSACT_MAX 100

/*
 * Whether the endpoint takes TransactWriteItems, for the process: unknown
 * until the first writing call tries; dynalite (and any endpoint without
 * it) answers UnknownOperationException, and the writes then go one by one.
 * LAMBDA_REGISTRY_STORE_TRANSACT=0 never tries.
 */
enum ddb_transact { DDB_TRANSACT_UNKNOWN, DDB_TRANSACT_YES, DDB_TRANSACT_NO };
static _Atomic int ddb_transact_state = DDB_TRANSACT_UNKNOWN;
static atomic_uint_fast64_t ddb_headless_seq;

/* The operations the trace line counts, by name. */
static const char *const ddb_op_names[] = {
	"GetItem",     "Scan",		"PutItem",
	"DeleteItem",  "UpdateItem",	"TransactWriteItems",
	"CreateTable", "DescribeTable", "ListTables",
};
#define DDB_NR_OPS (sizeof(ddb_op_names) / sizeof(*ddb_op_names))

/* A stored item that failed validation: not loaded, but known to put(). */
struct ddb_broken {
	char *name;
	uint64_t version;
};

struct ddb_store {
	struct store base; /* first: the contract casts between the two */
	struct aws_client *aws;
	char *prefix;
	long scan_limit; /* items per Scan page; 0: DynamoDB's own */
	int trace;
	/* The open call. */
	struct buf table; /* prefix + payload table */
	uint64_t deadline;
	unsigned long requests_at_begin;
	unsigned writes;  /* service writes of the call, made or pending */
	unsigned applied; /* made one by one and not yet published */
	uint64_t head;	  /* the head's version as read (0: none) */
	int head_read, head_absent, table_absent;
	int no_transact;  /* LAMBDA_REGISTRY_STORE_TRANSACT=0 */
	json_t *pending;  /* writes kept for one transaction, or NULL */
	json_t *canceled; /* CancellationReasons of a failed transaction */
	unsigned ops[DDB_NR_OPS]; /* requests of the call by operation */
	char last_type[128];	  /* error type of the last failed request */
	struct ddb_broken *broken;
	size_t nr_broken, alloc_broken;
};

static void ddb_forget_broken(struct ddb_store *d)
{
	size_t i;

	for (i = 0; i < d->nr_broken; i++)
		free(d->broken[i].name);
	d->nr_broken = 0;
}

static uint64_t ddb_deadline(const struct ddb_store *d)
{
	return clock_now_ms() + aws_client_config(d->aws)->timeout_ms;
}

/* The ms budget runs from begin(); outside a call each request gets its own. */
static uint64_t ddb_call_deadline(struct ddb_store *d)
{
	return d->deadline ? d->deadline : ddb_deadline(d);
}

/*
 * Send one request; the JSON `req` is consumed (stolen). The DynamoDB errors
 * the backend acts on are mapped: ConditionalCheckFailedException to
 * ST_CONFLICT, ResourceNotFoundException to ST_NOT_FOUND.
 */
static enum status ddb_request(struct ddb_store *d, const char *op, json_t *req,
			       json_t **answer, struct buf *err)
{
	struct aws_response res;
	char *body = json_dumps(req, JSON_COMPACT);
	enum status ret;
	size_t i;

	if (answer)
		*answer = NULL;
	if (!body)
		BUG("cannot serialise a %s request", op);
	for (i = 0; i < DDB_NR_OPS; i++)
		if (!strcmp(ddb_op_names[i], op))
			d->ops[i]++;
	aws_response_init(&res);
	ret = aws_dynamodb_request(d->aws, op, body, strlen(body),
				   ddb_call_deadline(d), &res, err);
	if (ret == ST_OK && answer) {
		*answer = json_loadb(res.body.buf, res.body.len, 0, NULL);
		if (!json_is_object(*answer)) {
			json_decref(*answer);
			*answer = NULL;
			buf_setf(err,
				 "dynamodb %s: the answer is not a JSON object",
				 op);
			ret = ST_UNAVAILABLE;
		}
	} else if (ret != ST_OK) {
		memcpy(d->last_type, res.type, sizeof(d->last_type));
		if (!strcmp(res.type, "TransactionCanceledException")) {
			json_t *all =
				json_loadb(res.body.buf, res.body.len, 0, NULL);

			json_decref(d->canceled);
			d->canceled = json_incref(
				json_object_get(all, "CancellationReasons"));
			json_decref(all);
		}
		if (!strcmp(res.type, "ConditionalCheckFailedException"))
			ret = ST_CONFLICT;
		else if (!strcmp(res.type, "ResourceNotFoundException"))
			ret = ST_NOT_FOUND;
	}
	aws_response_release(&res);
	free(body);
	json_decref(req);
	return ret;
}

/* ---- item <-> service ---------------------------------------------------- */

static void ddb_format_time(int64_t ms, struct buf *out)
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)secs * 1000);
	char text[64];
	struct tm tm;

	if (!gmtime_r(&secs, &tm) ||
	    !strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm))
		BUG("cannot format time %lld", (long long)ms);
	(void)buf_addf(out, "%s.%03dZ", text, frac);
}

static int ddb_digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n--) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (*(*p)++ - '0');
	}
	*out = v;
	return 0;
}

/*
 * ISO-8601 as the first version wrote it (JavaScript's toISOString(),
 * "2024-05-01T10:20:30.123Z"); fractions of any length and a numeric offset
 * are accepted, no zone means UTC.
 */
static int ddb_parse_time(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int year, mon, day, hour, min, sec, oh = 0, om = 0, frac = 0,
					    scale = 1000;
	int sign = 0;
	time_t secs;

	if (ddb_digits(&s, 4, &year) || *s++ != '-' ||
	    ddb_digits(&s, 2, &mon) || *s++ != '-' || ddb_digits(&s, 2, &day) ||
	    (*s != 'T' && *s != ' ') || !*s++ || ddb_digits(&s, 2, &hour) ||
	    *s++ != ':' || ddb_digits(&s, 2, &min) || *s++ != ':' ||
	    ddb_digits(&s, 2, &sec))
		return -1;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		for (; isdigit((unsigned char)*s); s++) {
			if (scale > 1) {
				scale /= 10;
				frac += (*s - '0') * scale;
			}
		}
	}
	if (*s == 'Z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (ddb_digits(&s, 2, &oh) || (*s == ':' && !*++s) ||
		    ddb_digits(&s, 2, &om))
			return -1;
	}
	if (*s || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	secs = timegm(&tm);
	secs -= sign * (oh * 3600 + om * 60);
	*ms = (int64_t)secs * 1000 + frac;
	return 0;
}

/* The string of attribute `name` of type `type` ("S", "N"); NULL if absent. */
static const char *ddb_attr(json_t *item, const char *name, const char *type)
{
	return json_string_value(
		json_object_get(json_object_get(item, name), type));
}

/* An attribute that is absent or DynamoDB NULL. */
static int ddb_attr_missing(json_t *item, const char *name)
{
	json_t *v = json_object_get(item, name);

	return !v || json_is_true(json_object_get(v, "NULL"));
}

static int ddb_parse_version(const char *s, uint64_t *version)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !v || v >= DDB_VERSION_UNKNOWN)
		return -1;
	*version = v;
	return 0;
}

static int ddb_parse_containers(json_t *item, struct service *svc,
				struct buf *why)
{
	struct buf ip = BUF_INIT, check = BUF_INIT;
	json_t *list, *entry;
	size_t i;
	int ret = -1;

	if (ddb_attr_missing(item, "containers"))
		return 0;
	list = json_object_get(json_object_get(item, "containers"), "L");
	if (!json_is_array(list)) {
		buf_setf(why, "containers is not a list");
		goto out;
	}
	json_array_foreach(list, i, entry)
	{
		json_t *m = json_object_get(entry, "M");
		const char *id = ddb_attr(m, "id", "S");
		const char *addr = ddb_attr(m, "ip", "S");

		if (!id || !addr) {
			buf_setf(why, "containers[%zu] has no id or ip string",
				 i);
			goto out;
		}
		buf_reset(&ip);
		if (payload_check_name(id, &check)) {
			buf_setf(why, "containers[%zu].id: %s", i, check.buf);
			goto out;
		}
		if (payload_check_ip(addr, &ip, &check)) {
			buf_setf(why, "containers[%zu].ip: %s", i, check.buf);
			goto out;
		}
		service_put_container(svc, id, ip.buf);
	}
	ret = 0;
out:
	buf_release(&ip);
	buf_release(&check);
	return ret;
}

/*
 * Turn a stored item into `svc`, validated like a payload and canonical, so
 * a hand-edited or damaged item cannot reach the config. -1 with the reason
 * in `why` (svc must then be released by the caller).
 */
static int ddb_parse_item(json_t *item, struct service *svc, struct buf *why)
{
	const char *name = ddb_attr(item, "serviceName", "S");
	const char *mode = ddb_attr(item, "configMode", "S");
	const char *port = ddb_attr(item, "port", "N");
	const char *predicate = ddb_attr(item, "predicate", "S");
	const char *cookie = ddb_attr(item, "cookie", "S");
	const char *created = ddb_attr(item, "createdAt", "S");
	const char *updated = ddb_attr(item, "updatedAt", "S");
	struct buf canon = BUF_INIT, check = BUF_INIT;
	int ret = -1;

	if (!name || payload_check_name(name, &check)) {
		buf_setf(why, "serviceName: %s", name ? check.buf : "missing");
		goto out;
	}
	svc->name = xstrdup(name);
	/* First, so that a damaged item is still replaced under its version. */
	if (ddb_attr_missing(item, "version")) {
		svc->version = DDB_VERSION_LEGACY;
	} else if (ddb_parse_version(ddb_attr(item, "version", "N"),
				     &svc->version)) {
		svc->version = DDB_VERSION_UNKNOWN;
		buf_setf(why, "version is not a positive number");
		goto out;
	}
	/* The first version could leave configMode out: host, the default. */
	if (ddb_attr_missing(item, "configMode"))
		mode = "host";
	if (!mode || config_mode_parse(mode, &svc->mode)) {
		buf_setf(why, "configMode is not \"host\" or \"path\"");
		goto out;
	}
	/* The first version kept a port sent as a string as a string. */
	if (!port)
		port = ddb_attr(item, "port", "S");
	if (!port || payload_check_port_string(port, &svc->port, &check)) {
		buf_setf(why, "port: %s", port ? check.buf : "missing");
		goto out;
	}
	if (!predicate ||
	    payload_check_predicate(svc->mode, predicate, &canon, &check)) {
		buf_setf(why, "predicate: %s",
			 predicate ? check.buf : "missing");
		goto out;
	}
	svc->predicate = buf_detach(&canon, NULL);
	if (!ddb_attr_missing(item, "cookie") && !(cookie && !*cookie)) {
		if (!cookie || payload_check_cookie(cookie, &check)) {
			buf_setf(why, "cookie: %s",
				 cookie ? check.buf : "not a string");
			goto out;
		}
		svc->cookie = xstrdup(cookie);
	}
	if (ddb_parse_containers(item, svc, why))
		goto out;
	/* Items of versions before the service options have none: defaults. */
	if (!ddb_attr_missing(item, "options")) {
		const char *options = ddb_attr(item, "options", "S");

		if (!options || payload_parse_options(svc, options, &check)) {
			buf_setf(why, "%s",
				 options ? check.buf : "options: not a string");
			goto out;
		}
	}
	/* Times are informational: one we cannot read is left unknown (0). */
	if (created && ddb_parse_time(created, &svc->created_at))
		svc->created_at = 0;
	if (updated && ddb_parse_time(updated, &svc->updated_at))
		svc->updated_at = 0;
	ret = 0;
out:
	buf_release(&canon);
	buf_release(&check);
	return ret;
}

static json_t *ddb_s(const char *s)
{
	return json_pack("{s:s}", "S", s); /* new reference */
}

static json_t *ddb_n(unsigned long long n)
{
	char text[32];

	snprintf(text, sizeof(text), "%llu", n);
	return json_pack("{s:s}", "N", text); /* new reference */
}

/* The item for `svc` at `version`; new reference. */
static json_t *ddb_item(const struct service *svc, uint64_t version)
{
	json_t *item = json_object(), *list = json_array();
	struct buf t = BUF_INIT;
	size_t i;

	json_object_set_new(item, "serviceName", ddb_s(svc->name));
	json_object_set_new(item, "configMode",
			    ddb_s(config_mode_name(svc->mode)));
	json_object_set_new(item, "port", ddb_n(svc->port));
	json_object_set_new(item, "predicate", ddb_s(svc->predicate));
	if (svc->cookie)
		json_object_set_new(item, "cookie", ddb_s(svc->cookie));
	for (i = 0; i < svc->nr_containers; i++)
		json_array_append_new(
			list, json_pack("{s:{s:o,s:o}}", "M", "id",
					ddb_s(svc->containers[i].id), "ip",
					ddb_s(svc->containers[i].ip)));
	json_object_set_new(item, "containers", json_pack("{s:o}", "L", list));
	/* Unlimited buffer: the options always fit. */
	if (!payload_options_json(svc, &t) && t.len)
		json_object_set_new(item, "options", ddb_s(t.buf));
	buf_reset(&t);
	ddb_format_time(svc->created_at, &t);
	json_object_set_new(item, "createdAt", ddb_s(t.buf));
	buf_reset(&t);
	ddb_format_time(svc->updated_at, &t);
	json_object_set_new(item, "updatedAt", ddb_s(t.buf));
	json_object_set_new(item, "version", ddb_n(version));
	buf_release(&t);
	return item;
}

/*
 * Add the condition that the stored item still has `version` to `req`:
 * 0 means it must not exist, DDB_VERSION_LEGACY that it exists without a
 * version (a first-version item), DDB_VERSION_UNKNOWN only that it exists.
 */
static void ddb_add_condition(json_t *req, uint64_t version)
{
	const char *cond;

	if (!version)
		cond = "attribute_not_exists(serviceName)";
	else if (version == DDB_VERSION_LEGACY)
		cond = "attribute_exists(serviceName) AND "
		       "attribute_not_exists(#v)";
	else if (version == DDB_VERSION_UNKNOWN)
		cond = "attribute_exists(serviceName)";
	else
		cond = "#v = :v";
	json_object_set_new(req, "ConditionExpression", json_string(cond));
	if (version == DDB_VERSION_LEGACY ||
	    (version && version < DDB_VERSION_UNKNOWN))
		json_object_set_new(req, "ExpressionAttributeNames",
				    json_pack("{s:s}", "#v", "version"));
	if (version && version < DDB_VERSION_UNKNOWN)
		json_object_set_new(req, "ExpressionAttributeValues",
				    json_pack("{s:o}", ":v", ddb_n(version)));
}

/* ---- table creation --------------------------------------------------- */

/* Create the call's table (PAY_PER_REQUEST) and wait until it is ACTIVE. */
static enum status ddb_create_table(struct ddb_store *d, struct buf *err)
{
	json_t *req, *answer = NULL;
	const char *status = "";
	uint64_t pause = 50;
	enum status ret;

	req = json_pack("{s:s,s:[{s:s,s:s}],s:[{s:s,s:s}],s:s}", "TableName",
			d->table.buf, "AttributeDefinitions", "AttributeName",
			"serviceName", "AttributeType", "S", "KeySchema",
			"AttributeName", "serviceName", "KeyType", "HASH",
			"BillingMode", "PAY_PER_REQUEST");
	ret = ddb_request(d, "CreateTable", req, NULL, err);
	/* Another instance may be creating it right now: then wait as well. */
	if (ret != ST_OK && strcmp(d->last_type, "ResourceInUseException"))
		goto out;
	buf_reset(err);
	for (;;) {
		req = json_pack("{s:s}", "TableName", d->table.buf);
		ret = ddb_request(d, "DescribeTable", req, &answer, err);
		if (ret == ST_NOT_FOUND) {
			buf_reset(err);
			ret = ST_OK; /* not visible yet */
		} else if (ret != ST_OK)
			goto out;
		status = json_string_value(json_object_get(
			json_object_get(answer, "Table"), "TableStatus"));
		if (status && !strcmp(status, "ACTIVE"))
			break;
		if (clock_now_ms() + pause >= ddb_call_deadline(d)) {
			buf_setf(err,
				 "dynamodb table '%s' is still being created "
				 "(%s); "
				 "retry the call",
				 d->table.buf,
				 status ? status : "not visible yet");
			ret = ST_UNAVAILABLE;
			goto out;
		}
		json_decref(answer);
		answer = NULL;
		clock_sleep_ms(pause);
		if (pause < 500)
			pause *= 2;
	}
	log_event("event=dynamodb_table_created table=%s", d->table.buf);
out:
	json_decref(answer);
	return ret;
}

/* ---- the contract ------------------------------------------------------ */

static enum status ddb_open(const char *arg, struct store **out,
			    struct buf *err)
{
	struct aws_config cfg;
	struct ddb_store *d;
	const char *p, *v;
	enum status ret;

	*out = NULL;
	for (p = arg; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' &&
		    *p != '.')
			break;
	if (*p || p - arg > DDB_TABLE_MAX - TABLE_NAME_MIN) {
		buf_setf(err,
			 "dynamodb: table prefix '%s' is not up to %d "
			 "characters of "
			 "A-Z a-z 0-9 _ - .",
			 arg, DDB_TABLE_MAX - TABLE_NAME_MIN);
		return ST_USAGE;
	}
	ret = aws_config_from_env(&cfg, err);
	if (ret != ST_OK) {
		struct buf msg = BUF_INIT;

		(void)buf_addf(&msg, "dynamodb: %s", err->buf);
		buf_setf(err, "%s", msg.buf);
		buf_release(&msg);
		return ret;
	}
	d = xcalloc(1, sizeof(*d));
	d->base.be = &store_dynamodb;
	d->aws = aws_client_new(&cfg);
	d->prefix = xstrdup(arg);
	buf_init(&d->table, DDB_TABLE_MAX + 1);
	v = getenv("LAMBDA_REGISTRY_STORE_TRACE");
	d->trace = v && *v && strcmp(v, "0");
	v = getenv("LAMBDA_REGISTRY_STORE_SCAN_LIMIT");
	d->scan_limit = v && *v ? strtol(v, NULL, 10) : DDB_SCAN_PAGE;
	v = getenv("LAMBDA_REGISTRY_STORE_TRANSACT");
	d->no_transact = v && !strcmp(v, "0");
	*out = &d->base;
	return ST_OK;
}

static void ddb_close(struct store *st)
{
	struct ddb_store *d = (struct ddb_store *)st;

	ddb_forget_broken(d);
	free(d->broken);
	json_decref(d->pending);
	json_decref(d->canceled);
	aws_client_free(d->aws);
	free(d->prefix);
	buf_release(&d->table);
	free(d);
}

static enum status ddb_begin(struct store *st, const char *table, int write,
			     struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;

	(void)write; /* nothing to lock: writes are conditional per item */
	ddb_forget_broken(d);
	buf_reset(&d->table);
	if (buf_addstr(&d->table, d->prefix) || buf_addstr(&d->table, table)) {
		buf_setf(err,
			 "dynamodb table name '%s%s' is longer than %d "
			 "characters",
			 d->prefix, table, DDB_TABLE_MAX);
		return ST_INVALID;
	}
	d->deadline = ddb_deadline(d);
	d->requests_at_begin = aws_client_requests(d->aws);
	memset(d->ops, 0, sizeof(d->ops));
	d->writes = d->applied = 0;
	d->head = 0;
	d->head_read = d->head_absent = d->table_absent = 0;
	json_decref(d->pending);
	d->pending = NULL;
	if (!d->no_transact &&
	    atomic_load(&ddb_transact_state) != DDB_TRANSACT_NO)
		d->pending = json_array();
	return ST_OK;
}

/* The Key of the call's head item; new reference. */
static json_t *ddb_head_key(void)
{
	return json_pack("{s:o}", "serviceName", ddb_s(DDB_HEAD_KEY));
}

/* Read the head (strongly consistent) into d->head, once per call. */
static enum status ddb_head_read(struct ddb_store *d, struct buf *err)
{
	json_t *req, *answer = NULL, *item;
	enum status ret;

	req = json_pack("{s:s,s:o,s:b}", "TableName", d->table.buf, "Key",
			ddb_head_key(), "ConsistentRead", 1);
	ret = ddb_request(d, "GetItem", req, &answer, err);
	if (ret == ST_NOT_FOUND) { /* no table yet: never written */
		buf_reset(err);
		d->table_absent = d->head_absent = d->head_read = 1;
		ret = ST_OK;
		goto out;
	}
	if (ret != ST_OK)
		goto out;
	item = json_object_get(answer, "Item");
	if (!json_is_object(item)) {
		d->head_absent = 1;
	} else if (ddb_parse_version(ddb_attr(item, "version", "N"),
				     &d->head) ||
		   d->head >= DDB_HEAD_NONE) {
		buf_setf(err,
			 "dynamodb: the head of table '%s' has no valid "
			 "version",
			 d->table.buf);
		ret = ST_UNAVAILABLE;
		goto out;
	}
	d->head_read = 1;
out:
	json_decref(answer);
	return ret;
}

/*
 * Before any write: the head's version, 0 for a table that does not exist,
 * a number of its own for a table with services but no head (nothing may
 * be cached on it). After a write: the version commit() moves the head to.
 */
static enum status ddb_version(struct store *st, uint64_t *version,
			       struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	enum status ret = ST_OK;

	if (!d->head_read)
		ret = ddb_head_read(d, err);
	if (ret != ST_OK)
		return ret;
	if (d->writes)
		*version = d->head + 1;
	else if (d->head_absent && !d->table_absent)
		*version = DDB_HEAD_NONE |
			   (atomic_fetch_add(&ddb_headless_seq, 1) + 1);
	else
		*version = d->head;
	return ST_OK;
}

static enum status ddb_load(struct store *st, struct service_list *out,
			    struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	struct buf why = BUF_INIT, quoted = BUF_INIT, name = BUF_INIT;
	json_t *answer = NULL, *start = NULL, *req, *items, *item;
	enum status ret = ST_OK;
	size_t first = out->nr, i;

	for (;;) {
		req = json_pack("{s:s,s:b}", "TableName", d->table.buf,
				"ConsistentRead", 1);
		if (d->scan_limit > 0)
			json_object_set_new(req, "Limit",
					    json_integer(d->scan_limit));
		if (start)
			json_object_set(req, "ExclusiveStartKey", start);
		ret = ddb_request(d, "Scan", req, &answer, err);
		if (ret == ST_NOT_FOUND) {
			/* A table not created yet holds nothing. */
			buf_reset(err);
			ret = ST_OK;
			break;
		}
		if (ret != ST_OK)
			break;
		items = json_object_get(answer, "Items");
		json_array_foreach(items, i, item)
		{
			const char *key = ddb_attr(item, "serviceName", "S");
			struct service *svc;

			/* A document's item (see DDB_DOC_TABLE), no service. */
			if (key && *key == DDB_DOC_MARK)
				continue;
			svc = service_list_append(out);

			buf_reset(&why);
			if (!ddb_parse_item(item, svc, &why))
				continue;
			/* Left out of the config, but put() may replace it. */
			buf_reset(&quoted);
			(void)buf_addquoted(&quoted, why.buf, why.len);
			buf_reset(&name);
			if (svc->name)
				(void)buf_addquoted(&name, svc->name,
						    strlen(svc->name));
			log_event("event=dynamodb_item_skipped table=%s "
				  "service=%s reason=%s",
				  d->table.buf, svc->name ? name.buf : "-",
				  quoted.buf);
			if (svc->name) {
				ALLOC_GROW(d->broken, d->nr_broken + 1,
					   d->alloc_broken);
				d->broken[d->nr_broken].name =
					xstrdup(svc->name);
				d->broken[d->nr_broken++].version =
					svc->version ? svc->version
						     : DDB_VERSION_UNKNOWN;
			}
			service_release(svc);
			out->nr--;
		}
		json_decref(start);
		start = json_incref(
			json_object_get(answer, "LastEvaluatedKey"));
		json_decref(answer);
		answer = NULL;
		if (!json_is_object(start) || !json_object_size(start))
			break;
	}
	if (ret == ST_OK) {
		service_list_sort(out);
	} else {
		while (out->nr > first)
			service_release(&out->items[--out->nr]);
	}
	json_decref(answer);
	json_decref(start);
	buf_release(&why);
	buf_release(&quoted);
	buf_release(&name);
#ifdef __GLIBC__
	/*
	 * The pages' JSON is freed, but glibc keeps it in the arena of the
	 * worker thread that scanned; the next cold load, on another worker,
	 * would add its own (44 MiB instead of 36 at 10,000 services). Loads
	 * are rare now that unchanged calls only read the head.
	 */
	malloc_trim(0);
#endif
	return ret;
}

/* The version a new service's write must find: that of a damaged item, or none.
 */
static uint64_t ddb_expected_version(struct ddb_store *d,
				     const struct service *svc)
{
	size_t i;

	if (svc->version)
		return svc->version;
	for (i = 0; i < d->nr_broken; i++)
		if (!strcmp(d->broken[i].name, svc->name))
			return d->broken[i].version;
	return 0;
}

static enum status ddb_conflict(const char *what, const char *name,
				struct ddb_store *d, struct buf *err)
{
	buf_setf(err,
		 "dynamodb: service '%s' in table '%s' changed since it was "
		 "loaded "
		 "(%s)",
		 name, d->table.buf, what);
	return ST_CONFLICT;
}

/*
 * Send one service write now: `req` (stolen) is a PutItem or DeleteItem
 * request with its condition; `expect` the version it requires (0: none).
 * A put creates the table when there is none; a delete on no table is done
 * when nothing was expected.
 */
static enum status ddb_send_write(struct ddb_store *d, const char *op,
				  json_t *req, const char *name,
				  uint64_t expect, struct buf *err)
{
	const int put = !strcmp(op, "PutItem");
	enum status ret;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		ret = ddb_request(d, op, json_incref(req), NULL, err);
		if (ret != ST_NOT_FOUND || tries || !put)
			break;
		buf_reset(err);
		ret = ddb_create_table(d, err);
		if (ret != ST_OK)
			break;
	}
	if (ret == ST_NOT_FOUND && !put) {
		buf_reset(err);
		ret = expect ? ST_CONFLICT : ST_OK;
	}
	if (ret == ST_CONFLICT)
		ret = ddb_conflict(put ? "put" : "delete", name, d, err);
	if (ret == ST_NOT_FOUND)
		ret = ST_UNAVAILABLE;
	if (ret == ST_OK)
		d->applied++;
	json_decref(req);
	return ret;
}

/* Send the writes kept for a transaction one by one, and keep no more. */
static enum status ddb_send_pending(struct ddb_store *d, struct buf *err)
{
	enum status ret = ST_OK;
	json_t *w;
	size_t i;

	json_array_foreach(d->pending, i, w)
	{
		json_int_t expect = json_integer_value(json_object_get(w, "e"));

		ret = ddb_send_write(
			d, json_string_value(json_object_get(w, "op")),
			json_incref(json_object_get(w, "req")),
			json_string_value(json_object_get(w, "name")),
			(uint64_t)expect, err);
		if (ret != ST_OK)
			break;
	}
	json_decref(d->pending);
	d->pending = NULL;
	return ret;
}

/*
 * A service write of the call (`req` stolen): kept for commit()'s
 * transaction while the endpoint may take one and it has room, else sent.
 */
static enum status ddb_write(struct ddb_store *d, const char *op, json_t *req,
			     const char *name, uint64_t expect, struct buf *err)
{
	enum status ret = ST_OK;

	if (d->pending && json_array_size(d->pending) + 1 >= DDB_TRANSACT_MAX)
		ret = ddb_send_pending(d, err);
	if (ret != ST_OK) {
		json_decref(req);
		return ret;
	}
	if (!d->pending)
		return ddb_send_write(d, op, req, name, expect, err);
	json_array_append_new(
		d->pending, json_pack("{s:s,s:o,s:s,s:I}", "op", op, "req", req,
				      "name", name, "e", (json_int_t)expect));
	return ST_OK;
}

static enum status ddb_put(struct store *st, struct service *svc,
			   struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	uint64_t expect = ddb_expected_version(d, svc);
	uint64_t next = expect && expect < DDB_VERSION_UNKNOWN ? expect + 1 : 1;
	int64_t now = (int64_t)time(NULL) * 1000;
	enum status ret;
	json_t *req;

	if (!svc->created_at)
		svc->created_at = now;
	if (!svc->updated_at)
		svc->updated_at = now;
	req = json_pack("{s:s,s:o}", "TableName", d->table.buf, "Item",
			ddb_item(svc, next));
	ddb_add_condition(req, expect);
	ret = ddb_write(d, "PutItem", req, svc->name, expect, err);
	if (ret == ST_OK) {
		svc->version = next;
		d->writes++;
	}
	return ret;
}

static enum status ddb_remove(struct store *st, const struct service *svc,
			      struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	uint64_t expect = ddb_expected_version(d, svc);
	enum status ret;
	json_t *req;

	req = json_pack("{s:s,s:{s:o}}", "TableName", d->table.buf, "Key",
			"serviceName", ddb_s(svc->name));
	ddb_add_condition(req, expect);
	ret = ddb_write(d, "DeleteItem", req, svc->name, expect, err);
	if (ret == ST_OK)
		d->writes++;
	return ret;
}

/*
 * The head's update, new reference. `exact`: from the version read to the
 * next one, only if it is still there (else ST_CONFLICT), or created at 1
 * if there was none. Otherwise one more whatever it is now, which publishes
 * writes already made when the exact move is not possible.
 */
static json_t *ddb_head_update(struct ddb_store *d, int exact)
{
	json_t *req = json_pack("{s:s,s:o,s:{s:s}}", "TableName", d->table.buf,
				"Key", ddb_head_key(),
				"ExpressionAttributeNames", "#v", "version");

	if (!exact) {
		json_object_set_new(req, "UpdateExpression",
				    json_string("ADD #v :one"));
		json_object_set_new(req, "ExpressionAttributeValues",
				    json_pack("{s:o}", ":one", ddb_n(1)));
		return req;
	}
	json_object_set_new(req, "UpdateExpression",
			    json_string("SET #v = :next"));
	if (d->head_absent) {
		json_object_set_new(
			req, "ConditionExpression",
			json_string("attribute_not_exists(serviceName)"));
		json_object_set_new(req, "ExpressionAttributeValues",
				    json_pack("{s:o}", ":next", ddb_n(1)));
	} else {
		json_object_set_new(req, "ConditionExpression",
				    json_string("#v = :v"));
		json_object_set_new(req, "ExpressionAttributeValues",
				    json_pack("{s:o,s:o}", ":next",
					      ddb_n(d->head + 1), ":v",
					      ddb_n(d->head)));
	}
	return req;
}

/* Send the head's update (see ddb_head_update); no table: nothing to do. */
static enum status ddb_head_bump(struct ddb_store *d, int exact,
				 struct buf *err)
{
	enum status ret;

	ret = ddb_request(d, "UpdateItem", ddb_head_update(d, exact), NULL,
			  err);
	if (ret == ST_NOT_FOUND) {
		buf_reset(err);
		ret = ST_OK;
	}
	if (ret == ST_CONFLICT)
		buf_setf(err,
			 "dynamodb: table '%s' changed while this call wrote "
			 "it (its head left version %llu)",
			 d->table.buf, (unsigned long long)d->head);
	return ret;
}

/*
 * Writes made one by one that no exact head move covers (a later write
 * failed, or another writer moved the head first) are published by moving
 * the head once more, so that no process keeps a cache without them.
 */
static void ddb_publish(struct ddb_store *d)
{
	struct buf why = BUF_INIT, quoted = BUF_INIT;

	if (!d->applied)
		return;
	d->deadline = ddb_deadline(d); /* a fresh budget: this one matters */
	if (ddb_head_bump(d, 0, &why) != ST_OK) {
		(void)buf_addquoted(&quoted, why.buf, why.len);
		log_event("event=dynamodb_head_not_moved table=%s reason=%s",
			  d->table.buf, quoted.buf);
	}
	d->applied = 0;
	buf_release(&why);
	buf_release(&quoted);
}

/* A canceled transaction: ST_CONFLICT when a condition failed (or another
 * transaction held an item), the reasons in `err` either way. */
static enum status ddb_canceled(struct ddb_store *d, struct buf *err)
{
	size_t i, nr = json_array_size(d->pending);
	json_t *reason;

	json_array_foreach(d->canceled, i, reason)
	{
		const char *code =
			json_string_value(json_object_get(reason, "Code"));

		if (!code || !strcmp(code, "None"))
			continue;
		if (strcmp(code, "ConditionalCheckFailed") &&
		    strcmp(code, "TransactionConflict")) {
			buf_setf(err,
				 "dynamodb: transaction on table '%s' "
				 "canceled (%s)",
				 d->table.buf, code);
			return ST_UNAVAILABLE;
		}
		if (i >= nr) {
			buf_setf(err,
				 "dynamodb: table '%s' changed while this "
				 "call wrote it (its head left version %llu)",
				 d->table.buf, (unsigned long long)d->head);
			return ST_CONFLICT;
		}
		return ddb_conflict(
			"transaction",
			json_string_value(json_object_get(
				json_array_get(d->pending, i), "name")),
			d, err);
	}
	buf_setf(err, "dynamodb: transaction on table '%s' canceled",
		 d->table.buf);
	return ST_CONFLICT;
}

/*
 * The kept writes and the head's exact move as one TransactWriteItems:
 * all of them or none. *unsupported when the endpoint has no such
 * operation (then nothing was written, and the process stops trying).
 */
static enum status ddb_transact(struct ddb_store *d, int *unsupported,
				struct buf *err)
{
	json_t *items = json_array(), *w, *req;
	enum status ret = ST_OK;
	size_t i;
	int tries;

	*unsupported = 0;
	json_array_foreach(d->pending, i, w)
	{
		const char *op = json_string_value(json_object_get(w, "op"));

		json_array_append_new(
			items,
			json_pack("{s:O}",
				  strcmp(op, "PutItem") ? "Delete" : "Put",
				  json_object_get(w, "req")));
	}
	json_array_append_new(
		items, json_pack("{s:o}", "Update", ddb_head_update(d, 1)));
	req = json_pack("{s:o}", "TransactItems", items);
	for (tries = 0; tries < 2; tries++) {
		ret = ddb_request(d, "TransactWriteItems", json_incref(req),
				  NULL, err);
		if (ret != ST_NOT_FOUND || tries)
			break;
		buf_reset(err);
		ret = ddb_create_table(d, err);
		if (ret != ST_OK)
			break;
	}
	if (ret == ST_OK) {
		atomic_store(&ddb_transact_state, DDB_TRANSACT_YES);
	} else if (!strcmp(d->last_type, "UnknownOperationException")) {
		if (atomic_exchange(&ddb_transact_state, DDB_TRANSACT_NO) !=
		    DDB_TRANSACT_NO)
			log_event("event=dynamodb_no_transactions table=%s",
				  d->table.buf);
		buf_reset(err);
		*unsupported = 1;
		ret = ST_OK;
	} else if (!strcmp(d->last_type, "TransactionCanceledException")) {
		ret = ddb_canceled(d, err);
	} else if (ret == ST_NOT_FOUND) {
		ret = ST_UNAVAILABLE;
	}
	json_decref(req);
	return ret;
}

static void ddb_end(struct ddb_store *d, const char *how)
{
	struct buf ops = BUF_INIT;
	size_t i;

	if (d->trace) {
		for (i = 0; i < DDB_NR_OPS; i++)
			if (d->ops[i])
				(void)buf_addf(&ops, "%s%s:%u",
					       ops.len ? "," : "",
					       ddb_op_names[i], d->ops[i]);
		log_event("event=dynamodb_call end=%s table=%s requests=%lu "
			  "writes=%u ops=%s",
			  how, d->table.buf,
			  aws_client_requests(d->aws) - d->requests_at_begin,
			  d->writes, ops.len ? ops.buf : "-");
	}
	buf_release(&ops);
	d->deadline = 0;
	json_decref(d->pending);
	d->pending = NULL;
	json_decref(d->canceled);
	d->canceled = NULL;
	ddb_forget_broken(d);
}

/*
 * Publish the call's writes: the kept ones and the head's exact move in one
 * transaction where the endpoint has it; else (or for writes already sent)
 * the head's exact move after them. ST_CONFLICT when another writer moved
 * the head since it was read: the transaction then wrote nothing; writes
 * made one by one stay and the head moves once more over them (the call's
 * retry finds them stored), so no cache can miss them.
 *
 * The invariant the registry's cache relies on: every service write is
 * followed by a move of the head (this exact one, or ddb_publish()'s), and
 * a reader reads the head before it scans (both strongly consistent). So a
 * reader that cached a scan at version V scanned after V was set, and its
 * scan holds every write that any move up to V followed; a write it missed
 * is followed by a later move, and the reader's next GetItem sees the head
 * past V. The version cached after a write, V + 1, is exact because the
 * move is conditional on V: had another writer moved the head in between,
 * this commit fails and nothing is cached.
 */
static enum status ddb_commit(struct store *st, struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	enum status ret = ST_OK;
	int unsupported = 0;

	if (!d->writes)
		goto out;
	if (!d->head_read) {
		ret = ddb_head_read(d, err);
		if (ret != ST_OK)
			goto out;
	}
	if (d->pending && json_array_size(d->pending)) {
		ret = ddb_transact(d, &unsupported, err);
		if (!unsupported)
			goto out;
		ret = ddb_send_pending(d, err);
		if (ret != ST_OK)
			goto out;
	}
	ret = ddb_head_bump(d, 1, err);
	if (ret == ST_OK)
		d->applied = 0;
out:
	ddb_publish(d);
	ddb_end(d, ret == ST_OK ? "commit" : "failed");
	return ret;
}

/* Writes already made stay, published by a head move; the registry's next
 * call converges from them. Kept writes are dropped. */
static void ddb_rollback(struct store *st)
{
	struct ddb_store *d = (struct ddb_store *)st;

	ddb_publish(d);
	ddb_end(d, "rollback");
}

static enum status ddb_ping(struct store *st, struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	uint64_t saved = d->deadline;
	enum status ret;

	d->deadline = ddb_deadline(d);
	ret = ddb_request(d, "ListTables", json_pack("{s:i}", "Limit", 1), NULL,
			  err);
	d->deadline = saved;
	return ret;
}

/* ---- documents ---------------------------------------------------------- */

/* Point the handle at the documents' table for one document call. */
static enum status ddb_doc_begin(struct ddb_store *d, const char *kind,
				 struct buf *err)
{
	if (!*kind || strchr(kind, DDB_DOC_MARK))
		BUG("dynamodb: document kind '%s'", kind);
	buf_reset(&d->table);
	if (buf_addstr(&d->table, d->prefix) ||
	    buf_addstr(&d->table, DDB_DOC_TABLE)) {
		buf_setf(err,
			 "dynamodb table name '%s%s' is longer than %d "
			 "characters",
			 d->prefix, DDB_DOC_TABLE, DDB_TABLE_MAX);
		return ST_INVALID;
	}
	d->deadline = ddb_deadline(d);
	return ST_OK;
}

static void ddb_doc_end(struct ddb_store *d)
{
	d->deadline = 0;
}

/* The Key of a document (key != NULL) or of the kind's counter; new ref. */
static json_t *ddb_doc_key(const char *kind, const char *key)
{
	struct buf k = BUF_INIT;
	json_t *ret;

	if (key)
		(void)buf_addf(&k, "%cdoc%c%s%c%s", DDB_DOC_MARK, DDB_DOC_MARK,
			       kind, DDB_DOC_MARK, key);
	else
		(void)buf_addf(&k, "%cgen%c%s", DDB_DOC_MARK, DDB_DOC_MARK,
			       kind);
	ret = json_pack("{s:o}", "serviceName", ddb_s(k.buf));
	buf_release(&k);
	return ret;
}

/*
 * A write request on the documents' table, creating the table when it does
 * not exist yet; `req` is stolen.
 */
static enum status ddb_doc_write(struct ddb_store *d, const char *op,
				 json_t *req, json_t **answer, struct buf *err)
{
	enum status ret;

	json_incref(req);
	ret = ddb_request(d, op, req, answer, err);
	if (ret == ST_NOT_FOUND) {
		buf_reset(err);
		ret = ddb_create_table(d, err);
		if (ret == ST_OK)
			ret = ddb_request(d, op, json_incref(req), answer, err);
		if (ret == ST_NOT_FOUND)
			ret = ST_UNAVAILABLE;
	}
	json_decref(req);
	return ret;
}

/* Add one to the kind's generation (an atomic counter); the new value out. */
static enum status ddb_doc_bump(struct ddb_store *d, const char *kind,
				uint64_t *gen, struct buf *err)
{
	json_t *req, *answer = NULL;
	enum status ret;

	req = json_pack("{s:s,s:o,s:s,s:{s:o},s:s}", "TableName", d->table.buf,
			"Key", ddb_doc_key(kind, NULL), "UpdateExpression",
			"ADD generation :one", "ExpressionAttributeValues",
			":one", ddb_n(1), "ReturnValues", "UPDATED_NEW");
	ret = ddb_doc_write(d, "UpdateItem", req, &answer, err);
	if (ret == ST_OK &&
	    ddb_parse_version(ddb_attr(json_object_get(answer, "Attributes"),
				       "generation", "N"),
			      gen)) {
		buf_setf(err,
			 "dynamodb: the generation of '%s' is not a "
			 "positive number",
			 kind);
		ret = ST_UNAVAILABLE;
	}
	json_decref(answer);
	return ret;
}

/* A consistent GetItem of `key`; *item is NULL when there is none. */
static enum status ddb_doc_read(struct ddb_store *d, json_t *key,
				json_t **answer, json_t **item, struct buf *err)
{
	json_t *req = json_pack("{s:s,s:o,s:b}", "TableName", d->table.buf,
				"Key", key, "ConsistentRead", 1);
	enum status ret = ddb_request(d, "GetItem", req, answer, err);

	*item = NULL;
	if (ret == ST_NOT_FOUND) { /* no table yet: nothing stored */
		buf_reset(err);
		ret = ST_OK;
	}
	if (ret == ST_OK && *answer) {
		*item = json_object_get(*answer, "Item");
		if (!json_is_object(*item))
			*item = NULL;
	}
	return ret;
}

/* Fill `doc` from a document's item; -1 when the item is damaged. */
static int ddb_doc_parse(json_t *item, struct store_doc *doc)
{
	const char *key = ddb_attr(item, "docKey", "S");
	const char *value = ddb_attr(item, "value", "S");
	const char *updated = ddb_attr(item, "updatedAt", "N");

	if (!key || !value ||
	    ddb_parse_version(ddb_attr(item, "version", "N"), &doc->version))
		return -1;
	doc->key = xstrdup(key);
	doc->value = xstrdup(value);
	doc->updated_at = updated ? strtoll(updated, NULL, 10) : 0;
	return 0;
}

static enum status ddb_doc_get(struct store *st, const char *kind,
			       const char *key, struct store_doc *out,
			       struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	json_t *answer = NULL, *item;
	enum status ret;

	memset(out, 0, sizeof(*out));
	ret = ddb_doc_begin(d, kind, err);
	if (ret != ST_OK)
		return ret;
	ret = ddb_doc_read(d, ddb_doc_key(kind, key), &answer, &item, err);
	if (ret == ST_OK && !item)
		ret = ST_NOT_FOUND;
	if (ret == ST_OK && ddb_doc_parse(item, out)) {
		buf_setf(err, "dynamodb: damaged document '%s/%s'", kind, key);
		ret = ST_UNAVAILABLE;
	}
	json_decref(answer);
	ddb_doc_end(d);
	return ret;
}

/*
 * Three requests. First the generation is bumped: the new value is this
 * put's own (no other put gets it), and becomes the document's version. Then
 * the conditional PutItem. Then the generation is bumped once more, after the
 * document is visible: a process that read the generation and then the
 * documents while this put was between its first two requests cached a view
 * without it, and this last bump is what tells it so. Two unconditional puts
 * of one key are ordered by their versions: the one with the lower version
 * finds a higher one stored and leaves it, as if it had come first.
 */
static enum status ddb_doc_put(struct store *st, const char *kind,
			       const char *key, const char *value,
			       uint64_t expect, uint64_t *version,
			       struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	uint64_t gen = 0, after;
	json_t *req, *item;
	const char *cond;
	enum status ret;

	ret = ddb_doc_begin(d, kind, err);
	if (ret != ST_OK)
		return ret;
	ret = ddb_doc_bump(d, kind, &gen, err);
	if (ret != ST_OK)
		goto out;
	item = ddb_doc_key(kind, key);
	json_object_set_new(item, "docKind", ddb_s(kind));
	json_object_set_new(item, "docKey", ddb_s(key));
	json_object_set_new(item, "value", ddb_s(value));
	json_object_set_new(item, "version", ddb_n(gen));
	json_object_set_new(item, "updatedAt", ddb_n(clock_real_ms()));
	req = json_pack("{s:s,s:o,s:{s:s}}", "TableName", d->table.buf, "Item",
			item, "ExpressionAttributeNames", "#v", "version");
	if (expect == STORE_DOC_ANY)
		cond = "attribute_not_exists(#v) OR #v < :v";
	else if (!expect)
		cond = "attribute_not_exists(#v)";
	else
		cond = "#v = :v";
	json_object_set_new(req, "ConditionExpression", json_string(cond));
	if (expect)
		json_object_set_new(
			req, "ExpressionAttributeValues",
			json_pack(
				"{s:o}", ":v",
				ddb_n(expect == STORE_DOC_ANY ? gen : expect)));
	ret = ddb_doc_write(d, "PutItem", req, NULL, err);
	if (ret == ST_CONFLICT && expect == STORE_DOC_ANY) {
		buf_reset(err);
		ret = ST_OK; /* a later put won; see above */
	} else if (ret == ST_CONFLICT) {
		buf_setf(err,
			 "dynamodb: document '%s/%s' is not at version %llu",
			 kind, key, (unsigned long long)expect);
	}
	if (ret == ST_OK)
		ret = ddb_doc_bump(d, kind, &after, err);
	if (ret == ST_OK && version)
		*version = gen;
out:
	ddb_doc_end(d);
	return ret;
}

/* A conditional delete, then the bump that publishes it (see doc_put). */
static enum status ddb_doc_delete(struct store *st, const char *kind,
				  const char *key, struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	uint64_t gen;
	enum status ret;
	json_t *req;

	ret = ddb_doc_begin(d, kind, err);
	if (ret != ST_OK)
		return ret;
	req = json_pack("{s:s,s:o,s:s}", "TableName", d->table.buf, "Key",
			ddb_doc_key(kind, key), "ConditionExpression",
			"attribute_exists(serviceName)");
	ret = ddb_request(d, "DeleteItem", req, NULL, err);
	if (ret == ST_CONFLICT || ret == ST_NOT_FOUND) {
		buf_setf(err, "dynamodb: no document '%s/%s'", kind, key);
		ret = ST_NOT_FOUND;
	}
	if (ret == ST_OK)
		ret = ddb_doc_bump(d, kind, &gen, err);
	ddb_doc_end(d);
	return ret;
}

static int ddb_doc_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_doc *)a)->key,
		      ((const struct store_doc *)b)->key);
}

/*
 * A Scan filtered on the kind: documents are few (tokens, settings, agents),
 * and a Scan needs no index beyond the table's key. Sorted and paged here.
 */
static enum status ddb_doc_list(struct store *st, const char *kind,
				const char *after, size_t limit,
				struct store_doc_list *out, struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	struct store_doc_list all;
	json_t *answer = NULL, *start = NULL, *req, *items, *item;
	enum status ret;
	size_t i, taken = 0;

	store_doc_list_init(&all);
	ret = ddb_doc_begin(d, kind, err);
	if (ret != ST_OK)
		return ret;
	for (;;) {
		req = json_pack("{s:s,s:b,s:s,s:{s:o}}", "TableName",
				d->table.buf, "ConsistentRead", 1,
				"FilterExpression", "docKind = :k",
				"ExpressionAttributeValues", ":k", ddb_s(kind));
		if (d->scan_limit > 0)
			json_object_set_new(req, "Limit",
					    json_integer(d->scan_limit));
		if (start)
			json_object_set(req, "ExclusiveStartKey", start);
		ret = ddb_request(d, "Scan", req, &answer, err);
		if (ret == ST_NOT_FOUND) {
			buf_reset(err);
			ret = ST_OK;
			break;
		}
		if (ret != ST_OK)
			break;
		items = json_object_get(answer, "Items");
		json_array_foreach(items, i, item)
		{
			struct store_doc *doc = store_doc_list_append(&all);

			if (ddb_doc_parse(item, doc) ||
			    strcmp(doc->key, after ? after : "") <= 0) {
				store_doc_release(doc);
				all.nr--;
			}
		}
		json_decref(start);
		start = json_incref(
			json_object_get(answer, "LastEvaluatedKey"));
		json_decref(answer);
		answer = NULL;
		if (!json_is_object(start) || !json_object_size(start))
			break;
	}
	if (ret == ST_OK && all.nr) {
		qsort(all.items, all.nr, sizeof(*all.items), ddb_doc_cmp);
		for (i = 0; i < all.nr && taken < limit; i++, taken++) {
			*store_doc_list_append(out) = all.items[i];
			memset(&all.items[i], 0, sizeof(all.items[i]));
		}
	}
	store_doc_list_release(&all);
	json_decref(answer);
	json_decref(start);
	ddb_doc_end(d);
	return ret;
}

static enum status ddb_doc_generation(struct store *st, const char *kind,
				      uint64_t *generation, struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	json_t *answer = NULL, *item;
	enum status ret;

	*generation = 0;
	ret = ddb_doc_begin(d, kind, err);
	if (ret != ST_OK)
		return ret;
	ret = ddb_doc_read(d, ddb_doc_key(kind, NULL), &answer, &item, err);
	if (ret == ST_OK && item &&
	    ddb_parse_version(ddb_attr(item, "generation", "N"), generation)) {
		buf_setf(err,
			 "dynamodb: the generation of '%s' is not a "
			 "positive number",
			 kind);
		ret = ST_UNAVAILABLE;
	}
	json_decref(answer);
	ddb_doc_end(d);
	return ret;
}

static int ddb_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every DynamoDB table under the prefix that holds a payload table (created
 * by its first write), sorted here: ListTables' order is DynamoDB's. */
static enum status ddb_table_list(struct store *st, const char *after,
				  size_t limit, struct store_name_list *out,
				  struct buf *err)
{
	struct ddb_store *d = (struct ddb_store *)st;
	struct store_name_list all;
	struct buf why = BUF_INIT;
	json_t *answer = NULL, *names, *name, *req;
	char *start = NULL;
	size_t plen = strlen(d->prefix), i;
	enum status ret;

	store_name_list_init(&all);
	d->deadline = ddb_deadline(d);
	for (;;) {
		const char *last;

		req = json_object();
		if (start)
			json_object_set_new(req, "ExclusiveStartTableName",
					    json_string(start));
		ret = ddb_request(d, "ListTables", req, &answer, err);
		if (ret != ST_OK)
			break;
		names = json_object_get(answer, "TableNames");
		json_array_foreach(names, i, name)
		{
			const char *n = json_string_value(name);

			if (!n || strncmp(n, d->prefix, plen) ||
			    !strcmp(n + plen, DDB_DOC_TABLE) ||
			    payload_check_table(n + plen, &why))
				continue;
			store_name_list_add(&all, n + plen, strlen(n + plen));
		}
		last = json_string_value(
			json_object_get(answer, "LastEvaluatedTableName"));
		free(start);
		start = last ? xstrdup(last) : NULL;
		json_decref(answer);
		answer = NULL;
		if (!start)
			break;
	}
	if (ret == ST_OK && all.nr)
		qsort(all.items, all.nr, sizeof(*all.items), ddb_name_cmp);
	for (i = 0; ret == ST_OK && i < all.nr && limit; i++) {
		if (strcmp(all.items[i], after) <= 0)
			continue;
		store_name_list_add(out, all.items[i], strlen(all.items[i]));
		limit--;
	}
	d->deadline = 0;
	free(start);
	store_name_list_release(&all);
	buf_release(&why);
	return ret;
}

const struct store_backend store_dynamodb = {
	.name = "dynamodb",
	.caps = STORE_CAP_VERSION,
	.open = ddb_open,
	.close = ddb_close,
	.begin = ddb_begin,
	.version = ddb_version,
	.load = ddb_load,
	.put = ddb_put,
	.remove = ddb_remove,
	.commit = ddb_commit,
	.rollback = ddb_rollback,
	.ping = ddb_ping,
	.doc_get = ddb_doc_get,
	.doc_put = ddb_doc_put,
	.doc_delete = ddb_doc_delete,
	.doc_list = ddb_doc_list,
	.doc_generation = ddb_doc_generation,
	.table_list = ddb_table_list,
};
