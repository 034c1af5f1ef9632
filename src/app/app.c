/* app: see app.h. */
#include "app.h"
#include "backends.h"
#include "copy.h"
#include "kv_api.h"
#include "lifecycle.h"
#include "log.h"
#include "store.h"
#include "url_check.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define D(n, def, lo, hi, help) {n, HALE_SETTING_DURATION, def, lo, hi, NULL, NULL, 0, help}

static const hale_setting app_settings[] = {
    {"database.url", HALE_SETTING_STRING, "", 0, 0, NULL, "DATABASE_URL", HALE_SETTING_SECRET,
     "postgres://user:pass@host/db selects PostgreSQL; empty means SQLite at database.sqlite_path."},
    {"database.require_url", HALE_SETTING_BOOL, "false", 0, 0, NULL, NULL, 0,
     "When true, no database URL is a configuration error (exit 78) instead of SQLite: for replicated deployments."},
    {"database.sqlite_path", HALE_SETTING_STRING, "./data/hale.db", 0, 0, NULL, NULL, 0,
     "SQLite file (WAL, synchronous=FULL), created with its directory."},
    {"database.max_connections", HALE_SETTING_INT, "10", 1, 1000, NULL, NULL, 0,
     "PostgreSQL connections shared by all workers."},
    D("database.connect_timeout", "3s", 100, 60000, "Timeout to open one database connection."),
    D("database.statement_timeout", "2s", 10, 60000,
      "Longest a query may take; keep it below shutdown.timeout."),
    D("database.check_interval", "2s", 100, 60000, "How often readiness checks the database."),
    D("database.check_timeout", "1s", 10, 60000, "A database check slower than this fails."),
    {"redis.url", HALE_SETTING_STRING, "", 0, 0, NULL, "REDIS_URL", HALE_SETTING_SECRET,
     "redis://:password@host:6379/0 enables the read-through cache; empty disables it."},
    {"redis.pool_size", HALE_SETTING_INT, "8", 1, 1000, NULL, NULL, 0, "Redis connections."},
    D("redis.timeout", "200ms", 1, 60000, "Redis connect and command timeout."),
    {"redis.required", HALE_SETTING_BOOL, "false", 0, 0, NULL, NULL, 0,
     "When true, readiness fails while Redis is down; when false an outage only costs cache hits."},
    {"redis.breaker_failures", HALE_SETTING_INT, "5", 1, 1000, NULL, NULL, 0,
     "Consecutive Redis failures that open the circuit breaker."},
    D("redis.breaker_open", "5s", 100, 600000, "How long the open breaker skips Redis before a trial."),
    D("redis.cache_ttl", "60s", 1000, 86400000,
      "Lifetime of a cache entry: also the longest a stale entry can survive a Redis partition."),
    {"database.migrate_on_start", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0,
     "Apply schema migrations at start (under an advisory lock); false: only check, run `hale migrate`."},
    {"database.breaker_failures", HALE_SETTING_INT, "5", 1, 1000, NULL, NULL, 0,
     "Consecutive database connection failures or timeouts that open its circuit breaker."},
    D("database.breaker_open", "1s", 100, 600000,
      "How long the open database breaker answers 503 at once before a trial."),
    {"kv.cache_control", HALE_SETTING_STRING, "no-cache", 0, 0, NULL, NULL, 0,
     "Cache-Control of KV GET/HEAD answers (200, 304); no-cache makes shared caches revalidate "
     "with the ETag. Everything else is no-store."},
};

typedef struct kv_app {
    kv_api api;
    kv_store *store;
    app_store_cfg scfg;     /* strings point into the loaded settings */
} kv_app;

static kv_app the_app;

static void validate(hale_cfg *cfg, void *arg) {
    (void)arg;
    if (hale_cfg_ms(cfg, "database.statement_timeout") >= hale_cfg_ms(cfg, "shutdown.timeout") &&
        hale_cfg_ms(cfg, "shutdown.timeout") > 0)
        hale_cfg_add_diag(cfg, HALE_DIAG_WARNING,
                          "database.statement_timeout should be shorter than shutdown.timeout, "
                          "or in-flight queries outlive the drain");
    const char *cc = hale_cfg_str(cfg, "kv.cache_control");
    bool cc_ok = *cc != '\0';
    for (const char *p = cc; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) cc_ok = false;
    if (!cc_ok)
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "kv.cache_control (%s): expected a Cache-Control value such as "
                          "\"no-cache\" or \"private, max-age=60\" (printable ASCII, not empty)",
                          hale_cfg_source(cfg, "kv.cache_control"));
    /* Y7: checked here, before libpq or hiredis sees them: their errors
     * quote the offending part of a URL, which may be the password */
    static const struct { const char *name; app_url_kind kind; } urls[] = {
        {"database.url", APP_URL_POSTGRES}, {"redis.url", APP_URL_REDIS},
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        const char *url = hale_cfg_str(cfg, urls[i].name);
        char why[256];
        if (*url && app_url_check(urls[i].name, url, urls[i].kind, why, sizeof why) != 0)
            hale_cfg_add_diag(cfg, HALE_DIAG_ERROR, "%s (from %s)", why,
                              hale_cfg_source(cfg, urls[i].name));
    }
    if (!*hale_cfg_str(cfg, "database.url") && hale_cfg_bool(cfg, "database.require_url"))
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "database.require_url is true (%s) and no database URL is configured: put a "
                          "postgres:// URL in the secret file %s/database-url (or DATABASE_URL), or set "
                          "database.require_url = false to use SQLite at database.sqlite_path (one "
                          "process per file: never several replicas)",
                          hale_cfg_source(cfg, "database.require_url"), hale_cfg_str(cfg, "secrets.dir"));
}

