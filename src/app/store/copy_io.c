/* copy_io: see copy_int.h. Both sides are read by key ("keyset" pages, a
 * seek on the primary key each time), never with OFFSET, so a page costs
 * the same at the end of a big store as at its start. */
#ifdef HALE_HAVE_PQ

#include "copy_int.h"

#include "migrate.h"
#include "url_check.h"

#include <endian.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Copying is not latency-bound: a generous bound only so that a wedged
 * server cannot hang the command forever. */
#define CALL_MS 60000u

static char *dup_bytes(const void *p, size_t n) {
    char *d = xmalloc(n + 1);
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static copy_row *push(copy_rows *rs, size_t limit) {
    if (!rs->r) rs->r = xcalloc(limit ? limit : 1, sizeof *rs->r);
    return &rs->r[rs->n++];
}

void copy_rows_clear(copy_rows *rs) {
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].key);
        free(rs->r[i].val);
        free(rs->r[i].ct);
    }
    rs->n = 0;
}

/* ---- the SQLite source ---- */

int copy_src_open(copy_src *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    struct stat st;
    if (stat(path, &st) != 0)
        return hale_err(err, errlen, "cannot read the source %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return hale_err(err, errlen, "the source %s is not a file", path);
    /* read-only: hale may be serving the file; WAL lets this reader run
     * beside its writer and never blocks it */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        hale_err(err, errlen, "cannot open the source %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        copy_src_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (sqlite3_prepare_v2(s->db, "SELECT key, value, ctype, version FROM kv WHERE key > ?1"
                           " ORDER BY key LIMIT ?2", -1, &s->page, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT value FROM hale_meta WHERE name = 'next_version'", -1,
                           &s->counter, NULL) != SQLITE_OK) {
        hale_err(err, errlen, "the source %s is not a hale SQLite store: %s", path, sqlite3_errmsg(s->db));
        copy_src_close(s);
        return -1;
    }
    return 0;
}

void copy_src_close(copy_src *s) {
    sqlite3_finalize(s->page);
    sqlite3_finalize(s->counter);
    sqlite3_close(s->db);
    memset(s, 0, sizeof *s);
}

int copy_src_page(copy_src *s, const char *after, size_t alen, size_t limit, copy_rows *out,
                  char *err, size_t errlen) {
    copy_rows_clear(out);
    sqlite3_bind_blob(s->page, 1, alen ? after : "", (int)alen, SQLITE_STATIC);
    sqlite3_bind_int64(s->page, 2, (sqlite3_int64)limit);
    int rc;
    while ((rc = sqlite3_step(s->page)) == SQLITE_ROW) {
        copy_row *r = push(out, limit);
        r->klen = (size_t)sqlite3_column_bytes(s->page, 0);
        r->key = dup_bytes(sqlite3_column_blob(s->page, 0), r->klen);
        r->vlen = (size_t)sqlite3_column_bytes(s->page, 1);
        r->val = dup_bytes(sqlite3_column_blob(s->page, 1), r->vlen);
        r->ctlen = (size_t)sqlite3_column_bytes(s->page, 2);
        r->ct = dup_bytes(sqlite3_column_blob(s->page, 2), r->ctlen);
        r->version = sqlite3_column_int64(s->page, 3);
    }
    sqlite3_reset(s->page);
    sqlite3_clear_bindings(s->page);
    if (rc != SQLITE_DONE) return hale_err(err, errlen, "reading the source: %s", sqlite3_errmsg(s->db));
    return 0;
}

int copy_src_counter(copy_src *s, int64_t *maxv, char *err, size_t errlen) {
    int rc = sqlite3_step(s->counter);
    *maxv = rc == SQLITE_ROW ? sqlite3_column_int64(s->counter, 0) - 1 : 0;
    sqlite3_reset(s->counter);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return hale_err(err, errlen, "reading the source: %s", sqlite3_errmsg(s->db));
    return 0;
}

/* ---- the PostgreSQL target ---- */

enum { D_PAGE, D_PAGE_MAX, D_PUT, D_DEL, D_META_GET, D_META_SET, D_META_DEL, D_SEQ, D_ANY, D_N };

