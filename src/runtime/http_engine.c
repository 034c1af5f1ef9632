/* http_engine: the libmicrohttpd adapter, the only file that includes the
 * engine's header. It enforces hale's framing rules and limits on the first
 * callback of every request, accumulates the body, runs the route's handler
 * and turns hale's response into the engine's.
 *
 * Engine rules this file follows (see design-notes.md):
 *  - internal thread pool with epoll (poll with one worker: the
 *    single-thread epoll mode stalls with many keep-alive connections);
 *  - two-call pattern: a response queued on the first call makes the engine
 *    close the connection, so normal answers are queued on a later call and
 *    only refusals that must close the connection are queued at once (this
 *    also stops the engine's automatic `100 Continue`);
 *  - MHD_quiesce_daemon's socket is closed at once so new connects are
 *    refused instead of hanging. */
#include "http_internal.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BUSY_SLOTS 256

struct hale_http_server {
    struct MHD_Daemon *d;
    hale_http_opts o;
    const hale_router *router;
    hale_http_hooks hooks;
    atomic_uint in_flight;
    atomic_int draining;
    atomic_int quiesced;
    int quiesced_fd;            /* listening socket after quiesce, or -1 */
    unsigned port;
    unsigned workers;
    char name[16];
    atomic_uint next_slot;
    _Atomic uint64_t busy[MAX_BUSY_SLOTS]; /* handler start, 0 = idle */
};

static _Thread_local const hale_http_server *tl_srv;
static _Thread_local int tl_slot = -1;

void hale_http_opts_default(hale_http_opts *o) {
    memset(o, 0, sizeof *o);
    o->name = "main";
    o->host = "0.0.0.0";
    o->port = 8080;
    o->workers = 0;
    o->max_connections = 4096;
    o->max_connections_per_ip = 0;
    o->max_in_flight = 0;
    o->max_header_bytes = (size_t)8 * 1024;
    o->max_uri_bytes = 4096;
    o->max_body_bytes = (size_t)1024 * 1024;
    o->idle_timeout_s = 30;
    o->body_timeout_ms = 30000;
}

const char *hale_engine_header(void *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

typedef struct header_each {
    const char *name;
    void (*fn)(const char *value, void *arg);
    void *arg;
} header_each;

static enum MHD_Result header_each_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value) {
    (void)kind;
    header_each *e = cls;
    if (strcasecmp(key, e->name) == 0) e->fn(value ? value : "", e->arg);
    return MHD_YES;
}

void hale_req_header_each(const hale_req *r, const char *name,
                          void (*fn)(const char *value, void *arg), void *arg) {
    header_each e = {name, fn, arg};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, header_each_iter, &e);
}

/* ---- small helpers ---- */

static const char *const known_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
};

static bool method_known(const char *m) {
    for (size_t i = 0; i < sizeof known_methods / sizeof *known_methods; i++)
        if (strcmp(m, known_methods[i]) == 0) return true;
    return false;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s)) return false;
    return true;
}

static uint64_t rng_next(void) {
    static _Thread_local uint64_t s[2];
    if (!s[0] && !s[1]) {
        if (getrandom(s, sizeof s, 0) != (ssize_t)sizeof s) {
            s[0] = hale_now_ns() ^ (uint64_t)(uintptr_t)&s;
            s[1] = 0x9E3779B97F4A7C15ull;
        }
        s[0] |= 1;
    }
    uint64_t a = s[0], b = s[1];
    s[0] = b;
    a ^= a << 23;
    s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s[1] + b;
}

static bool sane_request_id(const char *v) {
    size_t n = strlen(v);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static bool hex_run(const char *p, size_t n) {
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        if (c != '0') nonzero = true;
    }
    return nonzero;
}

/* n lowercase hex digits (zero allowed). */
static bool hex_digits(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return false;
    return true;
}

