/*
 * services -> haproxy.cfg bytes. Pure and deterministic: the same services
 * and options always give the same bytes.
 */
#ifndef RENDER_H
#define RENDER_H

#include "buf.h"
#include "service.h"
#include "settings.h"

#define RENDER_DEFAULT_BIND ":80"

/* The map files of the map form, under the settings' routing.mapDir. */
#define RENDER_HOSTS_MAP "hosts.map"
#define RENDER_PATHS_MAP "paths.map"

/*
 * How a config routes: one ACL and one use_backend per service (HAProxy
 * tries them in order, so the cost grows with the table), or two map
 * lookups whose cost does not (the map files then go with the config).
 */
enum render_form {
	RENDER_FORM_ACL,
	RENDER_FORM_MAP,
};

struct render_options {
	const char *frontend_bind; /* "ADDR:PORT" as accepted by
				      render_check_bind */
	/* The table's effective settings (borrowed); NULL: the defaults. The
	 * HTTP frontend binds frontend_bind unless they set its binds. */
	const struct settings *settings;
	/* The table the config is for: part of each dynamic-cookie-key. NULL:
	 * "" */
	const char *table;
	enum render_form form;
};

/*
 * The form of an answer under `s` (NULL: the defaults): routing.mode "map"
 * and "acl" say it; "auto" gives maps to an answer that carries the map
 * files (with_files), ACLs to one that does not, so that a plain config
 * stays self-contained.
 */
enum render_form render_form(const struct settings *s, int with_files);

/*
 * The contents of hosts.map and paths.map for `services` (sorted by name),
 * appended to `hosts` and `paths`: "KEY BACKEND" lines sorted by key, the
 * key one token (payload.c checked it), one line per key. Which service a
 * key gives is the one the ACL form routes it to. Over a buffer's cap it is
 * marked overflowed, as for render_config.
 */
void render_maps(const struct service_list *services, struct buf *hosts,
		 struct buf *paths);

/*
 * Append the config for `services` (sorted by name) to `out`. Over out's cap
 * nothing more is written and `out` is marked overflowed (buf_overflowed()):
 * its content is then a cut config the caller must not use.
 */
void render_config(const struct service_list *services,
		   const struct render_options *opts, struct buf *out);

/*
 * Check and canonicalise a bind address: ":80", "127.0.0.1:8080",
 * "[::1]:8080". Returns 0 and sets `out`, or -1 with the reason in `err`.
 */
int render_check_bind(const char *s, struct buf *out, struct buf *err);

#endif
