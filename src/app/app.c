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

/* Each setting with the app_store_cfg field it fills (hale_cfg_bind). */
#define F(member) HALE_FIELD(app_store_cfg, member)
#define D(n, def, lo, hi, field, help) {n, HALE_SETTING_DURATION, def, lo, hi, NULL, NULL, 0, help, field}
#define I(n, def, lo, hi, field, help) {n, HALE_SETTING_INT, def, lo, hi, NULL, NULL, 0, help, field}
#define B(n, def, field, help) {n, HALE_SETTING_BOOL, def, 0, 0, NULL, NULL, 0, help, field}

static const hale_setting app_settings[] = {
    {"database.url", HALE_SETTING_STRING, "", 0, 0, NULL, "DATABASE_URL", HALE_SETTING_SECRET,
     "postgres://user:pass@host/db selects PostgreSQL; empty means SQLite at database.sqlite_path.",
     F(database_url)},
    B("database.require_url", "false", HALE_NO_FIELD,
      "When true, no database URL is a configuration error (exit 78) instead of SQLite: for replicated deployments."),
    {"database.sqlite_path", HALE_SETTING_STRING, "./data/hale.db", 0, 0, NULL, NULL, 0,
     "SQLite file (WAL, synchronous=FULL), created with its directory.", F(sqlite_path)},
    I("database.max_connections", "10", 1, 1000, F(max_connections),
      "PostgreSQL connections shared by all workers."),
    D("database.connect_timeout", "3s", 100, 60000, F(connect_timeout_ms), "Timeout to open one database connection."),
    D("database.statement_timeout", "2s", 10, 60000, F(statement_timeout_ms),
      "Longest a query may take; keep it below shutdown.timeout."),
    D("database.check_interval", "2s", 100, 60000, F(check_interval_ms), "How often readiness checks the database."),
    D("database.check_timeout", "1s", 10, 60000, F(check_timeout_ms), "A database check slower than this fails."),
    {"redis.url", HALE_SETTING_STRING, "", 0, 0, NULL, "REDIS_URL", HALE_SETTING_SECRET,
     "redis://:password@host:6379/0 enables the read-through cache; empty disables it.", F(redis_url)},
    I("redis.pool_size", "8", 1, 1000, F(redis_pool_size), "Redis connections."),
    D("redis.timeout", "200ms", 1, 60000, F(redis_timeout_ms), "Redis connect and command timeout."),
    B("redis.required", "false", F(redis_required),
      "When true, readiness fails while Redis is down; when false an outage only costs cache hits."),
    I("redis.breaker_failures", "5", 1, 1000, F(breaker_failures),
      "Consecutive Redis failures that open the circuit breaker."),
    D("redis.breaker_open", "5s", 100, 600000, F(breaker_open_ms),
      "How long the open breaker skips Redis before a trial."),
    D("redis.cache_ttl", "60s", 1000, 86400000, F(cache_ttl_ms),
      "Lifetime of a cache entry: also the longest a stale entry can survive a Redis partition."),
    B("database.migrate_on_start", "true", F(migrate_on_start),
      "Apply schema migrations at start (under an advisory lock); false: only check, run `hale migrate`."),
    D("database.migrate_lock_wait", "60s", 1000, 600000, F(migrate_lock_wait_ms),
      "Longest wait for another instance's migration lock; keep it inside the startup probe's budget."),
    I("database.breaker_failures", "5", 1, 1000, F(db_breaker_failures),
      "Consecutive database connection failures or timeouts that open its circuit breaker."),
    D("database.breaker_open", "1s", 100, 600000, F(db_breaker_open_ms),
      "How long the open database breaker answers 503 at once before a trial."),
    {"kv.cache_control", HALE_SETTING_STRING, "no-cache", 0, 0, NULL, NULL, 0,
     "Cache-Control of KV GET/HEAD answers (200, 304); no-cache makes shared caches revalidate "
     "with the ETag. Everything else is no-store.", HALE_NO_FIELD},
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
#ifndef HALE_HAVE_PQ
    /* D2: a SQLite-only build refuses a PostgreSQL URL at once (exit 78),
     * never by falling back to SQLite */
    if (*hale_cfg_str(cfg, "database.url"))
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "database.url is set (%s), but this hale was built without PostgreSQL "
                          "(-DHALE_WITH_PG=OFF, e.g. the sqlite image): unset it to use SQLite at "
                          "database.sqlite_path, or run a build with PostgreSQL",
                          hale_cfg_source(cfg, "database.url"));
#endif
#ifndef HALE_HAVE_HIREDIS
    if (*hale_cfg_str(cfg, "redis.url"))
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "redis.url is set (%s), but this hale was built without Redis "
                          "(-DHALE_WITH_REDIS=OFF, e.g. the sqlite image): unset it, or run a build "
                          "with Redis",
                          hale_cfg_source(cfg, "redis.url"));
#endif
    if (!*hale_cfg_str(cfg, "database.url") && hale_cfg_bool(cfg, "database.require_url"))
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "database.require_url is true (%s) and no database URL is configured: put a "
                          "postgres:// URL in the secret file %s/database-url (or DATABASE_URL), or set "
                          "database.require_url = false to use SQLite at database.sqlite_path (one "
                          "process per file: never several replicas)",
                          hale_cfg_source(cfg, "database.require_url"), hale_cfg_str(cfg, "secrets.dir"));
}

void app_store_cfg_get(const hale_cfg *cfg, app_store_cfg *o) {
    memset(o, 0, sizeof *o);
    hale_cfg_bind(cfg, app_settings, sizeof app_settings / sizeof app_settings[0], o);
}

static int setup(hale_service *svc, void *arg) {
    kv_app *a = arg;
    char err[256];
    const hale_cfg *cfg = hale_service_cfg(svc);
    app_store_cfg_get(cfg, &a->scfg);
    a->api.cache_control = hale_cfg_str(cfg, "kv.cache_control");
    if (app_backends_add_checks(hale_service_health(svc), &a->api.store, &a->scfg) != 0) {
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
    if (!copy && strcmp(argv[0], "migrate") != 0) return HALE_NO_SUCH_COMMAND;
    app_store_cfg_get(hale_service_cfg(svc), &a->scfg);
    if (copy) {
        kv_copy_defaults d = {a->scfg.sqlite_path, a->scfg.database_url, a->scfg.connect_timeout_ms};
        return kv_copy(&d, argc, argv, stdout, stderr);
    }
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
    .build_info = "backends: sqlite"
#ifdef HALE_HAVE_PQ
                  " postgres"
#else
                  " (built without postgres)"
#endif
#ifdef HALE_HAVE_HIREDIS
                  " redis"
#else
                  " (built without redis)"
#endif
    ,
};

const hale_service_def *kv_app_def(void) { return &def; }