static void set_ids(hale_req *r) {
    const char *rid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && sane_request_id(rid)) {
        snprintf(r->req_id, sizeof r->req_id, "%s", rid);
    } else {
        snprintf(r->req_id, sizeof r->req_id, "%016llx%016llx",
                 (unsigned long long)rng_next(), (unsigned long long)rng_next());
    }
    /* traceparent (W3C Trace Context): <2 hex version>-<32 hex trace id>-
     * <16 hex parent id>-<2 hex flags>, lowercase; version ff is invalid,
     * version 00 is exactly 55 characters, a later version may append
     * "-..." fields. Anything else is ignored, as the spec requires. */
    const char *tp = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "traceparent");
    r->trace_id[0] = '\0';
    size_t tpn = tp ? strlen(tp) : 0;
    if (tpn >= 55 && hex_digits(tp, 2) && memcmp(tp, "ff", 2) != 0 &&
        tp[2] == '-' && tp[35] == '-' && tp[52] == '-' &&
        hex_run(tp + 3, 32) && hex_run(tp + 36, 16) && hex_digits(tp + 53, 2) &&
        (tpn == 55 || (memcmp(tp, "00", 2) != 0 && tp[55] == '-'))) {
        memcpy(r->trace_id, tp + 3, 32);
        r->trace_id[32] = '\0';
    }
}

static void set_remote(hale_req *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    r->remote[0] = '\0';
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->remote, sizeof r->remote);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->remote, sizeof r->remote);
}

/* The engine's per-connection memory pool holds the request head (line,
 * headers and their index) and the read/write buffers. It is the main
 * per-connection cost twice over: its pages stay resident while the
 * connection lives (1,000 keep-alive connections x pool size), and the
 * engine zeroes it on every request (callgrind, GET /health/liveness:
 * 89k instructions/request with a 48 KiB pool, 53k with 24 KiB). So it is
 * sized from the header limit plus room for the index and the response
 * head; a head close to the limit may get the engine's own 431 instead of
 * hale's JSON one. */
static size_t conn_memory(const hale_http_opts *o) { return o->max_header_bytes + 4096; }

/* ---- framing rules (Y9) ---- */

typedef struct framing {
    int n_cl, n_te, n_host, bad_name, bad_value, folded, cl_bad;
    uint64_t cl;
    const char *te;
    size_t header_bytes, max_gap;
} framing;

/* RFC 9110 field-value: no control characters but HTAB. The engine passes
 * a bare CR (and other CTLs) through inside a value; a proxy that ends the
 * line at that CR sees a different header block (smuggling shape). NUL
 * cannot be seen here: the engine ends the value at it. */
static bool value_ok(const char *v) {
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

/* obs-fold (RFC 9112 5.2): libmicrohttpd 0.9.75 parses header lines in
 * place (key, NUL where the colon was, optional SP/HTAB, value) but
 * appends a continuation line to the KEY, moved to a new pool block:
 * "Content-Length: 5\r\n 6" arrives as key "Content-Length6", value "5",
 * a valid token that silently drops the framing header. So a key that is
 * not laid out right before its value was folded. The hostile-input suite
 * (tests/e2e/test_framing.py) proves this still holds for the engine in use. */
static bool laid_out_in_place(const char *key, const char *value, size_t max_gap) {
    uintptr_t k_end = (uintptr_t)key + strlen(key), v = (uintptr_t)value;
    if (v <= k_end || v - k_end > max_gap) return false;
    for (const char *p = key + strlen(key) + 1; p < value; p++)
        if (*p != ' ' && *p != '\t') return false;
    return true;
}

static enum MHD_Result framing_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    framing *f = cls;
    if (!value) value = "";
    else if (!laid_out_in_place(key, value, f->max_gap)) f->folded = 1;
    f->header_bytes += strlen(key) + strlen(value) + 4;
    if (!is_token(key)) f->bad_name = 1;
    if (!value_ok(value)) f->bad_value = 1;
    if (strcasecmp(key, "Content-Length") == 0) {
        const char *p = value;
        uint64_t v = 0;
        if (!*p) f->cl_bad = 1;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) { f->cl_bad = 1; break; }
            v = v * 10 + (uint64_t)(*p - '0');
        }
        if (f->n_cl && v != f->cl) f->cl_bad = 1;
        f->cl = v;
        f->n_cl++;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->n_te++;
        f->te = value;
    } else if (strcasecmp(key, "Host") == 0) {
        f->n_host++;
    }
    return MHD_YES;
}

