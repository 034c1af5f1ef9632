/** @file
 * util: the project-wide basics every module relies on.
 *
 * Promises:
 *  - xmalloc/xcalloc/xrealloc/xstrdup never return NULL: out of memory is a
 *    fatal error and aborts (B6). Use the try_ forms where a request may
 *    fail gracefully instead.
 *  - hale_panic() logs one line to stderr with the call site and aborts; it
 *    is for broken invariants only, never for bad input.
 *  - size helpers detect overflow instead of wrapping.
 *
 * Error convention (whole project), in this order of preference:
 *  - A function that can fail returns 0 on success and -1 on failure, and
 *    writes a human-readable reason into a caller-supplied
 *    `char *err, size_t errlen` (hale_err makes that one statement). A
 *    constructor returns NULL instead of -1, with the same err.
 *  - Where callers must tell outcomes apart (not found, precondition,
 *    unavailable...), an enum of statuses named for the domain (kv_status).
 *  - A predicate returns bool; a count or size returns it (size_t).
 *  - A resource that cannot be had at start (a thread, a socket, a file) is
 *    an error returned to the caller, which logs it and exits 1; only a
 *    broken invariant or exhausted memory is a hale_panic.
 *  - A sentinel return value is a named constant, never a bare -2.
 * Process exit codes are in lifecycle.h (0, 1, 2, 78).
 */
#ifndef HALE_UTIL_H
#define HALE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef HALE_IN_TREE
#include <pthread.h>
/* In-tree only (hale's own sources define HALE_IN_TREE): not part of the
 * installed API, and hidden in libhale (declared before the visibility push). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Condition variables timed on CLOCK_MONOTONIC (a wall-clock step never
 * stretches or cuts a wait). hale_cond_init_monotonic initialises cv so;
 * hale_cond_wait_until waits on it (mu held) until signalled or until
 * deadline_ns (hale_now_ns time) passed, whichever comes first: it returns
 * true when the deadline passed. Like any condvar wait it may wake early:
 * callers re-check their predicate in a loop. */
int hale_cond_init_monotonic(pthread_cond_t *cv);
bool hale_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns);
/* Names the calling thread (pthread_setname_np; what `top -H` and
 * /proc/PID/task/TID/comm show), printf-style, cut to 15 bytes. */
void hale_thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** Abort with a message: for impossible states only. */
_Noreturn void hale_panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** hale_panic(fmt, ...): hale_panic_at with the call site. */
#define hale_panic(...) hale_panic_at(__FILE__, __LINE__, __VA_ARGS__)

/** Invariant check kept in release builds (unlike assert). */
#define HALE_ASSERT(cond)                                                  \
    do {                                                                   \
        if (__builtin_expect(!(cond), 0))                                  \
            hale_panic("assertion failed: %s", #cond);                     \
    } while (0)

/** a*b into *out; returns false on overflow. */
static inline bool hale_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

/** The monotonic clock (CLOCK_MONOTONIC), in nanoseconds. */
uint64_t hale_now_ns(void);
/** The wall clock (CLOCK_REALTIME), in milliseconds since the epoch. */
uint64_t hale_wall_ms(void);

/** snprintf into err/errlen when err is non-NULL. Always returns -1 so that
 * `return hale_err(err, errlen, "...")` reads naturally. */
int hale_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Growable byte buffer; data is always NUL-terminated for convenience. */
typedef struct hale_buf {
    char *data;  /**< the bytes, NUL-terminated; NULL until the first append */
    size_t len;  /**< bytes used (the NUL not counted) */
    size_t cap;  /**< bytes allocated */
} hale_buf;

/** Makes b empty (no allocation yet). */
void hale_buf_init(hale_buf *b);
/** Frees b's memory and makes it empty again. */
void hale_buf_free(hale_buf *b);
/** Makes room for extra more bytes (aborts on out of memory). */
void hale_buf_reserve(hale_buf *b, size_t extra);
/** Appends n bytes from p. */
void hale_buf_append(hale_buf *b, const void *p, size_t n);
/** Appends the string s. */
void hale_buf_puts(hale_buf *b, const char *s);
/** Appends printf-formatted text. */
void hale_buf_printf(hale_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** UTF-8 (RFC 3629), the one validator: the length of the valid sequence at
 * s (n >= 1 bytes available), or 0 when the bytes are not one (overlong,
 * surrogate, above U+10FFFF, truncated, a stray continuation byte). The
 * code point goes to *cp when cp is not NULL. */
size_t hale_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);
/** Offset of the first invalid sequence in s[0..n), or n when all valid. */
size_t hale_utf8_check(const char *s, size_t n);

/** Append s as JSON string contents (no surrounding quotes): escapes quotes,
 * backslash, control characters; invalid UTF-8 bytes become U+FFFD. */
void hale_buf_json_escape(hale_buf *b, const char *s, size_t n);

#pragma GCC visibility pop

#endif
