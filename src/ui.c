/* The status page and its login form, rendered on the server as HTML. */
#include "ui.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "changes.h"
#include "clock.h"
#include "metrics.h"
#include "registry.h"
#include "report.h"
#include "service.h"
#include "store/store.h"
#include "xalloc.h"
#include "banned.h"

static const char ui_css[] =
	"body{font-family:system-ui,sans-serif;margin:0 auto;max-width:72rem;"
	"padding:0 1rem;color:#1d1d1f;background:#fafafa}"
	"h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}"
	"h3{font-size:1rem}"
	"table{border-collapse:collapse;width:100%;margin:.5rem 0;"
	"font-size:.9rem}"
	"th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid "
	"#ddd;vertical-align:top;overflow-wrap:anywhere}"
	"th{background:#eee}"
	".num{text-align:right}"
	"tr.stale td{background:#fff3cd}"
	".badge{font-size:.75rem;padding:0 .3rem;border-radius:.2rem;"
	"background:#d9534f;color:#fff}"
	"pre{background:#fff;border:1px solid #ddd;padding:.5rem;"
	"overflow:auto;max-height:24rem;font-size:.8rem}"
	".muted{color:#666}"
	".wrap{overflow-x:auto}"
	"form{margin:2rem 0}input{font-size:1rem;padding:.3rem;width:100%;"
	"max-width:30rem}"
	"@media (max-width:40rem){th,td{padding:.2rem;font-size:.8rem}}";

const char *ui_style(void)
{
	return ui_css;
}

/* Append `s` with &, <, >, " and ' as entities: safe in text and in quoted
 * attribute values. */
static void ui_esc(struct buf *out, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			(void)buf_addstr(out, "&amp;");
			break;
		case '<':
			(void)buf_addstr(out, "&lt;");
			break;
		case '>':
			(void)buf_addstr(out, "&gt;");
			break;
		case '"':
			(void)buf_addstr(out, "&quot;");
			break;
		case '\'':
			(void)buf_addstr(out, "&#39;");
			break;
		default:
			(void)buf_addch(out, *s);
		}
	}
}

static void ui_time(struct buf *out, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char text[32];

	if (ms <= 0 || !gmtime_r(&t, &tm) ||
	    !strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%SZ", &tm)) {
		(void)buf_addstr(out, "-");
		return;
	}
	(void)buf_addf(out, "<time datetime=\"%s\">%s</time>", text, text);
}

static void ui_head(struct buf *out, const char *title, int refresh)
{
	(void)buf_addstr(out, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
			      "<meta charset=\"utf-8\">"
			      "<meta name=\"viewport\" content=\"width=device-"
			      "width, initial-scale=1\">");
	/* Refreshing without script keeps the CSP at script-src 'none'. */
	if (refresh)
		(void)buf_addstr(out, "<meta http-equiv=\"refresh\" "
				      "content=\"30\">");
	(void)buf_addstr(out, "<title>");
	ui_esc(out, title);
	(void)buf_addstr(out, "</title><link rel=\"stylesheet\" "
			      "href=\"/ui/style.css\"></head><body>");
}

void ui_login_page(const char *why, struct buf *out)
{
	ui_head(out, "lambda-registry: sign in", 0);
	(void)buf_addstr(out, "<h1>lambda-registry</h1>");
	if (why) {
		(void)buf_addstr(out, "<p id=\"why\">");
		ui_esc(out, why);
		(void)buf_addstr(out, "</p>");
	}
	(void)buf_addstr(out,
			 "<form method=\"post\" action=\"/ui/login\">"
			 "<label for=\"token\">Token (scope admin or "
			 "table:*:read)</label><br>"
			 "<input id=\"token\" name=\"token\" type=\"password\" "
			 "autocomplete=\"off\" required><br><br>"
			 "<button type=\"submit\">Sign "
			 "in</button></form></body></html>\n");
}

static int ui_token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* The value of `name` in "a=b; name=value" or "a=b&name=value", split on
 * `sep`; -1 when missing or holding anything but token characters. */
static int ui_pick(const char *s, size_t len, char sep, const char *name,
		   struct buf *out)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		size_t end = i, v;

		while (end < len && s[end] != sep)
			end++;
		while (i < end && s[i] == ' ')
			i++;
		if (end - i > nlen && !memcmp(s + i, name, nlen) &&
		    s[i + nlen] == '=') {
			v = i + nlen + 1;
			if (v == end)
				return -1;
			for (i = v; i < end; i++)
				if (!ui_token_char(s[i]))
					return -1;
			(void)buf_add(out, s + v, end - v);
			return 0;
		}
		i = end + 1;
	}
	return -1;
}

