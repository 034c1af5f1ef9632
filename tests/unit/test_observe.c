/* Tests for src/runtime/observe/observe.c: the HTTP metrics with bounded labels
 * (templates, "other" for unknown methods, only the main listener counted,
 * R: O3), the rejection counter (R: E5, O3), one access-log line per
 * request (R: O2) whose query values under secret names are redacted
 * (R: Y7), and GET /metrics over a real in-process server (R: O3). */
#define _GNU_SOURCE 1
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <sys/mman.h>

#include "http_fixture.h"
#include "log.h"
#include "metrics.h"
#include "observe.h"

static int cap_fd = -1;

static void capture_begin(void) {
    cap_fd = memfd_create("log", 0);
    assert_true(cap_fd >= 0);
    hale_log_set_fd(cap_fd);
}

/* Everything logged since capture_begin; caller frees. */
static char *capture_end(void) {
    hale_log_set_fd(1);
    off_t n = lseek(cap_fd, 0, SEEK_END);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(pread(cap_fd, buf, (size_t)n, 0), n);
    buf[n] = '\0';
    close(cap_fd);
    return buf;
}

static char *render(hale_metrics *reg) {
    hale_buf b;
    hale_buf_init(&b);
    hale_metrics_render(reg, &b);
    return b.data;
}

static hale_http_event event(const char *server, const char *method, const char *route,
                             const char *path, int status) {
    hale_http_event ev = {.server = server, .method = method, .route = route, .path = path,
                          .status = status, .bytes_in = 3, .bytes_out = 42,
                          .duration_ns = 1500000, .remote = "127.0.0.1", .request_id = "rid-1",
                          .trace_id = "", .reject_reason = NULL};
    return ev;
}

/* R: O3 - counted by method, template and status; methods outside the
 * known set are "other"; the admin listener is not counted; odd statuses
 * keep a bounded label */
static void test_request_metrics(void **st) {
    (void)st;
    hale_metrics *reg = hale_metrics_new();
    hale_observe *o = hale_observe_new(reg, false);
    hale_http_event ev = event("main", "GET", "/v1/kv/{key}", "/v1/kv/a", 200);
    hale_observe_on_complete(&ev, o);
    hale_observe_on_complete(&ev, o);
    ev = event("main", "BREW", "unmatched", "/coffee", 501);
    hale_observe_on_complete(&ev, o);
    ev = event("main", "PUT", "/v1/kv/{key}", "/v1/kv/a", 0); /* died before a response */
    hale_observe_on_complete(&ev, o);
    ev = event("main", "GET", "unmatched", "/x", 5000); /* out of range: 0 */
    hale_observe_on_complete(&ev, o);
    ev = event("main", "DELETE", "/v1/kv/{key}", "/v1/kv/a", 42);
    hale_observe_on_complete(&ev, o);
    ev = event("admin", "GET", "/metrics", "/metrics", 200);
    hale_observe_on_complete(&ev, o);
    char *m = render(reg);
    assert_non_null(strstr(m, "http_requests_total{method=\"GET\",route=\"/v1/kv/{key}\",status=\"200\"} 2\n"));
    assert_non_null(strstr(m, "http_requests_total{method=\"other\",route=\"unmatched\",status=\"501\"} 1\n"));
    assert_non_null(strstr(m, "http_requests_total{method=\"PUT\",route=\"/v1/kv/{key}\",status=\"0\"} 1\n"));
    assert_non_null(strstr(m, "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"0\"} 1\n"));
    assert_non_null(strstr(m, "http_requests_total{method=\"DELETE\",route=\"/v1/kv/{key}\",status=\"42\"} 1\n"));
    assert_null(strstr(m, "BREW"));
    assert_null(strstr(m, "route=\"/metrics\"")); /* admin: not counted */
    assert_non_null(strstr(m, "http_request_duration_seconds_count{method=\"GET\",route=\"/v1/kv/{key}\"} 2\n"));
    assert_non_null(strstr(m, "http_requests_in_flight 0\n")); /* no server tracked yet */
    free(m);
    hale_observe_free(o);
    hale_metrics_free(reg);
}

