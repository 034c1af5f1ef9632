/* http_parse: see http_parse.h. A byte-at-a-time state machine over the
 * request head (so a refusal comes as early as the bytes allow and any split
 * gives the same answer), then one pass over the finished fields for the
 * framing decisions. The chunked coding is in http_chunked.c. */
#include "http_parse_int.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* ---- character classes (RFC 9110 5.6.2, RFC 3986 2) ---- */

unsigned char hale_h1_cls[256];

/* Filled once when the program loads, before any thread exists: the
 * parser then only reads it (no check, no race, on its hot path). */
__attribute__((constructor)) static void cls_init(void) {
    unsigned char *t = hale_h1_cls;
    for (int c = 0x21; c <= 0x7e; c++) t[c] |= C_VCHAR;
    for (int c = 0x80; c <= 0xff; c++) t[c] |= C_VCHAR; /* obs-text in values */
    const char *tch = "!#$%&'*+-.^_`|~";
    const char *unres_sub = "-._~!$&'()*+,;=";
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (alnum || (c && strchr(tch, c))) t[c] |= C_TCHAR;
        if (alnum || (c && strchr(unres_sub, c)) || (c && strchr(":@/?%", c))) t[c] |= C_TARGET;
        if (alnum || (c && strchr(unres_sub, c)) || (c && strchr(":%[]", c))) t[c] |= C_HOST;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) t[c] |= C_HEX;
    }
}

#define BAD(reason, detail) hale_h1_fail(err, 400, reason, detail)

/* ---- the head ---- */

enum {
    S_START = 0, S_START_LF, S_METHOD, S_TARGET, S_VERSION, S_RL_LF,
    S_LINE, S_NAME, S_VALUE, S_VALUE_LF, S_END_LF, S_DONE,
};

#define MAX_LEADING_EMPTY 8

void hale_h1_reset(hale_h1_parser *p) {
    memset(p, 0, sizeof *p);
}

int hale_h1_progress(const hale_h1_parser *p) {
    if (p->state == S_DONE) return 2;
    return p->state >= S_RL_LF && p->state <= S_END_LF && p->head.target_len ? 1 : 0;
}

int hale_h1_find(const char *buf, const hale_h1_field *f, unsigned n, const char *name) {
    size_t len = strlen(name);
    for (unsigned i = 0; i < n; i++)
        if (f[i].name_len == len && strncasecmp(buf + f[i].name_off, name, len) == 0) return (int)i;
    return -1;
}

int hale_h1_lists(const char *v, size_t len, const char *token) {
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < len && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0) return 1;
    }
    return 0;
}

static int valid_host(const char *v, size_t n);

/* The target so far, t[0..k), is an http(s) URI still in its authority,
 * where an IP-literal's '[' and ']' may appear (RFC 3986 3.2.2). */
static int in_authority(const char *t, size_t k) {
    size_t sl;
    if (k >= 7 && strncasecmp(t, "http://", 7) == 0) sl = 7;
    else if (k >= 8 && strncasecmp(t, "https://", 8) == 0) sl = 8;
    else return 0;
    return !memchr(t + sl, '/', k - sl) && !memchr(t + sl, '?', k - sl);
}

