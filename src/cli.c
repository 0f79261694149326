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
