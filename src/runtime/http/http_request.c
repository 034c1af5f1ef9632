/* http_request: the request part of a connection's cycle (see http_conn.c
 * for the rest): a parsed head becomes a request (limits, routing, auth,
 * Expect: 100-continue), its body is read (Content-Length or chunked,
 * bounded), the handler runs, and refusals are answered. Internal to the
 * engine: the functions are declared in http_internal.h. */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *const known_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
};

static int method_known(const char *m) {
    for (size_t i = 0; i < sizeof known_methods / sizeof *known_methods; i++)
        if (strcmp(m, known_methods[i]) == 0) return 1;
    return 0;
}

/* ---- refusals ---- */

void hale_conn_refuse(hale_conn *c, int status, const char *reason, const char *detail) {
    hale_req *r = &c->req;
    hale_http_server *s = c->w->srv;
    r->reject_reason = reason;
    r->close_after = 1;
    if (!r->t_start_ns) r->t_start_ns = hale_now_ns();
    if (!r->req_id[0]) hale_req_random_id(r->req_id);
    if (s->hooks.on_reject) s->hooks.on_reject(s->name, reason, s->hooks.arg);
    hale_resp_error(r, status, reason, detail);
    hale_conn_respond(c);
}

/* A decided answer: when a body may follow it is not read, so the
 * connection closes after the answer. */
static void answer_early(hale_conn *c) {
    if (c->body_left || c->chunked) c->req.close_after = 1;
    hale_conn_respond(c);
}

/* A refused head: its method, target and (when complete) fields are kept
 * for the access line and the echoed request id. */
void hale_conn_keep_what_parsed(hale_conn *c) {
    int prog = hale_h1_progress(&c->parser);
    if (!prog) return;
    hale_h1_head h = c->parser.head;
    h.nfields = prog == 2 ? c->parser.nfields : 0;
    hale_conn_terminate_head(c, &h);
    hale_req *r = &c->req;
    r->method = c->in + h.method_off;
    r->uri = c->in + h.target_off;
    r->uri_len = r->path_len = h.target_len;
    r->query = "";
    if (prog == 2) {
        r->buf = c->in;
        r->fields = c->fields;
        r->nfields = h.nfields;
        hale_req_set_ids(r);
    }
}

/* ---- the request ---- */

void hale_conn_run_handler(hale_conn *c) {
    hale_req *r = &c->req;
    hale_http_server *s = c->w->srv;
    static _Thread_local const hale_http_server *tl_srv;
    static _Thread_local int tl_slot = -1;
    if (tl_srv != s) {
        unsigned slot = atomic_fetch_add(&s->next_slot, 1);
        tl_srv = s;
        tl_slot = slot < HALE_HTTP_MAX_BUSY_SLOTS ? (int)slot : -1;
    }
    if (!r->body.data) hale_buf_append(&r->body, "", 0);
    if (tl_slot >= 0) atomic_store_explicit(&s->busy[tl_slot], hale_now_ns(), memory_order_relaxed);
    c->state = CONN_HANDLER;
    r->match.route->fn(r, r->match.route->arg);
    if (tl_slot >= 0) atomic_store_explicit(&s->busy[tl_slot], 0, memory_order_relaxed);
    /* a suspended request belongs to another thread now: do not touch it */
    if (r->suspended) return;
    if (!r->status) hale_resp_error(r, 500, "internal", "the handler produced no response");
    hale_conn_respond(c);
}

/* Writes `HTTP/1.1 100 Continue` (RFC 9110 10.1.1): only once routing,
 * auth and the size check let the request through, and only when no body
 * byte has arrived yet. Returns 0, or -1 when the socket failed. */
static int send_continue(hale_conn *c) {
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t n;
    do n = send(c->fd, msg, sizeof msg - 1, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)(sizeof msg - 1) ? 0 : -1;
}

/* NUL-terminates the head's strings in place (each is followed by SP, ':',
 * OWS or CR, which the parse no longer needs). */
void hale_conn_terminate_head(hale_conn *c, const hale_h1_head *h) {
    char *b = c->in;
    b[h->method_off + h->method_len] = '\0';
    b[h->target_off + h->target_len] = '\0';
    for (unsigned i = 0; i < h->nfields; i++) {
        b[c->fields[i].name_off + c->fields[i].name_len] = '\0';
        b[c->fields[i].value_off + c->fields[i].value_len] = '\0';
    }
}

