/* probe: see probe.h. */
#include "probe.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int remaining_ms(uint64_t deadline) {
    uint64_t now = hale_now_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

static int wait_fd(int fd, short ev, uint64_t deadline) {
    struct pollfd p = {.fd = fd, .events = ev};
    for (;;) {
        int ms = remaining_ms(deadline);
        if (ms == 0) return 0;
        int n = poll(&p, 1, ms);
        if (n < 0 && errno == EINTR) continue;
        return n;
    }
}

int hale_probe_get(const char *host, unsigned port, const char *path, unsigned timeout_ms,
                   char *err, size_t errlen) {
    if (!strcmp(host, "0.0.0.0") || !*host) host = "127.0.0.1";
    else if (!strcmp(host, "::")) host = "::1";
    uint64_t deadline = hale_now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return hale_err(err, errlen, "bad address %s", host);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { freeaddrinfo(ai); return hale_err(err, errlen, "socket: %s", strerror(errno)); }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS) goto fail_errno;
    if (wait_fd(fd, POLLOUT, deadline) <= 0) { close(fd); return hale_err(err, errlen, "timed out connecting"); }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) { errno = soerr; goto fail_errno; }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                     "User-Agent: hale-health-check\r\n\r\n", path, host);
    if (n < 0 || (size_t)n >= sizeof req) { close(fd); return hale_err(err, errlen, "path too long"); }
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) goto fail_errno;
    char buf[64];
    size_t got = 0;
    while (got < 12) {
        if (wait_fd(fd, POLLIN, deadline) <= 0) { close(fd); return hale_err(err, errlen, "timed out waiting for an answer"); }
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    /* "HTTP/1.x NNN" */
    if (got < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
        buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
        buf[11] < '0' || buf[11] > '9')
        return hale_err(err, errlen, "malformed answer");
    return (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
fail_errno:
    hale_err(err, errlen, "%s", strerror(errno));
    close(fd);
    return -1;
}
