/*
 * Checks shared by the fuzz harnesses: what the registry promises about every
 * value it accepts and every config it writes. A broken promise aborts.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stddef.h>

#include "payload.h"
#include "render.h"
#include "service.h"
#include "settings.h"

/* Abort with a message (libFuzzer then saves the input as a crash). */
_Noreturn void check_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * Every value of an accepted payload is one config token: printable ASCII
 * without space or what HAProxy's config parser gives a meaning: '#',
 * quotes, '\', '$', '`', braces or brackets (so no "${" and no "%[" either).
 */
void check_token(const char *what, const char *s);
void check_payload_tokens(const struct payload *p);

/*
 * `cfg` parses as the directive grammar of render.c, line by line and token
 * by token, and every value token is exactly a value of `model` (the table's
 * services, sorted by name): no value spans tokens or lines, none is missing.
 */
void check_config(const char *cfg, size_t len, const struct service_list *model,
		  const char *bind);
/* The same for a config rendered with the effective settings `s`: every
 * directive they add, in its place, each value one token of theirs. */
void check_config_settings(const char *cfg, size_t len,
			   const struct service_list *model, const char *bind,
			   const struct settings *s);
/* The same for the routing form `form` (check_config_settings: ACL). */
void check_config_form(const char *cfg, size_t len,
		       const struct service_list *model, const char *bind,
		       const struct settings *s, enum render_form form);
/* The map files of `model`: "KEY BACKEND" lines, one per key, sorted by
 * key, each key the one the ACL form routes to that backend. */
void check_maps(const char *hosts, size_t hosts_len, const char *paths,
		size_t paths_len, const struct service_list *model);

/*
 * 0 when `len` bytes are one JSON text as RFC 8259 defines it (valid UTF-8,
 * no NUL, nothing around the value but whitespace), else -1. Written apart
 * from jansson, so that what the registry accepts is checked against it.
 */
int check_strict_json(const char *s, size_t len);

/*
 * A registry on a new SQLite file in a temporary folder (in /dev/shm where it
 * can be written), for harnesses that run whole calls: the folder goes into
 * `dir` (`size` bytes), the store spec into `spec` when not NULL.
 * check_registry_remove() deletes the files and the folder.
 */
struct registry;
struct buf;
struct registry *check_registry_open(char *dir, size_t size, struct buf *spec);
void check_registry_remove(const char *dir);

#endif
