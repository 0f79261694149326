/*
 * The PostgreSQL store: one libpq connection per handle, one transaction per
 * writing call serialised per table by a locked version row, and reads that
 * are single statements (one snapshot each) so they never wait for writers.
 */
#include "store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../aws.h"
#include "../clock.h"
#include "../payload.h"
#include "../xalloc.h"
#include "../banned.h"

#define PG_SCHEMA_VERSION  3
#define PG_DEFAULT_SCHEMA  "lambda_registry"
#define PG_SCHEMA_NAME_MAX 63
#define PG_CHANNEL	   "lambda_registry"
/* A probe waits this long for another probe's row lock, then calls the store
 * busy, not broken. */
#define PG_PROBE_LOCK_MS 500

enum pg_stmt {
	PG_VERSION,
	PG_LOCK,
	PG_CREATE_ROW,
	PG_BUMP,
	PG_LOAD,
	PG_LOAD_SNAPSHOT,
	PG_PUT,
	PG_REMOVE,
	PG_DOC_GET,
	PG_DOC_LIST,
	PG_DOC_GENERATION,
	PG_DOC_LOCK,
	PG_DOC_PUT,
	PG_DOC_DELETE,
	PG_TABLE_LIST,
	PG_NR,
};

/* Statements with "@." before the tables of the schema; $n are parameters. */
static const char *const pg_sql[PG_NR] = {
	[PG_VERSION] = "SELECT version FROM @.tables WHERE name = $1",
	[PG_LOCK] = "SELECT version FROM @.tables WHERE name = $1 "
		    "FOR UPDATE",
	[PG_CREATE_ROW] = "INSERT INTO @.tables (name, version) "
			  "VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
	/* The notification leaves with the commit, or not at all. */
	[PG_BUMP] = "WITH b AS (UPDATE @.tables SET version = version + 1 "
		    "WHERE name = $1 RETURNING version) "
		    "SELECT version, pg_notify('" PG_CHANNEL "', $1) FROM b",
	[PG_LOAD] = "SELECT name, port, mode, predicate, cookie, containers, "
		    "created_at, updated_at, options FROM @.services "
		    "WHERE tbl = $1 ORDER BY name COLLATE \"C\"",
	/* One statement, one snapshot: the version with the rows it names. */
	[PG_LOAD_SNAPSHOT] =
		"SELECT s.name, s.port, s.mode, s.predicate, s.cookie, "
		"s.containers, s.created_at, s.updated_at, s.options, "
		"v.version FROM "
		"(SELECT coalesce((SELECT version FROM @.tables "
		"WHERE name = $1), 0) AS version) v "
		"LEFT JOIN @.services s ON s.tbl = $1 "
		"ORDER BY s.name COLLATE \"C\"",
	[PG_PUT] =
		"INSERT INTO @.services (tbl, name, port, mode, "
		"predicate, cookie, containers, created_at, updated_at, "
		"options) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
		"ON CONFLICT (tbl, name) DO UPDATE SET port = excluded.port, "
		"mode = excluded.mode, predicate = excluded.predicate, "
		"cookie = excluded.cookie, containers = excluded.containers, "
		"created_at = excluded.created_at, "
		"updated_at = excluded.updated_at, options = excluded.options",
	[PG_REMOVE] = "DELETE FROM @.services WHERE tbl = $1 AND name = $2",
	[PG_DOC_GET] = "SELECT key, value, version, updated_at FROM @.docs "
		       "WHERE kind = $1 AND key = $2",
	/* key is COLLATE "C": byte order, and the primary key serves it. */
	[PG_DOC_LIST] = "SELECT key, value, version, updated_at FROM @.docs "
			"WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3",
	[PG_DOC_GENERATION] = "SELECT generation FROM @.doc_generations "
			      "WHERE kind = $1",
	/* Take the kind's generation row (created at 0, "none yet"), changing
	 * nothing: every later statement of the transaction sees what the
	 * previous holders committed. */
	[PG_DOC_LOCK] = "INSERT INTO @.doc_generations (kind, generation) "
			"VALUES ($1, 0) ON CONFLICT (kind) DO UPDATE SET "
			"generation = doc_generations.generation "
			"RETURNING generation",
	/* With the row held: the current version, and only if it is $4 (NULL:
	 * any) the bump and the write. One row: (current, new or NULL). */
	[PG_DOC_PUT] =
		"WITH cur AS (SELECT coalesce((SELECT version FROM @.docs "
		"WHERE kind = $1 AND key = $2), 0) AS version), "
		"g AS (UPDATE @.doc_generations "
		"SET generation = generation + 1 WHERE kind = $1 AND "
		"($4::bigint IS NULL OR "
		"$4::bigint = (SELECT version FROM cur)) "
		"RETURNING generation), "
		"w AS (INSERT INTO @.docs (kind, key, value, version, "
		"updated_at) SELECT $1, $2, $3::text, generation, "
		"(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM g "
		"ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
		"version = excluded.version, updated_at = excluded.updated_at "
		"RETURNING version) "
		"SELECT (SELECT version FROM cur), (SELECT version FROM w)",
	/* With the row held: the bump only if a document went (else no row). */
	[PG_DOC_DELETE] =
		"WITH d AS (DELETE FROM @.docs WHERE kind = $1 AND key = $2 "
		"RETURNING 1) "
		"UPDATE @.doc_generations SET generation = generation + 1 "
		"WHERE kind = $1 AND EXISTS (SELECT 1 FROM d) "
		"RETURNING generation",
	/* Rows a writer's first lock made stay at 0 until a commit bumps
	 * them: those tables were never written. */
	[PG_TABLE_LIST] = "SELECT name FROM @.tables WHERE version > 0 AND "
			  "name COLLATE \"C\" > $1 "
			  "ORDER BY name COLLATE \"C\" LIMIT $2",
};

/* The schema and the table of its version: the first step of every setup. */
static const char pg_schema_meta[] = "CREATE SCHEMA IF NOT EXISTS @;"
				     "CREATE TABLE IF NOT EXISTS @.meta ("
				     "  key text PRIMARY KEY,"
				     "  value bigint NOT NULL);";

/*
 * pg_migrations[v] takes a schema of version v to v + 1 (0: a new schema,
 * beside pg_schema_meta). PG_SCHEMA_VERSION is their number.
 */
static const char pg_schema_v1[] =
	"CREATE TABLE IF NOT EXISTS @.tables ("
	"  name text PRIMARY KEY,"
	"  version bigint NOT NULL);"
	"CREATE TABLE IF NOT EXISTS @.services ("
	"  tbl text NOT NULL,"
	"  name text NOT NULL,"
	"  port integer NOT NULL,"
	"  mode text NOT NULL,"
	"  predicate text NOT NULL,"
	"  cookie text,"
	"  containers text NOT NULL," /* "id ip\n" lines, sorted by id */
	"  created_at bigint NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  PRIMARY KEY (tbl, name));";

/* Version 2: the documents. Keys sort as bytes (doc_list's order). */
static const char pg_schema_v2[] =
	"CREATE TABLE IF NOT EXISTS @.docs ("
	"  kind text NOT NULL,"
	"  key text COLLATE \"C\" NOT NULL,"
	"  value text NOT NULL,"
	"  version bigint NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  PRIMARY KEY (kind, key));"
	"CREATE TABLE IF NOT EXISTS @.doc_generations ("
	"  kind text PRIMARY KEY,"
	"  generation bigint NOT NULL);";