static void store_cfg(const hale_cfg *cfg, app_store_cfg *o) {
    app_store_cfg_defaults(o);
    o->database_url = hale_cfg_str(cfg, "database.url");
    o->sqlite_path = hale_cfg_str(cfg, "database.sqlite_path");
    o->max_connections = (unsigned)hale_cfg_int(cfg, "database.max_connections");
    o->connect_timeout_ms = (unsigned)hale_cfg_ms(cfg, "database.connect_timeout");
    o->statement_timeout_ms = (unsigned)hale_cfg_ms(cfg, "database.statement_timeout");
    o->redis_url = hale_cfg_str(cfg, "redis.url");
    o->redis_pool_size = (unsigned)hale_cfg_int(cfg, "redis.pool_size");
    o->redis_timeout_ms = (unsigned)hale_cfg_ms(cfg, "redis.timeout");
    o->redis_required = hale_cfg_bool(cfg, "redis.required");
    o->breaker_failures = (unsigned)hale_cfg_int(cfg, "redis.breaker_failures");
    o->breaker_open_ms = (unsigned)hale_cfg_ms(cfg, "redis.breaker_open");
    o->cache_ttl_ms = (unsigned)hale_cfg_ms(cfg, "redis.cache_ttl");
    o->skip_migrations = !hale_cfg_bool(cfg, "database.migrate_on_start");
    o->db_breaker_failures = (unsigned)hale_cfg_int(cfg, "database.breaker_failures");
    o->db_breaker_open_ms = (unsigned)hale_cfg_ms(cfg, "database.breaker_open");
}

static int setup(hale_service *svc, void *arg) {
    kv_app *a = arg;
    char err[256];
    const hale_cfg *cfg = hale_service_cfg(svc);
    store_cfg(cfg, &a->scfg);
    a->api.cache_control = hale_cfg_str(cfg, "kv.cache_control");
    if (app_backends_add_checks(hale_service_health(svc), &a->api.store, &a->scfg,
                                (unsigned)hale_cfg_ms(cfg, "database.check_interval"),
                                (unsigned)hale_cfg_ms(cfg, "database.check_timeout")) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "app", "cannot add the readiness checks");
        return -1;
    }
    if (kv_api_register(&a->api, hale_service_router(svc), err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "app", "cannot register routes", HALE_F_STR("error", err));
        return -1;
    }
    return 0;
}

/* Opens the store, retrying with backoff while it is unreachable (L2). */
static int start(hale_service *svc, void *arg) {
    kv_app *a = arg;
    char err[512];
    for (unsigned attempt = 0; !hale_shutdown_requested(); attempt++) {
        a->store = app_open_store(&a->scfg, err, sizeof err);
        if (a->store) break;
        uint64_t wait = hale_backoff_ms(attempt, 200, 10000);
        HALE_LOG(HALE_LOG_WARN, "store", "cannot open the store; retrying", HALE_F_STR("error", err),
                 HALE_F_UINT("attempt", attempt + 1), HALE_F_UINT("retry_in_ms", wait));
        hale_wait_shutdown(wait);
    }
    if (!a->store) return 0; /* shutdown requested while starting */
    app_backends_register_metrics(hale_service_metrics(svc), a->store);
    atomic_store_explicit(&a->api.store, a->store, memory_order_release);
    HALE_LOG(HALE_LOG_INFO, "store", "store open", HALE_F_STR("backend", app_store_kind(a->store)));
    return 0;
}

static void stop(hale_service *svc, void *arg) {
    (void)svc;
    kv_app *a = arg;
    atomic_store(&a->api.store, NULL);
    kv_store_close(a->store);
    a->store = NULL;
}

/* `hale migrate`: apply the migrations (a Kubernetes Job before a rollout),
 * waiting up to a minute for the database to accept connections.
 * `hale copy`: SQLite -> PostgreSQL (copy.h). */
static int command(hale_service *svc, int argc, char **argv, void *arg) {
    kv_app *a = arg;
    bool copy = strcmp(argv[0], "copy") == 0;
    if (!copy && strcmp(argv[0], "migrate") != 0) return -2;
    store_cfg(hale_service_cfg(svc), &a->scfg);
    if (copy) return app_copy(&a->scfg, argc, argv, stdout, stderr);
    char err[512];
    if (app_migrate(&a->scfg, 60000, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "hale migrate: %s\n", err);
        return HALE_EXIT_FATAL;
    }
    return HALE_EXIT_OK;
}

static const hale_service_def def = {
    .name = "hale",
    .settings = app_settings,
    .nsettings = sizeof app_settings / sizeof app_settings[0],
    .app = &the_app,
    .validate = validate,
    .setup = setup,
    .start = start,
    .stop = stop,
    .command = command,
    .command_help = "  migrate           apply the database schema migrations, then exit\n"
                    "  copy              copy the SQLite store into PostgreSQL, then verify\n"
                    "                    ([--from sqlite:PATH] [--to postgres://...] [--batch N]\n"
                    "                    [--pause MS] [--verify-only]; see docs/scaling.md)\n",
};

const hale_service_def *kv_app_def(void) { return &def; }
