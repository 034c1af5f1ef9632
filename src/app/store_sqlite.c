/* store_sqlite: see store_sqlite.h.
 *
 * Reads take a connection from a pool (WAL lets them run alongside the
 * writer): a read pops an idle one or opens a new one, and gives it back
 * when done, so the pool grows to the number of reads that ever ran at
 * once (workers + check threads + ...) and a read never fails for want of
 * a slot, however many threads read. Writes go through a single writer thread that applies every
 * queued write in one transaction: concurrent PUTs share one commit and one
 * fsync (group commit), and each caller is answered only after that commit,
 * so a 2xx still means durable. Versions come from a counter kept in the
 * `hale_meta` table and bumped in the same transaction, so they are never
 * reused, even across deletes and restarts. */
#include "store_sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef enum { OP_PUT, OP_DEL } op_kind;

typedef struct wop {
    op_kind kind;
    const char *key; size_t klen;
    const char *val; size_t vlen;
    const char *ctype;
    const kv_cond *cond;
    kv_status st;
    int64_t version;
    bool created;
    bool done;
    /* asynchronous ops: heap-allocated, completed by the writer thread */
    void (*cb)(void *arg, kv_status st, int64_t version, bool created);
    void *cb_arg;
    struct wop *next;
} wop;

typedef struct reader {
    sqlite3 *db;
    sqlite3_stmt *get, *list, *ping;
    struct reader *next_idle;  /* on the idle stack (under rmu) */
    struct reader *next_all;   /* every reader, for close (under rmu) */
} reader;

typedef struct sq_store {
    kv_store base;
    char *path;
    sqlite3 *wdb;
    sqlite3_stmt *w_sel, *w_put, *w_del, *w_meta;
    int64_t next_version;
    int64_t batch_ms;          /* wall clock of the batch being applied */
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t have_work, batch_done;
    wop *head, *tail;
    bool stopping;
    pthread_mutex_t rmu;
    reader *idle;     /* readers not in use */
    reader *all;      /* every reader opened */
} sq_store;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " ctype TEXT NOT NULL, version INTEGER NOT NULL, mtime INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS hale_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO hale_meta VALUES ('next_version', 1);";