int ui_login_token(const char *body, size_t len, struct buf *token)
{
	buf_reset(token);
	return body ? ui_pick(body, len, '&', "token", token) : -1;
}

int ui_cookie_token(const char *cookie, struct buf *out)
{
	struct buf token = BUF_INIT;
	int ret = -1;

	buf_reset(out);
	if (cookie &&
	    !ui_pick(cookie, strlen(cookie), ';', UI_COOKIE, &token)) {
		(void)buf_addf(out, "Bearer %s", token.buf);
		ret = 0;
	}
	buf_release(&token);
	return ret;
}

/* Bars of the stored changes per hour over the last day (of `table`, or of
 * all when NULL), as inline SVG. */
static void ui_sparkline(struct buf *out, struct registry *reg,
			 const char *table)
{
	uint64_t hours[CHANGES_HOURS] = {0}, max = 0, total = 0;
	struct buf err = BUF_INIT;
	enum status st = ST_UNAVAILABLE;
	size_t i;

	if (reg)
		st = registry_changes_per_hour(reg, table, hours, &err);
	for (i = 0; i < CHANGES_HOURS; i++) {
		total += hours[i];
		if (hours[i] > max)
			max = hours[i];
	}
	(void)buf_addf(out,
		       "<section id=\"changes\"><h2>Changes per hour, last "
		       "24 hours</h2><svg id=\"sparkline\" "
		       "xmlns=\"http://www.w3.org/2000/svg\" width=\"240\" "
		       "height=\"40\" viewBox=\"0 0 240 40\" role=\"img\" "
		       "aria-label=\"%llu changes in the last 24 hours\">",
		       (unsigned long long)total);
	for (i = 0; i < CHANGES_HOURS; i++) {
		unsigned h = max ? (unsigned)(hours[i] * 38 / max) : 0;

		if (hours[i] && !h)
			h = 1;
		(void)buf_addf(out,
			       "<rect x=\"%zu\" y=\"%u\" width=\"8\" "
			       "height=\"%u\" fill=\"#4a7bd0\" "
			       "data-changes=\"%llu\"><title>%llu, %zu h "
			       "ago</title></rect>",
			       i * 10, 40 - h, h, (unsigned long long)hours[i],
			       (unsigned long long)hours[i],
			       CHANGES_HOURS - 1 - i);
	}
	(void)buf_addf(out,
		       "<line x1=\"0\" y1=\"39.5\" x2=\"240\" y2=\"39.5\" "
		       "stroke=\"#999\"/></svg> <span class=\"muted\">%llu "
		       "stored changes",
		       (unsigned long long)total);
	if (reg && st != ST_OK) {
		(void)buf_addstr(out, " (cannot be read: ");
		ui_esc(out, err.buf);
		(void)buf_addch(out, ')');
	}
	(void)buf_addstr(out, "</span></section>");
	buf_release(&err);
}

/* Whether report document `doc` is about `table`; its agent id if so. */
static const char *ui_report_agent(const struct store_doc *doc,
				   const char *table)
{
	size_t len = strlen(table);

	if (strncmp(doc->key, table, len) || doc->key[len] != '/')
		return NULL;
	return doc->key + len + 1;
}

struct ui_table {
	const char *name;
	struct service_list services;
	struct buf config, err;
	uint64_t version, servers;
	int64_t last_change;
	enum status st;
};

