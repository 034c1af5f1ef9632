/* auth: see auth.h. */
#include "auth.h"
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_KEY_FILE 65536

typedef struct keyset {
    size_t n;
    char **key;
    size_t *len;
    char *blob;       /* all key bytes, wiped on release */
    size_t blob_len;
} keyset;

struct hale_auth {
    pthread_rwlock_t lock;
    keyset *ks;
    char *path;
    unsigned reload_ms;
    struct stat last;
    bool have_last;
    hale_timer *timer;    /* runs the reload; NULL before hale_auth_start */
    int task;             /* its id on the timer, -1 when none */
    hale_counter *ok, *missing, *invalid;
    hale_counter *reload_refused; /* reloads that kept the old keys */
};

static void keyset_free(keyset *k) {
    if (!k) return;
    if (k->blob) explicit_bzero(k->blob, k->blob_len);
    free(k->blob);
    free(k->key);
    free(k->len);
    free(k);
}

/* Splits text into trimmed lines; blank lines and comment lines (first
 * non-blank byte '#') are not keys. */
static keyset *keyset_parse(const char *text, size_t n) {
    keyset *k = xcalloc(1, sizeof *k);
    k->blob = xstrndup(text, n);
    k->blob_len = n;
    size_t cap = 4;
    k->key = xcalloc(cap, sizeof *k->key);
    k->len = xcalloc(cap, sizeof *k->len);
    char *p = k->blob, *end = k->blob + n;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        char *b = p;
        while (b < e && (*b == ' ' || *b == '\t' || *b == '\r')) b++;
        char *t = e;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r')) t--;
        if (t > b && *b != '#') {
            if (k->n == cap) {
                cap *= 2;
                k->key = xrealloc(k->key, cap * sizeof *k->key);
                k->len = xrealloc(k->len, cap * sizeof *k->len);
            }
            k->key[k->n] = b;
            k->len[k->n] = (size_t)(t - b);
            k->n++;
        }
        p = e + 1;
    }
    return k;
}

/* 1 when p (length pn) equals one of the keys; constant-time in p. */
static int keyset_match(const keyset *k, const char *p, size_t pn) {
    unsigned found = 0;
    for (size_t i = 0; i < k->n; i++) {
        const unsigned char *key = (const unsigned char *)k->key[i];
        size_t kn = k->len[i];
        unsigned diff = (unsigned)(kn ^ pn) | (unsigned)((kn ^ pn) >> 32);
        diff |= pn == 0;
        for (size_t j = 0; j < kn; j++) {
            unsigned char c = pn ? (unsigned char)p[j % (pn ? pn : 1)] : 0;
            diff |= (unsigned)(key[j] ^ c);
        }
        /* diff == 0 -> 1 without a branch */
        found |= 1u & ((diff - 1u) >> 31) & ((~diff) >> 31);
    }
    return (int)found;
}

unsigned hale_auth_count_keys(const char *text) {
    if (!text) return 0;
    keyset *k = keyset_parse(text, strlen(text));
    unsigned n = (unsigned)k->n;
    keyset_free(k);
    return n;
}

static double key_count_fn(void *arg) { return (double)hale_auth_key_count(arg); }

hale_auth *hale_auth_new(const char *keys_text, const char *watch_path, unsigned reload_ms,
                         hale_metrics *reg) {
    hale_auth *a = xcalloc(1, sizeof *a);
    pthread_rwlock_init(&a->lock, NULL);
    a->ks = keyset_parse(keys_text ? keys_text : "", keys_text ? strlen(keys_text) : 0);
    a->reload_ms = reload_ms ? reload_ms : 1000;
    a->task = -1;
    if (watch_path) {
        a->path = xstrdup(watch_path);
        a->have_last = stat(a->path, &a->last) == 0;
    }
    static const char *const outcome[] = {"outcome"};
    hale_metric *m = hale_metrics_counter(reg, "hale_auth_requests_total",
                                          "Requests to protected routes, by authentication outcome.",
                                          1, outcome);
    const char *ok[] = {"ok"}, *missing[] = {"missing"}, *invalid[] = {"invalid"};
    a->ok = hale_counter_with(m, ok);
    a->missing = hale_counter_with(m, missing);
    a->invalid = hale_counter_with(m, invalid);
    hale_metric *rr = hale_metrics_counter(reg, "hale_auth_reload_refused_total",
                                           "Key-file changes refused (no usable key, too large); "
                                           "the previous keys stayed in force.", 0, NULL);
    a->reload_refused = hale_counter_with(rr, NULL);
    hale_metrics_gauge_fn(reg, "hale_auth_keys", "API keys currently configured.", key_count_fn, a);
    return a;
}

