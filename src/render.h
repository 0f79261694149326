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

struct render_options {
	const char *frontend_bind; /* "ADDR:PORT" as accepted by
				      render_check_bind */
	/* The table's effective settings (borrowed); NULL: the defaults. The
	 * HTTP frontend binds frontend_bind unless they set its binds. */
	const struct settings *settings;
	/* The table the config is for: part of each dynamic-cookie-key. NULL:
	 * "" */
	const char *table;
};

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
