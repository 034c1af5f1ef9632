/* http_internal: the state shared by the engine's files: the server and its
 * workers (http_server.c), connections and their request cycle
 * (http_conn.c), and the request/response API (http_req.c). Not a public
 * header: only those files include it.
 *
 * Ownership in one paragraph: a server owns its workers; a worker owns its
 * connections (a doubly linked list, touched only by the worker's thread);
 * a connection embeds its one current request. A request handed to another
 * thread (hale_req_suspend) belongs to that thread until hale_req_resume,
 * which queues the connection on its worker's `done` list; a connection
 * whose client went away in between is kept (marked dead) until then. The
 * server is freed when hale_http_stop has run AND no request is still held
 * by another thread (`refs`), so a late resume never touches freed memory. */
#ifndef HALE_HTTP_INTERNAL_H
#define HALE_HTTP_INTERNAL_H

#include "http.h"
#include "http_parse.h"

#include <pthread.h>
#include <stdatomic.h>

#define HALE_RESP_MAX_HEADERS 8
#define HALE_HTTP_MAX_BUSY_SLOTS 256

typedef enum {
    BODY_STATIC = 0, /* persistent memory, not ours */
    BODY_OWNED = 1,  /* malloc'd, freed after sending */
} hale_body_kind;

typedef struct hale_conn hale_conn;
typedef struct hale_http_worker hale_http_worker;

/* Open connections of one client address (server.max_connections_per_ip). */
typedef struct hale_ip_node {
    struct hale_ip_node *next;
    unsigned char addr[16];
    unsigned count;
} hale_ip_node;
#define HALE_HTTP_IP_BUCKETS 4096

struct hale_req {
    hale_http_server *srv;
    hale_conn *conn;
    const char *buf;             /* the connection's input: the head's bytes */
    const hale_h1_field *fields;
    unsigned nfields;
    const char *method;          /* NUL-terminated in place */
    const char *uri;             /* routed path + query, NUL-terminated */
    size_t uri_len;
    size_t path_len;             /* uri[0..path_len) is the path */
    const char *query;           /* after '?', or "" */
    hale_route_match match;
    const char *route_label;
    unsigned route_index;
    int head_only;               /* HEAD: no body in the response */
    int suspended;               /* handed to another thread */
    int close_after;             /* close the connection after the response */
    hale_buf body;
    uint64_t bytes_in;
    uint64_t t_start_ns;
    const char *reject_reason;
    char req_id[65];
    char trace_id[33];

    /* response */
    int status;
    const char *ctype;
    char *resp_body;
    size_t resp_len;
    hale_body_kind resp_kind;
    size_t nheaders;
    char *hname[HALE_RESP_MAX_HEADERS];
    char *hvalue[HALE_RESP_MAX_HEADERS];
};

/* Connection states. */
enum {
    CONN_IDLE = 0,   /* between requests, nothing buffered */
    CONN_HEAD,       /* reading a request head */
    CONN_BODY,       /* reading its body */
    CONN_HANDLER,    /* held by another thread (suspended) */
    CONN_WRITE,      /* sending the response */
    CONN_LINGER,     /* response sent, write side shut: draining input */
};

struct hale_conn {
    hale_http_worker *w;
    hale_conn *prev, *next;
    int fd;
    int state;
    int readable, writable;       /* edge-triggered readiness we still hold */
    int dead;                     /* fd closed; kept for a suspended request */
    int keep_alive;
    unsigned served;              /* requests answered on this connection */
    int rdhup;                    /* the peer shut its side: read to EOF */
    int counted;                  /* the request counts as in flight */
    hale_ip_node *ip;             /* per-address count, or NULL */
    char *in;                     /* input buffer (fields array in front) */
    hale_h1_field *fields;
    size_t in_len, in_cap;
    size_t head_len;              /* bytes of the current head in `in` */
    size_t body_pos;              /* next unconsumed byte after the head */
    uint64_t body_left;           /* Content-Length bytes still to come */
    int chunked;
    hale_h1_parser parser;
    hale_h1_chunked chunk;
    uint64_t deadline_ns;         /* 0 = none */
    hale_buf out;                 /* response head */
    size_t out_off;               /* bytes of head+body already sent */
    size_t linger_bytes;
    hale_conn *done_next;         /* on the worker's done list */
    char remote[64];
    hale_req req;
};

