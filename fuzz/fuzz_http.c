/* libFuzzer target: raw bytes through hale's whole request path, in
 * process. The key-value routes (SQLite in a temporary directory), health
 * routes and framing rules are served by a real hale_http_server; each input
 * is written into one end of a socketpair whose other end the server adopts,
 * and the answer is read until the server closes or a short deadline.
 * Crashes, sanitizer reports and hangs are the findings. R: Y2 Y1 Y9 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "http.h"
#include "kv_api.h"
#include "router.h"
#include "service.h"
#include "store_sqlite.h"

static hale_http_server *srv;

static void setup(void) {
    static char dir[] = "/tmp/hale-fuzz-http-XXXXXX";
    if (!mkdtemp(dir)) abort();
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/hale.db", dir);
    static kv_api api;
    kv_store *st = kv_sqlite_open(path, err, sizeof err);
    if (!st) { fprintf(stderr, "%s\n", err); abort(); }
    api.store = st;
    hale_router *r = hale_router_new();
    hale_health *h = hale_health_new(NULL, NULL);
    if (kv_api_register(&api, r, err, sizeof err) || hale_health_register(h, r, err, sizeof err)) abort();
    hale_health_set_started(h);
    hale_service_opts so;
    hale_service_opts_get(NULL, &so);
    hale_http_opts o = so.main;
    o.host = "127.0.0.1";
    o.port = 0;
    o.workers = 1;
    o.max_body_bytes = 4096;
    o.idle_timeout_ms = 1000;
    srv = hale_http_start(&o, r, NULL, err, sizeof err);
    if (!srv) { fprintf(stderr, "%s\n", err); abort(); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!srv) setup();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    char err[128];
    if (hale_http_adopt_fd(srv, sv[0], err, sizeof err) != 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR);
    char buf[8192];
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    for (int rounds = 0; rounds < 50; rounds++) {
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = recv(sv[1], buf, sizeof buf, 0);
        if (n <= 0) break;
    }
    close(sv[1]);
    return 0;
}
