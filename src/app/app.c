/* app: see app.h. */
#include "app.h"
#include "kv_api.h"
#include "lifecycle.h"
#include "log.h"
#include "store.h"

#include <stdatomic.h>
#include <string.h>

#define D(n, def, lo, hi, help) {n, HALE_SETTING_DURATION, def, lo, hi, NULL, NULL, 0, help}

static const hale_setting app_settings[] = {
    {"database.url", HALE_SETTING_STRING, "", 0, 0, NULL, "DATABASE_URL", HALE_SETTING_SECRET,
     "postgres://user:pass@host/db selects PostgreSQL; empty means SQLite at database.sqlite_path."},
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
};

typedef struct kv_app {
    kv_api api;
    kv_store *store;
    unsigned attempt;
} kv_app;

static kv_app the_app;

static void validate(hale_cfg *cfg, void *arg) {
    (void)arg;
    if (hale_cfg_ms(cfg, "database.statement_timeout") >= hale_cfg_ms(cfg, "shutdown.timeout") &&
        hale_cfg_ms(cfg, "shutdown.timeout") > 0)
        hale_cfg_add_diag(cfg, HALE_DIAG_WARNING,
                          "database.statement_timeout should be shorter than shutdown.timeout, "
                          "or in-flight queries outlive the drain");
    const char *url = hale_cfg_str(cfg, "database.url");
    if (*url && strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0)
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "database.url (%s): expected a postgres:// or postgresql:// URL",
                          hale_cfg_source(cfg, "database.url"));
}

static int check_store(void *arg, char *err, size_t errlen) {
    kv_app *a = arg;
    kv_store *s = atomic_load_explicit(&a->api.store, memory_order_acquire);
    if (!s) return hale_err(err, errlen, "the store is not open yet");
    return s->ops->ping(s, err, errlen);
}

static int setup(hale_service *svc, void *arg) {
    kv_app *a = arg;
    char err[256];
    const hale_cfg *cfg = hale_service_cfg(svc);
    hale_health_add_check(hale_service_health(svc), "store", check_store, a,
                          (unsigned)hale_cfg_ms(cfg, "database.check_interval"),
                          (unsigned)hale_cfg_ms(cfg, "database.check_timeout"), true);
    if (kv_api_register(&a->api, hale_service_router(svc), err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "app", "cannot register routes", HALE_F_STR("error", err));
        return -1;
    }
    return 0;
}

/* Opens the store, retrying with backoff while it is unreachable (L2). */
static int start(hale_service *svc, void *arg) {
    kv_app *a = arg;
    const hale_cfg *cfg = hale_service_cfg(svc);
    char err[512];
    for (unsigned attempt = 0; !hale_shutdown_requested(); attempt++) {
        a->store = kv_sqlite_open(hale_cfg_str(cfg, "database.sqlite_path"), err, sizeof err);
        if (a->store) break;
        uint64_t wait = hale_backoff_ms(attempt, 200, 10000);
        HALE_LOG(HALE_LOG_WARN, "store", "cannot open the store; retrying", HALE_F_STR("error", err),
                 HALE_F_UINT("attempt", attempt + 1), HALE_F_UINT("retry_in_ms", wait));
        hale_wait_shutdown(wait);
    }
    if (!a->store) return 0; /* shutdown requested while starting */
    atomic_store_explicit(&a->api.store, a->store, memory_order_release);
    HALE_LOG(HALE_LOG_INFO, "store", "store open", HALE_F_STR("backend", a->store->ops->name));
    return 0;
}

static void stop(hale_service *svc, void *arg) {
    (void)svc;
    kv_app *a = arg;
    atomic_store(&a->api.store, NULL);
    kv_store_close(a->store);
    a->store = NULL;
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
};

const hale_service_def *kv_app_def(void) { return &def; }
