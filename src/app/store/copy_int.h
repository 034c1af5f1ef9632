/* copy_int: what copy.c (arguments, the copy loop) and copy_io.c (reading
 * and writing both sides, the digest) share. Not for other modules: they
 * use copy.h. Errors follow util.h: 0, or -1 with err. */
#ifndef APP_COPY_INT_H
#define APP_COPY_INT_H

#ifdef HALE_HAVE_PQ

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_pg_int.h"

/* One key with its value, content type and version (malloc'd copies). */
typedef struct copy_row {
    char *key, *val, *ct;
    size_t klen, vlen, ctlen;
    int64_t version;
} copy_row;

typedef struct copy_rows {
    copy_row *r;
    size_t n;
} copy_rows;

void copy_rows_clear(copy_rows *rs);

/* The source: a read-only connection to hale's SQLite file. */
typedef struct copy_src {
    sqlite3 *db;
    sqlite3_stmt *page, *counter;
} copy_src;

/* Opens path read-only and checks it is a hale store. Returns 0, -1 with
 * err (no such file, not a hale database: a configuration error). */
int copy_src_open(copy_src *s, const char *path, char *err, size_t errlen);
void copy_src_close(copy_src *s);
/* Up to limit rows with key > after (after empty: from the first), in key
 * order, each read in one short read transaction. */
int copy_src_page(copy_src *s, const char *after, size_t alen, size_t limit, copy_rows *out,
                  char *err, size_t errlen);
/* The highest version the source ever gave (its counter - 1). */
int copy_src_counter(copy_src *s, int64_t *maxv, char *err, size_t errlen);

/* The target: one PostgreSQL connection. */
typedef struct copy_dst {
    PGconn *c;
    const char *url;  /* for scrubbing driver messages */
} copy_dst;

/* Connects, migrates the schema (reported as "from -> to") and prepares
 * the statements. */
int copy_dst_open(copy_dst *d, const char *url, unsigned connect_ms, int *from, int *to, char *err,
                  size_t errlen);
void copy_dst_close(copy_dst *d);
/* Runs SQL without results (BEGIN, COMMIT, ROLLBACK). */
int copy_dst_run(copy_dst *d, const char *sql, char *err, size_t errlen);
/* Like copy_src_page on the target, every row; when maxv > 0 only the
 * keys and versions (empty values) of rows with version <= maxv: the rows
 * the source could have given. */
int copy_dst_page(copy_dst *d, const char *after, size_t alen, size_t limit, int64_t maxv,
                  copy_rows *out, char *err, size_t errlen);
/* Inserts the rows (keys unique, one statement), replacing a target row
 * that has a lower version (or the same version with other bytes). */
int copy_dst_put(copy_dst *d, const copy_rows *rows, char *err, size_t errlen);
/* Deletes key when its version is <= maxv; *n += rows deleted. */
int copy_dst_del(copy_dst *d, const char *key, size_t klen, int64_t maxv, size_t *n, char *err,
                 size_t errlen);
/* hale_meta rows: get (*found false when absent; val gets "" then), set. */
int copy_dst_meta_get(copy_dst *d, const char *name, char *val, size_t cap, bool *found, char *err,
                      size_t errlen);
int copy_dst_meta_set(copy_dst *d, const char *name, const char *val, char *err, size_t errlen);
int copy_dst_meta_del(copy_dst *d, const char *name, char *err, size_t errlen);
/* Sets kv_version_seq so the next version is above v (never lowers it);
 * *next gets the next version a write will take. */
int copy_dst_seq_above(copy_dst *d, int64_t v, int64_t *next, char *err, size_t errlen);
/* Whether the target's kv table holds any row. */
int copy_dst_has_rows(copy_dst *d, bool *any, char *err, size_t errlen);

/* Count and SHA-256 of one side, fed rows in key order. */
typedef struct copy_digest {
    uint64_t count;
    void *ctx;        /* struct sha256_ctx */
} copy_digest;

void copy_digest_init(copy_digest *g);
/* Adds u32be(klen) key u64be(version) u32be(ctlen) ctype u32be(vlen) value. */
void copy_digest_row(copy_digest *g, const copy_row *r);
/* Writes the 64 hex digits and NUL into hex, frees the context. */
void copy_digest_final(copy_digest *g, char hex[65]);

/* Hex of b[0..n) into out (cap >= 2n + 1); hex_decode returns the length
 * or -1 when s is not an even run of hex digits or longer than cap. */
void copy_hex(const char *b, size_t n, char *out, size_t cap);
long copy_unhex(const char *s, char *out, size_t cap);

#endif /* HALE_HAVE_PQ */
#endif
