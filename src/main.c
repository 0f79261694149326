/* lambda-registry: the subcommand table and the entry point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "cli.h"
#include "clock.h"
#include "http.h"
#include "import.h"
#include "lambda.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "render.h"
#include "settings.h"
#include "store/store.h"
#include "xalloc.h"
#include "agent/agent.h"
#include "banned.h"

#define DEFAULT_STORE "sqlite:./registry.db"

static int main_open_registry(const char *store, const char *bind,
			      struct registry **reg)
{
	struct registry_options opts = {.store_spec = store};
	struct buf canon = BUF_INIT, err = BUF_INIT;
	enum status st;
	int code = 0;

	if (render_check_bind(bind, &canon, &err)) {
		fprintf(stderr, "lambda-registry: --frontend-bind: %s\n",
			err.buf);
		code = 2;
		goto out;
	}
	opts.render.frontend_bind = canon.buf;
	st = registry_new(&opts, reg, &err);
	if (st != ST_OK) {
		struct buf shown = BUF_INIT;

		store_spec_redact(store, &shown);
		fprintf(stderr, "lambda-registry: store '%s': %s\n", shown.buf,
			err.buf);
		buf_release(&shown);
		code = status_exit(st);
	}
out:
	buf_release(&canon);
	buf_release(&err);
	return code;
}

/* serve_options by name: cmd_serve reads its values by these. */
enum serve_option {
	SERVE_LISTEN,
	SERVE_STORE,
	SERVE_MAX_BODY,
	SERVE_FRONTEND_BIND,
	SERVE_READ_TIMEOUT,
	SERVE_MAX_CONNECTIONS,
	SERVE_MAX_HEADER,
	SERVE_THREADS,
	SERVE_HEADER_TIMEOUT,
	SERVE_MAX_CONNECTIONS_PER_IP,
	SERVE_WORKERS,
	SERVE_MAX_QUEUE,
	SERVE_KEPT_ANSWERS,
	SERVE_AUTH,
	SERVE_TLS_CERT,
	SERVE_TLS_KEY,
	SERVE_ANSWER_FORMAT,
	SERVE_NR_OPTIONS
};

static const struct cli_option serve_options[] = {
	[SERVE_LISTEN] = {"listen", "ADDR:PORT",
			  "address to listen on (port 0: one the system picks, "
			  "named in the log)",
			  "127.0.0.1:8080"},
	[SERVE_STORE] = {"store", "SPEC",
			 "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
			 DEFAULT_STORE},
	[SERVE_MAX_BODY] = {"max-body", "BYTES",
			    "largest request body accepted (K/M/G suffixes)",
			    "1M"},
	[SERVE_FRONTEND_BIND] = {"frontend-bind", "ADDR:PORT",
				 "bind line of the generated frontend",
				 RENDER_DEFAULT_BIND},
	[SERVE_READ_TIMEOUT] = {"read-timeout", "SECONDS",
				"time an idle or slow client may take", "30"},
	[SERVE_MAX_CONNECTIONS] = {"max-connections", "N",
				   "connections served at once, parked watches "
				   "included; more are refused",
				   "16384"},
	[SERVE_MAX_HEADER] = {"max-header", "BYTES",
			      "largest request header block; over it: 431",
			      "16K"},
	[SERVE_THREADS] = {"threads", "N", "polling threads (0: one per CPU)",
			   "0"},
	[SERVE_HEADER_TIMEOUT] = {"header-timeout", "SECONDS",
				  "time a client may take to send its request "
				  "headers (0: no limit)",
				  "10"},
	[SERVE_MAX_CONNECTIONS_PER_IP] =
		{"max-connections-per-ip", "N",
		 "connections one client address may hold (0: no limit)", "64"},
	[SERVE_WORKERS] = {"workers", "N",
			   "threads that run store calls that write", "16"},
	[SERVE_MAX_QUEUE] = {"max-queue", "N",
			     "store calls waiting for a worker; more get 503 "
			     "with Retry-After",
			     "64"},
	[SERVE_KEPT_ANSWERS] =
		{"kept-answers", "N",
		 "answers of small configs each polling thread "
		 "keeps for the calls that repeat them (0: none)",
		 "4"},
	[SERVE_AUTH] = {"auth", "MODE",
			"required, off, or auto: tokens unless listening on "
			"loopback only",
			"auto"},
	[SERVE_TLS_CERT] =
		{"tls-cert", "PEM",
		 "serve HTTPS with this certificate chain (reloaded on SIGHUP)",
		 NULL},
	[SERVE_TLS_KEY] = {"tls-key", "PEM", "the private key of --tls-cert",
			   NULL},
	[SERVE_ANSWER_FORMAT] = {"answer-format", "FORMAT",
				 "what POST generate answers by default: text, "
				 "or json-string (the "
				 "config as one JSON string, as the first "
				 "version's agent expects)",
				 "text"},
	[SERVE_NR_OPTIONS] = {NULL, NULL, NULL, NULL},
};

