/* http_internal: the request state shared by the engine adapter
 * (http_engine.c) and the engine-independent request API (http_req.c).
 * Not a public header: only those two files include it. */
#ifndef HALE_HTTP_INTERNAL_H
#define HALE_HTTP_INTERNAL_H

#include "http.h"

#include <stdatomic.h>

#define HALE_RESP_MAX_HEADERS 8

typedef enum {
    BODY_STATIC = 0, /* persistent memory, not ours */
    BODY_OWNED = 1,  /* malloc'd, freed by the engine after sending */
} hale_body_kind;

typedef struct conn_ctx conn_ctx; /* per-connection state (http_engine.c) */

struct hale_req {
    hale_http_server *srv;
    conn_ctx *cc;               /* the connection that owns the request */
    void *conn;                 /* engine connection handle */
    const char *method;         /* engine-owned, valid during the request */
    char *uri;                  /* raw request target, owned */
    size_t uri_len;
    size_t path_len;            /* uri[0..path_len) is the path */
    const char *query;          /* after '?', or "" */
    hale_route_match match;
    const char *route_label;
    unsigned route_index;
    int started;                /* the first handler call happened */
    int suspended;              /* handed to another thread (handler thread only) */
    atomic_int resumed;         /* set by hale_req_resume, release */
    int dispatched;             /* the response was queued */
    int close_after;            /* close the connection after the response */
    int counted_in_flight;
    int chunked;
    uint64_t content_length;    /* when has_cl */
    int has_cl;
    hale_buf body;
    uint64_t bytes_in;
    uint64_t t_start_ns;
    const char *reject_reason;
    char remote[64];
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

/* Frees the response parts still owned by the request. */
void hale_req_reset_response(hale_req *r);



/* Implemented by the engine adapter. */
const char *hale_engine_header(void *conn, const char *name);
#endif
