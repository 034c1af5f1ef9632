/* http_decoder: prints hale's parse of one HTTP/1.1 request (R: E1, E6).
 * The tool tests/http/test_h11_diff.py compares with h11, and a way to ask
 * "what does hale make of these bytes" by hand.
 *
 * Reads the bytes from stdin (or the file given), parses ONE request head
 * with hale_h1_parse, then its body (Content-Length: the next N bytes;
 * chunked: hale_h1_chunked_feed), and prints one JSON line:
 *   {"result":"ok","method":..,"target":..,"path":..,"form":..,
 *    "version":"1.1","headers":[[name,value],...],"body_hex":..,
 *    "keep_alive":true,"expect_continue":false,"consumed":N}
 *   {"result":"error","status":400,"reason":"bare_lf","detail":".."}
 *   {"result":"incomplete"}
 * Strings are the bytes as sent; a byte outside printable ASCII is written
 * as \u00XX, so a reader gets the bytes back with .encode("latin-1").
 * "consumed" is the head plus the body: the bytes after it belong to a
 * pipelined follower.
 *
 * Options:
 *   --max-head N, --max-target N, --max-fields N   limits (8192, 4096, 100)
 *   --splits A,B,..  feed the bytes in pieces cut at these offsets, and
 *                    compare with the parse of the whole
 *   --split-all      compare every single cut (1..len-1) and the
 *                    byte-at-a-time feed with the parse of the whole
 *   --batch          the input is a sequence of records, each a decimal
 *                    length, a newline and that many bytes; one JSON line
 *                    is printed per record (the same checks per record), so
 *                    that a test runs thousands of inputs in one process
 * Every call of the parser gets a fresh copy of the bytes received so far
 * (the contract lets the buffer move between calls), allocated to its exact
 * length so that a sanitizer build catches a read past it.
 *
 * Exit: 0 when a result was printed (ok, error or incomplete), 2 on a usage
 * or I/O error, 3 when a split gave another result than the whole (the
 * first differing split and both results on stderr).
 *
 * Depends on http_parse.h and libc only, so that it builds alone:
 *   gcc -std=gnu11 -I src/runtime tests/tools/http_decoder.c src/runtime/http/http_parse.c */
#include "http_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable string ---- */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            perror("http_decoder");
            exit(2);
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_str(sbuf *b, const char *s, size_t n) {
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

static void sb_hex(sbuf *b, const char *s, size_t n) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char e[2] = {hx[(unsigned char)s[i] >> 4], hx[(unsigned char)s[i] & 15]};
        sb_put(b, e, 2);
    }
}

/* ---- one parse, fed in pieces ---- */

/* Feeds data[0..len) cut at cuts[0..ncuts) (ascending, each in 1..len-1)
 * and returns the JSON line (malloc'd). */