/* The request line is complete: check the target and version. */
static hale_h1_status finish_request_line(hale_h1_parser *p, const char *buf, hale_h1_error *err) {
    hale_h1_head *h = &p->head;
    const char *v = buf + p->line_start; /* the version, up to the CR */
    size_t vlen = p->pos - p->line_start;
    if (vlen == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
        h->minor = v[7] - '0';
    } else if (vlen == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' &&
               v[6] == '.' && v[7] >= '0' && v[7] <= '9') {
        return hale_h1_fail(err, 505, "unsupported_version", "only HTTP/1.0 and HTTP/1.1 are served");
    } else {
        return BAD("bad_version", "the request line must end with HTTP/1.0 or HTTP/1.1");
    }
    const char *t = buf + h->target_off;
    size_t n = h->target_len; /* its characters and '%' escapes were checked byte by byte */
    h->form = HALE_H1_ORIGIN;
    h->path_off = h->target_off;
    h->path_len = h->target_len;
    if (t[0] == '/') return HALE_H1_MORE;
    if (n == 1 && t[0] == '*') {
        if (h->method_len != 7 || memcmp(buf + h->method_off, "OPTIONS", 7) != 0)
            return BAD("bad_target", "the target \"*\" is only for OPTIONS");
        h->form = HALE_H1_ASTERISK;
        return HALE_H1_MORE;
    }
    /* absolute-form (RFC 9112 3.2.2): http or https, an authority, then an
     * optional path; no userinfo (RFC 9110 4.2.4), no empty host (4.2.1) */
    size_t sl;
    if (n > 7 && strncasecmp(t, "http://", 7) == 0) sl = 7;
    else if (n > 8 && strncasecmp(t, "https://", 8) == 0) sl = 8;
    else return BAD("bad_target", "the target must be an absolute path or an http(s) URI");
    size_t a = sl;
    while (a < n && t[a] != '/' && t[a] != '?') {
        if (t[a] == '@') return BAD("bad_target", "a target URI must not carry userinfo");
        a++;
    }
    if (a == sl || t[sl] == ':') return BAD("bad_target", "the target URI has an empty host");
    /* the same host [":" port] grammar as the Host field */
    if (!valid_host(t + sl, a - sl)) return BAD("bad_target", "the target URI's authority is malformed");
    h->form = HALE_H1_ABSOLUTE;
    h->path_off = h->target_off + (uint32_t)a;
    h->path_len = (uint32_t)(n - a);
    return HALE_H1_MORE;
}

/* The host part of an absolute-form target, for the Host comparison. */
static void target_authority(const hale_h1_head *h, const char *buf, const char **a, size_t *alen) {
    const char *t = buf + h->target_off;
    size_t sl = (t[4] == ':' || t[4] == '/') ? 7 : 8;
    *a = t + sl;
    *alen = h->path_off - h->target_off - sl;
}

/* IP-literal = "[" ( IPv6address / IPvFuture ) "]" (RFC 3986 3.2.2): the
 * part between the brackets. */
static int valid_ip_literal(const char *s, size_t n) {
    if (n >= 3 && (s[0] == 'v' || s[0] == 'V')) { /* "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
        size_t i = 1;
        while (i < n && IS(s[i], C_HEX)) i++;
        if (i == 1 || i + 1 >= n || s[i] != '.') return 0;
        for (i++; i < n; i++)
            if (!IS(s[i], C_HOST) || s[i] == '%' || s[i] == '[' || s[i] == ']') return 0;
        return 1;
    }
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (n == 0 || n >= sizeof tmp) return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

static int valid_host(const char *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!IS(v[i], C_HOST)) return 0;
        /* pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 2.1) */
        if (v[i] == '%' && (i + 2 >= n || !IS(v[i + 1], C_HEX) || !IS(v[i + 2], C_HEX))) return 0;
    }
    if (n && v[0] == ':') return 0;
    /* a port, when present, is digits */
    const char *colon = NULL;
    if (n && v[0] == '[') {
        const char *rb = memchr(v, ']', n);
        if (!rb || !valid_ip_literal(v + 1, (size_t)(rb - v - 1))) return 0;
        if ((size_t)(rb - v) + 1 < n) {
            if (rb[1] != ':') return 0;
            colon = rb + 1;
        }
    } else {
        colon = memchr(v, ':', n);
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - v))) return 0;
        if (memchr(v, '[', n) || memchr(v, ']', n)) return 0;
    }
    if (colon)
        for (const char *q = colon + 1; q < v + n; q++)
            if (*q < '0' || *q > '9') return 0;
    return 1;
}

