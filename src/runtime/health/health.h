/** @file
 * health: the availability state machine, background dependency checks,
 * the liveness watchdog and the probe endpoints.
 *
 * Promises:
 *  - States: starting -> ready <-> not_ready -> draining -> stopped. Every
 *    transition is reported once through on_transition.
 *  - Probe handlers only read atomics and cached results, so they answer in
 *    microseconds whatever the dependencies do:
 *      /health/liveness   200 unless a worker has been inside one handler
 *                         longer than `stall_ms` (dependencies never count)
 *      /health/readiness  200 only when started, not draining, and every
 *                         required check passed its last run (a run that is
 *                         taking longer than its timeout counts as failed)
 *      /health/startup    200 once hale_health_set_started() was called
 *      /health            JSON detail: state, and per check status, last
 *                         latency, last error, since when (the error text
 *                         only where registered with full detail: admin)
 *  - A check may also report "degraded" (it returns 1 with err): it counts
 *    as passing for readiness, /health shows it as "degraded" with its
 *    error, and the document's status is "degraded" instead of "pass".
 *  - Checks run one at a time on the runtime's timer thread ("hale-timer",
 *    shared with the other periodic work), each first at once and then
 *    interval_ms after its previous run ended. Each check is expected to
 *    bound itself by its timeout (a client-side connect or statement
 *    timeout, as the key-value app's store and redis checks do). A run past
 *    its timeout counts as failed for readiness at once, while it still
 *    runs, and delays the other checks by as long as it overruns. Probes
 *    never wait for a check.
 *  Thread-safety: everything may be called from any thread after start.
 */
#ifndef HALE_HEALTH_H
#define HALE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "router.h"

/** The health state of a process: checks, state, probes (opaque). */
typedef struct hale_health hale_health;

#ifdef HALE_IN_TREE
/* In-tree only (not installed, hidden in libhale: before the visibility
 * push). hale_health_use_timer(h, t) before hale_health_start makes the
 * checks tasks of t (the service's one timer thread, common/timer.h)
 * instead of a timer h makes and owns. t must outlive h; h neither starts
 * nor stops t: hale_health_stop_checks (and hale_health_free) take the
 * checks off t, waiting for a run in progress, so none runs after they
 * return. Ignored once the checks run. */
typedef struct hale_timer hale_timer;
void hale_health_use_timer(hale_health *h, hale_timer *t);
#endif

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** The availability state (see the state machine above). */
typedef enum {
    HALE_AVAIL_STARTING = 0, /**< start-up not finished: readiness 503 */
    HALE_AVAIL_READY,        /**< every required check passes: readiness 200 */
    HALE_AVAIL_NOT_READY,    /**< a required check fails: readiness 503 */
    HALE_AVAIL_DRAINING,     /**< shutting down: readiness 503 */
    HALE_AVAIL_STOPPED,      /**< listeners closed */
} hale_avail;

/** "starting", "ready", "not_ready", "draining", "stopped". */
const char *hale_avail_name(hale_avail a);

/** A check returns 0 when the dependency is fine, 1 with err when it works
 * but degraded, else -1 with err. */
typedef int (*hale_check_fn)(void *arg, char *err, size_t errlen);


/** A new health state, starting. on_transition may be NULL; it runs on
 * whichever thread changed the state. */
hale_health *hale_health_new(void (*on_transition)(hale_avail from, hale_avail to,
                                                   const char *why, void *arg),
                             void *arg);
/** Stops the checks and frees h. */
void hale_health_free(hale_health *h);

/** Declares a check before hale_health_start. Returns 0, -1 when full. */
int hale_health_add_check(hale_health *h, const char *name, hale_check_fn fn, void *arg,
                          unsigned interval_ms, unsigned timeout_ms, bool required);

/** Starts the checks (each runs at once, then on interval) on the
 * runtime's timer thread, or on a thread of h's own when none was attached
 * (a program using health.h without hale_service_main). Returns 0, or -1
 * with err when the thread cannot be created (no check runs then). */
int hale_health_start(hale_health *h, char *err, size_t errlen);
/** Stops the checks: a run in progress ends first, none runs after this
 * returns. */
void hale_health_stop_checks(hale_health *h);

/** Watches a server's workers for liveness (may be called once per server). */
void hale_health_watch(hale_health *h, const hale_http_server *s, unsigned stall_ms);

void hale_health_set_started(hale_health *h);  /**< init done: startup 200 */
void hale_health_set_draining(hale_health *h); /**< readiness 503 from now on */
void hale_health_set_stopped(hale_health *h);  /**< listeners closed */

/** The current state. */
hale_avail hale_health_state(const hale_health *h);
/** What /health/liveness answers: true for 200. */
bool hale_health_live(const hale_health *h);
/** What /health/readiness answers: true for 200. */
bool hale_health_ready(const hale_health *h);

/** Appends the /health detail document (JSON) to out. */
void hale_health_render_json(const hale_health *h, hale_buf *out);
/** The same document without any check's error text: a failed check's
 * "last_error" is a fixed string pointing to the admin listener. */
void hale_health_render_status_json(const hale_health *h, hale_buf *out);

/** Registers /health, /health/liveness, /health/readiness, /health/startup
 * (GET, never shed, no auth), /health with full detail: for the admin
 * listener. Returns 0 or -1 with err. */
int hale_health_register(hale_health *h, hale_router *r, char *err, size_t errlen);
/** The same routes for a listener clients reach (open, like the probes):
 * /health answers statuses only (hale_health_render_status_json), since
 * error text names the database host, port and user. */
int hale_health_register_public(hale_health *h, hale_router *r, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
