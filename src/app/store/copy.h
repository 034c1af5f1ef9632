/* copy: `hale copy`, the move from the embedded SQLite store to PostgreSQL.
 *
 * Promises:
 *  - Every key is copied with its value, content type and version, in key
 *    order, in batches of opts.batch keys; each batch is one transaction on
 *    the target together with the progress row (hale_meta 'copy_progress'),
 *    so a copy killed at any point resumes after the last committed batch.
 *  - Writes are idempotent: a target row is replaced only by a higher
 *    source version (or, at the same version, when its bytes differ). A later pass (after the source took more writes)
 *    brings the target level again: changed keys are updated, keys deleted
 *    on the source are removed from the target, but only rows whose version
 *    the source could have given (<= its version counter): keys written on
 *    the target after the last pass (above that counter) are kept. A target that holds keys but was
 *    never a copy target is refused.
 *  - The target's migrations run first; its version sequence is set above
 *    both the highest copied version and the source's version counter (which
 *    also covers deleted keys), after every batch, so no ETag is reused.
 *  - The source is only read (read-only connection, WAL reader, one short
 *    read per batch, no exclusive lock): hale can keep serving it.
 *  - Then both sides are read again in key order: counts and a SHA-256 over
 *    every (key, version, content type, value) are printed, and the first
 *    difference named; a mismatch exits 1. The digest's encoding is in
 *    docs/scaling.md, so it can be recomputed independently.
 *  - Exit codes: 0 done and verified, 78 bad arguments, URL or source file
 *    (nothing touched), 1 runtime error (target unreachable, interrupted,
 *    mismatch). Messages never contain the URL's password.
 */
#ifndef APP_COPY_H
#define APP_COPY_H

#include <stdio.h>

/* What `hale copy` takes from the settings when no option overrides it. */
typedef struct kv_copy_defaults {
    const char *sqlite_path;     /* database.path: the source */
    const char *database_url;    /* database.url: the target */
    unsigned connect_timeout_ms; /* database.connect_timeout */
} kv_copy_defaults;

/* Runs `hale copy` with argv[0] == "copy" and the rest its options.
 * Reports on out, errors on errs. Returns the exit code. */
int kv_copy(const kv_copy_defaults *d, int argc, char **argv, FILE *out, FILE *errs);

#endif
