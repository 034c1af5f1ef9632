/* backends: see backends.h. */
#include "backends.h"

#include "cache.h"
#include "lifecycle.h"
#include "store_pg.h"
#include "store_sqlite.h"
#include "url_check.h"
#ifdef HALE_HAVE_PQ
#include "migrate.h"
#endif

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static bool is_set(const char *s) { return s && *s; }

static bool is_pg_url(const char *u) {
    return strncmp(u, "postgres://", 11) == 0 || strncmp(u, "postgresql://", 13) == 0;
}

#ifdef HALE_HAVE_PQ
static void pg_opts(const app_store_cfg *cfg, kv_pg_opts *o) {
    memset(o, 0, sizeof *o);
    o->url = cfg->database_url;
    o->max_connections = cfg->max_connections;
    o->connect_timeout_ms = cfg->connect_timeout_ms;
    o->statement_timeout_ms = cfg->statement_timeout_ms;
    o->breaker_failures = cfg->db_breaker_failures;
    o->breaker_open_ms = cfg->db_breaker_open_ms;
    o->migrate = cfg->migrate_on_start;
    o->migrate_lock_wait_ms = cfg->migrate_lock_wait_ms;
}
#endif

/* A cache namespace for a SQLite database: one file belongs to one
 * process, so the absolute path is a fine identity. FNV-1a, hex. */
static void sqlite_ns(const char *path, char *out, size_t n) {
    char abs[PATH_MAX];
    const char *p = realpath(path, abs) ? abs : path;
    uint64_t h = 1469598103934665603ull;
    for (; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, n, "sqlite%016llx", (unsigned long long)h);
}

kv_store *app_open_store(const app_store_cfg *cfg, char *err, size_t errlen) {
    kv_store *s = NULL;
    char ns[64] = "";
    if (is_set(cfg->database_url)) {
        if (!is_pg_url(cfg->database_url)) {
            /* never echo the URL: it may hold a password */
            hale_err(err, errlen, "database: unsupported URL scheme (expected postgres:// or postgresql://)");
            return NULL;
        }
        if (app_url_check("database.url", cfg->database_url, APP_URL_POSTGRES, err, errlen) != 0)
            return NULL;
#ifdef HALE_HAVE_PQ
        kv_pg_opts o;
        pg_opts(cfg, &o);
        s = kv_pg_open(&o, err, errlen);
        if (!s) return NULL;
        snprintf(ns, sizeof ns, "%s", kv_pg_cache_namespace(s));
#else
        hale_err(err, errlen, "database: this hale was built without PostgreSQL support (libpq)");
        return NULL;
#endif
    } else {
        s = kv_sqlite_open(cfg->sqlite_path, err, errlen);
        if (!s) return NULL;
        sqlite_ns(cfg->sqlite_path, ns, sizeof ns);
    }
    if (!is_set(cfg->redis_url)) return s;
    if (app_url_check("redis.url", cfg->redis_url, APP_URL_REDIS, err, errlen) != 0) {
        kv_store_close(s);
        return NULL;
    }
#ifdef HALE_HAVE_HIREDIS
    kv_cache_opts co = {
        .url = cfg->redis_url,
        .pool_size = cfg->redis_pool_size,
        .timeout_ms = cfg->redis_timeout_ms,
        .breaker_failures = cfg->breaker_failures,
        .breaker_open_ms = cfg->breaker_open_ms,
        .ttl_ms = cfg->cache_ttl_ms,
        .ns = ns,
    };
    kv_store *c = kv_cache_open(s, &co, err, errlen);
    if (!c) kv_store_close(s);
    return c;
#else
    kv_store_close(s);
    hale_err(err, errlen, "redis: this hale was built without Redis support (hiredis)");
    return NULL;
#endif
}

static kv_store *inner(kv_store *s) {
#ifdef HALE_HAVE_HIREDIS
    if (kv_store_is_cache(s)) return kv_cache_backend(s);
#endif
    return s;
}

