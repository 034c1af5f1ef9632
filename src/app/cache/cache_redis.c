/* cache_redis: the Redis read-through cache. See cache.h for the promises.
 *
 * Why leases and a delete before AND after each write. Each cached key is
 * one Redis hash `hale:<ns>:kv:<key>` with field v (the entry: version,
 * content type, value) and field g (a lease token). The race every
 * read-through cache must survive:
 *     reader: miss ... reads OLD from the database ...... stores OLD
 *     writer:            writes NEW, deletes the entry ^ (before the store)
 * A plain "delete after write" leaves OLD cached for the whole TTL, and a
 * second delete before the write does not help either: the reader's store
 * can land after both. So a reader may only store under a lease:
 *   get   = LEASE script: v present -> hit. Else return g, creating it (a
 *           token unique to this process and call) when absent.
 *   miss  -> read the backend -> FILL script: store v only if g still
 *           equals the token the reader got.
 *   write = DEL the hash before the backend write and again after it.
 * The DEL after the write removes g, so every reader that took its lease
 * before the write completed fails its FILL; a reader that takes a lease
 * after the DEL reads the backend after the write was committed. Hence a
 * read that starts after the acknowledgement sees the new value, or a newer
 * one. Expiry or eviction of the hash also removes g and only refuses
 * fills. The DEL before the write is not needed for that argument; it
 * shortens the time in which concurrent readers still see the old entry,
 * and if the DEL after fails it has already removed the entry cached
 * before the write began, leaving only a racing fill to worry about.
 * Versioned entries (store only if newer) were the alternative; they need
 * tombstones for deletes and a version from every write (the store
 * interface gives none for DELETE), and leave the same failure case.
 *
 * When the DEL after a write fails (Redis down, breaker open, pool busy),
 * the key is remembered (up to PENDING_MAX, then "purge the namespace")
 * and this replica bypasses the cache for reads until the deletes are
 * replayed; the replay is the breaker's probe when it is due one. */
#ifdef HALE_HAVE_HIREDIS

#include "cache_redis_int.h"

#include "log.h"

#include <endian.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define LOG_TARGET "cache.redis"
#define PENDING_MAX 1024
#define DEL_BATCH 64
#define PURGE_STEPS 20    /* SCAN calls per replay: a purge never holds a request long */

static const char *const SCRIPTS[SC_N] = {
    [SC_LEASE] =
        "local r = redis.call('HMGET', KEYS[1], 'v', 'g')\n"
        "if r[1] then return {1, r[1]} end\n"
        "local g = r[2]\n"
        "if not g then\n"
        "  g = ARGV[1]\n"
        "  redis.call('HSET', KEYS[1], 'g', g)\n"
        "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
        "end\n"
        "return {0, g}\n",
    [SC_FILL] =
        "if redis.call('HGET', KEYS[1], 'g') ~= ARGV[1] then return 0 end\n"
        "redis.call('HSET', KEYS[1], 'v', ARGV[2])\n"
        "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
        "return 1\n",
};

static const kv_store_ops CACHE_OPS;

/* ---- Redis calls with breaker accounting ---- */

static void failed(cache *c, const char *err) {
    atomic_fetch_add(&c->errors, 1);
    pthread_mutex_lock(&c->emu);
    snprintf(c->last_err, sizeof c->last_err, "%s", err);
    pthread_mutex_unlock(&c->emu);
    uint64_t before = hale_breaker_opens(&c->brk);
    hale_breaker_failure(&c->brk);
    if (hale_breaker_opens(&c->brk) != before)
        HALE_LOG(HALE_LOG_WARN, LOG_TARGET, "redis failing: cache bypassed for a while",
                 HALE_F_STR("error", err));
}

static void succeeded(cache *c) {
    if (hale_breaker_get_state(&c->brk) != HALE_BREAKER_CLOSED) {
        hale_breaker_success(&c->brk);
        HALE_LOG(HALE_LOG_INFO, LOG_TARGET, "redis answers again: circuit breaker closed");
        return;
    }
    hale_breaker_success(&c->brk);
}


/* One command on a pooled connection. With script >= 0 the command is
 * EVALSHA and argv[1] is filled here with that script's SHA: it is known
 * only once a connection has loaded the scripts, and the acquire (which
 * takes the pool's mutex) makes the write of it visible. RC_BUSY (no free
 * connection in time) is not Redis's fault and does not count against it. */
