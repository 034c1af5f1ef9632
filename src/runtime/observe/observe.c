/* observe: see observe.h. */
#include "observe.h"
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hale_observe {
    hale_metrics *reg;
    bool access_log;
    hale_metric *requests, *duration, *rejected;
    const hale_http_server *srv;
};

static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};

static const char *method_label(const char *m) {
    for (size_t i = 0; i < sizeof METHODS / sizeof *METHODS; i++)
        if (strcmp(m, METHODS[i]) == 0) return METHODS[i];
    return "other";
}

static double in_flight(void *arg) {
    hale_observe *o = arg;
    return o->srv ? (double)hale_http_in_flight(o->srv) : 0.0;
}

hale_observe *hale_observe_new(hale_metrics *reg, bool access_log) {
    hale_observe *o = xcalloc(1, sizeof *o);
    o->reg = reg;
    o->access_log = access_log;
    static const char *const l3[] = {"method", "route", "status"};
    static const char *const l2[] = {"method", "route"};
    static const char *const lr[] = {"reason"};
    o->requests = hale_metrics_counter(reg, "http_requests_total",
                                       "HTTP requests answered, by method, route template and status.",
                                       3, l3);
    o->duration = hale_metrics_histogram(reg, "http_request_duration_seconds",
                                         "Time from the request line to the end of the response.",
                                         2, l2, 0, NULL);
    o->rejected = hale_metrics_counter(reg, "hale_http_rejected_total",
                                       "Requests refused by framing rules or limits, by reason.", 1, lr);
    hale_metrics_gauge_fn(reg, "http_requests_in_flight", "Requests in progress on the main listener.",
                          in_flight, o);
    return o;
}

void hale_observe_free(hale_observe *o) { free(o); }

void hale_observe_track_server(hale_observe *o, const hale_http_server *s) { o->srv = s; }

static bool put_bytes(char *out, size_t *o, size_t cap, const char *s, size_t n) {
    if (n >= cap - *o) return false;
    memcpy(out + *o, s, n);
    *o += n;
    return true;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Is this raw query parameter name one the logger treats as a secret? The
 * name is judged as the application will see it: percent-decoded ('+' is
 * a space), case-folded, with '-', '.' and ' ' read as '_', so that
 * "api%5Fkey", "API-Key" and "Api.Key" are all api_key. A name that does
 * not decode, decodes to a control byte, or is too long to judge is
 * assumed secret. */
static bool name_sensitive(const char *p, size_t n) {
    char name[64];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int h = i + 2 < n ? hexval((unsigned char)p[i + 1]) : -1;
            int l = i + 2 < n ? hexval((unsigned char)p[i + 2]) : -1;
            if (h < 0 || l < 0) return true;
            c = h * 16 + l;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c < 0x20 || c == 0x7f) return true;
        if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        if (c == '-' || c == '.' || c == ' ') c = '_';
        if (o + 1 >= sizeof name) return true;
        name[o++] = (char)c;
    }
    name[o] = '\0';
    return hale_log_key_sensitive(name);
}

/* Y7: the access log keeps every query parameter's name but not the value
 * of one whose name the logger treats as a secret (token, secret, password,
 * api_key, ...; see name_sensitive): "/x?access_token=[redacted]&page=2".
 * A query that does not fit out loses all its values: "/x?[redacted]". No
 * allocation. */
static const char *loggable_path(const char *path, char *out, size_t cap) {
    const char *q = strchr(path, '?');
    if (!q) return path;
    size_t o = 0;
    if (!put_bytes(out, &o, cap, path, (size_t)(q - path) + 1)) return "[path too long]";
    size_t query_start = o;
    for (const char *p = q + 1; *p;) {
        const char *end = p + strcspn(p, "&;");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        bool secret = eq && name_sensitive(p, (size_t)(eq - p));
        bool ok = secret ? put_bytes(out, &o, cap, p, (size_t)(eq - p) + 1) &&
                               put_bytes(out, &o, cap, "[redacted]", 10)
                         : put_bytes(out, &o, cap, p, (size_t)(end - p));
        if (ok && *end) ok = put_bytes(out, &o, cap, end, 1);
        if (!ok) {
            o = query_start;
            put_bytes(out, &o, cap, "[redacted]", 10);
            break;
        }
        p = *end ? end + 1 : end;
    }
    out[o] = '\0';
    return out;
}

void hale_observe_on_complete(const hale_http_event *ev, void *arg) {
    hale_observe *o = arg;
    const char *m = method_label(ev->method);
    char status[8];
    int sv = ev->status >= 0 && ev->status < 1000 ? ev->status : 0, k = 0;
    if (sv >= 100) status[k++] = (char)('0' + sv / 100);
    if (sv >= 10) status[k++] = (char)('0' + sv / 10 % 10);
    status[k++] = (char)('0' + sv % 10);
    status[k] = '\0';
    if (strcmp(ev->server, "main") == 0) {
        const char *lv[] = {m, ev->route, status};
        hale_counter_inc(hale_counter_with(o->requests, lv));
        const char *hv[] = {m, ev->route};
        hale_histogram_observe(hale_histogram_with(o->duration, hv), (double)ev->duration_ns / 1e9);
    }
    if (o->access_log && hale_log_enabled(HALE_LOG_INFO, "access")) {
        char pbuf[HALE_LOG_LINE_MAX / 2];
        HALE_LOG(HALE_LOG_INFO, "access", "request",
                 HALE_F_STR("method", ev->method), HALE_F_STR("route", ev->route),
                 HALE_F_STR("path", loggable_path(ev->path, pbuf, sizeof pbuf)),
                 HALE_F_INT("status", ev->status),
                 HALE_F_UINT("bytes_in", ev->bytes_in), HALE_F_UINT("bytes_out", ev->bytes_out),
                 HALE_F_DBL("duration_ms", (double)ev->duration_ns / 1e6),
                 HALE_F_STR("remote", ev->remote), HALE_F_STR("request_id", ev->request_id),
                 HALE_F_STR("trace_id", ev->trace_id[0] ? ev->trace_id : NULL),
                 HALE_F_STR("listener", ev->server),
                 HALE_F_STR("reject", ev->reject_reason));
    }
}

void hale_observe_on_reject(const char *server, const char *reason, void *arg) {
    hale_observe *o = arg;
    const char *lv[] = {reason};
    hale_counter_inc(hale_counter_with(o->rejected, lv));
    if (hale_log_enabled(HALE_LOG_DEBUG, "http"))
        HALE_LOG(HALE_LOG_DEBUG, "http", "request refused", HALE_F_STR("listener", server),
                 HALE_F_STR("reason", reason));
}

static void h_metrics(hale_req *r, void *arg) {
    hale_observe *o = arg;
    hale_buf b;
    hale_buf_init(&b);
    hale_metrics_render(o->reg, &b);
    hale_resp_take(r, 200, HALE_METRICS_CONTENT_TYPE, b.data, b.len);
}

int hale_observe_register_metrics(hale_observe *o, hale_router *r, char *err, size_t errlen) {
    hale_route rt = {.method = "GET", .tmpl = "/metrics", .fn = h_metrics, .arg = o,
                     .flags = HALE_ROUTE_NO_SHED};
    return hale_router_add(r, &rt, err, errlen);
}
