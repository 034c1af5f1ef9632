/* log_redact: which field keys name a secret (hale_log_key_sensitive,
 * log.h), the Y7 backstop of the log writer: such a field never shows its
 * value, whatever the caller passed. */
#include "log.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Matches anywhere in the key, any case
 * ("db_password", "x_api_key", "Authorization"). One pass; a full compare
 * only where the first two letters fit, so ordinary keys cost a few
 * instructions per byte. */
static bool word_at(const char *p, const char *w) { return strncasecmp(p, w, strlen(w)) == 0; }

static bool key_sensitive_scan(const char *k);

/* Field keys are nearly always the same few literals, so the answer is
 * cached per thread, keyed by the key's address and checked against a copy
 * of its text (a reused buffer holding another key is never mistaken). */
bool hale_log_key_sensitive(const char *k) {
    enum { SLOTS = 64, KMAX = 32 };
    static _Thread_local struct { const char *p; unsigned char len, yes; char text[KMAX]; } cache[SLOTS];
    size_t n = strnlen(k, KMAX);
    if (n == KMAX) return key_sensitive_scan(k);
    unsigned h = (unsigned)(((uint64_t)(uintptr_t)k * 0x9E3779B97F4A7C15ull) >> 58); /* 0..63 */
    if (cache[h].p == k && cache[h].len == n && memcmp(cache[h].text, k, n) == 0) return cache[h].yes;
    bool yes = key_sensitive_scan(k);
    cache[h].p = k;
    cache[h].len = (unsigned char)n;
    cache[h].yes = yes;
    memcpy(cache[h].text, k, n);
    return yes;
}

static bool key_sensitive_scan(const char *k) {
    for (const char *p = k; p[0] && p[1]; p++) {
        char c1 = (char)(p[1] | 0x20);
        switch (p[0] | 0x20) {
        case 'p':
            if (c1 == 'a' && (word_at(p, "password") || word_at(p, "passwd"))) return true;
            if (c1 == 'r' && word_at(p, "private_key")) return true;
            break;
        case 's': if (c1 == 'e' && word_at(p, "secret")) return true; break;
        case 't': if (c1 == 'o' && word_at(p, "token")) return true; break;
        case 'a':
            if (c1 == 'u' && word_at(p, "authorization")) return true;
            if (c1 == 'p' && (word_at(p, "api_key") || word_at(p, "apikey"))) return true;
            break;
        case 'c':
            if (c1 == 'o' && word_at(p, "cookie")) return true;
            if (c1 == 'r' && word_at(p, "credential")) return true;
            break;
        default: break;
        }
    }
    return false;
}