/* Version 3: the service's options, payload_options_json()'s canonical JSON;
 * NULL when every option is at its default. */
static const char pg_schema_v3[] =
	"ALTER TABLE @.services ADD COLUMN IF NOT EXISTS options text;";

static const char *const pg_migrations[PG_SCHEMA_VERSION] = {
	pg_schema_v1,
	pg_schema_v2,
	pg_schema_v3,
};

enum pg_mode {
	PG_IDLE,
	PG_READ,  /* a read call: no transaction, single statements */
	PG_WRITE, /* a write call: BEGIN sent, version row locked */
};

struct pg_store {
	struct store base; /* first: the contract casts between the two */
	PGconn *conn;
	int prepared;	/* the statements exist on this connection */
	int listening;	/* LISTEN was sent on this connection (hints) */
	int fatal;	/* the server said it ends the session */
	char *conninfo; /* without the schema parameter */
	char *schema;	/* quoted identifier */
	char *schema_name;
	unsigned budget_ms;
	/* The open call. */
	enum pg_mode mode;
	char *table;
	uint64_t deadline; /* 0: each statement gets its own budget */
	uint64_t version; /* write: the locked one; read: what version() said */
	int have_version;
	int wrote;
	char state[6]; /* SQLSTATE of the last failed statement */
	/* Statements sent in pipeline mode whose results are unread. */
	const char **queued;
	size_t nr_queued, alloc_queued;
	struct buf scratch;
	struct buf options; /* scratch for the options column */
};

/* ---- the connection string ---------------------------------------------- */

static int pg_schema_name_ok(const char *s, size_t len)
{
	size_t i;

	if (!len || len > PG_SCHEMA_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* A URI: drop "schema=NAME" from the query string. */
static int pg_split_uri(const char *arg, struct buf *conninfo, char **schema)
{
	const char *q = strchr(arg, '?');
	const char *p;
	int first = 1;

	if (!q) {
		(void)buf_addstr(conninfo, arg);
		return 0;
	}
	(void)buf_add(conninfo, arg, (size_t)(q - arg));
	for (p = q + 1; *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > 7 && !strncmp(p, "schema=", 7)) {
			if (!pg_schema_name_ok(p + 7, len - 7))
				return -1;
			free(*schema);
			*schema = xstrndup(p + 7, len - 7);
		} else if (len) {
			(void)buf_addch(conninfo, first ? '?' : '&');
			(void)buf_add(conninfo, p, len);
			first = 0;
		}
		p += len + (amp != NULL);
	}
	return 0;
}

/* Key/value pairs: drop "schema=NAME", keep the rest (quotes respected). */
static int pg_split_keywords(const char *arg, struct buf *conninfo,
			     char **schema)
{
	const char *p = arg;

	while (*p) {
		const char *start, *key_end, *val, *end;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != '=' && *p != ' ' && *p != '\t')
			p++;
		key_end = p;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			return -1;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		val = p;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p != '\'')
				return -1;
			p++;
		} else {
			while (*p && *p != ' ' && *p != '\t' && *p != '\n')
				p++;
		}
		end = p;
		if (key_end - start == 6 && !strncmp(start, "schema", 6)) {
			if (!pg_schema_name_ok(val, (size_t)(end - val)))
				return -1;
			free(*schema);
			*schema = xstrndup(val, (size_t)(end - val));
		} else {
			if (conninfo->len)
				(void)buf_addch(conninfo, ' ');
			(void)buf_add(conninfo, start, (size_t)(end - start));
		}
	}
	return 0;
}

/* Append `tmpl` with each '@' replaced by the quoted schema name. */
static void pg_expand(struct buf *out, const char *tmpl, const char *schema)
{
	const char *at;

	while ((at = strchr(tmpl, '@'))) {
		(void)buf_add(out, tmpl, (size_t)(at - tmpl));
		(void)buf_addstr(out, schema);
		tmpl = at + 1;
	}
	(void)buf_addstr(out, tmpl);
}

/* ---- statements under a deadline ---------------------------------------- */

static uint64_t pg_deadline(const struct pg_store *s)
{
	return s->deadline ? s->deadline : clock_now_ms() + s->budget_ms;
}

/* libpq's messages end in a newline and may go on on more lines: keep one. */
static void pg_trim_message(struct buf *b)
{
	char *nl = strchr(b->buf, '\n');

	if (nl)
		buf_setlen(b, (size_t)(nl - b->buf));
	while (b->len &&
	       (b->buf[b->len - 1] == ' ' || b->buf[b->len - 1] == '.'))
		buf_setlen(b, b->len - 1);
}

/*
 * Notices are not for stderr. One arriving between calls is the farewell of
 * a session the server ended (FATAL, then the socket closes): remember it,
 * as the close itself may not have arrived yet.
 */
static void pg_notice(void *arg, const PGresult *res)
{
	struct pg_store *s = arg;
	const char *severity =
		PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	if (severity &&
	    (!strcmp(severity, "FATAL") || !strcmp(severity, "PANIC")))
		s->fatal = 1;
}

/* Close the connection; the next call opens a new one. */
static void pg_drop(struct pg_store *s)
{
	PQfinish(s->conn);
	s->conn = NULL;
	s->prepared = 0;
	s->listening = 0;
	s->fatal = 0;
	s->nr_queued = 0;
}

