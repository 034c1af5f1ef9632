/* store_sqlite: the embedded SQLite backend of the kv_store interface (the
 * default store), in a file of its own (WAL, synchronous=FULL).
 *
 * Promises (beyond store.h's):
 *  - Reads run alongside the writer (WAL) on pooled connections; a read
 *    never fails for want of a connection.
 *  - Writes go through one writer thread that applies every queued write
 *    in one transaction (group commit): each caller is answered only after
 *    that commit and its fsync, so a KV_OK still means durable.
 *  - Versions come from a counter in the `hale_meta` table bumped in the
 *    same transaction: never reused, even across deletes and restarts.
 *  - One process per file: the database is not meant to be shared.
 *  - A failed commit (full disk, I/O error, failed fsync) answers KV_FULL
 *    (ENOSPC) or KV_UNAVAILABLE (EIO), is rolled back, and the next write
 *    runs on a reopened connection; the store is degraded (ping returns 1)
 *    until a commit succeeds (store_sqlite_faults.h; docs/reliability.md).
 */
#ifndef APP_STORE_SQLITE_H
#define APP_STORE_SQLITE_H

#include "store.h"

/* Opens the SQLite store at path (directories are created). Returns NULL
 * with err on failure. */
kv_store *kv_sqlite_open(const char *path, char *err, size_t errlen);
bool kv_store_is_sqlite(const kv_store *s);
/* hale_store_errors_total{kind}: write failures by kind. Call once. */
struct hale_metrics;
void kv_sqlite_register_metrics(kv_store *s, struct hale_metrics *reg);

#endif
