/* backends: turns plain storage settings into a kv_store (SQLite or
 * PostgreSQL, with or without the Redis cache), and plugs that store's
 * readiness checks and metrics into the runtime. main knows only this.
 *
 * Errors follow util.h: 0 / -1 or NULL, with a message in err that never
 * contains a password.
 */
#ifndef APP_BACKENDS_H
#define APP_BACKENDS_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "health.h"
#include "metrics.h"
#include "store.h"

typedef struct app_store_cfg {
    const char *database_url;       /* postgres://... ; NULL or "" = SQLite */
    const char *sqlite_path;        /* used when database_url is empty */
    unsigned max_connections;       /* PostgreSQL pool size, all workers */
    unsigned connect_timeout_ms;
    unsigned statement_timeout_ms;  /* every store call ends within this + 250 ms */
    const char *redis_url;          /* redis://... ; NULL or "" = no cache */
    unsigned redis_pool_size;
    unsigned redis_timeout_ms;      /* connect and each command */
    bool redis_required;            /* Redis down makes readiness 503 */
    unsigned breaker_failures;      /* Redis breaker: consecutive failures that open it */
    unsigned breaker_open_ms;       /* Redis breaker: how long it stays open before a probe */
    unsigned db_breaker_failures;   /* the same for the database breaker */
    unsigned db_breaker_open_ms;
    unsigned cache_ttl_ms;          /* cache entry lifetime */
    unsigned check_interval_ms;     /* readiness checks of the database and Redis */
    unsigned check_timeout_ms;
    bool migrate_on_start;          /* false: only check the schema (`hale migrate` applies) */
    unsigned migrate_lock_wait_ms;  /* bound on waiting for another replica's migration */
} app_store_cfg;

/* The settings that fill it (defaults, bounds, help): app_settings in app.c,
 * through hale_cfg_bind; app_store_cfg_get gives them without a config. */
void app_store_cfg_get(const hale_cfg *cfg, app_store_cfg *c);

/* Opens the configured store: connects to the database and migrates its
 * schema (PostgreSQL), wraps it in the cache when a Redis URL is set
 * (Redis itself is not contacted: a Redis outage at start costs only cache
 * hits). NULL with err when the database cannot be reached; call again
 * with backoff (L2). The store is closed with kv_store_close. */
kv_store *app_open_store(const app_store_cfg *cfg, char *err, size_t errlen);

/* Adds the readiness checks, before hale_health_start and before the store
 * is open: "store" (the database; required) and, when cfg->redis_url is set, "redis"
 * (required only when cfg->redis_required). Each run reads the store from
 * *store (NULL until open: the check fails with "not open yet"); the slot
 * must outlive h's checks. Both checks double as their breaker's probe, so
 * readiness recovers with no traffic. Returns 0, or -1 when the health
 * module has no room left.
 * The checks share the runtime's one timer thread (health.h), so each
 * bounds itself: "store" on PostgreSQL waits for a pooled connection and
 * its query within statement_timeout + KV_PG_GRACE_MS (store_pg.c
 * deadline()); on SQLite it is one local read, within the reader's 5 s
 * busy timeout; "redis" is a PING (after an outage, first the remembered
 * deletes, a bounded number of batched commands stopping at the first
 * failure), each command within redis.timeout (hiredis socket timeouts).
 * A run longer than database.check_timeout fails readiness at once. */
int app_backends_add_checks(hale_health *h, _Atomic(kv_store *) *store, const app_store_cfg *cfg);

/* Registers the store's metrics (hale_store_info, and the hale_db_*,
 * hale_cache_*, hale_redis_* families its parts have). Call once. */
void app_backends_register_metrics(hale_metrics *reg, kv_store *s);

/* "sqlite", "postgres", "postgres+redis", ... for the start-up log line. */
const char *app_store_kind(const kv_store *s);

/* `hale migrate`: applies the schema migrations and reports on out, then
 * returns. Connection failures are retried with backoff for up to wait_ms
 * (a Job may start before its database). Returns 0, or -1 with err. */
int app_migrate(const app_store_cfg *cfg, unsigned wait_ms, FILE *out, char *err, size_t errlen);

#endif