static char *decode(const char *data, size_t len, const size_t *cuts, size_t ncuts,
                    const hale_h1_limits *lim) {
    sbuf out = {0};
    hale_h1_field *fields = calloc(lim->max_fields ? lim->max_fields : 1, sizeof *fields);
    if (!fields) {
        perror("http_decoder");
        exit(2);
    }
    hale_h1_parser p;
    hale_h1_reset(&p);
    hale_h1_head head = {0};
    hale_h1_error err = {0};
    hale_h1_status st = HALE_H1_MORE;
    char *copy = NULL;
    size_t piece = 0; /* index of the next cut */
    size_t avail = 0;
    /* the head: one call per piece, each with a fresh copy of the prefix */
    while (st == HALE_H1_MORE && avail < len) {
        avail = piece < ncuts ? cuts[piece++] : len;
        free(copy);
        copy = malloc(avail ? avail : 1);
        if (!copy) {
            perror("http_decoder");
            exit(2);
        }
        memcpy(copy, data, avail);
        st = hale_h1_parse(&p, copy, avail, lim, fields, &head, &err);
    }
    if (st == HALE_H1_MORE) {
        sb_puts(&out, "{\"result\":\"incomplete\"}");
        goto done;
    }
    if (st == HALE_H1_ERROR) goto error;

    /* the body, from the bytes after the head, fed per piece */
    sbuf body = {0};
    size_t off = head.head_len;
    int complete = 1;
    if (head.chunked) {
        hale_h1_chunked ck;
        hale_h1_chunked_reset(&ck);
        hale_h1_chunk_status cs = HALE_H1_CHUNK_MORE;
        /* first the rest of the piece that completed the head, then the
         * pieces after it, as an engine would get them from recv() */
        size_t end = avail;
        for (;;) {
            while (off < end) {
                size_t used = 0, doff = 0, dlen = 0;
                /* an exact copy again, so that a read past it is caught */
                char *piece_copy = malloc(end - off);
                if (!piece_copy) {
                    perror("http_decoder");
                    exit(2);
                }
                memcpy(piece_copy, data + off, end - off);
                cs = hale_h1_chunked_feed(&ck, piece_copy, end - off, lim, &used, &doff, &dlen, &err);
                free(piece_copy);
                if (cs == HALE_H1_CHUNK_ERROR) {
                    free(body.p);
                    goto error;
                }
                if (used > end - off || (cs == HALE_H1_CHUNK_DATA && (dlen == 0 || doff + dlen > used)) ||
                    (cs == HALE_H1_CHUNK_MORE && used != end - off)) {
                    fprintf(stderr, "http_decoder: the chunked decoder consumed out of range\n");
                    abort();
                }
                if (cs == HALE_H1_CHUNK_DATA) sb_put(&body, data + off + doff, dlen);
                off += used;
                if (cs == HALE_H1_CHUNK_DONE) break;
            }
            if (cs == HALE_H1_CHUNK_DONE || end >= len) break;
            end = piece < ncuts ? cuts[piece++] : len;
        }
        complete = cs == HALE_H1_CHUNK_DONE;
    } else if (head.has_content_length) {
        if (head.content_length > len - off) complete = 0;
        else {
            sb_put(&body, data + off, (size_t)head.content_length);
            off += (size_t)head.content_length;
        }
    }
    if (!complete) {
        free(body.p);
        sb_puts(&out, "{\"result\":\"incomplete\"}");
        goto done;
    }
    static const char *forms[] = {"origin", "absolute", "asterisk"};
    sb_puts(&out, "{\"result\":\"ok\",\"method\":");
    sb_json_str(&out, data + head.method_off, head.method_len);
    sb_puts(&out, ",\"target\":");
    sb_json_str(&out, data + head.target_off, head.target_len);
    sb_puts(&out, ",\"path\":");
    sb_json_str(&out, data + head.path_off, head.path_len);
    sb_printf(&out, ",\"form\":\"%s\",\"version\":\"1.%d\",\"headers\":[",
              head.form >= 0 && head.form <= 2 ? forms[head.form] : "?", head.minor);
    for (unsigned i = 0; i < head.nfields; i++) {
        sb_puts(&out, i ? ",[" : "[");
        sb_json_str(&out, data + fields[i].name_off, fields[i].name_len);
        sb_puts(&out, ",");
        sb_json_str(&out, data + fields[i].value_off, fields[i].value_len);
        sb_puts(&out, "]");
    }
    sb_puts(&out, "],\"body_hex\":\"");
    sb_hex(&out, body.p ? body.p : "", body.len);
    sb_printf(&out, "\",\"chunked\":%s,\"keep_alive\":%s,\"expect_continue\":%s,\"consumed\":%zu}",
              head.chunked ? "true" : "false", head.keep_alive ? "true" : "false",
              head.expect_continue ? "true" : "false", off);
    free(body.p);
    goto done;
error:
    sb_printf(&out, "{\"result\":\"error\",\"status\":%d,\"reason\":", err.status);
    sb_json_str(&out, err.reason ? err.reason : "(null)", strlen(err.reason ? err.reason : "(null)"));
    sb_puts(&out, ",\"detail\":");
    sb_json_str(&out, err.detail ? err.detail : "", strlen(err.detail ? err.detail : ""));
    sb_puts(&out, "}");
done:
    free(copy);
    free(fields);
    return out.p;
}

