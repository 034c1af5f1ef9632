/* health_http: the probe endpoints of health.h. Kept apart from the state
 * machine so the latter has no knowledge of HTTP beyond the watchdog. */
#include "health.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define JSON "application/json"

/* Static bodies: probes allocate nothing. */
static const char OK_LIVE[] = "{\"status\":\"live\"}\n";
static const char BAD_LIVE[] = "{\"status\":\"stalled\",\"detail\":\"a worker is stuck in a handler\"}\n";
static const char OK_START[] = "{\"status\":\"started\"}\n";
static const char BAD_START[] = "{\"status\":\"starting\"}\n";

static void h_live(hale_req *r, void *arg) {
    if (hale_health_live(arg)) hale_resp_static(r, 200, JSON, OK_LIVE, sizeof OK_LIVE - 1);
    else hale_resp_static(r, 503, JSON, BAD_LIVE, sizeof BAD_LIVE - 1);
}

static void h_ready(hale_req *r, void *arg) {
    static const char *const bodies[] = {
        "{\"status\":\"starting\"}\n", "{\"status\":\"ready\"}\n", "{\"status\":\"not_ready\"}\n",
        "{\"status\":\"draining\"}\n", "{\"status\":\"stopped\"}\n",
    };
    hale_health *h = arg;
    hale_avail a = hale_health_state(h);
    bool ok = hale_health_ready(h);
    const char *b = ok ? bodies[HALE_AVAIL_READY] : bodies[a == HALE_AVAIL_READY ? HALE_AVAIL_NOT_READY : a];
    hale_resp_static(r, ok ? 200 : 503, JSON, b, strlen(b));
    if (!ok) hale_resp_header(r, "Retry-After", "1");
}

static void h_startup(hale_req *r, void *arg) {
    hale_avail a = hale_health_state(arg);
    if (a != HALE_AVAIL_STARTING) hale_resp_static(r, 200, JSON, OK_START, sizeof OK_START - 1);
    else hale_resp_static(r, 503, JSON, BAD_START, sizeof BAD_START - 1);
}

static void h_detail(hale_req *r, void *arg) {
    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_json(arg, &b);
    hale_resp_take(r, hale_health_ready(arg) ? 200 : 503, JSON, b.data, b.len);
}

static void h_status(hale_req *r, void *arg) {
    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_status_json(arg, &b);
    hale_resp_take(r, hale_health_ready(arg) ? 200 : 503, JSON, b.data, b.len);
}

static int register_routes(hale_health *h, hale_router *r, bool detail, char *err, size_t errlen) {
    const hale_route routes[] = {
        {.method = "GET", .tmpl = "/health", .fn = detail ? h_detail : h_status, .arg = h,
         .flags = HALE_ROUTE_NO_SHED},
        {.method = "GET", .tmpl = "/health/liveness", .fn = h_live, .arg = h, .flags = HALE_ROUTE_NO_SHED},
        {.method = "GET", .tmpl = "/health/readiness", .fn = h_ready, .arg = h, .flags = HALE_ROUTE_NO_SHED},
        {.method = "GET", .tmpl = "/health/startup", .fn = h_startup, .arg = h, .flags = HALE_ROUTE_NO_SHED},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (hale_router_add(r, &routes[i], err, errlen) != 0) return -1;
    return 0;
}

int hale_health_register(hale_health *h, hale_router *r, char *err, size_t errlen) {
    return register_routes(h, r, true, err, errlen);
}

int hale_health_register_public(hale_health *h, hale_router *r, char *err, size_t errlen) {
    return register_routes(h, r, false, err, errlen);
}
