/*
 * Tokens: their text format, hashing and scopes, their documents in the
 * store, and the cache that checks each request without asking the store.
 */
#include "auth.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "clock.h"
#include "log.h"
#include "payload.h"
#include "xalloc.h"
#include "store/store.h"
#include "banned.h"

static const char auth_base32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char auth_base64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void auth_token_init(struct auth_token *t)
{
	memset(t, 0, sizeof(*t));
}

void auth_scope_release(struct auth_scope *sc)
{
	free(sc->pattern);
	memset(sc, 0, sizeof(*sc));
}

void auth_token_release(struct auth_token *t)
{
	size_t i;

	for (i = 0; i < t->nr_scopes; i++)
		auth_scope_release(&t->scopes[i]);
	free(t->scopes);
	free(t->description);
	auth_token_init(t);
}

int auth_scope_parse(const char *s, struct auth_scope *out, struct buf *err)
{
	const char *name, *colon;
	struct buf pattern = BUF_INIT, why = BUF_INIT;
	size_t len;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (!strcmp(s, "admin")) {
		out->admin = 1;
		out->perm = AUTH_WRITE;
		return 0;
	}
	if (strncmp(s, "table:", 6))
		goto bad;
	name = s + 6;
	colon = strrchr(name, ':');
	if (!colon || colon == name)
		goto bad;
	if (!strcmp(colon + 1, "read"))
		out->perm = AUTH_READ;
	else if (!strcmp(colon + 1, "write"))
		out->perm = AUTH_WRITE;
	else
		goto bad;
	len = (size_t)(colon - name);
	(void)buf_add(&pattern, name, len);
	if (len > 1 && name[len - 1] == '*') {
		/* A prefix: the characters of a table name, no other '*'. */
		size_t i;

		for (i = 0; i < len - 1; i++) {
			char c = name[i];

			if (!((c >= 'a' && c <= 'z') ||
			      (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '_' || c == '-' ||
			      c == '.'))
				goto bad;
		}
	} else if (strcmp(pattern.buf, "*") &&
		   payload_check_table(pattern.buf, &why)) {
		goto bad;
	}
	out->pattern = buf_detach(&pattern, NULL);
	ret = 0;
	goto out;
bad:
	buf_reset(&why);
	(void)buf_addquoted(&why, s, strlen(s));
	buf_setf(err,
		 "scope %s is not admin, table:NAME:read, table:NAME:write, "
		 "table:PREFIX*:read|write or table:*:read|write",
		 why.buf);
	memset(out, 0, sizeof(*out));
out:
	buf_release(&pattern);
	buf_release(&why);
	return ret;
}

void auth_scope_format(const struct auth_scope *sc, struct buf *out)
{
	if (sc->admin)
		(void)buf_addstr(out, "admin");
	else
		(void)buf_addf(out, "table:%s:%s", sc->pattern,
			       sc->perm == AUTH_WRITE ? "write" : "read");
}

void auth_token_add_scope(struct auth_token *t, struct auth_scope *sc)
{
	ALLOC_GROW(t->scopes, t->nr_scopes + 1, t->alloc_scopes);
	t->scopes[t->nr_scopes++] = *sc;
	memset(sc, 0, sizeof(*sc));
}

/* Whether the pattern of `sc` covers `table` (NULL: every table). */
static int auth_scope_covers(const struct auth_scope *sc, const char *table)
{
	size_t len;

	if (sc->admin || !strcmp(sc->pattern, "*"))
		return 1;
	if (!table)
		return 0;
	len = strlen(sc->pattern);
	if (sc->pattern[len - 1] == '*')
		return !strncmp(sc->pattern, table, len - 1);
	return !strcmp(sc->pattern, table);
}

int auth_token_allows(const struct auth_token *t, const char *table,
		      unsigned perm)
{
	size_t i;

	for (i = 0; i < t->nr_scopes; i++)
		if (perm == AUTH_ADMIN && t->scopes[i].admin)
			return 1;
	if (perm == AUTH_ADMIN)
		return 0;
	for (i = 0; i < t->nr_scopes; i++)
		if ((t->scopes[i].perm & AUTH_WRITE ||
		     t->scopes[i].perm == perm) &&
		    auth_scope_covers(&t->scopes[i], table))
			return 1;
	return 0;
}

int auth_token_allows_some(const struct auth_token *t, unsigned perm)
{
	size_t i;

	for (i = 0; i < t->nr_scopes; i++)
		if (perm != AUTH_ADMIN && (t->scopes[i].perm & AUTH_WRITE ||
					   t->scopes[i].perm == perm))
			return 1;
	return 0;
}

int auth_token_expired(const struct auth_token *t, int64_t now_ms)
{
	return t->expires_at && now_ms >= t->expires_at;
}

int auth_equal_ct(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;
	size_t i;

	for (i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

void auth_hash_secret(const char *secret, unsigned char out[AUTH_HASH_LEN])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), out))
		BUG("gnutls_hash_fast(SHA-256) failed");
}

