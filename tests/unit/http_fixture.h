/* http_fixture: a real hale HTTP server in the test process (loopback,
 * ephemeral port) and a blocking client that sends one request with
 * `Connection: close` and reads the whole answer. Shared by the unit tests
 * of the modules that serve routes (health, observe, auth, kv_api,
 * backends). Include after cmocka.h. */
#ifndef HALE_HTTP_FIXTURE_H
#define HALE_HTTP_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http.h"
#include "router.h"
#include "service.h"

static inline hale_http_server *fx_start(const hale_router *r, const hale_http_hooks *hooks) {
    hale_service_opts so;
    hale_service_opts_get(NULL, &so); /* the built-in defaults */
    hale_http_opts o = so.main;
    o.host = "127.0.0.1";
    o.port = 0;
    o.workers = 2;
    char err[256] = "";
    hale_http_server *s = hale_http_start(&o, r, hooks, err, sizeof err);
    if (!s) fprintf(stderr, "fx_start: %s\n", err);
    assert_non_null(s);
    return s;
}

typedef struct fx_resp {
    int status;
    char raw[1 << 17];
    size_t len;
    const char *body;     /* into raw */
    size_t body_len;
    char hval[512];       /* fx_header's answer */
} fx_resp;

/* Sends raw (a whole request) and reads until the server closes. Returns
 * the status, 0 when no status line came. */
static inline int fx_raw(unsigned port, const char *raw, size_t n, fx_resp *out) {
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10}; /* liveness only */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t sent = 0;
    while (sent < n) {
        ssize_t k = send(fd, raw + sent, n - sent, MSG_NOSIGNAL);
        assert_true(k > 0);
        sent += (size_t)k;
    }
    ssize_t k;
    while (out->len < sizeof out->raw - 1 &&
           (k = recv(fd, out->raw + out->len, sizeof out->raw - 1 - out->len, 0)) > 0)
        out->len += (size_t)k;
    out->raw[out->len] = '\0';
    close(fd);
    if (out->len < 12 || strncmp(out->raw, "HTTP/1.1 ", 9) != 0) return 0;
    out->status = atoi(out->raw + 9);
    const char *e = strstr(out->raw, "\r\n\r\n");
    if (e) {
        out->body = e + 4;
        out->body_len = out->len - (size_t)(out->body - out->raw);
    }
    return out->status;
}

/* One request: method, target, extra header lines ("Name: v\r\n"..., may be
 * NULL) and a body (may be NULL). */
static inline int fx_req(unsigned port, const char *method, const char *target, const char *headers,
                  const char *body, fx_resp *out) {
    size_t bl = body ? strlen(body) : 0;
    size_t cap = strlen(target) + (headers ? strlen(headers) : 0) + bl + 256;
    char *req = malloc(cap);
    assert_non_null(req);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s", method,
                     target, headers ? headers : "");
    if (body) n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", bl);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) {
        memcpy(req + n, body, bl);
        n += (int)bl;
    }
    int st = fx_raw(port, req, (size_t)n, out);
    free(req);
    return st;
}

/* The value of a response header (case-insensitive name), or NULL. */
static inline const char *fx_header(fx_resp *r, const char *name) {
    size_t nl = strlen(name);
    const char *end = r->body ? r->body : r->raw + r->len;
    for (const char *p = strstr(r->raw, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            const char *ve = strstr(v, "\r\n");
            size_t vl = ve ? (size_t)(ve - v) : strlen(v);
            if (vl >= sizeof r->hval) vl = sizeof r->hval - 1;
            memcpy(r->hval, v, vl);
            r->hval[vl] = '\0';
            return r->hval;
        }
    }
    return NULL;
}

/* Does the body contain s? */
static inline int fx_body_has(const fx_resp *r, const char *s) { return r->body && strstr(r->body, s) != NULL; }

#endif
