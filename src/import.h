/*
 * Import the services of the first version's DynamoDB table (all hosts in
 * one table, the first version's item layout) into one table of any store.
 */
#ifndef IMPORT_H
#define IMPORT_H

#include "buf.h"
#include "status.h"

struct import_options {
	const char *from;   /* "dynamodb-table:NAME" */
	const char *region; /* the source's AWS region */
	const char *store;  /* the target store spec */
	const char *table;  /* the target table */
	const char *only;   /* comma-separated service names, or NULL: all */
	int apply;	    /* 0: a dry run that stores nothing */
};

/*
 * Read the source's services, compare them with the target table's and,
 * with `apply`, write those that are new or differ in one call on the
 * target (services only the target has are kept). `report` gets one line
 * per service ("new NAME ...", "replace NAME ...", "same NAME") and a
 * summary. ST_USAGE for a malformed option, ST_INVALID for a service named
 * in `only` that the source lacks, ST_CONFLICT when the target table moved
 * on meanwhile (nothing written; run again), ST_UNAVAILABLE for a store.
 */
enum status import_run(const struct import_options *opts, struct buf *report,
		       struct buf *err);

#endif
