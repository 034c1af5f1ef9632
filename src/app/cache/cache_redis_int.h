/* cache_redis_int: what the Redis cache's files share (cache_redis.c: the
 * connection, breaker and replay of deletes; cache_redis_rw.c: reads and
 * writes through the cache). Not for use outside the cache. */
#ifndef APP_CACHE_REDIS_INT_H
#define APP_CACHE_REDIS_INT_H

#include "cache.h"

#include "breaker.h"
#include "redis_pool.h"
#include "store_async.h"

#include <pthread.h>
#include <stdatomic.h>

#define TOKEN_MAX 64

enum { SC_LEASE, SC_FILL, SC_N };

typedef struct cache {
    kv_store base;
    kv_store *backend;
    kv_async *async;              /* completion threads of submit */
    kv_redis_pool pool;
    hale_breaker brk;
    char *prefix;                 /* "hale:<ns>:kv:" */
    size_t plen;
    char ttl[16];                 /* ms, as text for PEXPIRE */
    size_t max_value;
    uint64_t token_seed;
    _Atomic uint64_t token_seq;
    /* deletes to replay (under pmu); dirty mirrors "npending || purge" */
    pthread_mutex_t pmu;
    char **pending;
    size_t *pending_len;
    size_t npending;
    bool purge;
    char purge_cursor[24];
    atomic_bool dirty;
    atomic_size_t npending_gauge; /* npending, for metrics without the lock */
    pthread_mutex_t replay_mu;    /* one replayer at a time (trylock) */
    pthread_mutex_t emu;
    char last_err[200];
    _Atomic uint64_t hits, misses, bypassed, errors, fills, fill_conflicts, inval_fail;
    _Atomic(hale_histogram *) cmd_lat;
} cache;

typedef enum { RC_OK, RC_FAIL, RC_BUSY } rrc;

#define NO_SCRIPT (-1)

/* One command on a pooled connection, with breaker accounting. */
rrc kvc_run(cache *c, int script, int argc, const char **argv, size_t *lens, redisReply **out);
/* out = "hale:<ns>:kv:<key>" (the caller frees it). */
void kvc_redis_key(const cache *c, const char *key, size_t klen, hale_buf *out);
/* May reads use the cache now (breaker closed, no deletes left to replay)? */
bool kvc_usable(cache *c);
/* Deletes the entry; false when Redis could not be told. */
bool kvc_invalidate(cache *c, const hale_buf *rk);
/* Remembers a delete that failed, for replay. */
void kvc_pending_add(cache *c, const char *key, size_t klen);

/* the store entries of cache_redis_rw.c */
kv_status kvc_get(kv_store *base, const char *key, size_t klen, kv_item *out);
kv_status kvc_put(kv_store *base, const char *key, size_t klen, const char *val, size_t vlen,
                  const char *ctype, const kv_cond *cond, int64_t *version, bool *created);
kv_status kvc_del(kv_store *base, const char *key, size_t klen, const kv_cond *cond);
void kvc_submit(kv_store *base, kv_op *op);
/* The completion threads' step of a submitted write (kv_async_run). */
void kvc_write_step(void *ctx, kv_op *op);

#endif