/* All fields are in: decide the framing and the connection's fate. */
static hale_h1_status finish_head(hale_h1_parser *p, const char *buf, const hale_h1_field *f,
                                  hale_h1_head *out, hale_h1_error *err) {
    hale_h1_head *h = &p->head;
    unsigned n_host = 0, n_cl = 0, n_te = 0;
    int conn_close = 0, conn_keep = 0;
    uint64_t cl = 0;
    int cl_conflict = 0;
    h->nfields = p->nfields;
    for (unsigned i = 0; i < p->nfields; i++) {
        const char *name = buf + f[i].name_off, *v = buf + f[i].value_off;
        uint32_t nl = f[i].name_len, vl = f[i].value_len;
        if (nl == 4 && strncasecmp(name, "Host", 4) == 0) {
            if (++n_host > 1) return BAD("duplicate_host", "the request has more than one Host field");
            if (!valid_host(v, vl)) return BAD("bad_host", "the Host field is not a valid host[:port]");
            h->has_host = 1;
            h->host_off = f[i].value_off;
            h->host_len = vl;
        } else if (nl == 14 && strncasecmp(name, "Content-Length", 14) == 0) {
            uint64_t x = 0;
            if (vl == 0 || vl > 19) return BAD("bad_content_length", "Content-Length must be one decimal number");
            for (uint32_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return BAD("bad_content_length", "Content-Length must be one decimal number");
                x = x * 10 + (uint64_t)(v[k] - '0');
            }
            if (n_cl++ && x != cl) cl_conflict = 1;
            cl = x;
        } else if (nl == 17 && strncasecmp(name, "Transfer-Encoding", 17) == 0) {
            n_te++;
            if (n_te > 1 || vl != 7 || strncasecmp(v, "chunked", 7) != 0) h->chunked = -1;
            else h->chunked = 1;
        } else if (nl == 10 && strncasecmp(name, "Connection", 10) == 0) {
            if (hale_h1_lists(v, vl, "close")) conn_close = 1;
            if (hale_h1_lists(v, vl, "keep-alive")) conn_keep = 1;
        } else if (nl == 6 && strncasecmp(name, "Expect", 6) == 0) {
            if (h->minor == 0) continue; /* RFC 9110 10.1.1: ignored in HTTP/1.0 */
            if (vl == 12 && strncasecmp(v, "100-continue", 12) == 0) h->expect_continue = 1;
            else return hale_h1_fail(err, 417, "expectation_failed", "the only expectation served is 100-continue");
        }
    }
    if (n_host == 0 && h->minor == 1) return BAD("missing_host", "an HTTP/1.1 request must have a Host field");
    if (h->form == HALE_H1_ABSOLUTE && h->has_host) {
        const char *a;
        size_t alen;
        target_authority(h, buf, &a, &alen);
        if (alen != h->host_len || strncasecmp(a, buf + h->host_off, alen) != 0)
            return BAD("host_mismatch", "the Host field differs from the target URI's authority");
    }
    if (cl_conflict) return BAD("conflicting_content_length", "the request has different Content-Length values");
    if (n_cl > 1) return BAD("duplicate_content_length", "the request has more than one Content-Length field");
    if (n_te) {
        if (n_cl) return BAD("content_length_with_transfer_encoding",
                             "Content-Length and Transfer-Encoding together are ambiguous");
        if (h->minor == 0) return BAD("transfer_encoding_in_http10",
                                      "Transfer-Encoding is not allowed in HTTP/1.0");
        if (h->chunked != 1) return hale_h1_fail(err, 501, "unsupported_transfer_encoding",
                                         "only Transfer-Encoding: chunked is supported");
    } else {
        h->chunked = 0;
    }
    h->has_content_length = n_cl == 1;
    h->content_length = cl;
    h->keep_alive = h->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    h->head_len = p->pos;
    *out = *h;
    return HALE_H1_DONE;
}

