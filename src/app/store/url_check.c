/* url_check: see url_check.h. */
#include "url_check.h"

#include "util.h"

#include <stdint.h>
#include <string.h>

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

/* The parts of a URL, as offsets into it. */
typedef struct url_parts {
    size_t a0;        /* after "://" */
    size_t aend;      /* end of the authority (first '/', '?' or '#') */
    size_t at;        /* the '@' ending the userinfo, or SIZE_MAX */
    size_t colon;     /* ':' between user and password, or SIZE_MAX */
    unsigned n_at;    /* '@' in the authority */
} url_parts;

static bool has_scheme(const char *url, app_url_kind kind, size_t *a0) {
    static const char *const pg[] = {"postgres://", "postgresql://", NULL};
    static const char *const rd[] = {"redis://", "rediss://", NULL};
    for (const char *const *s = kind == APP_URL_POSTGRES ? pg : rd; *s; s++) {
        size_t n = strlen(*s);
        if (strncmp(url, *s, n) == 0) {
            *a0 = n;
            return true;
        }
    }
    return false;
}

/* Splits the authority. The userinfo ends at the first '@' for libpq and at
 * the last one for hale's Redis parser; first_at selects which. */
static void split(const char *url, size_t a0, bool first_at, url_parts *p) {
    memset(p, 0, sizeof *p);
    p->a0 = a0;
    p->aend = a0 + strcspn(url + a0, "/?#");
    p->at = p->colon = SIZE_MAX;
    for (size_t i = a0; i < p->aend; i++) {
        if (url[i] != '@') continue;
        p->n_at++;
        if (!first_at || p->at == SIZE_MAX) p->at = i;
    }
    if (p->at != SIZE_MAX) {
        const char *c = memchr(url + a0, ':', p->at - a0);
        if (c) p->colon = (size_t)(c - url);
    }
}

static const char *part_at(const url_parts *p, size_t i) {
    if (i < p->a0) return "in the scheme";
    if (p->at != SIZE_MAX && i < p->at)
        return p->colon != SIZE_MAX && i > p->colon ? "in the password" : "in the user name";
    if (p->at != SIZE_MAX && i == p->at) return "in the userinfo";
    if (i < p->aend) return "in the host";
    return "in the path or query";
}

/* host[:port] or [v6][:port], from b to e. */
static int check_host(const char *setting, const char *url, size_t b, size_t e, bool need_host,
                      char *err, size_t errlen) {
    size_t port = SIZE_MAX;
    if (b < e && url[b] == '[') {
        const char *rb = memchr(url + b, ']', e - b);
        if (!rb)
            return hale_err(err, errlen, "%s: position %zu (in the host): '[' of an IPv6 address is "
                            "never closed with ']'", setting, b + 1);
        size_t after = (size_t)(rb - url) + 1;
        if (after < e && url[after] != ':')
            return hale_err(err, errlen, "%s: position %zu (in the host): only ':port' may follow "
                            "a bracketed IPv6 address", setting, after + 1);
        if (after < e) port = after + 1;
    } else {
        const char *c = memchr(url + b, ':', e - b);
        if (c) {
            port = (size_t)(c - url) + 1;
            if (memchr(url + port, ':', e - port))
                return hale_err(err, errlen, "%s: position %zu (in the host): a second ':'; write an "
                                "IPv6 address in brackets", setting, port + 1);
        }
        if (need_host && (c ? (size_t)(c - url) : e) == b)
            return hale_err(err, errlen, "%s: position %zu: the URL names no host", setting, b + 1);
    }
    if (port == SIZE_MAX) return 0;
    unsigned v = 0;
    size_t i = port;
    for (; i < e && url[i] >= '0' && url[i] <= '9' && v <= 65535; i++) v = v * 10 + (unsigned)(url[i] - '0');
    if (i == port || i < e || v < 1 || v > 65535)
        return hale_err(err, errlen, "%s: position %zu (in the host): the port must be a number "
                        "from 1 to 65535", setting, port + 1);
    return 0;
}

