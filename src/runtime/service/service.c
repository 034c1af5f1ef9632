/* service: see service.h. This file is the orchestration only; every step
 * is a call into the module that owns it. */
#include "service.h"
#include "auth.h"
#include "lifecycle.h"
#include "log.h"
#include "observe.h"
#include "probe.h"
#include "systemd.h"
#include "testhooks.h"
#include "timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef HALE_VERSION
#define HALE_VERSION "0.0.0"
#endif
#ifndef HALE_REVISION
#define HALE_REVISION "unknown"
#endif
#ifndef HALE_COMPILER
#define HALE_COMPILER "unknown"
#endif

struct hale_service {
    const hale_service_def *def;
    hale_cfg *cfg;
    hale_metrics *metrics;
    hale_observe *obs;
    hale_health *health;
    hale_router *router, *admin_router;
    hale_http_server *main_srv, *admin_srv;
    hale_http_hooks hooks;
    hale_metric *state_metric;
    hale_auth *auth;
    hale_timer *timer;       /* the one thread of periodic work: checks, key reload */
    char **envp;
    hale_sdnotify *notify;   /* NULL unless started with NOTIFY_SOCKET */
    bool told_ready;         /* READY=1 is sent once */
};

const hale_cfg *hale_service_cfg(const hale_service *s) { return s->cfg; }
hale_router *hale_service_router(hale_service *s) { return s->router; }
hale_router *hale_service_admin_router(hale_service *s) { return s->admin_router; }
hale_health *hale_service_health(hale_service *s) { return s->health; }
hale_metrics *hale_service_metrics(hale_service *s) { return s->metrics; }

static void on_signal(int signo, int count, void *arg) {
    (void)arg;
    if (count >= 2) {
        HALE_LOG(HALE_LOG_WARN, "lifecycle", "second signal: exiting at once without draining",
                 HALE_F_INT("signal", signo), HALE_F_INT("exit_code", HALE_EXIT_FORCED));
        hale_log_flush();
    } else {
        HALE_LOG(HALE_LOG_INFO, "lifecycle", "shutdown requested", HALE_F_INT("signal", signo));
    }
}

static void on_repeat(int signo, void *arg) {
    (void)arg;
    HALE_LOG(HALE_LOG_INFO, "lifecycle", "repeated signal ignored", HALE_F_INT("signal", signo),
             HALE_F_INT("window_ms", HALE_SIGNAL_REPEAT_WINDOW_MS));
}

static void on_transition(hale_avail from, hale_avail to, const char *why, void *arg) {
    hale_service *s = arg;
    HALE_LOG(to == HALE_AVAIL_NOT_READY ? HALE_LOG_WARN : HALE_LOG_INFO, "health", "availability changed",
             HALE_F_STR("from", hale_avail_name(from)), HALE_F_STR("to", hale_avail_name(to)),
             HALE_F_STR("reason", why));
    if (s->state_metric) {
        for (int a = HALE_AVAIL_STARTING; a <= HALE_AVAIL_STOPPED; a++) {
            const char *lv[] = {hale_avail_name((hale_avail)a)};
            hale_gauge_set_int(hale_gauge_with(s->state_metric, lv), a == (int)to);
        }
    }
    /* systemd (Type=notify): READY=1 when readiness first passes, STOPPING=1
     * as the drain starts, a STATUS= line at every change */
    if (s->notify) {
        char msg[192];
        snprintf(msg, sizeof msg, "%s%sSTATUS=%s: %s",
                 to == HALE_AVAIL_READY && !s->told_ready ? "READY=1\n" : "",
                 to == HALE_AVAIL_DRAINING ? "STOPPING=1\n" : "", hale_avail_name(to), why);
        if (to == HALE_AVAIL_READY) s->told_ready = true;
        if (hale_sdnotify_send(s->notify, msg) != 0)
            HALE_LOG(HALE_LOG_WARN, "systemd", "cannot notify NOTIFY_SOCKET",
                     HALE_F_STR("error", strerror(errno)));
    }
}

static bool live_fn(void *arg) { return hale_health_live(arg); }