/* Wait until the socket is ready for `events` or `deadline` passes. */
static int pg_poll(PGconn *conn, short events, uint64_t deadline)
{
	struct pollfd pfd = {PQsocket(conn), events, 0};

	for (;;) {
		uint64_t now = clock_now_ms();
		int rc;

		if (now >= deadline)
			return 0;
		rc = poll(&pfd, 1, (int)(deadline - now));
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static enum status pg_timed_out(struct pg_store *s, const char *what,
				struct buf *err)
{
	buf_setf(err,
		 "postgres: %s: no answer within the %u ms budget "
		 "(LAMBDA_REGISTRY_STORE_TIMEOUT)",
		 what, s->budget_ms);
	pg_drop(s);
	return ST_UNAVAILABLE;
}

static enum status pg_conn_failed(struct pg_store *s, const char *what,
				  struct buf *err)
{
	buf_setf(err, "postgres: %s: %s", what,
		 s->conn ? PQerrorMessage(s->conn) : "not connected");
	pg_trim_message(err);
	pg_drop(s);
	return ST_UNAVAILABLE;
}

/* Map a failed result to the contract's statuses. */
static enum status pg_result_failed(struct pg_store *s, const PGresult *res,
				    const char *what, struct buf *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	enum status ret = ST_UNAVAILABLE;

	if (!state)
		state = "";
	snprintf(s->state, sizeof(s->state), "%s", state);
	if (!msg)
		msg = PQresultErrorMessage(res);
	if (!strcmp(state, "40001") || !strcmp(state, "40P01")) {
		buf_setf(err, "postgres: %s: %s", what, msg);
		ret = ST_CONFLICT;
	} else if (!strcmp(state, "55P03")) {
		buf_setf(err,
			 "postgres: %s: table '%s' stayed locked by another "
			 "session for the %u ms budget",
			 what, s->table ? s->table : "", s->budget_ms);
	} else if (!strcmp(state, "57014")) {
		buf_setf(err,
			 "postgres: %s: statement cancelled after the %u ms "
			 "budget (statement_timeout)",
			 what, s->budget_ms);
	} else {
		buf_setf(err, "postgres: %s: %s", what, msg);
	}
	pg_trim_message(err);
	/* 08xxx and the shutdown family (57P01..57P03): a dead connection. */
	if (PQstatus(s->conn) != CONNECTION_OK || !strncmp(state, "08", 2) ||
	    (!strncmp(state, "57P0", 4)))
		pg_drop(s);
	return ret;
}

/*
 * Send one statement (prepared `which`, or the text `sql` when `which` is
 * PG_NR) and wait for its result until the deadline. `*out` is the last
 * result (a new reference, PQclear() it) when it is wanted and it worked.
 * On a timeout the connection is closed: the server's statement_timeout and
 * lock_timeout end whatever it was still running.
 */
/* Wait until libpq holds a whole result, or the deadline passes. */
static enum status pg_await(struct pg_store *s, uint64_t deadline,
			    const char *what, struct buf *err)
{
	while (PQisBusy(s->conn)) {
		int rc = pg_poll(s->conn, POLLIN, deadline);

		if (rc == 0)
			return pg_timed_out(s, what, err);
		if (rc < 0 || !PQconsumeInput(s->conn))
			return pg_conn_failed(s, what, err);
	}
	return ST_OK;
}

/* Send what libpq holds; read meanwhile, as the server may be answering. */
static enum status pg_flush(struct pg_store *s, uint64_t deadline,
			    const char *what, struct buf *err)
{
	int rc;

	while ((rc = PQflush(s->conn)) == 1) {
		rc = pg_poll(s->conn, POLLOUT | POLLIN, deadline);
		if (rc == 0)
			return pg_timed_out(s, what, err);
		if (rc < 0 || !PQconsumeInput(s->conn))
			return pg_conn_failed(s, what, err);
	}
	return rc < 0 ? pg_conn_failed(s, what, err) : ST_OK;
}

static enum status pg_sync(struct pg_store *s, PGresult **out, struct buf *err);

static enum status pg_run(struct pg_store *s, enum pg_stmt which,
			  const char *sql, int nparams,
			  const char *const *params, const char *what,
			  PGresult **out, struct buf *err)
{
	uint64_t deadline = pg_deadline(s);
	PGresult *res, *last = NULL;
	enum status ret = ST_OK;
	int sent;

	if (out)
		*out = NULL;
	/* What was queued runs first; its failure is this one's. */
	if (s->conn && s->nr_queued) {
		ret = pg_sync(s, NULL, err);
		if (ret != ST_OK)
			return ret;
	}
	if (!s->conn)
		return pg_conn_failed(s, what, err);
	if (which == PG_NR && nparams)
		sent = PQsendQueryParams(s->conn, sql, nparams, NULL, params,
					 NULL, NULL, 0);
	else if (which == PG_NR)
		sent = PQsendQuery(s->conn, sql);
	else {
		char name[16];

		snprintf(name, sizeof(name), "lr%d", (int)which);
		sent = PQsendQueryPrepared(s->conn, name, nparams, params, NULL,
					   NULL, 0);
	}
	if (!sent)
		return pg_conn_failed(s, what, err);
	ret = pg_flush(s, deadline, what, err);
	if (ret != ST_OK)
		return ret;
	for (;;) {
		enum status wait = pg_await(s, deadline, what, err);

		if (wait != ST_OK) {
			PQclear(last);
			return wait;
		}
		res = PQgetResult(s->conn);
		if (!res)
			break;
		if (ret == ST_OK && PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK) {
			ret = pg_result_failed(s, res, what, err);
			PQclear(res);
			PQclear(last);
			last = NULL;
			if (!s->conn)
				return ret;
			continue;
		}
		PQclear(last);
		last = res;
	}
	if (ret == ST_OK && !last) {
		buf_setf(err, "postgres: %s: no result", what);
		ret = ST_UNAVAILABLE;
	}
	if (ret == ST_OK && out)
		*out = last;
	else
		PQclear(last);
	return ret;
}

/* Run a prepared statement on the open call's table. */
static enum status pg_run_table(struct pg_store *s, enum pg_stmt which,
				const char *what, PGresult **out,
				struct buf *err)
{
	const char *params[1] = {s->table};

	return pg_run(s, which, NULL, 1, params, what, out, err);
}

/*
 * Send a statement without waiting for it (libpq's pipeline mode): prepared
 * `which` with `params`, or `sql` when `which` is PG_NR. pg_sync() reads the
 * results of everything queued. `what` must be a string literal.
 */
static enum status pg_queue(struct pg_store *s, enum pg_stmt which,
			    const char *sql, int nparams,
			    const char *const *params, const char *what,
			    struct buf *err)
{
	char name[16];
	int sent;

	if (!s->conn)
		return pg_conn_failed(s, what, err);
	if (PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF &&
	    !PQenterPipelineMode(s->conn))
		return pg_conn_failed(s, what, err);
	snprintf(name, sizeof(name), "lr%d", (int)which);
	if (which == PG_NR)
		sent = PQsendQueryParams(s->conn, sql, nparams, NULL, params,
					 NULL, NULL, 0);
	else
		sent = PQsendQueryPrepared(s->conn, name, nparams, params, NULL,
					   NULL, 0);
	if (!sent)
		return pg_conn_failed(s, what, err);
	ALLOC_GROW(s->queued, s->nr_queued + 1, s->alloc_queued);
	s->queued[s->nr_queued++] = what;
	/* Keep the bytes moving both ways, without waiting: a server that
	 * cannot send its results stops reading ours. */
	if (PQflush(s->conn) < 0 || !PQconsumeInput(s->conn))
		return pg_conn_failed(s, what, err);
	return ST_OK;
}

/*
 * Send a sync and read the result of every queued statement; `*out` (when
 * wanted) gets the result of the one queued `nth` (SIZE_MAX: the last), a new
 * reference, if all worked. The first failure is the status (the server skips
 * the statements after it); a timeout or a lost connection drops the
 * connection.
 */
static enum status pg_sync_nth(struct pg_store *s, size_t nth, PGresult **out,
			       struct buf *err)
{
	uint64_t deadline = pg_deadline(s);
	size_t n = s->nr_queued, i;
	/* The server answers at the sync: a wait is for the last statement. */
	const char *waiting = n ? s->queued[n - 1] : "sync";
	PGresult *last = NULL;
	enum status ret = ST_OK;

	if (out)
		*out = NULL;
	if (!n)
		return ST_OK;
	if (!PQpipelineSync(s->conn)) {
		ret = pg_conn_failed(s, waiting, err);
		goto out;
	}
	ret = pg_flush(s, deadline, waiting, err);
	if (ret != ST_OK)
		goto out;
	/* Each statement: its result, then NULL; after them all, the sync. */
	for (i = 0; i <= n; i++) {
		enum status wait = pg_await(s, deadline, waiting, err);
		PGresult *res;
		ExecStatusType state;

		if (wait != ST_OK) {
			ret = wait;
			goto out;
		}
		res = PQgetResult(s->conn);
		state = PQresultStatus(res);
		if (i == n) {
			PQclear(res);
			if (state != PGRES_PIPELINE_SYNC)
				ret = pg_conn_failed(s, waiting, err);
			break;
		}
		if (state == PGRES_COMMAND_OK || state == PGRES_TUPLES_OK) {
			if (i == nth || (nth >= n && i == n - 1)) {
				PQclear(last);
				last = res;
			} else {
				PQclear(res);
			}
		} else {
			if (state != PGRES_PIPELINE_ABORTED && ret == ST_OK)
				ret = pg_result_failed(s, res, s->queued[i],
						       err);
			PQclear(res);
			if (!s->conn)
				goto out;
		}
		wait = pg_await(s, deadline, waiting, err);
		if (wait != ST_OK) {
			ret = wait;
			goto out;
		}
		PQclear(PQgetResult(s->conn)); /* the NULL that ends it */
	}
	if (s->conn && !PQexitPipelineMode(s->conn))
		ret = pg_conn_failed(s, waiting, err);
out:
	s->nr_queued = 0;
	if (ret == ST_OK && out && last)
		*out = last;
	else
		PQclear(last);
	return ret;
}

static enum status pg_sync(struct pg_store *s, PGresult **out, struct buf *err)
{
	return pg_sync_nth(s, SIZE_MAX, out, err);
}

/* A statement of the call's table: prepared `which`, or `sql` when PG_NR. */
struct pg_step {
	enum pg_stmt which;
	const char *sql;
	const char *what;
};

/* Queue `steps` (PG_NR ones without parameters), then sync: one round trip;
 * `*out` is the last one's result. */
static enum status pg_pipeline(struct pg_store *s, const struct pg_step *steps,
			       int n, PGresult **out, struct buf *err)
{
	const char *params[1] = {s->table};
	enum status ret = ST_OK;
	int i;

	*out = NULL;
	for (i = 0; ret == ST_OK && i < n; i++)
		ret = pg_queue(s, steps[i].which, steps[i].sql,
			       steps[i].which == PG_NR ? 0 : 1, params,
			       steps[i].what, err);
	if (ret == ST_OK)
		ret = pg_sync(s, out, err);
	return ret;
}

/* ---- connecting --------------------------------------------------------- */

/*
 * Bring the schema to PG_SCHEMA_VERSION. Usually it is there: one read, no
 * lock, no DDL rights. Else create or migrate in one transaction under a
 * transaction-scoped advisory lock, reading the version again once the lock
 * is ours: instances starting together take turns, the later ones find the
 * work done and run no DDL (which would queue behind running calls for the
 * tables' locks), and a failed migration leaves the old version whole.
 */
static enum status pg_setup_schema(struct pg_store *s, struct buf *err)
{
	struct buf sql = BUF_INIT;
	PGresult *res = NULL;
	enum status ret;
	long version = 0;
	const char *what;

	(void)buf_addf(&sql,
		       "SELECT value FROM %s.meta WHERE key = 'schema_version'",
		       s->schema);
	ret = pg_run(s, PG_NR, sql.buf, 0, NULL, "reading the schema version",
		     &res, err);
	if (ret == ST_OK && PQntuples(res) == 1)
		version = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	if (!s->conn)
		goto out;
	if (version == PG_SCHEMA_VERSION) {
		ret = ST_OK;
		goto out;
	}
	if (version > PG_SCHEMA_VERSION)
		goto newer;
	buf_reset(&sql);
	(void)buf_addf(&sql,
		       "BEGIN ISOLATION LEVEL READ COMMITTED;"
		       "SELECT pg_advisory_xact_lock(hashtext("
		       "'lambda_registry schema %s'));",
		       s->schema_name);
	pg_expand(&sql, pg_schema_meta, s->schema);
	(void)buf_addf(&sql,
		       "SELECT coalesce((SELECT value FROM %s.meta WHERE "
		       "key = 'schema_version'), 0)",
		       s->schema);
	ret = pg_run(s, PG_NR, sql.buf, 0, NULL, "creating the schema", &res,
		     err);
	if (ret != ST_OK)
		goto rollback;
	version = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	if (version > PG_SCHEMA_VERSION)
		goto newer;
	if (version < 0) {
		buf_setf(err, "postgres: schema '%s' has version %ld",
			 s->schema_name, version);
		ret = ST_UNAVAILABLE;
		goto rollback;
	}
	what = version ? "migrating the schema" : "creating the schema";
	buf_reset(&sql);
	if (version < PG_SCHEMA_VERSION) {
		int v;

		for (v = (int)version; v < PG_SCHEMA_VERSION; v++)
			pg_expand(&sql, pg_migrations[v], s->schema);
		(void)buf_addf(&sql,
			       "INSERT INTO %s.meta (key, value) VALUES "
			       "('schema_version', %d) ON CONFLICT (key) DO "
			       "UPDATE SET value = excluded.value;",
			       s->schema, PG_SCHEMA_VERSION);
	}
	(void)buf_addstr(&sql, "COMMIT");
	ret = pg_run(s, PG_NR, sql.buf, 0, NULL, what, NULL, err);
	goto rollback;
newer:
	buf_setf(err,
		 "postgres: schema '%s' has version %ld, newer than this "
		 "program's %d",
		 s->schema_name, version, PG_SCHEMA_VERSION);
	ret = ST_UNAVAILABLE;
rollback:
	if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		struct buf ignored = BUF_INIT;

		if (pg_run(s, PG_NR, "ROLLBACK", 0, NULL, "rollback", NULL,
			   &ignored) != ST_OK)
			pg_drop(s);
		buf_release(&ignored);
	}
out:
	PQclear(res);
	buf_release(&sql);
	return ret;
}

static enum status pg_prepare(struct pg_store *s, struct buf *err)
{
	static const char *const names[PG_NR] = {
		[PG_VERSION] = "reading the table version",
		[PG_LOCK] = "locking the table",
		[PG_CREATE_ROW] = "creating the table's version row",
		[PG_BUMP] = "bumping the table version",
		[PG_LOAD] = "loading services",
		[PG_LOAD_SNAPSHOT] = "loading services",
		[PG_PUT] = "writing a service",
		[PG_REMOVE] = "deleting a service",
		[PG_DOC_GET] = "reading a document",
		[PG_DOC_LIST] = "listing documents",
		[PG_DOC_GENERATION] = "reading a document generation",
		[PG_DOC_LOCK] = "locking the document kind",
		[PG_DOC_PUT] = "writing a document",
		[PG_DOC_DELETE] = "deleting a document",
		[PG_TABLE_LIST] = "listing tables",
	};
	uint64_t deadline = pg_deadline(s);
	struct buf sql = BUF_INIT;
	enum status ret = ST_OK;
	size_t i;

	for (i = 0; ret == ST_OK && i < PG_NR; i++) {
		char name[16];
		PGresult *res;

		buf_reset(&sql);
		pg_expand(&sql, pg_sql[i], s->schema);
		snprintf(name, sizeof(name), "lr%d", (int)i);
		if (!PQsendPrepare(s->conn, name, sql.buf, 0, NULL)) {
			ret = pg_conn_failed(s, names[i], err);
			break;
		}
		/* A failure leaves results unread: the caller drops the
		 * connection. */
		ret = pg_flush(s, deadline, names[i], err);
		while (ret == ST_OK) {
			ret = pg_await(s, deadline, names[i], err);
			res = ret == ST_OK ? PQgetResult(s->conn) : NULL;
			if (!res)
				break;
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				ret = pg_result_failed(s, res, names[i], err);
			PQclear(res);
		}
	}
	buf_release(&sql);
	s->prepared = ret == ST_OK;
	return ret;
}

/*
 * Connect (or reconnect), bounded by the budget: libpq's connect_timeout
 * counts whole seconds per address, so the wait is ours. Then the session's
 * own timeouts, the schema and the prepared statements.
 */
static enum status pg_connect(struct pg_store *s, struct buf *err)
{
	uint64_t deadline = pg_deadline(s);
	char connect_timeout[16], timeouts[160];
	const char *keys[] = {"connect_timeout", "fallback_application_name",
			      "dbname", NULL};
	const char *values[] = {connect_timeout, "lambda-registry", s->conninfo,
				NULL};
	PostgresPollingStatusType state = PGRES_POLLING_WRITING;
	enum status ret;

	pg_drop(s);
	snprintf(connect_timeout, sizeof(connect_timeout), "%u",
		 (s->budget_ms + 999) / 1000 < 2 ? 2
						 : (s->budget_ms + 999) / 1000);
	s->conn = PQconnectStartParams(keys, values, 1);
	if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD)
		return pg_conn_failed(s, "connecting", err);
	PQsetNoticeReceiver(s->conn, pg_notice, s);
	while (state != PGRES_POLLING_OK) {
		int rc;

		if (state == PGRES_POLLING_FAILED)
			return pg_conn_failed(s, "connecting", err);
		rc = pg_poll(s->conn,
			     state == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			     deadline);
		if (rc == 0)
			return pg_timed_out(s, "connecting", err);
		if (rc < 0)
			return pg_conn_failed(s, "connecting", err);
		state = PQconnectPoll(s->conn);
	}
	if (PQsetnonblocking(s->conn, 1))
		return pg_conn_failed(s, "connecting", err);
	/* The server ends a statement that outlives the budget, too, and a
	 * transaction a hung client left open. */
	snprintf(timeouts, sizeof(timeouts),
		 "SET statement_timeout = %u; SET lock_timeout = %u;"
		 "SET idle_in_transaction_session_timeout = %u",
		 s->budget_ms, s->budget_ms, s->budget_ms * 2);
	ret = pg_run(s, PG_NR, timeouts, 0, NULL, "setting the timeouts", NULL,
		     err);
	if (ret == ST_OK)
		ret = pg_setup_schema(s, err);
	if (ret == ST_OK)
		ret = pg_prepare(s, err);
	if (ret != ST_OK)
		pg_drop(s);
	return ret;
}

