/* http_ids: a request's identity: its X-Request-Id (the client's when it
 * is sane, else 32 random hex digits) and the trace id of a valid W3C
 * traceparent. */
#include "http_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static uint64_t rng_next(void) {
    static _Thread_local uint64_t s[2];
    if (!s[0] && !s[1]) {
        if (getrandom(s, sizeof s, 0) != (ssize_t)sizeof s) {
            s[0] = hale_now_ns() ^ (uint64_t)(uintptr_t)&s;
            s[1] = 0x9E3779B97F4A7C15ull;
        }
        s[0] |= 1;
    }
    uint64_t a = s[0], b = s[1];
    s[0] = b;
    a ^= a << 23;
    s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s[1] + b;
}

/* 32 random lowercase hex digits: a request id (printf-free: this runs
 * for every request). */
void hale_req_random_id(char out[33]) {
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(), b = rng_next();
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}

static int sane_request_id(const char *v) {
    size_t n = strlen(v);
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

/* n lowercase hex digits; `nonzero`: not all zeros. */
static int lower_hex(const char *p, size_t n, int nonzero) {
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return 0;
        if (ch != '0') any = 1;
    }
    return !nonzero || any;
}

void hale_req_set_ids(hale_req *r) {
    const char *rid = hale_req_header(r, "X-Request-Id");
    if (rid && sane_request_id(rid)) memcpy(r->req_id, rid, strlen(rid) + 1); /* <= 64 */
    else hale_req_random_id(r->req_id);
    /* traceparent (W3C Trace Context): <2 hex version>-<32 hex trace id>-
     * <16 hex parent id>-<2 hex flags>, lowercase; version ff is invalid,
     * version 00 is exactly 55 characters, a later version may append
     * "-..." fields. Anything else is ignored, as the spec requires. */
    const char *tp = hale_req_header(r, "traceparent");
    r->trace_id[0] = '\0';
    size_t n = tp ? strlen(tp) : 0;
    if (n >= 55 && lower_hex(tp, 2, 0) && memcmp(tp, "ff", 2) != 0 && tp[2] == '-' &&
        tp[35] == '-' && tp[52] == '-' && lower_hex(tp + 3, 32, 1) && lower_hex(tp + 36, 16, 1) &&
        lower_hex(tp + 53, 2, 0) && (n == 55 || (memcmp(tp, "00", 2) != 0 && tp[55] == '-'))) {
        memcpy(r->trace_id, tp + 3, 32);
        r->trace_id[32] = '\0';
    }
}

