/* http_conn: one connection's request cycle, on its worker's thread:
 * read -> parse the head (http_parse) -> limits, routing, auth -> body ->
 * handler (or hand-off to another thread) -> response -> keep-alive or
 * close. Every refusal is answered (JSON, Connection: close), counted and
 * logged; the socket is then shut for writing and its input drained for a
 * moment ("lingering close") so the answer is not destroyed by a reset.
 *
 * Readiness is edge-triggered and registered once per connection: the
 * connection remembers whether it may still read or write (`readable`,
 * `writable`) and picks up where it stopped when its state allows, so no
 * epoll_ctl is needed per request. */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 2000
#define LINGER_MAX_BYTES ((size_t)256 * 1024)

static void conn_drive(hale_conn *c);


/* now + idle_timeout: keep-alive, a stalled writer, a pause in a head. */
static uint64_t idle_deadline(const hale_http_server *s, uint64_t now) {
    return now + hale_ms_ns(s->o.idle_timeout_ms);
}

/* A head's deadline: all of it within header_timeout of its first byte,
 * and no pause longer than idle_timeout. */
static uint64_t head_deadline(const hale_conn *c, uint64_t now) {
    const hale_http_server *s = c->w->srv;
    uint64_t idle = idle_deadline(s, now), whole = c->req.t_start_ns + hale_ms_ns(s->o.header_timeout_ms);
    return idle < whole ? idle : whole;
}


/* ---- buffers ---- */

static size_t fields_bytes(const hale_http_server *s) {
    return ((size_t)s->limits.max_fields * sizeof(hale_h1_field) + 15) & ~(size_t)15;
}

static void buffer_get(hale_conn *c) {
    if (c->in) return;
    hale_http_worker *w = c->w;
    size_t fb = fields_bytes(w->srv);
    char *b = w->nspare ? w->spare[--w->nspare] : xmalloc(fb + w->srv->buf_size);
    c->fields = (hale_h1_field *)(void *)b;
    c->in = b + fb;
    c->in_cap = w->srv->buf_size;
    c->in_len = 0;
}

/* Back to the worker's spare cache, or freed when `cache` is 0: the cache
 * belongs to the worker thread, so another thread must not touch it. */
static void buffer_put_to(hale_conn *c, int cache) {
    if (!c->in) return;
    hale_http_worker *w = c->w;
    char *b = (char *)c->fields;
    if (cache && w->nspare < sizeof w->spare / sizeof *w->spare) w->spare[w->nspare++] = b;
    else free(b);
    c->in = NULL;
    c->fields = NULL;
    c->in_len = c->in_cap = 0;
}

static void buffer_put(hale_conn *c) { buffer_put_to(c, 1); }

/* ---- opening and closing ---- */

void hale_conn_open(hale_http_worker *w, int fd, const char *remote, hale_ip_node *ip) {
    hale_conn *c = xcalloc(1, sizeof *c);
    c->w = w;
    c->fd = fd;
    c->ip = ip;
    c->state = CONN_IDLE;
    snprintf(c->remote, sizeof c->remote, "%s", remote);
    hale_buf_init(&c->out);
    hale_buf_init(&c->req.body);
    c->req.srv = w->srv;
    c->req.conn = c;
    c->deadline_ns = idle_deadline(w->srv, hale_now_ns());
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        c->state = CONN_LINGER; /* closed by the next sweep */
        c->deadline_ns = 1;
    }
}

static void unlink_conn(hale_conn *c) {
    hale_http_worker *w = c->w;
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    w->nconns--;
}

/* Tells the hooks how the current request ended, once. */
static void report(hale_conn *c, int status) {
    hale_req *r = &c->req;
    hale_http_server *s = c->w->srv;
    if (s->hooks.on_complete && !atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
        hale_http_event ev = {
            .server = s->name,
            .method = r->method ? r->method : "",
            .route = r->route_label ? r->route_label : "unmatched",
            .route_index = r->route_index,
            .path = r->uri ? r->uri : "",
            .status = status,
            .bytes_in = r->bytes_in,
            .bytes_out = status && !r->head_only ? r->resp_len : 0,
            .duration_ns = hale_now_ns() - r->t_start_ns,
            .remote = c->remote,
            .request_id = r->req_id,
            .trace_id = r->trace_id,
            .reject_reason = r->reject_reason,
        };
        s->hooks.on_complete(&ev, s->hooks.arg);
    }
    if (c->counted) {
        atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_relaxed);
        c->counted = 0;
    }
}

/* Clears the request for the next one on this connection. */
static void req_clear(hale_conn *c) {
    hale_req *r = &c->req;
    hale_req_reset_response(r);
    hale_buf body = r->body;
    if (body.cap > (size_t)64 * 1024) { hale_buf_free(&body); hale_buf_init(&body); }
    body.len = 0;
    memset(r, 0, sizeof *r);
    r->body = body;
    r->srv = c->w->srv;
    r->conn = c;
    hale_h1_reset(&c->parser);
    hale_h1_chunked_reset(&c->chunk);
    c->head_len = c->body_pos = 0;
    c->body_left = 0;
    c->chunked = 0;
    c->out.len = 0;
    c->out_off = 0;
}

