/*
 * Server and map changes without a reload. A reload forks a new worker
 * while the old one drains its long-lived connections; on a busy host they
 * pile up, and with tens of thousands of backends the new worker takes
 * seconds of CPU to start. When the next config differs from the live one
 * only in `server` lines, and its maps from the live maps only in entries,
 * the agent makes those changes through the master CLI instead, checks the
 * result with `show servers state` and `show map`, and leaves every other
 * change (and every doubt) to the reload path.
 */
#include "agent/runtime.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "xalloc.h"
#include "banned.h"

/* A server that cannot be deleted yet (connections still closing) is
 * asked again for this long after its sessions were shut down. */
#define RUNTIME_DEL_RETRY_MS 3000
#define RUNTIME_POLL_MS	     50
/* One master CLI exchange per entry: past this many, a reload is quicker. */
#define RUNTIME_MAP_OPS_MAX 2000
/* What a map key or value may hold besides letters and digits to be sent
 * as one CLI word: no ';' (a command separator), no '\\', no '#' (an
 * entry reference), no quotes. */
#define RUNTIME_MAP_SAFE "-._~/:%@!$&()*+,="

/* One line of a config, without its newline. */
struct runtime_line {
	const char *s;
	size_t len;
};

/* What the lines of a backend outside its servers allow at runtime. */
struct runtime_backend {
	char *name;
	int dynamic_lb;	    /* `add server` works: not static, not random */
	int first;	    /* `balance first`: server order matters */
	int dynamic_cookie; /* `cookie ... dynamic` */
};

struct runtime_backends {
	struct runtime_backend *items; /* sorted by name */
	size_t nr, alloc;
};

static int runtime_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The next line of [*p, end); 0 at the end. */
static int runtime_next_line(const char **p, const char *end,
			     struct runtime_line *out)
{
	const char *eol;

	if (*p >= end)
		return 0;
	eol = memchr(*p, '\n', (size_t)(end - *p));
	out->s = *p;
	out->len = eol ? (size_t)(eol - *p) : (size_t)(end - *p);
	*p = eol ? eol + 1 : end;
	return 1;
}

/* The next white-space separated word of the line from *off; 0 when none. */
static int runtime_word(const struct runtime_line *l, size_t *off,
			struct runtime_line *out)
{
	size_t i = *off;

	while (i < l->len && runtime_is_blank(l->s[i]))
		i++;
	if (i == l->len)
		return 0;
	out->s = l->s + i;
	while (i < l->len && !runtime_is_blank(l->s[i]))
		i++;
	out->len = (size_t)(l->s + i - out->s);
	*off = i;
	return 1;
}

static int runtime_word_is(const struct runtime_line *w, const char *s)
{
	return w->len == strlen(s) && !memcmp(w->s, s, w->len);
}

/* Every byte in `set` or alphanumeric: what may go into a CLI command. */
static int runtime_safe(const char *s, size_t len, const char *set)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || (c && strchr(set, c))))
			return 0;
	}
	return len > 0;
}

/* A section header: a line that starts with a keyword. */
static int runtime_is_section(const struct runtime_line *l)
{
	return l->len && !runtime_is_blank(l->s[0]) && l->s[0] != '#';
}

/* The proxy a section header opens (backend or listen), or 0. */
static int runtime_proxy_name(const struct runtime_line *l,
			      struct runtime_line *name)
{
	struct runtime_line kw;
	size_t off = 0;

	if (!runtime_word(l, &off, &kw) || !(runtime_word_is(&kw, "backend") ||
					     runtime_word_is(&kw, "listen")))
		return 0;
	return runtime_word(l, &off, name);
}

static int runtime_is_server(const struct runtime_line *l)
{
	struct runtime_line kw;
	size_t off = 0;

	return l->len && runtime_is_blank(l->s[0]) &&
	       runtime_word(l, &off, &kw) && runtime_word_is(&kw, "server");
}

/* Only bytes of `set`: an address, never a host name to resolve. */
static int runtime_ip(const char *s, size_t len, const char *set)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!s[i] || !strchr(set, s[i]))
			return 0;
	return len > 0;
}

/* "A.B.C.D:PORT" or "[V6]:PORT" into addr and port; -1 when not. */
static int runtime_parse_addr(const struct runtime_line *w, char **addr,
			      unsigned *port)
{
	const char *colon, *a = w->s;
	size_t alen;
	unsigned long p = 0;
	size_t i;

	if (w->len && w->s[0] == '[') {
		const char *close = memchr(w->s, ']', w->len);

		if (!close || close + 1 >= w->s + w->len || close[1] != ':')
			return -1;
		a = w->s + 1;
		alen = (size_t)(close - a);
		colon = close + 1;
		if (!runtime_ip(a, alen, "0123456789abcdefABCDEF:."))
			return -1;
	} else {
		colon = memchr(w->s, ':', w->len);
		if (!colon)
			return -1;
		alen = (size_t)(colon - w->s);
		if (!runtime_ip(a, alen, "0123456789."))
			return -1;
	}
	for (i = (size_t)(colon + 1 - w->s); i < w->len; i++) {
		if (w->s[i] < '0' || w->s[i] > '9' || p > 65535)
			return -1;
		p = p * 10 + (unsigned long)(w->s[i] - '0');
	}
	if (colon + 1 == w->s + w->len || !p || p > 65535)
		return -1;
	*addr = xstrndup(a, alen);
	*port = (unsigned)p;
	return 0;
}