rrc kvc_run(cache *c, int script, int argc, const char **argv, size_t *lens, redisReply **out) {
    kv_redis_lease l;
    char err[256];
    kv_redis_rc a = kv_redis_acquire(&c->pool, &l, err, sizeof err);
    if (a == KV_REDIS_BUSY) return RC_BUSY;
    if (a == KV_REDIS_DOWN) {
        failed(c, err);
        return RC_FAIL;
    }
    if (script >= 0) {
        HALE_ASSERT(argc > 1 && c->pool.sha[script][0]);
        argv[1] = c->pool.sha[script];
        lens[1] = 40;
    }
    bool broken = false;
    uint64_t t0 = hale_now_ns();
    redisReply *r = kv_redis_cmd(l.c, argc, argv, lens, &broken, err, sizeof err);
    hale_histogram *h = atomic_load_explicit(&c->cmd_lat, memory_order_acquire);
    if (h) hale_histogram_observe(h, (double)(hale_now_ns() - t0) / 1e9);
    kv_redis_release(&c->pool, &l, broken);
    if (!r) {
        failed(c, err);
        return RC_FAIL;
    }
    succeeded(c);
    *out = r;
    return RC_OK;
}

void kvc_redis_key(const cache *c, const char *key, size_t klen, hale_buf *out) {
    hale_buf_init(out);
    hale_buf_append(out, c->prefix, c->plen);
    hale_buf_append(out, key, klen);
}

/* ---- remembered deletes ---- */

void kvc_pending_add(cache *c, const char *key, size_t klen) {
    pthread_mutex_lock(&c->pmu);
    if (!c->purge) {
        if (c->npending == PENDING_MAX) {
            /* too many to replay one by one: purge the whole namespace */
            for (size_t i = 0; i < c->npending; i++) free(c->pending[i]);
            c->npending = 0;
            c->purge = true;
            snprintf(c->purge_cursor, sizeof c->purge_cursor, "0");
        } else {
            c->pending[c->npending] = xmalloc(klen ? klen : 1);
            memcpy(c->pending[c->npending], key, klen);
            c->pending_len[c->npending++] = klen;
        }
    }
    atomic_store(&c->npending_gauge, c->npending);
    atomic_store(&c->dirty, true);
    pthread_mutex_unlock(&c->pmu);
}

/* One bounded slice of the namespace purge. 1 done, 0 more to do, -1 failed. */
static int purge_step(cache *c) {
    hale_buf pat;
    hale_buf_init(&pat);
    hale_buf_append(&pat, c->prefix, c->plen); /* hex namespace: no glob characters */
    hale_buf_puts(&pat, "*");
    int rc = 0;
    for (int step = 0; step < PURGE_STEPS && rc == 0; step++) {
        char cursor[24];
        pthread_mutex_lock(&c->pmu);
        snprintf(cursor, sizeof cursor, "%s", c->purge_cursor);
        pthread_mutex_unlock(&c->pmu);
        const char *argv[] = {"SCAN", cursor, "MATCH", pat.data, "COUNT", "500"};
        size_t lens[] = {4, strlen(cursor), 5, pat.len, 5, 3};
        redisReply *r;
        if (kvc_run(c, NO_SCRIPT, 6, argv, lens, &r) != RC_OK) { rc = -1; break; }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            rc = -1;
            break;
        }
        redisReply *keys = r->element[1];
        if (keys->elements) {
            const char **kargv = xcalloc(keys->elements + 1, sizeof *kargv);
            size_t *klens = xcalloc(keys->elements + 1, sizeof *klens);
            kargv[0] = "UNLINK";
            klens[0] = 6;
            for (size_t i = 0; i < keys->elements; i++) {
                kargv[i + 1] = keys->element[i]->str;
                klens[i + 1] = keys->element[i]->len;
            }
            redisReply *u;
            rrc x = kvc_run(c, NO_SCRIPT, (int)keys->elements + 1, kargv, klens, &u);
            free(kargv);
            free(klens);
            if (x != RC_OK) {
                freeReplyObject(r);
                rc = -1;
                break;
            }
            freeReplyObject(u);
        }
        pthread_mutex_lock(&c->pmu);
        snprintf(c->purge_cursor, sizeof c->purge_cursor, "%s", r->element[0]->str);
        bool done = strcmp(c->purge_cursor, "0") == 0;
        pthread_mutex_unlock(&c->pmu);
        freeReplyObject(r);
        if (done) rc = 1;
    }
    hale_buf_free(&pat);
    return rc;
}