/*
 * Before a call: a connection the server closed while it sat in the pool
 * (a restart, pg_terminate_backend) has its farewell waiting on the socket;
 * read it now, so the call starts on a new connection instead of failing.
 */
static enum status pg_ensure_conn(struct pg_store *s, struct buf *err)
{
	int i;

	/* A closed socket stays readable: the second read sees the end. */
	for (i = 0; s->conn && s->prepared && i < 4; i++) {
		struct pollfd pfd = {PQsocket(s->conn), POLLIN, 0};
		PGnotify *n;

		if (PQstatus(s->conn) != CONNECTION_OK ||
		    PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
			pg_drop(s);
			break;
		}
		if (poll(&pfd, 1, 0) <= 0)
			break;
		if (!PQconsumeInput(s->conn) ||
		    PQstatus(s->conn) != CONNECTION_OK) {
			pg_drop(s);
			break;
		}
		while ((n = PQnotifies(s->conn)))
			PQfreemem(n);
		if (s->fatal) {
			pg_drop(s);
			break;
		}
	}
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK && s->prepared)
		return ST_OK;
	return pg_connect(s, err);
}

/* ---- the contract ------------------------------------------------------- */

static void pg_end(struct pg_store *s)
{
	free(s->table);
	s->table = NULL;
	s->mode = PG_IDLE;
	s->deadline = 0;
	s->have_version = 0;
	s->wrote = 0;
}

