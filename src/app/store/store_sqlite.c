/* store_sqlite: see store_sqlite.h.
 *
 * Reads take a connection from a pool (WAL lets them run alongside the
 * writer): a read pops an idle one or opens a new one, and gives it back
 * when done, so the pool grows to the number of reads that ever ran at
 * once (workers + the timer's check + ...) and a read never fails for want of
 * a slot, however many threads read. Writes go through a single writer thread that applies every
 * queued write in one transaction: concurrent PUTs share one commit and one
 * fsync (group commit), and each caller is answered only after that commit,
 * so a 2xx still means durable. Versions come from a counter kept in the
 * `hale_meta` table and bumped in the same transaction, so they are never
 * reused, even across deletes and restarts.
 *
 * A failed commit (full disk, I/O error, failed fsync) fails the whole
 * batch, is rolled back, and the writer connection is closed and opened
 * again before the next batch, with the idle readers closed: after a failed
 * fsync the file's state is not trusted, and with no connection left open
 * SQLite rebuilds its WAL index from the files on disk (WAL recovery).
 * Reads go on from the last committed state meanwhile; the store
 * reports itself degraded (store_sqlite_faults.h) until a commit succeeds. */
#include "store_sqlite_int.h"
#include "log.h"
#ifdef HALE_TEST_HOOKS
#include "sqlite_faultvfs.h"
#endif

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " ctype TEXT NOT NULL, version INTEGER NOT NULL, mtime INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS hale_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO hale_meta VALUES ('next_version', 1);";

/* ---- writes: one writer thread, group commit ---- */

static int64_t current_version(sq_store *s, const char *key, size_t klen, int *rc) {
    int64_t v = 0;
    sqlite3_bind_blob(s->w_sel, 1, key, (int)klen, SQLITE_STATIC);
    *rc = sqlite3_step(s->w_sel);
    if (*rc == SQLITE_ROW) v = sqlite3_column_int64(s->w_sel, 0);
    sqlite3_reset(s->w_sel);
    if (*rc == SQLITE_ROW || *rc == SQLITE_DONE) *rc = SQLITE_OK;
    return v;
}

static bool cond_ok(const kv_cond *c, int64_t cur) {
    if (!c) return true;
    if (c->if_none_match_any && cur) return false;
    if (c->if_match_any && !cur) return false;
    if (c->if_match && c->if_match != cur) return false;
    return true;
}

/* Applies one op inside the open transaction. Returns an SQLite code. */
static int apply(sq_store *s, wop *op) {
    int rc;
    int64_t cur = current_version(s, op->key, op->klen, &rc);
    if (rc != SQLITE_OK) return rc;
    if (op->kind == OP_DEL) {
        if (!cur) { op->st = KV_NOT_FOUND; return SQLITE_OK; }
        if (!cond_ok(op->cond, cur)) { op->st = KV_PRECONDITION; return SQLITE_OK; }
        sqlite3_bind_blob(s->w_del, 1, op->key, (int)op->klen, SQLITE_STATIC);
        rc = sqlite3_step(s->w_del);
        sqlite3_reset(s->w_del);
        if (rc != SQLITE_DONE) return rc;
        op->st = KV_OK;
        return SQLITE_OK;
    }
    if (!cond_ok(op->cond, cur)) { op->st = KV_PRECONDITION; return SQLITE_OK; }
    op->version = s->next_version++;
    op->created = cur == 0;
    sqlite3_bind_blob(s->w_put, 1, op->key, (int)op->klen, SQLITE_STATIC);
    sqlite3_bind_blob(s->w_put, 2, op->vlen ? op->val : "", (int)op->vlen, SQLITE_STATIC);
    sqlite3_bind_text(s->w_put, 3, op->ctype, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->w_put, 4, op->version);
    sqlite3_bind_int64(s->w_put, 5, s->batch_ms);
    rc = sqlite3_step(s->w_put);
    sqlite3_reset(s->w_put);
    if (rc != SQLITE_DONE) return rc;
    op->st = KV_OK;
    return SQLITE_OK;
}

static int wconn_open(sq_store *s, char *err, size_t errlen);
static void wconn_close(sq_store *s);

/* After a failed commit: a fresh writer connection (see the top). */
static int reopen_writer(sq_store *s) {
    char err[256];
    wconn_close(s);
    sq_readers_drop_idle(s);
    int64_t v = s->next_version;
    if (wconn_open(s, err, sizeof err) != 0) {
        sqf_failed(&s->faults, SQF_EIO, SQLITE_CANTOPEN, 0, "reopen", err);
        wconn_close(s);
        return -1;
    }
    if (s->next_version < v) s->next_version = v; /* never reuse a version */
    s->reopen = false;
    HALE_LOG(HALE_LOG_INFO, "store", "sqlite writer connection reopened", HALE_F_STR("path", s->path));
    return 0;
}

