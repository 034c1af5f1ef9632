/* store_sqlite_faults: see store_sqlite_faults.h. */
#include "store_sqlite_faults.h"

#include "log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static const char *const NAMES[SQF_KINDS] = {"enospc", "eio", "busy", "corrupt", "other"};

void sqf_init(sq_faults *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
}

void sqf_destroy(sq_faults *f) { pthread_mutex_destroy(&f->mu); }

const char *sqf_kind_name(sqf_kind k) { return (unsigned)k < SQF_KINDS ? NAMES[k] : "other"; }

sqf_kind sqf_classify(int rc, int sys_errno) {
    switch (rc & 0xff) {
    case SQLITE_FULL: return SQF_ENOSPC;
    case SQLITE_IOERR:
        return sys_errno == ENOSPC || sys_errno == EDQUOT ? SQF_ENOSPC : SQF_EIO;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return SQF_BUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return SQF_CORRUPT;
    case SQLITE_CANTOPEN: return SQF_EIO;
    default: return SQF_OTHER;
    }
}

kv_status sqf_status(sqf_kind k) {
    switch (k) {
    case SQF_ENOSPC: return KV_FULL;
    case SQF_EIO:
    case SQF_BUSY:
    case SQF_CORRUPT: return KV_UNAVAILABLE;
    default: return KV_ERROR;
    }
}

void sqf_failed(sq_faults *f, sqf_kind k, int rc, int sys_errno, const char *op, const char *detail) {
    hale_counter *c = atomic_load(&f->ctr[k]);
    if (c) hale_counter_inc(c);
    pthread_mutex_lock(&f->mu);
    bool first = !f->degraded || f->kind != k;
    f->degraded = true;
    f->kind = k;
    f->episode_errors++;
    snprintf(f->msg, sizeof f->msg, "sqlite %s failed (%s): %s%s%s", op, NAMES[k], detail,
             sys_errno ? ": " : "", sys_errno ? strerror(sys_errno) : "");
    pthread_mutex_unlock(&f->mu);
    if (first)
        HALE_LOG(HALE_LOG_ERROR, "store", "sqlite write failed", HALE_F_STR("op", op),
                 HALE_F_STR("kind", NAMES[k]), HALE_F_INT("sqlite_code", rc), HALE_F_INT("errno", sys_errno),
                 HALE_F_STR("error", detail));
}

void sqf_ok(sq_faults *f) {
    pthread_mutex_lock(&f->mu);
    bool was = f->degraded;
    uint64_t n = f->episode_errors;
    sqf_kind k = f->kind;
    f->degraded = false;
    f->episode_errors = 0;
    pthread_mutex_unlock(&f->mu);
    if (was)
        HALE_LOG(HALE_LOG_INFO, "store", "sqlite writes succeed again", HALE_F_STR("kind", NAMES[k]),
                 HALE_F_UINT("failed_writes", n));
}

int sqf_degraded(sq_faults *f, char *err, size_t errlen) {
    pthread_mutex_lock(&f->mu);
    int d = f->degraded;
    if (d) snprintf(err, errlen, "degraded: %s", f->msg);
    pthread_mutex_unlock(&f->mu);
    return d;
}

void sqf_register_metrics(sq_faults *f, hale_metrics *reg) {
    const char *const lbl[] = {"kind"};
    hale_metric *m = hale_metrics_counter(reg, "hale_store_errors_total",
                                          "Store write failures, by kind (enospc, eio, busy, corrupt, other).",
                                          1, lbl);
    for (int k = 0; k < SQF_KINDS; k++) {
        const char *v[] = {NAMES[k]};
        atomic_store(&f->ctr[k], hale_counter_with(m, v));
    }
}
