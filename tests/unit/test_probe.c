/* Tests for src/runtime/health/probe.c, the client of `hale --health-check`
 * (R: H5): it sends one GET and reads the status, and every failure
 * (refused, silent peer, malformed answer, bad address, oversized path) is
 * -1 with a reason within the deadline, never a hang. The peer is a real
 * loopback socket served by a thread of this test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"
#include "util.h"

typedef struct peer {
    int lfd;
    unsigned port;
    const char *answer;   /* sent after the request head; NULL = say nothing */
    unsigned hold_ms;     /* keep the connection open this long before closing */
    char request[1024];   /* what the probe sent */
    pthread_t t;
} peer;

static void *peer_main(void *arg) {
    peer *p = arg;
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    size_t got = 0;
    while (got < sizeof p->request - 1 && !strstr(p->request, "\r\n\r\n")) {
        ssize_t n = recv(fd, p->request + got, sizeof p->request - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        p->request[got] = '\0';
    }
    if (p->answer) {
        ssize_t n = send(fd, p->answer, strlen(p->answer), MSG_NOSIGNAL);
        (void)n;
    }
    if (p->hold_ms) usleep(p->hold_ms * 1000);
    close(fd);
    return NULL;
}

static void peer_start(peer *p, const char *answer, unsigned hold_ms) {
    memset(p, 0, sizeof *p);
    p->answer = answer;
    p->hold_ms = hold_ms;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 4), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &l), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->t, NULL, peer_main, p), 0);
}

static void peer_end(peer *p) {
    pthread_join(p->t, NULL);
    close(p->lfd);
}

/* R: H5 - the status of the answer comes back; the request is one GET of
 * the path with Connection: close; 0.0.0.0 is probed on 127.0.0.1 */
static void test_status_read(void **st) {
    (void)st;
    static const struct { const char *answer; int status; } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200},
        {"HTTP/1.1 503 Service Unavailable\r\n\r\n", 503},
        {"HTTP/1.0 204 No Content\r\n\r\n", 204},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        peer p;
        peer_start(&p, cases[i].answer, 0);
        char err[128] = "";
        int s = hale_probe_get(i == 0 ? "0.0.0.0" : "127.0.0.1", p.port, "/health/readiness",
                               5000, err, sizeof err);
        peer_end(&p);
        assert_int_equal(s, cases[i].status);
        assert_non_null(strstr(p.request, "GET /health/readiness HTTP/1.1\r\n"));
        assert_non_null(strstr(p.request, "\r\nHost: 127.0.0.1\r\n"));
        assert_non_null(strstr(p.request, "\r\nConnection: close\r\n"));
    }
}

/* R: H5 - anything that is not "HTTP/1.x NNN" is a malformed answer */
static void test_malformed_answers(void **st) {
    (void)st;
    static const char *const bad[] = {
        "SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 2", "HTTP/1.1 600 Nope\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 20x OK\r\n\r\n", "HTTP/1.1_200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        peer p;
        peer_start(&p, bad[i], 0);
        char err[128] = "";
        int s = hale_probe_get("", p.port, "/", 5000, err, sizeof err); /* "" = loopback */
        peer_end(&p);
        assert_int_equal(s, -1);
        assert_string_equal(err, "malformed answer");
    }
}

/* R: H5 - a peer that accepts and stays silent costs the timeout, no more */
static void test_silent_peer_times_out(void **st) {
    (void)st;
    peer p;
    peer_start(&p, NULL, 1500);
    char err[128] = "";
    uint64_t t0 = hale_now_ns();
    int s = hale_probe_get("127.0.0.1", p.port, "/health/readiness", 200, err, sizeof err);
    uint64_t ms = (hale_now_ns() - t0) / 1000000u;
    peer_end(&p);
    assert_int_equal(s, -1);
    assert_string_equal(err, "timed out waiting for an answer");
    assert_true(ms < 1500); /* returned before the peer let go (liveness bound) */
}

/* R: H5 - refused, bad address and an oversized path are reasons, not hangs */
static void test_failures(void **st) {
    (void)st;
    /* a port nobody listens on: bind one, then close it */
    peer p;
    memset(&p, 0, sizeof p);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    char err[128] = "";
    assert_int_equal(hale_probe_get("127.0.0.1", ntohs(a.sin_port), "/", 2000, err, sizeof err), -1);
    assert_string_equal(err, "Connection refused");

    assert_int_equal(hale_probe_get("localhost", 80, "/", 2000, err, sizeof err), -1);
    assert_string_equal(err, "bad address localhost"); /* numeric hosts only: no DNS */

    char path[600];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    peer_start(&p, "HTTP/1.1 200 OK\r\n\r\n", 0);
    assert_int_equal(hale_probe_get("127.0.0.1", p.port, path, 2000, err, sizeof err), -1);
    assert_string_equal(err, "path too long");
    peer_end(&p); /* the probe connected, sent nothing and closed */
    assert_string_equal(p.request, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_read),
        cmocka_unit_test(test_malformed_answers),
        cmocka_unit_test(test_silent_peer_times_out),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