static void run_batch(sq_store *s, wop *batch) {
    if (s->reopen && reopen_writer(s) != 0) {
        for (wop *op = batch; op; op = op->next) op->st = KV_UNAVAILABLE;
        return;
    }
    int64_t saved = s->next_version;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->batch_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    errno = 0;
    int rc = sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (wop *op = batch; op && rc == SQLITE_OK; op = op->next) rc = apply(s, op);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s->w_meta, 1, s->next_version);
        rc = sqlite3_step(s->w_meta);
        sqlite3_reset(s->w_meta);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        sqf_ok(&s->faults);
        return;
    }
    /* nothing of this batch was acknowledged: fail it all */
    /* SQLite records the failed call's errno only on some paths (not for a
     * failed commit): then the thread's errno, which the failed call set
     * and nothing since has cleared, tells ENOSPC from EIO */
    int cap = errno;
    int xrc = sqlite3_extended_errcode(s->wdb), sys = sqlite3_system_errno(s->wdb);
    if (!sys && (xrc & 0xff) == SQLITE_IOERR) sys = cap;
    sqf_kind kind = sqf_classify(xrc, sys);
    sqf_failed(&s->faults, kind, xrc, sys, "commit", sqlite3_errmsg(s->wdb));
    if (!sqlite3_get_autocommit(s->wdb)) sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
    s->next_version = saved;
    if (kind != SQF_BUSY) s->reopen = true;
    kv_status st = sqf_status(kind);
    for (wop *op = batch; op; op = op->next) op->st = st;
}

static void *writer_main(void *arg) {
    sq_store *s = arg;
    hale_thread_name("hale-writer");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->have_work, &s->mu);
        if (!s->head && s->stopping) break;
        wop *batch = s->head;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, batch);
        /* asynchronous ops first, outside the lock: their callbacks resume
         * connections; detach them before waking the synchronous owners
         * (who may free their ops as soon as they see done) */
        wop *async = NULL, **tail = &async, *sync = NULL, **stail = &sync;
        for (wop *op = batch; op;) {
            wop *next = op->next;
            op->next = NULL;
            if (op->cb) { *tail = op; tail = &op->next; }
            else { *stail = op; stail = &op->next; }
            op = next;
        }
        for (wop *op = async; op;) {
            wop *next = op->next;
            op->cb(op->cb_arg, op->st, op->version, op->created);
            free(op);
            op = next;
        }
        pthread_mutex_lock(&s->mu);
        for (wop *op = sync; op;) {
            wop *next = op->next; /* op may be freed by its owner once done */
            op->done = true;
            op = next;
        }
        pthread_cond_broadcast(&s->batch_done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void submit(sq_store *s, wop *op) {
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        op->st = KV_UNAVAILABLE;
        return;
    }
    if (s->tail) s->tail->next = op; else s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->have_work);
    while (!op->done) pthread_cond_wait(&s->batch_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* The writer's answer to a submitted op (store.h's owned kv_op). */
static void op_done(void *arg, kv_status st, int64_t version, bool created) {
    kv_op *kop = arg;
    kop->version = version;
    kop->created = created;
    kv_op_finish(kop, st);
}

static void sq_submit(kv_store *base, kv_op *kop) {
    sq_store *s = (sq_store *)base;
    wop *op = xcalloc(1, sizeof *op);
    *op = (wop){.kind = kop->kind == KV_OP_DEL ? OP_DEL : OP_PUT, .key = kop->key, .klen = kop->klen,
                .val = kop->val, .vlen = kop->vlen, .ctype = kop->ctype, .cond = &kop->cond,
                .st = KV_ERROR, .cb = op_done, .cb_arg = kop};
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free(op);
        kv_op_finish(kop, KV_UNAVAILABLE);
        return;
    }
    if (s->tail) s->tail->next = op; else s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->have_work);
    pthread_mutex_unlock(&s->mu);
}

static kv_status sq_put(kv_store *base, const char *key, size_t klen, const char *val, size_t vlen,
                        const char *ctype, const kv_cond *c, int64_t *version, bool *created) {
    wop op = {.kind = OP_PUT, .key = key, .klen = klen, .val = val, .vlen = vlen,
              .ctype = ctype, .cond = c, .st = KV_ERROR};
    submit((sq_store *)base, &op);
    if (op.st == KV_OK) { *version = op.version; *created = op.created; }
    return op.st;
}

static kv_status sq_del(kv_store *base, const char *key, size_t klen, const kv_cond *c) {
    wop op = {.kind = OP_DEL, .key = key, .klen = klen, .cond = c, .st = KV_ERROR};
    submit((sq_store *)base, &op);
    return op.st;
}

