/* store_sqlite_faults: what the SQLite store knows about its own write
 * failures (full disk, I/O errors), for the API, /health, metrics and logs.
 *
 * Promises:
 *  - sqf_classify names a failure by kind from SQLite's result code and the
 *    errno of the failed system call: enospc (SQLITE_FULL, or an I/O error
 *    with ENOSPC/EDQUOT), eio (any other I/O error), busy, corrupt, other.
 *  - sqf_status maps a kind to the API's answer: enospc -> KV_FULL (507),
 *    eio/busy/corrupt -> KV_UNAVAILABLE (503), other -> KV_ERROR (500).
 *  - sqf_failed counts the failure in hale_store_errors_total{kind} and
 *    marks the store degraded with its message; the first failure of an
 *    episode (or a change of kind) is logged at error level, later ones of
 *    the same kind are only counted. sqf_ok (a commit succeeded) ends the
 *    episode and logs the recovery once.
 *  - sqf_degraded: 1 with the message while degraded, else 0.
 *  Thread-safety: every function may be called from any thread.
 */
#ifndef APP_STORE_SQLITE_FAULTS_H
#define APP_STORE_SQLITE_FAULTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

typedef enum { SQF_ENOSPC, SQF_EIO, SQF_BUSY, SQF_CORRUPT, SQF_OTHER, SQF_KINDS } sqf_kind;

typedef struct sq_faults {
    pthread_mutex_t mu;
    bool degraded;           /* under mu */
    sqf_kind kind;           /* under mu: of the current episode */
    uint64_t episode_errors; /* under mu */
    char msg[256];           /* under mu */
    _Atomic(hale_counter *) ctr[SQF_KINDS];
} sq_faults;

void sqf_init(sq_faults *f);
void sqf_destroy(sq_faults *f);
const char *sqf_kind_name(sqf_kind k);
sqf_kind sqf_classify(int rc, int sys_errno);
kv_status sqf_status(sqf_kind k);
/* op: what failed ("commit", "reopen", ...); detail: SQLite's message. */
void sqf_failed(sq_faults *f, sqf_kind k, int rc, int sys_errno, const char *op, const char *detail);
void sqf_ok(sq_faults *f);
int sqf_degraded(sq_faults *f, char *err, size_t errlen);
/* Registers hale_store_errors_total{kind} (every kind renders 0 at once). */
void sqf_register_metrics(sq_faults *f, hale_metrics *reg);

#endif
