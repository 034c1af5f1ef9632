/* log: level filter, JSON and text line writers, one write(2) per line.
 * See log.h for the promises. */
#include "log_int.h"

#include "util.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Bytes kept free at the end of the line buffer so that a cut line can
 * always be closed: marker + quote + ,"log_truncated":true + }\n + NUL. */
#define RESERVE 64
#define TRUNC_MARK "\xE2\x80\xA6(truncated)"
#define TRUNC_MARK_LEN (sizeof TRUNC_MARK - 1)

/* Output format: set by hale_log_init; the level filter is in log_filter.c. */
static _Atomic bool g_json = false;
static _Atomic int g_fd = 1;
static _Atomic uint64_t g_truncated, g_dropped;

static const char *const level_json[] = {"error", "warn", "info", "debug", "trace"};
static const char *const level_text[] = {"ERROR", " WARN", " INFO", "DEBUG", "TRACE"};

int hale_log_init(const char *level_spec, const char *format, char *err, size_t errlen) {
    bool json = false;
    if (format && *format) {
        if (strcasecmp(format, "json") == 0) json = true;
        else if (strcasecmp(format, "text") != 0)
            return hale_err(err, errlen, "log format: unknown format \"%.32s\" (expected json or text)",
                            format);
    }
    if (hale_log_filter_set(level_spec, err, errlen) < 0) return -1;
    atomic_store_explicit(&g_json, json, memory_order_relaxed);
    return 0;
}

void hale_log_set_fd(int fd) { atomic_store_explicit(&g_fd, fd, memory_order_relaxed); }

/* ---- per-thread batches -------------------------------------------------
 * A thread that called hale_log_batch_begin() (the HTTP workers) appends
 * its lines to a buffer of its own and writes them with one write(2) when
 * it is full or at hale_log_batch_flush(), which the worker calls before
 * it waits for events: under load one write carries many access lines, and
 * no line waits longer than one turn of the event loop. */
#define BATCH_CAP ((size_t)32 * 1024)
static _Thread_local char *t_batch;
static _Thread_local size_t t_batch_len;

static void write_all(const char *p, size_t n);

void hale_log_batch_begin(void) {
    if (!t_batch) t_batch = xmalloc(BATCH_CAP);
}

void hale_log_batch_flush(void) {
    if (!t_batch_len) return;
    write_all(t_batch, t_batch_len);
    t_batch_len = 0;
}

void hale_log_batch_end(void) {
    hale_log_batch_flush();
    free(t_batch);
    t_batch = NULL;
}

void hale_log_flush(void) { hale_log_batch_flush(); }

void hale_log_counters(uint64_t *truncated, uint64_t *dropped) {
    if (truncated) *truncated = atomic_load_explicit(&g_truncated, memory_order_relaxed);
    if (dropped) *dropped = atomic_load_explicit(&g_dropped, memory_order_relaxed);
}

/* ---- line writer ------------------------------------------------------ */

/* A line under construction. Ordinary writes stop at lim; the RESERVE bytes
 * after it are only for closing a line that has been cut (trunc). */
typedef struct line {
    char *buf;
    size_t len, lim;
    bool trunc;
} line;

