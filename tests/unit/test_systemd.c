/* systemd.h: NOTIFY_SOCKET parsing and sending, the watchdog's rule, and
 * the socket-activation naming rule on real sockets at fds 3 and 4
 * (R: R5). */
#define _GNU_SOURCE 1 /* mkdtemp */ // NOLINT(bugprone-reserved-identifier)
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "systemd.h"

/* A datagram socket bound at an abstract name; returns its fd. */
static int dgram_listener(const char *name) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(a.sun_path + 1, name, n);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)), 0);
    return fd;
}

/* Receives one datagram within ms into buf; returns its length or -1. */
static int recv_within(int fd, char *buf, size_t n, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1) return -1;
    ssize_t r = recv(fd, buf, n - 1, 0);
    if (r < 0) return -1;
    buf[r] = '\0';
    return (int)r;
}

static void test_notify_socket_forms(void **state) {
    (void)state;
    char err[256];
    assert_null(hale_sdnotify_new(NULL, err, sizeof err));
    assert_string_equal(err, "");
    char *rel[] = {"NOTIFY_SOCKET=run/notify", NULL};
    assert_null(hale_sdnotify_new(rel, err, sizeof err));
    assert_non_null(strstr(err, "NOTIFY_SOCKET"));
    char longer[200] = "NOTIFY_SOCKET=/";
    memset(longer + 15, 'x', 150);
    char *too_long[] = {longer, NULL};
    assert_null(hale_sdnotify_new(too_long, err, sizeof err));
    assert_non_null(strstr(err, "at most"));
    assert_int_equal(hale_sdnotify_send(NULL, "READY=1"), 0); /* no socket: nothing to do */
}

static void test_notify_abstract_and_path(void **state) {
    (void)state;
    char name[64], env[96], buf[256], err[256];
    snprintf(name, sizeof name, "hale-unit-%d", (int)getpid());
    int l = dgram_listener(name);
    snprintf(env, sizeof env, "NOTIFY_SOCKET=@%s", name);
    char *envp[] = {env, NULL};
    hale_sdnotify *n = hale_sdnotify_new(envp, err, sizeof err);
    assert_non_null(n);
    assert_int_equal(hale_sdnotify_send(n, "READY=1\nSTATUS=ready"), 0);
    assert_true(recv_within(l, buf, sizeof buf, 2000) > 0);
    assert_string_equal(buf, "READY=1\nSTATUS=ready");
    assert_int_equal(hale_sdnotify_watchdog_usec(n), 0);
    hale_sdnotify_free(n);
    close(l);

    char path[] = "/tmp/hale-unit-notify-XXXXXX";
    assert_non_null(mkdtemp(path));
    char sock[64], penv[96];
    snprintf(sock, sizeof sock, "%s/notify", path);
    int p = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    assert_int_equal(bind(p, (struct sockaddr *)&a, sizeof a), 0);
    snprintf(penv, sizeof penv, "NOTIFY_SOCKET=%s", sock);
    char *penvp[] = {penv, NULL};
    n = hale_sdnotify_new(penvp, err, sizeof err);
    assert_non_null(n);
    assert_int_equal(hale_sdnotify_send(n, "STOPPING=1"), 0);
    assert_true(recv_within(p, buf, sizeof buf, 2000) > 0);
    assert_string_equal(buf, "STOPPING=1");
    hale_sdnotify_free(n);
    close(p);
    unlink(sock);
    rmdir(path);
}

static bool live_answer;
static bool live(void *arg) { (void)arg; return live_answer; }