static int open_db(const char *path, sqlite3 **db, char *err, size_t errlen) {
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        hale_err(err, errlen, "sqlite: cannot open %s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        hale_err(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return hale_err(err, errlen, "sqlite: prepare: %s", sqlite3_errmsg(db));
    return 0;
}

/* ---- reads: a pool of connections ---- */

static void reader_free(reader *r) {
    sqlite3_finalize(r->get); sqlite3_finalize(r->list); sqlite3_finalize(r->ping);
    sqlite3_close(r->db);
    free(r);
}

/* An idle reader, or a new one; NULL only when SQLite cannot open the
 * file (never for want of a slot). Give it back with put_reader. */
static reader *get_reader(sq_store *s) {
    pthread_mutex_lock(&s->rmu);
    reader *r = s->idle;
    if (r) s->idle = r->next_idle;
    pthread_mutex_unlock(&s->rmu);
    if (r) return r;
    r = xcalloc(1, sizeof *r);
    char err[256];
    if (open_db(s->path, &r->db, err, sizeof err) != 0 ||
        prep(r->db, "SELECT value, ctype, version, mtime FROM kv WHERE key = ?1", &r->get, err, sizeof err) ||
        prep(r->db, "SELECT key FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2)"
                    " AND key > ?3 ORDER BY key LIMIT ?4", &r->list, err, sizeof err) ||
        prep(r->db, "SELECT 1", &r->ping, err, sizeof err)) {
        reader_free(r);
        return NULL;
    }
    pthread_mutex_lock(&s->rmu);
    r->next_all = s->all;
    s->all = r;
    pthread_mutex_unlock(&s->rmu);
    return r;
}

static void put_reader(sq_store *s, reader *r) {
    pthread_mutex_lock(&s->rmu);
    r->next_idle = s->idle;
    s->idle = r;
    pthread_mutex_unlock(&s->rmu);
}

static kv_status sq_get(kv_store *base, const char *key, size_t klen, kv_item *out) {
    sq_store *s = (sq_store *)base;
    reader *r = get_reader(s);
    if (!r) return KV_UNAVAILABLE;
    sqlite3_stmt *st = r->get;
    sqlite3_bind_blob(st, 1, key, (int)klen, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    kv_status res;
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        const void *v = sqlite3_column_blob(st, 0);
        out->value = xmalloc((size_t)n + 1);
        if (n) memcpy(out->value, v, (size_t)n);
        out->value[n] = '\0';
        out->len = (size_t)n;
        snprintf(out->ctype, sizeof out->ctype, "%s", (const char *)sqlite3_column_text(st, 1));
        out->version = sqlite3_column_int64(st, 2);
        out->mtime_ms = sqlite3_column_int64(st, 3);
        res = KV_OK;
    } else if (rc == SQLITE_DONE) {
        res = KV_NOT_FOUND;
    } else {
        res = rc == SQLITE_BUSY ? KV_UNAVAILABLE : KV_ERROR;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    put_reader(s, r);
    return res;
}

static kv_status sq_list(kv_store *base, const char *prefix, size_t plen, const char *after,
                         size_t alen, size_t limit, char ***keys, size_t *nkeys, bool *more) {
    sq_store *s = (sq_store *)base;
    reader *r = get_reader(s);
    if (!r) return KV_UNAVAILABLE;
    sqlite3_stmt *st = r->list;
    char *upper = xmalloc(plen + 1);
    size_t ulen = kv_prefix_upper(prefix, plen, upper);
    sqlite3_bind_blob(st, 1, prefix, (int)plen, SQLITE_STATIC);
    if (plen && ulen) sqlite3_bind_blob(st, 2, upper, (int)ulen, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_blob(st, 3, after, (int)alen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
    *keys = xcalloc(limit + 1, sizeof(char *));
    *nkeys = 0;
    *more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*nkeys == limit) { *more = true; break; }
        int n = sqlite3_column_bytes(st, 0);
        (*keys)[(*nkeys)++] = xstrndup(sqlite3_column_blob(st, 0), (size_t)n);
    }
    kv_status res = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? KV_OK : KV_ERROR;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    put_reader(s, r);
    free(upper);
    return res;
}

static int sq_ping(kv_store *base, char *err, size_t errlen) {
    sq_store *s = (sq_store *)base;
    reader *r = get_reader(s);
    if (!r) return hale_err(err, errlen, "sqlite: cannot open a connection to %s", s->path);
    int rc = sqlite3_step(r->ping);
    sqlite3_reset(r->ping);
    if (rc != SQLITE_ROW) hale_err(err, errlen, "sqlite: %s", sqlite3_errmsg(r->db));
    put_reader(s, r);
    return rc == SQLITE_ROW ? 0 : -1;
}

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

static void run_batch(sq_store *s, wop *batch) {
    int64_t saved = s->next_version;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->batch_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int rc = sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (wop *op = batch; op && rc == SQLITE_OK; op = op->next) rc = apply(s, op);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s->w_meta, 1, s->next_version);
        rc = sqlite3_step(s->w_meta);
        sqlite3_reset(s->w_meta);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        /* nothing of this batch was acknowledged: fail it all */
        kv_status st = (rc == SQLITE_BUSY || rc == SQLITE_FULL || rc == SQLITE_IOERR) ? KV_UNAVAILABLE
                                                                                    : KV_ERROR;
        if (!sqlite3_get_autocommit(s->wdb)) sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        s->next_version = saved;
        for (wop *op = batch; op; op = op->next) op->st = st;
    }
}

