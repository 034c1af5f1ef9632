/** @file
 * service: the whole life of a hale-based service in one call.
 *
 * A service (the key-value app, or yours) describes itself with a
 * hale_service_def: its settings table and three callbacks. The runtime
 * does the rest, in this order:
 *   signals -> command line -> settings (exit 78 on any error, before any
 *   socket is opened) -> logger -> metrics -> health -> def.setup (declare
 *   routes, checks, metrics; no network I/O) -> listeners (main + admin) ->
 *   def.start (connect dependencies, retrying with backoff; probes already
 *   answer, startup 503) -> started (startup 200) -> wait for SIGTERM/SIGINT
 *   -> drain (readiness 503 at once, `Connection: close`, keep serving for
 *   shutdown.drain_delay) -> stop accepting -> finish in-flight requests
 *   within shutdown.timeout -> def.stop (close stores) -> flush logs -> 0.
 *
 * Under systemd (systemd.h, docs/systemd.md): with NOTIFY_SOCKET it sends
 * STATUS= at every availability change, READY=1 when readiness first
 * passes, STOPPING=1 as the drain starts, and WATCHDOG=1 (WATCHDOG_USEC)
 * while liveness passes. With LISTEN_FDS the listeners serve the inherited
 * sockets ("api", "admin") instead of binding: the API's accepts nothing
 * until started, and at the drain it is left, never shut, after every
 * connection already accepted was answered: queued ones wait for the next
 * process.
 *
 * Commands it understands: `NAME` (serve), `NAME config [--check]`,
 * `NAME --health-check`, `NAME --version` (or `NAME version`: the version and
 * def.build_info), `NAME --help`, the option `--config-dir DIR`, and the
 * service's own commands through def.command. `NAME config` names
 * def.build_info on its first line when set.
 */
#ifndef HALE_SERVICE_H
#define HALE_SERVICE_H

#include "config.h"
#include "health.h"
#include "http.h"
#include "metrics.h"
#include "router.h"

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** The running service, handed to the callbacks (opaque). */
typedef struct hale_service hale_service;

/** What hale_service_def.command returns when argv[0] names none of its commands. */
#define HALE_NO_SUCH_COMMAND (-2)

/** What a service is: its name, settings and callbacks. */
typedef struct hale_service_def {
    const char *name;                 /**< "hale" */
    const hale_setting *settings;     /**< the service's own settings */
    size_t nsettings;                 /**< entries in settings */
    void *app;                        /**< handed back to every callback */
    /** Cross-checks after loading settings: add problems with
     * hale_cfg_add_diag. May be NULL. */
    void (*validate)(hale_cfg *cfg, void *app);
    /** Registers routes/checks/metrics. Returns 0, -1 to exit 1. */
    int (*setup)(hale_service *svc, void *app);
    /** Connects dependencies (may block; must return soon after
     * hale_shutdown_requested()). Returns 0, -1 to exit 1. */
    int (*start)(hale_service *svc, void *app);
    /** Closes dependencies after the drain (no request in flight any more).
     * May be NULL. */
    void (*stop)(hale_service *svc, void *app);
    /** Extra commands (e.g. "migrate"): returns an exit status, or
     * HALE_NO_SUCH_COMMAND when argv[0] names none (hale then prints the
     * usage and exits 2). Settings are loaded when it runs. May be NULL. */
    int (*command)(hale_service *svc, int argc, char **argv, void *app);
    const char *command_help;         /**< lines for --help, may be NULL */
    /** What this build holds, e.g. "backends: sqlite postgres redis"; printed
     * by --version and `config`. May be NULL. */
    const char *build_info;
} hale_service_def;

/** Runs the service; returns the process exit status (L3). */
int hale_service_main(const hale_service_def *def, int argc, char **argv, char **envp);

/** The loaded settings (the runtime's and the service's). */
const hale_cfg *hale_service_cfg(const hale_service *svc);
/** The main listener's router: add the service's routes here in setup. */
hale_router *hale_service_router(hale_service *svc);
/** The admin listener's router (probes, /metrics). */
hale_router *hale_service_admin_router(hale_service *svc);
/** The health state: add the service's checks here in setup. */
hale_health *hale_service_health(hale_service *svc);
/** The metrics registry served on /metrics: add the service's families. */
hale_metrics *hale_service_metrics(hale_service *svc);

/** The runtime's own settings (server, metrics, log, health, shutdown). */
extern const hale_setting hale_runtime_settings[];
/** Entries in hale_runtime_settings. */
extern const size_t hale_runtime_nsettings;

/** What the runtime's settings put in plain structs: the two listeners'
 * options, each field bound to its setting in hale_runtime_settings. */
typedef struct hale_service_opts {
    hale_http_opts main;  /**< server.*, shutdown.close_idle */
    hale_http_opts admin; /**< metrics.host, port, workers, max_connections,
                             idle_timeout, max_body_bytes; its other
                             limits are the main listener's */
} hale_service_opts;

/** Fills o from the loaded settings; cfg NULL gives the built-in defaults
 * (for a program that starts a listener without a configuration). */
void hale_service_opts_get(const hale_cfg *cfg, hale_service_opts *o);

#pragma GCC visibility pop

#endif