static int auth_random(void *out, size_t len, struct buf *err)
{
	unsigned char *p = out;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			buf_setf(err, "getrandom: %s", strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

enum status auth_token_generate(struct auth_token *t, struct buf *text,
				struct buf *err)
{
	unsigned char idbytes[8], secret[AUTH_SECRET_BYTES];
	char enc[AUTH_SECRET_LEN + 1];
	uint64_t bits = 0;
	size_t i, o = 0;
	unsigned acc = 0, nbits = 0;

	if (auth_random(idbytes, sizeof(idbytes), err) ||
	    auth_random(secret, sizeof(secret), err))
		return ST_INTERNAL;
	for (i = 0; i < sizeof(idbytes); i++)
		bits = bits << 8 | idbytes[i];
	for (i = 0; i < AUTH_ID_LEN; i++)
		t->id[i] = auth_base32[(bits >> (5 * i)) & 31];
	t->id[AUTH_ID_LEN] = '\0';
	for (i = 0; i < sizeof(secret); i++) {
		acc = acc << 8 | secret[i];
		nbits += 8;
		while (nbits >= 6) {
			nbits -= 6;
			enc[o++] = auth_base64url[(acc >> nbits) & 63];
		}
	}
	if (nbits)
		enc[o++] = auth_base64url[(acc << (6 - nbits)) & 63];
	enc[o] = '\0';
	if (o != AUTH_SECRET_LEN)
		BUG("secret encoded to %zu characters", o);
	auth_hash_secret(enc, t->hash);
	buf_reset(text);
	(void)buf_addf(text, "lr_%s_%s", t->id, enc);
	memset(secret, 0, sizeof(secret));
	memset(enc, 0, sizeof(enc));
	return ST_OK;
}

static int auth_all_in(const char *s, size_t len, const char *alphabet)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!s[i] || !strchr(alphabet, s[i]))
			return 0;
	return 1;
}

int auth_token_split(const char *text, char id[AUTH_ID_LEN + 1],
		     char secret[AUTH_SECRET_LEN + 1])
{
	const char *s = text + 3 + AUTH_ID_LEN + 1;

	if (strlen(text) != AUTH_TOKEN_LEN || strncmp(text, "lr_", 3) ||
	    text[3 + AUTH_ID_LEN] != '_' ||
	    !auth_all_in(text + 3, AUTH_ID_LEN, auth_base32) ||
	    !auth_all_in(s, AUTH_SECRET_LEN, auth_base64url))
		return -1;
	/* The last character carries 4 bits: its other 2 must be zero, so a
	 * token has exactly one spelling. */
	if ((strchr(auth_base64url, s[AUTH_SECRET_LEN - 1]) - auth_base64url) &
	    3)
		return -1;
	memcpy(id, text + 3, AUTH_ID_LEN);
	id[AUTH_ID_LEN] = '\0';
	memcpy(secret, s, AUTH_SECRET_LEN);
	secret[AUTH_SECRET_LEN] = '\0';
	return 0;
}