/* serve's numeric options and their ranges. */
static const struct serve_number {
	enum serve_option opt;
	unsigned long long min, max;
} serve_numbers[] = {
	{SERVE_MAX_BODY, 0, (size_t)1 << 30},
	{SERVE_READ_TIMEOUT, 1, 86400},
	{SERVE_MAX_CONNECTIONS, 1, 1000000},
	{SERVE_MAX_HEADER, 1024, (size_t)1 << 20},
	{SERVE_THREADS, 0, 256},
	{SERVE_HEADER_TIMEOUT, 0, 86400},
	{SERVE_MAX_CONNECTIONS_PER_IP, 0, 1000000},
	{SERVE_WORKERS, 1, 1024},
	{SERVE_MAX_QUEUE, 1, 1000000},
	{SERVE_KEPT_ANSWERS, 0, 64},
};

/*
 * The token cache for `mode` on `spec`, or NULL when requests need none;
 * `loopback`: every listener is on loopback. Returns an exit code.
 */
static int main_open_auth(const char *cmd, const char *mode_text,
			  const char *spec, int loopback, struct auth **out)
{
	enum auth_mode mode;
	struct buf err = BUF_INIT;
	enum status st;
	int code = 0;

	*out = NULL;
	if (auth_mode_parse(mode_text, &mode)) {
		fprintf(stderr,
			"lambda-registry %s: --auth '%s' is not required, off "
			"or auto\n",
			cmd, mode_text);
		return 2;
	}
	if (mode == AUTH_MODE_OFF) {
		log_event("event=auth_off level=warning command=%s "
			  "note=\"anyone who can connect may write every "
			  "table\"",
			  cmd);
		goto out;
	}
	if (mode == AUTH_MODE_AUTO && loopback) {
		log_event("event=auth mode=auto tokens=no reason=loopback");
		goto out;
	}
	st = auth_new(spec, out, &err);
	if (st != ST_OK) {
		fprintf(stderr, "lambda-registry %s: tokens in '%s': %s\n", cmd,
			spec, err.buf);
		code = status_exit(st);
		goto out;
	}
	log_event("event=auth mode=%s tokens=yes",
		  mode == AUTH_MODE_AUTO ? "auto" : "required");
out:
	buf_release(&err);
	return code;
}

static int cmd_serve(const char *const *v, int argc, char **argv)
{
	struct http_options opts = {0};
	struct registry *reg = NULL;
	struct auth *auth = NULL;
	struct buf err = BUF_INIT;
	unsigned long long num[SERVE_NR_OPTIONS] = {0};
	enum status st;
	int code = 2;
	size_t i;

	if (argc > 0) {
		fprintf(stderr,
			"lambda-registry serve: unexpected argument '%s'\n",
			argv[0]);
		goto out;
	}
	for (i = 0; i < ARRAY_SIZE(serve_numbers); i++) {
		const struct serve_number *sn = &serve_numbers[i];
		const char *name = serve_options[sn->opt].name;

		if (cli_parse_size(v[sn->opt], sn->max, &num[sn->opt], &err)) {
			fprintf(stderr, "lambda-registry serve: --%s: %s\n",
				name, err.buf);
			goto out;
		}
		if (num[sn->opt] < sn->min) {
			fprintf(stderr,
				"lambda-registry serve: --%s: must be at least "
				"%llu\n",
				name, sn->min);
			goto out;
		}
	}
	opts.listen = v[SERVE_LISTEN];
	opts.max_body = (size_t)num[SERVE_MAX_BODY];
	opts.read_timeout = (unsigned)num[SERVE_READ_TIMEOUT];
	opts.max_connections = (unsigned)num[SERVE_MAX_CONNECTIONS];
	opts.max_header = (size_t)num[SERVE_MAX_HEADER];
	opts.threads = (unsigned)num[SERVE_THREADS];
	opts.header_timeout = (unsigned)num[SERVE_HEADER_TIMEOUT];
	opts.max_connections_per_ip =
		(unsigned)num[SERVE_MAX_CONNECTIONS_PER_IP];
	opts.workers = (unsigned)num[SERVE_WORKERS];
	opts.max_queue = (unsigned)num[SERVE_MAX_QUEUE];
	opts.kept_answers = (unsigned)num[SERVE_KEPT_ANSWERS];
	if (!v[SERVE_TLS_CERT] != !v[SERVE_TLS_KEY]) {
		fprintf(stderr, "lambda-registry serve: --tls-cert and "
				"--tls-key go together\n");
		goto out;
	}
	opts.tls_cert = v[SERVE_TLS_CERT];
	opts.tls_key = v[SERVE_TLS_KEY];
	if (api_answer_format_parse(v[SERVE_ANSWER_FORMAT],
				    &opts.answer_format)) {
		fprintf(stderr, "lambda-registry serve: --answer-format is "
				"text or json-string\n");
		goto out;
	}
	if (http_listen_is_loopback(opts.listen) < 0) {
		fprintf(stderr,
			"lambda-registry serve: --listen '%s' is not "
			"ADDR:PORT\n",
			opts.listen);
		goto out;
	}
	code = main_open_auth("serve", v[SERVE_AUTH], v[SERVE_STORE],
			      http_listen_is_loopback(opts.listen) == 1, &auth);
	if (code)
		goto out;
	code = 2;
	opts.auth = auth;

	xalloc_tune_for_server();
	code = main_open_registry(v[SERVE_STORE], v[SERVE_FRONTEND_BIND], &reg);
	if (code)
		goto out;
	st = http_serve(reg, &opts, &err);
	if (st != ST_OK) {
		fprintf(stderr, "lambda-registry serve: %s\n", err.buf);
		code = st == ST_USAGE ? 2 : 3;
	}
out:
	registry_free(reg);
	auth_free(auth);
	buf_release(&err);
	return code;
}