/* Replays remembered deletes. 0 when nothing is left to replay. */
static int replay(cache *c) {
    if (pthread_mutex_trylock(&c->replay_mu) != 0) return -1;
    pthread_mutex_lock(&c->pmu);
    bool purge = c->purge;
    char **keys = c->pending;
    size_t *lens = c->pending_len, n = c->npending;
    c->pending = xcalloc(PENDING_MAX, sizeof *c->pending);
    c->pending_len = xcalloc(PENDING_MAX, sizeof *c->pending_len);
    c->npending = 0;
    atomic_store(&c->npending_gauge, 0);
    pthread_mutex_unlock(&c->pmu);

    int rc = 0;
    size_t done = 0;
    if (purge) {
        int p = purge_step(c);
        rc = p == 1 ? 0 : -1;
        if (p == 1) {
            pthread_mutex_lock(&c->pmu);
            c->purge = false;
            pthread_mutex_unlock(&c->pmu);
        }
    } else {
        while (done < n && rc == 0) {
            size_t k = n - done < DEL_BATCH ? n - done : DEL_BATCH;
            const char *argv[DEL_BATCH + 1];
            size_t alen[DEL_BATCH + 1];
            hale_buf rk[DEL_BATCH];
            argv[0] = "DEL";
            alen[0] = 3;
            for (size_t i = 0; i < k; i++) {
                kvc_redis_key(c, keys[done + i], lens[done + i], &rk[i]);
                argv[i + 1] = rk[i].data;
                alen[i + 1] = rk[i].len;
            }
            redisReply *r;
            if (kvc_run(c, NO_SCRIPT, (int)k + 1, argv, alen, &r) == RC_OK) {
                freeReplyObject(r);
                done += k;
            } else {
                rc = -1;
            }
            for (size_t i = 0; i < k; i++) hale_buf_free(&rk[i]);
        }
    }
    /* put back what was not replayed (a purge keeps its own flag) */
    for (size_t i = done; i < n; i++) kvc_pending_add(c, keys[i], lens[i]);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    free(lens);
    pthread_mutex_lock(&c->pmu);
    bool left = c->npending || c->purge;
    atomic_store(&c->dirty, left);
    pthread_mutex_unlock(&c->pmu);
    pthread_mutex_unlock(&c->replay_mu);
    return rc == 0 && !left ? 0 : -1;
}

/* May reads use the cache now? (Maybe the breaker's probe: the caller must
 * then make a Redis call, which reports the outcome.) */
bool kvc_usable(cache *c) {
    if (!hale_breaker_allow(&c->brk)) return false;
    if (!atomic_load(&c->dirty)) return true;
    return replay(c) == 0;
}

/* Deletes the entry; false when Redis could not be told. */
bool kvc_invalidate(cache *c, const hale_buf *rk) {
    if (!hale_breaker_allow(&c->brk)) return false;
    const char *argv[] = {"DEL", rk->data};
    size_t lens[] = {3, rk->len};
    redisReply *r;
    if (kvc_run(c, NO_SCRIPT, 2, argv, lens, &r) != RC_OK) return false;
    freeReplyObject(r);
    return true;
}

static kv_status c_list(kv_store *base, const char *prefix, size_t plen, const char *after, size_t alen,
                        size_t limit, char ***keys, size_t *nkeys, bool *more) {
    cache *c = (cache *)base;
    return c->backend->ops->list(c->backend, prefix, plen, after, alen, limit, keys, nkeys, more);
}

/* The store's own ping is the database's: Redis has its own check. */
static int c_ping(kv_store *base, char *err, size_t errlen) {
    cache *c = (cache *)base;
    return c->backend->ops->ping(c->backend, err, errlen);
}