/* ---- main ---- */

static void usage(void) {
    fprintf(stderr, "usage: http_decoder [--max-head N] [--max-target N] [--max-fields N]\n"
                    "                    [--splits A,B,..] [--split-all] [--batch] [FILE]\n");
    exit(2);
}

static unsigned long num(const char *s) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end) usage();
    return v;
}

static int mismatch(const char *what, const char *whole, const char *split) {
    fprintf(stderr, "http_decoder: split %s differs\n  whole: %s\n  split: %s\n", what, whole, split);
    return 3;
}

/* Parses one input whole, checks the splits asked for, prints the line. */
static int run_one(const char *data, size_t len, const char *splits, int split_all,
                   const hale_h1_limits *lim) {
    char *whole = decode(data, len, NULL, 0, lim);
    int rc = 0;
    if (splits) {
        size_t cuts[64], n = 0;
        const char *s = splits;
        while (*s) {
            char *end;
            unsigned long v = strtoul(s, &end, 10);
            if (end == s || n == 64) usage();
            /* cuts outside 1..len-1 or not ascending are dropped */
            if (v > 0 && v < len && (n == 0 || v > cuts[n - 1])) cuts[n++] = v;
            s = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') usage();
        }
        char *r = decode(data, len, cuts, n, lim);
        if (strcmp(r, whole) != 0) rc = mismatch(splits, whole, r);
        free(r);
    }
    if (split_all && rc == 0) {
        char what[64];
        for (size_t k = 1; k < len && rc == 0; k++) {
            char *r = decode(data, len, &k, 1, lim);
            snprintf(what, sizeof what, "at %zu", k);
            if (strcmp(r, whole) != 0) rc = mismatch(what, whole, r);
            free(r);
        }
        if (rc == 0 && len > 1) {
            size_t *all = malloc((len - 1) * sizeof *all);
            if (!all) {
                perror("http_decoder");
                exit(2);
            }
            for (size_t k = 1; k < len; k++) all[k - 1] = k;
            char *r = decode(data, len, all, len - 1, lim);
            if (strcmp(r, whole) != 0) rc = mismatch("byte by byte", whole, r);
            free(r);
            free(all);
        }
    }
    printf("%s\n", whole);
    free(whole);
    return rc;
}

int main(int argc, char **argv) {
    hale_h1_limits lim = {.max_head_bytes = 8192, .max_target_bytes = 4096, .max_fields = 100};
    const char *path = NULL, *splits = NULL;
    int split_all = 0, batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--max-head") && i + 1 < argc) lim.max_head_bytes = num(argv[++i]);
        else if (!strcmp(a, "--max-target") && i + 1 < argc) lim.max_target_bytes = num(argv[++i]);
        else if (!strcmp(a, "--max-fields") && i + 1 < argc) lim.max_fields = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--splits") && i + 1 < argc) splits = argv[++i];
        else if (!strcmp(a, "--split-all")) split_all = 1;
        else if (!strcmp(a, "--batch")) batch = 1;
        else if (a[0] == '-' && a[1]) usage();
        else if (!path) path = a;
        else usage();
    }
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) {
        perror(path);
        return 2;
    }
    sbuf in = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) sb_put(&in, chunk, got);
    if (ferror(f)) {
        perror(path ? path : "stdin");
        return 2;
    }
    if (path) fclose(f);
    int rc = 0;
    if (!batch) {
        rc = run_one(in.p ? in.p : "", in.len, splits, split_all, &lim);
    } else {
        size_t at = 0;
        while (at < in.len) {
            char *end;
            unsigned long n = strtoul(in.p + at, &end, 10);
            if (end == in.p + at || *end != '\n' || n > in.len - (size_t)(end + 1 - in.p)) {
                fprintf(stderr, "http_decoder: bad batch record at byte %zu\n", at);
                return 2;
            }
            at = (size_t)(end + 1 - in.p);
            int r = run_one(in.p + at, n, splits, split_all, &lim);
            if (r > rc) rc = r;
            at += n;
        }
    }
    free(in.p);
    return rc;
}
