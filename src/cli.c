/* Table-driven option parsing with environment-variable fallback. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"
#include "banned.h"

static void cli_env_name(const char *opt, struct buf *out)
{
	buf_reset(out);
	(void)buf_addstr(out, "LAMBDA_REGISTRY_");
	for (; *opt; opt++)
		(void)buf_addch(
			out,
			*opt == '-' ? '_' : (char)toupper((unsigned char)*opt));
}

static int cli_find(const struct cli_command *cmd, const char *name, size_t len)
{
	int i;

	for (i = 0; cmd->options[i].name; i++)
		if (strlen(cmd->options[i].name) == len &&
		    !strncmp(cmd->options[i].name, name, len))
			return i;
	return -1;
}

enum status cli_parse(const struct cli_command *cmd, int argc, char **argv,
		      const char **values, int *first, struct buf *err)
{
	struct buf env = BUF_INIT;
	enum status ret = ST_OK;
	int i, n;

	for (n = 0; cmd->options[n].name; n++)
		if (n >= CLI_MAX_OPTIONS)
			BUG("command '%s' has more than %d options", cmd->name,
			    CLI_MAX_OPTIONS);
	for (n = 0; cmd->options[n].name; n++)
		values[n] = NULL;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *name, *eq;
		int idx;

		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		if (strncmp(arg, "--", 2) || !arg[2])
			break; /* positional, or "-" for stdin */
		if (!strcmp(arg, "--help")) {
			ret = ST_NOT_FOUND;
			goto out;
		}
		name = arg + 2;
		eq = strchr(name, '=');
		idx = cli_find(cmd, name,
			       eq ? (size_t)(eq - name) : strlen(name));
		if (idx < 0) {
			buf_setf(err, "unknown option '%s'", arg);
			ret = ST_USAGE;
			goto out;
		}
		if (!cmd->options[idx].arg_name) {
			if (eq) {
				buf_setf(err, "option '--%s' takes no value",
					 cmd->options[idx].name);
				ret = ST_USAGE;
				goto out;
			}
			values[idx] = "1";
		} else if (eq) {
			values[idx] = eq + 1;
		} else if (i + 1 < argc) {
			values[idx] = argv[++i];
		} else {
			buf_setf(err, "option '--%s' needs a value",
				 cmd->options[idx].name);
			ret = ST_USAGE;
			goto out;
		}
	}
	*first = i;

	for (n = 0; cmd->options[n].name; n++) {
		if (values[n])
			continue;
		cli_env_name(cmd->options[n].name, &env);
		values[n] = getenv(env.buf);
		if (values[n] && !*values[n] && cmd->options[n].arg_name)
			values[n] = NULL; /* an empty variable means unset */
		if (!values[n])
			values[n] = cmd->options[n].dflt;
	}
out:
	buf_release(&env);
	return ret;
}

int cli_values(const struct cli_command *cmd, int argc, char **argv,
	       const char *name, const char **out, int max)
{
	size_t nlen = strlen(name);
	int i, n = 0;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq;
		int idx;

		if (!strcmp(arg, "--") || strncmp(arg, "--", 2) || !arg[2])
			break;
		eq = strchr(arg + 2, '=');
		idx = cli_find(cmd, arg + 2,
			       eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
		if (idx < 0 || !cmd->options[idx].arg_name) {
			continue;
		}
		if (!eq)
			i++;
		if (strlen(cmd->options[idx].name) != nlen ||
		    strcmp(cmd->options[idx].name, name))
			continue;
		if (n == max)
			return -1;
		out[n++] = eq ? eq + 1 : argv[i];
	}
	return n;
}

void cli_usage(const struct cli_command *cmd, struct buf *out)
{
	struct buf env = BUF_INIT;
	int i;

	(void)buf_addf(
		out,
		"usage: lambda-registry %s [OPTIONS]%s%s\n\n%s\n\noptions:\n",
		cmd->name, cmd->args ? " " : "", cmd->args ? cmd->args : "",
		cmd->summary);
	for (i = 0; cmd->options[i].name; i++) {
		const struct cli_option *o = &cmd->options[i];

		cli_env_name(o->name, &env);
		(void)buf_addf(out, "  --%s%s%s\n      %s", o->name,
			       o->arg_name ? " " : "",
			       o->arg_name ? o->arg_name : "", o->help);
		if (o->dflt)
			(void)buf_addf(out, " (default: %s)", o->dflt);
		(void)buf_addf(out, "\n      env: %s\n", env.buf);
	}
	(void)buf_addstr(out, "  --help\n      show this help\n");
	buf_release(&env);
}

void cli_man_text(const char *text, struct buf *out)
{
	int bol = 1;

	for (; *text; text++) {
		if (bol && (*text == '.' || *text == '\''))
			(void)buf_addstr(out, "\\&");
		bol = *text == '\n';
		if (*text == '\\')
			(void)buf_addstr(out, "\\e");
		else if (*text == '-')
			(void)buf_addstr(out, "\\-");
		else
			(void)buf_addch(out, *text);
	}
}

static void cli_man_upper(const char *s, struct buf *out)
{
	for (; *s; s++)
		(void)buf_addch(out, (char)toupper((unsigned char)*s));
}

static void cli_man_options(const struct cli_command *cmd, const char *prefix,
			    struct buf *out)
{
	struct buf env = BUF_INIT;
	int i;