static void ui_agents(struct buf *out, const struct ui_table *t,
		      const struct store_doc_list *reports, int64_t now)
{
	struct buf err = BUF_INIT, field = BUF_INIT;
	size_t i, n = 0;

	(void)buf_addstr(out, "<h3>Agents</h3><div class=\"wrap\"><table "
			      "class=\"agents\"><thead><tr><th>agent</th>"
			      "<th class=\"num\">applied index</th>"
			      "<th>method</th><th>result</th><th>HAProxy</th>"
			      "<th class=\"num\">up</th><th class=\"num\">"
			      "down</th><th>reported</th></tr></thead><tbody>");
	for (i = 0; i < reports->nr; i++) {
		const char *agent =
			ui_report_agent(&reports->items[i], t->name);
		const char *value = reports->items[i].value;
		struct report r;
		int stale;

		if (!agent)
			continue;
		n++;
		if (report_parse(value, strlen(value), &r, &err, &field)) {
			(void)buf_addstr(out, "<tr><td>");
			ui_esc(out, agent);
			(void)buf_addstr(out, "</td><td colspan=\"7\">an "
					      "unreadable report</td></tr>");
			continue;
		}
		stale = t->version && r.applied_index < t->version;
		(void)buf_addf(out, "<tr class=\"agent%s\"><td>",
			       stale ? " stale" : "");
		ui_esc(out, agent);
		if (stale)
			(void)buf_addstr(out, " <span class=\"badge\">"
					      "stale</span>");
		(void)buf_addf(out,
			       "</td><td class=\"num\">%llu</td><td>%s</td>"
			       "<td>",
			       (unsigned long long)r.applied_index, r.method);
		ui_esc(out, r.result);
		(void)buf_addstr(out, "</td><td>");
		ui_esc(out, r.haproxy_version);
		(void)buf_addf(out,
			       "</td><td class=\"num\">%llu</td><td "
			       "class=\"num\">%llu</td><td>",
			       (unsigned long long)r.up,
			       (unsigned long long)r.down);
		ui_time(out, r.received_ms);
		(void)buf_addf(out,
			       " <span class=\"muted\">(%llds ago)</span>"
			       "</td></tr>",
			       (long long)((now - r.received_ms) / 1000));
	}
	if (!n)
		(void)buf_addstr(out, "<tr><td colspan=\"8\" class=\"muted\">"
				      "no agent has reported</td></tr>");
	(void)buf_addstr(out, "</tbody></table></div>");
	buf_release(&err);
	buf_release(&field);
}

static void ui_service_row(struct buf *out, size_t pos,
			   const struct service *svc, int routed)
{
	char text[DURATION_TEXT_MAX];
	size_t i;

	(void)buf_addf(out,
		       "<tr class=\"service\"><td class=\"num\">%zu</td>"
		       "<td class=\"name\">",
		       pos);
	ui_esc(out, svc->name);
	(void)buf_addf(out, "</td><td class=\"rule\">%s ",
		       svc->mode == CONFIG_MODE_PATH ? "path" : "host");
	if (svc->mode == CONFIG_MODE_PATH)
		(void)buf_addch(out, '/');
	ui_esc(out, svc->predicate);
	if (!routed)
		(void)buf_addstr(out, " <span class=\"muted\">(not "
				      "routed)</span>");
	(void)buf_addf(out, "</td><td>%u</td><td>%s</td><td class=\"check\">",
		       svc->port, balance_name(svc->opts.balance));
	if (svc->opts.check_path) {
		(void)buf_addstr(out, "GET ");
		ui_esc(out, svc->opts.check_path);
		if (svc->opts.check_status)
			(void)buf_addf(out, " expect %u",
				       svc->opts.check_status);
		if (svc->opts.check_inter) {
			duration_text(svc->opts.check_inter, text);
			(void)buf_addf(out, " every %s", text);
		}
	} else {
		(void)buf_addstr(out, "TCP connect");
	}
	(void)buf_addstr(out, "</td><td class=\"sticky\">");
	if (svc->cookie) {
		(void)buf_addstr(out, "cookie ");
		ui_esc(out, svc->cookie);
		(void)buf_addf(out, " (%s)",
			       cookie_mode_name(svc->opts.cookie_mode));
	} else {
		(void)buf_addstr(out, "none");
	}
	(void)buf_addstr(out, "</td><td class=\"containers\">");
	for (i = 0; i < svc->nr_containers; i++) {
		(void)buf_addstr(out, i ? "<br>" : "");
		ui_esc(out, svc->containers[i].id);
		(void)buf_addstr(out, " ");
		ui_esc(out, svc->containers[i].ip);
		(void)buf_addf(out, ":%u", svc->port);
	}
	(void)buf_addstr(out, "</td></tr>");
}

/*
 * The services in the order of the frontend's use_backend lines, which is
 * the order HAProxy tries their rules in; services without a line (nothing
 * to route to) come after.
 */
