/*
 * `lambda-registry agent`: keeps one HAProxy host in sync with the registry,
 * fed by a source (Docker events or a services file).
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include "buf.h"
#include "cli.h"
#include "service.h"
#include "status.h"

/* The agent's options, for the command table in main.c. */
extern const struct cli_option agent_options[];

/* Run the agent until SIGTERM or SIGINT; returns the process exit code. */
int agent_main(const char *const *values, int argc, char **argv);

/*
 * One line per event on stderr: "ts=... level=LEVEL event=EVENT " then
 * `fmt`, which should be more key=value pairs. Safe from any thread.
 */
void agent_log(const char *level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* `s` as a quoted log value in `scratch` (reset first); returns its text. */
const char *agent_quote(struct buf *scratch, const char *s);

/*
 * Validate a service's routing settings given as text, as both sources get
 * them (`mode` and `cookie` may be NULL: host mode, no stickiness), and fill
 * `svc` (released by the caller either way). -1 with the reason in `err`.
 */
int agent_service_settings(struct service *svc, const char *name,
			   const char *port, const char *mode,
			   const char *predicate, const char *cookie,
			   struct buf *err);

/* Validate a container id and address and add them to `svc`. */
int agent_service_add_container(struct service *svc, const char *id,
				const char *ip, struct buf *err);

#endif
