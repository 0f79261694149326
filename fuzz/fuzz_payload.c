/*
 * libFuzzer harness: payload parsing and validation. The shape parser and
 * jansson give the same result; accepted values are single tokens, canonical
 * and round-trip; every error message is printable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "payload.h"
#include "xalloc.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_printable(const char *what, const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++)
		if ((unsigned char)b->buf[i] < 0x20 ||
		    (unsigned char)b->buf[i] >= 0x7f)
			check_fail("%s has byte 0x%02x: %s", what,
				   (unsigned char)b->buf[i], b->buf);
}

/* Canonical values pass their validator again unchanged. */
static void fuzz_check_fixed_points(const struct payload *p)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	size_t i, j;

	if (payload_check_table(p->table, &err))
		check_fail("table '%s' fails again: %s", p->table, err.buf);
	for (i = 0; i < p->nr_running; i++) {
		if (payload_check_ip(p->running[i].ip, &out, &err) ||
		    strcmp(out.buf, p->running[i].ip))
			check_fail("ip '%s' is not canonical",
				   p->running[i].ip);
	}
	for (i = 0; i < p->candidates.nr; i++) {
		const struct service *svc = &p->candidates.items[i];

		if (payload_check_predicate(svc->mode, svc->predicate, &out,
					    &err) ||
		    strcmp(out.buf, svc->predicate))
			check_fail("predicate '%s' is not canonical",
				   svc->predicate);
		if (svc->cookie && payload_check_cookie(svc->cookie, &err))
			check_fail("cookie '%s' fails again", svc->cookie);
		for (j = 0; j < svc->nr_containers; j++)
			if (payload_check_ip(svc->containers[j].ip, &out,
					     &err) ||
			    strcmp(out.buf, svc->containers[j].ip))
				check_fail("ip '%s' is not canonical",
					   svc->containers[j].ip);
	}
	buf_release(&out);
	buf_release(&err);
}

/* The candidates as JSON parse back into the same services. */
static void fuzz_check_round_trip(const struct payload *p)
{
	struct buf doc = BUF_INIT, err = BUF_INIT, field = BUF_INIT;
	struct payload back;
	size_t i;

	(void)buf_addstr(&doc, "{\"table\":");
	(void)buf_addjson(&doc, p->table, strlen(p->table));
	(void)buf_addstr(&doc, ",\"running\":[],\"candidates\":");
	payload_services_json(&p->candidates, 0, &doc);
	(void)buf_addch(&doc, '}');
	if (payload_parse(&back, doc.buf, doc.len, &err, &field) != ST_OK)
		check_fail("round trip refused at %s: %s\n%s", field.buf,
			   err.buf, doc.buf);
	if (back.candidates.nr != p->candidates.nr)
		check_fail("round trip lost candidates");
	for (i = 0; i < back.candidates.nr; i++)
		if (!service_equal(&back.candidates.items[i],
				   &p->candidates.items[i]))
			check_fail("round trip changed candidate %zu", i);
	payload_release(&back);
	buf_release(&doc);
	buf_release(&err);
	buf_release(&field);
}

/* The table the harness addresses its payload_parse_table() calls to: the
 * one of the seeds. */
#define FUZZ_TABLE "astro"