static void ui_services(struct buf *out, const struct ui_table *t)
{
	static const char marker[] = "\n    use_backend ";
	char *shown = xcalloc(t->services.nr + 1, 1);
	const char *p = t->config.buf;
	size_t i, pos = 0;

	(void)buf_addstr(out,
			 "<h3>Services, in rule order</h3><div class=\"wrap\">"
			 "<table class=\"services\"><thead><tr><th "
			 "class=\"num\">#</th><th>service</th><th>rule</th>"
			 "<th>port</th><th>balance</th><th>health check</th>"
			 "<th>stickiness</th><th>containers</th></tr></thead>"
			 "<tbody>");
	while ((p = strstr(p, marker))) {
		const char *name = p + strlen(marker);
		size_t len = strcspn(name, " \n");

		p = name;
		for (i = 0; i < t->services.nr; i++) {
			const struct service *svc = &t->services.items[i];

			if (!shown[i] && strlen(svc->name) == len &&
			    !memcmp(svc->name, name, len)) {
				shown[i] = 1;
				ui_service_row(out, ++pos, svc, 1);
				break;
			}
		}
	}
	for (i = 0; i < t->services.nr; i++)
		if (!shown[i])
			ui_service_row(out, ++pos, &t->services.items[i], 0);
	if (!t->services.nr)
		(void)buf_addstr(out, "<tr><td colspan=\"8\" class=\"muted\">"
				      "no services</td></tr>");
	(void)buf_addstr(out, "</tbody></table></div>");
	free(shown);
}

static void ui_table_section(struct buf *out, const struct ui_table *t,
			     const struct store_doc_list *reports, int64_t now)
{
	(void)buf_addstr(out, "<section class=\"table\" id=\"t-");
	ui_esc(out, t->name);
	(void)buf_addstr(out, "\"><h2>Table ");
	ui_esc(out, t->name);
	(void)buf_addstr(out, "</h2>");
	if (t->st != ST_OK) {
		(void)buf_addstr(out, "<p class=\"error\">cannot read it: ");
		ui_esc(out, t->err.buf);
		(void)buf_addstr(out, "</p></section>");
		return;
	}
	ui_agents(out, t, reports, now);
	ui_services(out, t);
	(void)buf_addstr(out, "<h3>Config</h3><p><a class=\"download\" "
			      "href=\"/ui/tables/");
	ui_esc(out, t->name);
	(void)buf_addstr(out, "/config\" download=\"");
	ui_esc(out, t->name);
	(void)buf_addf(out,
		       "-haproxy.cfg\">download haproxy.cfg</a> "
		       "<span class=\"muted\">(%zu bytes)</span></p>"
		       "<pre class=\"config\">",
		       t->config.len);
	ui_esc(out, t->config.buf);
	(void)buf_addstr(out, "</pre></section>");
}

static void ui_rejections(struct buf *out)
{
	struct metrics_rejection *r =
		xcalloc(METRICS_MAX_REJECTIONS, sizeof(*r));
	size_t nr = metrics_recent_rejections(r, METRICS_MAX_REJECTIONS), i;

	(void)buf_addf(out,
		       "<section id=\"rejections\"><h2>Last rejected calls "
		       "<span class=\"muted\">(%zu, newest first)</span></h2>"
		       "<div class=\"wrap\"><table class=\"rejections\">"
		       "<thead><tr><th>time</th><th>table</th><th>field</th>"
		       "<th>rule</th></tr></thead><tbody>",
		       nr);
	for (i = 0; i < nr; i++) {
		(void)buf_addstr(out, "<tr class=\"rejection\"><td>");
		ui_time(out, r[i].at_ms);
		(void)buf_addstr(out, "</td><td>");
		ui_esc(out, r[i].table[0] ? r[i].table : "-");
		(void)buf_addstr(out, "</td><td class=\"field\">");
		ui_esc(out, r[i].field[0] ? r[i].field : "(the document)");
		(void)buf_addstr(out, "</td><td class=\"rule\">");
		ui_esc(out, r[i].rule);
		(void)buf_addstr(out, "</td></tr>");
	}
	if (!nr)
		(void)buf_addstr(out, "<tr><td colspan=\"4\" class=\"muted\">"
				      "none</td></tr>");
	(void)buf_addstr(out, "</tbody></table></div></section>");
	free(r);
}