static const struct {
    const char *name, *sql;
    int nparams;
} DSTMTS[D_N] = {
    [D_PAGE] = {"copy_page", "SELECT key, value, ctype, version FROM kv WHERE key > $1"
                             " ORDER BY key LIMIT $2", 2},
    /* keys only (empty value and type): for finding stale rows */
    [D_PAGE_MAX] = {"copy_page_max", "SELECT key, ''::bytea, ''::bytea, version FROM kv WHERE key > $1"
                                     " AND version <= $3 ORDER BY key LIMIT $2", 3},
    /* a whole batch in one statement (one round trip): four arrays in
     * PostgreSQL's binary array format, keys unique within a batch */
    [D_PUT] = {"copy_put", "INSERT INTO kv AS t (key, value, ctype, version)"
                           " SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[])"
                           " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
                           " ctype = EXCLUDED.ctype, version = EXCLUDED.version"
                           /* a higher source version wins; at the same
                            * version only a differing row is rewritten
                            * (the repair of a target changed by hand) */
                           " WHERE t.version < EXCLUDED.version OR (t.version = EXCLUDED.version"
                           " AND (t.value <> EXCLUDED.value OR t.ctype <> EXCLUDED.ctype))", 4},
    [D_DEL] = {"copy_del", "DELETE FROM kv WHERE key = $1 AND version <= $2", 2},
    [D_META_GET] = {"copy_meta_get", "SELECT value FROM hale_meta WHERE name = $1", 1},
    [D_META_SET] = {"copy_meta_set", "INSERT INTO hale_meta (name, value) VALUES ($1, $2)"
                                     " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", 2},
    [D_META_DEL] = {"copy_meta_del", "DELETE FROM hale_meta WHERE name = $1", 1},
    /* setval(.., v, true): the next nextval answers v + 1; never lowered */
    [D_SEQ] = {"copy_seq", "SELECT setval('kv_version_seq', GREATEST($1::bigint,"
                           " (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END"
                           " FROM kv_version_seq), 1)) + 1", 1},
    [D_ANY] = {"copy_any", "SELECT EXISTS (SELECT 1 FROM kv)", 0},
};

static uint64_t deadline(void) { return hale_now_ns() + (uint64_t)CALL_MS * 1000000u; }

static int fail(const copy_dst *d, const pgx_err *e, char *err, size_t errlen) {
    hale_err(err, errlen, "%s", e->msg);
    app_url_scrub(d->url, err, errlen);
    return -1;
}

static PGresult *call(copy_dst *d, int id, const char *const *vals, const int *lens, const int *fmts,
                      char *err, size_t errlen) {
    pgx_err e;
    memset(&e, 0, sizeof e);
    PGresult *r = pgx_exec(d->c, DSTMTS[id].name, true, DSTMTS[id].nparams, vals, lens, fmts,
                           deadline(), &e);
    if (!r) fail(d, &e, err, errlen);
    return r;
}

int copy_dst_open(copy_dst *d, const char *url, unsigned connect_ms, int *from, int *to, char *err,
                  size_t errlen) {
    d->url = url;
    pgx_err e;
    memset(&e, 0, sizeof e);
    d->c = pgx_connect(url, hale_now_ns() + (uint64_t)connect_ms * 1000000u, &e);
    if (!d->c) return fail(d, &e, err, errlen);
    if (kv_pg_migrate(d->c, true, 60000, from, to, &e) != 0 ||
        pgx_run(d->c, "SET statement_timeout = '60s'", deadline(), &e) != 0)
        return fail(d, &e, err, errlen);
    for (int i = 0; i < D_N; i++)
        if (pgx_prepare(d->c, DSTMTS[i].name, DSTMTS[i].sql, DSTMTS[i].nparams, deadline(), &e) != 0)
            return fail(d, &e, err, errlen);
    return 0;
}

void copy_dst_close(copy_dst *d) {
    if (d->c) PQfinish(d->c);
    d->c = NULL;
}

