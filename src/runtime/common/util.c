/* util: allocation, panics, clocks, timed waits, buffers. See util.h. */
#define _GNU_SOURCE 1 /* pthread_setname_np */ // NOLINT(bugprone-reserved-identifier)
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Noreturn void oom(size_t n) {
    fprintf(stderr, "hale: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void hale_panic_at(const char *file, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hale: fatal internal error at %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    abort();
}

uint64_t hale_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hale_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hale_cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0) return -1;
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 && pthread_cond_init(cv, &a) == 0 ? 0 : -1;
    pthread_condattr_destroy(&a);
    return rc;
}

bool hale_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns) {
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    return pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT || hale_now_ns() >= deadline_ns;
}

void hale_thread_name(const char *fmt, ...) {
    char name[16]; /* the kernel's limit, NUL included */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    pthread_setname_np(pthread_self(), name);
}

int hale_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void hale_buf_init(hale_buf *b) { b->data = NULL; b->len = b->cap = 0; }

void hale_buf_free(hale_buf *b) { free(b->data); hale_buf_init(b); }

void hale_buf_reserve(hale_buf *b, size_t extra) {
    size_t need;
    if (__builtin_add_overflow(b->len, extra + 1, &need)) oom(SIZE_MAX);
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) oom(SIZE_MAX);
    }
    b->data = xrealloc(b->data, cap);
    if (b->cap == 0) b->data[0] = '\0'; /* keep the NUL-termination promise */
    b->cap = cap;
}

void hale_buf_append(hale_buf *b, const void *p, size_t n) {
    hale_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hale_buf_puts(hale_buf *b, const char *s) { hale_buf_append(b, s, strlen(s)); }

void hale_buf_printf(hale_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    hale_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t hale_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp_out) {
    unsigned c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        if (cp_out) *cp_out = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    uint32_t cp = c & (0x3Fu >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if (cp_out) *cp_out = cp;
    return len;
}

size_t hale_utf8_check(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t l = hale_utf8_seq(p + i, n - i, NULL);
        if (l == 0) return i;
        i += l;
    }
    return n;
}

void hale_buf_json_escape(hale_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    hale_buf_reserve(b, n + 8);
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            size_t j = i;
            while (j < n && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' && p[j] < 0x80) j++;
            hale_buf_append(b, s + i, j - i);
            i = j;
            continue;
        }
        switch (c) {
        case '"': hale_buf_append(b, "\\\"", 2); i++; continue;
        case '\\': hale_buf_append(b, "\\\\", 2); i++; continue;
        case '\n': hale_buf_append(b, "\\n", 2); i++; continue;
        case '\r': hale_buf_append(b, "\\r", 2); i++; continue;
        case '\t': hale_buf_append(b, "\\t", 2); i++; continue;
        default: break;
        }
        if (c < 0x20) {
            hale_buf_printf(b, "\\u%04x", c);
            i++;
            continue;
        }
        size_t l = hale_utf8_seq(p + i, n - i, NULL);
        if (l == 0) {
            hale_buf_append(b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            hale_buf_append(b, s + i, l);
            i += l;
        }
    }
}
