/*
 * Command-line options as data: each subcommand lists its options once, and
 * the parser, the environment fallback and --help all come from that list.
 */
#ifndef CLI_H
#define CLI_H

#include "buf.h"
#include "status.h"

/* A command has at most this many options; `values` arrays are this long. */
#define CLI_MAX_OPTIONS 32

struct cli_option {
	const char *name;     /* long name without "--" */
	const char *arg_name; /* NULL: a switch without argument */
	const char *help;
	const char *dflt; /* value when neither flag nor environment sets it */
};

struct cli_command {
	const char *name;
	const char *args; /* usage after the options, e.g. "[FILE|-]" */
	const char *summary;
	const struct cli_option *options; /* terminated by {NULL} */
	/* Returns the process exit code; `values` is indexed like `options`. */
	int (*run)(const char *const *values, int argc, char **argv);
};

/*
 * Fill `values[i]` for every option: from "--name VALUE" or "--name=VALUE",
 * else from LAMBDA_REGISTRY_<NAME> (upper case, '-' as '_'), else the
 * default. Switches get "1" when given. Leaves the positional arguments in
 * argv[*first..argc). "--help" gives ST_NOT_FOUND with nothing parsed.
 */
enum status cli_parse(const struct cli_command *cmd, int argc, char **argv,
		      const char **values, int *first,
		      struct buf *err) WARN_UNUSED;

/*
 * Every value given to the option `name` on the command line, in order, for
 * an option that may be repeated (cli_parse() keeps the last one only): at
 * most `max` into `out`; returns how many there were, or -1 for more.
 * Call it after cli_parse() accepted the same argv.
 */
int cli_values(const struct cli_command *cmd, int argc, char **argv,
	       const char *name, const char **out, int max);

/* The usage text of `cmd`, built from its table. */
void cli_usage(const struct cli_command *cmd, struct buf *out);

/*
 * The manual page of `cmd` in roff (man(7)), from the same table as
 * cli_usage(): the page lambda-registry-NAME(1). `subs` (nr_subs entries,
 * may be NULL) are the subcommands of a command such as "settings", each
 * with its options. `see_also` names the other pages, comma-separated.
 */
void cli_man(const struct cli_command *cmd, const struct cli_command *subs,
	     size_t nr_subs, const char *see_also, struct buf *out);

/* Append `text` escaped for roff: backslashes, '-', and lines starting with
 * '.' or '\''. */
void cli_man_text(const char *text, struct buf *out);

/* Parse a decimal size or count with an optional K/M/G suffix (1024-based). */
int cli_parse_size(const char *s, unsigned long long max,
		   unsigned long long *out, struct buf *err);

#endif
