/*
 * libFuzzer harness: payload parsing and validation. Accepted values are
 * single tokens, canonical and round-trip; every error message is printable.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "payload.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	struct payload p;

	if (payload_parse(&p, (const char *)data, size, &err, &field) ==
	    ST_OK) {
		if (check_strict_json((const char *)data, size))
			check_fail("accepted text that is not RFC 8259 JSON");
		check_payload_tokens(&p);
		fuzz_check_fixed_points(&p);
		fuzz_check_round_trip(&p);
		payload_release(&p);
	} else {
		if (!err.len)
			check_fail("rejected without a message");
		fuzz_check_printable("error", &err);
		fuzz_check_printable("field", &field);
	}
	buf_release(&err);
	buf_release(&field);
	return 0;
}