static int main_read_input(const char *path, struct buf *out, struct buf *err)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char chunk[65536];
	size_t n;
	int ret = 0;

	if (!f) {
		buf_setf(err, "cannot open '%s': %m", path);
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_add(out, chunk, n)) {
			buf_setf(err, "'%s' is larger than %zu bytes", path,
				 out->cap);
			ret = -1;
			break;
		}
	}
	if (!ret && ferror(f)) {
		buf_setf(err, "cannot read '%s'", path);
		ret = -1;
	}
	if (f != stdin)
		fclose(f);
	return ret;
}

static const struct cli_option generate_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{"frontend-bind", "ADDR:PORT", "bind line of the generated frontend",
	 RENDER_DEFAULT_BIND},
	{"json", NULL,
	 "print {table, services, config} as JSON instead of the config", NULL},
	{NULL, NULL, NULL, NULL},
};

static int cmd_generate(const char *const *v, int argc, char **argv)
{
	struct buf input = BUF_INIT, err = BUF_INIT, field = BUF_INIT,
		   out = BUF_INIT;
	struct registry_result res;
	struct registry *reg = NULL;
	enum status st;
	int code;

	registry_result_init(&res);
	if (argc > 1) {
		fprintf(stderr,
			"lambda-registry generate: one input at most\n");
		code = 2;
		goto out;
	}
	if (main_read_input(argc ? argv[0] : "-", &input, &err)) {
		fprintf(stderr, "lambda-registry generate: %s\n", err.buf);
		code = 2;
		goto out;
	}
	code = main_open_registry(v[0], v[1], &reg);
	if (code)
		goto out;
	st = registry_call(reg, input.buf, input.len,
			   v[2] ? REGISTRY_WANT_SERVICES | REGISTRY_WANT_FILES
				: 0,
			   &res, &err, &field);
	if (st != ST_OK) {
		if (field.len)
			fprintf(stderr, "lambda-registry generate: %s: %s\n",
				field.buf, err.buf);
		else
			fprintf(stderr, "lambda-registry generate: %s\n",
				err.buf);
		code = status_exit(st);
		goto out;
	}
	if (v[2]) {
		registry_result_json(&res, &out);
		(void)buf_addch(&out, '\n');
	} else {
		(void)buf_add(&out, res.config.buf, res.config.len);
	}
	if (fwrite(out.buf, 1, out.len, stdout) != out.len || fflush(stdout)) {
		fprintf(stderr,
			"lambda-registry generate: cannot write the output\n");
		code = 3;
	}
out:
	registry_result_release(&res);
	registry_free(reg);
	buf_release(&input);
	buf_release(&err);
	buf_release(&field);
	buf_release(&out);
	return code;
}

static const struct cli_option dump_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{NULL, NULL, NULL, NULL},
};

static int cmd_dump(const char *const *v, int argc, char **argv)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct registry *reg = NULL;
	enum status st;
	int code;

	if (argc != 1) {
		fprintf(stderr,
			"lambda-registry dump: needs exactly one TABLE\n");
		code = 2;
		goto out;
	}
	code = main_open_registry(v[0], RENDER_DEFAULT_BIND, &reg);
	if (code)
		goto out;
	st = registry_dump(reg, argv[0], &out, &err);
	if (st != ST_OK) {
		fprintf(stderr, "lambda-registry dump: %s\n", err.buf);
		code = status_exit(st);
		goto out;
	}
	fwrite(out.buf, 1, out.len, stdout);
	putchar('\n');
out:
	registry_free(reg);
	buf_release(&out);
	buf_release(&err);
	return code;
}

