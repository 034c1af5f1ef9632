/* cache: a kv_store that puts a Redis read-through cache in front of
 * another kv_store (A7).
 *
 * Promises:
 *  - Same semantics as the backend it wraps (store.h): every answer about
 *    a write comes from the backend; the cache only ever answers reads.
 *  - A read that starts after a write was acknowledged never returns the
 *    value it replaced, with any number of replicas sharing the Redis, as
 *    long as the writer could reach Redis after its write. How (see
 *    cache_redis.c for the argument): every write deletes the entry before
 *    and after the backend write, and a reader fills the cache only under a
 *    lease token it took when it missed; any delete in between removes the
 *    token, so a reader that fetched the old value can never store it.
 *  - When the writer cannot reach Redis after its write, it remembers the
 *    key and this replica stops reading from the cache until the delete
 *    has been replayed. Known limit: another replica that can reach Redis
 *    meanwhile may still read the old entry until the writer replays it or
 *    the entry's TTL (ttl_ms) ends it. Entries always expire after ttl_ms.
 *  - Redis failures never fail a request: reads fall back to the backend.
 *    A circuit breaker opens after `breaker_failures` consecutive failures
 *    and keeps Redis out of the request path for `breaker_open_ms`; then
 *    one probe (a request, or the readiness check) decides.
 *  - Lists are not cached (they go to the backend).
 * Ownership: the cache owns the backend (closing the cache closes it).
 * Thread-safety: as store.h; every function may be called from any thread.
 */
#ifndef APP_CACHE_H
#define APP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

typedef struct kv_cache_opts {
    const char *url;            /* redis://[[user]:password@]host[:port][/db] */
    unsigned pool_size;         /* >= 1 */
    unsigned timeout_ms;        /* connect, and each command */
    unsigned breaker_failures;  /* 0 = 5 */
    unsigned breaker_open_ms;
    unsigned ttl_ms;            /* entry lifetime; 0 = 60 s */
    size_t max_value_bytes;     /* larger values are not cached; 0 = 512 KiB */
    const char *ns;             /* namespace in every Redis key name; shared
                                   by every replica of one database */
} kv_cache_opts;

/* Wraps backend. Connects nothing: a Redis that is down at start costs only
 * cache hits. Returns NULL with err for a bad URL (backend then still
 * belongs to the caller). */
kv_store *kv_cache_open(kv_store *backend, const kv_cache_opts *o, char *err, size_t errlen);

/* True when s is a cache; kv_cache_backend returns the wrapped store. */
bool kv_store_is_cache(const kv_store *s);
kv_store *kv_cache_backend(kv_store *s);

/* The Redis readiness/health check: 0 when Redis answers (replaying any
 * remembered deletes first), -1 with err. Also acts as the breaker's
 * probe, so the breaker closes with no traffic once Redis is back. */
int kv_cache_check(kv_store *s, char *err, size_t errlen);

typedef struct kv_cache_stats {
    uint64_t hits, misses, bypassed, errors, fills, fill_conflicts, invalidation_failures;
    unsigned pending;           /* deletes waiting to be replayed */
    bool purge_pending;         /* too many: the namespace will be purged */
    int breaker_state;          /* hale_breaker_state */
    uint64_t breaker_opens;
    unsigned pool_size, open, in_use;
} kv_cache_stats;

void kv_cache_get_stats(const kv_store *s, kv_cache_stats *out);

/* Registers the hale_cache_* and hale_redis_* metrics. Call once. */
void kv_cache_register_metrics(kv_store *s, hale_metrics *reg);

#endif