static void c_close(kv_store *base) {
    cache *c = (cache *)base;
    /* queued writes reach the backend, which answers them at its close;
     * their second delete then runs inline (the pool refuses) */
    if (c->async) kv_async_stop(c->async);
    kv_store_close(c->backend);
    kv_async_destroy(c->async);
    kv_redis_pool_destroy(&c->pool);
    hale_breaker_destroy(&c->brk);
    for (size_t i = 0; i < c->npending; i++) free(c->pending[i]);
    free(c->pending);
    free(c->pending_len);
    pthread_mutex_destroy(&c->pmu);
    pthread_mutex_destroy(&c->replay_mu);
    pthread_mutex_destroy(&c->emu);
    free(c->prefix);
    free(c);
}

static const kv_store_ops CACHE_OPS = {
    .name = "redis-cache", .get = kvc_get, .put = kvc_put, .del = kvc_del,
    .list = c_list, .ping = c_ping, .close = c_close, .submit = kvc_submit,
};

bool kv_store_is_cache(const kv_store *s) { return s && s->ops == &CACHE_OPS; }

kv_store *kv_cache_backend(kv_store *s) {
    HALE_ASSERT(kv_store_is_cache(s));
    return ((cache *)s)->backend;
}

kv_store *kv_cache_open(kv_store *backend, const kv_cache_opts *o, char *err, size_t errlen) {
    kv_redis_addr addr;
    if (kv_redis_parse_url(o->url, &addr, err, errlen) != 0) return NULL;
    cache *c = xcalloc(1, sizeof *c);
    c->base.ops = &CACHE_OPS;
    c->backend = backend;
    kv_redis_pool_init(&c->pool, &addr, o->pool_size ? o->pool_size : 1, o->timeout_ms, SCRIPTS, SC_N);
    explicit_bzero(&addr, sizeof addr);
    hale_breaker_init(&c->brk, o->breaker_failures ? o->breaker_failures : 5, o->breaker_open_ms);
    hale_buf p;
    hale_buf_init(&p);
    hale_buf_printf(&p, "hale:%s:kv:", o->ns && *o->ns ? o->ns : "default");
    c->prefix = p.data;
    c->plen = p.len;
    snprintf(c->ttl, sizeof c->ttl, "%u", o->ttl_ms ? o->ttl_ms : 60000);
    c->max_value = o->max_value_bytes ? o->max_value_bytes : (size_t)512 * 1024;
    if (getrandom(&c->token_seed, sizeof c->token_seed, 0) != (ssize_t)sizeof c->token_seed)
        c->token_seed = hale_now_ns() ^ ((uint64_t)getpid() << 32);
    pthread_mutex_init(&c->pmu, NULL);
    pthread_mutex_init(&c->replay_mu, NULL);
    pthread_mutex_init(&c->emu, NULL);
    c->pending = xcalloc(PENDING_MAX, sizeof *c->pending);
    c->pending_len = xcalloc(PENDING_MAX, sizeof *c->pending_len);
    c->async = kv_async_new("hale-redis", o->pool_size ? o->pool_size : 1, 1024, kvc_write_step, c, err, errlen);
    if (!c->async) {
        c->backend = NULL; /* the caller keeps it */
        c_close(&c->base);
        return NULL;
    }
    return &c->base;
}

int kv_cache_check(kv_store *s, char *err, size_t errlen) {
    HALE_ASSERT(kv_store_is_cache(s));
    cache *c = (cache *)s;
    char last[sizeof c->last_err];
    if (!hale_breaker_allow(&c->brk)) {
        pthread_mutex_lock(&c->emu);
        snprintf(last, sizeof last, "%s", c->last_err);
        pthread_mutex_unlock(&c->emu);
        return hale_err(err, errlen, "redis: circuit breaker open; last error: %s", last);
    }
    if (atomic_load(&c->dirty)) replay(c);
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    redisReply *r;
    rrc rc = kvc_run(c, NO_SCRIPT, 1, argv, lens, &r);
    if (rc == RC_OK) {
        freeReplyObject(r);
        return 0;
    }
    if (rc == RC_BUSY) return 0; /* every connection is in use: Redis is answering */
    pthread_mutex_lock(&c->emu);
    snprintf(last, sizeof last, "%s", c->last_err);
    pthread_mutex_unlock(&c->emu);
    return hale_err(err, errlen, "%s", last);
}

