/* store: the key-value store interface the API is written against.
 *
 * Promises:
 *  - Every backend (store_sqlite.h, store_pg.h; the Redis cache of cache.h
 *    wraps either) gives the same semantics:
 *    each write gets a new version that is unique across the store's
 *    lifetime (a deleted key's old ETag never matches a later value), and a
 *    KV_OK answer to put/del means the write is durable.
 *  - Conditions are checked atomically with the write (compare-and-swap).
 *  - Every write records its wall-clock time with the value (kv_item's
 *    mtime_ms: the Last-Modified of the API), never earlier than the
 *    key's previous one.
 *  - All functions are thread-safe and called from HTTP worker threads.
 *  - Writes are owned ops (kv_op) with one completion callback; submit
 *    never blocks on an fsync or a network round trip (SQLite: the
 *    group-commit writer; PostgreSQL: a bounded completion pool; the
 *    Redis cache forwards to its backend and invalidates on completion).
 *  - KV_UNAVAILABLE means "the backend cannot answer now" (maps to 503);
 *    KV_FULL "no space left for this write" (507); KV_ERROR is anything
 *    else unexpected (500). None of them ever means the write happened.
 */
#ifndef APP_STORE_H
#define APP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

typedef enum {
    KV_OK = 0,
    KV_NOT_FOUND,
    KV_PRECONDITION,   /* If-Match / If-None-Match failed */
    KV_UNAVAILABLE,
    KV_ERROR,
    KV_FULL,           /* the disk is full (ENOSPC): 507 */
} kv_status;

typedef struct kv_cond {
    bool if_match_any;       /* If-Match: *        -> must exist */
    int64_t if_match;        /* If-Match: "<n>"    -> version must equal (0 = none) */
    bool if_none_match_any;  /* If-None-Match: *   -> must not exist */
} kv_cond;

typedef struct kv_item {
    char *value;             /* malloc'd, owned by the caller after get */
    size_t len;
    char ctype[128];
    int64_t version;
    int64_t mtime_ms;        /* last write, ms since the Unix epoch (wall clock,
                                never decreasing per key); 0 = unknown (a row
                                written before the store kept it) */
} kv_item;

typedef struct kv_store kv_store;

typedef enum { KV_OP_PUT, KV_OP_DEL } kv_op_kind;

typedef struct kv_op kv_op;

/* One write, owned by whoever holds it: the key, value, content type and
 * conditions are copied in, so nothing rests on the caller's buffers. */
struct kv_op {
    kv_op_kind kind;
    char *key;               /* malloc'd copies (NUL-terminated) */
    size_t klen;
    char *val;               /* PUT only */
    size_t vlen;
    char ctype[128];         /* PUT only */
    kv_cond cond;
    uint64_t submit_ns;      /* hale_now_ns() at creation (deadlines) */
    /* results, set before done runs */
    kv_status st;
    int64_t version;         /* PUT, KV_OK */
    bool created;            /* PUT, KV_OK */
    void (*done)(kv_op *op); /* the one completion callback */
    void *arg;               /* the caller's */
};

/* c may be NULL (unconditional); ctype must be shorter than 128 bytes
 * (callers check; a longer one is cut). */
kv_op *kv_op_new_put(const char *key, size_t klen, const char *val, size_t vlen, const char *ctype,
                     const kv_cond *c, void (*done)(kv_op *), void *arg);
kv_op *kv_op_new_del(const char *key, size_t klen, const kv_cond *c, void (*done)(kv_op *), void *arg);
void kv_op_free(kv_op *op);
/* Sets op->st and calls op->done (which owns op from then on). */
void kv_op_finish(kv_op *op, kv_status st);

typedef struct kv_store_ops {
    const char *name;
    kv_status (*get)(kv_store *s, const char *key, size_t klen, kv_item *out);
    kv_status (*put)(kv_store *s, const char *key, size_t klen, const char *val, size_t vlen,
                     const char *ctype, const kv_cond *c, int64_t *version, bool *created);
    kv_status (*del)(kv_store *s, const char *key, size_t klen, const kv_cond *c);
    /* Appends up to `limit` keys >= after (exclusive) with the prefix, in
     * byte order, to *keys (an array of malloc'd strings the caller frees).
     * *more is set when further keys exist. */
    kv_status (*list)(kv_store *s, const char *prefix, size_t plen, const char *after,
                      size_t alen, size_t limit, char ***keys, size_t *nkeys, bool *more);
    /* A cheap liveness query for the readiness check: 0 ok, -1 with err;
     * 1 with err: answers, but degraded (e.g. reads work, writes fail). */
    int (*ping)(kv_store *s, char *err, size_t errlen);
    void (*close)(kv_store *s);
    /* The asynchronous write path (the HTTP handlers use only this): takes
     * ownership of op (kv_op_new_put / kv_op_new_del), returns at once and
     * calls op->done exactly once, on any thread (possibly this one, before
     * returning), once the write is durable or failed; the done callback
     * then owns op (kv_op_free). No worker waits on an fsync or a network
     * round trip. put/del above are the same operations, blocking (tools,
     * tests). NULL only in test doubles: kv_store_submit then runs put/del. */
    void (*submit)(kv_store *s, kv_op *op);
} kv_store_ops;

struct kv_store {
    const kv_store_ops *ops;
};

static inline void kv_store_close(kv_store *s) { if (s) s->ops->close(s); }

/* s->ops->submit, or for a store without one, its blocking put/del on the
 * calling thread. */
void kv_store_submit(kv_store *s, kv_op *op);

/* The blocking form of op on top of kv_store_submit: runs op (which must
 * not have a done callback yet), waits, and returns op->st; the caller
 * still owns op (kv_op_free). */
kv_status kv_store_run(kv_store *s, kv_op *op);

/* For a listing's range: writes to out (n bytes) the smallest byte string
 * greater than every string that starts with p[0..n), and returns its
 * length; 0 when none exists (n is 0, or every byte is 0xFF). */
static inline size_t kv_prefix_upper(const char *p, size_t n, char *out) {
    memcpy(out, p, n);
    while (n > 0) {
        if ((unsigned char)out[n - 1] != 0xFF) {
            out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
            return n;
        }
        n--;
    }
    return 0;
}

#endif
