/*
 * haproxy.cfg from a table's services. Every value written here was
 * validated by payload.c to be a single token without config metacharacters.
 */
#include "render.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"
#include "banned.h"

/*
 * A cursor over the output buffer: appends are a bounds check and a memcpy,
 * and the buffer's length and NUL are set once at the end (render_done).
 * Over the buffer's cap the render stops writing: the buffer keeps what fit
 * and is marked overflowed (sticky, as for buf_add), for the caller to check.
 */
struct render_w {
	struct buf *b;
	char *p, *end;
};

/* The end of the room: the allocation (less the NUL), or the cap when the
 * buffer grew past it (buf_grow doubles), so that every append beyond the
 * cap goes through render_grow. */
static char *render_end(const struct buf *b)
{
	return b->buf + (b->alloc - 1 < b->cap ? b->alloc - 1 : b->cap);
}

static void render_start(struct render_w *w, struct buf *out, size_t hint)
{
	w->b = out;
	if (hint > out->cap - out->len)
		hint = out->cap - out->len;
	if (!out->overflow)
		buf_grow(out, hint);
	w->p = out->buf + out->len;
	/* room for the NUL; an overflowed buffer takes nothing more */
	w->end =
		out->overflow || !out->alloc ? w->p : out->buf + out->alloc - 1;
}

static void render_done(struct render_w *w)
{
	if (!w->b->overflow)
		buf_setlen(w->b, (size_t)(w->p - w->b->buf));
}

/* Make room for `len` more bytes; -1 (and the buffer marked) over its cap. */
static int render_grow(struct render_w *w, size_t len)
{
	struct buf *b = w->b;

	if (b->overflow)
		return -1;
	b->len = (size_t)(w->p - b->buf);
	if (len > b->cap || b->len > b->cap - len) {
		if (b->alloc)
			buf_setlen(b, b->len);
		b->overflow = 1;
		w->end = w->p;
		return -1;
	}
	buf_grow(b, len);
	w->p = b->buf + b->len;
	w->end = render_end(b);
	return 0;
}

static inline void render_add(struct render_w *w, const char *s, size_t len)
{
	if ((size_t)(w->end - w->p) < len && render_grow(w, len))
		return;
	memcpy(w->p, s, len);
	w->p += len;
}

#define RENDER_LIT(w, lit) render_add((w), (lit), sizeof(lit) - 1)

static inline void render_str(struct render_w *w, const char *s)
{
	render_add(w, s, strlen(s));
}

