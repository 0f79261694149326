/* Per-table changes per hour over the last day, as store documents. */
#include "changes.h"

#include <jansson.h>
#include <string.h>

#include "store/store.h"
#include "xalloc.h"
#include "banned.h"

/* Tries of a conditional put that keeps meeting other writers. */
#define CHANGES_TRIES 32
/* Documents listed at a time when summing every table. */
#define CHANGES_PAGE 1000

static uint64_t changes_hour(int64_t ms)
{
	return ms > 0 ? (uint64_t)ms / 3600000 : 0;
}

/*
 * Add the buckets of `json` ({"hours": [[HOUR, N], ...]}) that fall in the
 * CHANGES_HOURS up to hour `now` to `out`; a damaged document adds nothing.
 */
static void changes_add(const char *json, uint64_t now,
			uint64_t out[CHANGES_HOURS])
{
	json_t *root = json_loads(json, 0, NULL);
	json_t *hours = json_object_get(root, "hours"), *b;
	size_t i;

	json_array_foreach(hours, i, b)
	{
		json_int_t h = json_integer_value(json_array_get(b, 0));
		json_int_t n = json_integer_value(json_array_get(b, 1));

		if (h < 0 || n < 0 || (uint64_t)h > now ||
		    now - (uint64_t)h >= CHANGES_HOURS)
			continue;
		out[CHANGES_HOURS - 1 - (now - (uint64_t)h)] += (uint64_t)n;
	}
	json_decref(root);
}

static void changes_json(const uint64_t hours[CHANGES_HOURS], uint64_t now,
			 struct buf *out)
{
	size_t i, n = 0;

	(void)buf_addstr(out, "{\"hours\":[");
	for (i = 0; i < CHANGES_HOURS; i++)
		if (hours[i])
			(void)buf_addf(
				out, "%s[%llu,%llu]", n++ ? "," : "",
				(unsigned long long)(now -
						     (CHANGES_HOURS - 1 - i)),
				(unsigned long long)hours[i]);
	(void)buf_addstr(out, "]}");
}

enum status changes_note(struct store *st, const char *table, int64_t now_ms,
			 uint64_t n, struct buf *err)
{
	uint64_t now = changes_hour(now_ms);
	struct buf json = BUF_INIT;
	enum status ret = ST_CONFLICT;
	int try;

	for (try = 0; try < CHANGES_TRIES && ret == ST_CONFLICT; try++) {
		uint64_t hours[CHANGES_HOURS] = {0}, expect = 0;
		struct store_doc doc = {0};

		buf_reset(err);
		ret = store_doc_get(st, CHANGES_KIND, table, &doc, err);
		if (ret == ST_OK) {
			expect = doc.version;
			changes_add(doc.value, now, hours);
		} else if (ret == ST_NOT_FOUND) {
			buf_reset(err);
			ret = ST_OK;
		}
		store_doc_release(&doc);
		if (ret != ST_OK)
			break;
		hours[CHANGES_HOURS - 1] += n;
		buf_reset(&json);
		changes_json(hours, now, &json);
		ret = store_doc_put(st, CHANGES_KIND, table, json.buf, expect,
				    NULL, err);
	}
	buf_release(&json);
	return ret;
}

enum status changes_per_hour(struct store *st, const char *table,
			     int64_t now_ms, uint64_t out[CHANGES_HOURS],
			     struct buf *err)
{
	uint64_t now = changes_hour(now_ms);
	struct store_doc_list list;
	struct store_doc doc = {0};
	struct buf after = BUF_INIT;
	enum status ret;
	size_t i;

	memset(out, 0, CHANGES_HOURS * sizeof(*out));
	if (table) {
		ret = store_doc_get(st, CHANGES_KIND, table, &doc, err);
		if (ret == ST_OK)
			changes_add(doc.value, now, out);
		else if (ret == ST_NOT_FOUND)
			ret = ST_OK;
		store_doc_release(&doc);
		return ret;
	}
	/* Every table's document, a page at a time. */
	do {
		store_doc_list_init(&list);
		ret = store_doc_list(st, CHANGES_KIND, after.buf, CHANGES_PAGE,
				     &list, err);
		for (i = 0; ret == ST_OK && i < list.nr; i++)
			changes_add(list.items[i].value, now, out);
		if (list.nr) {
			buf_reset(&after);
			(void)buf_addstr(&after, list.items[list.nr - 1].key);
		}
		i = list.nr;
		store_doc_list_release(&list);
	} while (ret == ST_OK && i == CHANGES_PAGE);
	buf_release(&after);
	return ret;
}