/* Returns 0, or -1 when the connection is gone. */
int hale_conn_begin_request(hale_conn *c, const hale_h1_head *h) {
    hale_http_server *s = c->w->srv;
    hale_req *r = &c->req;
    hale_conn_terminate_head(c, h);
    char *b = c->in;
    c->head_len = c->body_pos = h->head_len;
    c->keep_alive = h->keep_alive;
    r->buf = b;
    r->fields = c->fields;
    r->nfields = h->nfields;
    r->method = b + h->method_off;
    size_t po = h->path_off, pl = h->path_len;
    if (h->form == HALE_H1_ABSOLUTE && (pl == 0 || b[po] != '/')) {
        /* "http://host" or "http://host?q": the path is "/" (RFC 9112
         * 3.2.2); the authority's last byte is no longer needed */
        b[--po] = '/';
        pl++;
    }
    r->uri = b + po;
    r->uri_len = pl;
    const char *q = memchr(r->uri, '?', pl);
    r->path_len = q ? (size_t)(q - r->uri) : pl;
    r->query = q ? q + 1 : "";
    r->head_only = strcmp(r->method, "HEAD") == 0;
    hale_req_set_ids(r);
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    c->counted = 1;
    c->chunked = h->chunked;
    c->body_left = h->has_content_length ? h->content_length : 0;

    if (!method_known(r->method)) {
        hale_conn_refuse(c, 501, "unknown_method", "the method is not implemented");
        return 0;
    }
    if (h->has_content_length && h->content_length > s->o.max_body_bytes) {
        hale_conn_refuse(c, 413, "body_too_large", "the request body is larger than the limit");
        return 0;
    }
    hale_match_result mr = hale_router_match(s->router, r->method, r->uri, r->path_len, &r->match);
    if (mr != HALE_MATCH_OK) {
        if (mr == HALE_MATCH_METHOD) {
            hale_resp_error(r, 405, "method_not_allowed", "the method is not allowed on this resource");
            hale_resp_header(r, "Allow", r->match.allow);
        } else {
            hale_resp_error(r, 404, "not_found", "no such resource");
        }
        answer_early(c);
        return 0;
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
        answer_early(c);
        return 0;
    }
    if ((rt->flags & HALE_ROUTE_BODY) && !h->has_content_length && !h->chunked) {
        hale_resp_error(r, 411, "length_required", "a Content-Length or chunked body is required");
        answer_early(c);
        return 0;
    }
    if ((rt->flags & HALE_ROUTE_AUTH) && s->hooks.auth && !s->hooks.auth(r, s->hooks.auth_arg)) {
        if (!r->status) hale_resp_error(r, 401, "unauthorized", "missing or invalid credentials");
        answer_early(c);
        return 0;
    }
    if (!c->body_left && !c->chunked) {
        hale_conn_run_handler(c);
        return 0;
    }
    if (h->expect_continue && c->in_len == c->body_pos && send_continue(c) != 0) {
        hale_conn_close(c);
        return -1;
    }
    if (c->body_left) hale_buf_reserve(&r->body, (size_t)c->body_left);
    c->state = CONN_BODY;
    c->deadline_ns = hale_now_ns() + hale_ms_ns(s->o.body_timeout_ms);
    return 0;
}

/* Moves body bytes from the input buffer into the request. Returns 1 when
 * the body is complete, 0 when more is needed, -1 after a refusal. */
int hale_conn_take_body(hale_conn *c) {
    hale_req *r = &c->req;
    hale_http_server *s = c->w->srv;
    size_t avail = c->in_len - c->body_pos;
    if (!c->chunked) {
        size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
        hale_buf_append(&r->body, c->in + c->body_pos, take);
        c->body_pos += take;
        c->body_left -= take;
        r->bytes_in += take;
        return c->body_left == 0;
    }
    while (c->body_pos < c->in_len) {
        size_t used = 0, off = 0, len = 0;
        hale_h1_error err;
        hale_h1_chunk_status st = hale_h1_chunked_feed(&c->chunk, c->in + c->body_pos,
                                                       c->in_len - c->body_pos, &s->limits,
                                                       &used, &off, &len, &err);
        if (st == HALE_H1_CHUNK_ERROR) {
            hale_conn_refuse(c, err.status, err.reason, err.detail);
            return -1;
        }
        if (st == HALE_H1_CHUNK_DATA) {
            if (r->body.len + len > s->o.max_body_bytes) {
                hale_conn_refuse(c, 413, "chunked_body_too_large", "the request body is larger than the limit");
                return -1;
            }
            hale_buf_append(&r->body, c->in + c->body_pos + off, len);
        }
        c->body_pos += used;
        r->bytes_in += used;
        if (st == HALE_H1_CHUNK_DONE) return 1;
    }
    return 0;
}

/* Reads a Content-Length body straight into the request's buffer. Returns
 * 1 when bytes arrived, 0 when the socket has none now, -1 when it died. */
int hale_conn_read_body_direct(hale_conn *c) {
    hale_buf *b = &c->req.body;
    hale_buf_reserve(b, (size_t)c->body_left);
    for (;;) {
        ssize_t n = read(c->fd, b->data + b->len, (size_t)c->body_left);
        if (n > 0) {
            if ((uint64_t)n < c->body_left && !c->rdhup) c->readable = 0;
            b->len += (size_t)n;
            b->data[b->len] = '\0';
            c->body_left -= (uint64_t)n;
            c->req.bytes_in += (uint64_t)n;
            return 1;
        }
        if (n == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { c->readable = 0; return 0; }
        return -1;
    }
}