static void ui_store_errors(struct buf *out)
{
	struct metrics_store_error e[METRICS_MAX_STORE_ERRORS];
	size_t nr = metrics_recent_store_errors(e, METRICS_MAX_STORE_ERRORS);
	size_t i;

	(void)buf_addstr(out, "<section id=\"store-errors\"><h2>Last store "
			      "errors</h2><div class=\"wrap\"><table><thead>"
			      "<tr><th>time</th><th>backend</th><th>"
			      "operation</th><th>error</th></tr></thead>"
			      "<tbody>");
	for (i = 0; i < nr; i++) {
		(void)buf_addstr(out, "<tr class=\"store-error\"><td>");
		ui_time(out, e[i].at_ms);
		(void)buf_addstr(out, "</td><td>");
		ui_esc(out, e[i].backend);
		(void)buf_addstr(out, "</td><td>");
		ui_esc(out, e[i].op);
		(void)buf_addstr(out, "</td><td>");
		ui_esc(out, e[i].message);
		(void)buf_addstr(out, "</td></tr>");
	}
	if (!nr)
		(void)buf_addstr(out, "<tr><td colspan=\"4\" class=\"muted\">"
				      "none</td></tr>");
	(void)buf_addstr(out, "</tbody></table></div></section>");
}

static void ui_load_table(struct registry *reg, struct ui_table *t)
{
	size_t i;

	service_list_init(&t->services);
	buf_init(&t->config, 0);
	buf_init(&t->err, BUF_CAP_MESSAGE);
	t->st = registry_view(reg, t->name, &t->services, &t->version,
			      &t->config, &t->err);
	for (i = 0; t->st == ST_OK && i < t->services.nr; i++) {
		t->servers += t->services.items[i].nr_containers;
		if (t->services.items[i].updated_at > t->last_change)
			t->last_change = t->services.items[i].updated_at;
	}
}

static size_t ui_count_agents(const struct store_doc_list *reports,
			      const char *table)
{
	size_t i, n = 0;

	for (i = 0; i < reports->nr; i++)
		if (ui_report_agent(&reports->items[i], table))
			n++;
	return n;
}

static void ui_header(struct buf *out, const char *title, int login,
		      int64_t now)
{
	ui_head(out, title, 1);
	(void)buf_addstr(out, "<header><h1><a href=\"/\">lambda-registry</a>"
			      "</h1><p class=\"muted\">version " LR_VERSION
			      ", as of ");
	ui_time(out, now);
	if (login)
		(void)buf_addstr(out, " &middot; <a href=\"/ui/login\">sign "
				      "in again</a>");
	(void)buf_addstr(out, "</p></header>");
}

/* The reports, or why not on the page. */
static void ui_load_reports(struct registry *reg,
			    struct store_doc_list *reports, struct buf *out)
{
	struct buf err = BUF_INIT;

	if (registry_reports(reg, reports, &err) != ST_OK) {
		(void)buf_addstr(out, "<p class=\"error\">agent reports cannot "
				      "be read: ");
		ui_esc(out, err.buf);
		(void)buf_addstr(out, "</p>");
	}
	buf_release(&err);
}

/* One row of the tables list, from the cache where it can. */
static void ui_table_row(struct buf *out, struct registry *reg,
			 const char *name, const struct store_doc_list *reports)
{
	struct registry_result res;
	struct buf err = BUF_INIT;
	enum status st;

	registry_result_init(&res);
	st = registry_table_read(reg, name, REGISTRY_SHARE_CONFIG, &res, &err);
	(void)buf_addstr(out, "<tr class=\"table-row\" data-table=\"");
	ui_esc(out, name);
	(void)buf_addstr(out, "\"><td><a href=\"/ui/tables/");
	ui_esc(out, name);
	(void)buf_addstr(out, "\">");
	ui_esc(out, name);
	(void)buf_addstr(out, "</a></td>");
	if (st != ST_OK) {
		(void)buf_addstr(out, "<td colspan=\"5\" class=\"error\">");
		ui_esc(out, err.buf);
		(void)buf_addstr(out, "</td></tr>");
		goto out;
	}
	(void)buf_addf(out,
		       "<td class=\"num services\">%zu</td><td class=\"num "
		       "servers\">%zu</td><td class=\"num index\">%llu</td>"
		       "<td>",
		       res.nr_services, res.nr_servers,
		       (unsigned long long)res.index);
	ui_time(out, res.updated_at);
	(void)buf_addf(out, "</td><td class=\"num agents\">%zu</td></tr>",
		       ui_count_agents(reports, name));
out:
	registry_result_release(&res);
	buf_release(&err);
}

void ui_page(struct registry *reg, int login, const char *after, size_t limit,
	     struct buf *out)
{
	struct buf err = BUF_INIT;
	struct store_doc_list reports;
	int64_t now = (int64_t)clock_real_ms();
	char **names = NULL;
	size_t nr = 0, i;
	enum status st = ST_UNAVAILABLE;