void auth_token_to_json(const struct auth_token *t, struct buf *out)
{
	struct buf scope = BUF_INIT;
	size_t i;

	(void)buf_addf(out, "{\"id\":\"%s\",\"sha256\":\"", t->id);
	(void)buf_addhex(out, t->hash, AUTH_HASH_LEN);
	(void)buf_addstr(out, "\",\"scopes\":[");
	for (i = 0; i < t->nr_scopes; i++) {
		buf_reset(&scope);
		auth_scope_format(&t->scopes[i], &scope);
		if (i)
			(void)buf_addch(out, ',');
		(void)buf_addjson(out, scope.buf, scope.len);
	}
	(void)buf_addf(out, "],\"created_at\":%lld,\"expires_at\":",
		       (long long)t->created_at);
	if (t->expires_at)
		(void)buf_addf(out, "%lld", (long long)t->expires_at);
	else
		(void)buf_addstr(out, "null");
	(void)buf_addstr(out, ",\"description\":");
	(void)buf_addjson(out, t->description ? t->description : "",
			  t->description ? strlen(t->description) : 0);
	(void)buf_addch(out, '}');
	buf_release(&scope);
}

static int auth_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int auth_token_from_json(const char *json, struct auth_token *t,
			 struct buf *err)
{
	json_t *root = json_loads(json, 0, NULL), *scopes, *v;
	const char *id, *hash, *desc;
	struct auth_scope sc;
	size_t i;
	int ret = -1;

	auth_token_init(t);
	id = json_string_value(json_object_get(root, "id"));
	hash = json_string_value(json_object_get(root, "sha256"));
	scopes = json_object_get(root, "scopes");
	desc = json_string_value(json_object_get(root, "description"));
	if (!id || strlen(id) != AUTH_ID_LEN ||
	    !auth_all_in(id, AUTH_ID_LEN, auth_base32) || !hash ||
	    strlen(hash) != 2 * AUTH_HASH_LEN || !json_is_array(scopes) ||
	    !json_is_integer(json_object_get(root, "created_at"))) {
		buf_setf(err, "a stored token is damaged");
		goto out;
	}
	memcpy(t->id, id, AUTH_ID_LEN + 1);
	for (i = 0; i < AUTH_HASH_LEN; i++) {
		int hi = auth_hex(hash[2 * i]), lo = auth_hex(hash[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			buf_setf(err, "token '%s': damaged hash", id);
			goto out;
		}
		t->hash[i] = (unsigned char)(hi << 4 | lo);
	}
	json_array_foreach(scopes, i, v)
	{
		if (!json_is_string(v) ||
		    auth_scope_parse(json_string_value(v), &sc, err))
			goto out;
		auth_token_add_scope(t, &sc);
	}
	t->created_at = json_integer_value(json_object_get(root, "created_at"));
	v = json_object_get(root, "expires_at");
	t->expires_at = json_is_integer(v) ? json_integer_value(v) : 0;
	t->description = xstrdup(desc ? desc : "");
	ret = 0;
out:
	if (ret)
		auth_token_release(t);
	json_decref(root);
	return ret;
}

int auth_parse_duration(const char *s, uint64_t *ms, struct buf *err)
{
	unsigned long long v, unit;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || !v || !end[0] || end[1])
		goto bad;
	switch (*end) {
	case 's':
		unit = 1000;
		break;
	case 'm':
		unit = 60 * 1000;
		break;
	case 'h':
		unit = 3600 * 1000;
		break;
	case 'd':
		unit = 86400 * 1000;
		break;
	default:
		goto bad;
	}
	/* Ten years at most: beyond that a token should not expire. */
	if (v > 3650ULL * 86400 * 1000 / unit)
		goto bad;
	*ms = v * unit;
	return 0;
bad:
	buf_setf(err,
		 "duration '%s' is not a positive number with s, m, h or d, up "
		 "to 3650d",
		 s);
	return -1;
}

int auth_mode_parse(const char *s, enum auth_mode *out)
{
	if (!strcmp(s, "auto"))
		*out = AUTH_MODE_AUTO;
	else if (!strcmp(s, "required"))
		*out = AUTH_MODE_REQUIRED;
	else if (!strcmp(s, "off"))
		*out = AUTH_MODE_OFF;
	else
		return -1;
	return 0;
}

/* ---- store operations ---------------------------------------------------- */

enum status auth_store_put(struct store *st, const struct auth_token *t,
			   struct buf *err)
{
	struct buf json = BUF_INIT;
	enum status ret;

	auth_token_to_json(t, &json);
	ret = store_doc_put(st, AUTH_DOC_KIND, t->id, json.buf, 0, NULL, err);
	buf_release(&json);
	return ret;
}