/* Returns NULL when framing is acceptable, else a reason; sets *status. */
static const char *check_framing(hale_req *r, const char *version, int *status) {
    framing f;
    memset(&f, 0, sizeof f);
    f.max_gap = conn_memory(&r->srv->o); /* key and value share one pool */
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_iter, &f);
    *status = 400;
    if (f.folded) return "obsolete_line_folding";
    if (f.bad_name) return "bad_header_name";
    if (f.bad_value) return "bad_header_value";
    if (f.header_bytes + r->uri_len > r->srv->o.max_header_bytes) { *status = 431; return "headers_too_large"; }
    if (f.n_host > 1) return "duplicate_host";
    if (f.n_host == 0 && strcmp(version, "HTTP/1.1") == 0) return "missing_host";
    if (f.cl_bad) return f.n_cl > 1 ? "conflicting_content_length" : "bad_content_length";
    if (f.n_cl > 1) return "duplicate_content_length";
    if (f.n_te) {
        if (f.n_cl) return "content_length_with_transfer_encoding";
        /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing */
        if (strcmp(version, "HTTP/1.1") != 0) return "transfer_encoding_in_http10";
        if (f.n_te > 1 || strcasecmp(f.te, "chunked") != 0) {
            *status = 501;
            return "unsupported_transfer_encoding";
        }
        r->chunked = 1;
    }
    if (f.n_cl) {
        r->has_cl = 1;
        r->content_length = f.cl;
    }
    return NULL;
}

/* ---- responses ---- */

static enum MHD_Result queue(hale_req *r) {
    struct MHD_Response *resp;
    hale_http_server *s = r->srv;
    if (r->resp_kind == BODY_OWNED) {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp) { r->resp_body = NULL; r->resp_kind = BODY_STATIC; }
    } else {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    if (r->ctype) MHD_add_response_header(resp, "Content-Type", r->ctype);
    bool cache_control = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        MHD_add_response_header(resp, r->hname[i], r->hvalue[i]);
        cache_control |= strcasecmp(r->hname[i], "Cache-Control") == 0;
    }
    /* A10: a response without a cache policy of its own is not stored */
    if (!cache_control) MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Request-Id", r->req_id);
    if (r->close_after || atomic_load_explicit(&s->draining, memory_order_relaxed))
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    r->dispatched = 1;
    return ret;
}

/* Refuses at once and closes the connection (nothing may follow). */
static enum MHD_Result refuse_now(hale_req *r, int status, const char *reason, const char *detail) {
    r->reject_reason = reason;
    r->close_after = 1;
    if (r->srv->hooks.on_reject) r->srv->hooks.on_reject(r->srv->name, reason, r->srv->hooks.arg);
    hale_resp_error(r, status, reason, detail);
    return queue(r);
}

static bool has_body(const hale_req *r) {
    return r->chunked || (r->has_cl && r->content_length > 0);
}

/* Records a decided answer: queued at once when body bytes may follow
 * (the connection then closes), else on the next call (keep-alive kept). */
static enum MHD_Result answer_early(hale_req *r) {
    if (has_body(r)) {
        r->close_after = 1;
        return queue(r);
    }
    return MHD_YES;
}

static void run_handler(hale_req *r) {
    hale_http_server *s = r->srv;
    if (tl_srv != s || tl_slot < 0) {
        unsigned slot = atomic_fetch_add(&s->next_slot, 1);
        tl_srv = s;
        tl_slot = slot < MAX_BUSY_SLOTS ? (int)slot : -1;
    }
    if (tl_slot >= 0) atomic_store_explicit(&s->busy[tl_slot], hale_now_ns(), memory_order_relaxed);
    r->match.route->fn(r, r->match.route->arg);
    if (tl_slot >= 0) atomic_store_explicit(&s->busy[tl_slot], 0, memory_order_relaxed);
    /* a suspended request belongs to another thread now: do not touch it */
    if (!r->suspended && !r->status)
        hale_resp_error(r, 500, "internal", "the handler produced no response");
}