int app_url_check(const char *setting, const char *url, app_url_kind kind, char *err, size_t errlen) {
    size_t a0;
    if (!url || !has_scheme(url, kind, &a0))
        return hale_err(err, errlen, kind == APP_URL_POSTGRES
                        ? "%s: expected a postgres:// or postgresql:// URL"
                        : "%s: expected a redis:// URL", setting);
    url_parts p;
    split(url, a0, kind == APP_URL_POSTGRES, &p);
    size_t n = strlen(url);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return hale_err(err, errlen, "%s: position %zu (%s): a space, control character or "
                            "non-ASCII byte; percent-encode it", setting, i + 1, part_at(&p, i));
        if (c != '%') continue;
        if (i + 2 >= n || !is_hex(url[i + 1]) || !is_hex(url[i + 2]))
            return hale_err(err, errlen, "%s: position %zu (%s): '%%' must be followed by two hex "
                            "digits (a literal '%%' is written %%25)", setting, i + 1, part_at(&p, i));
        if (url[i + 1] == '0' && url[i + 2] == '0')
            return hale_err(err, errlen, "%s: position %zu (%s): %%00 (a NUL byte) is not allowed",
                            setting, i + 1, part_at(&p, i));
    }
    if (kind == APP_URL_POSTGRES && p.n_at > 1) {
        size_t second = SIZE_MAX;
        for (size_t i = p.at + 1; i < p.aend && second == SIZE_MAX; i++)
            if (url[i] == '@') second = i;
        return hale_err(err, errlen, "%s: position %zu: a second '@'; percent-encode '@' in the "
                        "user name or password as %%40", setting, second + 1);
    }
    size_t hb = p.at == SIZE_MAX ? p.a0 : p.at + 1;
    if (kind == APP_URL_REDIS) return check_host(setting, url, hb, p.aend, true, err, errlen);
    /* libpq: a comma-separated host list, each with an optional port */
    for (size_t b = hb;;) {
        const char *c = memchr(url + b, ',', p.aend - b);
        size_t e = c ? (size_t)(c - url) : p.aend;
        if (check_host(setting, url, b, e, hb != p.aend && c, err, errlen) != 0) return -1;
        if (!c) break;
        b = e + 1;
    }
    return 0;
}

/* ---- scrubbing ---- */

static char *find(char *hay, const char *needle, size_t n) {
    for (char *p = hay; *p; p++)
        if (strncmp(p, needle, n) == 0) return p;
    return NULL;
}

void app_scrub(char *msg, size_t cap, const char *secret, size_t n) {
    static const char R[] = "[redacted]";
    const size_t rn = sizeof R - 1;
    if (!msg || !secret || !n || !cap) return;
    for (char *p = msg; (p = find(p, secret, n)) != NULL;) {
        size_t off = (size_t)(p - msg);
        if (off + rn >= cap) { *p = '\0'; return; } /* no room for the marker: cut here */
        size_t rest = strlen(p + n);
        if (off + rn + rest >= cap) rest = cap - 1 - off - rn;
        memmove(p + rn, p + n, rest);
        p[rn + rest] = '\0';
        memcpy(p, R, rn);
        p += rn;
    }
}

/* Scrubs s[0..n) raw and percent-decoded. */
static void scrub_both(char *msg, size_t cap, const char *s, size_t n) {
    app_scrub(msg, cap, s, n);
    char dec[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof dec; i++) {
        if (s[i] == '%' && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            dec[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            dec[o++] = s[i];
        }
    }
    if (o && memchr(dec, '\0', o) == NULL && (o != n || memcmp(dec, s, n) != 0))
        app_scrub(msg, cap, dec, o);
}

void app_url_scrub(const char *url, char *msg, size_t cap) {
    if (!url || !msg) return;
    const char *s = strstr(url, "://");
    if (!s) return;
    app_scrub(msg, cap, url, strlen(url));
    url_parts first, last;
    size_t a0 = (size_t)(s - url) + 3;
    split(url, a0, true, &first);
    split(url, a0, false, &last);
    if (last.at == SIZE_MAX) return;
    /* the widest userinfo first, then each reading of the password; with
     * several '@' the part between the first and the last one too (libpq
     * would take it for the host) */
    app_scrub(msg, cap, url + a0, last.at - a0);
    if (first.at != last.at) scrub_both(msg, cap, url + first.at + 1, last.at - first.at - 1);
    const url_parts *both[] = {&last, &first};
    for (size_t k = 0; k < 2; k++) {
        const url_parts *p = both[k];
        if (p->colon == SIZE_MAX) continue;
        scrub_both(msg, cap, url + a0, p->at - a0);
        scrub_both(msg, cap, url + p->colon + 1, p->at - p->colon - 1);
    }
}