	store_doc_list_init(&reports);
	ui_header(out, "lambda-registry", login, now);
	if (!reg) {
		(void)buf_addstr(out, "<p class=\"error\">the store is "
				      "unavailable</p>");
	} else {
		ui_load_reports(reg, &reports, out);
		st = registry_table_names(reg, after, limit, &names, &nr, &err);
	}
	ui_sparkline(out, reg, NULL);
	(void)buf_addstr(out, "<section id=\"tables\"><h2>Tables</h2>");
	if (reg && st != ST_OK) {
		(void)buf_addstr(out, "<p class=\"error\">the tables cannot "
				      "be listed: ");
		ui_esc(out, err.buf);
		(void)buf_addstr(out, "</p>");
	}
	(void)buf_addstr(out, "<div class=\"wrap\"><table class=\"tables\">"
			      "<thead><tr><th>table</th><th class=\"num\">"
			      "services</th><th class=\"num\">servers</th>"
			      "<th class=\"num\">index</th><th>last change"
			      "</th><th class=\"num\">agents</th></tr>"
			      "</thead><tbody>");
	for (i = 0; i < nr; i++)
		ui_table_row(out, reg, names[i], &reports);
	if (!nr)
		(void)buf_addstr(out, "<tr><td colspan=\"6\" class=\"muted\">"
				      "no table here</td></tr>");
	(void)buf_addstr(out, "</tbody></table></div><p class=\"pages\">");
	if (after && *after)
		(void)buf_addstr(out, "<a id=\"first\" href=\"/\">first "
				      "page</a> ");
	/* A full page may have more after it; names are URL-safe. */
	if (nr && nr == limit) {
		(void)buf_addstr(out, "<a id=\"next\" href=\"/?after=");
		ui_esc(out, names[nr - 1]);
		(void)buf_addf(out, "&amp;limit=%zu\">next page</a>", limit);
	}
	(void)buf_addstr(out, "</p></section>");
	ui_rejections(out);
	ui_store_errors(out);
	(void)buf_addstr(out, "</body></html>\n");
	for (i = 0; i < nr; i++)
		free(names[i]);
	free(names);
	store_doc_list_release(&reports);
	buf_release(&err);
}

enum status ui_table_page(struct registry *reg, const char *table, int login,
			  struct buf *out, struct buf *err)
{
	struct store_doc_list reports;
	struct ui_table t = {0};
	struct buf title = BUF_INIT;
	uint64_t index;
	int exists = 1;
	int64_t now = (int64_t)clock_real_ms();
	enum status st = ST_UNAVAILABLE;

	store_doc_list_init(&reports);
	if (!reg) {
		buf_setf(err, "the store is unavailable");
		goto out;
	}
	t.name = table;
	ui_load_table(reg, &t);
	st = t.st;
	if (st == ST_OK && !t.version && !t.services.nr) {
		st = registry_table_index(reg, table, &index, &exists, err);
		if (st == ST_OK && !exists) {
			buf_setf(err, "table '%s' was never written", table);
			st = ST_NOT_FOUND;
		}
	}
	if (st == ST_INVALID || st == ST_UNAVAILABLE || st == ST_INTERNAL ||
	    st == ST_NOT_FOUND) {
		if (!err->len)
			buf_setf(err, "%s", t.err.buf);
		goto out;
	}
	st = ST_OK;
	(void)buf_addf(&title, "lambda-registry: %s", table);
	ui_header(out, title.buf, login, now);
	ui_load_reports(reg, &reports, out);
	ui_sparkline(out, reg, table);
	ui_table_section(out, &t, &reports, now);
	(void)buf_addstr(out, "</body></html>\n");
out:
	service_list_release(&t.services);
	buf_release(&t.config);
	buf_release(&t.err);
	buf_release(&title);
	store_doc_list_release(&reports);
	return st;
}

enum status ui_config(struct registry *reg, const char *table, struct buf *out,
		      struct buf *err)
{
	struct service_list services;
	uint64_t version;
	enum status st;

	if (!reg) {
		buf_setf(err, "the store is unavailable");
		return ST_UNAVAILABLE;
	}
	service_list_init(&services);
	st = registry_view(reg, table, &services, &version, out, err);
	service_list_release(&services);
	return st;
}
