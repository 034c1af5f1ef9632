/* http_req: the engine-independent half of the request/response API:
 * accessors, percent-decoding, query parsing and response setters. */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *hale_req_method(const hale_req *r) { return r->method; }

const char *hale_req_path(const hale_req *r, size_t *len) {
    if (len) *len = r->path_len;
    return r->uri;
}

const char *hale_req_query(const hale_req *r) { return r->query; }

const char *hale_req_route(const hale_req *r) { return r->route_label; }

const char *hale_req_param(const hale_req *r, const char *name, size_t *len) {
    for (size_t i = 0; i < r->match.nparams; i++) {
        if (strcmp(r->match.param_name[i], name) == 0) {
            if (len) *len = r->match.param_len[i];
            return r->match.param_ptr[i];
        }
    }
    return NULL;
}

const char *hale_req_header(const hale_req *r, const char *name) {
    int i = r->fields ? hale_h1_find(r->buf, r->fields, r->nfields, name) : -1;
    return i < 0 ? NULL : r->buf + r->fields[i].value_off;
}

void hale_req_header_each(const hale_req *r, const char *name,
                          void (*fn)(const char *value, void *arg), void *arg) {
    size_t len = strlen(name);
    for (unsigned i = 0; r->fields && i < r->nfields; i++)
        if (r->fields[i].name_len == len && strncasecmp(r->buf + r->fields[i].name_off, name, len) == 0)
            fn(r->buf + r->fields[i].value_off, arg);
}

const char *hale_req_body(const hale_req *r, size_t *len) {
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *hale_req_id(const hale_req *r) { return r->req_id; }

const char *hale_req_remote(const hale_req *r) { return r->conn ? r->conn->remote : ""; }

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int hale_percent_decode(const char *src, size_t n, bool plus_is_space, hale_buf *out) {
    out->len = 0;
    hale_buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval((unsigned char)src[i + 1]), l = hexval((unsigned char)src[i + 2]);
            if (h < 0 || l < 0) return -1;
            out->data[out->len++] = (char)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out->data[out->len++] = ' ';
        } else {
            out->data[out->len++] = c;
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

int hale_query_get(const char *query, const char *name, hale_buf *out) {
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        if (klen == nlen && memcmp(p, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vlen = eq ? plen - klen - 1 : 0;
            return hale_percent_decode(v, vlen, true, out) == 0 ? 1 : -1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

static void drop_body(hale_req *r) {
    if (r->resp_kind == BODY_OWNED) free(r->resp_body);
    r->resp_body = NULL;
    r->resp_len = 0;
    r->resp_kind = BODY_STATIC;
}

void hale_req_reset_response(hale_req *r) {
    drop_body(r);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->hname[i]);
        free(r->hvalue[i]);
    }
    r->nheaders = 0;
    r->status = 0;
}

void hale_resp_take(hale_req *r, int status, const char *ctype, char *body, size_t n) {
    drop_body(r);
    r->status = status;
    r->ctype = ctype;
    r->resp_body = body;
    r->resp_len = n;
    r->resp_kind = BODY_OWNED;
}

void hale_resp_send(hale_req *r, int status, const char *ctype, const void *body, size_t n) {
    char *copy = xmalloc(n + 1);
    if (n) memcpy(copy, body, n);
    hale_resp_take(r, status, ctype, copy, n);
}

void hale_resp_static(hale_req *r, int status, const char *ctype, const char *body, size_t n) {
    drop_body(r);
    r->status = status;
    r->ctype = ctype;
    r->resp_body = (char *)body;
    r->resp_len = n;
    r->resp_kind = BODY_STATIC;
}

void hale_resp_error(hale_req *r, int status, const char *error, const char *detail) {
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_puts(&b, "{\"error\":\"");
    hale_buf_json_escape(&b, error, strlen(error));
    hale_buf_puts(&b, "\",\"detail\":\"");
    hale_buf_json_escape(&b, detail, strlen(detail));
    hale_buf_puts(&b, "\"}\n");
    hale_resp_take(r, status, "application/json", b.data, b.len);
}

int hale_resp_header(hale_req *r, const char *name, const char *value) {
    if (r->nheaders == HALE_RESP_MAX_HEADERS) return -1;
    r->hname[r->nheaders] = xstrdup(name);
    r->hvalue[r->nheaders] = xstrdup(value);
    r->nheaders++;
    return 0;
}

bool hale_resp_is_set(const hale_req *r) { return r->status != 0; }
