/* http_resp: the response head: status line, Date (cached per second per
 * worker), framing, the handler's headers, the cache policy default,
 * X-Request-Id and Connection. printf-free: it runs for every response. */
#include "http_internal.h"

#include <string.h>
#include <strings.h>
#include <time.h>

/* Decimal digits of v, written backwards ending at end; returns the start. */
static char *put_u64(char *end, uint64_t v) {
    do *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

static const char *reason_phrase(int st) {
    switch (st) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return st < 300 ? "OK" : st < 400 ? "Redirect" : st < 500 ? "Client Error" : "Server Error";
    }
}

/* The IMF-fixdate of now, cached per second on the worker. */
static const char *http_date(hale_http_worker *w) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != w->date_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_sec = ts.tv_sec;
    }
    return w->date;
}

static int has_header(const hale_req *r, const char *name) {
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->hname[i], name) == 0) return 1;
    return 0;
}

void hale_http_resp_head(hale_buf *o, hale_http_worker *w, hale_req *r, int close, int http10) {
    int st = r->status;
    int no_body = st == 204 || st == 304 || st < 200;
    char num[24], *end = num + sizeof num;
    o->len = 0;
    hale_buf_puts(o, "HTTP/1.1 ");
    char *d = put_u64(end, st > 0 && st < 1000 ? (uint64_t)st : 500);
    hale_buf_append(o, d, (size_t)(end - d));
    hale_buf_puts(o, " ");
    hale_buf_puts(o, reason_phrase(st));
    hale_buf_puts(o, "\r\nDate: ");
    hale_buf_puts(o, http_date(w));
    if (r->ctype && !no_body) {
        hale_buf_puts(o, "\r\nContent-Type: ");
        hale_buf_puts(o, r->ctype);
    }
    /* a 304 may state the length its 200 would have (RFC 9110 8.6): a
     * handler that gives it the representation gets that length, never
     * its bytes; an empty 304 gets no Content-Length at all */
    if (!no_body || (st == 304 && r->resp_len)) {
        hale_buf_puts(o, "\r\nContent-Length: ");
        d = put_u64(end, r->resp_len);
        hale_buf_append(o, d, (size_t)(end - d));
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        hale_buf_puts(o, "\r\n");
        hale_buf_puts(o, r->hname[i]);
        hale_buf_puts(o, ": ");
        hale_buf_puts(o, r->hvalue[i]);
    }
    if (!has_header(r, "Cache-Control")) hale_buf_puts(o, "\r\nCache-Control: no-store");
    if (r->req_id[0]) {
        hale_buf_puts(o, "\r\nX-Request-Id: ");
        hale_buf_puts(o, r->req_id);
    }
    if (close) hale_buf_puts(o, "\r\nConnection: close");
    else if (http10) hale_buf_puts(o, "\r\nConnection: keep-alive");
    hale_buf_puts(o, "\r\n\r\n");
    if (no_body) r->resp_len = 0; /* HEAD keeps it: flush_out sends no body */
}