/* Socket activation (systemd.h): the inherited sockets replace the binds. */
static int inherit_listeners(hale_service *s, hale_http_opts *o, hale_sd_listeners *l) {
    char err[256];
    if (hale_sd_listen(s->envp, l, err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "systemd", "socket activation: unusable sockets", HALE_F_STR("error", err));
        return -1;
    }
    if (l->admin_fd >= 0 && !hale_cfg_bool(s->cfg, "metrics.enabled")) {
        HALE_LOG(HALE_LOG_ERROR, "systemd", "socket activation: a socket for the admin listener was "
                 "passed but metrics.enabled is false", HALE_F_INT("fd", l->admin_fd));
        return -1;
    }
    if (l->count)
        HALE_LOG(HALE_LOG_INFO, "systemd", "socket activation: serving inherited sockets",
                 HALE_F_INT("api_fd", l->api_fd), HALE_F_INT("admin_fd", l->admin_fd));
    /* queued connections wait for the store, as they waited for the process:
     * accepting starts once initialisation is done (hale_http_accept_start) */
    if (l->api_fd >= 0) o->listen_fd = l->api_fd, o->accept_later = true;
    return 0;
}

static double ready_fn(void *arg) { return hale_health_ready(arg) ? 1.0 : 0.0; }

static void usage(const hale_service_def *def, FILE *out) {
    fprintf(out,
            "usage: %s [--config-dir DIR] [COMMAND]\n"
            "  (no command)      serve\n"
            "  config            print every setting, its value and where it came from\n"
            "  config --check    validate the configuration; exit 0, or 78 listing every problem\n"
            "  config --markdown the settings table for the README\n"
            "  config --toml     every setting with its built-in default (config/default.toml)\n"
            "  --health-check    ask the running instance's readiness over loopback; exit 0/1\n"
            "  --version         print the version (also: version)\n%s",
            def->name, def->command_help ? def->command_help : "");
}

static hale_cfg *load_cfg(const hale_service_def *def, const char *config_dir, char **envp) {
    hale_cfg *cfg = hale_cfg_new();
    hale_cfg_declare(cfg, hale_runtime_settings, hale_runtime_nsettings);
    if (def->nsettings) hale_cfg_declare(cfg, def->settings, def->nsettings);
    hale_cfg_opts o = {.config_dir = config_dir, .envp = envp};
    hale_cfg_load(cfg, &o);
    if (hale_cfg_ms(cfg, "shutdown.drain_delay") + hale_cfg_ms(cfg, "shutdown.timeout") > 3600000)
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR, "shutdown.drain_delay + shutdown.timeout exceed one hour");
    if (hale_cfg_bool(cfg, "metrics.enabled") &&
        hale_cfg_int(cfg, "metrics.port") == hale_cfg_int(cfg, "server.port"))
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "metrics.port (%s) and server.port (%s) are both %lld: the admin "
                          "listener needs its own port", hale_cfg_source(cfg, "metrics.port"),
                          hale_cfg_source(cfg, "server.port"),
                          (long long)hale_cfg_int(cfg, "server.port"));
    char err[256];
    if (hale_log_init(hale_cfg_str(cfg, "log.level"), hale_cfg_str(cfg, "log.format"), err,
                      sizeof err) != 0)
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR, "log.level (%s): %s", hale_cfg_source(cfg, "log.level"), err);
    /* the parsed key set decides: " \n" or a comment-only file is no key */
    if (!strcmp(hale_cfg_run_env(cfg), "production") &&
        hale_auth_count_keys(hale_cfg_str(cfg, "auth.api_keys")) == 0 &&
        !hale_cfg_bool(cfg, "auth.allow_anonymous"))
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "auth: RUN_ENV=production and no usable API key is configured: put one key "
                          "per line in the secret file %s/api-key (or point API_KEY_FILE at a file), "
                          "or set auth.allow_anonymous = true to run the API open",
                          hale_cfg_str(cfg, "secrets.dir"));
    if (def->validate) def->validate(cfg, def->app);
    return cfg;
}