hale_h1_status hale_h1_parse(hale_h1_parser *p, const char *buf, size_t len,
                             const hale_h1_limits *lim, hale_h1_field *fields,
                             hale_h1_head *out, hale_h1_error *err) {
    hale_h1_head *h = &p->head;
    size_t pos = p->pos;
    hale_h1_status st;
    for (; pos < len; pos++) {
        unsigned char c = (unsigned char)buf[pos];
        if (pos - p->skipped >= lim->max_head_bytes)
            return hale_h1_fail(err, 431, "headers_too_large", "the request head is larger than the limit");
        switch (p->state) {
        case S_START:
            if (c == '\r') { p->state = S_START_LF; break; }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            p->line_start = pos;
            h->method_off = (uint32_t)pos;
            p->state = S_METHOD;
            /* fall through */
        case S_METHOD:
            if (IS(c, C_TCHAR)) break;
            if (c == ' ' && pos > h->method_off) {
                h->method_len = (uint32_t)(pos - h->method_off);
                h->target_off = (uint32_t)(pos + 1);
                p->state = S_TARGET;
                break;
            }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            return BAD("bad_request_line", "the request line must be: method SP target SP HTTP/1.x");
        case S_START_LF:
            if (c != '\n') return BAD("bare_cr", "a CR must be followed by LF");
            if (++p->empty_lines > MAX_LEADING_EMPTY)
                return BAD("bad_request_line", "too many empty lines before the request line");
            p->skipped = pos + 1;
            p->state = S_START;
            break;
        case S_TARGET: {
            /* k target bytes before c; a '%' must be followed by two hex
             * digits (RFC 3986 2.1), refused at the first byte that is not */
            const char *t = buf + h->target_off;
            size_t k = pos - h->target_off;
            int pct_open = (k >= 1 && t[k - 1] == '%') || (k >= 2 && t[k - 2] == '%');
            if (c == ' ') {
                if (k == 0)
                    return BAD("bad_request_line", "the request line must be: method SP target SP HTTP/1.x");
                if (pct_open) return BAD("bad_target", "a '%' in the target must be followed by two hex digits");
                h->target_len = (uint32_t)k;
                p->line_start = pos + 1;
                p->state = S_VERSION;
                break;
            }
            if (k >= lim->max_target_bytes)
                return hale_h1_fail(err, 414, "uri_too_long", "the request target is longer than the limit");
            if (IS(c, C_TARGET) || ((c == '[' || c == ']') && in_authority(t, k))) {
                if (pct_open && !IS(c, C_HEX))
                    return BAD("bad_target", "a '%' in the target must be followed by two hex digits");
                break;
            }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            if (c == '\r') return BAD("bad_request_line", "the request line must be: method SP target SP HTTP/1.x");
            return BAD("bad_target", "the request target has a character RFC 3986 does not allow");
        }
        case S_VERSION:
            if (c == '\r') {
                p->pos = pos;
                if ((st = finish_request_line(p, buf, err)) != HALE_H1_MORE) return st;
                p->state = S_RL_LF;
                break;
            }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            if (c == ' ') return BAD("bad_request_line", "the request line must be: method SP target SP HTTP/1.x");
            if (pos - p->line_start >= 8) return BAD("bad_version", "the request line must end with HTTP/1.0 or HTTP/1.1");
            if (!IS(c, C_VCHAR) || c >= 0x80) return BAD("bad_version", "the request line must end with HTTP/1.0 or HTTP/1.1");
            break;
        case S_RL_LF:
            if (c != '\n') return BAD("bare_cr", "a CR must be followed by LF");
            p->nfields = 0;
            p->state = S_LINE;
            break;
        case S_LINE:
            p->line_start = pos;
            if (c == '\r') { p->state = S_END_LF; break; }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            if (c == ' ' || c == '\t') {
                if (p->nfields == 0)
                    return BAD("bad_header_name", "whitespace before the first field line");
                return BAD("obsolete_line_folding", "obs-fold continuation lines are not accepted");
            }
            if (!IS(c, C_TCHAR)) return BAD("bad_header_name", "a field name must be a token");
            if (p->nfields >= lim->max_fields)
                return hale_h1_fail(err, 431, "too_many_headers", "the request has more fields than the limit");
            fields[p->nfields].name_off = (uint32_t)pos;
            p->state = S_NAME;
            break;
        case S_NAME:
            if (IS(c, C_TCHAR)) break;
            if (c == ':') {
                hale_h1_field *f = &fields[p->nfields];
                f->name_len = (uint32_t)(pos - f->name_off);
                f->value_off = (uint32_t)(pos + 1);
                f->value_len = 0;
                p->state = S_VALUE;
                break;
            }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            return BAD("bad_header_name", "a field name must be a token followed by ':'");
        case S_VALUE: {
            hale_h1_field *f = &fields[p->nfields];
            if (c == '\r') { p->state = S_VALUE_LF; break; }
            if (c == ' ' || c == '\t') {
                if (f->value_len == 0) f->value_off = (uint32_t)(pos + 1); /* leading OWS */
                break;
            }
            if (c == '\n') return BAD("bare_lf", "lines must end with CRLF");
            if (!IS(c, C_VCHAR))
                return BAD("bad_header_value", "a field value has a control character (NUL, CR, LF...)");
            f->value_len = (uint32_t)(pos + 1 - f->value_off); /* up to the last visible byte */
            break;
        }
        case S_VALUE_LF:
            if (c != '\n') return BAD("bad_header_value", "a CR inside a field value must end the line");
            p->nfields++;
            p->state = S_LINE;
            break;
        case S_END_LF:
            if (c != '\n') return BAD("bare_cr", "a CR must be followed by LF");
            p->pos = pos + 1;
            p->state = S_DONE;
            return finish_head(p, buf, fields, out, err);
        default:
            return BAD("bad_request_line", "the parser was called after the head was complete");
        }
    }
    p->pos = pos;
    return HALE_H1_MORE;
}
