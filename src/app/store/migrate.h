/* migrate: versioned schema migrations for the PostgreSQL store.
 *
 * Promises:
 *  - Migrations are numbered from 1, applied in order, each in its own
 *    transaction together with its row in `schema_migrations`, so a
 *    migration is either fully applied and recorded or not at all.
 *  - Replicas starting together serialise on a session advisory lock keyed
 *    by the current schema: one applies, the others wait (bounded), then
 *    find nothing left to do. The lock dies with the session, so a replica
 *    killed mid-way never leaves it held.
 *  - DDL runs with lock_timeout, so a migration that cannot get its table
 *    lock fails instead of queueing every request behind it.
 *  - A database newer than this binary (more migrations than it knows) is
 *    accepted: migrations are written expand-then-contract so old replicas
 *    keep working during a rolling upgrade.
 */
#ifndef APP_MIGRATE_H
#define APP_MIGRATE_H

#ifdef HALE_HAVE_PQ

#include <stdio.h>

#include "store_pg_int.h"

/* The highest migration this binary knows. */
int kv_pg_schema_latest(void);

/* On c (a connection used for nothing else meanwhile): takes the migration
 * lock (waiting at most lock_wait_ms), then applies the missing migrations
 * when apply is true, or only checks that none is missing when it is false.
 * *from and *to get the schema version before and after. Returns 0, or -1
 * with e (including "schema at version N, this hale needs M" when checking). */
int kv_pg_migrate(PGconn *c, bool apply, unsigned lock_wait_ms, int *from, int *to, pgx_err *e);

/* `hale migrate`: connects to url (each attempt within
 * connect_timeout_ms, retrying with backoff for up to wait_ms while the
 * database is unreachable), applies the missing migrations and reports on
 * out. Returns 0, or -1 with err. */
int kv_pg_migrate_url(const char *url, unsigned connect_timeout_ms, unsigned lock_wait_ms, unsigned wait_ms,
                      FILE *out, char *err, size_t errlen);

#endif
#endif