/* Path services go longest predicate first, so the longest prefix wins. */
static int render_path_cmp(const void *a, const void *b)
{
	const struct service *x = *(const struct service *const *)a;
	const struct service *y = *(const struct service *const *)b;
	size_t lx = strlen(x->predicate), ly = strlen(y->predicate);

	if (lx != ly)
		return lx > ly ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void render_acl(struct render_w *w, const struct service *svc)
{
	if (svc->mode == CONFIG_MODE_HOST) {
		/* The Host header may carry a ":port"; compare the name only.
		 */
		RENDER_LIT(w, "    acl host_");
		render_str(w, svc->name);
		RENDER_LIT(w, " req.hdr(host),field(1,:) -i ");
		render_str(w, svc->predicate);
		RENDER_LIT(w, "\n");
		return;
	}
	/* "/p" itself and anything below "/p/", but not "/pfoo". */
	RENDER_LIT(w, "    acl path_");
	render_str(w, svc->name);
	RENDER_LIT(w, " path /");
	render_str(w, svc->predicate);
	RENDER_LIT(w, "\n    acl path_");
	render_str(w, svc->name);
	RENDER_LIT(w, " path_beg /");
	render_str(w, svc->predicate);
	RENDER_LIT(w, "/\n");
}

/* The same test as render_acl's, under the one name "lr_matched". */
static void render_acl_matched(struct render_w *w, const struct service *svc)
{
	if (svc->mode == CONFIG_MODE_HOST) {
		RENDER_LIT(w,
			   "    acl lr_matched req.hdr(host),field(1,:) -i ");
		render_str(w, svc->predicate);
		RENDER_LIT(w, "\n");
		return;
	}
	RENDER_LIT(w, "    acl lr_matched path /");
	render_str(w, svc->predicate);
	RENDER_LIT(w, "\n    acl lr_matched path_beg /");
	render_str(w, svc->predicate);
	RENDER_LIT(w, "/\n");
}

static void render_use_backend(struct render_w *w, const struct service *svc)
{
	RENDER_LIT(w, "    use_backend ");
	render_str(w, svc->name);
	if (svc->mode == CONFIG_MODE_HOST)
		RENDER_LIT(w, " if host_");
	else
		RENDER_LIT(w, " if path_");
	render_str(w, svc->name);
	RENDER_LIT(w, "\n");
}

static void render_ulong(struct render_w *w, unsigned long v)
{
	char num[24];
	size_t n = sizeof(num);

	do {
		num[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	render_add(w, num + n, sizeof(num) - n);
}

static void render_duration(struct render_w *w, unsigned ms)
{
	char text[DURATION_TEXT_MAX];

	duration_text(ms, text);
	render_str(w, text);
}

/*
 * The backend's dynamic-cookie-key: SHA-256 of the fleet's secret, the
 * table and the backend, so that it is the same on every call and every
 * registry instance, differs between backends, and says nothing of the
 * secret. 128 bits in hex are plenty for a cookie's hash key.
 */
static void render_cookie_key(struct render_w *w, const struct service *svc,
			      const struct settings *s, const char *table)
{
	struct buf in = BUF_INIT;
	unsigned char md[32];
	char key[32];

	buf_addstr(&in, "lambda-registry dynamic-cookie-key");
	buf_addch(&in, '\0');
	if (s->dynamic_cookie_secret)
		buf_addstr(&in, s->dynamic_cookie_secret);
	buf_addch(&in, '\0');
	buf_addstr(&in, table ? table : "");
	buf_addch(&in, '\0');
	buf_addstr(&in, svc->name);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, in.buf, in.len, md))
		BUG("gnutls_hash_fast(SHA-256) failed");
	buf_hex_encode(key, md, sizeof(key) / 2);
	RENDER_LIT(w, "    dynamic-cookie-key ");
	render_add(w, key, sizeof(key));
	RENDER_LIT(w, "\n");
	buf_release(&in);
}

/* The backend's own lines, between "backend NAME" and its servers. */
static void render_backend_options(struct render_w *w,
				   const struct service *svc,
				   const struct settings *s, const char *table)
{
	int https_on = s->https;
	const struct service_options *o = &svc->opts;

	RENDER_LIT(w, "    balance ");
	render_str(w, balance_name(o->balance));
	/* A server going away moves only its own clients. */
	if (o->balance == BALANCE_SOURCE)
		RENDER_LIT(w, "\n    hash-type consistent");
	RENDER_LIT(w, "\n    option forwardfor\n");
	if (o->timeout_server) {
		RENDER_LIT(w, "    timeout server ");
		render_duration(w, o->timeout_server);
		RENDER_LIT(w, "\n");
	}
	if (o->timeout_tunnel) {
		RENDER_LIT(w, "    timeout tunnel ");
		render_duration(w, o->timeout_tunnel);
		RENDER_LIT(w, "\n");
	}
	if (o->check_path) {
		RENDER_LIT(w, "    option httpchk GET ");
		render_str(w, o->check_path);
		RENDER_LIT(w, "\n");
		if (o->check_status) {
			RENDER_LIT(w, "    http-check expect status ");
			render_ulong(w, o->check_status);
			RENDER_LIT(w, "\n");
		}
	}
	if (svc->cookie) {
		RENDER_LIT(w, "    cookie ");
		render_str(w, svc->cookie);
		if (o->cookie_mode == COOKIE_MODE_DYNAMIC) {
			/* No per-server value: servers added at runtime get
			 * theirs from the key (enable dynamic-cookie). */
			RENDER_LIT(w, " insert indirect nocache dynamic\n");
			render_cookie_key(w, svc, s, table);
		} else if (o->cookie_mode == COOKIE_MODE_INSERT) {
			RENDER_LIT(w, " insert indirect nocache httponly");
			if (https_on)
				RENDER_LIT(w, " secure");
			RENDER_LIT(w, "\n");
		} else {
			RENDER_LIT(w, " prefix nocache\n");
		}
	}
}

static void render_backend(struct render_w *w, const struct service *svc,
			   const struct settings *s, const char *table)
{
	const struct service_options *o = &svc->opts;
	char port[16];
	size_t i, nport = sizeof(port) - 1;
	unsigned v = svc->port;

	/* ":PORT check", the same for every server of the service. */
	port[nport] = '\0';
	do {
		port[--nport] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	port[--nport] = ':';

	RENDER_LIT(w, "\nbackend ");
	render_str(w, svc->name);
	RENDER_LIT(w, "\n");
	render_backend_options(w, svc, s, table);
	for (i = 0; i < svc->nr_containers; i++) {
		const struct container *c = &svc->containers[i];
		size_t nid = strlen(c->id), nip = strlen(c->ip);
		int v6 = memchr(c->ip, ':', nip) != NULL;

		RENDER_LIT(w, "    server ");
		render_add(w, c->id, nid);
		if (v6) {
			RENDER_LIT(w, " [");
			render_add(w, c->ip, nip);
			RENDER_LIT(w, "]");
		} else {
			RENDER_LIT(w, " ");
			render_add(w, c->ip, nip);
		}
		render_add(w, port + nport, sizeof(port) - 1 - nport);
		RENDER_LIT(w, " check");
		if (o->check_inter) {
			RENDER_LIT(w, " inter ");
			render_duration(w, o->check_inter);
		}
		if (o->check_rise) {
			RENDER_LIT(w, " rise ");
			render_ulong(w, o->check_rise);
		}
		if (o->check_fall) {
			RENDER_LIT(w, " fall ");
			render_ulong(w, o->check_fall);
		}
		if (o->maxconn) {
			RENDER_LIT(w, " maxconn ");
			render_ulong(w, o->maxconn);
		}
		if (c->weight != WEIGHT_UNSET) {
			RENDER_LIT(w, " weight ");
			render_ulong(w, (unsigned)c->weight);
		}
		if (svc->cookie && o->cookie_mode != COOKIE_MODE_DYNAMIC) {
			/* Each server its own value, so a client sticks to one.
			 */
			RENDER_LIT(w, " cookie ");
			render_add(w, c->id, nid);
		}
		RENDER_LIT(w, "\n");
	}
}

static void render_global(struct render_w *w, const struct settings *s)
{
	size_t i;

	RENDER_LIT(w, "# Generated by lambda-registry; do not edit.\n"
		      "global\n    maxconn ");
	render_ulong(w, s->maxconn ? s->maxconn : 4096);
	RENDER_LIT(w, "\n    hard-stop-after ");
	render_str(w, s->hard_stop_after);
	RENDER_LIT(w, "\n");
	if (s->nbthread) {
		RENDER_LIT(w, "    nbthread ");
		render_ulong(w, s->nbthread);
		RENDER_LIT(w, "\n");
	}
	for (i = 0; i < s->nr_logs; i++) {
		RENDER_LIT(w, "    log ");
		render_str(w, s->logs[i].address);
		if (s->logs[i].format) {
			RENDER_LIT(w, " format ");
			render_str(w, s->logs[i].format);
		}
		RENDER_LIT(w, " ");
		render_str(w, s->logs[i].facility);
		RENDER_LIT(w, "\n");
	}
}

/* Timeouts with a default render it when the settings leave them out. */
static const struct {
	const char *directive, *dflt;
} render_timeouts[SETTINGS_NR_TIMEOUTS] = {
	[SETTINGS_TIMEOUT_CONNECT] = {"connect", "5s"},
	[SETTINGS_TIMEOUT_CLIENT] = {"client", "30s"},
	[SETTINGS_TIMEOUT_SERVER] = {"server", "30s"},
	[SETTINGS_TIMEOUT_HTTP_REQUEST] = {"http-request", "10s"},
	[SETTINGS_TIMEOUT_HTTP_KEEP_ALIVE] = {"http-keep-alive", NULL},
	[SETTINGS_TIMEOUT_QUEUE] = {"queue", NULL},
	[SETTINGS_TIMEOUT_TUNNEL] = {"tunnel", NULL},
};

static void render_defaults(struct render_w *w, const struct settings *s)
{
	/* Without a log target HAProxy ignores (and warns about) httplog. */
	int httplog = s->nr_logs && s->httplog != 0;
	size_t i;

	RENDER_LIT(w, "\ndefaults\n    mode http\n");
	if (s->nr_logs)
		RENDER_LIT(w, "    log global\n");
	if (httplog)
		RENDER_LIT(w, "    option httplog\n");
	if (s->dontlognull)
		RENDER_LIT(w, "    option dontlognull\n");
	for (i = 0; i < SETTINGS_NR_TIMEOUTS; i++) {
		const char *v = s->timeouts[i] ? s->timeouts[i]
					       : render_timeouts[i].dflt;

		if (!v)
			continue;
		RENDER_LIT(w, "    timeout ");
		render_str(w, render_timeouts[i].directive);
		RENDER_LIT(w, " ");
		render_str(w, v);
		RENDER_LIT(w, "\n");
	}
	RENDER_LIT(w, "    retries ");
	render_ulong(w, s->retries);
	RENDER_LIT(w, "\n");
	if (s->redispatch)
		RENDER_LIT(w, "    option redispatch\n");
	if (s->defaults_maxconn) {
		RENDER_LIT(w, "    maxconn ");
		render_ulong(w, s->defaults_maxconn);
		RENDER_LIT(w, "\n");
	}
}

/* The settings' answer to a request no rule routes, without its condition
 * and newline (the form decides what "no rule" means). */
static void render_unmatched(struct render_w *w, const struct settings *s)
{
	RENDER_LIT(w, "    http-request return status ");
	render_ulong(w, s->unmatched_status);
	if (s->unmatched_body) {
		RENDER_LIT(w, " content-type text/plain string \"");
		render_str(w, s->unmatched_body);
		RENDER_LIT(w, "\"");
	}
}

/*
 * The routing rules, the same on every frontend that serves traffic: one
 * ACL per service, use_backend for hosts, then paths longest first. With
 * `unmatched` each ACL is also declared as "lr_matched" (HAProxy ORs ACLs
 * of one name), so a request no use_backend takes gets the answer.
 */
static void render_routes(struct render_w *w,
			  const struct service_list *services,
			  const struct service **paths, size_t nr_paths,
			  const struct settings *s)
{
	size_t i;

	for (i = 0; i < services->nr; i++)
		render_acl(w, &services->items[i]);
	if (s->unmatched) {
		for (i = 0; i < services->nr; i++)
			render_acl_matched(w, &services->items[i]);
		render_unmatched(w, s);
		if (services->nr)
			RENDER_LIT(w, " unless lr_matched");
		RENDER_LIT(w, "\n");
	}
	for (i = 0; i < services->nr; i++)
		if (services->items[i].mode == CONFIG_MODE_HOST)
			render_use_backend(w, &services->items[i]);
	for (i = 0; i < nr_paths; i++)
		render_use_backend(w, paths[i]);
}

/* The map lookups: the host first, then the path, as in the ACL form. */
static void render_routes_map(struct render_w *w, const struct settings *s)
{
	RENDER_LIT(w, "    http-request set-var(txn.lr_backend) "
		      "req.hdr(host),field(1,:),lower,map_str(");
	render_str(w, s->routing_map_dir);
	RENDER_LIT(w, "/" RENDER_HOSTS_MAP ")\n");
	/* With "/" appended, a map_beg on "/p/" takes "/p" and "/p/..." but
	 * not "/pfoo"; HAProxy's prefix tree gives the longest key. */
	RENDER_LIT(w, "    http-request set-var(txn.lr_backend) "
		      "path,concat(/),map_beg(");
	render_str(w, s->routing_map_dir);
	RENDER_LIT(w, "/" RENDER_PATHS_MAP
		      ") unless { var(txn.lr_backend) -m found }\n");
	if (s->unmatched) {
		render_unmatched(w, s);
		RENDER_LIT(w, " unless { var(txn.lr_backend) -m found }\n");
	}
	RENDER_LIT(w, "    use_backend %[var(txn.lr_backend)] "
		      "if { var(txn.lr_backend) -m found }\n");
}

static void render_rules(struct render_w *w,
			 const struct service_list *services,
			 const struct service **paths, size_t nr_paths,
			 const struct render_options *opts,
			 const struct settings *s)
{
	if (opts && opts->form == RENDER_FORM_MAP)
		render_routes_map(w, s);
	else
		render_routes(w, services, paths, nr_paths, s);
}

static void render_binds(struct render_w *w, const struct settings_binds *b,
			 const char *dflt, const struct settings *tls)
{
	size_t i;

	for (i = 0; i < (b->nr ? b->nr : 1); i++) {
		RENDER_LIT(w, "    bind ");
		render_str(w, b->nr ? b->items[i] : dflt);
		if (tls) {
			if (tls->crt_list) {
				RENDER_LIT(w, " ssl crt-list ");
				render_str(w, tls->crt_list);
			} else {
				RENDER_LIT(w, " ssl crt ");
				render_str(w, tls->crt);
			}
			RENDER_LIT(w, " alpn ");
			render_str(w, tls->alpn);
			RENDER_LIT(w, " ssl-min-ver ");
			render_str(w, tls->min_tls);
		}
		RENDER_LIT(w, "\n");
	}
}

static void render_frontends(struct render_w *w,
			     const struct service_list *services,
			     const struct service **paths, size_t nr_paths,
			     const struct render_options *opts,
			     const struct settings *s)
{
	RENDER_LIT(w, "\nfrontend http\n");
	render_binds(w, &s->http_binds,
		     opts && opts->frontend_bind ? opts->frontend_bind
						 : RENDER_DEFAULT_BIND,
		     NULL);
	if (s->https) {
		/* Only the HTTPS frontend may say a request came over TLS. */
		RENDER_LIT(w,
			   "    http-request del-header X-Forwarded-Proto\n");
		if (s->redirect_to_https)
			RENDER_LIT(w, "    http-request redirect scheme https "
				      "code 308 if !{ ssl_fc }\n");
	}
	render_rules(w, services, paths, nr_paths, opts, s);
	if (!s->https)
		return;
	RENDER_LIT(w, "\nfrontend https\n");
	render_binds(w, &s->https_binds, ":443", s);
	RENDER_LIT(w, "    http-request set-header X-Forwarded-Proto https\n");
	if (s->hsts) {
		/* No spaces (RFC 6797 needs none), so no quotes either. */
		RENDER_LIT(w, "    http-response set-header "
			      "Strict-Transport-Security max-age=");
		render_ulong(w, s->hsts_max_age);
		if (s->hsts_include_subdomains)
			RENDER_LIT(w, ";includeSubDomains");
		if (s->hsts_preload)
			RENDER_LIT(w, ";preload");
		RENDER_LIT(w, "\n");
	}
	render_rules(w, services, paths, nr_paths, opts, s);
}

/* The stats page (and the Prometheus exporter) on a frontend of its own,
 * behind HTTP basic auth when a user is set. */
static void render_stats(struct render_w *w, const struct settings *s)
{
	if (!s->stats)
		return;
	if (s->stats_user) {
		RENDER_LIT(w, "\nuserlist lr_stats_users\n    user ");
		render_str(w, s->stats_user);
		RENDER_LIT(w, " password ");
		render_str(w, s->stats_password_hash);
		RENDER_LIT(w, "\n");
	}
	RENDER_LIT(w, "\nfrontend stats\n    bind ");
	render_str(w, s->stats_bind);
	RENDER_LIT(w, "\n");
	if (s->stats_user)
		RENDER_LIT(w, "    http-request auth realm stats unless "
			      "{ http_auth(lr_stats_users) }\n");
	if (s->prometheus)
		RENDER_LIT(w,
			   "    http-request use-service prometheus-exporter "
			   "if { path /metrics }\n");
	RENDER_LIT(w, "    stats enable\n    stats uri ");
	render_str(w, s->stats_uri);
	RENDER_LIT(w, "\n    stats refresh 10s\n");
}

void render_config(const struct service_list *services,
		   const struct render_options *opts, struct buf *out)
{
	const struct service **paths = NULL;
	struct settings dflt;
	const struct settings *s = opts ? opts->settings : NULL;
	struct render_w w;
	size_t i, nr_paths = 0;

	if (!s) {
		settings_init(&dflt);
		s = &dflt;
	}
	/* A guess at the size, so that the buffer rarely grows on the way. */
	render_start(&w, out, 1024 + services->nr * (s->https ? 768 : 512));
	render_global(&w, s);
	render_defaults(&w, s);

	if (services->nr)
		paths = xmalloc(services->nr * sizeof(*paths));
	for (i = 0; i < services->nr; i++)
		if (services->items[i].mode != CONFIG_MODE_HOST)
			paths[nr_paths++] = &services->items[i];
	if (nr_paths > 1)
		qsort(paths, nr_paths, sizeof(*paths), render_path_cmp);
	render_frontends(&w, services, paths, nr_paths, opts, s);
	free(paths);

	for (i = 0; i < services->nr; i++)
		render_backend(&w, &services->items[i], s,
			       opts ? opts->table : NULL);
	render_stats(&w, s);
	render_done(&w);
	if (s == &dflt)
		settings_release(&dflt);
}

enum render_form render_form(const struct settings *s, int with_files)
{
	const char *mode = s && s->routing_mode ? s->routing_mode : "auto";

	if (!strcmp(mode, "map"))
		return RENDER_FORM_MAP;
	if (!strcmp(mode, "acl"))
		return RENDER_FORM_ACL;
	return with_files ? RENDER_FORM_MAP : RENDER_FORM_ACL;
}

/*
 * Compare two predicates as map keys: host keys are the predicate, path
 * keys "/PREDICATE/", so a path predicate's end compares as a '/'.
 */
static int render_key_cmp(const char *a, const char *b, int slash)
{
	size_t i = 0;
	unsigned char ca, cb;

	while (a[i] && a[i] == b[i])
		i++;
	if (!a[i] && !b[i])
		return 0;
	ca = a[i] ? (unsigned char)a[i] : slash ? '/' : 0;
	cb = b[i] ? (unsigned char)b[i] : slash ? '/' : 0;
	if (ca != cb)
		return ca < cb ? -1 : 1;
	/* One ended where the other has a '/': the shorter key is first. */
	return !a[i] ? -1 : 1;
}

/* By key, then by name: the first of a key is the one the ACL form takes
 * (hosts in name order, paths of one length in name order). */
static int render_entry_cmp(const void *a, const void *b)
{
	const struct service *x = *(const struct service *const *)a;
	const struct service *y = *(const struct service *const *)b;
	int c = render_key_cmp(x->predicate, y->predicate,
			       x->mode != CONFIG_MODE_HOST);

	return c ? c : strcmp(x->name, y->name);
}

static void render_map(const struct service **items, size_t nr, int path,
		       struct buf *out)
{
	struct render_w w;
	size_t i;

	if (nr > 1)
		qsort(items, nr, sizeof(*items), render_entry_cmp);
	render_start(&w, out, nr * 64);
	for (i = 0; i < nr; i++) {
		if (i && !strcmp(items[i]->predicate, items[i - 1]->predicate))
			continue;
		if (path)
			RENDER_LIT(&w, "/");
		render_str(&w, items[i]->predicate);
		if (path)
			RENDER_LIT(&w, "/");
		RENDER_LIT(&w, " ");
		render_str(&w, items[i]->name);
		RENDER_LIT(&w, "\n");
	}
	render_done(&w);
}

void render_maps(const struct service_list *services, struct buf *hosts,
		 struct buf *paths)
{
	const struct service **items;
	size_t i, nr_hosts = 0, nr_paths = 0;

	/* One more, so that the array is never empty. */
	items = xmalloc((services->nr + 1) * sizeof(*items));
	/* Hosts from the front of the array, paths from the back. */
	for (i = 0; i < services->nr; i++) {
		const struct service *svc = &services->items[i];

		if (svc->mode == CONFIG_MODE_HOST)
			items[nr_hosts++] = svc;
		else
			items[services->nr - ++nr_paths] = svc;
	}
	render_map(items, nr_hosts, 0, hosts);
	render_map(items + services->nr - nr_paths, nr_paths, 1, paths);
	free(items);
}

int render_check_bind(const char *s, struct buf *out, struct buf *err)
{
	const char *colon = strrchr(s, ':');
	struct buf host = BUF_INIT;
	unsigned char addr[16];
	unsigned long port = 0;
	size_t i, nr_digits;
	int ret = -1;

	if (!colon) {
		buf_setf(err, "'%s' is not ADDR:PORT", s);
		goto out;
	}
	nr_digits = strlen(colon + 1);
	for (i = 0; i < nr_digits; i++) {
		if (colon[1 + i] < '0' || colon[1 + i] > '9' || i >= 5)
			break;
		port = port * 10 + (unsigned long)(colon[1 + i] - '0');
	}
	if (!nr_digits || i != nr_digits || port < 1 || port > 65535) {
		buf_setf(err, "'%s' needs a port from 1 to 65535", s);
		goto out;
	}
	(void)buf_add(&host, s, (size_t)(colon - s));
	buf_reset(out);
	if (!host.len || !strcmp(host.buf, "*")) {
		(void)buf_addf(out, ":%lu", port);
	} else if (host.buf[0] == '[' && host.buf[host.len - 1] == ']') {
		char text[INET6_ADDRSTRLEN];

		host.buf[host.len - 1] = '\0';
		if (inet_pton(AF_INET6, host.buf + 1, addr) != 1 ||
		    !inet_ntop(AF_INET6, addr, text, sizeof(text))) {
			buf_setf(err, "'%s' is not a valid IPv6 address",
				 host.buf + 1);
			goto out;
		}
		(void)buf_addf(out, "[%s]:%lu", text, port);
	} else if (inet_pton(AF_INET, host.buf, addr) == 1) {
		(void)buf_addf(out, "%s:%lu", host.buf, port);
	} else {
		buf_setf(err, "'%s' is not an IPv4 address or [IPv6] address",
			 host.buf);
		goto out;
	}
	ret = 0;
out:
	buf_release(&host);
	return ret;
}
