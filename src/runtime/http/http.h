/** @file
 * http: hale's HTTP/1.1 server and request/response API.
 *
 * Promises:
 *  - The engine is hale's own (http_parse, http_conn, http_server): a
 *    strict RFC 9112 parser and an epoll loop per worker thread. Services
 *    see only this header.
 *  - A server owns one listening socket (never shared: a second listener
 *    on the same port fails) or serves one it inherited (socket
 *    activation, opts.listen_fd: the parent keeps it), runs a pool of
 *    `workers` threads (one epoll loop each), and serves the routes of one
 *    hale_router. Keep-alive,
 *    pipelining (answers in order), HTTP/1.0 keep-alive, HEAD, and
 *    `Expect: 100-continue` (answered only after routing, auth and the
 *    size check passed) are served.
 *  - Handlers run on a worker thread, read the request through hale_req_*,
 *    and set exactly one response through hale_resp_*. A handler that sets
 *    none answers 500. Handlers must not block for long: the watchdog
 *    counts a worker stuck in a handler as not live.
 *  - Limits answer with the right status before the handler is called:
 *    400 (malformed framing, bad path), 404/405 (+Allow), 411, 413 (decided
 *    from Content-Length before any body byte is read, connection closed),
 *    414, 431, 501 (unknown method or transfer coding), 503 + Retry-After
 *    (shedding past max_in_flight; routes flagged NO_SHED are exempt).
 *    Every error is a JSON body {"error": reason, "detail": "..."}.
 *  - Every refusal of a malformed or over-limit request (400, 408, 413,
 *    414, 417, 431, 501, 505) reaches the client with `Connection: close`,
 *    calls on_reject with its reason and on_complete (the access line).
 *  - Deadlines: the whole head within header_timeout_ms, the whole body
 *    within body_timeout_ms (408 when an answer can still be sent), an
 *    idle keep-alive connection is closed after idle_timeout_ms.
 *  - A response without a Cache-Control header gets `no-store`, and every
 *    response carries Date and X-Request-Id.
 *  - Request framing is strict (RFC 9112): several or conflicting
 *    Content-Length, Content-Length with Transfer-Encoding, any coding other
 *    than exactly "chunked", header names that are not tokens, a missing or
 *    repeated Host are refused and the connection is closed after the
 *    response, so nothing can hide behind them (see http_parse.h).
 *  - After hale_http_set_draining(), idle keep-alive connections are
 *    closed at once and every response carries `Connection: close`.
 *  Thread-safety: hale_http_* control functions may be called from any
 *  thread; hale_req_* / hale_resp_* only from the handler's thread during
 *  the call.
 */
#ifndef HALE_HTTP_H
#define HALE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router.h"
#include "util.h"

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** One request and its response, valid during the handler call (or until
 * hale_req_resume when suspended). Opaque. */
typedef struct hale_req hale_req;
/** One listener with its worker threads (opaque). */
typedef struct hale_http_server hale_http_server;

/** Listener options (hale_http_opts_default, then change what you need). */
typedef struct hale_http_opts {
    const char *name;              /**< "main", "admin": used in logs/metrics */
    const char *host;              /**< IPv4/IPv6 literal, "0.0.0.0" for all */
    unsigned port;                 /**< 0 = ephemeral (see hale_http_port) */
    unsigned workers;              /**< 0 = number of online CPUs */
    unsigned max_connections;      /**< global cap; over it, new ones are refused */
    unsigned max_connections_per_ip; /**< 0 = unlimited */
    unsigned max_in_flight;        /**< 0 = unlimited; else shed with 503 */
    size_t max_header_bytes;       /**< request line + headers (431) */
    unsigned max_headers;          /**< header lines (431) */
    size_t max_uri_bytes;          /**< request target (414) */
    size_t max_body_bytes;         /**< body (413) */
    unsigned header_timeout_ms;    /**< whole head must arrive within this */
    unsigned idle_timeout_ms;      /**< idle keep-alive connections are closed */
    unsigned body_timeout_ms;      /**< whole body must arrive within this */
    bool close_idle_at_quiesce;    /**< idle keep-alive connections close at
                                      hale_http_quiesce, not at draining */
    int listen_fd;                 /**< > 0: an inherited listening socket
                                      (socket activation) served instead of
                                      binding host:port; 0 = bind */
    bool accept_later;             /**< accept nothing until hale_http_accept_start()
                                      (connections wait in the backlog) */
} hale_http_opts;