/* R: E5, O3 - each refusal is counted by its reason */
static void test_reject_counter(void **st) {
    (void)st;
    hale_metrics *reg = hale_metrics_new();
    hale_observe *o = hale_observe_new(reg, false);
    assert_int_equal(hale_log_init("debug", "json", NULL, 0), 0);
    capture_begin();
    hale_observe_on_reject("main", "duplicate_content_length", o);
    hale_observe_on_reject("main", "duplicate_content_length", o);
    hale_observe_on_reject("main", "header_too_large", o);
    char *log = capture_end();
    assert_non_null(strstr(log, "\"msg\":\"request refused\""));
    assert_non_null(strstr(log, "\"reason\":\"header_too_large\""));
    free(log);
    assert_int_equal(hale_log_init("info", "json", NULL, 0), 0);
    char *m = render(reg);
    assert_non_null(strstr(m, "hale_http_rejected_total{reason=\"duplicate_content_length\"} 2\n"));
    assert_non_null(strstr(m, "hale_http_rejected_total{reason=\"header_too_large\"} 1\n"));
    free(m);
    hale_observe_free(o);
    hale_metrics_free(reg);
}

/* the access line for one path, with the access log on */
static char *access_line(hale_observe *o, const char *path) {
    capture_begin();
    hale_http_event ev = event("main", "GET", "/v1/kv", path, 200);
    hale_observe_on_complete(&ev, o);
    return capture_end();
}

/* R: O2, Y7 - one JSON line per request with its fields; the value of a
 * query parameter whose decoded name is a secret is redacted, its name and
 * the other parameters are kept; a query that does not fit loses all values */