void hale_req_suspend(hale_req *r) {
    HALE_ASSERT(!r->suspended);
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
}

void hale_req_resume(hale_req *r) {
    struct MHD_Connection *c = r->conn;
    if (!r->status) hale_resp_error(r, 500, "internal", "the asynchronous handler produced no response");
    atomic_store_explicit(&r->resumed, 1, memory_order_release);
    MHD_resume_connection(c);
}

/* ---- the request path ---- */

static enum MHD_Result first_call(hale_req *r, const char *method, const char *version) {
    hale_http_server *s = r->srv;
    int status;
    r->started = 1;
    r->method = method;
    set_remote(r);
    set_ids(r);
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    r->counted_in_flight = 1;

    if (r->uri_len > s->o.max_uri_bytes)
        return refuse_now(r, 414, "uri_too_long", "the request target is longer than the limit");
    const char *reason = check_framing(r, version, &status);
    if (reason) {
        const char *detail = status == 431 ? "request headers are larger than the limit"
                             : status == 501 ? "only Transfer-Encoding: chunked is supported"
                                             : "the request framing is ambiguous or malformed";
        return refuse_now(r, status, reason, detail);
    }
    if (!method_known(method))
        return refuse_now(r, 501, "unknown_method", "the method is not implemented");
    if (r->has_cl && r->content_length > s->o.max_body_bytes)
        return refuse_now(r, 413, "body_too_large", "the request body is larger than the limit");
    if (r->uri_len == 0 || r->uri[0] != '/')
        return refuse_now(r, 400, "bad_target", "the request target must be an absolute path, without NUL bytes");

    hale_match_result mr = hale_router_match(s->router, method, r->uri, r->path_len, &r->match);
    if (mr != HALE_MATCH_OK) {
        r->route_label = "unmatched";
        if (mr == HALE_MATCH_METHOD) {
            hale_resp_error(r, 405, "method_not_allowed", "the method is not allowed on this resource");
            hale_resp_header(r, "Allow", r->match.allow);
        } else {
            hale_resp_error(r, 404, "not_found", "no such resource");
        }
        return answer_early(r);
    }
    const hale_route *rt = r->match.route;
    r->route_label = rt->tmpl;
    r->route_index = rt->index;

    if (s->o.max_in_flight && !(rt->flags & HALE_ROUTE_NO_SHED) &&
        atomic_load_explicit(&s->in_flight, memory_order_relaxed) > s->o.max_in_flight) {
        r->reject_reason = "shed";
        if (s->hooks.on_reject) s->hooks.on_reject(s->name, "shed", s->hooks.arg);
        hale_resp_error(r, 503, "overloaded", "too many requests in flight; retry shortly");
        hale_resp_header(r, "Retry-After", "1");
        return answer_early(r);
    }
    if ((rt->flags & HALE_ROUTE_BODY) && !r->has_cl && !r->chunked) {
        hale_resp_error(r, 411, "length_required", "a Content-Length or chunked body is required");
        return answer_early(r);
    }
    if ((rt->flags & HALE_ROUTE_AUTH) && s->hooks.auth && !s->hooks.auth(r, s->hooks.auth_arg)) {
        if (!r->status) hale_resp_error(r, 401, "unauthorized", "missing or invalid credentials");
        return answer_early(r);
    }
    if (r->has_cl && r->content_length) hale_buf_reserve(&r->body, (size_t)r->content_length);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)url;
    hale_http_server *s = cls;
    hale_req *r = *con_cls;
    if (!r) return MHD_NO; /* cannot happen: the URI callback creates it */
    r->conn = conn;
    if (!r->started) return first_call(r, method, version);
    if (r->dispatched) {
        /* already answered: discard what the engine still hands us */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        r->bytes_in += n;
        if (r->status) { *upload_data_size = 0; return MHD_YES; } /* decided; drop */
        if (r->body.len + n > s->o.max_body_bytes) {
            /* only a chunked body can get here; the engine cannot answer now */
            r->reject_reason = "chunked_body_too_large";
            if (s->hooks.on_reject) s->hooks.on_reject(s->name, r->reject_reason, s->hooks.arg);
            return MHD_NO;
        }
        if (s->o.body_timeout_ms &&
            hale_now_ns() - r->t_start_ns > (uint64_t)s->o.body_timeout_ms * 1000000u) {
            r->reject_reason = "body_timeout";
            if (s->hooks.on_reject) s->hooks.on_reject(s->name, r->reject_reason, s->hooks.arg);
            return MHD_NO;
        }
        hale_buf_append(&r->body, upload_data, n);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->suspended) {
        /* called again after hale_req_resume(): the answer is ready */
        if (!atomic_load_explicit(&r->resumed, memory_order_acquire)) return MHD_YES;
        return queue(r);
    }
    if (!r->status) {
        if (!r->body.data) hale_buf_append(&r->body, "", 0);
        run_handler(r);
        if (r->suspended) return MHD_YES;
    }
    return queue(r);
}

