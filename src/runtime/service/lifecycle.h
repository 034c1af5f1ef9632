/** @file
 * lifecycle: signals, the shutdown request, and interruptible waits.
 *
 * Promises:
 *  - hale_lifecycle_init() blocks SIGTERM, SIGINT and SIGHUP in the calling
 *    thread (so in every thread started after it) and starts one thread that
 *    receives them with sigwait(): no code runs in signal-handler context.
 *    Call it first thing in main, before any startup work, so a SIGTERM
 *    during start-up ends the process cleanly.
 *  - The first SIGTERM/SIGINT sets the shutdown request and wakes waiters.
 *  - A repeat of that same signal (same kind) less than
 *    HALE_SIGNAL_REPEAT_WINDOW_MS (1 s) after it is the same request, not a
 *    second one: it calls `on_repeat` (to log) and is otherwise ignored.
 *    (A supervisor's SIGTERM to a process group reaches hale twice when a
 *    parent such as make forwards its own.)
 *  - A second signal, i.e. one of the other kind at any time, or the same
 *    kind once the window has passed, calls `on_signal` with count 2 (to
 *    log) and exits at once with status 1 (HALE_EXIT_FORCED).
 *  - SIGPIPE is ignored process-wide.
 *  - Exit codes (L3): 0 clean, 78 configuration error, 1 other fatal error,
 *    2 a command line hale does not understand (the shell's usage status).
 */
#ifndef HALE_LIFECYCLE_H
#define HALE_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** Exit status: clean shutdown. */
#define HALE_EXIT_OK 0
/** Exit status: a fatal error other than configuration. */
#define HALE_EXIT_FATAL 1
/** Exit status: a second signal ended the process at once. */
#define HALE_EXIT_FORCED 1
/** Exit status: a bad command line. */
#define HALE_EXIT_USAGE 2
/** A repeat of the same signal within this many ms is the same request. */
#define HALE_SIGNAL_REPEAT_WINDOW_MS 1000
#ifndef HALE_EXIT_CONFIG
/** Exit status: configuration error (sysexits EX_CONFIG). */
#define HALE_EXIT_CONFIG 78
#endif

/** Logging hooks of the signal thread. */
typedef struct hale_lifecycle_hooks {
    void (*on_signal)(int signo, int count, void *arg); /**< each counted signal, may be NULL */
    void (*on_repeat)(int signo, void *arg); /**< a repeat inside the window, may be NULL */
    void *arg; /**< handed to both */
} hale_lifecycle_hooks;

/** Blocks the signals and starts the signal thread (see above).
 * Returns 0, or -1 if the signal thread could not start. */
int hale_lifecycle_init(const hale_lifecycle_hooks *hooks);

/** True once SIGTERM/SIGINT came (or hale_request_shutdown). Thread-safe. */
bool hale_shutdown_requested(void);

/** Requests shutdown as if a signal came (used by tests and fatal paths). */
void hale_request_shutdown(void);

/** Sleeps up to ms; returns true early when shutdown is requested. */
bool hale_wait_shutdown(uint64_t ms);

/** Exponential backoff with full jitter: the delay before retry `attempt`
 * (0-based) is uniform in [base/2, min(max, base * 2^attempt)]. */
uint64_t hale_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms);

#pragma GCC visibility pop

#endif