void kv_cache_get_stats(const kv_store *s, kv_cache_stats *out) {
    HALE_ASSERT(kv_store_is_cache(s));
    cache *c = (cache *)s;
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->bypassed = atomic_load(&c->bypassed);
    out->errors = atomic_load(&c->errors);
    out->fills = atomic_load(&c->fills);
    out->fill_conflicts = atomic_load(&c->fill_conflicts);
    out->invalidation_failures = atomic_load(&c->inval_fail);
    pthread_mutex_lock(&c->pmu);
    out->pending = (unsigned)c->npending;
    out->purge_pending = c->purge;
    pthread_mutex_unlock(&c->pmu);
    out->breaker_state = (int)hale_breaker_get_state(&c->brk);
    out->breaker_opens = hale_breaker_opens(&c->brk);
    out->pool_size = c->pool.base.size;
    out->open = atomic_load(&c->pool.base.open);
    out->in_use = atomic_load(&c->pool.base.in_use);
}

/* ---- metrics ---- */

#define CTR_FN(fname, field) \
    static double fname(void *a) { return (double)atomic_load(&((cache *)a)->field); }
CTR_FN(m_hits, hits)
CTR_FN(m_misses, misses)
CTR_FN(m_bypassed, bypassed)
CTR_FN(m_errors, errors)
CTR_FN(m_fills, fills)
CTR_FN(m_conflicts, fill_conflicts)
CTR_FN(m_inval_fail, inval_fail)
CTR_FN(m_open, pool.base.open)
CTR_FN(m_in_use, pool.base.in_use)
static double m_size(void *a) { return ((cache *)a)->pool.base.size; }
static double m_brk(void *a) { return (double)hale_breaker_get_state(&((cache *)a)->brk); }
static double m_brk_opens(void *a) { return (double)hale_breaker_opens(&((cache *)a)->brk); }
static double m_pending(void *a) { return (double)atomic_load(&((cache *)a)->npending_gauge); }

void kv_cache_register_metrics(kv_store *s, hale_metrics *reg) {
    HALE_ASSERT(kv_store_is_cache(s));
    cache *c = (cache *)s;
    hale_metrics_counter_fn(reg, "hale_cache_hits_total", "Reads answered from Redis.", m_hits, c);
    hale_metrics_counter_fn(reg, "hale_cache_misses_total", "Reads not found in Redis (then read from the database).",
                            m_misses, c);
    hale_metrics_counter_fn(reg, "hale_cache_bypassed_total",
                            "Reads that skipped Redis (breaker open, deletes to replay, pool busy).", m_bypassed, c);
    hale_metrics_counter_fn(reg, "hale_cache_errors_total", "Failed Redis calls.", m_errors, c);
    hale_metrics_counter_fn(reg, "hale_cache_fills_total", "Entries stored after a miss.", m_fills, c);
    hale_metrics_counter_fn(reg, "hale_cache_fill_conflicts_total",
                            "Fills refused because a write invalidated the lease.", m_conflicts, c);
    hale_metrics_counter_fn(reg, "hale_cache_invalidation_failures_total",
                            "Writes whose cache entry could not be deleted at once (replayed later).",
                            m_inval_fail, c);
    hale_metrics_gauge_fn(reg, "hale_cache_pending_invalidations", "Deletes waiting to be replayed.",
                          m_pending, c);
    hale_metrics_gauge_fn(reg, "hale_cache_breaker_state", "Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
                          m_brk, c);
    hale_metrics_counter_fn(reg, "hale_cache_breaker_opens_total", "Times the Redis breaker opened.",
                            m_brk_opens, c);
    hale_metrics_gauge_fn(reg, "hale_redis_pool_max_connections", "Size limit of the Redis connection pool.",
                          m_size, c);
    hale_metrics_gauge_fn(reg, "hale_redis_pool_open_connections", "Redis connections currently open.", m_open, c);
    hale_metrics_gauge_fn(reg, "hale_redis_pool_in_use_connections", "Redis connections currently in use.",
                          m_in_use, c);
    hale_metric *h = hale_metrics_histogram(reg, "hale_redis_command_duration_seconds",
                                            "Redis command round-trip time.", 0, NULL, 0, NULL);
    atomic_store(&c->cmd_lat, hale_histogram_with(h, NULL));
}

#endif /* HALE_HAVE_HIREDIS */
