/*
 * Fleet settings: the operator's document (YAML or JSON) that shapes the
 * global, defaults, frontend and stats parts of every config. Parsed and
 * validated here into a typed struct; nothing after this module sees YAML.
 */
#ifndef SETTINGS_H
#define SETTINGS_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

/* The document kind in the store, and the key of the fleet defaults. Table
 * names never contain '*' (payload_check_table), so the keys cannot clash. */
#define SETTINGS_KIND	     "settings"
#define SETTINGS_DEFAULT_KEY "*"

/* A settings document larger than this is refused. */
#define SETTINGS_MAX_BYTES (64 * 1024)

struct settings_log {
	char *address; /* canonical "IP:PORT", or "stdout" */
	char *facility;
	char *format; /* "rfc3164", "rfc5424" or "raw"; NULL: HAProxy's */
};

/* The timeouts of `defaults`, in the order they render. */
enum settings_timeout {
	SETTINGS_TIMEOUT_CONNECT,
	SETTINGS_TIMEOUT_CLIENT,
	SETTINGS_TIMEOUT_SERVER,
	SETTINGS_TIMEOUT_HTTP_REQUEST,
	SETTINGS_TIMEOUT_HTTP_KEEP_ALIVE,
	SETTINGS_TIMEOUT_QUEUE,
	SETTINGS_TIMEOUT_TUNNEL,
	SETTINGS_NR_TIMEOUTS
};

struct settings_binds {
	char **items; /* canonical binds, as render_check_bind gives them */
	size_t nr;
};

/*
 * Effective settings, every value validated to render as one token (or a
 * quoted string of checked characters). Strings are owned; NULL or 0 means
 * unset where the comment says so.
 */
struct settings {
	/* global */
	unsigned long maxconn;	/* 0: 4096 */
	char *hard_stop_after;	/* a duration; "30s" by default */
	unsigned long nbthread; /* 0: not rendered */
	struct settings_log *logs;
	size_t nr_logs;

	/* defaults */
	char *timeouts[SETTINGS_NR_TIMEOUTS]; /* NULL: not rendered */
	unsigned long retries;		      /* 3 by default */
	int redispatch;			      /* 1 by default */
	int httplog;	 /* -1: on exactly when a log target is set */
	int dontlognull; /* 0 by default */
	unsigned long defaults_maxconn; /* 0: not rendered */

	/* frontend.http */
	struct settings_binds http_binds; /* nr 0: --frontend-bind */
	int redirect_to_https;

	/* frontend.https: present means on */
	int https;
	struct settings_binds https_binds; /* nr 0: ":443" */
	char *crt, *crt_list;		   /* exactly one is set */
	char *alpn;			   /* "h2,http/1.1" by default */
	char *min_tls;			   /* "TLSv1.2" by default */
	int hsts;
	unsigned long hsts_max_age;
	int hsts_include_subdomains, hsts_preload;

	/* stats: present means on */
	int stats;
	char *stats_bind;			/* canonical */
	char *stats_user, *stats_password_hash; /* both or neither */
	char *stats_uri;			/* "/stats" by default */
	int prometheus;

	/* unmatched: present means on */
	int unmatched;
	unsigned long unmatched_status;
	char *unmatched_body; /* NULL: no body */

	/* the secret the backends' dynamic-cookie-key is derived from; NULL:
	 * a key from the table and backend names alone (predictable) */
	char *dynamic_cookie_secret;

	/* routing (see render_form) */
	char *routing_mode;    /* "auto" (default), "map" or "acl" */
	char *routing_map_dir; /* "/etc/haproxy/maps" by default */
};

/* The defaults, as when nothing is stored. */
void settings_init(struct settings *s);
void settings_release(struct settings *s);

/*
 * Parse `len` bytes of YAML or JSON into `*out`: a JSON object in canonical
 * form (sorted keys, compact), new reference in jansson's words but handed
 * over as text; the caller frees it. On error ST_INVALID with the key path
 * and the reason in `err` ("frontend.https.crtList: must be an absolute
 * path") and *out NULL. An empty document is "{}".
 */
enum status settings_canonical(const char *text, size_t len, char **out,
			       struct buf *err) WARN_UNUSED;

/*
 * The effective settings of `overrides` (canonical JSON or NULL) deep-merged
 * over `defaults` (the same), as canonical JSON into `*json` when not NULL
 * and validated into `*out` when not NULL (settings_init()ed; it is
 * released first and left alone on error). ST_INVALID with the path in `err`
 * when the merged document breaks a rule.
 */
enum status settings_effective(const char *defaults, const char *overrides,
			       char **json, struct settings *out,
			       struct buf *err) WARN_UNUSED;

#endif