static int auth_token_cmp(const void *a, const void *b)
{
	return strcmp(((const struct auth_token *)a)->id,
		      ((const struct auth_token *)b)->id);
}

enum status auth_store_list(struct store *st, struct auth_token **out,
			    size_t *nr, struct buf *err)
{
	struct store_doc_list list;
	struct buf after = BUF_INIT, why = BUF_INIT;
	size_t alloc = 0, i;
	enum status ret;

	*out = NULL;
	*nr = 0;
	store_doc_list_init(&list);
	for (;;) {
		ret = store_doc_list(st, AUTH_DOC_KIND, after.buf, 100, &list,
				     err);
		if (ret != ST_OK || !list.nr)
			break;
		for (i = 0; i < list.nr; i++) {
			ALLOC_GROW(*out, *nr + 1, alloc);
			buf_reset(&why);
			if (auth_token_from_json(list.items[i].value,
						 &(*out)[*nr], &why)) {
				/* one damaged token must not lock out all */
				log_event("event=auth_token_skipped key=%s "
					  "reason=%s",
					  log_quote(&after, list.items[i].key),
					  why.buf);
				continue;
			}
			(*nr)++;
		}
		buf_reset(&after);
		(void)buf_addstr(&after, list.items[list.nr - 1].key);
		store_doc_list_release(&list);
	}
	store_doc_list_release(&list);
	if (ret != ST_OK) {
		for (i = 0; i < *nr; i++)
			auth_token_release(&(*out)[i]);
		free(*out);
		*out = NULL;
		*nr = 0;
	} else if (*nr) {
		qsort(*out, *nr, sizeof(**out), auth_token_cmp);
	}
	buf_release(&after);
	buf_release(&why);
	return ret;
}

enum status auth_store_revoke(struct store *st, const char *id, struct buf *err)
{
	return store_doc_delete(st, AUTH_DOC_KIND, id, err);
}

/* ---- the cache ------------------------------------------------------------
 */

struct auth {
	struct store *st; /* used by the refresher only (or inline) */
	pthread_rwlock_t lock;
	struct auth_token *tokens; /* sorted by id; swapped under `lock` */
	size_t nr;
	uint64_t generation; /* of `tokens` */
	uint64_t next_ms;    /* monotonic time of the next generation read */
	pthread_mutex_t refresh_lock;
	int threaded;
	pthread_t thread;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	int stop;
};

static void auth_free_tokens(struct auth_token *tokens, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++)
		auth_token_release(&tokens[i]);
	free(tokens);
}

/*
 * Reload the tokens if the kind's generation moved. The generation is read
 * before the tokens, so a write in between makes the next read reload
 * again: the cache may reload once too often, never keep a stale set.
 */
static enum status auth_refresh(struct auth *auth, struct buf *err)
{
	struct auth_token *tokens = NULL, *old;
	size_t nr = 0, old_nr;
	uint64_t gen = 0;
	enum status ret;

	ret = store_doc_generation(auth->st, AUTH_DOC_KIND, &gen, err);
	if (ret != ST_OK || (gen == auth->generation && auth->next_ms))
		return ret;
	ret = auth_store_list(auth->st, &tokens, &nr, err);
	if (ret != ST_OK)
		return ret;
	pthread_rwlock_wrlock(&auth->lock);
	old = auth->tokens;
	old_nr = auth->nr;
	auth->tokens = tokens;
	auth->nr = nr;
	auth->generation = gen;
	pthread_rwlock_unlock(&auth->lock);
	auth_free_tokens(old, old_nr);
	return ST_OK;
}

static void auth_refresh_logged(struct auth *auth)
{
	struct buf err = BUF_INIT, q = BUF_INIT;

	if (auth_refresh(auth, &err) != ST_OK)
		log_event("event=auth_refresh_failed level=warning error=%s",
			  log_quote(&q, err.buf));
	auth->next_ms = clock_now_ms() + AUTH_REFRESH_MS;
	buf_release(&err);
	buf_release(&q);
}

enum status auth_new(const char *spec, struct auth **out, struct buf *err)
{
	struct auth *auth = xcalloc(1, sizeof(*auth));
	enum status ret;