static const struct cli_option import_options[] = {
	{"from", "dynamodb-table:NAME",
	 "the first version's DynamoDB table (all hosts' services in one)",
	 "dynamodb-table:services"},
	{"from-region", "REGION", "the AWS region of --from", "us-east-1"},
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{"table", "NAME", "the table of --store that gets the services", NULL},
	{"only-services", "A,B", "import only these services (default: all)",
	 NULL},
	{"apply", NULL, "write them (without it: print what would be written)",
	 NULL},
	{NULL, NULL, NULL, NULL},
};

static int cmd_import(const char *const *v, int argc, char **argv)
{
	struct import_options opts = {
		.from = v[0],
		.region = v[1],
		.store = v[2],
		.table = v[3],
		.only = v[4],
		.apply = v[5] != NULL,
	};
	struct buf report = BUF_INIT, err = BUF_INIT;
	enum status st;
	int code = 0;

	(void)argv;
	if (argc || !opts.table) {
		fprintf(stderr,
			"lambda-registry import: needs --table NAME and "
			"no argument\n");
		code = 2;
		goto out;
	}
	st = import_run(&opts, &report, &err);
	fwrite(report.buf, 1, report.len, stdout);
	if (st != ST_OK) {
		fprintf(stderr, "lambda-registry import: %s\n", err.buf);
		code = status_exit(st);
	}
out:
	buf_release(&report);
	buf_release(&err);
	return code;
}

static const struct cli_option lambda_cli_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 "dynamodb"},
	{"frontend-bind", "ADDR:PORT", "bind line of the generated frontend",
	 RENDER_DEFAULT_BIND},
	{"max-body", "BYTES",
	 "largest request body or direct event accepted (K/M/G suffixes)",
	 "1M"},
	{"auth", "MODE",
	 "required, off, or auto (= required: API Gateway is not loopback); "
	 "direct invocations are authorized by IAM and need no token",
	 "auto"},
	{"answer-format", "FORMAT",
	 "what API Gateway events for POST generate get by default: text, or "
	 "json-string (as the first version answered)",
	 "text"},
	{NULL, NULL, NULL, NULL},
};

static int cmd_lambda(const char *const *v, int argc, char **argv)
{
	struct lambda_options opts = {
		getenv("AWS_LAMBDA_RUNTIME_API"), v[0], v[1], v[2], v[3], v[4]};
	struct buf err = BUF_INIT;
	enum status st;
	int code = 0;

	if (argc > 0) {
		fprintf(stderr,
			"lambda-registry lambda: unexpected argument '%s'\n",
			argv[0]);
		code = 2;
		goto out;
	}
	{
		enum auth_mode mode;

		if (auth_mode_parse(v[3], &mode)) {
			fprintf(stderr,
				"lambda-registry lambda: --auth '%s' is not "
				"required, off or auto\n",
				v[3]);
			code = 2;
			goto out;
		}
	}
	st = lambda_run(&opts, &err);
	if (st != ST_OK) {
		fprintf(stderr, "lambda-registry lambda: %s\n", err.buf);
		code = status_exit(st);
	}
out:
	buf_release(&err);
	return code;
}

/* ---- token create | list | revoke ------------------------------------- */

#define TOKEN_MAX_SCOPES 64

static const struct cli_option token_create_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{"scope", "SCOPE",
	 "admin, table:NAME:read|write, table:PREFIX*:read|write or "
	 "table:*:read|write; repeat for more",
	 NULL},
	{"expires", "DURATION", "expire after this long (s, m, h, d)", NULL},
	{"description", "TEXT", "what the token is for (shown by token list)",
	 NULL},
	{NULL, NULL, NULL, NULL},
};

static const struct cli_option token_store_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{NULL, NULL, NULL, NULL},
};

static int main_open_store(const char *cmd, const char *spec, struct store **st)
{
	struct buf err = BUF_INIT;
	enum status ret = store_open(spec, st, &err);

	if (ret != ST_OK)
		fprintf(stderr, "lambda-registry %s: store '%s': %s\n", cmd,
			spec, err.buf);
	buf_release(&err);
	return ret == ST_OK ? 0 : status_exit(ret) ? status_exit(ret) : 3;
}

/* Filled by cmd_token() for cmd_token_create(), which needs every --scope. */
/* Parse `cmd`'s options from argv[1..] and run it: --help prints its usage
 * (0), bad options print it with the error (2). */
static int main_run(const struct cli_command *cmd, int argc, char **argv)
{
	const char *values[CLI_MAX_OPTIONS];
	struct buf err = BUF_INIT, usage = BUF_INIT;
	enum status st;
	int first, code;

	st = cli_parse(cmd, argc, argv, values, &first, &err);
	if (st == ST_NOT_FOUND) {
		cli_usage(cmd, &usage);
		fputs(usage.buf, stdout);
		code = 0;
	} else if (st != ST_OK) {
		cli_usage(cmd, &usage);
		fprintf(stderr, "lambda-registry %s: %s\n\n%s", cmd->name,
			err.buf, usage.buf);
		code = 2;
	} else {
		code = cmd->run(values, argc - first, argv + first);
	}
	buf_release(&err);
	buf_release(&usage);
	return code;
}