static bool put(line *w, const char *s, size_t n) {
    if (w->trunc || n > w->lim - w->len) {
        w->trunc = true;
        return false;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return true;
}

/* Closing bytes: may use the reserve. */
static void put_force(line *w, const char *s, size_t n) {
    HALE_ASSERT(w->len + n < HALE_LOG_LINE_MAX);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_cut_mark(line *w) {
    w->trunc = true;
    put_force(w, TRUNC_MARK, TRUNC_MARK_LEN);
}

/* JSON-escape s into the line through hale_buf_json_escape, without heap
 * use: the hale_buf is a window onto the line buffer, and each chunk is
 * small enough that its worst case (6 output bytes per input byte, as in
 * \u001f, plus the 9 bytes of slack the escaper reserves) fits, so the
 * buffer never has to grow. Chunks end on a UTF-8 lead byte so that a
 * valid multi-byte character is never split into "invalid" halves. */
static void put_json_escaped(line *w, const char *s, size_t n) {
    /* Fast path: most values are plain printable ASCII and need no work.
     * The bytes the escaper copies as they are: 0x20..0x7F but " and \. */
    static const bool plain_byte[256] = {
        [0x20 ... 0x21] = true, [0x23 ... 0x5B] = true, [0x5D ... 0x7F] = true,
    };
    size_t plain = 0;
    while (plain < n && plain_byte[(unsigned char)s[plain]]) plain++;
    if (plain == n && !w->trunc && n <= w->lim - w->len) {
        put(w, s, n);
        return;
    }
    while (n > 0) {
        size_t room = w->trunc ? 0 : w->lim - w->len;
        if (room < 9 + 6) { put_cut_mark(w); return; }
        size_t chunk = (room - 9) / 6;
        if (chunk < n) {
            for (int back = 0; back < 3 && chunk > 0 &&
                               ((unsigned char)s[chunk] & 0xC0) == 0x80; back++)
                chunk--;
            if (chunk == 0) { put_cut_mark(w); return; }
        } else {
            chunk = n;
        }
        char *window = w->buf + w->len;
        hale_buf b = {.data = window, .len = 0, .cap = room};
        hale_buf_json_escape(&b, s, chunk);
        HALE_ASSERT(b.data == window && b.len < room);
        w->len += b.len;
        s += chunk;
        n -= chunk;
    }
}

/* Length of the valid UTF-8 character at s (n bytes available), 0 if the
 * bytes are not one. C1 controls (U+0080..U+009F) count as invalid here:
 * some terminals act on them. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    uint32_t cp;
    size_t len = hale_utf8_seq(s, n, &cp);
    return len && cp >= 0x80 && cp <= 0x9F ? 0 : len;
}

/* Text-format escaping: control bytes and invalid UTF-8 become \n, \t, \r
 * or \xNN; inside quotes also " and \ are escaped. */
static void put_text_escaped(line *w, const char *str, size_t n, bool quoted) {
    const unsigned char *s = (const unsigned char *)str;
    static const char hex[] = "0123456789abcdef";
    /* fast path: printable ASCII with nothing to escape is copied at once */
    size_t run = 0;
    while (run < n && s[run] >= 0x20 && s[run] < 0x7F && !(quoted && (s[run] == '"' || s[run] == '\\')))
        run++;
    if (run == n && !w->trunc && n + 4 <= w->lim - w->len) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        return;
    }
    for (size_t i = 0; i < n;) {
        if (w->trunc || w->lim - w->len < 4) { put_cut_mark(w); return; }
        unsigned char c = s[i];
        char *o = w->buf + w->len;
        size_t k = utf8_char(s + i, n - i);
        if (c >= 0x20 && c != 0x7F && k > 0) {
            if (quoted && (c == '"' || c == '\\')) {
                o[0] = '\\'; o[1] = (char)c; w->len += 2; i++;
            } else {
                memcpy(o, s + i, k); w->len += k; i += k;
            }
            continue;
        }
        o[0] = '\\';
        if (c == '\n') { o[1] = 'n'; w->len += 2; }
        else if (c == '\t') { o[1] = 't'; w->len += 2; }
        else if (c == '\r') { o[1] = 'r'; w->len += 2; }
        else { o[1] = 'x'; o[2] = hex[c >> 4]; o[3] = hex[c & 15]; w->len += 4; }
        i++;
    }
}

/* The bytes a text value may hold unquoted: visible ASCII but " = \. */
static const bool text_bare_byte[256] = {
    [0x21] = true, [0x23 ... 0x3C] = true, [0x3E ... 0x5B] = true, [0x5D ... 0x7E] = true,
};

static bool text_bare_ok(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!text_bare_byte[(unsigned char)s[i]]) return false;
    return true;
}

static void put_text_value(line *w, const char *s, size_t n) {
    if (text_bare_ok(s, n)) {
        /* nothing to escape: one copy (the common case for access lines) */
        if (!w->trunc && n <= w->lim - w->len) { put(w, s, n); return; }
        put_text_escaped(w, s, n, false);
        return;
    }
    if (!put(w, "\"", 1)) return;
    put_text_escaped(w, s, n, true);
    put_force(w, "\"", 1);
}

/* "2026-11-26T09:12:57.123Z" (24 bytes). The date part is cached per
 * thread for the current second: gmtime_r takes a glibc-wide lock. */
static void format_ts(char out[24]) {
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[20];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    memcpy(out, cached, 19);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
}

