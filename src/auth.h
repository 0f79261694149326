/*
 * Access control: bearer tokens "lr_<id>_<secret>" kept in the store as
 * documents of kind "token", their scopes, and the per-process cache that
 * checks a request against them.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

struct store;

#define AUTH_DOC_KIND	  "token"
#define AUTH_ID_LEN	  12 /* lower-case base32 */
#define AUTH_SECRET_BYTES 32
#define AUTH_SECRET_LEN	  43 /* base64url without padding */
#define AUTH_HASH_LEN	  32 /* SHA-256 */
/* "lr_" id "_" secret */
#define AUTH_TOKEN_LEN (3 + AUTH_ID_LEN + 1 + AUTH_SECRET_LEN)

/* What a request does to a table; AUTH_WRITE implies AUTH_READ. */
#define AUTH_READ  1u
#define AUTH_WRITE 2u
#define AUTH_ADMIN 4u /* tokens, settings; only the admin scope has it */

/*
 * One scope: "admin", or "table:<pattern>:read|write" where the pattern is
 * a table name, "*", or a name prefix ending in '*' ("edge-*").
 */
struct auth_scope {
	int admin;
	char *pattern; /* NULL for admin */
	unsigned perm; /* AUTH_READ or AUTH_WRITE */
};

struct auth_token {
	char id[AUTH_ID_LEN + 1];
	unsigned char hash[AUTH_HASH_LEN]; /* SHA-256 of the secret text */
	struct auth_scope *scopes;
	size_t nr_scopes, alloc_scopes;
	int64_t created_at; /* ms since the epoch */
	int64_t expires_at; /* ms since the epoch; 0: never */
	char *description;  /* never NULL once parsed or made */
};

void auth_token_init(struct auth_token *t);
void auth_token_release(struct auth_token *t);

/* Parse `s` into `out` (release it); -1 with the reason in `err`. */
int auth_scope_parse(const char *s, struct auth_scope *out, struct buf *err);
void auth_scope_release(struct auth_scope *sc);
/* The scope as it is written ("table:edge-*:write"). */
void auth_scope_format(const struct auth_scope *sc, struct buf *out);

/* Add a parsed scope to `t` (steals its strings). */
void auth_token_add_scope(struct auth_token *t, struct auth_scope *sc);

/*
 * Whether `t` may do `perm` on `table`. `table` NULL asks for every table at
 * once (the body's table is not known yet): only admin and "table:*:..."
 * scopes answer yes. Expiry is not checked here.
 */
int auth_token_allows(const struct auth_token *t, const char *table,
		      unsigned perm);
/* Whether any scope of `t` grants `perm` on some table. */
int auth_token_allows_some(const struct auth_token *t, unsigned perm);
int auth_token_expired(const struct auth_token *t, int64_t now_ms);

/*
 * Make a new token: a random id and secret from getrandom(), the secret's
 * hash in `t`, and the token text (the one time it exists) into `text`.
 */
enum status auth_token_generate(struct auth_token *t, struct buf *text,
				struct buf *err) WARN_UNUSED;

/*
 * Split "lr_<id>_<secret>" (exact lengths and alphabets); 0 with the id and
 * secret NUL-terminated, -1 when `text` is not a token.
 */
int auth_token_split(const char *text, char id[AUTH_ID_LEN + 1],
		     char secret[AUTH_SECRET_LEN + 1]);
/* SHA-256 of `secret` (the base64url text, as it is sent). */
void auth_hash_secret(const char *secret, unsigned char out[AUTH_HASH_LEN]);
/* Compare `n` bytes in time that depends on `n` only. 1 when equal. */
int auth_equal_ct(const void *a, const void *b, size_t n);

/* The token as stored (the document's JSON; never the secret). */
void auth_token_to_json(const struct auth_token *t, struct buf *out);
/* Parse a stored token; -1 with the reason in `err`. */
int auth_token_from_json(const char *json, struct auth_token *t,
			 struct buf *err);

/* "90s", "15m", "12h", "30d" into ms; -1 with the reason in `err`. */
int auth_parse_duration(const char *s, uint64_t *ms, struct buf *err);

/* --auth: who decides whether requests need a token. */
enum auth_mode {
	AUTH_MODE_AUTO = 0, /* required unless every listener is loopback */
	AUTH_MODE_REQUIRED,
	AUTH_MODE_OFF,
};

/* "required", "off", "auto"; -1 for anything else. */
int auth_mode_parse(const char *s, enum auth_mode *out);

/* ---- the cache a server checks requests against ------------------------ */

enum auth_result {
	AUTH_OK = 0,
	AUTH_UNAUTHENTICATED, /* no token, not a token, unknown, expired: 401 */
	AUTH_FORBIDDEN,	      /* a valid token without the scope: 403 */
	AUTH_NEED_TABLE,      /* valid; the answer depends on the table */
};

struct auth;

/*
 * A cache of every token of the store `spec`, on a store handle of its own,
 * loaded now (a failure is an error: a server must not start unable to
 * check tokens). It reads the "token" generation at most once per
 * AUTH_REFRESH_MS and reloads the tokens when it moved, so a token created
 * or revoked by any process works or stops working here within about that.
 */
#define AUTH_REFRESH_MS 1000
enum status auth_new(const char *spec, struct auth **out,
		     struct buf *err) WARN_UNUSED;
void auth_free(struct auth *auth);

/*
 * Refresh from a thread of the cache's own, so that checks never wait on the
 * store (HTTP's polling threads). Without it, auth_check() refreshes inline
 * when due (Lambda: one invocation at a time, frozen in between).
 */
enum status auth_start(struct auth *auth, struct buf *err) WARN_UNUSED;

/*
 * Check the Authorization header value `authorization` (NULL: none) for
 * `perm` on `table` (NULL: the table is not known yet, see
 * auth_token_allows). Thread-safe; a lookup in the cache, a SHA-256 of the
 * secret and a constant-time compare.
 */
enum auth_result auth_check(struct auth *auth, const char *authorization,
			    const char *table, unsigned perm);

/* ---- the token subcommands' store operations --------------------------- */

/* Store a new token `t` (its id must be new: ST_CONFLICT otherwise). */
enum status auth_store_put(struct store *st, const struct auth_token *t,
			   struct buf *err) WARN_UNUSED;
/* Every stored token, in id order, appended to `out` (nr of them in *nr). */
enum status auth_store_list(struct store *st, struct auth_token **out,
			    size_t *nr, struct buf *err) WARN_UNUSED;
/* Delete the token `id`; ST_NOT_FOUND when there is none. */
enum status auth_store_revoke(struct store *st, const char *id,
			      struct buf *err) WARN_UNUSED;

#endif