static int runtime_server_cmp(const void *a, const void *b)
{
	const struct runtime_server *x = a, *y = b;
	int c = strcmp(x->backend, y->backend);

	return c ? c : strcmp(x->name, y->name);
}

void runtime_servers_release(struct runtime_servers *s)
{
	size_t i;

	for (i = 0; i < s->nr; i++) {
		free(s->items[i].backend);
		free(s->items[i].name);
		free(s->items[i].addr);
		free(s->items[i].args);
	}
	free(s->items);
	memset(s, 0, sizeof(*s));
}

/* One server line of `backend` into `out`; -1 with the reason in `why`. */
static int runtime_parse_server(const struct runtime_line *l,
				const struct runtime_line *backend, size_t line,
				struct runtime_servers *out, struct buf *why)
{
	struct runtime_line kw, name, addr;
	struct runtime_server *srv;
	size_t off = 0, end = l->len;
	char *ip = NULL;
	unsigned port = 0;

	(void)runtime_word(l, &off, &kw);
	if (!runtime_word(l, &off, &name) || !runtime_word(l, &off, &addr) ||
	    !runtime_safe(name.s, name.len, "_.:-") ||
	    runtime_parse_addr(&addr, &ip, &port)) {
		buf_setf(why, "line %zu: a server line the agent cannot read",
			 line);
		return -1;
	}
	while (off < end && runtime_is_blank(l->s[off]))
		off++;
	while (end > off && runtime_is_blank(l->s[end - 1]))
		end--;
	if (end > off && !runtime_safe(l->s + off, end - off, " _.:-")) {
		buf_setf(why, "line %zu: server options the agent cannot send",
			 line);
		free(ip);
		return -1;
	}
	ALLOC_GROW(out->items, out->nr + 1, out->alloc);
	srv = &out->items[out->nr++];
	srv->backend = xstrndup(backend->s, backend->len);
	srv->name = xstrndup(name.s, name.len);
	srv->addr = ip;
	srv->port = port;
	srv->args = xstrndup(l->s + off, end - off);
	srv->line = line;
	return 0;
}

int runtime_servers_parse(const char *cfg, size_t len,
			  struct runtime_servers *out, struct buf *why)
{
	const char *p = cfg, *end = cfg + len;
	struct runtime_line l, backend = {NULL, 0};
	size_t line = 0, i;

	memset(out, 0, sizeof(*out));
	while (runtime_next_line(&p, end, &l)) {
		line++;
		if (runtime_is_section(&l)) {
			if (!runtime_proxy_name(&l, &backend))
				backend.s = NULL;
			if (backend.s &&
			    !runtime_safe(backend.s, backend.len, "_.:-")) {
				buf_setf(why,
					 "line %zu: a backend name the "
					 "agent cannot send",
					 line);
				goto fail;
			}
			continue;
		}
		if (!backend.s || !runtime_is_server(&l))
			continue;
		if (runtime_parse_server(&l, &backend, line, out, why))
			goto fail;
	}
	if (out->nr)
		qsort(out->items, out->nr, sizeof(*out->items),
		      runtime_server_cmp);
	for (i = 1; i < out->nr; i++)
		if (!runtime_server_cmp(&out->items[i - 1], &out->items[i])) {
			buf_setf(why, "server %s/%s is there twice",
				 out->items[i].backend, out->items[i].name);
			goto fail;
		}
	return 0;
fail:
	runtime_servers_release(out);
	return -1;
}