/* Decimal digits of v, right-aligned ending at end; returns the start. */
static char *format_u64(char *end, uint64_t v) {
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* Number text for a field; returns its length. Integers avoid snprintf:
 * they are most of an access-log line's numbers. */
static size_t format_number(char *tmp, size_t cap, const hale_log_field *f, bool json) {
    int n = 0;
    char digits[24], *end = digits + sizeof digits, *p;
    switch (f->type) {
    case HALE_LOG_F_INT:
        p = format_u64(end, f->v.i < 0 ? -(uint64_t)f->v.i : (uint64_t)f->v.i);
        if (f->v.i < 0) *--p = '-';
        memcpy(tmp, p, (size_t)(end - p));
        return (size_t)(end - p);
    case HALE_LOG_F_UINT:
        p = format_u64(end, f->v.u);
        memcpy(tmp, p, (size_t)(end - p));
        return (size_t)(end - p);
    case HALE_LOG_F_BOOL: n = snprintf(tmp, cap, "%s", f->v.b ? "true" : "false"); break;
    case HALE_LOG_F_DBL:
        if (isnan(f->v.d)) n = snprintf(tmp, cap, "%s", json ? "null" : "NaN");
        else if (isinf(f->v.d)) n = snprintf(tmp, cap, "%s", json ? "null" : f->v.d > 0 ? "+Inf" : "-Inf");
        else if (f->v.d >= 0 && f->v.d < 1e9 && cap >= 24) {
            /* durations and the like: at most 6 decimals, without printf's
             * cost (it was a tenth of an access line) */
            uint64_t micro = (uint64_t)(f->v.d * 1e6 + 0.5);
            char *q = format_u64(end, micro / 1000000u);
            size_t k = (size_t)(end - q);
            memcpy(tmp, q, k);
            unsigned frac = (unsigned)(micro % 1000000u);
            if (frac) {
                char d[6];
                for (int i = 5; i >= 0; i--, frac /= 10) d[i] = (char)('0' + frac % 10);
                size_t nd = 6;
                while (d[nd - 1] == '0') nd--; /* frac != 0: stops at a digit */
                tmp[k++] = '.';
                memcpy(tmp + k, d, nd);
                k += nd;
            }
            return k;
        } else {
            n = snprintf(tmp, cap, "%.15g", f->v.d);
            /* a process that called setlocale() may print "1,5" */
            for (int i = 0; i < n; i++) if (tmp[i] == ',') tmp[i] = '.';
        }
        break;
    case HALE_LOG_F_STR: break;
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool key_reserved(const char *k) {
    switch (k[0]) {
    case 't': return strcmp(k, "ts") == 0 || strcmp(k, "target") == 0;
    case 'l': return strcmp(k, "level") == 0 || strcmp(k, "log_truncated") == 0;
    case 'm': return strcmp(k, "msg") == 0;
    default: return false;
    }
}

static void put_field(line *w, const hale_log_field *f, bool json) {
    const char *key = f->key ? f->key : "";
    size_t klen = strlen(key);
    bool prefix = key_reserved(key);
    /* Room for the whole key and any non-string value, so that neither can
     * be cut in half; only string values are cut (with the marker). */
    if (w->trunc || klen > (w->lim - w->len) / 6 || (w->lim - w->len) - klen * 6 < 64) {
        w->trunc = true;
        return;
    }
    if (json) {
        put(w, prefix ? ",\"_" : ",\"", prefix ? 3 : 2);
        put_json_escaped(w, key, klen);
        put(w, "\":", 2);
    } else {
        put(w, prefix ? " _" : " ", prefix ? 2 : 1);
        if (text_bare_ok(key, klen)) put_text_escaped(w, key, klen, false);
        else put_text_value(w, key, klen);
        put(w, "=", 1);
    }
    if (hale_log_key_sensitive(key)) {
        put(w, json ? "\"[redacted]\"" : "[redacted]", json ? 12 : 10);
        return;
    }
    if (f->type == HALE_LOG_F_STR) {
        if (!f->v.s) { put(w, json ? "null" : "(null)", json ? 4 : 6); return; }
        size_t n = f->len == SIZE_MAX ? strlen(f->v.s) : f->len;
        if (json) {
            put(w, "\"", 1);
            put_json_escaped(w, f->v.s, n);
            put_force(w, "\"", 1);
        } else {
            put_text_value(w, f->v.s, n);
        }
        return;
    }
    char tmp[40];
    size_t n = format_number(tmp, sizeof tmp, f, json);
    put(w, tmp, n);
}

/* Write the whole line with one write(2) (or append it to this thread's
 * batch); see log.h for what that buys. */
static void emit(const char *p, size_t n) {
    if (t_batch) {
        if (t_batch_len + n > BATCH_CAP) hale_log_batch_flush();
        if (n <= BATCH_CAP) {
            memcpy(t_batch + t_batch_len, p, n);
            t_batch_len += n;
            return;
        }
    }
    write_all(p, n);
}

static void write_all(const char *p, size_t n) {
    int fd = atomic_load_explicit(&g_fd, memory_order_relaxed);
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, 1000) > 0) continue;
        }
        atomic_fetch_add_explicit(&g_dropped, 1, memory_order_relaxed);
        return;
    }
}