/* "GROUP SUB ...": the entry of `subs` (named "GROUP SUB") runs the rest. */
static int main_run_sub(const char *group, const struct cli_command *subs,
			size_t nr, int argc, char **argv)
{
	struct buf usage = BUF_INIT;
	size_t i, skip = strlen(group) + 1;

	for (i = 0; argc > 0 && i < nr; i++)
		if (!strcmp(subs[i].name + skip, argv[0]))
			return main_run(&subs[i], argc, argv);
	fprintf(stderr, "lambda-registry %s: %s\n\n", group,
		argc ? "unknown subcommand" : "needs a subcommand");
	for (i = 0; i < nr; i++) {
		buf_reset(&usage);
		cli_usage(&subs[i], &usage);
		fprintf(stderr, "%s\n", usage.buf);
	}
	buf_release(&usage);
	return 2;
}

static int token_argc;
static char **token_argv;

static const struct cli_command token_commands[];

static int cmd_token_create(const char *const *v, int argc, char **argv)
{
	const char *scopes[TOKEN_MAX_SCOPES];
	struct auth_token t;
	struct auth_scope sc;
	struct buf err = BUF_INIT, text = BUF_INIT, line = BUF_INIT;
	struct store *st = NULL;
	uint64_t ms = 0;
	int i, n, code = 2;

	auth_token_init(&t);
	if (argc > 0) {
		fprintf(stderr,
			"lambda-registry token create: unexpected argument "
			"'%s'\n",
			argv[0]);
		goto out;
	}
	n = cli_values(&token_commands[0], token_argc, token_argv, "scope",
		       scopes, TOKEN_MAX_SCOPES);
	if (n <= 0) {
		fprintf(stderr, "lambda-registry token create: %s\n",
			n ? "too many --scope" : "at least one --scope needed");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (auth_scope_parse(scopes[i], &sc, &err)) {
			fprintf(stderr, "lambda-registry token create: %s\n",
				err.buf);
			goto out;
		}
		auth_token_add_scope(&t, &sc);
	}
	if (v[2] && auth_parse_duration(v[2], &ms, &err)) {
		fprintf(stderr, "lambda-registry token create: --expires: %s\n",
			err.buf);
		goto out;
	}
	t.created_at = (int64_t)clock_real_ms();
	t.expires_at = ms ? t.created_at + (int64_t)ms : 0;
	t.description = xstrdup(v[3] ? v[3] : "");
	code = main_open_store("token create", v[0], &st);
	if (code)
		goto out;
	if (auth_token_generate(&t, &text, &err) != ST_OK ||
	    auth_store_put(st, &t, &err) != ST_OK) {
		fprintf(stderr, "lambda-registry token create: %s\n", err.buf);
		code = 3;
		goto out;
	}
	/* The token alone on stdout: the one time it is shown. */
	printf("%s\n", text.buf);
	if (fflush(stdout)) {
		code = 3;
		goto out;
	}
	for (i = 0; i < (int)t.nr_scopes; i++) {
		if (i)
			(void)buf_addch(&line, ' ');
		auth_scope_format(&t.scopes[i], &line);
	}
	fprintf(stderr, "token id=%s scopes=%s expires=%s\n", t.id, line.buf,
		v[2] ? v[2] : "never");
	code = 0;
out:
	store_close(st);
	auth_token_release(&t);
	if (text.len)
		memset(text.buf, 0, text.len);
	buf_release(&text);
	buf_release(&err);
	buf_release(&line);
	return code;
}

static int cmd_token_list(const char *const *v, int argc, char **argv)
{
	struct auth_token *tokens = NULL;
	struct buf err = BUF_INIT, out = BUF_INIT;
	struct store *st = NULL;
	enum status ret;
	size_t nr = 0, i, j;
	int code = 2;

	if (argc > 0) {
		fprintf(stderr,
			"lambda-registry token list: unexpected argument "
			"'%s'\n",
			argv[0]);
		goto out;
	}
	code = main_open_store("token list", v[0], &st);
	if (code)
		goto out;
	ret = auth_store_list(st, &tokens, &nr, &err);
	if (ret != ST_OK) {
		fprintf(stderr, "lambda-registry token list: %s\n", err.buf);
		code = 3;
		goto out;
	}
	/* One JSON object per line; the hash stays in the store. */
	for (i = 0; i < nr; i++) {
		const struct auth_token *t = &tokens[i];
		struct buf scope = BUF_INIT;

		buf_reset(&out);
		(void)buf_addf(&out, "{\"id\":\"%s\",\"scopes\":[", t->id);
		for (j = 0; j < t->nr_scopes; j++) {
			buf_reset(&scope);
			auth_scope_format(&t->scopes[j], &scope);
			(void)buf_addstr(&out, j ? "," : "");
			(void)buf_addjson(&out, scope.buf, scope.len);
		}
		(void)buf_addf(&out, "],\"created_at\":%lld,\"expires_at\":",
			       (long long)t->created_at);
		if (t->expires_at)
			(void)buf_addf(&out, "%lld", (long long)t->expires_at);
		else
			(void)buf_addstr(&out, "null");
		(void)buf_addf(&out, ",\"expired\":%s,\"description\":",
			       auth_token_expired(t, (int64_t)clock_real_ms())
				       ? "true"
				       : "false");
		(void)buf_addjson(&out, t->description, strlen(t->description));
		(void)buf_addstr(&out, "}\n");
		fputs(out.buf, stdout);
		buf_release(&scope);
	}
	code = fflush(stdout) ? 3 : 0;
out:
	for (i = 0; i < nr; i++)
		auth_token_release(&tokens[i]);
	free(tokens);
	store_close(st);
	buf_release(&err);
	buf_release(&out);
	return code;
}

