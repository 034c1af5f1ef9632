/* systemd: hale's side of two systemd protocols, written by hand (no
 * libsystemd): service notification (sd_notify(3)) and socket activation
 * (sd_listen_fds(3)). Neither needs systemd as PID 1: any parent that sets
 * the variables (systemd-socket-activate, a test) is served the same way.
 * Like the configuration, both read a NULL-terminated "NAME=VALUE" envp
 * list handed to them, never the process environment.
 *
 * Promises (notification, sd_notify.c):
 *  - hale_sdnotify_new() returns NULL when NOTIFY_SOCKET is unset (every
 *    hale_sdnotify_* function takes NULL and then does nothing), or NULL
 *    with err set when it is not an AF_UNIX path ("/run/...") or abstract
 *    address ("@name") that fits a sockaddr_un.
 *  - hale_sdnotify_send() sends one datagram ("READY=1\nSTATUS=ready"),
 *    never blocks (MSG_DONTWAIT) and never raises SIGPIPE. Thread-safe.
 *  - The watchdog: when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is
 *    this process), hale_sdnotify_watchdog_start() runs one thread that
 *    every WATCHDOG_USEC / 2 asks live(arg) and sends WATCHDOG=1 only when
 *    it answers true: a stuck worker stops the pings, and systemd's
 *    WatchdogSec= restarts the process. hale_sdnotify_free() stops it.
 *    It is a thread of its own ("hale-watchdog"), not a task of the
 *    runtime's timer (timer.h), on purpose: its deadline is systemd's, and
 *    a missed ping kills the process, so it must not queue behind a health
 *    check that may block on a dependency for up to its timeout. It shares
 *    the timer's monotonic timed wait (hale_cond_wait_until, util.h).
 *
 * Promises (socket activation, sd_listen.c):
 *  - hale_sd_listen() reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. When
 *    LISTEN_PID is unset or another process, nothing was passed: both fds
 *    are -1, return 0.
 *  - The rule, for the fds 3 .. 3+LISTEN_FDS-1: one named "api" serves the
 *    public API (the main listener), one named "admin" the admin listener
 *    (/metrics, probes). Fds with any other name (systemd names them after
 *    the socket unit, e.g. "hale.socket", when FileDescriptorName= is not
 *    set; systemd-socket-activate without --fdname leaves them unnamed)
 *    fill the roles still open in order: the API first, then admin.
 *  - Each fd must be a listening stream socket. More than two fds, two for
 *    the same role, or an fd that is not a listening stream socket is an
 *    error (-1 with err): nothing is guessed. The fds get FD_CLOEXEC.
 */
#ifndef HALE_SYSTEMD_H
#define HALE_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hale_sdnotify hale_sdnotify;

/* NULL when NOTIFY_SOCKET is unset (err is then ""), or NULL with err when
 * it is malformed or no socket could be made. The caller frees it. */
hale_sdnotify *hale_sdnotify_new(char *const *envp, char *err, size_t errlen);

/* Sends msg (newline-separated assignments). Returns 0, or -1 (errno set)
 * when the datagram could not be sent; 0 with n == NULL. */
int hale_sdnotify_send(hale_sdnotify *n, const char *msg);

/* WATCHDOG_USEC when it applies to this process, else 0. */
uint64_t hale_sdnotify_watchdog_usec(const hale_sdnotify *n);

/* Starts the watchdog thread when hale_sdnotify_watchdog_usec() > 0; live
 * is called on that thread. Returns 0 (also when there is no watchdog), or
 * -1 when the thread could not start or a watchdog already runs. */
int hale_sdnotify_watchdog_start(hale_sdnotify *n, bool (*live)(void *arg), void *arg);

/* Stops the watchdog thread (joins it): live() is not called after this
 * returns. Nothing to do without one. */
void hale_sdnotify_watchdog_stop(hale_sdnotify *n);

/* Stops the watchdog, closes the socket, frees n. NULL is fine. */
void hale_sdnotify_free(hale_sdnotify *n);

#define HALE_SD_LISTEN_FDS_START 3

typedef struct hale_sd_listeners {
    int api_fd;    /* inherited socket for the main listener, or -1 */
    int admin_fd;  /* inherited socket for the admin listener, or -1 */
    unsigned count; /* LISTEN_FDS as passed (0 without activation) */
} hale_sd_listeners;

/* Fills out by the rule above. Returns 0, or -1 with err. */
int hale_sd_listen(char *const *envp, hale_sd_listeners *out, char *err, size_t errlen);

#endif