static void pg_rollback(struct store *st)
{
	struct pg_store *s = (struct pg_store *)st;
	struct buf ignored = BUF_INIT;

	/* Queued writes are answered (and forgotten) first. */
	if (s->conn && s->nr_queued)
		(void)pg_sync(s, NULL, &ignored);
	if (s->mode == PG_WRITE && s->conn &&
	    pg_run(s, PG_NR, "ROLLBACK", 0, NULL, "rollback", NULL, &ignored) !=
		    ST_OK)
		pg_drop(s);
	buf_release(&ignored);
	pg_end(s);
}

static void pg_close(struct store *st)
{
	struct pg_store *s = (struct pg_store *)st;

	if (s->mode != PG_IDLE)
		pg_rollback(st);
	pg_drop(s);
	buf_release(&s->scratch);
	buf_release(&s->options);
	free(s->queued);
	free(s->conninfo);
	free(s->schema);
	free(s->schema_name);
	free(s);
}

static enum status pg_open(const char *arg, struct store **out, struct buf *err)
{
	struct pg_store *s = xcalloc(1, sizeof(*s));
	const char *timeout = getenv(AWS_TIMEOUT_ENV);
	struct buf conninfo = BUF_INIT;
	char *schema = NULL;
	enum status ret = ST_USAGE;
	int split;

	*out = NULL;
	s->base.be = &store_postgres;
	s->budget_ms = AWS_DEFAULT_TIMEOUT_MS;
	buf_init(&s->scratch, 0);
	buf_init(&s->options, 0);
	if (timeout && *timeout &&
	    aws_parse_timeout(timeout, &s->budget_ms, err))
		goto fail;
	if (!strncmp(arg, "postgresql://", 13) ||
	    !strncmp(arg, "postgres://", 11))
		split = pg_split_uri(arg, &conninfo, &schema);
	else
		split = pg_split_keywords(arg, &conninfo, &schema);
	if (split) {
		/* No conninfo in the message: it may hold a password. */
		buf_setf(err, "postgres: malformed connection string or schema "
			      "name (want postgres:CONNINFO or "
			      "postgres:postgresql://...?schema=NAME, a schema "
			      "of a-z, 0-9 and _)");
		goto fail;
	}
	s->conninfo = buf_detach(&conninfo, NULL);
	s->schema_name = schema ? schema : xstrdup(PG_DEFAULT_SCHEMA);
	schema = NULL;
	/* Names are [a-z0-9_], so quoting is enough. */
	{
		struct buf q = BUF_INIT;

		(void)buf_addf(&q, "\"%s\"", s->schema_name);
		s->schema = buf_detach(&q, NULL);
	}
	s->deadline = clock_now_ms() + s->budget_ms;
	ret = pg_connect(s, err);
	s->deadline = 0;
	if (ret != ST_OK)
		goto fail;
	*out = &s->base;
	return ST_OK;
fail:
	buf_release(&conninfo);
	free(schema);
	pg_close(&s->base);
	return ret;
}