	*out = NULL;
	pthread_rwlock_init(&auth->lock, NULL);
	pthread_mutex_init(&auth->refresh_lock, NULL);
	pthread_mutex_init(&auth->stop_lock, NULL);
	pthread_cond_init(&auth->stop_cond, NULL);
	ret = store_open(spec, &auth->st, err);
	if (ret == ST_OK)
		ret = auth_refresh(auth, err);
	if (ret != ST_OK) {
		auth_free(auth);
		return ret;
	}
	auth->next_ms = clock_now_ms() + AUTH_REFRESH_MS;
	*out = auth;
	return ST_OK;
}

static void *auth_refresher(void *arg)
{
	struct auth *auth = arg;

	pthread_mutex_lock(&auth->stop_lock);
	while (!auth->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)AUTH_REFRESH_MS * 1000000;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&auth->stop_cond, &auth->stop_lock, &ts);
		if (auth->stop)
			break;
		pthread_mutex_unlock(&auth->stop_lock);
		auth_refresh_logged(auth);
		pthread_mutex_lock(&auth->stop_lock);
	}
	pthread_mutex_unlock(&auth->stop_lock);
	return NULL;
}

enum status auth_start(struct auth *auth, struct buf *err)
{
	if (pthread_create(&auth->thread, NULL, auth_refresher, auth)) {
		buf_setf(err, "cannot start a thread: %s", strerror(errno));
		return ST_UNAVAILABLE;
	}
	auth->threaded = 1;
	return ST_OK;
}

void auth_free(struct auth *auth)
{
	if (!auth)
		return;
	if (auth->threaded) {
		pthread_mutex_lock(&auth->stop_lock);
		auth->stop = 1;
		pthread_cond_signal(&auth->stop_cond);
		pthread_mutex_unlock(&auth->stop_lock);
		pthread_join(auth->thread, NULL);
	}
	auth_free_tokens(auth->tokens, auth->nr);
	store_close(auth->st);
	pthread_rwlock_destroy(&auth->lock);
	pthread_mutex_destroy(&auth->refresh_lock);
	pthread_mutex_destroy(&auth->stop_lock);
	pthread_cond_destroy(&auth->stop_cond);
	free(auth);
}

/* The token text of an Authorization value "Bearer <token>", or NULL. */
static const char *auth_bearer(const char *value)
{
	if (!value || strncasecmp(value, "Bearer", 6) ||
	    (value[6] != ' ' && value[6] != '\t'))
		return NULL;
	value += 6;
	while (*value == ' ' || *value == '\t')
		value++;
	return value;
}

enum auth_result auth_check(struct auth *auth, const char *authorization,
			    const char *table, unsigned perm)
{
	const char *text = auth_bearer(authorization);
	char id[AUTH_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
	unsigned char hash[AUTH_HASH_LEN];
	struct auth_token key, *t;
	enum auth_result ret = AUTH_UNAUTHENTICATED;

	if (!text || auth_token_split(text, id, secret))
		return AUTH_UNAUTHENTICATED;
	if (!auth->threaded && clock_now_ms() >= auth->next_ms &&
	    !pthread_mutex_trylock(&auth->refresh_lock)) {
		auth_refresh_logged(auth);
		pthread_mutex_unlock(&auth->refresh_lock);
	}
	auth_hash_secret(secret, hash);
	memcpy(key.id, id, sizeof(id));
	pthread_rwlock_rdlock(&auth->lock);
	t = auth->nr ? bsearch(&key, auth->tokens, auth->nr,
			       sizeof(*auth->tokens), auth_token_cmp)
		     : NULL;
	if (!t || !auth_equal_ct(t->hash, hash, AUTH_HASH_LEN) ||
	    auth_token_expired(t, (int64_t)clock_real_ms()))
		ret = AUTH_UNAUTHENTICATED;
	else if (auth_token_allows(t, table, perm))
		ret = AUTH_OK;
	else if (!table && auth_token_allows_some(t, perm))
		ret = AUTH_NEED_TABLE;
	else
		ret = AUTH_FORBIDDEN;
	pthread_rwlock_unlock(&auth->lock);
	memset(secret, 0, sizeof(secret));
	return ret;
}
