/* main: the hale key-value service. Wiring only:
 * settings -> logger -> health -> listeners -> store (with retries) ->
 * ready -> wait for a signal -> drain -> stop. */
#include "health.h"
#include "http.h"
#include "kv_api.h"
#include "lifecycle.h"
#include "router.h"
#include "store.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct settings {
    const char *host;
    unsigned port, workers, metrics_port;
    const char *sqlite_path;
    hale_http_opts http;
    uint64_t drain_delay_ms, shutdown_timeout_ms;
} settings;

static int env_uint(const char *name, unsigned lo, unsigned hi, unsigned *out) {
    const char *v = getenv(name);
    if (!v) return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi) {
        fprintf(stderr, "%s: expected an integer %u-%u, got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

static int load_settings(settings *s) {
    hale_http_opts_default(&s->http);
    s->host = getenv("HOST") ? getenv("HOST") : "0.0.0.0";
    s->port = 8080;
    s->metrics_port = 9090;
    s->workers = 0;
    s->sqlite_path = getenv("APP_DATABASE__SQLITE_PATH") ? getenv("APP_DATABASE__SQLITE_PATH")
                                                         : "./data/hale.db";
    s->drain_delay_ms = 5000;
    s->shutdown_timeout_ms = 20000;
    unsigned drain = 5000, tmo = 20000, mif = 0;
    if (env_uint("PORT", 1, 65535, &s->port) || env_uint("APP_SERVER__WORKERS", 0, 256, &s->workers) ||
        env_uint("APP_METRICS__PORT", 0, 65535, &s->metrics_port) ||
        env_uint("APP_SHUTDOWN__DRAIN_DELAY", 0, 600000, &drain) ||
        env_uint("APP_SHUTDOWN__TIMEOUT", 0, 600000, &tmo) ||
        env_uint("APP_SERVER__MAX_IN_FLIGHT", 0, 1000000, &mif))
        return -1;
    s->drain_delay_ms = drain;
    s->shutdown_timeout_ms = tmo;
    s->http.host = s->host;
    s->http.port = s->port;
    s->http.workers = s->workers;
    s->http.max_in_flight = mif;
    return 0;
}

typedef struct app {
    settings set;
    hale_health *health;
    hale_router *router, *admin_router;
    hale_http_server *main_srv, *admin_srv;
    kv_api api;
    kv_store *store;
} app;

static void on_transition(hale_avail from, hale_avail to, const char *why, void *arg) {
    (void)arg;
    fprintf(stderr, "health: %s -> %s (%s)\n", hale_avail_name(from), hale_avail_name(to), why);
}

static void on_signal(int signo, int count, void *arg) {
    (void)arg;
    if (count >= 2)
        fprintf(stderr, "lifecycle: second signal %d: exiting at once without draining\n", signo);
    else
        fprintf(stderr, "lifecycle: signal %d: draining\n", signo);
}

static int check_store(void *arg, char *err, size_t errlen) {
    app *a = arg;
    kv_store *s = a->store;
    if (!s) return hale_err(err, errlen, "store not open yet");
    return s->ops->ping(s, err, errlen);
}

static int serve(void) {
    app a;
    char err[512];
    memset(&a, 0, sizeof a);
    if (load_settings(&a.set) != 0) return HALE_EXIT_CONFIG;

    a.health = hale_health_new(on_transition, &a);
    hale_health_add_check(a.health, "store", check_store, &a, 2000, 1000, true);
    a.router = hale_router_new();
    a.admin_router = hale_router_new();
    if (hale_health_register(a.health, a.router, err, sizeof err) ||
        hale_health_register(a.health, a.admin_router, err, sizeof err) ||
        kv_api_register(&a.api, a.router, err, sizeof err)) {
        fprintf(stderr, "hale: %s\n", err);
        return HALE_EXIT_FATAL;
    }
    a.main_srv = hale_http_start(&a.set.http, a.router, NULL, err, sizeof err);
    if (!a.main_srv) { fprintf(stderr, "hale: %s\n", err); return HALE_EXIT_FATAL; }
    if (a.set.metrics_port) {
        hale_http_opts ao;
        hale_http_opts_default(&ao);
        ao.name = "admin";
        ao.host = a.set.host;
        ao.port = a.set.metrics_port;
        ao.workers = 1;
        ao.max_connections = 64;
        a.admin_srv = hale_http_start(&ao, a.admin_router, NULL, err, sizeof err);
        if (!a.admin_srv) { fprintf(stderr, "hale: %s\n", err); return HALE_EXIT_FATAL; }
    }
    hale_health_watch(a.health, a.main_srv, 10000);
    fprintf(stderr, "hale: listening on %s:%u (%u workers)\n", a.set.host,
            hale_http_port(a.main_srv), hale_http_workers(a.main_srv));

    for (unsigned attempt = 0; !a.store && !hale_shutdown_requested(); attempt++) {
        a.store = kv_sqlite_open(a.set.sqlite_path, err, sizeof err);
        if (a.store) break;
        uint64_t wait = hale_backoff_ms(attempt, 200, 10000);
        fprintf(stderr, "store: %s; retrying in %llu ms\n", err, (unsigned long long)wait);
        hale_wait_shutdown(wait);
    }
    a.api.store = a.store;
    hale_health_start(a.health);
    if (a.store) hale_health_set_started(a.health);

    while (!hale_wait_shutdown(1000)) {}

    hale_health_set_draining(a.health);
    hale_http_set_draining(a.main_srv);
    hale_wait_shutdown(0);
    struct timespec ts = {.tv_sec = (time_t)(a.set.drain_delay_ms / 1000),
                          .tv_nsec = (long)(a.set.drain_delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    hale_http_quiesce(a.main_srv);
    uint64_t deadline = hale_now_ns() + a.set.shutdown_timeout_ms * 1000000u;
    while (hale_http_in_flight(a.main_srv) && hale_now_ns() < deadline) {
        struct timespec t10 = {0, 10000000L};
        nanosleep(&t10, NULL);
    }
    hale_http_stop(a.main_srv);
    if (a.admin_srv) hale_http_stop(a.admin_srv);
    hale_health_set_stopped(a.health);
    hale_health_free(a.health);
    kv_store_close(a.store);
    hale_router_free(a.router);
    hale_router_free(a.admin_router);
    fprintf(stderr, "hale: stopped cleanly\n");
    return HALE_EXIT_OK;
}

int main(int argc, char **argv) {
    hale_lifecycle_hooks hooks = {.on_signal = on_signal};
    if (hale_lifecycle_init(&hooks) != 0) {
        fprintf(stderr, "hale: cannot install signal handling\n");
        return HALE_EXIT_FATAL;
    }
    (void)argc; (void)argv;
    return serve();
}
