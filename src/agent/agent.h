/*
 * `lambda-registry agent`: keeps one HAProxy host in sync with the registry,
 * fed by a source (Docker events or a services file).
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include "cli.h"

/* The agent's options, for the command table in main.c. */
extern const struct cli_option agent_options[];

/* Run the agent until SIGTERM or SIGINT; returns the process exit code. */
int agent_main(const char *const *values, int argc, char **argv);

#endif
