/* store_sqlite_read: the SQLite store's reader pool and reads; see
 * store_sqlite.c for the whole design. */
#include "store_sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_open_db(const char *path, sqlite3 **db, char *err, size_t errlen) {
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

int sq_exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        hale_err(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int sq_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
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
    if (sq_open_db(s->path, &r->db, err, sizeof err) != 0 ||
        sq_prep(r->db, "SELECT value, ctype, version, mtime FROM kv WHERE key = ?1", &r->get, err, sizeof err) ||
        sq_prep(r->db, "SELECT key FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2)"
                    " AND key > ?3 ORDER BY key LIMIT ?4", &r->list, err, sizeof err) ||
        sq_prep(r->db, "SELECT 1", &r->ping, err, sizeof err)) {
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

kv_status sq_get(kv_store *base, const char *key, size_t klen, kv_item *out) {
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

kv_status sq_list(kv_store *base, const char *prefix, size_t plen, const char *after,
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

int sq_ping(kv_store *base, char *err, size_t errlen) {
    sq_store *s = (sq_store *)base;
    reader *r = get_reader(s);
    if (!r) return hale_err(err, errlen, "sqlite: cannot open a connection to %s", s->path);
    int rc = sqlite3_step(r->ping);
    sqlite3_reset(r->ping);
    if (rc != SQLITE_ROW) hale_err(err, errlen, "sqlite: %s", sqlite3_errmsg(r->db));
    put_reader(s, r);
    if (rc != SQLITE_ROW) return -1;
    return sqf_degraded(&s->faults, err, errlen);
}

void sq_readers_close(sq_store *s) {
    for (reader *r = s->all, *next; r; r = next) {
        next = r->next_all;
        reader_free(r);
    }
    s->all = s->idle = NULL;
}

void sq_readers_drop_idle(sq_store *s) {
    pthread_mutex_lock(&s->rmu);
    reader *idle = s->idle;
    s->idle = NULL;
    /* keep on `all` only the readers in use */
    reader **pp = &s->all;
    while (*pp) {
        bool is_idle = false;
        for (const reader *i = idle; i && !is_idle; i = i->next_idle) is_idle = i == *pp;
        if (is_idle) *pp = (*pp)->next_all;
        else pp = &(*pp)->next_all;
    }
    pthread_mutex_unlock(&s->rmu);
    for (reader *r = idle, *next; r; r = next) {
        next = r->next_idle;
        reader_free(r);
    }
}