static void conn_release(hale_conn *c, int on_worker) {
    hale_req_reset_response(&c->req);
    hale_buf_free(&c->req.body);
    hale_buf_free(&c->out);
    buffer_put_to(c, on_worker);
    if (c->ip) hale_http_ip_release(c->w->srv, c->ip);
    atomic_fetch_sub_explicit(&c->w->srv->nconns, 1, memory_order_relaxed);
    free(c);
}

/* Closes the socket; a request in progress ends with status 0. */
void hale_conn_close(hale_conn *c) {
    if ((c->state == CONN_HEAD && c->req.method) || c->state == CONN_BODY || c->state == CONN_WRITE)
        report(c, 0);
    unlink_conn(c);
    close(c->fd);
    c->fd = -1;
    if (c->state == CONN_HANDLER) {
        c->dead = 1; /* another thread holds the request: freed on resume */
        return;
    }
    conn_release(c, 1);
}

void hale_conn_free_dead(hale_conn *c) {
    report(c, 0);
    conn_release(c, 1);
}

void hale_conn_free_dead_elsewhere(hale_conn *c) {
    report(c, 0);
    conn_release(c, 0);
}

/* Shuts the write side and reads what the client still sends, so that
 * our answer is not lost to a reset caused by unread input. */
static void linger(hale_conn *c) {
    int unread = c->readable || c->in_len > c->body_pos || c->rdhup;
    c->state = CONN_LINGER; /* reported already: closing reports nothing more */
    if (!unread) {
        hale_conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    req_clear(c);
    c->in_len = 0;
    c->deadline_ns = hale_now_ns() + hale_ms_ns(LINGER_MS);
    conn_drive(c);
}

/* ---- reading ---- */

/* Reads into the input buffer's free tail. Returns 1 when bytes came,
 * 0 when none are there now, -1 when the peer closed or the socket failed. */
static int fill(hale_conn *c) {
    buffer_get(c);
    if (c->in_len == c->in_cap) return 0;
    for (;;) {
        size_t room = c->in_cap - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            /* a short read drained a stream socket (epoll(7)); after the
             * peer's FIN, read on until read() says 0 */
            if ((size_t)n < room && !c->rdhup) c->readable = 0;
            return 1;
        }
        if (n == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { c->readable = 0; return 0; }
        return -1;
    }
}

/* ---- the response ---- */

void hale_conn_respond(hale_conn *c) {
    hale_req *r = &c->req;
    hale_http_server *s = c->w->srv;
    int close = r->close_after || !c->keep_alive ||
                atomic_load_explicit(&s->draining, memory_order_relaxed) ||
                atomic_load_explicit(&s->stopping, memory_order_relaxed);
    c->keep_alive = !close;
    hale_http_resp_head(&c->out, c->w, r, close, c->parser.head.minor == 0);
    c->out_off = 0;
    c->state = CONN_WRITE;
    c->deadline_ns = idle_deadline(s, hale_now_ns());
}

/* The response went out: report it, then keep the connection (returns 1)
 * or close it (0: the connection may be gone). */
static int finish(hale_conn *c) {
    hale_req *r = &c->req;
    report(c, r->status);
    c->served++;
    size_t used = c->body_pos;
    if (!c->keep_alive) {
        linger(c);
        return 0;
    }
    size_t left = c->in_len > used ? c->in_len - used : 0;
    if (left) memmove(c->in, c->in + used, left);
    req_clear(c);
    c->in_len = left;
    c->state = CONN_IDLE;
    c->deadline_ns = idle_deadline(c->w->srv, hale_now_ns());
    if (!left && !c->readable) {
        /* idle: a keep-alive connection holds no buffers (1,000 of them
         * cost ~1 KiB each) */
        buffer_put(c);
        hale_buf_free(&c->req.body);
        hale_buf_free(&c->out);
    }
    return 1;
}

/* Sends what is left of the response. Returns 1 when all was sent, 0 when
 * the socket is full, -1 when it failed. */
static int flush_out(hale_conn *c) {
    hale_req *r = &c->req;
    size_t head = c->out.len;
    size_t body = r->head_only ? 0 : r->resp_len;
    while (c->out_off < head + body) {
        struct iovec iov[2];
        int n = 0;
        if (c->out_off < head) {
            iov[n].iov_base = c->out.data + c->out_off;
            iov[n++].iov_len = head - c->out_off;
            if (body) { iov[n].iov_base = r->resp_body; iov[n++].iov_len = body; }
        } else {
            iov[n].iov_base = r->resp_body + (c->out_off - head);
            iov[n++].iov_len = head + body - c->out_off;
        }
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (w > 0) { c->out_off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* a client reading slowly but steadily is not cut off */
            c->deadline_ns = idle_deadline(c->w->srv, hale_now_ns());
            c->writable = 0;
            return 0;
        }
        return -1;
    }
    return 1;
}

/* ---- the state machine ---- */

static void conn_drive(hale_conn *c) {
    hale_http_server *s = c->w->srv;
    for (;;) {
        switch (c->state) {
        case CONN_IDLE:
        case CONN_HEAD: {
            if (c->in_len > c->parser.pos) {
                if (c->state == CONN_IDLE) {
                    c->state = CONN_HEAD;
                    c->req.t_start_ns = hale_now_ns();
                    c->req.route_label = "unmatched";
                    c->req.route_index = UINT32_MAX;
                    c->deadline_ns = head_deadline(c, c->req.t_start_ns);
                }
                hale_h1_head h;
                hale_h1_error err;
                hale_h1_status st = hale_h1_parse(&c->parser, c->in, c->in_len, &s->limits,
                                                  c->fields, &h, &err);
                if (st == HALE_H1_DONE) {
                    if (hale_conn_begin_request(c, &h) != 0) return;
                    continue;
                }
                if (st == HALE_H1_ERROR) {
                    hale_conn_keep_what_parsed(c);
                    c->body_pos = c->in_len;
                    hale_conn_refuse(c, err.status, err.reason, err.detail);
                    continue;
                }
                if (c->in_len == c->in_cap) { /* cannot happen: the parser refuses first */
                    hale_conn_refuse(c, 431, "headers_too_large", "the request head is larger than the limit");
                    continue;
                }
            }
            /* draining: a keep-alive connection between requests closes; a
             * new one is still served (its request may be on the way) */
            if (c->state == CONN_IDLE && c->served && !c->readable && hale_http_close_idle_now(s)) {
                hale_conn_close(c);
                return;
            }
            if (!c->readable) {
                if (c->state == CONN_IDLE && !c->in_len) buffer_put(c);
                return;
            }
            int got = fill(c);
            if (got < 0) { hale_conn_close(c); return; }
            if (got > 0 && c->state == CONN_HEAD) c->deadline_ns = head_deadline(c, hale_now_ns());
            continue;
        }
        case CONN_BODY: {
            int done = hale_conn_take_body(c);
            if (done < 0) continue;
            if (done) { hale_conn_run_handler(c); continue; }
            /* all buffered input was taken: reuse the space after the head */
            c->in_len = c->body_pos = c->head_len;
            if (!c->readable) return;
            int got = (!c->chunked && c->body_left) ? hale_conn_read_body_direct(c) : fill(c);
            if (got < 0) { hale_conn_close(c); return; }
            if (!c->chunked && !c->body_left) { hale_conn_run_handler(c); continue; }
            continue;
        }
        case CONN_HANDLER:
            return;
        case CONN_WRITE: {
            int sent = flush_out(c);
            if (sent < 0) { hale_conn_close(c); return; }
            if (sent == 0) return;
            if (!finish(c)) return;
            continue;
        }
        case CONN_LINGER: {
            char sink[4096];
            for (;;) {
                ssize_t n = read(c->fd, sink, sizeof sink);
                if (n > 0) {
                    c->linger_bytes += (size_t)n;
                    if (c->linger_bytes > LINGER_MAX_BYTES) { hale_conn_close(c); return; }
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { c->readable = 0; return; }
                hale_conn_close(c); /* EOF or error */
                return;
            }
        }
        default:
            return;
        }
    }
}

void hale_conn_event(hale_conn *c, unsigned events) {
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) c->readable = 1;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) { c->rdhup = 1; c->readable = 1; }
    if (events & EPOLLOUT) c->writable = 1;
    if (c->state == CONN_WRITE && !c->writable && !(events & (EPOLLHUP | EPOLLERR))) return;
    conn_drive(c);
}