static int cmd_token_revoke(const char *const *v, int argc, char **argv)
{
	struct buf err = BUF_INIT;
	struct store *st = NULL;
	enum status ret;
	char id[AUTH_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
	const char *which;
	int code = 2;

	if (argc != 1) {
		fprintf(stderr,
			"lambda-registry token revoke: needs exactly one ID\n");
		goto out;
	}
	/* The whole token names its id too. */
	which = auth_token_split(argv[0], id, secret) ? argv[0] : id;
	code = main_open_store("token revoke", v[0], &st);
	if (code)
		goto out;
	ret = auth_store_revoke(st, which, &err);
	if (ret == ST_NOT_FOUND) {
		fprintf(stderr, "lambda-registry token revoke: no token '%s'\n",
			which);
		code = 1;
	} else if (ret != ST_OK) {
		fprintf(stderr, "lambda-registry token revoke: %s\n", err.buf);
		code = 3;
	} else {
		fprintf(stderr, "token id=%s revoked\n", which);
		code = 0;
	}
out:
	memset(secret, 0, sizeof(secret));
	store_close(st);
	buf_release(&err);
	return code;
}

static const struct cli_command token_commands[] = {
	{"token create", NULL,
	 "Create a token; prints it alone on the first line of stdout, the "
	 "only\n"
	 "time it is shown (details on stderr). A token works on every "
	 "running\n"
	 "server of the store within 5 s.",
	 token_create_options, cmd_token_create},
	{"token list", NULL,
	 "List the tokens, one JSON object a line (never a secret).",
	 token_store_options, cmd_token_list},
	{"token revoke", "ID",
	 "Delete the token ID; every running server refuses it within 5 s.",
	 token_store_options, cmd_token_revoke},
};

static const struct cli_option token_options[] = {
	{NULL, NULL, NULL, NULL},
};

static int cmd_token(const char *const *v, int argc, char **argv)
{
	(void)v;
	token_argc = argc;
	token_argv = argv;
	return main_run_sub("token", token_commands, ARRAY_SIZE(token_commands),
			    argc, argv);
}

static const struct cli_option settings_put_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{"table", "NAME",
	 "store the overrides of table NAME (default: the "
	 "fleet's defaults)",
	 NULL},
	{NULL, NULL, NULL, NULL},
};

static const struct cli_option settings_get_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{"table", "NAME",
	 "the overrides of table NAME (default: the fleet's "
	 "defaults)",
	 NULL},
	{"effective", NULL,
	 "print the defaults deep-merged with the table's overrides", NULL},
	{NULL, NULL, NULL, NULL},
};

static const struct cli_option settings_delete_options[] = {
	{"store", "SPEC", "sqlite:PATH, dynamodb[:PREFIX] or postgres:CONNINFO",
	 DEFAULT_STORE},
	{"table", "NAME", "delete the overrides of table NAME", NULL},
	{NULL, NULL, NULL, NULL},
};

/* Report `st` of "settings SUB" and give its exit code. */
static int main_settings_fail(const char *sub, enum status st,
			      const struct buf *err)
{
	fprintf(stderr, "lambda-registry settings %s: %s\n", sub, err->buf);
	return status_exit(st);
}

static int cmd_settings_put(const char *const *v, int argc, char **argv)
{
	struct buf input = BUF_INIT, err = BUF_INIT;
	struct registry *reg = NULL;
	enum status st;
	int code;

	if (argc != 1) {
		fprintf(stderr, "lambda-registry settings put: needs exactly "
				"one FILE (or - for standard input)\n");
		code = 2;
		goto out;
	}
	buf_init(&input, SETTINGS_MAX_BYTES);
	if (main_read_input(argv[0], &input, &err)) {
		fprintf(stderr, "lambda-registry settings put: %s\n", err.buf);
		code = 2;
		goto out;
	}
	code = main_open_registry(v[0], RENDER_DEFAULT_BIND, &reg);
	if (code)
		goto out;
	st = registry_settings_put(reg, v[1], input.buf, input.len, &err);
	if (st != ST_OK)
		code = main_settings_fail("put", st, &err);
out:
	registry_free(reg);
	buf_release(&input);
	buf_release(&err);
	return code;
}