unsigned hale_auth_key_count(const hale_auth *ca) {
    hale_auth *a = (hale_auth *)ca;
    pthread_rwlock_rdlock(&a->lock);
    unsigned n = (unsigned)a->ks->n;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

static bool same_file(const struct stat *x, const struct stat *y) {
    return x->st_ino == y->st_ino && x->st_dev == y->st_dev && x->st_size == y->st_size &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
           x->st_ctim.tv_sec == y->st_ctim.tv_sec && x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

int hale_auth_reload(hale_auth *a) {
    if (!a->path) return 0;
    struct stat st;
    if (stat(a->path, &st) != 0) return 0; /* mid-swap or removed: keep the current keys */
    if (a->have_last && same_file(&st, &a->last)) return 0;
    FILE *f = fopen(a->path, "rb");
    if (!f) return 0;
    char *buf = xmalloc(MAX_KEY_FILE);
    size_t n = fread(buf, 1, MAX_KEY_FILE, f);
    bool too_big = n == MAX_KEY_FILE;
    fclose(f);
    if (too_big) {
        explicit_bzero(buf, MAX_KEY_FILE);
        free(buf);
        a->last = st;
        a->have_last = true;
        hale_counter_inc(a->reload_refused);
        HALE_LOG(HALE_LOG_ERROR, "auth", "key file too large; keeping the current keys",
                 HALE_F_STR("path", a->path));
        return 0;
    }
    keyset *k = keyset_parse(buf, n);
    explicit_bzero(buf, n);
    free(buf);
    a->last = st;
    a->have_last = true;
    if (k->n == 0) {
        /* an emptied, truncated or comment-only file (mid-rotation, or a
         * mistake) would open the API: refuse it, loudly */
        keyset_free(k);
        hale_counter_inc(a->reload_refused);
        HALE_LOG(HALE_LOG_ERROR, "auth", "key file has no usable key; keeping the current keys",
                 HALE_F_STR("path", a->path), HALE_F_UINT("keys", hale_auth_key_count(a)));
        return 0;
    }
    pthread_rwlock_wrlock(&a->lock);
    keyset *old = a->ks;
    a->ks = k;
    pthread_rwlock_unlock(&a->lock);
    HALE_LOG(HALE_LOG_INFO, "auth", "API key set changed", HALE_F_UINT("keys", k->n),
             HALE_F_UINT("previous", old->n), HALE_F_STR("path", a->path));
    keyset_free(old);
    return 1;
}

/* The reload task. It runs until the timer stops, drain included: a key
 * rotated while requests finish is honoured. */
static void reload_task(void *arg) { hale_auth_reload(arg); }

int hale_auth_start(hale_auth *a, hale_timer *t, char *err, size_t errlen) {
    if (!a->path || a->task >= 0) return 0;
    if (!t) return hale_err(err, errlen, "auth: no timer to run the key reload on");
    a->task = hale_timer_every(t, "auth-reload", a->reload_ms, reload_task, a);
    if (a->task < 0)
        return hale_err(err, errlen, "auth: no room on the timer for the key reload (rotations would be missed)");
    a->timer = t;
    return 0;
}

void hale_auth_free(hale_auth *a) {
    if (!a) return;
    if (a->task >= 0) hale_timer_cancel(a->timer, a->task);
    keyset_free(a->ks);
    pthread_rwlock_destroy(&a->lock);
    free(a->path);
    free(a);
}

bool hale_auth_check(hale_req *r, void *arg) {
    hale_auth *a = arg;
    const char *key = NULL;
    const char *h = hale_req_header(r, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        key = h + 7;
        while (*key == ' ') key++;
    }
    if (!key) key = hale_req_header(r, "X-API-Key");
    pthread_rwlock_rdlock(&a->lock);
    const keyset *k = a->ks;
    bool open = k->n == 0;
    bool ok = open || (key && keyset_match(k, key, strlen(key)));
    pthread_rwlock_unlock(&a->lock);
    if (open) return true;
    if (ok) {
        hale_counter_inc(a->ok);
        return true;
    }
    hale_counter_inc(key ? a->invalid : a->missing);
    hale_resp_error(r, 401, "unauthorized", "a valid API key is required (Authorization: Bearer <key> or X-API-Key)");
    hale_resp_header(r, "WWW-Authenticate", "Bearer realm=\"hale\"");
    return false;
}