/* The engine calls the URI callback (which creates the request) but, on
 * some failures (e.g. a query string that exhausts its connection memory),
 * never the completion callback. Each connection therefore remembers its
 * open request, and the connection-closed notification frees what the
 * completion callback did not (found by fuzz_http as a leak per request). */
struct conn_ctx {
    hale_req *pending;
};

/* Frees a request and everything it still owns. */
static void release_req(hale_http_server *s, hale_req *r) {
    if (r->cc) r->cc->pending = NULL;
    if (r->counted_in_flight) atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_relaxed);
    hale_req_reset_response(r);
    hale_buf_free(&r->body);
    free(r->uri);
    free(r);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    hale_http_server *s = cls;
    hale_req *r = xcalloc(1, sizeof *r);
    r->srv = s;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_ctx *cc = ci ? ci->socket_context : NULL;
    if (cc) {
        if (cc->pending) release_req(s, cc->pending); /* abandoned by the engine */
        cc->pending = r;
        r->cc = cc;
    }
    r->t_start_ns = hale_now_ns();
    r->route_label = "unmatched";
    r->route_index = UINT32_MAX;
    size_t n = strlen(uri);
    r->uri_len = n;
    if (n > s->o.max_uri_bytes) n = 0; /* refused on the first call */
    /* The engine parses the request line in place and hands over the target
     * cut at its first NUL: "PUT /v1/kv/a\0b" would write key "a". In place,
     * the target ends where the space before "HTTP/" was, so any other byte
     * right after its end means it was cut: keep it empty, and the first
     * call refuses it (400 bad_target). */
    else if (uri[n + 1] != 'H') r->uri_len = n = 0;
    r->uri = xstrndup(uri, n);
    const char *q = memchr(r->uri, '?', n);
    r->path_len = q ? (size_t)(q - r->uri) : n;
    r->query = q ? q + 1 : "";
    hale_buf_init(&r->body);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    hale_http_server *s = cls;
    hale_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (!r->started && s->hooks.on_complete) {
        /* The engine refused this request before calling on_request (HTTP/1.1
         * without Host, a malformed Content-Length, ...) and sent its own
         * error page. Report it anyway, so that every request has its access
         * line and is counted; status 0: the engine does not say which
         * status it sent. */
        r->conn = conn;
        set_remote(r);
        set_ids(r);
        r->reject_reason = "engine_refused";
        if (s->hooks.on_reject) s->hooks.on_reject(s->name, r->reject_reason, s->hooks.arg);
        r->started = 1;
    }
    if (s->hooks.on_complete && r->started) {
        hale_http_event ev = {
            .server = s->name,
            .method = r->method ? r->method : "",
            .route = r->route_label,
            .route_index = r->route_index,
            .path = r->uri,
            .status = (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->dispatched) ? r->status : 0,
            .bytes_in = r->bytes_in,
            .bytes_out = r->dispatched ? r->resp_len : 0,
            .duration_ns = hale_now_ns() - r->t_start_ns,
            .remote = r->remote,
            .request_id = r->req_id,
            .trace_id = r->trace_id,
            .reject_reason = r->reject_reason,
        };
        s->hooks.on_complete(&ev, s->hooks.arg);
    }
    release_req(s, r);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    (void)conn;
    hale_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = xcalloc(1, sizeof(conn_ctx));
        return;
    }
    conn_ctx *cc = *socket_context;
    if (!cc) return;
    if (cc->pending) release_req(s, cc->pending);
    free(cc);
    *socket_context = NULL;
}