static int health_check(const hale_cfg *cfg) {
    char err[256];
    const char *host = hale_cfg_str(cfg, "server.host");
    if (!strcmp(host, "0.0.0.0") || !*host) host = "127.0.0.1"; /* probe over loopback */
    else if (!strcmp(host, "::")) host = "::1";
    unsigned port = (unsigned)hale_cfg_int(cfg, "server.port");
    int st = hale_probe_get(host, port, "/health/readiness", 2000, err, sizeof err);
    if (st < 0) {
        printf("unhealthy: %s:%u/health/readiness: %s\n", host, port, err);
        return 1;
    }
    printf("%s: %s:%u/health/readiness answered %d\n", st == 200 ? "healthy" : "unhealthy", host,
           port, st);
    return st == 200 ? 0 : 1;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* Listeners up, dependencies connected, serving until a signal; then the
 * drain timeline of service.h. */
static int serve(hale_service *s) {
    int rc = HALE_EXIT_FATAL;
    char err[512];
    const hale_cfg *cfg = s->cfg;
    s->metrics = hale_metrics_new();
    hale_metrics_register_process(s->metrics);
    hale_metrics_register_build_info(s->metrics, HALE_VERSION, HALE_REVISION, HALE_COMPILER);
    hale_metrics_register_log(s->metrics);
    static const char *const state_label[] = {"state"};
    s->state_metric = hale_metrics_gauge(s->metrics, "hale_availability_state",
                                         "1 for the current availability state.", 1, state_label);
    s->obs = hale_observe_new(s->metrics, hale_cfg_bool(cfg, "log.access"));
    s->health = hale_health_new(on_transition, s);
    s->timer = hale_timer_new();
    hale_health_use_timer(s->health, s->timer);
    hale_metrics_gauge_fn(s->metrics, "hale_ready", "1 when readiness answers 200.", ready_fn, s->health);
    s->router = hale_router_new();
    s->admin_router = hale_router_new();
    s->hooks.on_complete = hale_observe_on_complete;
    s->hooks.on_reject = hale_observe_on_reject;
    s->hooks.arg = s->obs;
    {
        const char *src = hale_cfg_source(cfg, "auth.api_keys");
        struct stat st;
        bool from_file = stat(src, &st) == 0 && S_ISREG(st.st_mode);
        s->auth = hale_auth_new(hale_cfg_str(cfg, "auth.api_keys"), from_file ? src : NULL,
                                (unsigned)hale_cfg_ms(cfg, "auth.reload_interval"), s->metrics);
        if (!s->hooks.auth) {
            s->hooks.auth = hale_auth_check;
            s->hooks.auth_arg = s->auth;
        }
        unsigned n = hale_auth_key_count(s->auth);
        if (n)
            HALE_LOG(HALE_LOG_INFO, "auth", "API keys configured", HALE_F_UINT("keys", n),
                     HALE_F_BOOL("watching_file", from_file));
        else
            HALE_LOG(HALE_LOG_WARN, "auth", "no API key configured: the API is open to anyone "
                     "who can reach it (set the api-key secret)");
        if (hale_auth_start(s->auth, s->timer, err, sizeof err) != 0) {
            HALE_LOG(HALE_LOG_ERROR, "auth", "cannot watch the api-key file", HALE_F_STR("error", err));
            goto out;
        }
    }
    if (hale_timer_start(s->timer, err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "service", "cannot start the timer thread", HALE_F_STR("error", err));
        goto out;
    }
    s->notify = hale_sdnotify_new(s->envp, err, sizeof err);
    if (!s->notify && err[0])
        HALE_LOG(HALE_LOG_ERROR, "systemd", "NOTIFY_SOCKET ignored", HALE_F_STR("error", err));
    on_transition(HALE_AVAIL_STARTING, HALE_AVAIL_STARTING, "initialising", s);
    /* the main listener is reachable by clients: /health without error text */
    if (hale_health_register_public(s->health, s->router, err, sizeof err) ||
        hale_health_register(s->health, s->admin_router, err, sizeof err) ||
        hale_observe_register_metrics(s->obs, s->admin_router, err, sizeof err)) {
        HALE_LOG(HALE_LOG_ERROR, "service", "cannot register routes", HALE_F_STR("error", err));
        goto out;
    }
#ifdef HALE_TEST_HOOKS
    /* test builds only: GET /debug/block?ms=N (see testhooks.h) */
    if (hale_testhooks_register(s->router, err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "service", "cannot register test hooks", HALE_F_STR("error", err));
        goto out;
    }
    HALE_LOG(HALE_LOG_WARN, "service", "test hooks compiled in: /debug/block is served (never in production)");
#endif
    if (s->def->setup && s->def->setup(s, s->def->app) != 0) goto out;

    hale_service_opts so;
    hale_service_opts_get(cfg, &so);
    hale_sd_listeners inherited;
    if (inherit_listeners(s, &so.main, &inherited) != 0) goto out;
    s->main_srv = hale_http_start(&so.main, s->router, &s->hooks, err, sizeof err);
    if (!s->main_srv) {
        HALE_LOG(HALE_LOG_ERROR, "service", "cannot start the main listener", HALE_F_STR("error", err));
        goto out;
    }
    hale_observe_track_server(s->obs, s->main_srv);
    if (hale_cfg_bool(cfg, "metrics.enabled")) {
        if (inherited.admin_fd >= 0) so.admin.listen_fd = inherited.admin_fd;
        s->admin_srv = hale_http_start(&so.admin, s->admin_router, &s->hooks, err, sizeof err);
        if (!s->admin_srv) {
            HALE_LOG(HALE_LOG_ERROR, "service", "cannot start the admin listener", HALE_F_STR("error", err));
            goto out;
        }
    }
    hale_health_watch(s->health, s->main_srv, (unsigned)hale_cfg_ms(cfg, "health.liveness_stall"));
    if (hale_sdnotify_watchdog_start(s->notify, live_fn, s->health) != 0)
        HALE_LOG(HALE_LOG_WARN, "systemd", "cannot start the watchdog thread: no WATCHDOG=1 will be sent");
    else if (hale_sdnotify_watchdog_usec(s->notify))
        HALE_LOG(HALE_LOG_INFO, "systemd", "watchdog: WATCHDOG=1 while liveness passes",
                 HALE_F_UINT("interval_ms", hale_sdnotify_watchdog_usec(s->notify) / 2000u));
    HALE_LOG(HALE_LOG_INFO, "service", "listening", HALE_F_STR("host", so.main.host),
             HALE_F_UINT("port", hale_http_port(s->main_srv)),
             HALE_F_UINT("workers", hale_http_workers(s->main_srv)),
             HALE_F_UINT("admin_port", s->admin_srv ? hale_http_port(s->admin_srv) : 0),
             HALE_F_STR("version", HALE_VERSION), HALE_F_STR("run_env", hale_cfg_run_env(cfg)));

    if (hale_health_start(s->health, err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "health", "cannot start the checks", HALE_F_STR("error", err));
        goto out;
    }
    if (s->def->start && s->def->start(s, s->def->app) != 0) {
        if (!hale_shutdown_requested()) goto out;
    }
    if (!hale_shutdown_requested()) {
        hale_health_set_started(s->health);
        hale_http_accept_start(s->main_srv);
    }

    while (!hale_wait_shutdown(60000)) {}

    /* drain: readiness 503 now, keep serving with Connection: close */
    uint64_t drain = (uint64_t)hale_cfg_ms(cfg, "shutdown.drain_delay");
    uint64_t tmo = (uint64_t)hale_cfg_ms(cfg, "shutdown.timeout");
    /* Never started (a signal during start-up): readiness never said 200,
     * so no load balancer sends traffic here and there is nothing to wait for. */
    if (hale_health_state(s->health) == HALE_AVAIL_STARTING) drain = 0;
    hale_health_set_draining(s->health);
    hale_http_set_draining(s->main_srv);
    HALE_LOG(HALE_LOG_INFO, "lifecycle", "draining", HALE_F_UINT("drain_delay_ms", drain),
             HALE_F_UINT("timeout_ms", tmo));
    sleep_ms(drain);
    hale_http_quiesce(s->main_srv);
    hale_sdnotify_send(s->notify, "STATUS=draining: stopped accepting, finishing requests in flight");
    uint64_t deadline = hale_now_ns() + tmo * 1000000u;
    /* An inherited socket's queued connections wait for the next process;
     * the ones already accepted are answered first (with Connection: close)
     * even when their request has not arrived yet: a restart drops none. */
    while ((hale_http_in_flight(s->main_srv) || (so.main.listen_fd > 0 && hale_http_connections(s->main_srv))) &&
           hale_now_ns() < deadline)
        sleep_ms(5);
    unsigned left = hale_http_in_flight(s->main_srv);
    HALE_LOG(left ? HALE_LOG_WARN : HALE_LOG_INFO, "lifecycle", "stopped accepting; in-flight done",
             HALE_F_UINT("unfinished", left));
    if (left) {
        /* A handler still runs past shutdown.timeout. Stopping the engine
         * would wait for it (the worker running it is joined), maybe past
         * the orchestrator's grace period, and the store cannot be closed
         * under it. Leave now: acknowledged writes are already durable, and
         * the unanswered requests were never acknowledged. */
        HALE_LOG(HALE_LOG_ERROR, "lifecycle", "shutdown.timeout passed with requests still running; exiting without them",
                 HALE_F_UINT("unfinished", left), HALE_F_INT("exit_code", HALE_EXIT_FATAL));
        hale_log_flush();
        _exit(HALE_EXIT_FATAL);
    }
    rc = HALE_EXIT_OK;
out:
    /* the watchdog reads the main server's busy slots: it goes first */
    hale_sdnotify_watchdog_stop(s->notify);
    /* admin first: its /metrics and /health read the main server's state */
    if (s->admin_srv) hale_http_stop(s->admin_srv);
    if (s->main_srv) hale_http_stop(s->main_srv);
    s->main_srv = s->admin_srv = NULL;
    /* no request left: the key reload may end; the checks end before the
     * stores they ping are closed, and the timer (joined) before what its
     * tasks touch (the notify socket, the metrics) is freed */
    hale_timer_stop(s->timer);
    hale_health_stop_checks(s->health);
    if (s->def->stop) s->def->stop(s, s->def->app);
    hale_health_set_stopped(s->health);
    if (rc == HALE_EXIT_OK) HALE_LOG(HALE_LOG_INFO, "lifecycle", "stopped cleanly", HALE_F_INT("exit_code", rc));
    hale_log_flush();
    hale_sdnotify_free(s->notify);
    s->notify = NULL;
    hale_health_free(s->health);
    hale_router_free(s->router);
    hale_router_free(s->admin_router);
    hale_observe_free(s->obs);
    hale_auth_free(s->auth);
    hale_timer_free(s->timer); /* after health and auth: they take their tasks off it */
    s->timer = NULL;
    hale_metrics_free(s->metrics);
    return rc;
}

int hale_service_main(const hale_service_def *def, int argc, char **argv, char **envp) {
    hale_lifecycle_hooks lh = {.on_signal = on_signal, .on_repeat = on_repeat};
    if (hale_lifecycle_init(&lh) != 0) {
        fprintf(stderr, "%s: cannot set up signal handling\n", def->name);
        return HALE_EXIT_FATAL;
    }
    const char *config_dir = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--config-dir")) {
            if (i + 1 >= argc) { fprintf(stderr, "%s: --config-dir needs a directory\n", def->name); return HALE_EXIT_CONFIG; }
            config_dir = argv[++i];
        } else if (!strncmp(argv[i], "--config-dir=", 13)) {
            config_dir = argv[i] + 13;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(def, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "version")) {
            printf("%s %s (%s, %s)%s%s\n", def->name, HALE_VERSION, HALE_REVISION, HALE_COMPILER,
                   def->build_info ? "; " : "", def->build_info ? def->build_info : "");
            return 0;
        } else {
            break;
        }
    }
    const char *cmd = i < argc ? argv[i] : NULL;
    hale_service s;
    memset(&s, 0, sizeof s);
    s.def = def;
    s.envp = envp;
    s.cfg = load_cfg(def, config_dir, envp);
    if (def->build_info) hale_cfg_set_build_info(s.cfg, def->build_info);
    int rc;
    if (cmd && !strcmp(cmd, "config")) {
        bool check = i + 1 < argc && !strcmp(argv[i + 1], "--check");
        bool markdown = i + 1 < argc && !strcmp(argv[i + 1], "--markdown");
        bool toml = i + 1 < argc && !strcmp(argv[i + 1], "--toml");
        if (markdown) hale_cfg_markdown_table(s.cfg, stdout);
        else if (toml) hale_cfg_print_toml(s.cfg, stdout);
        else if (!check) hale_cfg_print(s.cfg, stdout);
        hale_cfg_print_diags(s.cfg, stderr);
        rc = hale_cfg_error_count(s.cfg) ? HALE_EXIT_CONFIG : 0;
        if (check && !rc) printf("configuration OK (%zu warnings)\n", hale_cfg_diag_count(s.cfg));
    } else if (hale_cfg_error_count(s.cfg)) {
        fprintf(stderr, "%s: configuration errors; not starting\n", def->name);
        hale_cfg_print_diags(s.cfg, stderr);
        rc = HALE_EXIT_CONFIG;
    } else if (cmd && !strcmp(cmd, "--health-check")) {
        rc = health_check(s.cfg);
    } else {
        for (size_t k = 0; k < hale_cfg_diag_count(s.cfg); k++)
            HALE_LOG(HALE_LOG_WARN, "config", hale_cfg_diag_at(s.cfg, k)->msg);
        if (!cmd) {
            rc = serve(&s);
        } else {
            rc = def->command ? def->command(&s, argc - i, argv + i, def->app) : HALE_NO_SUCH_COMMAND;
            if (rc == HALE_NO_SUCH_COMMAND) {
                fprintf(stderr, "%s: unknown command \"%s\"\n", def->name, cmd);
                usage(def, stderr);
                rc = HALE_EXIT_USAGE;
            }
        }
    }
    hale_cfg_free(s.cfg);
    return rc;
}
