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
 */
#ifndef APP_STORE_SQLITE_H
#define APP_STORE_SQLITE_H

#include "store.h"

/* Opens the SQLite store at path (directories are created). Returns NULL
 * with err on failure. */
kv_store *kv_sqlite_open(const char *path, char *err, size_t errlen);

#endif