/*
 * Start a call. The invariant everything relies on: a table's data and its
 * version row only change in a transaction that holds that row FOR UPDATE,
 * and the version goes up by one in every such transaction that wrote.
 *
 * - Write calls: BEGIN (read committed) and the row lock, in one round
 *   trip. Writers of one table queue on the row (bounded by lock_timeout and
 *   the call's deadline); once it is theirs, each later statement takes a
 *   fresh snapshot, so it sees everything the previous holder committed, and
 *   nobody else can change the table until this call ends. So version() is
 *   exact without asking again (s->version, + 1 once the call wrote), load()
 *   is consistent with it, and commit() can bump it blindly.
 * - Read calls: no transaction and no lock, so they never wait for writers.
 *   Each statement is its own snapshot; load() returns the version with the
 *   rows in one statement, and a version different from the one version()
 *   gave earlier in the call is ST_CONFLICT (the caller would otherwise cache
 *   newer rows under an older version), which the registry retries.
 * - The row is created, with version 0 ("never written"), by the first
 *   writing call of a table; INSERT ... ON CONFLICT DO NOTHING waits for a
 *   concurrent creator, then the lock is taken again.
 */
static enum status pg_begin(struct store *st, const char *table, int write,
			    struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	PGresult *res = NULL;
	enum status ret;

	if (s->mode != PG_IDLE)
		BUG("postgres: begin inside a call on '%s'", s->table);
	s->deadline = clock_now_ms() + s->budget_ms;
	s->table = xstrdup(table);
	ret = pg_ensure_conn(s, err);
	if (ret != ST_OK)
		goto fail;
	if (!write) {
		/* Reads are single statements: nothing to start. */
		s->mode = PG_READ;
		return ST_OK;
	}
	{
		static const struct pg_step steps[] = {
			{PG_NR, "BEGIN", "begin"},
			{PG_LOCK, NULL, "locking the table"},
		};
		s->mode = PG_WRITE;
		ret = pg_pipeline(s, steps, 2, &res, err);
	}
	if (ret != ST_OK)
		goto fail;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = NULL;
		ret = pg_run_table(s, PG_CREATE_ROW,
				   "creating the table's version row", NULL,
				   err);
		if (ret == ST_OK)
			ret = pg_run_table(s, PG_LOCK, "locking the table",
					   &res, err);
	}
	if (ret == ST_OK && PQntuples(res) != 1) {
		buf_setf(err,
			 "postgres: the version row of table '%s' is "
			 "missing",
			 table);
		ret = ST_UNAVAILABLE;
	}
	if (ret != ST_OK)
		goto fail;
	s->version = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	s->have_version = 1;
	PQclear(res);
	return ST_OK;
fail:
	PQclear(res);
	pg_rollback(st);
	return ret;
}

static enum status pg_version(struct store *st, uint64_t *version,
			      struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	PGresult *res = NULL;
	enum status ret;

	if (s->mode == PG_IDLE)
		BUG("postgres: version outside a call");
	if (s->mode == PG_WRITE) {
		*version = s->version + (s->wrote != 0);
		return ST_OK;
	}
	ret = pg_run_table(s, PG_VERSION, "reading the table version", &res,
			   err);
	if (ret == ST_OK) {
		s->version = PQntuples(res)
				     ? strtoull(PQgetvalue(res, 0, 0), NULL, 10)
				     : 0;
		s->have_version = 1;
		*version = s->version;
	}
	PQclear(res);
	return ret;
}

static enum status pg_load(struct store *st, struct service_list *out,
			   struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const int snapshot = s->mode == PG_READ;
	PGresult *res = NULL;
	enum status ret;
	int i, n;

	if (s->mode == PG_IDLE)
		BUG("postgres: load outside a call");
	ret = pg_run_table(s, snapshot ? PG_LOAD_SNAPSHOT : PG_LOAD,
			   "loading services", &res, err);
	if (ret != ST_OK)
		goto out;
	n = PQntuples(res);
	if (snapshot && n > 0) {
		uint64_t v = strtoull(PQgetvalue(res, 0, 9), NULL, 10);

		/* The caller would cache these rows under the older version:
		 * have it start over instead. */
		if (s->have_version && v != s->version) {
			buf_setf(err,
				 "postgres: table '%s' changed during the "
				 "call",
				 s->table);
			ret = ST_CONFLICT;
			goto out;
		}
		s->version = v;
		s->have_version = 1;
		/* No service: one row of NULLs beside the version. */
		if (n == 1 && PQgetisnull(res, 0, 0))
			n = 0;
	}
	for (i = 0; i < n; i++) {
		struct service *svc = service_list_append(out);
		struct buf why = BUF_INIT;
		char *end;

		svc->name = xstrdup(PQgetvalue(res, i, 0));
		svc->port = (unsigned)strtoul(PQgetvalue(res, i, 1), &end, 10);
		svc->predicate = xstrdup(PQgetvalue(res, i, 3));
		if (!PQgetisnull(res, i, 4))
			svc->cookie = xstrdup(PQgetvalue(res, i, 4));
		svc->created_at = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		svc->updated_at = strtoll(PQgetvalue(res, i, 7), NULL, 10);
		svc->version = s->version;
		if (*end ||
		    config_mode_parse(PQgetvalue(res, i, 2), &svc->mode) ||
		    store_containers_parse(svc, PQgetvalue(res, i, 5)) ||
		    (!PQgetisnull(res, i, 8) &&
		     payload_parse_options(svc, PQgetvalue(res, i, 8), &why))) {
			buf_setf(err,
				 "postgres: damaged row for service '%s' in "
				 "table '%s'%s%s",
				 svc->name, s->table, why.len ? ": " : "",
				 why.buf);
			buf_release(&why);
			ret = ST_UNAVAILABLE;
			break;
		}
		buf_release(&why);
	}
out:
	PQclear(res);
	return ret;
}

/* A write needs the call's table locked; commit() bumps the version. */
static void pg_check_write(const struct pg_store *s)
{
	if (s->mode != PG_WRITE)
		BUG("postgres: write in a call begun for reading");
}

static enum status pg_put(struct store *st, struct service *svc,
			  struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	char port[16], created[32], updated[32];
	const char *params[10];
	enum status ret;

	pg_check_write(s);
	buf_reset(&s->scratch);
	store_containers_text(svc, &s->scratch);
	if (buf_overflowed(&s->scratch)) {
		buf_setf(err, "postgres: service '%s' is too large", svc->name);
		return ST_TOO_LARGE;
	}
	buf_reset(&s->options);
	if (payload_options_json(svc, &s->options)) {
		buf_setf(err, "postgres: the options of '%s' are too large",
			 svc->name);
		return ST_TOO_LARGE;
	}
	snprintf(port, sizeof(port), "%u", svc->port);
	snprintf(created, sizeof(created), "%lld", (long long)svc->created_at);
	snprintf(updated, sizeof(updated), "%lld", (long long)svc->updated_at);
	params[0] = s->table;
	params[1] = svc->name;
	params[2] = port;
	params[3] = config_mode_name(svc->mode);
	params[4] = svc->predicate;
	params[5] = svc->cookie; /* NULL is SQL NULL */
	params[6] = s->scratch.buf;
	params[7] = created;
	params[8] = updated;
	params[9] = s->options.len ? s->options.buf : NULL; /* all defaults */
	/* Queued: commit() reads the answers, and reports a failure. */
	ret = pg_queue(s, PG_PUT, NULL, 10, params, "writing a service", err);
	if (ret == ST_OK) {
		s->wrote = 1;
		svc->version = s->version + 1;
	}
	return ret;
}