/* ---- open / close ---- */

/* The writer's connection, the fault record, the locks and the memory:
 * what both close and a failed open give back. */
static void sq_free(sq_store *s) {
    wconn_close(s);
    sqf_destroy(&s->faults);
    pthread_mutex_destroy(&s->mu); pthread_mutex_destroy(&s->rmu);
    pthread_cond_destroy(&s->have_work); pthread_cond_destroy(&s->batch_done);
    free(s->path);
    free(s);
}

static void sq_close(kv_store *base) {
    sq_store *s = (sq_store *)base;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->have_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    sq_readers_close(s);
    sq_free(s);
}

static const kv_store_ops SQLITE_OPS = {
    .name = "sqlite", .get = sq_get, .put = sq_put, .del = sq_del, .submit = sq_submit,
    .list = sq_list, .ping = sq_ping, .close = sq_close,
};

/* Databases made before the store kept write times get the column (0:
 * unknown, so those rows have no Last-Modified until their next write). */
static int add_mtime(sqlite3 *db, char *err, size_t errlen) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT mtime FROM kv LIMIT 0", -1, &st, NULL);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) return 0;
    return sq_exec(db, "ALTER TABLE kv ADD COLUMN mtime INTEGER NOT NULL DEFAULT 0", err, errlen);
}

/* mkdir -p of path's parent directory. */
static int make_parent(const char *path, char *err, size_t errlen) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) { free(dir); return 0; }
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) goto fail;
        *p = '/';
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) goto fail;
    free(dir);
    return 0;
fail:
    hale_err(err, errlen, "sqlite: cannot create directory %s: %s", dir, strerror(errno));
    free(dir);
    return -1;
}

static void wconn_close(sq_store *s) {
    sqlite3_finalize(s->w_sel); sqlite3_finalize(s->w_put);
    sqlite3_finalize(s->w_del); sqlite3_finalize(s->w_meta);
    sqlite3_close(s->wdb);
    s->w_sel = s->w_put = s->w_del = s->w_meta = NULL;
    s->wdb = NULL;
}

/* The writer connection: schema, statements, the version counter. */
static int wconn_open(sq_store *s, char *err, size_t errlen) {
    const char *path = s->path;
    if (sq_open_db(path, &s->wdb, err, errlen) != 0) return -1;
    if (sq_exec(s->wdb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err, errlen) ||
        sq_exec(s->wdb, SCHEMA, err, errlen) ||
        sq_prep(s->wdb, "SELECT version FROM kv WHERE key = ?1", &s->w_sel, err, errlen) ||
        add_mtime(s->wdb, err, errlen) ||
        sq_prep(s->wdb, "INSERT INTO kv (key, value, ctype, version, mtime) VALUES (?1, ?2, ?3, ?4, ?5)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                     " ctype = excluded.ctype, version = excluded.version,"
                     " mtime = max(excluded.mtime, kv.mtime)", &s->w_put, err, errlen) ||
        sq_prep(s->wdb, "DELETE FROM kv WHERE key = ?1", &s->w_del, err, errlen) ||
        sq_prep(s->wdb, "UPDATE hale_meta SET value = ?1 WHERE name = 'next_version'", &s->w_meta, err, errlen))
        return -1;
    sqlite3_stmt *st;
    if (sq_prep(s->wdb, "SELECT value FROM hale_meta WHERE name = 'next_version'", &st, err, errlen)) return -1;
    int rc = sqlite3_step(st);
    s->next_version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return hale_err(err, errlen, "sqlite: cannot read the version counter: %s",
                                          sqlite3_errmsg(s->wdb));
    return 0;
}

bool kv_store_is_sqlite(const kv_store *s) { return s && s->ops == &SQLITE_OPS; }

void kv_sqlite_register_metrics(kv_store *base, struct hale_metrics *reg) {
    sqf_register_metrics(&((sq_store *)base)->faults, reg);
}

kv_store *kv_sqlite_open(const char *path, char *err, size_t errlen) {
#ifdef HALE_TEST_HOOKS
    if (kv_faultvfs_install(err, errlen) != 0) return NULL;
#endif
    if (make_parent(path, err, errlen) != 0) return NULL;
    sq_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &SQLITE_OPS;
    s->path = xstrdup(path);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_cond_init(&s->have_work, NULL);
    pthread_cond_init(&s->batch_done, NULL);
    sqf_init(&s->faults);
    if (wconn_open(s, err, errlen) != 0) goto fail;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        hale_err(err, errlen, "sqlite: cannot start the writer thread");
        goto fail;
    }
    return &s->base;
fail:
    sq_free(s);
    return NULL;
}
