/*
 * The first version kept every host's services in one DynamoDB table
 * ("services" in us-east-1) in the item layout the DynamoDB backend still
 * reads, so the source is that backend with an empty table prefix.
 */
#include "import.h"

#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "service.h"
#include "store/store.h"
#include "xalloc.h"
#include "banned.h"

#define IMPORT_FROM_DYNAMODB "dynamodb-table:"

/* Open the DynamoDB backend in `region` (AWS_REGION only while it opens:
 * the target store may be DynamoDB in a region of its own). */
static enum status import_open_source(const char *region, struct store **out,
				      struct buf *err)
{
	const char *old = getenv("AWS_REGION");
	char *saved = old ? xstrdup(old) : NULL;
	enum status ret;

	if (region && *region)
		setenv("AWS_REGION", region, 1);
	ret = store_open("dynamodb:", out, err);
	if (saved)
		setenv("AWS_REGION", saved, 1);
	else
		unsetenv("AWS_REGION");
	free(saved);
	return ret;
}

static enum status import_load(struct store *st, const char *table,
			       struct service_list *out, struct buf *err)
{
	enum status ret = store_begin(st, table, 0, err);

	if (ret != ST_OK)
		return ret;
	ret = store_load(st, out, err);
	store_rollback(st);
	return ret;
}

/* Keep the services named in `only` ("a,b"); each must be in `list`. */
static enum status import_select(struct service_list *list, const char *only,
				 struct buf *err)
{
	struct service_list kept;
	const char *s, *comma;
	enum status ret = ST_OK;

	service_list_init(&kept);
	for (s = only; *s; s = comma ? comma + 1 : s + strlen(s)) {
		char *name;
		struct service *svc;

		comma = strchr(s, ',');
		name = xstrndup(s, comma ? (size_t)(comma - s) : strlen(s));
		svc = *name ? service_list_find(list, name) : NULL;
		if (!svc) {
			buf_setf(err,
				 "--only-services: '%s' is not a service of "
				 "the source table",
				 name);
			ret = *name ? ST_INVALID : ST_USAGE;
			free(name);
			goto out;
		}
		free(name);
		if (service_list_find(&kept, svc->name))
			continue;
		service_copy(service_list_append(&kept), svc);
		service_list_sort(&kept);
	}
	service_list_release(list);
	*list = kept;
	service_list_init(&kept);
out:
	service_list_release(&kept);
	return ret;
}

static void import_describe(const struct service *svc, struct buf *out)
{
	(void)buf_addf(out, " (%s %s%s, port %u, %zu container%s)",
		       config_mode_name(svc->mode),
		       svc->mode == CONFIG_MODE_PATH ? "/" : "", svc->predicate,
		       svc->port, svc->nr_containers,
		       svc->nr_containers == 1 ? "" : "s");
}

enum status import_run(const struct import_options *opts, struct buf *report,
		       struct buf *err)
{
	struct service_list src, dst;
	struct store *from = NULL, *to = NULL;
	const char *source;
	size_t i, writes = 0;
	enum status ret;

	service_list_init(&src);
	service_list_init(&dst);
	if (strncmp(opts->from, IMPORT_FROM_DYNAMODB,
		    strlen(IMPORT_FROM_DYNAMODB))) {
		buf_setf(err, "--from: '%s' is not dynamodb-table:NAME",
			 opts->from);
		ret = ST_USAGE;
		goto out;
	}
	source = opts->from + strlen(IMPORT_FROM_DYNAMODB);
	if (payload_check_table(source, err) ||
	    payload_check_table(opts->table, err)) {
		ret = ST_USAGE;
		goto out;
	}
	ret = import_open_source(opts->region, &from, err);
	if (ret == ST_OK)
		ret = import_load(from, source, &src, err);
	if (ret == ST_OK && opts->only)
		ret = import_select(&src, opts->only, err);
	if (ret == ST_OK)
		ret = store_open(opts->store, &to, err);
	if (ret == ST_OK)
		ret = store_begin(to, opts->table, opts->apply, err);
	if (ret != ST_OK)
		goto out;
	ret = store_load(to, &dst, err);
	for (i = 0; ret == ST_OK && i < src.nr; i++) {
		struct service *svc = &src.items[i];
		const struct service *old = service_list_find(&dst, svc->name);

		if (old && service_equal(old, svc)) {
			(void)buf_addf(report, "same %s\n", svc->name);
			continue;
		}
		(void)buf_addf(report, "%s %s", old ? "replace" : "new",
			       svc->name);
		import_describe(svc, report);
		(void)buf_addch(report, '\n');
		writes++;
		if (!opts->apply)
			continue;
		/* The target's version check, and the source's times kept. */
		svc->version = old ? old->version : 0;
		ret = store_put(to, svc, err);
	}
	if (ret == ST_OK && opts->apply && writes)
		ret = store_commit(to, err);
	else
		store_rollback(to);
	if (ret != ST_OK)
		goto out;
	if (opts->apply)
		(void)buf_addf(report,
			       "imported %zu of %zu services into table "
			       "'%s'\n",
			       writes, src.nr, opts->table);
	else
		(void)buf_addf(report,
			       "dry run: %zu of %zu services would be written "
			       "into table '%s'; nothing was stored (--apply "
			       "writes them)\n",
			       writes, src.nr, opts->table);
out:
	if (ret == ST_CONFLICT)
		buf_setf(err,
			 "table '%s' changed while it was imported; "
			 "nothing was written, run the import again",
			 opts->table);
	service_list_release(&src);
	service_list_release(&dst);
	if (from)
		store_close(from);
	if (to)
		store_close(to);
	return ret;
}
