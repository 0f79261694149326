/*
 * The status page: server-rendered HTML of what the registry holds (a
 * paged list of tables, and per table its agents, services in rule order
 * and config; recent rejections), its style sheet, and the tiny login form that
 * puts a token in a cookie. Every value is HTML-escaped; the page has no
 * script, so its CSP allows none.
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

/* Tables listed on one page of `/` by default, and at most. */
#define UI_PAGE_DEFAULT 100
#define UI_PAGE_MAX	1000

/*
 * The main page for `reg` (NULL: the store is unavailable, said on the
 * page): the changes sparkline, one page of the stored tables (at most
 * `limit` of those sorting after `after`, as GET /v1/tables pages them,
 * with a link to the next page), the recent rejections and store errors.
 * `login`: auth is on, so the page offers to forget the cookie.
 */
void ui_page(struct registry *reg, int login, const char *after, size_t limit,
	     struct buf *out);

/*
 * The page of one table: its agents, its services in rule order, its
 * config. ST_NOT_FOUND for a table never written, ST_INVALID for a bad
 * name, ST_UNAVAILABLE when the store cannot be read; `err` says why.
 */
enum status ui_table_page(struct registry *reg, const char *table, int login,
			  struct buf *out, struct buf *err) WARN_UNUSED;

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
