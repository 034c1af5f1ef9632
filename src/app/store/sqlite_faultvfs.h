/* sqlite_faultvfs: a fault-injecting SQLite VFS for tests (compiled only
 * with HALE_TEST_HOOKS; release builds have none of it).
 *
 * Promises:
 *  - A shim over SQLite's default "unix" VFS, registered as the default VFS
 *    when HALE_TEST_SQLITE_FAULTS is set in the environment (read only in
 *    test builds). Every write, sync and truncate of a database, WAL or
 *    rollback-journal file is counted (one counter per kind, per process)
 *    and recorded per file with the bytes it replaced, until that file's
 *    next successful sync.
 *  - crash=sync:N / crash=write:N / crash=truncate:N: "power loss" just
 *    before the Nth sync (or right after the Nth write/truncate): every
 *    write and truncate since the last successful sync of each file is
 *    undone (with torn=SEED, each 512-byte sector of those writes is kept
 *    or undone at random), then the process dies with _exit(86).
 *  - fail=KIND:N:ERR (KIND write|sync|truncate|any, ERR eio|enospc): the
 *    Nth such call fails once with that errno (write ENOSPC gives
 *    SQLITE_FULL, the rest SQLITE_IOERR_*). A failed sync also undoes the
 *    file's unsynced writes (the kernel may drop them: "fsyncgate").
 *    fail=KIND:N+:ERR fails the Nth call and every later one until the
 *    file HALE_TEST_SQLITE_FAULTS_CLEAR names exists (then it stops).
 *  - Each injected fault prints one line "faultvfs: ..." on stderr.
 *  - Shared memory (-shm) and temporary files pass through unrecorded.
 */
#ifndef APP_SQLITE_FAULTVFS_H
#define APP_SQLITE_FAULTVFS_H

#include <stddef.h>

#ifdef HALE_TEST_HOOKS
/* Registers the shim when HALE_TEST_SQLITE_FAULTS is set (once per
 * process; later calls do nothing). Returns 0, or -1 with err on a
 * malformed setting. */
int kv_faultvfs_install(char *err, size_t errlen);
#endif

#endif