static int fuzz_str_equal(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static int fuzz_service_equal(const struct service *a, const struct service *b)
{
	size_t i;

	if (!fuzz_str_equal(a->name, b->name) || a->port != b->port ||
	    a->mode != b->mode || !fuzz_str_equal(a->predicate, b->predicate) ||
	    !fuzz_str_equal(a->cookie, b->cookie) ||
	    !service_options_equal(&a->opts, &b->opts) ||
	    a->nr_containers != b->nr_containers ||
	    a->created_at != b->created_at || a->updated_at != b->updated_at ||
	    a->version != b->version)
		return 0;
	for (i = 0; i < a->nr_containers; i++)
		if (!fuzz_str_equal(a->containers[i].id, b->containers[i].id) ||
		    !fuzz_str_equal(a->containers[i].ip, b->containers[i].ip) ||
		    a->containers[i].weight != b->containers[i].weight)
			return 0;
	return 1;
}

/*
 * A candidate parsed in place (`svc`, parsed again) is never to
 * payload_candidate_is() a service that differs from it in a setting, an
 * option or a container.
 */
static void fuzz_check_candidate_is(struct payload *p, size_t i,
				    const struct service *svc)
{
	struct service other;

	service_copy(&other, svc);
	other.opts.maxconn = other.opts.maxconn + 1;
	if (payload_candidate_is(p, i, &other))
		check_fail("candidate %zu is a service with options", i);
	other.opts.maxconn = svc->opts.maxconn;
	other.port = other.port % 65535 + 1;
	if (payload_candidate_is(p, i, &other))
		check_fail("candidate %zu is a service on another port", i);
	other.port = svc->port;
	if (other.nr_containers) {
		other.containers[0].weight = 1;
		if (payload_candidate_is(p, i, &other))
			check_fail("candidate %zu is a service with a weight",
				   i);
		other.containers[0].weight = svc->containers[0].weight;
		other.nr_containers--; /* released with its strings below */
		if (payload_candidate_is(p, i, &other))
			check_fail("candidate %zu is a service with fewer "
				   "containers",
				   i);
		other.nr_containers++;
	}
	free(other.predicate);
	other.predicate = xstrdup("~");
	if (payload_candidate_is(p, i, &other))
		check_fail("candidate %zu is a service of another predicate",
			   i);
	service_release(&other);
}

/* Which part of two payloads differs, or NULL when they are the same;
 * either may have been parsed in place (its candidates are parsed again). */
static const char *fuzz_payload_diff(struct payload *a, struct payload *b)
{
	struct service sa, sb;
	const char *diff = NULL;
	size_t i;

	if (!fuzz_str_equal(a->table, b->table))
		return "table";
	if (a->nr_running != b->nr_running)
		return "number of running";
	for (i = 0; i < a->nr_running; i++)
		if (!fuzz_str_equal(a->running[i].service,
				    b->running[i].service) ||
		    !fuzz_str_equal(a->running[i].id, b->running[i].id) ||
		    !fuzz_str_equal(a->running[i].ip, b->running[i].ip))
			return "running";
	if (payload_nr_candidates(a) != payload_nr_candidates(b))
		return "number of candidates";
	memset(&sa, 0, sizeof(sa));
	memset(&sb, 0, sizeof(sb));
	for (i = 0; !diff && i < payload_nr_candidates(a); i++) {
		const struct service *x = payload_candidate(a, i, &sa),
				     *y = payload_candidate(b, i, &sb);

		if (strcmp(payload_candidate_name(a, i), x->name) ||
		    strcmp(payload_candidate_name(b, i), y->name) ||
		    !fuzz_service_equal(x, y))
			diff = "candidates";
		else if (a->in_place)
			fuzz_check_candidate_is(a, i, x);
	}
	service_release(&sa);
	service_release(&sb);
	return diff;
}

/* One input, one parse: status, message, field and payload. */
struct fuzz_parse {
	enum status st;
	struct payload p;
	struct buf err, field;
};

static void fuzz_parse_init(struct fuzz_parse *r)
{
	r->st = ST_INVALID;
	payload_init(&r->p);
	buf_init(&r->err, 0);
	buf_init(&r->field, 0);
}

static void fuzz_parse_release(struct fuzz_parse *r)
{
	payload_release(&r->p);
	buf_release(&r->err);
	buf_release(&r->field);
}

/* `a` (with the shape parser) and `b` (jansson only) must agree. */
static void fuzz_check_same(const char *what, struct fuzz_parse *a,
			    struct fuzz_parse *b)
{
	const char *diff;

	if (a->st != b->st)
		check_fail("%s: status %d with the shape parser, %d without "
			   "(%s: %s)",
			   what, (int)a->st, (int)b->st,
			   a->st == ST_OK ? b->field.buf : a->field.buf,
			   a->st == ST_OK ? b->err.buf : a->err.buf);
	if (strcmp(a->err.buf, b->err.buf) ||
	    strcmp(a->field.buf, b->field.buf))
		check_fail("%s: error '%s: %s' with the shape parser, '%s: %s' "
			   "without",
			   what, a->field.buf, a->err.buf, b->field.buf,
			   b->err.buf);
	if (a->st == ST_OK && (diff = fuzz_payload_diff(&a->p, &b->p)))
		check_fail("%s: %s differs between the parsers", what, diff);
}

/* What every accepted payload promises, and every refusal. */
static void fuzz_check_result(const uint8_t *data, size_t size,
			      const struct fuzz_parse *r)
{
	if (r->st == ST_OK) {
		if (check_strict_json((const char *)data, size))
			check_fail("accepted text that is not RFC 8259 JSON");
		check_payload_tokens(&r->p);
		fuzz_check_fixed_points(&r->p);
		fuzz_check_round_trip(&r->p);
	} else {
		if (!r->err.len)
			check_fail("rejected without a message");
		fuzz_check_printable("error", &r->err);
		fuzz_check_printable("field", &r->field);
	}
}

/* In place, on a copy it may write: what `full` (jansson, addressed to
 * FUZZ_TABLE) gave, and the copy as it was once failed or released. */
static void fuzz_check_in_place(const uint8_t *data, size_t size,
				struct fuzz_parse *full)
{
	struct fuzz_parse r;
	char *copy = xmalloc(size + 1);

	if (size)
		memcpy(copy, data, size);
	fuzz_parse_init(&r);
	r.st = payload_parse_table_in_place(&r.p, FUZZ_TABLE, copy, size,
					    &r.err, &r.field);
	fuzz_check_same("payload_parse_table_in_place", &r, full);
	if (r.st != ST_OK && size && memcmp(copy, data, size))
		check_fail("a failed parse in place changed the body");
	fuzz_parse_release(&r);
	if (size && memcmp(copy, data, size))
		check_fail("the body differs once the payload parsed in place "
			   "is released");
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	struct fuzz_parse fast, full, tfast, tfull;

	fuzz_parse_init(&fast);
	fuzz_parse_init(&full);
	fuzz_parse_init(&tfast);
	fuzz_parse_init(&tfull);
	fast.st = payload_parse(&fast.p, json, size, &fast.err, &fast.field);
	full.st =
		payload_parse_full(&full.p, json, size, &full.err, &full.field);
	fuzz_check_same("payload_parse", &fast, &full);
	fuzz_check_result(data, size, &fast);

	tfast.st = payload_parse_table(&tfast.p, FUZZ_TABLE, json, size,
				       &tfast.err, &tfast.field);
	tfull.st = payload_parse_table_full(&tfull.p, FUZZ_TABLE, json, size,
					    &tfull.err, &tfull.field);
	fuzz_check_same("payload_parse_table", &tfast, &tfull);
	fuzz_check_result(data, size, &tfast);
	if (tfast.st == ST_OK && strcmp(tfast.p.table, FUZZ_TABLE))
		check_fail("payload_parse_table gave table '%s'",
			   tfast.p.table);

	fuzz_check_in_place(data, size, &tfull);

	/* Addressed to the table the document names, a call is the same. */
	if (fast.st == ST_OK) {
		struct fuzz_parse same;

		fuzz_parse_init(&same);
		same.st = payload_parse_table(&same.p, fast.p.table, json, size,
					      &same.err, &same.field);
		fuzz_check_same("payload_parse_table of its own table", &same,
				&fast);
		fuzz_parse_release(&same);
	}
	fuzz_parse_release(&fast);
	fuzz_parse_release(&full);
	fuzz_parse_release(&tfast);
	fuzz_parse_release(&tfull);
	return 0;
}
