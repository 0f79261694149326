/*
 * The status page: one server-rendered HTML page of what the registry holds
 * (tables, services in rule order, agents, configs, recent rejections), its
 * style sheet, and the tiny login form that puts a token in a cookie. Every
 * value is HTML-escaped; the page has no script, so its CSP allows none.
 */
#ifndef UI_H
#define UI_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

struct registry;

/* The Content-Security-Policy of every page: nothing but our style sheet,
 * our forms, no frames, no scripts. */
#define UI_CSP                                                                 \
	"default-src 'none'; style-src 'self'; img-src 'self'; "               \
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

/* The cookie the login form sets: a token, as "Bearer" would carry it. */
#define UI_COOKIE "lr_token"

/*
 * The page for `reg` (NULL: the store is unavailable, said on the page).
 * `login`: auth is on, so the page offers to forget the cookie.
 */
void ui_page(struct registry *reg, int login, struct buf *out);

/* The rendered config of `table` as it stands, for download. */
enum status ui_config(struct registry *reg, const char *table, struct buf *out,
		      struct buf *err) WARN_UNUSED;

/* The style sheet of the page (static). */
const char *ui_style(void);

/* The login form, with `why` (may be NULL) said above it. */
void ui_login_page(const char *why, struct buf *out);

/*
 * The token of a login form body ("token=..."), into `token`; -1 when there
 * is none or it holds anything but token characters ([A-Za-z0-9_-], base64url),
 * so it can go into a header as it is.
 */
int ui_login_token(const char *body, size_t len, struct buf *token);

/* "Bearer TOKEN" from the UI_COOKIE of a Cookie header; -1 when none. */
int ui_cookie_token(const char *cookie, struct buf *out);

#endif