/** What happened to one request: handed to the completion hook (access log,
 * metrics) on the worker thread after the response was sent. Strings are
 * valid only during the call. */
typedef struct hale_http_event {
    const char *server;        /**< opts.name */
    const char *method;        /**< as sent */
    const char *route;         /**< template, or "unmatched" */
    unsigned route_index;      /**< router index, or UINT32_MAX when unmatched */
    const char *path;          /**< raw path as sent (may be long) */
    int status;                /**< 0 when the connection died before a response */
    uint64_t bytes_in;         /**< request bytes read (head and body) */
    uint64_t bytes_out;        /**< response bytes written */
    uint64_t duration_ns;      /**< from the first byte of the head to the last of the answer */
    const char *remote;        /**< "1.2.3.4" */
    const char *request_id;    /**< X-Request-Id (the client's, or made) */
    const char *trace_id;      /**< 32 hex from traceparent, or "" */
    const char *reject_reason; /**< framing/limit reason, or NULL */
} hale_http_event;

/** Callbacks of a listener (all optional). */
typedef struct hale_http_hooks {
    /** Called once per request when it ends. May be NULL. */
    void (*on_complete)(const hale_http_event *ev, void *arg);
    /** Called for HALE_ROUTE_AUTH routes before the handler; returns true to
     * let it through, or sets a response (e.g. 401) and returns false. */
    bool (*auth)(hale_req *req, void *arg);
    /** Called when framing rules or limits refuse a request, with a short
     * reason ("duplicate_content_length", "body_too_large", ...). May be NULL. */
    void (*on_reject)(const char *server, const char *reason, void *arg);
    void *arg;       /**< for on_complete and on_reject */
    void *auth_arg;  /**< for auth */
} hale_http_hooks;

/** Starts serving. Returns the server, or NULL with err (bind failure...).
 * The router and hooks must outlive the server. */
hale_http_server *hale_http_start(const hale_http_opts *o, const hale_router *r,
                                  const hale_http_hooks *hooks, char *err, size_t errlen);

/** The bound port (useful with port 0). */
unsigned hale_http_port(const hale_http_server *s);

/** Starts accepting on a server started with opts.accept_later; nothing
 * otherwise. */
void hale_http_accept_start(hale_http_server *s);

/** From now on every response carries `Connection: close`, and idle
 * keep-alive connections are closed (at once, or at hale_http_quiesce when
 * opts.close_idle_at_quiesce). */
void hale_http_set_draining(hale_http_server *s);

/** Stops accepting: the listening socket is closed at once, so new
 * connections are refused; connections already open keep being served.
 * An inherited socket (opts.listen_fd) is only left, never shut: the
 * connections queued in its backlog stay there for the next process the
 * parent starts on it. Returns 0, or -1 if already quiesced. */
int hale_http_quiesce(hale_http_server *s);

/** Requests whose head was received and whose answer is not yet sent. */
unsigned hale_http_in_flight(const hale_http_server *s);

/** Connections open now (accepted, not yet closed), whatever their state. */
unsigned hale_http_connections(const hale_http_server *s);

/** Stops the worker threads and closes every connection. A request still
 * held by another thread (suspended) is cancelled safely: its
 * hale_req_resume() later frees it instead of answering, and the server's
 * memory lives until then. */
void hale_http_stop(hale_http_server *s);