/* ---- server control ---- */

static unsigned cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

hale_http_server *hale_http_start(const hale_http_opts *o, const hale_router *router,
                                  const hale_http_hooks *hooks, char *err, size_t errlen) {
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%u", o->port);
    int gai = getaddrinfo(o->host, portstr, &hints, &ai);
    if (gai != 0) {
        hale_err(err, errlen, "%s listener: bad host \"%s\": %s", o->name, o->host, gai_strerror(gai));
        return NULL;
    }
    hale_http_server *s = xcalloc(1, sizeof *s);
    s->o = *o;
    s->router = router;
    s->quiesced_fd = -1;
    if (hooks) s->hooks = *hooks;
    snprintf(s->name, sizeof s->name, "%s", o->name ? o->name : "main");
    s->o.name = s->name;
    s->workers = o->workers ? o->workers : cpu_count();

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    flags |= s->workers > 1 ? MHD_USE_EPOLL : MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    size_t mem = conn_memory(o);
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        /* no LISTENING_ADDRESS_REUSE: on Linux it means SO_REUSEPORT, which
         * lets a second listener (another instance, or the admin listener
         * given the same port) silently share the port and take half of the
         * connections; the engine's default SO_REUSEADDR is what a fast
         * restart needs */
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)o->max_connections_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->idle_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)mem, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)(void *)on_uri, s},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)(void *)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)(void *)on_connection, s},
        {MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {s->workers > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)s->workers, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        hale_err(err, errlen, "%s listener: cannot listen on %s:%u (address in use, or not permitted)",
                 s->name, o->host, o->port);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return s;
}

unsigned hale_http_port(const hale_http_server *s) { return s->port; }

int hale_http_adopt_fd(hale_http_server *s, int fd, char *err, size_t errlen) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (MHD_add_connection(s->d, fd, (const struct sockaddr *)&sa, sizeof sa) != MHD_YES)
        return hale_err(err, errlen, "the engine refused the connection (limit reached?)");
    return 0;
}

unsigned hale_http_workers(const hale_http_server *s) { return s->workers; }

void hale_http_set_draining(hale_http_server *s) { atomic_store(&s->draining, 1); }

int hale_http_quiesce(hale_http_server *s) {
    if (atomic_exchange(&s->quiesced, 1)) return -1;
    /* The engine's threads drop the socket from their epoll sets
     * asynchronously, so closing it here would race with them (and the fd
     * number could be reused under them). shutdown() on a listening socket
     * moves it to CLOSE at once: new connects are refused with a reset, not
     * left hanging in the backlog. The fd itself is closed after stop. */
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) {
        shutdown(fd, SHUT_RDWR);
        s->quiesced_fd = fd;
    }
    return 0;
}

unsigned hale_http_in_flight(const hale_http_server *s) {
    return atomic_load_explicit(&((hale_http_server *)s)->in_flight, memory_order_relaxed);
}

uint64_t hale_http_oldest_busy_ns(const hale_http_server *s) {
    uint64_t oldest = 0;
    unsigned n = atomic_load(&((hale_http_server *)s)->next_slot);
    if (n > MAX_BUSY_SLOTS) n = MAX_BUSY_SLOTS;
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = atomic_load_explicit(&((hale_http_server *)s)->busy[i], memory_order_relaxed);
        if (t && (!oldest || t < oldest)) oldest = t;
    }
    return oldest;
}

void hale_http_stop(hale_http_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    if (s->quiesced_fd >= 0) close(s->quiesced_fd);
    free(s);
}