int copy_dst_run(copy_dst *d, const char *sql, char *err, size_t errlen) {
    pgx_err e;
    memset(&e, 0, sizeof e);
    return pgx_run(d->c, sql, deadline(), &e) == 0 ? 0 : fail(d, &e, err, errlen);
}

static int64_t get_i64(const PGresult *r, int row, int col) {
    uint64_t x = 0;
    if (PQgetlength(r, row, col) == 8) memcpy(&x, PQgetvalue(r, row, col), 8);
    return (int64_t)be64toh(x);
}

int copy_dst_page(copy_dst *d, const char *after, size_t alen, size_t limit, int64_t maxv,
                  copy_rows *out, char *err, size_t errlen) {
    copy_rows_clear(out);
    uint64_t lim = htobe64((uint64_t)limit), mv = htobe64((uint64_t)maxv);
    const char *vals[3] = {alen ? after : "", (const char *)&lim, (const char *)&mv};
    int lens[3] = {(int)alen, 8, 8}, fmts[3] = {1, 1, 1};
    PGresult *r = call(d, maxv > 0 ? D_PAGE_MAX : D_PAGE, vals, lens, fmts, err, errlen);
    if (!r) return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        copy_row *w = push(out, limit);
        w->klen = (size_t)PQgetlength(r, i, 0);
        w->key = dup_bytes(PQgetvalue(r, i, 0), w->klen);
        w->vlen = (size_t)PQgetlength(r, i, 1);
        w->val = dup_bytes(PQgetvalue(r, i, 1), w->vlen);
        w->ctlen = (size_t)PQgetlength(r, i, 2);
        w->ct = dup_bytes(PQgetvalue(r, i, 2), w->ctlen);
        w->version = get_i64(r, i, 3);
    }
    PQclear(r);
    return 0;
}

/* PostgreSQL's binary array: ndim 1, no NULLs, element type, size, lower
 * bound 1, then each element as int32 length + bytes. */
#define OID_BYTEA 17u
#define OID_INT8 20u

static void put_u32(hale_buf *b, uint32_t v) {
    uint32_t be = htobe32(v);
    hale_buf_append(b, &be, 4);
}

static void array_head(hale_buf *b, uint32_t oid, size_t n) {
    put_u32(b, 1);
    put_u32(b, 0);
    put_u32(b, oid);
    put_u32(b, (uint32_t)n);
    put_u32(b, 1);
}

int copy_dst_put(copy_dst *d, const copy_rows *rows, char *err, size_t errlen) {
    if (!rows->n) return 0;
    hale_buf a[4];
    for (int i = 0; i < 4; i++) {
        hale_buf_init(&a[i]);
        array_head(&a[i], i == 3 ? OID_INT8 : OID_BYTEA, rows->n);
    }
    for (size_t i = 0; i < rows->n; i++) {
        const copy_row *w = &rows->r[i];
        put_u32(&a[0], (uint32_t)w->klen);
        hale_buf_append(&a[0], w->key, w->klen);
        put_u32(&a[1], (uint32_t)w->vlen);
        hale_buf_append(&a[1], w->val, w->vlen);
        put_u32(&a[2], (uint32_t)w->ctlen);
        hale_buf_append(&a[2], w->ct, w->ctlen);
        uint64_t v = htobe64((uint64_t)w->version);
        put_u32(&a[3], 8);
        hale_buf_append(&a[3], &v, 8);
    }
    const char *vals[4];
    int lens[4], fmts[4] = {1, 1, 1, 1}, rc = -1;
    for (int i = 0; i < 4; i++) {
        vals[i] = a[i].data;
        lens[i] = (int)a[i].len;
    }
    PGresult *r = call(d, D_PUT, vals, lens, fmts, err, errlen);
    if (r) {
        PQclear(r);
        rc = 0;
    }
    for (int i = 0; i < 4; i++) hale_buf_free(&a[i]);
    return rc;
}