static kv_store *loaded(void *slot) {
    return atomic_load_explicit((_Atomic(kv_store *) *)slot, memory_order_acquire);
}

static int check_database(void *slot, char *err, size_t errlen) {
    kv_store *s = loaded(slot);
    if (!s) return hale_err(err, errlen, "the store is not open yet");
    s = inner(s);
    return s->ops->ping(s, err, errlen);
}

#ifdef HALE_HAVE_HIREDIS
static int check_redis(void *slot, char *err, size_t errlen) {
    kv_store *s = loaded(slot);
    if (!s) return hale_err(err, errlen, "the store is not open yet");
    if (!kv_store_is_cache(s)) return 0;
    return kv_cache_check(s, err, errlen);
}
#endif

int app_backends_add_checks(hale_health *h, _Atomic(kv_store *) *store, const app_store_cfg *cfg) {
    unsigned interval_ms = cfg->check_interval_ms, timeout_ms = cfg->check_timeout_ms;
    if (hale_health_add_check(h, "store", check_database, store, interval_ms, timeout_ms, true) != 0)
        return -1;
    if (!is_set(cfg->redis_url)) return 0;
#ifdef HALE_HAVE_HIREDIS
    if (hale_health_add_check(h, "redis", check_redis, store, interval_ms, timeout_ms, cfg->redis_required) != 0)
        return -1;
#endif
    return 0;
}

const char *app_store_kind(const kv_store *s) {
    const kv_store *base = s;
    bool cached = false;
#ifdef HALE_HAVE_HIREDIS
    if (kv_store_is_cache(s)) {
        cached = true;
        base = kv_cache_backend((kv_store *)s);
    }
#endif
    bool pg = false;
#ifdef HALE_HAVE_PQ
    pg = kv_store_is_pg(base);
#endif
    (void)base; /* unused when built without libpq */
    if (pg) return cached ? "postgres+redis" : "postgres";
    return cached ? "sqlite+redis" : "sqlite";
}

void app_backends_register_metrics(hale_metrics *reg, kv_store *s) {
    const char *const lbl[] = {"backend"};
    hale_metric *info = hale_metrics_gauge(reg, "hale_store_info", "The store in use (value is always 1).", 1, lbl);
    const char *v[] = {app_store_kind(s)};
    hale_gauge_set(hale_gauge_with(info, v), 1);
#ifdef HALE_HAVE_HIREDIS
    if (kv_store_is_cache(s)) kv_cache_register_metrics(s, reg);
#endif
#ifdef HALE_HAVE_PQ
    if (kv_store_is_pg(inner(s))) kv_pg_register_metrics(inner(s), reg);
#endif
    if (kv_store_is_sqlite(inner(s))) kv_sqlite_register_metrics(inner(s), reg);
}

int app_migrate(const app_store_cfg *cfg, unsigned wait_ms, FILE *out, char *err, size_t errlen) {
    if (!is_set(cfg->database_url)) {
        kv_store *s = kv_sqlite_open(cfg->sqlite_path, err, errlen);
        if (!s) return -1;
        kv_store_close(s);
        fprintf(out, "sqlite: schema ready in %s\n", cfg->sqlite_path);
        return 0;
    }
    if (!is_pg_url(cfg->database_url))
        return hale_err(err, errlen, "database: unsupported URL scheme (expected postgres:// or postgresql://)");
    if (app_url_check("database.url", cfg->database_url, APP_URL_POSTGRES, err, errlen) != 0) return -1;
#ifdef HALE_HAVE_PQ
    return kv_pg_migrate_url(cfg->database_url, cfg->connect_timeout_ms, cfg->migrate_lock_wait_ms, wait_ms,
                             out, err, errlen);
#else
    (void)wait_ms;
    (void)out;
    return hale_err(err, errlen, "database: this hale was built without PostgreSQL support (libpq)");
#endif
}
