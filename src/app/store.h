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
    /* Optional (NULL when the backend has none): like put, but returns at
     * once and calls done(arg, ...) on another thread once the write is
     * durable (or failed). key/val/ctype/c must stay valid until done runs;
     * the store copies nothing. Lets one commit serve many connections
     * without a thread waiting for each. */
    void (*put_async)(kv_store *s, const char *key, size_t klen, const char *val, size_t vlen,
                      const char *ctype, const kv_cond *c,
                      void (*done)(void *arg, kv_status st, int64_t version, bool created),
                      void *arg);
} kv_store_ops;

struct kv_store {
    const kv_store_ops *ops;
};

static inline void kv_store_close(kv_store *s) { if (s) s->ops->close(s); }

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