/** Start time (hale_now_ns) of the longest-running handler call now in
 * progress, or 0 when no handler is running: the liveness watchdog uses it
 * to see a stuck worker. */
uint64_t hale_http_oldest_busy_ns(const hale_http_server *s);

/** Hands an already-connected stream socket to the server, as if it had
 * been accepted from 127.0.0.1 (fuzzers and tests feed raw bytes through a
 * socketpair this way, in-process). The server owns fd afterwards.
 * Returns 0, or -1 with err. */
int hale_http_adopt_fd(hale_http_server *s, int fd, char *err, size_t errlen);

/** Number of worker threads the server runs. */
unsigned hale_http_workers(const hale_http_server *s);

/* ---- request ---- */
/** The method ("GET", ...). */
const char *hale_req_method(const hale_req *r);
const char *hale_req_path(const hale_req *r, size_t *len); /**< raw, no query */
const char *hale_req_query(const hale_req *r);             /**< raw, "" if none */
const char *hale_req_route(const hale_req *r);             /**< template */
/** Raw (percent-encoded) value of a route capture, or NULL. */
const char *hale_req_param(const hale_req *r, const char *name, size_t *len);
/** A request header (case-insensitive name), or NULL: the first field line
 * of that name. */
const char *hale_req_header(const hale_req *r, const char *name);
/** Calls fn for every field line named `name` (case-insensitive), in order. */
void hale_req_header_each(const hale_req *r, const char *name,
                          void (*fn)(const char *value, void *arg), void *arg);
/** The body (NUL-terminated for convenience; may contain NULs). */
const char *hale_req_body(const hale_req *r, size_t *len);
/** The request id (X-Request-Id as received when valid, else a new one). */
const char *hale_req_id(const hale_req *r);
/** The client address ("1.2.3.4", "::1"). */
const char *hale_req_remote(const hale_req *r);

/** Percent-decodes src[0..n) into out (replacing its contents). '+' is kept
 * as is unless plus_is_space. Returns 0, or -1 on a malformed escape. */
int hale_percent_decode(const char *src, size_t n, bool plus_is_space, hale_buf *out);
/** Finds `name` in a raw query string and decodes its value into out.
 * Returns 1 when found, 0 when absent, -1 when malformed. */
int hale_query_get(const char *query, const char *name, hale_buf *out);

/** @name Deferred answers
 * A handler that hands its work to another thread (e.g. a store's writer,
 * so that one commit serves many connections) calls hale_req_suspend()
 * BEFORE handing it off and returns without a response: the worker thread
 * goes on serving other connections. The other thread then sets the
 * response with hale_resp_* and calls hale_req_resume() exactly once; from
 * the hand-off until then, only that thread may touch the request (its
 * headers and body stay valid). resume wakes the owning worker through an
 * eventfd; it never blocks. The request still counts as in flight, so a
 * drain waits for it; if the client went away meanwhile, or the server was
 * stopped, resume frees it without answering.
 * @{ */
/** Called by the handler before handing r to another thread. */
void hale_req_suspend(hale_req *r);
/** Called by that thread once, after setting the response. */
void hale_req_resume(hale_req *r);
/** @} */

/* ---- response (exactly one per request) ---- */
/** Copies body. */
void hale_resp_send(hale_req *r, int status, const char *ctype, const void *body, size_t n);
/** Takes ownership of body (malloc'd). */
void hale_resp_take(hale_req *r, int status, const char *ctype, char *body, size_t n);
/** body must stay valid forever (string literal). */
void hale_resp_static(hale_req *r, int status, const char *ctype, const char *body, size_t n);
/** JSON error {"error": error, "detail": detail}. */
void hale_resp_error(hale_req *r, int status, const char *error, const char *detail);
/** Adds a response header (copied). At most 8 per response; returns -1 over. */
int hale_resp_header(hale_req *r, const char *name, const char *value);
/** True once a response was set. */
bool hale_resp_is_set(const hale_req *r);

#pragma GCC visibility pop

#endif