void hale_conn_resumed(hale_conn *c) {
    if (c->dead) {
        hale_conn_free_dead(c);
        return;
    }
    hale_conn_respond(c);
    c->writable = 1;
    conn_drive(c);
}

void hale_conn_sweep(hale_http_worker *w, uint64_t now) {
    hale_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (!c->deadline_ns || now < c->deadline_ns) continue;
        if (c->readable && c->state <= CONN_BODY) {
            /* input is waiting that this worker had no time to read (a
             * handler of another connection held it): read it before
             * judging the deadline; the next sweep judges again */
            conn_drive(c);
            continue;
        }
        c->deadline_ns = 0;
        switch (c->state) {
        case CONN_HEAD:
            c->body_pos = c->in_len;
            hale_conn_refuse(c, 408, "header_timeout", "the request head did not arrive in time");
            conn_drive(c);
            break;
        case CONN_BODY:
            c->body_pos = c->in_len;
            hale_conn_refuse(c, 408, "body_timeout", "the request body did not arrive in time");
            conn_drive(c);
            break;
        case CONN_HANDLER:
            break;
        default: /* idle keep-alive, a client that stopped reading, lingering */
            hale_conn_close(c);
            break;
        }
    }
}

void hale_conn_drain_idle(hale_http_worker *w) {
    hale_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->state == CONN_IDLE && c->in_len == 0 && c->served) hale_conn_close(c);
    }
}

void hale_conn_close_all(hale_http_worker *w) {
    hale_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        hale_conn_close(c);
    }
    while (w->nspare) free(w->spare[--w->nspare]);
}