static int cmd_settings_get(const char *const *v, int argc, char **argv)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct registry *reg = NULL;
	enum status st;
	int code;

	if (argc) {
		fprintf(stderr,
			"lambda-registry settings get: unexpected argument "
			"'%s'\n",
			argv[0]);
		code = 2;
		goto out;
	}
	code = main_open_registry(v[0], RENDER_DEFAULT_BIND, &reg);
	if (code)
		goto out;
	st = registry_settings_get(reg, v[1], v[2] != NULL, &out, &err);
	if (st != ST_OK) {
		code = main_settings_fail("get", st, &err);
		goto out;
	}
	(void)buf_addch(&out, '\n');
	if (fwrite(out.buf, 1, out.len, stdout) != out.len || fflush(stdout)) {
		fprintf(stderr, "lambda-registry settings get: cannot write "
				"the output\n");
		code = 3;
	}
out:
	registry_free(reg);
	buf_release(&out);
	buf_release(&err);
	return code;
}

static int cmd_settings_delete(const char *const *v, int argc, char **argv)
{
	struct buf err = BUF_INIT;
	struct registry *reg = NULL;
	enum status st;
	int code;

	if (argc || !v[1]) {
		fprintf(stderr,
			"lambda-registry settings delete: needs --table "
			"NAME and no argument\n");
		code = 2;
		goto out;
	}
	code = main_open_registry(v[0], RENDER_DEFAULT_BIND, &reg);
	if (code)
		goto out;
	st = registry_settings_delete(reg, v[1], &err);
	if (st != ST_OK)
		code = main_settings_fail("delete", st, &err);
out:
	(void)argv;
	registry_free(reg);
	buf_release(&err);
	return code;
}

static const struct cli_command settings_commands[] = {
	{"settings put", "FILE|-",
	 "Check a settings file (YAML or JSON) and store it as the fleet's "
	 "defaults,\n"
	 "or with --table as that table's overrides. Errors name the key "
	 "path;\n"
	 "nothing is stored then. See docs/settings.md.\n"
	 "Exit status: 0 ok, 1 invalid settings, 2 usage error, 3 store "
	 "failure.",
	 settings_put_options, cmd_settings_put},
	{"settings get", NULL,
	 "Print the stored settings as canonical JSON ({} when none).",
	 settings_get_options, cmd_settings_get},
	{"settings delete", NULL, "Delete the overrides of one table.",
	 settings_delete_options, cmd_settings_delete},
};

static const struct cli_option settings_options[] = {
	{NULL, NULL, NULL, NULL},
};

/* "settings SUB ...": SUB's own table parses the rest. */
static int cmd_settings(const char *const *v, int argc, char **argv)
{
	(void)v;
	return main_run_sub("settings", settings_commands,
			    ARRAY_SIZE(settings_commands), argc, argv);
}

/* The Lambda package runs the binary as "bootstrap", without arguments. */
static int main_is_bootstrap(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	return !strcmp(base, "bootstrap") || getenv("AWS_LAMBDA_RUNTIME_API");
}

static const struct cli_command commands[] = {
	{"serve", NULL,
	 "Serve the HTTP API: generate, read and watch tables, metrics, the "
	 "status page.",
	 serve_options, cmd_serve},
	{"generate", "[FILE|-]",
	 "Apply one payload (FILE or standard input) to the store and print "
	 "the config.\n"
	 "Exit status: 0 ok, 1 invalid payload, 2 usage error, 3 store "
	 "failure.",
	 generate_options, cmd_generate},
	{"dump", "TABLE", "Print the stored services of TABLE as JSON.",
	 dump_options, cmd_dump},
	{"settings", "put|get|delete ...",
	 "Store, print or delete the fleet settings (TLS, logs, stats, "
	 "...).\n"
	 "'lambda-registry settings put|get|delete --help' describes each.",
	 settings_options, cmd_settings},
	{"lambda", NULL,
	 "Run as an AWS Lambda custom runtime (the package's bootstrap runs "
	 "this).\n"
	 "Answers direct invocations, API Gateway REST proxy and HTTP API "
	 "events\n"
	 "from the Runtime API at AWS_LAMBDA_RUNTIME_API.",
	 lambda_cli_options, cmd_lambda},
	{"agent", NULL,
	 "Keep this host's HAProxy in sync with the registry, from Docker or a "
	 "file.\n"
	 "Runs until SIGTERM; SIGHUP forces a full resync. Logs key=value "
	 "lines on stderr.",
	 agent_options, agent_main},
	{"import", NULL,
	 "Copy the services of the first version's DynamoDB table into a "
	 "table of this\n"
	 "registry's store. Without --apply a dry run: it prints what it "
	 "would write\n"
	 "(new, replace or same, one service a line) and stores nothing.\n"
	 "Exit status: 0 ok, 1 a service of --only-services is missing, 2 "
	 "usage error,\n"
	 "3 store failure.",
	 import_options, cmd_import},
	{"token", "create|list|revoke ...",
	 "Manage access tokens: token create --scope S [--scope S ...] "
	 "[--expires D]\n"
	 "[--description T], token list, token revoke ID; all with --store. "
	 "Run\n"
	 "'lambda-registry token create --help' and so on for each.",
	 token_options, cmd_token},
};