static void test_watchdog_rule(void **state) {
    (void)state;
    char name[64], env[96], pid[64], buf[64], err[256];
    snprintf(name, sizeof name, "hale-unit-wd-%d", (int)getpid());
    int l = dgram_listener(name);
    snprintf(env, sizeof env, "NOTIFY_SOCKET=@%s", name);
    char *other[] = {env, "WATCHDOG_USEC=20000", "WATCHDOG_PID=1", NULL};
    hale_sdnotify *n = hale_sdnotify_new(other, err, sizeof err);
    assert_int_equal(hale_sdnotify_watchdog_usec(n), 0); /* meant for process 1 */
    hale_sdnotify_free(n);
    char *garbage[] = {env, "WATCHDOG_USEC=20ms", NULL};
    n = hale_sdnotify_new(garbage, err, sizeof err);
    assert_int_equal(hale_sdnotify_watchdog_usec(n), 0);
    hale_sdnotify_free(n);

    snprintf(pid, sizeof pid, "WATCHDOG_PID=%d", (int)getpid());
    char *mine[] = {env, "WATCHDOG_USEC=20000", pid, NULL};
    n = hale_sdnotify_new(mine, err, sizeof err);
    assert_int_equal(hale_sdnotify_watchdog_usec(n), 20000);
    live_answer = false;
    assert_int_equal(hale_sdnotify_watchdog_start(n, live, NULL), 0);
    assert_int_equal(hale_sdnotify_watchdog_start(n, live, NULL), -1); /* one only */
    assert_int_equal(recv_within(l, buf, sizeof buf, 300), -1); /* not live: silence */
    hale_sdnotify_watchdog_stop(n);
    live_answer = true; /* written with the thread stopped */
    assert_int_equal(hale_sdnotify_watchdog_start(n, live, NULL), 0);
    assert_true(recv_within(l, buf, sizeof buf, 5000) > 0);
    assert_string_equal(buf, "WATCHDOG=1");
    hale_sdnotify_free(n);
    close(l);
}

/* Puts a new listening TCP socket (or fd `other` when >= 0) at fd `at`. */
static void place(int at, int other) {
    int fd = other;
    if (fd < 0) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(fd, 8), 0);
    }
    if (fd == at) return; /* it got the number already */
    assert_int_equal(dup2(fd, at), at);
    close(fd);
}

static int listen_with(const char *fds, const char *names, hale_sd_listeners *l, char *err, size_t n) {
    char pid[64], nfds[64], nm[128];
    snprintf(pid, sizeof pid, "LISTEN_PID=%d", (int)getpid());
    snprintf(nfds, sizeof nfds, "LISTEN_FDS=%s", fds);
    snprintf(nm, sizeof nm, "LISTEN_FDNAMES=%s", names ? names : "");
    char *envp[] = {pid, nfds, names ? nm : NULL, NULL};
    return hale_sd_listen(envp, l, err, n);
}

static void test_listen_rule(void **state) {
    (void)state;
    hale_sd_listeners l;
    char err[256];
    /* fds 3 and 4 belong to this test from here on */
    place(3, -1);
    place(4, -1);
    char *none[] = {NULL};
    assert_int_equal(hale_sd_listen(none, &l, err, sizeof err), 0);
    assert_int_equal(l.api_fd, -1);
    assert_int_equal(l.admin_fd, -1);
    char *other[] = {"LISTEN_PID=1", "LISTEN_FDS=2", NULL};
    assert_int_equal(hale_sd_listen(other, &l, err, sizeof err), 0);
    assert_int_equal(l.count, 0);

    assert_int_equal(listen_with("2", "admin:api", &l, err, sizeof err), 0);
    assert_int_equal(l.admin_fd, 3);
    assert_int_equal(l.api_fd, 4);
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(listen_with("2", NULL, &l, err, sizeof err), 0); /* unnamed: in order */
    assert_int_equal(l.api_fd, 3);
    assert_int_equal(l.admin_fd, 4);
    assert_int_equal(listen_with("2", "hale.socket:admin", &l, err, sizeof err), 0);
    assert_int_equal(l.api_fd, 3);
    assert_int_equal(l.admin_fd, 4);
    assert_int_equal(listen_with("1", "hale.socket", &l, err, sizeof err), 0);
    assert_int_equal(l.api_fd, 3);
    assert_int_equal(l.admin_fd, -1);

    assert_int_equal(listen_with("2", "api:api", &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "two sockets"));
    assert_int_equal(listen_with("3", NULL, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most 2"));
    assert_int_equal(listen_with("x", NULL, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "LISTEN_FDS"));

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    place(4, pfd[0]);
    close(pfd[1]);
    assert_int_equal(listen_with("2", NULL, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a socket"));
    place(4, socket(AF_INET, SOCK_STREAM, 0)); /* a socket, not listening */
    assert_int_equal(listen_with("2", NULL, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a listening stream socket"));
    close(3);
    close(4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_socket_forms),
        cmocka_unit_test(test_notify_abstract_and_path),
        cmocka_unit_test(test_watchdog_rule),
        cmocka_unit_test(test_listen_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