static void *writer_main(void *arg) {
    sq_store *s = arg;
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

static void sq_put_async(kv_store *base, const char *key, size_t klen, const char *val,
                         size_t vlen, const char *ctype, const kv_cond *c,
                         void (*done)(void *, kv_status, int64_t, bool), void *arg) {
    sq_store *s = (sq_store *)base;
    wop *op = xcalloc(1, sizeof *op);
    *op = (wop){.kind = OP_PUT, .key = key, .klen = klen, .val = val, .vlen = vlen,
                .ctype = ctype, .cond = c, .st = KV_ERROR, .cb = done, .cb_arg = arg};
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free(op);
        done(arg, KV_UNAVAILABLE, 0, false);
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

static void sq_close(kv_store *base) {
    sq_store *s = (sq_store *)base;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->have_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    for (reader *r = s->all, *next; r; r = next) {
        next = r->next_all;
        reader_free(r);
    }
    sqlite3_finalize(s->w_sel); sqlite3_finalize(s->w_put);
    sqlite3_finalize(s->w_del); sqlite3_finalize(s->w_meta);
    sqlite3_close(s->wdb);
    pthread_mutex_destroy(&s->mu); pthread_mutex_destroy(&s->rmu);
    pthread_cond_destroy(&s->have_work); pthread_cond_destroy(&s->batch_done);
    free(s->path);
    free(s);
}

static const kv_store_ops SQLITE_OPS = {
    .name = "sqlite", .get = sq_get, .put = sq_put, .del = sq_del, .put_async = sq_put_async,
    .list = sq_list, .ping = sq_ping, .close = sq_close,
};

/* Databases made before the store kept write times get the column (0:
 * unknown, so those rows have no Last-Modified until their next write). */
static int add_mtime(sqlite3 *db, char *err, size_t errlen) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT mtime FROM kv LIMIT 0", -1, &st, NULL);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) return 0;
    return exec(db, "ALTER TABLE kv ADD COLUMN mtime INTEGER NOT NULL DEFAULT 0", err, errlen);
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

kv_store *kv_sqlite_open(const char *path, char *err, size_t errlen) {
    if (make_parent(path, err, errlen) != 0) return NULL;
    sq_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &SQLITE_OPS;
    s->path = xstrdup(path);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_cond_init(&s->have_work, NULL);
    pthread_cond_init(&s->batch_done, NULL);
    if (open_db(path, &s->wdb, err, errlen) != 0) goto fail;
    if (exec(s->wdb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err, errlen) ||
        exec(s->wdb, SCHEMA, err, errlen) ||
        prep(s->wdb, "SELECT version FROM kv WHERE key = ?1", &s->w_sel, err, errlen) ||
        add_mtime(s->wdb, err, errlen) ||
        prep(s->wdb, "INSERT INTO kv (key, value, ctype, version, mtime) VALUES (?1, ?2, ?3, ?4, ?5)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                     " ctype = excluded.ctype, version = excluded.version,"
                     " mtime = max(excluded.mtime, kv.mtime)", &s->w_put, err, errlen) ||
        prep(s->wdb, "DELETE FROM kv WHERE key = ?1", &s->w_del, err, errlen) ||
        prep(s->wdb, "UPDATE hale_meta SET value = ?1 WHERE name = 'next_version'", &s->w_meta, err, errlen))
        goto fail;
    sqlite3_stmt *st;
    if (prep(s->wdb, "SELECT value FROM hale_meta WHERE name = 'next_version'", &st, err, errlen)) goto fail;
    s->next_version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
    sqlite3_finalize(st);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        hale_err(err, errlen, "sqlite: cannot start the writer thread");
        goto fail;
    }
    return &s->base;
fail:
    sqlite3_finalize(s->w_sel); sqlite3_finalize(s->w_put);
    sqlite3_finalize(s->w_del); sqlite3_finalize(s->w_meta);
    sqlite3_close(s->wdb);
    free(s->path);
    free(s);
    return NULL;
}