static void test_access_log_and_redaction(void **st) {
    (void)st;
    assert_int_equal(hale_log_init("info", "json", NULL, 0), 0);
    hale_metrics *reg = hale_metrics_new();
    hale_observe *o = hale_observe_new(reg, true);

    capture_begin();
    hale_http_event ev = event("main", "GET", "/v1/kv/{key}", "/v1/kv/a", 200);
    ev.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    ev.reject_reason = "none";
    hale_observe_on_complete(&ev, o);
    char *log = capture_end();
    assert_non_null(strstr(log, "\"target\":\"access\""));
    assert_non_null(strstr(log, "\"method\":\"GET\",\"route\":\"/v1/kv/{key}\",\"path\":\"/v1/kv/a\",\"status\":200"));
    assert_non_null(strstr(log, "\"bytes_in\":3,\"bytes_out\":42"));
    assert_non_null(strstr(log, "\"duration_ms\":1.5"));
    assert_non_null(strstr(log, "\"request_id\":\"rid-1\""));
    assert_non_null(strstr(log, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""));
    assert_non_null(strstr(log, "\"listener\":\"main\""));
    assert_int_equal(strchr(log, '\n') - log + 1, (long)strlen(log)); /* one line */
    free(log);

    static const struct { const char *path, *want; } cases[] = {
        {"/v1/kv?prefix=a&limit=2", "\"path\":\"/v1/kv?prefix=a&limit=2\""},
        {"/v1/kv?access_token=s3cr3t&page=2", "\"path\":\"/v1/kv?access_token=[redacted]&page=2\""},
        {"/v1/kv?api%5Fkey=s3cr3t", "\"path\":\"/v1/kv?api%5Fkey=[redacted]\""},
        {"/v1/kv?API-Key=s3cr3t;x=1", "\"path\":\"/v1/kv?API-Key=[redacted];x=1\""},
        {"/v1/kv?Private+Key=s3cr3t", "\"path\":\"/v1/kv?Private+Key=[redacted]\""},
        {"/v1/kv?bad%zz=s3cr3t", "\"path\":\"/v1/kv?bad%zz=[redacted]\""},   /* undecodable name */
        {"/v1/kv?x%0a=s3cr3t", "\"path\":\"/v1/kv?x%0a=[redacted]\""},       /* control byte */
        {"/v1/kv?flag&token=s3cr3t", "\"path\":\"/v1/kv?flag&token=[redacted]\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        log = access_line(o, cases[i].path);
        if (!strstr(log, cases[i].want)) fail_msg("%s: got %s", cases[i].path, log);
        assert_null(strstr(log, "s3cr3t"));
        free(log);
    }
    /* a parameter name too long to judge is taken for a secret */
    char path[300] = "/v1/kv?";
    memset(path + 7, 'n', 80);
    strcpy(path + 87, "=s3cr3t");
    log = access_line(o, path);
    assert_null(strstr(log, "s3cr3t"));
    assert_non_null(strstr(log, "=[redacted]"));
    free(log);
    /* a query that does not fit the line: all values go */
    size_t big = HALE_LOG_LINE_MAX;
    char *huge = malloc(big + 64);
    strcpy(huge, "/v1/kv?page=");
    memset(huge + 12, 'v', big);
    strcpy(huge + 12 + big, "&token=s3cr3t");
    log = access_line(o, huge);
    assert_non_null(strstr(log, "\"path\":\"/v1/kv?[redacted]\""));
    free(log);
    /* a path that alone does not fit */
    memset(huge, 'p', big + 20);
    huge[0] = '/';
    strcpy(huge + big + 20, "?a=b");
    log = access_line(o, huge);
    assert_non_null(strstr(log, "\"path\":\"[path too long]\""));
    free(log);
    free(huge);

    /* the access target can be turned off on its own */
    assert_int_equal(hale_log_init("info,access=warn", "json", NULL, 0), 0);
    log = access_line(o, "/v1/kv");
    assert_string_equal(log, "");
    free(log);
    assert_int_equal(hale_log_init("info", "json", NULL, 0), 0);
    hale_observe_free(o);
    hale_metrics_free(reg);
}

/* R: O3 - GET /metrics on the admin router renders the registry, and the
 * in-flight gauge follows the tracked server */
static void test_metrics_endpoint(void **st) {
    (void)st;
    hale_metrics *reg = hale_metrics_new();
    hale_observe *o = hale_observe_new(reg, false);
    hale_router *r = hale_router_new();
    char err[128];
    assert_int_equal(hale_observe_register_metrics(o, r, err, sizeof err), 0);
    hale_http_hooks hooks = {.on_complete = hale_observe_on_complete,
                             .on_reject = hale_observe_on_reject, .arg = o};
    hale_http_server *s = fx_start(r, &hooks);
    hale_observe_track_server(o, s);
    fx_resp *resp = malloc(sizeof *resp);
    assert_int_equal(fx_req(hale_http_port(s), "GET", "/metrics", NULL, NULL, resp), 200);
    assert_string_equal(fx_header(resp, "Content-Type"), HALE_METRICS_CONTENT_TYPE);
    /* the scrape itself is in flight while it renders */
    assert_true(fx_body_has(resp, "http_requests_in_flight 1\n"));
    assert_true(fx_body_has(resp, "# TYPE http_requests_total counter"));
    /* a refused request reaches the counter through the hooks */
    assert_int_equal(fx_raw(hale_http_port(s), "GET /metrics HTTP/1.1\r\n\r\n", 25, resp), 400);
    /* on_complete runs after the answer was sent: poll (bounded) */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(fx_req(hale_http_port(s), "GET", "/metrics", NULL, NULL, resp), 200);
        if (fx_body_has(resp, "hale_http_rejected_total{reason=\"")) break;
        usleep(20000);
    }
    assert_true(fx_body_has(resp, "hale_http_rejected_total{reason=\""));
    assert_true(fx_body_has(resp, "http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"));
    free(resp);
    hale_http_stop(s);
    hale_router_free(r);
    hale_observe_free(o);
    hale_metrics_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_metrics),
        cmocka_unit_test(test_reject_counter),
        cmocka_unit_test(test_access_log_and_redaction),
        cmocka_unit_test(test_metrics_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