struct hale_http_worker {
    hale_http_server *srv;
    pthread_t thread;
    int epfd, evfd;
    int listening;                /* the listening socket is in epfd */
    int drained;                  /* idle connections closed for the drain */
    hale_conn *conns;             /* live connections */
    unsigned nconns;
    pthread_mutex_t mu;           /* guards the fields below */
    hale_conn *done;              /* resumed requests to answer */
    int *adopted;                 /* fds handed over by hale_http_adopt_fd */
    size_t nadopted, adopted_cap;
    int stopped;                  /* the thread has left its loop */
    /* worker-thread only */
    char *spare[32];              /* cached input buffers */
    unsigned nspare;
    uint64_t next_sweep_ns;
    uint64_t accept_paused_ns;    /* out of descriptors: listen again then */
    char date[40];
    long date_sec;
};

struct hale_http_server {
    hale_http_opts o;
    const hale_router *router;
    hale_http_hooks hooks;
    char name[16];
    int lfd;
    int inherited;                /* lfd came from opts.listen_fd: never shut it */
    unsigned port;
    unsigned nworkers;
    hale_http_worker *workers;
    hale_h1_limits limits;
    size_t buf_size;              /* bytes of one input buffer */
    atomic_uint in_flight;
    atomic_uint nconns;
    atomic_uint next_worker;
    atomic_int draining, quiesced, stopping;
    atomic_int accept_held;       /* opts.accept_later until hale_http_accept_start */
    atomic_int refs;              /* 1 (until stop) + suspended requests */
    pthread_mutex_t ip_mu;        /* guards ip_buckets */
    hale_ip_node **ip_buckets;    /* NULL without a per-address limit */
    atomic_uint next_slot;
    _Atomic uint64_t busy[HALE_HTTP_MAX_BUSY_SLOTS]; /* handler start, 0 = idle */
};

/* http_req.c */
void hale_req_reset_response(hale_req *r);

/* http_ids.c: X-Request-Id (echoed when sane, else random) and trace id. */
void hale_req_set_ids(hale_req *r);
void hale_req_random_id(char out[33]);

/* http_resp.c: writes r's response head into o (replacing it). `close`:
 * the connection closes after it; `http10`: an HTTP/1.0 request, which
 * needs an explicit keep-alive. Sets r->resp_len to 0 when the status
 * carries no body; a HEAD keeps it (the body is then not sent). */
void hale_http_resp_head(hale_buf *o, hale_http_worker *w, hale_req *r, int close, int http10);

/* http_conn.c: called by the worker loop in http_server.c */
void hale_conn_open(hale_http_worker *w, int fd, const char *remote, hale_ip_node *ip);
void hale_conn_event(hale_conn *c, unsigned events);
void hale_conn_resumed(hale_conn *c);
void hale_conn_sweep(hale_http_worker *w, uint64_t now);
void hale_conn_drain_idle(hale_http_worker *w);
void hale_conn_close_all(hale_http_worker *w);
void hale_conn_free_dead(hale_conn *c);  /* on the worker's thread */
/* the same from another thread (a resume after the worker stopped): the
 * worker's buffer cache is left alone (TSan: two threads filled it) */
void hale_conn_free_dead_elsewhere(hale_conn *c);

/* http_conn.c, for http_request.c */
void hale_conn_respond(hale_conn *c);  /* send the response set on c->req */
void hale_conn_close(hale_conn *c);

/* http_request.c: the request, for http_conn.c's state machine (each
 * int function's return is described at its definition; -1 always means
 * the connection is gone or refused). */
void hale_conn_refuse(hale_conn *c, int status, const char *reason, const char *detail);
void hale_conn_keep_what_parsed(hale_conn *c);
void hale_conn_terminate_head(hale_conn *c, const hale_h1_head *h);
void hale_conn_run_handler(hale_conn *c);
int hale_conn_begin_request(hale_conn *c, const hale_h1_head *h);
int hale_conn_take_body(hale_conn *c);
int hale_conn_read_body_direct(hale_conn *c);

static inline uint64_t hale_ms_ns(uint64_t ms) { return ms * 1000000u; }

/* http_server.c: per-address accounting and the server's lifetime */
void hale_http_ip_release(hale_http_server *s, hale_ip_node *ip);
void hale_http_unref(hale_http_server *s);
/* Keep-alive connections idle between requests must close now: draining,
 * and (with close_idle_at_quiesce) the listener already closed. */
int hale_http_close_idle_now(const hale_http_server *s);

#endif
