/*
 * libFuzzer harness: whole registry calls (parse, merge against a real SQLite
 * store, render), each accepted config checked token by token (check.c).
 */
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "payload.h"
#include "registry.h"
#include "render.h"
#include "xalloc.h"
#include "banned.h"

#define FUZZ_MAX_CALLS 8
#define FUZZ_SEPARATOR "\n--\n"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct registry *fuzz_reg;
static sqlite3 *fuzz_db; /* a second connection, to empty the store */
static int fuzz_dirty;
static char fuzz_dir[256];

static void fuzz_cleanup(void)
{
	registry_free(fuzz_reg);
	sqlite3_close(fuzz_db);
	check_registry_remove(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct buf spec = BUF_INIT;

	(void)argc;
	(void)argv;
	fuzz_reg = check_registry_open(fuzz_dir, sizeof(fuzz_dir), &spec);
	if (sqlite3_open(spec.buf + strlen("sqlite:"), &fuzz_db) != SQLITE_OK)
		check_fail("sqlite3_open: %s", sqlite3_errmsg(fuzz_db));
	sqlite3_busy_timeout(fuzz_db, 10000);
	atexit(fuzz_cleanup);
	buf_release(&spec);
	return 0;
}

/* Forget every table. Bumping the versions keeps the registry's cache honest.
 */
static void fuzz_reset_store(void)
{
	if (!fuzz_dirty)
		return;
	if (sqlite3_exec(fuzz_db,
			 "BEGIN IMMEDIATE; DELETE FROM services;"
			 "UPDATE tables SET version = version + 1; COMMIT;",
			 NULL, NULL, NULL) != SQLITE_OK)
		check_fail("reset: %s", sqlite3_errmsg(fuzz_db));
	fuzz_dirty = 0;
}

/* The JSON answer is valid JSON and carries the same config. */
static void fuzz_check_json(const struct registry_result *res)
{
	struct buf out = BUF_INIT;
	json_error_t jerr;
	json_t *doc, *cfg;

	registry_result_json(res, &out);
	doc = json_loadb(out.buf, out.len, 0, &jerr);
	if (!doc)
		check_fail("result JSON does not parse: %s", jerr.text);
	cfg = json_object_get(doc, "config");
	if (!json_is_string(cfg) ||
	    json_string_length(cfg) != res->config.len ||
	    memcmp(json_string_value(cfg), res->config.buf, res->config.len))
		check_fail("result JSON config differs");
	json_decref(doc);
	buf_release(&out);
}

/*
 * The answer with the map files (unchanged state, so the same services):
 * the map form of the config, as a fresh render gives it and as the grammar
 * says, its maps those of the services, and all of it in the JSON.
 */
static void fuzz_check_files(const char *json, size_t len,
			     const struct registry_result *res)
{
	struct render_options mo = {.form = RENDER_FORM_MAP};
	struct buf err = BUF_INIT, field = BUF_INIT, fresh = BUF_INIT,
		   out = BUF_INIT;
	struct registry_result files;
	struct settings dflt;
	json_error_t jerr;
	json_t *doc, *v;
	enum status st;

	settings_init(&dflt);
	registry_result_init(&files);
	st = registry_call(fuzz_reg, json, len,
			   REGISTRY_WANT_SERVICES | REGISTRY_WANT_FILES, &files,
			   &err, &field);
	if (st != ST_OK || files.changed || files.form != RENDER_FORM_MAP)
		check_fail("the call with files: %s, changed %d, form %d: %s",
			   status_name(st), files.changed, (int)files.form,
			   err.buf);
	render_config(&res->services, &mo, &fresh);
	if (fresh.len != files.config.len ||
	    memcmp(fresh.buf, files.config.buf, fresh.len))
		check_fail("the map-form config is not the render of the "
			   "services");
	check_config_form(files.config.buf, files.config.len, &res->services,
			  RENDER_DEFAULT_BIND, &dflt, RENDER_FORM_MAP);
	check_maps(files.hosts_map.buf, files.hosts_map.len,
		   files.paths_map.buf, files.paths_map.len, &res->services);
	registry_result_json(&files, &out);
	doc = json_loadb(out.buf, out.len, 0, &jerr);
	if (!doc)
		check_fail("result JSON with files does not parse: %s",
			   jerr.text);
	v = json_object_get(json_object_get(doc, "files"), RENDER_PATHS_MAP);
	if (!json_is_string(v) ||
	    json_string_length(v) != files.paths_map.len ||
	    memcmp(json_string_value(v), files.paths_map.buf,
		   files.paths_map.len) ||
	    !json_is_string(json_object_get(doc, "mapDir")))
		check_fail("result JSON carries another paths.map");
	json_decref(doc);
	registry_result_release(&files);
	settings_release(&dflt);
	buf_release(&err);
	buf_release(&field);
	buf_release(&fresh);
	buf_release(&out);
}

static void fuzz_one_call(const char *json, size_t len)
{
	struct buf err = BUF_INIT, field = BUF_INIT, fresh = BUF_INIT;
	struct registry_result res, again;
	struct payload p;
	enum status st, pst;
	char *copy;

	registry_result_init(&res);
	registry_result_init(&again);
	pst = payload_parse(&p, json, len, &err, &field);
	st = registry_call(fuzz_reg, json, len, REGISTRY_WANT_SERVICES, &res,
			   &err, &field);
	if ((st == ST_OK) != (pst == ST_OK))
		check_fail("payload_parse says %s, registry_call says %s",
			   status_name(pst), status_name(st));
	if (st != ST_OK) {
		if (st != ST_INVALID)
			check_fail("a healthy store failed a call: %s: %s",
				   status_name(st), err.buf);
		goto out;
	}
	fuzz_dirty |= res.changed;
	if (check_strict_json(json, len))
		check_fail("accepted text that is not RFC 8259 JSON");
	check_payload_tokens(&p);
	check_config(res.config.buf, res.config.len, &res.services,
		     RENDER_DEFAULT_BIND);
	render_config(&res.services, NULL, &fresh);
	if (fresh.len != res.config.len ||
	    memcmp(fresh.buf, res.config.buf, fresh.len))
		check_fail("the returned config is not the render of the "
			   "returned services");
	fuzz_check_json(&res);

	/* Again, as the HTTP layer passes a body: parsed in place, its
	 * candidates parsed again as the merge comes to them. */
	copy = xmalloc(len + 1);
	memcpy(copy, json, len);
	st = registry_call(fuzz_reg, copy, len,
			   REGISTRY_WANT_SERVICES | REGISTRY_BODY_WRITABLE,
			   &again, &err, &field);
	if (memcmp(copy, json, len))
		check_fail("the call in place left the body changed");
	free(copy);
	if (st != ST_OK)
		check_fail("the same payload again failed: %s", err.buf);
	if (again.changed)
		check_fail("the same payload again changed the store");
	if (again.config.len != res.config.len ||
	    memcmp(again.config.buf, res.config.buf, res.config.len))
		check_fail("the same payload again gave another config");
	fuzz_check_files(json, len, &res);
	payload_release(&p);
out:
	registry_result_release(&res);
	registry_result_release(&again);
	buf_release(&err);
	buf_release(&field);
	buf_release(&fresh);
}

/*
 * An input is up to FUZZ_MAX_CALLS payloads separated by a line "--", run
 * in order on an empty store. Every accepted call's config must match the
 * directive grammar, equal a fresh render of the returned services, and be a
 * fixed point: the same payload again changes nothing and gives the same bytes.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const size_t seplen = strlen(FUZZ_SEPARATOR);
	int calls;

	fuzz_reset_store();
	for (calls = 0; calls < FUZZ_MAX_CALLS && p <= end; calls++) {
		const char *sep =
			memmem(p, (size_t)(end - p), FUZZ_SEPARATOR, seplen);
		const char *stop = sep ? sep : end;

		fuzz_one_call(p, (size_t)(stop - p));
		if (!sep)
			break;
		p = sep + seplen;
	}
	return 0;
}