static enum status pg_remove(struct store *st, const struct service *svc,
			     struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const char *params[2] = {s->table, svc->name};
	enum status ret;

	pg_check_write(s);
	ret = pg_queue(s, PG_REMOVE, NULL, 2, params, "deleting a service",
		       err);
	if (ret == ST_OK)
		s->wrote = 1;
	return ret;
}

static enum status pg_commit(struct store *st, struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	PGresult *res = NULL;
	enum status ret;

	if (s->mode != PG_WRITE) {
		pg_end(s);
		return ST_OK;
	}
	if (s->wrote) {
		/* The queued writes, the bump (and its NOTIFY) and the commit
		 * in one round trip; the row lock makes the new version
		 * s->version + 1. */
		static const struct pg_step steps[] = {
			{PG_BUMP, NULL, "bumping the table version"},
			{PG_NR, "COMMIT", "commit"},
		};
		ret = pg_pipeline(s, steps, 2, &res, err);
	} else {
		ret = pg_run(s, PG_NR, "COMMIT", 0, NULL, "commit", &res, err);
	}
	/* A transaction that had failed answers COMMIT with ROLLBACK. */
	if (ret == ST_OK && strcmp(PQcmdStatus(res), "COMMIT")) {
		buf_setf(err, "postgres: commit: the transaction was rolled "
			      "back");
		ret = ST_CONFLICT;
	}
	PQclear(res);
	/* A commit whose answer was lost may or may not have happened; the
	 * connection is gone, and the caller's cache keys on the version. */
	if (ret != ST_OK && s->conn &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		pg_rollback(st);
	else
		pg_end(s);
	return ret;
}

static enum status pg_ping(struct store *st, struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const int own = !s->deadline;
	PGresult *res = NULL;
	enum status ret;

	if (s->mode != PG_IDLE)
		BUG("postgres: ping inside a call on '%s'", s->table);
	/* One budget for the reconnect and the query (a probe's own when it
	 * pings first). */
	if (own)
		s->deadline = clock_now_ms() + s->budget_ms;
	ret = pg_ensure_conn(s, err);
	if (ret == ST_OK)
		ret = pg_run(s, PG_NR,
			     "SELECT pg_is_in_recovery(), "
			     "current_setting('transaction_read_only')",
			     0, NULL, "ping", &res, err);
	if (ret == ST_OK && (!strcmp(PQgetvalue(res, 0, 0), "t") ||
			     !strcmp(PQgetvalue(res, 0, 1), "on"))) {
		buf_setf(err, "postgres: the server is read-only (a standby or "
			      "default_transaction_read_only)");
		ret = ST_UNAVAILABLE;
	}
	PQclear(res);
	if (own)
		s->deadline = 0;
	return ret;
}

/*
 * Count up a row of the meta table: one committed write that touches no
 * table's data or version. Another probe holding the row is contention, not a
 * fault.
 */
static enum status pg_probe(struct store *st, struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	struct buf sql = BUF_INIT;
	PGresult *res = NULL;
	enum status ret;

	s->deadline = clock_now_ms() + s->budget_ms;
	ret = pg_ping(st, err);
	if (ret != ST_OK)
		goto out;
	s->state[0] = '\0';
	(void)buf_addf(&sql,
		       "BEGIN; SET LOCAL lock_timeout = %d;"
		       "INSERT INTO %s.meta (key, value) VALUES ('probe', 1) "
		       "ON CONFLICT (key) DO UPDATE SET value = meta.value + 1;"
		       "COMMIT",
		       PG_PROBE_LOCK_MS, s->schema);
	ret = pg_run(s, PG_NR, sql.buf, 0, NULL, "probe", &res, err);
	if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		struct buf ignored = BUF_INIT;

		if (pg_run(s, PG_NR, "ROLLBACK", 0, NULL, "rollback", NULL,
			   &ignored) != ST_OK)
			pg_drop(s);
		buf_release(&ignored);
	}
	if (ret != ST_OK && !strcmp(s->state, "55P03"))
		ret = ST_OK;
out:
	s->deadline = 0;
	PQclear(res);
	buf_release(&sql);
	return ret;
}

/* ---- documents ---------------------------------------------------------- */

/*
 * Reads are single statements (one snapshot each, no lock). A write is one
 * transaction sent in one round trip: BEGIN, the kind's generation row taken
 * (PG_DOC_LOCK), the write, COMMIT. The invariant: a kind's documents and
 * its generation only change in a transaction that holds that row, and each
 * change bumps the generation by one. Read committed gives every statement a
 * fresh snapshot, so the write, which comes after the lock, sees what each
 * earlier holder committed: the expect check is exact and the bumped
 * generation (the document's new version) is this write's alone. The bump
 * and the write commit together, so no reader sees a generation without its
 * documents.
 */

/* Start a document call: none on a table open, a connection, one budget. */
static enum status pg_doc_begin(struct pg_store *s, struct buf *err)
{
	if (s->mode != PG_IDLE)
		BUG("postgres: document call inside a call on '%s'", s->table);
	s->deadline = clock_now_ms() + s->budget_ms;
	s->state[0] = '\0';
	return pg_ensure_conn(s, err);
}

static void pg_doc_from_row(const PGresult *res, int row, struct store_doc *doc)
{
	doc->key = xstrdup(PQgetvalue(res, row, 0));
	doc->value = xstrdup(PQgetvalue(res, row, 1));
	doc->version = strtoull(PQgetvalue(res, row, 2), NULL, 10);
	doc->updated_at = strtoll(PQgetvalue(res, row, 3), NULL, 10);
}

/* One read statement of the documents; `*out` is its result. */
static enum status pg_doc_read(struct pg_store *s, enum pg_stmt which,
			       int nparams, const char *const *params,
			       const char *what, PGresult **out,
			       struct buf *err)
{
	enum status ret = pg_doc_begin(s, err);

	*out = NULL;
	if (ret == ST_OK)
		ret = pg_run(s, which, NULL, nparams, params, what, out, err);
	s->deadline = 0;
	return ret;
}

/*
 * Run the write `which` (its first parameter the kind) in a transaction of
 * its own that holds the kind's generation row; `*out` is its result.
 */
static enum status pg_doc_write(struct pg_store *s, enum pg_stmt which,
				int nparams, const char *const *params,
				const char *what, PGresult **out,
				struct buf *err)
{
	enum status ret = pg_doc_begin(s, err);

	*out = NULL;
	if (ret == ST_OK)
		ret = pg_queue(s, PG_NR, "BEGIN ISOLATION LEVEL READ COMMITTED",
			       0, NULL, "begin", err);
	if (ret == ST_OK)
		ret = pg_queue(s, PG_DOC_LOCK, NULL, 1, params,
			       "locking the document kind", err);
	if (ret == ST_OK)
		ret = pg_queue(s, which, NULL, nparams, params, what, err);
	if (ret == ST_OK)
		ret = pg_queue(s, PG_NR, "COMMIT", 0, NULL, "commit", err);
	/* A failed queue dropped the connection, and what it held. */
	if (ret == ST_OK)
		ret = pg_sync_nth(s, 2, out, err);
	if (ret != ST_OK && !strcmp(s->state, "55P03"))
		buf_setf(err,
			 "postgres: %s: documents of kind '%s' stayed locked "
			 "by another session for the %u ms budget",
			 what, params[0], s->budget_ms);
	/* A statement failed: the transaction waits for its ROLLBACK. */
	if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		struct buf ignored = BUF_INIT;