int copy_dst_del(copy_dst *d, const char *key, size_t klen, int64_t maxv, size_t *n, char *err,
                 size_t errlen) {
    uint64_t mv = htobe64((uint64_t)maxv);
    const char *vals[2] = {key, (const char *)&mv};
    int lens[2] = {(int)klen, 8}, fmts[2] = {1, 1};
    PGresult *r = call(d, D_DEL, vals, lens, fmts, err, errlen);
    if (!r) return -1;
    *n += (size_t)strtoul(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int copy_dst_meta_get(copy_dst *d, const char *name, char *val, size_t cap, bool *found, char *err,
                      size_t errlen) {
    const char *vals[1] = {name};
    int fmts[1] = {0};
    PGresult *r = call(d, D_META_GET, vals, NULL, fmts, err, errlen);
    if (!r) return -1;
    *found = PQntuples(r) == 1;
    snprintf(val, cap, "%.*s", *found ? PQgetlength(r, 0, 0) : 0, *found ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

int copy_dst_meta_set(copy_dst *d, const char *name, const char *val, char *err, size_t errlen) {
    const char *vals[2] = {name, val};
    int fmts[2] = {0, 0};
    PGresult *r = call(d, D_META_SET, vals, NULL, fmts, err, errlen);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

int copy_dst_meta_del(copy_dst *d, const char *name, char *err, size_t errlen) {
    const char *vals[1] = {name};
    int fmts[1] = {0};
    PGresult *r = call(d, D_META_DEL, vals, NULL, fmts, err, errlen);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

int copy_dst_seq_above(copy_dst *d, int64_t v, int64_t *next, char *err, size_t errlen) {
    uint64_t be = htobe64((uint64_t)v);
    const char *vals[1] = {(const char *)&be};
    int lens[1] = {8}, fmts[1] = {1};
    PGresult *r = call(d, D_SEQ, vals, lens, fmts, err, errlen);
    if (!r) return -1;
    *next = get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int copy_dst_has_rows(copy_dst *d, bool *any, char *err, size_t errlen) {
    PGresult *r = call(d, D_ANY, NULL, NULL, NULL, err, errlen);
    if (!r) return -1;
    *any = PQgetlength(r, 0, 0) == 1 && PQgetvalue(r, 0, 0)[0] != 0;
    PQclear(r);
    return 0;
}

/* ---- the digest ---- */

void copy_digest_init(copy_digest *g) {
    g->count = 0;
    g->ctx = xmalloc(sizeof(struct sha256_ctx));
    sha256_init(g->ctx);
}

static void feed_len(struct sha256_ctx *c, size_t n) {
    uint32_t be = htobe32((uint32_t)n);
    sha256_update(c, 4, (const uint8_t *)&be);
}

void copy_digest_row(copy_digest *g, const copy_row *r) {
    struct sha256_ctx *c = g->ctx;
    uint64_t v = htobe64((uint64_t)r->version);
    feed_len(c, r->klen);
    sha256_update(c, r->klen, (const uint8_t *)r->key);
    sha256_update(c, 8, (const uint8_t *)&v);
    feed_len(c, r->ctlen);
    sha256_update(c, r->ctlen, (const uint8_t *)r->ct);
    feed_len(c, r->vlen);
    sha256_update(c, r->vlen, (const uint8_t *)r->val);
    g->count++;
}

void copy_digest_final(copy_digest *g, char hex[65]) {
    uint8_t out[SHA256_DIGEST_SIZE];
    sha256_digest(g->ctx, sizeof out, out);
    free(g->ctx);
    g->ctx = NULL;
    copy_hex((const char *)out, sizeof out, hex, 65);
}

void copy_hex(const char *b, size_t n, char *out, size_t cap) {
    static const char digits[] = "0123456789abcdef";
    size_t i = 0;
    for (; i < n && 2 * i + 2 < cap; i++) {
        out[2 * i] = digits[(unsigned char)b[i] >> 4];
        out[2 * i + 1] = digits[(unsigned char)b[i] & 15];
    }
    if (cap) out[2 * i < cap ? 2 * i : cap - 1] = '\0';
}

static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long copy_unhex(const char *s, char *out, size_t cap) {
    size_t n = strlen(s);
    if (n % 2 || n / 2 > cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

#endif /* HALE_HAVE_PQ */