static void log_line(hale_log_level lvl, const char *target, const char *msg,
                     const hale_log_field *fields, size_t nfields, bool cut) {
    static _Thread_local char buf[HALE_LOG_LINE_MAX];
    int saved_errno = errno; /* callers often log and then look at errno */
    line w = {.buf = buf, .len = 0, .lim = HALE_LOG_LINE_MAX - RESERVE, .trunc = false};
    bool json = atomic_load_explicit(&g_json, memory_order_relaxed);
    char ts[24];
    format_ts(ts);
    if (!target) target = "";
    if (!msg) msg = "";
    unsigned li = (unsigned)lvl <= HALE_LOG_TRACE ? (unsigned)lvl : HALE_LOG_ERROR;

    if (json) {
        put(&w, "{\"ts\":\"", 7);
        put(&w, ts, sizeof ts);
        put(&w, "\",\"level\":\"", 11);
        put(&w, level_json[li], strlen(level_json[li]));
        put(&w, "\",\"target\":\"", 12);
        put_json_escaped(&w, target, strlen(target));
        put_force(&w, "\"", 1);
        if (!w.trunc) {
            put(&w, ",\"msg\":\"", 8);
            put_json_escaped(&w, msg, strlen(msg));
            put_force(&w, "\"", 1);
        }
    } else {
        put(&w, ts, sizeof ts);
        put(&w, " ", 1);
        put(&w, level_text[li], 5);
        put(&w, " ", 1);
        if (*target) {
            put_text_escaped(&w, target, strlen(target), false);
            if (!w.trunc) put(&w, ": ", 2);
        }
        put_text_escaped(&w, msg, strlen(msg), false);
    }
    for (size_t i = 0; i < nfields && !w.trunc; i++) put_field(&w, &fields[i], json);

    if (w.trunc || cut) {
        atomic_fetch_add_explicit(&g_truncated, 1, memory_order_relaxed);
        if (json) put_force(&w, ",\"log_truncated\":true", 21);
        else put_force(&w, " log_truncated=true", 19);
    }
    if (json) put_force(&w, "}\n", 2);
    else put_force(&w, "\n", 1);
    emit(w.buf, w.len);
    errno = saved_errno;
}

void hale_log(hale_log_level lvl, const char *target, const char *msg,
              const hale_log_field *fields, size_t nfields) {
    if (!hale_log_enabled(lvl, target)) return;
    log_line(lvl, target, msg, fields, nfields, false);
}

void hale_logf(hale_log_level lvl, const char *target, const char *fmt, ...) {
    if (!hale_log_enabled(lvl, target)) return;
    static _Thread_local char msg[4096];
    int saved_errno = errno; /* so that %m and the caller both see it */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errno = saved_errno;
    bool cut = false;
    if (n < 0) {
        snprintf(msg, sizeof msg, "(bad log format string)");
    } else if ((size_t)n >= sizeof msg) {
        /* Cut at a character boundary and say so. */
        size_t end = sizeof msg - 1 - TRUNC_MARK_LEN;
        for (int back = 0; back < 3 && ((unsigned char)msg[end] & 0xC0) == 0x80; back++) end--;
        memcpy(msg + end, TRUNC_MARK, TRUNC_MARK_LEN + 1);
        cut = true;
    }
    log_line(lvl, target, msg, NULL, 0, cut);
}