		if (pg_run(s, PG_NR, "ROLLBACK", 0, NULL, "rollback", NULL,
			   &ignored) != ST_OK)
			pg_drop(s);
		buf_release(&ignored);
	}
	if (ret != ST_OK) {
		PQclear(*out);
		*out = NULL;
	}
	s->deadline = 0;
	return ret;
}

static enum status pg_doc_get(struct store *st, const char *kind,
			      const char *key, struct store_doc *out,
			      struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const char *params[2] = {kind, key};
	PGresult *res = NULL;
	enum status ret;

	memset(out, 0, sizeof(*out));
	ret = pg_doc_read(s, PG_DOC_GET, 2, params, "reading a document", &res,
			  err);
	if (ret == ST_OK && PQntuples(res) == 0)
		ret = ST_NOT_FOUND;
	else if (ret == ST_OK)
		pg_doc_from_row(res, 0, out);
	PQclear(res);
	return ret;
}

static enum status pg_doc_put(struct store *st, const char *kind,
			      const char *key, const char *value,
			      uint64_t expect, uint64_t *version,
			      struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const char *params[4] = {kind, key, value, NULL};
	char expect_text[24];
	PGresult *res = NULL;
	enum status ret;

	if (expect != STORE_DOC_ANY) {
		/* Versions are bigints: no document has one this large. */
		if (expect > INT64_MAX) {
			buf_setf(err,
				 "postgres: document '%s/%s' is not at version "
				 "%llu",
				 kind, key, (unsigned long long)expect);
			return ST_CONFLICT;
		}
		snprintf(expect_text, sizeof(expect_text), "%llu",
			 (unsigned long long)expect);
		params[3] = expect_text;
	}
	ret = pg_doc_write(s, PG_DOC_PUT, 4, params, "writing a document", &res,
			   err);
	if (ret != ST_OK)
		goto out;
	if (PQntuples(res) != 1) {
		buf_setf(err, "postgres: writing document '%s/%s': no result",
			 kind, key);
		ret = ST_UNAVAILABLE;
	} else if (PQgetisnull(res, 0, 1)) {
		buf_setf(err,
			 "postgres: document '%s/%s' is at version %s, not "
			 "%llu",
			 kind, key, PQgetvalue(res, 0, 0),
			 (unsigned long long)expect);
		ret = ST_CONFLICT;
	} else if (version) {
		*version = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	}
out:
	PQclear(res);
	return ret;
}

static enum status pg_doc_delete(struct store *st, const char *kind,
				 const char *key, struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const char *params[2] = {kind, key};
	PGresult *res = NULL;
	enum status ret;

	ret = pg_doc_write(s, PG_DOC_DELETE, 2, params, "deleting a document",
			   &res, err);
	if (ret == ST_OK && PQntuples(res) == 0) {
		buf_setf(err, "postgres: no document '%s/%s'", kind, key);
		ret = ST_NOT_FOUND;
	}
	PQclear(res);
	return ret;
}

static enum status pg_doc_list(struct store *st, const char *kind,
			       const char *after, size_t limit,
			       struct store_doc_list *out, struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	char limit_text[24];
	const char *params[3] = {kind, after ? after : "", limit_text};
	PGresult *res = NULL;
	enum status ret;
	int i;

	snprintf(limit_text, sizeof(limit_text), "%llu",
		 (unsigned long long)(limit > INT64_MAX ? INT64_MAX : limit));
	ret = pg_doc_read(s, PG_DOC_LIST, 3, params, "listing documents", &res,
			  err);
	for (i = 0; ret == ST_OK && i < PQntuples(res); i++)
		pg_doc_from_row(res, i, store_doc_list_append(out));
	PQclear(res);
	return ret;
}

static enum status pg_table_list(struct store *st, const char *after,
				 size_t limit, struct store_name_list *out,
				 struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	char limit_text[24];
	const char *params[2] = {after, limit_text};
	PGresult *res = NULL;
	enum status ret;
	int i;

	snprintf(limit_text, sizeof(limit_text), "%llu",
		 (unsigned long long)(limit > INT64_MAX ? INT64_MAX : limit));
	ret = pg_doc_read(s, PG_TABLE_LIST, 2, params, "listing tables", &res,
			  err);
	for (i = 0; ret == ST_OK && i < PQntuples(res); i++)
		store_name_list_add(out, PQgetvalue(res, i, 0),
				    (size_t)PQgetlength(res, i, 0));
	PQclear(res);
	return ret;
}

/*
 * The commits' NOTIFY (PG_BUMP) as hints. The first call on a connection
 * sends LISTEN and reports `all`: what was announced before was not heard.
 * A connection that fails is dropped; the next call reconnects, listens and
 * reports `all` again.
 */
static enum status pg_hints(struct store *st, unsigned timeout_ms,
			    struct store_name_list *out, int *all,
			    struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	enum status ret;
	PGnotify *n;
	int rc;

	*all = 0;
	if (!s->conn || !s->listening) {
		s->deadline = clock_now_ms() + s->budget_ms;
		ret = pg_ensure_conn(s, err);
		if (ret == ST_OK)
			ret = pg_run(s, PG_NR, "LISTEN " PG_CHANNEL, 0, NULL,
				     "listening", NULL, err);
		s->deadline = 0;
		if (ret != ST_OK)
			return ret;
		s->listening = 1;
		*all = 1;
		return ST_OK;
	}
	rc = pg_poll(s->conn, POLLIN, clock_now_ms() + timeout_ms);
	if (rc < 0 || (rc > 0 && (!PQconsumeInput(s->conn) ||
				  PQstatus(s->conn) != CONNECTION_OK)))
		return pg_conn_failed(s, "waiting for notifications", err);
	while ((n = PQnotifies(s->conn))) {
		store_name_list_add(out, n->extra, strlen(n->extra));
		PQfreemem(n);
	}
	return ST_OK;
}

static enum status pg_doc_generation(struct store *st, const char *kind,
				     uint64_t *generation, struct buf *err)
{
	struct pg_store *s = (struct pg_store *)st;
	const char *params[1] = {kind};
	PGresult *res = NULL;
	enum status ret;

	*generation = 0;
	ret = pg_doc_read(s, PG_DOC_GENERATION, 1, params,
			  "reading a document generation", &res, err);
	if (ret == ST_OK && PQntuples(res) == 1)
		*generation = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return ret;
}

const struct store_backend store_postgres = {
	.name = "postgres",
	.caps = STORE_CAP_VERSION | STORE_CAP_ATOMIC | STORE_CAP_PROBE |
		STORE_CAP_TABLE_LOCKS | STORE_CAP_HINTS,
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.version = pg_version,
	.load = pg_load,
	.put = pg_put,
	.remove = pg_remove,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.ping = pg_ping,
	.probe = pg_probe,
	.doc_get = pg_doc_get,
	.doc_put = pg_doc_put,
	.doc_delete = pg_doc_delete,
	.doc_list = pg_doc_list,
	.doc_generation = pg_doc_generation,
	.table_list = pg_table_list,
	.hints = pg_hints,
};