/* The commands whose first argument names a subcommand of their own. */
static const struct {
	const char *name;
	const struct cli_command *subs;
	size_t nr_subs;
} subcommand_tables[] = {
	{"settings", settings_commands, ARRAY_SIZE(settings_commands)},
	{"token", token_commands, ARRAY_SIZE(token_commands)},
};

/* lambda-registry(1): the commands and where each is described. */
static void main_man_index(struct buf *out)
{
	size_t i;

	(void)buf_addf(
		out,
		".TH LAMBDA\\-REGISTRY 1 \"\" \"lambda\\-registry %s\" "
		"\"User Commands\"\n.SH NAME\nlambda\\-registry \\- "
		"service registry that writes HAProxy configs\n"
		".SH SYNOPSIS\n.B lambda\\-registry\n\\fICOMMAND\\fR "
		"[\\fIOPTIONS\\fR]\n.br\n.B lambda\\-registry "
		"\\-\\-version\n.SH DESCRIPTION\n"
		"Agents on container hosts post the containers they run; "
		"the registry merges them with the routing state it "
		"stored before, stores the result and answers with a "
		"complete, valid \\fBhaproxy.cfg\\fR.\n"
		".SH COMMANDS\n",
		LR_VERSION);
	for (i = 0; i < ARRAY_SIZE(commands); i++) {
		(void)buf_addstr(out, ".TP\n.B ");
		cli_man_text(commands[i].name, out);
		(void)buf_addch(out, '\n');
		cli_man_text(commands[i].summary, out);
		(void)buf_addstr(out, "\nSee \\fBlambda\\-registry\\-");
		cli_man_text(commands[i].name, out);
		(void)buf_addstr(out, "\\fR(1).\n");
	}
	(void)buf_addstr(out, ".SH SEE ALSO\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++) {
		(void)buf_addstr(out, ".BR lambda\\-registry\\-");
		cli_man_text(commands[i].name, out);
		(void)buf_addf(out, " (1)%s\n",
			       i + 1 < ARRAY_SIZE(commands) ? "," : "");
	}
}

/* "--man [COMMAND]": the manual page, from the tables --help uses. */
static int main_man(const char *name)
{
	struct buf out = BUF_INIT;
	const struct cli_command *subs = NULL;
	size_t i, nr_subs = 0;
	int code = 0;

	if (!name) {
		main_man_index(&out);
		goto out;
	}
	for (i = 0; i < ARRAY_SIZE(subcommand_tables); i++)
		if (!strcmp(name, subcommand_tables[i].name)) {
			subs = subcommand_tables[i].subs;
			nr_subs = subcommand_tables[i].nr_subs;
		}
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(name, commands[i].name))
			break;
	if (i == ARRAY_SIZE(commands)) {
		fprintf(stderr, "lambda-registry: unknown command '%s'\n",
			name);
		code = 2;
		goto out;
	}
	cli_man(&commands[i], subs, nr_subs, "lambda-registry", &out);
out:
	if (!code)
		fputs(out.buf, stdout);
	buf_release(&out);
	return code;
}

static void main_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: lambda-registry COMMAND [OPTIONS]\n"
		   "       lambda-registry --version\n"
		   "       lambda-registry --man [COMMAND]   (a manual page)\n"
		   "\ncommands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++) {
		const char *nl = strchr(commands[i].summary, '\n');
		int len = nl ? (int)(nl - commands[i].summary)
			     : (int)strlen(commands[i].summary);

		fprintf(f, "  %-10s %.*s\n", commands[i].name, len,
			commands[i].summary);
	}
	fprintf(f, "\n'lambda-registry COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	const struct cli_command *cmd = NULL;
	size_t i;

	char *bootstrap_argv[] = {argv[0], (char *)"lambda", NULL};

	metrics_init();
	if (argc < 2 && argv[0] && main_is_bootstrap(argv[0])) {
		argc = 2;
		argv = bootstrap_argv;
	}
	if (argc < 2) {
		main_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lambda-registry %s\n", LR_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "--man"))
		return main_man(argc > 2 ? argv[2] : NULL);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		main_usage(stdout);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "lambda-registry: unknown command '%s'\n\n",
			argv[1]);
		main_usage(stderr);
		return 2;
	}
	return main_run(cmd, argc - 1, argv + 1);
}