static int runtime_backend_cmp(const void *a, const void *b)
{
	const struct runtime_backend *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void runtime_backends_release(struct runtime_backends *b)
{
	size_t i;

	for (i = 0; i < b->nr; i++)
		free(b->items[i].name);
	free(b->items);
	memset(b, 0, sizeof(*b));
}

/* A backend's `balance`, `hash-type` and `cookie` lines, as `b` says. */
static void runtime_backend_line(const struct runtime_line *l,
				 struct runtime_backend *b, int *consistent,
				 int *source)
{
	struct runtime_line kw, arg;
	size_t off = 0;

	if (!runtime_word(l, &off, &kw))
		return;
	if (runtime_word_is(&kw, "balance") && runtime_word(l, &off, &arg)) {
		/* `random` gets no traffic to servers added without an id
		 * before 3.0; the others are HAProxy's dynamic algorithms. */
		b->dynamic_lb = runtime_word_is(&arg, "roundrobin") ||
				runtime_word_is(&arg, "leastconn") ||
				runtime_word_is(&arg, "first");
		b->first = runtime_word_is(&arg, "first");
		*source = runtime_word_is(&arg, "source");
	} else if (runtime_word_is(&kw, "hash-type") &&
		   runtime_word(l, &off, &arg)) {
		*consistent = runtime_word_is(&arg, "consistent");
	} else if (runtime_word_is(&kw, "cookie")) {
		while (runtime_word(l, &off, &arg))
			if (runtime_word_is(&arg, "dynamic"))
				b->dynamic_cookie = 1;
	}
}

/*
 * Compare everything but the server lines of the two files, and note what
 * each backend allows. -1 with the first different line in `why`.
 */
static int runtime_compare_rest(const char *live, size_t live_len,
				const char *next, size_t next_len,
				struct runtime_backends *out, struct buf *why)
{
	const char *p = live, *pend = live + live_len;
	const char *q = next, *qend = next + next_len;
	struct runtime_line a, b, name;
	struct runtime_backend *cur = NULL;
	int in_proxy = 0, more_a, more_b, consistent = 0, source = 0;
	size_t line = 0;

	for (;;) {
		/* The proxy flag is the same on both sides: the lines that
		 * set it are compared. */
		do
			more_a = runtime_next_line(&p, pend, &a);
		while (more_a && in_proxy && runtime_is_server(&a));
		do {
			more_b = runtime_next_line(&q, qend, &b);
			line++;
		} while (more_b && in_proxy && runtime_is_server(&b));
		if (!more_a && !more_b)
			break;
		if (more_a != more_b || a.len != b.len ||
		    memcmp(a.s, b.s, a.len)) {
			buf_setf(why, "line %zu differs in more than servers",
				 line);
			return -1;
		}
		if (!runtime_is_section(&b))
			goto options;
		if (cur && source && consistent)
			cur->dynamic_lb = 1;
		cur = NULL;
		in_proxy = runtime_proxy_name(&b, &name);
		consistent = source = 0;
		if (in_proxy) {
			ALLOC_GROW(out->items, out->nr + 1, out->alloc);
			cur = &out->items[out->nr++];
			memset(cur, 0, sizeof(*cur));
			cur->name = xstrndup(name.s, name.len);
		}
		continue;
	options:
		if (cur)
			runtime_backend_line(&b, cur, &consistent, &source);
	}
	if (cur && source && consistent)
		cur->dynamic_lb = 1;
	if (out->nr)
		qsort(out->items, out->nr, sizeof(*out->items),
		      runtime_backend_cmp);
	return 0;
}

static const struct runtime_backend *
runtime_backend_find(const struct runtime_backends *b, const char *name)
{
	struct runtime_backend key;

	if (!b->nr)
		return NULL; /* bsearch() wants an array, even for none */
	key.name = (char *)name;
	return bsearch(&key, b->items, b->nr, sizeof(*b->items),
		       runtime_backend_cmp);
}

/* Whether the server's options hold the keyword `kw`. */
static int runtime_has_option(const struct runtime_server *s, const char *kw)
{
	struct runtime_line l = {s->args, strlen(s->args)}, w;
	size_t off = 0;

	while (runtime_word(&l, &off, &w))
		if (runtime_word_is(&w, kw))
			return 1;
	return 0;
}

/* Whether the server's options give it a static cookie value. */
static int runtime_has_cookie(const struct runtime_server *s)
{
	return runtime_has_option(s, "cookie");
}

static void runtime_plan_op(struct runtime_plan *plan, enum runtime_op_kind k,
			    const struct runtime_server *srv)
{
	ALLOC_GROW(plan->ops, plan->nr_ops + 1, plan->alloc_ops);
	plan->ops[plan->nr_ops].kind = k;
	plan->ops[plan->nr_ops].srv = srv;
	plan->ops[plan->nr_ops].dynamic_cookie = 0;
	plan->nr_ops++;
}

static void runtime_refuse(struct runtime_plan *plan, struct buf *why,
			   const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void runtime_refuse(struct runtime_plan *plan, struct buf *why,
			   const char *fmt, ...)
{
	va_list ap;

	if (!plan->eligible)
		return; /* the first reason is the one worth reading */
	plan->eligible = 0;
	buf_reset(why);
	va_start(ap, fmt);
	buf_vaddf(why, fmt, ap);
	va_end(ap);
}

static int runtime_op_rank(const void *a, const void *b)
{
	const struct runtime_op *x = a, *y = b;

	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	/* Adds in file order, so that server ids follow the file. */
	return x->srv->line < y->srv->line ? -1 : x->srv->line > y->srv->line;
}

/* The servers of one backend: old [i, ie), new [j, je). */
static void runtime_plan_backend(struct runtime_plan *plan,
				 const struct runtime_backends *backends,
				 size_t i, size_t ie, size_t j, size_t je,
				 struct buf *why)
{
	const struct runtime_server *o = plan->live.items,
				    *n = plan->next.items;
	const char *name = i < ie ? o[i].backend : n[j].backend;
	const struct runtime_backend *be = runtime_backend_find(backends, name);
	size_t first_op = plan->nr_ops, k, last_kept = 0, first_added = 0;
	int cookie = 0, changed = 0, c;

	while (i < ie || j < je) {
		c = i == ie ? 1 : j == je ? -1 : strcmp(o[i].name, n[j].name);
		if (c < 0) {
			cookie |= runtime_has_cookie(&o[i]);
			runtime_plan_op(plan, RUNTIME_OP_DEL, &o[i++]);
			plan->removed++;
			continue;
		}
		if (c > 0) {
			cookie |= runtime_has_cookie(&n[j]);
			if (!first_added || n[j].line < first_added)
				first_added = n[j].line;
			runtime_plan_op(plan, RUNTIME_OP_ADD, &n[j++]);
			plan->added++;
			continue;
		}
		cookie |= runtime_has_cookie(&o[i]) | runtime_has_cookie(&n[j]);
		if (strcmp(o[i].args, n[j].args))
			runtime_refuse(plan, why,
				       "server %s/%s changed options", name,
				       n[j].name);
		else if (strcmp(o[i].addr, n[j].addr) ||
			 o[i].port != n[j].port) {
			runtime_plan_op(plan, RUNTIME_OP_ADDR, &n[j]);
			plan->readdressed++;
		}
		if (n[j].line > last_kept)
			last_kept = n[j].line;
		i++;
		j++;
	}
	changed = plan->nr_ops > first_op;
	if (!changed)
		return;
	if (!be) {
		runtime_refuse(plan, why, "backend %s is not in both files",
			       name);
		return;
	}
	/* Static per-server cookie values cannot be given to `add server`
	 * on 2.6: a sticky service keeps the reload path. */
	if (cookie) {
		runtime_refuse(plan, why,
			       "backend %s has static server cookies", name);
		return;
	}
	if (!first_added)
		return;
	if (!be->dynamic_lb) {
		runtime_refuse(plan, why,
			       "backend %s balances with an algorithm that "
			       "takes no added servers",
			       name);
		return;
	}
	/* With `first`, server ids are the order of use: an added server
	 * gets the next id, so it must come after those it joins. */
	if (be->first && last_kept > first_added) {
		runtime_refuse(plan, why,
			       "backend %s balances first and a server is "
			       "added before others",
			       name);
		return;
	}
	for (k = first_op; k < plan->nr_ops; k++)
		if (plan->ops[k].kind == RUNTIME_OP_ADD)
			plan->ops[k].dynamic_cookie = be->dynamic_cookie;
}

void runtime_plan_build(const char *live, size_t live_len, const char *next,
			size_t next_len, struct runtime_plan *plan,
			struct buf *why)
{
	struct runtime_backends backends;
	size_t i = 0, j = 0, ie, je;
	const struct runtime_server *o, *n;

	memset(plan, 0, sizeof(*plan));
	memset(&backends, 0, sizeof(backends));
	if (runtime_servers_parse(live, live_len, &plan->live, why) ||
	    runtime_servers_parse(next, next_len, &plan->next, why)) {
		runtime_servers_release(&plan->live);
		return;
	}
	plan->eligible = 1;
	if (runtime_compare_rest(live, live_len, next, next_len, &backends,
				 why))
		plan->eligible = 0;
	o = plan->live.items;
	n = plan->next.items;
	while (i < plan->live.nr || j < plan->next.nr) {
		const char *name;
		int c = i == plan->live.nr ? 1
			: j == plan->next.nr
				? -1
				: strcmp(o[i].backend, n[j].backend);

		name = c <= 0 ? o[i].backend : n[j].backend;
		for (ie = i; c <= 0 && ie < plan->live.nr &&
			     !strcmp(o[ie].backend, name);
		     ie++)
			;
		for (je = j; c >= 0 && je < plan->next.nr &&
			     !strcmp(n[je].backend, name);
		     je++)
			;
		runtime_plan_backend(plan, &backends, i, ie, j, je, why);
		i = ie;
		j = je;
	}
	if (plan->nr_ops)
		qsort(plan->ops, plan->nr_ops, sizeof(*plan->ops),
		      runtime_op_rank);
	runtime_backends_release(&backends);
}

void runtime_plan_release(struct runtime_plan *plan)
{
	size_t i;

	for (i = 0; i < plan->nr_maps; i++) {
		free(plan->maps[i].path);
		runtime_map_entries_release(&plan->maps[i].live);
		runtime_map_entries_release(&plan->maps[i].next);
	}
	free(plan->maps);
	free(plan->map_ops);
	runtime_servers_release(&plan->live);
	runtime_servers_release(&plan->next);
	free(plan->ops);
	memset(plan, 0, sizeof(*plan));
}

static int runtime_map_entry_cmp(const void *a, const void *b)
{
	const struct runtime_map_entry *x = a, *y = b;

	return strcmp(x->key, y->key);
}

void runtime_map_entries_release(struct runtime_map_entries *e)
{
	size_t i;

	for (i = 0; i < e->nr; i++) {
		free(e->items[i].key);
		free(e->items[i].value);
	}
	free(e->items);
	memset(e, 0, sizeof(*e));
}

/* Sort the entries; -1 with the key in `why` when one is there twice. */
static int runtime_map_sort(struct runtime_map_entries *e, struct buf *why)
{
	size_t i;

	if (e->nr)
		qsort(e->items, e->nr, sizeof(*e->items),
		      runtime_map_entry_cmp);
	for (i = 1; i < e->nr; i++)
		if (!strcmp(e->items[i - 1].key, e->items[i].key)) {
			buf_setf(why, "map key %s is there twice",
				 e->items[i].key);
			return -1;
		}
	return 0;
}

static void runtime_map_add_entry(struct runtime_map_entries *e,
				  const struct runtime_line *key,
				  const struct runtime_line *value)
{
	ALLOC_GROW(e->items, e->nr + 1, e->alloc);
	e->items[e->nr].key = xstrndup(key->s, key->len);
	e->items[e->nr].value = xstrndup(value->s, value->len);
	e->nr++;
}

int runtime_map_parse(const char *text, size_t len,
		      struct runtime_map_entries *out, struct buf *why)
{
	const char *p = text, *end = text + len;
	struct runtime_line l, key, value, more;
	size_t line = 0, off;

	memset(out, 0, sizeof(*out));
	while (runtime_next_line(&p, end, &l)) {
		line++;
		off = 0;
		if (!runtime_word(&l, &off, &key))
			continue;
		if (!runtime_word(&l, &off, &value) ||
		    runtime_word(&l, &off, &more) ||
		    !runtime_safe(key.s, key.len, RUNTIME_MAP_SAFE) ||
		    !runtime_safe(value.s, value.len, RUNTIME_MAP_SAFE)) {
			buf_setf(why,
				 "map line %zu is not one the agent can "
				 "send",
				 line);
			goto fail;
		}
		runtime_map_add_entry(out, &key, &value);
	}
	if (runtime_map_sort(out, why))
		goto fail;
	return 0;
fail:
	runtime_map_entries_release(out);
	return -1;
}

static void runtime_plan_map_op(struct runtime_plan *plan,
				enum runtime_map_op_kind kind, const char *path,
				const struct runtime_map_entry *entry)
{
	ALLOC_GROW(plan->map_ops, plan->nr_map_ops + 1, plan->alloc_map_ops);
	plan->map_ops[plan->nr_map_ops].kind = kind;
	plan->map_ops[plan->nr_map_ops].path = path;
	plan->map_ops[plan->nr_map_ops].entry = entry;
	plan->nr_map_ops++;
}

static int runtime_map_op_rank(const void *a, const void *b)
{
	const struct runtime_map_op *x = a, *y = b;
	int c;

	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	c = strcmp(x->path, y->path);
	return c ? c : strcmp(x->entry->key, y->entry->key);
}

void runtime_plan_map(struct runtime_plan *plan, const char *path,
		      const char *live, size_t live_len, const char *next,
		      size_t next_len, struct buf *why)
{
	struct runtime_map *m;
	const struct runtime_map_entry *o, *n;
	struct buf reason = BUF_INIT;
	size_t i = 0, j = 0;
	int c;

	ALLOC_GROW(plan->maps, plan->nr_maps + 1, plan->alloc_maps);
	m = &plan->maps[plan->nr_maps];
	memset(m, 0, sizeof(*m));
	if (runtime_map_parse(live, live_len, &m->live, &reason) ||
	    runtime_map_parse(next, next_len, &m->next, &reason)) {
		runtime_map_entries_release(&m->live);
		runtime_refuse(plan, why, "%s: %s", path, reason.buf);
		goto out;
	}
	m->path = xstrdup(path);
	plan->nr_maps++;
	o = m->live.items;
	n = m->next.items;
	while (i < m->live.nr || j < m->next.nr) {
		c = i == m->live.nr   ? 1
		    : j == m->next.nr ? -1
				      : strcmp(o[i].key, n[j].key);
		if (c < 0) {
			runtime_plan_map_op(plan, RUNTIME_MAP_DEL, m->path,
					    &o[i++]);
			plan->map_removed++;
		} else if (c > 0) {
			runtime_plan_map_op(plan, RUNTIME_MAP_ADD, m->path,
					    &n[j++]);
			plan->map_added++;
		} else {
			if (strcmp(o[i].value, n[j].value)) {
				runtime_plan_map_op(plan, RUNTIME_MAP_SET,
						    m->path, &n[j]);
				plan->map_set++;
			}
			i++;
			j++;
		}
	}
	if (plan->nr_map_ops)
		qsort(plan->map_ops, plan->nr_map_ops, sizeof(*plan->map_ops),
		      runtime_map_op_rank);
	if (plan->nr_map_ops > RUNTIME_MAP_OPS_MAX)
		runtime_refuse(plan, why,
			       "%zu map entries change (a reload is quicker "
			       "past %d)",
			       plan->nr_map_ops, RUNTIME_MAP_OPS_MAX);
out:
	buf_release(&reason);
}

/* The words of one line of CLI output, at most `max`; their count. */
static size_t runtime_fields(const struct runtime_line *l,
			     struct runtime_line *f, size_t max)
{
	size_t n = 0, off = 0;

	while (n < max && runtime_word(l, &off, &f[n]))
		n++;
	return n;
}

int runtime_state_compare(const char *state, const struct runtime_servers *want,
			  struct buf *why)
{
	const char *p = state, *end = state + strlen(state);
	struct runtime_servers have;
	struct runtime_line l, f[19];
	int ret = -1, header = 0;
	size_t i;

	memset(&have, 0, sizeof(have));
	while (runtime_next_line(&p, end, &l)) {
		struct runtime_server *s;
		char *addr;

		if (!header) {
			/* The format version comes first. */
			if (!runtime_word_is(&l, "1")) {
				buf_setf(why, "'show servers state' answered "
					      "something else");
				goto out;
			}
			header = 1;
			continue;
		}
		if (!l.len || l.s[0] == '#')
			continue;
		if (runtime_fields(&l, f, ARRAY_SIZE(f)) < ARRAY_SIZE(f)) {
			buf_setf(why, "a 'show servers state' line is short");
			goto out;
		}
		/* Admin state 0: not in maintenance, not draining. */
		if (!runtime_word_is(&f[6], "0")) {
			buf_setf(why, "server %.*s/%.*s has admin state %.*s",
				 (int)f[1].len, f[1].s, (int)f[3].len, f[3].s,
				 (int)f[6].len, f[6].s);
			goto out;
		}
		addr = xstrndup(f[4].s, f[4].len);
		ALLOC_GROW(have.items, have.nr + 1, have.alloc);
		s = &have.items[have.nr++];
		memset(s, 0, sizeof(*s));
		s->backend = xstrndup(f[1].s, f[1].len);
		s->name = xstrndup(f[3].s, f[3].len);
		s->addr = addr;
		s->port = (unsigned)strtoul(f[18].s, NULL, 10);
	}
	if (!header) {
		buf_setf(why, "'show servers state' answered nothing");
		goto out;
	}
	if (have.nr)
		qsort(have.items, have.nr, sizeof(*have.items),
		      runtime_server_cmp);
	for (i = 0; i < have.nr || i < want->nr; i++) {
		const struct runtime_server *h = i < have.nr ? &have.items[i]
							     : NULL,
					    *w = i < want->nr ? &want->items[i]
							      : NULL;

		if (!h || !w || runtime_server_cmp(h, w)) {
			if (w && (!h || runtime_server_cmp(h, w) > 0))
				buf_setf(why, "server %s/%s is missing",
					 w->backend, w->name);
			else
				buf_setf(why, "server %s/%s is not in the file",
					 h->backend, h->name);
			goto out;
		}
		if (strcmp(h->addr, w->addr) || h->port != w->port) {
			buf_setf(why,
				 "server %s/%s is at %s port %u, not %s "
				 "port %u",
				 w->backend, w->name, h->addr, h->port, w->addr,
				 w->port);
			goto out;
		}
	}
	ret = 0;
out:
	runtime_servers_release(&have);
	return ret;
}

int runtime_map_compare(const char *shown,
			const struct runtime_map_entries *want, struct buf *why)
{
	const char *p = shown, *end = shown + strlen(shown);
	struct runtime_map_entries have;
	struct runtime_line l, f[4];
	int ret = -1;
	size_t i, n;

	memset(&have, 0, sizeof(have));
	while (runtime_next_line(&p, end, &l)) {
		n = runtime_fields(&l, f, ARRAY_SIZE(f));
		if (!n)
			continue;
		/* "0xPTR KEY VALUE": anything else is an error message. */
		if (n != 3 || f[0].len < 3 || memcmp(f[0].s, "0x", 2)) {
			buf_setf(why, "'show map' answered ");
			buf_addquoted(why, l.s, l.len > 200 ? 200 : l.len);
			goto out;
		}
		runtime_map_add_entry(&have, &f[1], &f[2]);
	}
	if (runtime_map_sort(&have, why))
		goto out;
	for (i = 0; i < have.nr || i < want->nr; i++) {
		const struct runtime_map_entry *h = i < have.nr ? &have.items[i]
								: NULL,
					       *w = i < want->nr
							    ? &want->items[i]
							    : NULL;
		int c = !h ? 1 : !w ? -1 : strcmp(h->key, w->key);

		if (c > 0) {
			buf_setf(why, "map key %s is missing", w->key);
			goto out;
		}
		if (c < 0) {
			buf_setf(why, "map key %s is not in the file", h->key);
			goto out;
		}
		if (strcmp(h->value, w->value)) {
			buf_setf(why, "map key %s gives %s, not %s", w->key,
				 h->value, w->value);
			goto out;
		}
	}
	ret = 0;
out:
	runtime_map_entries_release(&have);
	return ret;
}

/* Send "@1 CMD" to the current worker; its answer without trailing
 * newlines in `answer`. -1 when the master could not be asked. */
static int runtime_command(const struct haproxy_options *opts,
			   struct buf *answer, struct buf *err, const char *fmt,
			   ...) __attribute__((format(printf, 4, 5)));

static int runtime_command(const struct haproxy_options *opts,
			   struct buf *answer, struct buf *err, const char *fmt,
			   ...)
{
	struct buf cmd = BUF_INIT;
	va_list ap;
	int ret = -1;

	buf_addstr(&cmd, "@1 ");
	va_start(ap, fmt);
	buf_vaddf(&cmd, fmt, ap);
	va_end(ap);
	/* "quit" makes the master close the connection after the answer. */
	buf_addstr(&cmd, ";quit");
	buf_reset(answer);
	if (haproxy_master_command(opts->master_socket, cmd.buf,
				   opts->timeout_ms, answer, err) != ST_OK)
		goto out;
	while (answer->len && answer->buf[answer->len - 1] == '\n')
		buf_setlen(answer, answer->len - 1);
	ret = 0;
out:
	buf_release(&cmd);
	return ret;
}

/* A command whose only good answer is `expect`. */
static int runtime_expect(const struct haproxy_options *opts, struct buf *err,
			  const char *expect, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int runtime_expect(const struct haproxy_options *opts, struct buf *err,
			  const char *expect, const char *fmt, ...)
{
	struct buf cmd = BUF_INIT, answer = BUF_INIT;
	va_list ap;
	int ret = -1;

	va_start(ap, fmt);
	buf_vaddf(&cmd, fmt, ap);
	va_end(ap);
	if (runtime_command(opts, &answer, err, "%s", cmd.buf))
		goto out;
	if (strcmp(answer.buf, expect)) {
		buf_setf(err, "'%s' answered ", cmd.buf);
		buf_addquoted(err, answer.buf,
			      answer.len > 200 ? 200 : answer.len);
		goto out;
	}
	ret = 0;
out:
	buf_release(&cmd);
	buf_release(&answer);
	return ret;
}

static int runtime_add(const struct haproxy_options *opts,
		       const struct runtime_op *op, struct buf *err)
{
	const struct runtime_server *s = op->srv;
	int v6 = strchr(s->addr, ':') != NULL;

	if (runtime_expect(opts, err, "New server registered.",
			   "add server %s/%s %s%s%s:%u%s%s", s->backend,
			   s->name, v6 ? "[" : "", s->addr, v6 ? "]" : "",
			   s->port, *s->args ? " " : "", s->args))
		return -1;
	/* Without it, a server added at runtime gets an empty cookie. */
	if (op->dynamic_cookie &&
	    runtime_expect(opts, err, "", "enable dynamic-cookie backend %s",
			   s->backend))
		return -1;
	/* An added server starts in maintenance with its checks off; the
	 * `enabled` keyword of 2.6 shows it UP without sending it traffic. */
	if (runtime_has_option(s, "check") &&
	    runtime_expect(opts, err, "", "enable health %s/%s", s->backend,
			   s->name))
		return -1;
	return runtime_expect(opts, err, "", "enable server %s/%s", s->backend,
			      s->name);
}

static int runtime_set_addr(const struct haproxy_options *opts,
			    const struct runtime_server *s, struct buf *err)
{
	struct buf answer = BUF_INIT;
	int ret = -1;

	if (runtime_command(opts, &answer, err,
			    "set server %s/%s addr %s port %u", s->backend,
			    s->name, s->addr, s->port))
		goto out;
	if (strncmp(answer.buf, "IP changed from ", 16) &&
	    strncmp(answer.buf, "no need to change the addr", 26)) {
		buf_setf(err, "'set server %s/%s addr' answered ", s->backend,
			 s->name);
		buf_addquoted(err, answer.buf,
			      answer.len > 200 ? 200 : answer.len);
		goto out;
	}
	ret = 0;
out:
	buf_release(&answer);
	return ret;
}

/* Connections the server still uses, from `show servers conn`; -1: none
 * listed. */
static long runtime_used_conns(const char *text, const struct runtime_server *s)
{
	const char *p = text, *end = text + strlen(text);
	size_t blen = strlen(s->backend), nlen = strlen(s->name);
	struct runtime_line l, f[7];

	while (runtime_next_line(&p, end, &l)) {
		if (runtime_fields(&l, f, ARRAY_SIZE(f)) < ARRAY_SIZE(f) ||
		    f[0].len != blen + 1 + nlen ||
		    memcmp(f[0].s, s->backend, blen) || f[0].s[blen] != '/' ||
		    memcmp(f[0].s + blen + 1, s->name, nlen))
			continue;
		return strtol(f[6].s, NULL, 10);
	}
	return -1;
}

/* Drain, wait for the connections up to the bound, then remove. */
static int runtime_remove(const struct haproxy_options *opts,
			  const struct runtime_options *ropts,
			  const struct runtime_op *ops, size_t nr,
			  struct buf *err)
{
	struct buf answer = BUF_INIT;
	long long deadline;
	size_t i;
	int ret = -1, busy;

	for (i = 0; i < nr; i++)
		if (runtime_expect(opts, err, "",
				   "set server %s/%s state drain",
				   ops[i].srv->backend, ops[i].srv->name))
			goto out;
	deadline = (long long)clock_now_ms() + ropts->drain_ms;
	do {
		busy = 0;
		for (i = 0; i < nr && !busy; i++) {
			if (runtime_command(opts, &answer, err,
					    "show servers conn %s",
					    ops[i].srv->backend))
				goto out;
			busy = runtime_used_conns(answer.buf, ops[i].srv) > 0;
		}
		if (busy)
			clock_sleep_ms(RUNTIME_POLL_MS);
	} while (busy && (long long)clock_now_ms() < deadline);
	for (i = 0; i < nr; i++) {
		const struct runtime_server *s = ops[i].srv;

		if (runtime_expect(opts, err, "",
				   "set server %s/%s state maint", s->backend,
				   s->name) ||
		    runtime_expect(opts, err, "",
				   "shutdown sessions server %s/%s", s->backend,
				   s->name))
			goto out;
	}
	for (i = 0; i < nr; i++) {
		const struct runtime_server *s = ops[i].srv;

		deadline = (long long)clock_now_ms() + RUNTIME_DEL_RETRY_MS;
		for (;;) {
			if (runtime_command(opts, &answer, err,
					    "del server %s/%s", s->backend,
					    s->name))
				goto out;
			if (!strcmp(answer.buf, "Server deleted."))
				break;
			/* Shut sessions may take a moment to let go. */
			if (!strstr(answer.buf, "still") ||
			    (long long)clock_now_ms() >= deadline) {
				buf_setf(err, "'del server %s/%s' answered ",
					 s->backend, s->name);
				buf_addquoted(err, answer.buf,
					      answer.len > 200 ? 200
							       : answer.len);
				goto out;
			}
			clock_sleep_ms(RUNTIME_POLL_MS);
		}
	}
	ret = 0;
out:
	buf_release(&answer);
	return ret;
}

/* What HAProxy runs against `want`: 0 the same, 1 not, -1 not known. */
static int runtime_verify(const struct haproxy_options *opts,
			  const struct runtime_servers *want, struct buf *why)
{
	struct buf answer = BUF_INIT;
	int ret = -1;

	buf_init(&answer, HAPROXY_CONFIG_MAX);
	if (runtime_command(opts, &answer, why, "show servers state"))
		goto out;
	ret = runtime_state_compare(answer.buf, want, why) ? 1 : 0;
out:
	buf_release(&answer);
	return ret;
}

/* One map change; an answer but the empty one is an error. */
static int runtime_map_send(const struct haproxy_options *opts,
			    const struct runtime_map_op *op, struct buf *err)
{
	const struct runtime_map_entry *e = op->entry;

	switch (op->kind) {
	case RUNTIME_MAP_SET:
		return runtime_expect(opts, err, "", "set map %s %s %s",
				      op->path, e->key, e->value);
	case RUNTIME_MAP_ADD:
		return runtime_expect(opts, err, "", "add map %s %s %s",
				      op->path, e->key, e->value);
	case RUNTIME_MAP_DEL:
		break;
	}
	return runtime_expect(opts, err, "", "del map %s %s", op->path, e->key);
}

/* Every changed map as HAProxy holds it against its next file. */
static int runtime_map_verify(const struct haproxy_options *opts,
			      const struct runtime_plan *plan, struct buf *why)
{
	struct buf answer = BUF_INIT;
	int ret = -1;
	size_t i;

	buf_init(&answer, HAPROXY_CONFIG_MAX);
	for (i = 0; i < plan->nr_maps; i++) {
		if (runtime_command(opts, &answer, why, "show map %s",
				    plan->maps[i].path))
			goto out;
		if (runtime_map_compare(answer.buf, &plan->maps[i].next, why)) {
			buf_addf(why, " in %s", plan->maps[i].path);
			goto out;
		}
	}
	ret = 0;
out:
	buf_release(&answer);
	return ret;
}

/*
 * The plan for the config and for each file that differs from the one on
 * disk (the one HAProxy loaded); `changed` gets those files. Returns 1
 * when nothing differs at all.
 */
static int runtime_plan_set(const struct buf *live, const char *cfg, size_t len,
			    const struct haproxy_file *files, size_t nr_files,
			    struct haproxy_file *changed, size_t *nr_changed,
			    struct runtime_plan *plan, struct buf *err)
{
	struct buf disk = BUF_INIT, why = BUF_INIT;
	int same = live->len == len && !memcmp(live->buf, cfg, len);
	size_t i;

	*nr_changed = 0;
	runtime_plan_build(live->buf, live->len, cfg, len, plan, err);
	for (i = 0; i < nr_files; i++) {
		buf_init(&disk, HAPROXY_CONFIG_MAX);
		if (buf_read_file(&disk, files[i].path, &why) != ST_OK) {
			runtime_refuse(plan, err, "map %s is not on disk: %s",
				       files[i].path, why.buf);
			same = 0;
		} else if (disk.len != files[i].len ||
			   memcmp(disk.buf, files[i].data, disk.len)) {
			changed[(*nr_changed)++] = files[i];
			runtime_plan_map(plan, files[i].path, disk.buf,
					 disk.len, files[i].data, files[i].len,
					 err);
			same = 0;
		}
		buf_release(&disk);
	}
	buf_release(&why);
	return same;
}

enum runtime_outcome runtime_apply(const struct haproxy_options *opts,
				   const struct runtime_options *ropts,
				   const char *cfg, size_t len,
				   const struct haproxy_file *files,
				   size_t nr_files, struct runtime_plan *plan,
				   struct buf *err)
{
	struct buf live = BUF_INIT, err2 = BUF_INIT;
	struct haproxy_file changed[HAPROXY_MAX_FILES];
	enum runtime_outcome outcome = RUNTIME_INELIGIBLE;
	size_t del, i, nr_changed;
	int v;

	if (nr_files > HAPROXY_MAX_FILES)
		BUG("%zu files", nr_files);
	memset(plan, 0, sizeof(*plan));
	buf_init(&live, HAPROXY_CONFIG_MAX);
	if (buf_read_file(&live, opts->config, err) != ST_OK)
		goto out;
	if (runtime_plan_set(&live, cfg, len, files, nr_files, changed,
			     &nr_changed, plan, err)) {
		buf_setf(err, "the live files hold these bytes");
		goto out;
	}
	if (!plan->eligible)
		goto out;
	if (!ropts->enabled) {
		buf_setf(err, "runtime changes are off");
		goto out;
	}

	outcome = RUNTIME_FAILED;
	for (del = 0; del < plan->nr_ops; del++) {
		const struct runtime_op *op = &plan->ops[del];

		if (op->kind == RUNTIME_OP_DEL)
			break;
		if (op->kind == RUNTIME_OP_ADD
			    ? runtime_add(opts, op, err)
			    : runtime_set_addr(opts, op->srv, err))
			goto out;
	}
	/* After the adds, before the removals: a backend's servers are
	 * there whenever a map sends traffic to it. */
	for (i = 0; i < plan->nr_map_ops; i++)
		if (runtime_map_send(opts, &plan->map_ops[i], err))
			goto out;
	if (del < plan->nr_ops && runtime_remove(opts, ropts, plan->ops + del,
						 plan->nr_ops - del, err))
		goto out;
	v = runtime_verify(opts, &plan->next, err);
	if (!v)
		v = runtime_map_verify(opts, plan, err);
	if (v) {
		buf_addstr(err, " after the runtime changes");
		goto out;
	}
	/* The files stay the truth: any later reload gives this state. */
	if (haproxy_install(opts, cfg, len, changed, nr_changed, err) !=
	    ST_OK) {
		/* Back to what the live files say. */
		if (haproxy_reload(opts->master_socket, opts->timeout_ms,
				   &err2) != ST_OK)
			buf_addf(err,
				 "; the reload of the live file failed: %s",
				 err2.buf);
		goto out;
	}
	outcome = RUNTIME_APPLIED;
out:
	buf_release(&live);
	buf_release(&err2);
	return outcome;
}

int runtime_check_drift(const struct haproxy_options *opts, struct buf *why)
{
	struct runtime_servers want;
	struct buf live = BUF_INIT;
	int ret = -1;

	memset(&want, 0, sizeof(want));
	buf_init(&live, HAPROXY_CONFIG_MAX);
	if (buf_read_file(&live, opts->config, why) != ST_OK ||
	    runtime_servers_parse(live.buf, live.len, &want, why))
		goto out;
	ret = runtime_verify(opts, &want, why);
out:
	runtime_servers_release(&want);
	buf_release(&live);
	return ret;
}