	for (i = 0; cmd->options[i].name; i++) {
		const struct cli_option *o = &cmd->options[i];

		(void)buf_addstr(out, ".TP\n\\fB");
		cli_man_text("--", out);
		cli_man_text(o->name, out);
		(void)buf_addstr(out, "\\fR");
		if (o->arg_name) {
			(void)buf_addstr(out, " \\fI");
			cli_man_text(o->arg_name, out);
			(void)buf_addstr(out, "\\fR");
		}
		(void)buf_addch(out, '\n');
		cli_man_text(o->help, out);
		if (o->dflt) {
			(void)buf_addstr(out, " (default: ");
			cli_man_text(o->dflt, out);
			(void)buf_addch(out, ')');
		}
		cli_env_name(o->name, &env);
		(void)buf_addstr(out, "\n.br\nEnvironment: \\fB");
		cli_man_text(env.buf, out);
		(void)buf_addstr(out, "\\fR.\n");
	}
	(void)buf_addf(out,
		       ".TP\n\\fB\\-\\-help\\fR\nShow the options of "
		       "\\fBlambda\\-registry %s\\fR and exit.\n",
		       prefix);
	buf_release(&env);
}

static void cli_man_synopsis(const struct cli_command *cmd, const char *prefix,
			     struct buf *out)
{
	(void)buf_addstr(out, ".B lambda\\-registry ");
	cli_man_text(prefix, out);
	(void)buf_addstr(out, "\n[\\fIOPTIONS\\fR]");
	if (cmd->args) {
		(void)buf_addch(out, ' ');
		cli_man_text(cmd->args, out);
	}
	(void)buf_addstr(out, "\n.br\n");
}

/* The NAME line's description: the summary's first line, "Serve ..." as
 * "serve ...", without its full stop. */
static void cli_man_name(const char *summary, struct buf *out)
{
	const char *nl = strchr(summary, '\n');
	size_t len = nl ? (size_t)(nl - summary) : strlen(summary);
	char *first = xstrndup(summary, len);

	if (len && first[len - 1] == '.')
		first[len - 1] = '\0';
	first[0] = (char)tolower((unsigned char)first[0]);
	cli_man_text(first, out);
	free(first);
}

void cli_man(const struct cli_command *cmd, const struct cli_command *subs,
	     size_t nr_subs, const char *see_also, struct buf *out)
{
	struct buf prefix = BUF_INIT;
	const char *s, *comma;
	size_t i;

	(void)buf_addstr(out, ".TH LAMBDA\\-REGISTRY\\-");
	cli_man_upper(cmd->name, out);
	(void)buf_addf(out,
		       " 1 \"\" \"lambda\\-registry %s\" \"User Commands\"\n"
		       ".SH NAME\nlambda\\-registry\\-",
		       LR_VERSION);
	cli_man_text(cmd->name, out);
	(void)buf_addstr(out, " \\- ");
	cli_man_name(cmd->summary, out);
	(void)buf_addstr(out, "\n.SH SYNOPSIS\n");
	if (nr_subs) {
		for (i = 0; i < nr_subs; i++)
			cli_man_synopsis(&subs[i], subs[i].name, out);
	} else {
		cli_man_synopsis(cmd, cmd->name, out);
	}
	(void)buf_addstr(out, ".SH DESCRIPTION\n");
	cli_man_text(cmd->summary, out);
	(void)buf_addstr(out, "\n.SH OPTIONS\n");
	if (cmd->options[0].name || !nr_subs)
		cli_man_options(cmd, cmd->name, out);
	for (i = 0; i < nr_subs; i++) {
		(void)buf_addstr(out, ".SS ");
		cli_man_text(subs[i].name, out);
		(void)buf_addch(out, '\n');
		cli_man_text(subs[i].summary, out);
		(void)buf_addch(out, '\n');
		cli_man_options(&subs[i], subs[i].name, out);
	}
	(void)buf_addstr(out, ".SH ENVIRONMENT\nEvery option can also be set "
			      "as \\fBLAMBDA_REGISTRY_\\fINAME\\fR, its "
			      "name in upper case with \\(oq\\-\\(cq as "
			      "\\(oq_\\(cq; the command line wins.\n"
			      ".SH SEE ALSO\n");
	for (s = see_also; s && *s; s = comma ? comma + 1 : s + strlen(s)) {
		comma = strchr(s, ',');
		(void)buf_addstr(out, ".BR ");
		buf_reset(&prefix);
		(void)buf_add(&prefix, s,
			      comma ? (size_t)(comma - s) : strlen(s));
		cli_man_text(prefix.buf, out);
		(void)buf_addf(out, " (1)%s\n", comma ? "," : "");
	}
	buf_release(&prefix);
}

int cli_parse_size(const char *s, unsigned long long max,
		   unsigned long long *out, struct buf *err)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!isdigit((unsigned char)*s)) {
		buf_setf(err, "'%s' is not a number", s);
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		mult = 1ULL << 10;
	else if (*end == 'M' || *end == 'm')
		mult = 1ULL << 20;
	else if (*end == 'G' || *end == 'g')
		mult = 1ULL << 30;
	if (mult > 1)
		end++;
	if (errno || *end || v > max / mult || v * mult > max) {
		buf_setf(err, "'%s' is not a number up to %llu", s, max);
		return -1;
	}
	*out = v * mult;
	return 0;
}
