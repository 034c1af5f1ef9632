/* metrics: registry, children, lock-free updates, text exposition.
 * See metrics.h for the promises. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double hale_metrics_latency_buckets[HALE_METRICS_LATENCY_NBUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10,
};

typedef enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM, K_COUNTER_FN, K_GAUGE_FN } kind;

/* One child. The hot words come first on the child's own cache line. For
 * a histogram, buckets[] holds nbounds+1 non-cumulative counts, the last
 * one for values above every bound. */
typedef struct child {
    _Alignas(64) _Atomic uint64_t value; /* counter count, or gauge double bits */
    _Atomic uint64_t sum_bits;           /* histogram sum (double bits) */
    uint64_t hash;
    char **values;                       /* nlabels sanitized copies */
    struct hale_metric *family;
    _Atomic uint64_t buckets[];
} child;

struct hale_counter { child c; };
struct hale_gauge { child c; };
struct hale_histogram { child c; };

/* Open-addressing index for lock-free lookup. A full table is replaced by a
 * bigger one; old tables stay alive (chained by `older`) until the registry
 * is freed, because a reader may still be probing one. They add up to less
 * than the newest table. */
typedef struct ctable {
    struct ctable *older;
    size_t mask;
    _Atomic(child *) slot[];
} ctable;

struct hale_metric {
    hale_metrics *reg;
    struct hale_metric *next;
    kind kind;
    char *name, *help;
    size_t nlabels;
    char **label_names;
    size_t nbounds;
    double *bounds;
    double (*fn)(void *);
    void *fn_arg;
    child **list;                 /* creation order; guarded by reg->mu */
    size_t n, cap;
    _Atomic(ctable *) table;
};

struct hale_metrics {
    pthread_mutex_t mu;
    hale_metric *first, *last;
};

static inline uint64_t dbits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }
static inline double bitsd(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }

/* ---- registry and families -------------------------------------------- */

hale_metrics *hale_metrics_new(void) {
    hale_metrics *reg = xcalloc(1, sizeof *reg);
    if (pthread_mutex_init(&reg->mu, NULL) != 0) hale_panic("pthread_mutex_init failed");
    return reg;
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void hale_metrics_free(hale_metrics *reg) {
    if (!reg) return;
    hale_metric *m = reg->first;
    while (m) {
        hale_metric *next = m->next;
        for (size_t i = 0; i < m->n; i++) {
            free_strv(m->list[i]->values, m->nlabels);
            free(m->list[i]);
        }
        ctable *t = atomic_load_explicit(&m->table, memory_order_relaxed);
        while (t) { ctable *o = t->older; free(t); t = o; }
        free(m->list);
        free_strv(m->label_names, m->nlabels);
        free(m->bounds);
        free(m->name);
        free(m->help);
        free(m);
        m = next;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static bool name_ok(const char *s, bool colon) {
    if (!s || !*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static child *child_new(hale_metric *m, uint64_t hash, char **values);
static void index_insert(hale_metric *m, child *c);
static uint64_t hash_values(const char *const *v, size_t n, bool *high);

static hale_metric *family_new(hale_metrics *reg, kind k, const char *name, const char *help,
                               size_t nlabels, const char *const *label_names) {
    if (!name_ok(name, true)) hale_panic("metrics: invalid metric name \"%s\"", name ? name : "(null)");
    if (nlabels && !label_names) hale_panic("metrics: %s: label names missing", name);
    for (size_t i = 0; i < nlabels; i++) {
        const char *l = label_names[i];
        if (!name_ok(l, false) || strncmp(l, "__", 2) == 0 || (k == K_HISTOGRAM && strcmp(l, "le") == 0))
            hale_panic("metrics: %s: invalid label name \"%s\"", name, l ? l : "(null)");
        for (size_t j = 0; j < i; j++)
            if (strcmp(l, label_names[j]) == 0) hale_panic("metrics: %s: label \"%s\" twice", name, l);
    }
    hale_metric *m = xcalloc(1, sizeof *m);
    m->reg = reg;
    m->kind = k;
    m->name = xstrdup(name);
    m->help = xstrdup(help ? help : "");
    m->nlabels = nlabels;
    if (nlabels) {
        m->label_names = xcalloc(nlabels, sizeof *m->label_names);
        for (size_t i = 0; i < nlabels; i++) m->label_names[i] = xstrdup(label_names[i]);
    }
    ctable *t = xcalloc(1, sizeof *t + 8 * sizeof t->slot[0]);
    t->mask = 7;
    atomic_init(&m->table, t);
    return m;
}

/* Link m into reg (checking the name is new), and for a label-less family
 * create its one child. */
static hale_metric *family_add(hale_metrics *reg, hale_metric *m) {
    pthread_mutex_lock(&reg->mu);
    for (hale_metric *o = reg->first; o; o = o->next)
        if (strcmp(o->name, m->name) == 0) hale_panic("metrics: \"%s\" registered twice", m->name);
    if (reg->last) reg->last->next = m;
    else reg->first = m;
    reg->last = m;
    bool unused = false;
    if (m->nlabels == 0 && m->kind != K_COUNTER_FN && m->kind != K_GAUGE_FN)
        index_insert(m, child_new(m, hash_values(NULL, 0, &unused), NULL));
    pthread_mutex_unlock(&reg->mu);
    return m;
}

hale_metric *hale_metrics_counter(hale_metrics *reg, const char *name, const char *help,
                                  size_t nlabels, const char *const *label_names) {
    return family_add(reg, family_new(reg, K_COUNTER, name, help, nlabels, label_names));
}

hale_metric *hale_metrics_gauge(hale_metrics *reg, const char *name, const char *help,
                                size_t nlabels, const char *const *label_names) {
    return family_add(reg, family_new(reg, K_GAUGE, name, help, nlabels, label_names));
}

hale_metric *hale_metrics_histogram(hale_metrics *reg, const char *name, const char *help,
                                    size_t nlabels, const char *const *label_names,
                                    size_t nbounds, const double *bounds) {
    if (!bounds && nbounds == 0) {
        bounds = hale_metrics_latency_buckets;
        nbounds = HALE_METRICS_LATENCY_NBUCKETS;
    }
    if (!bounds) hale_panic("metrics: %s: bucket bounds missing", name);
    if (nbounds && isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0) nbounds--;
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            hale_panic("metrics: %s: bucket bounds must be finite and strictly increasing", name);
    hale_metric *m = family_new(reg, K_HISTOGRAM, name, help, nlabels, label_names);
    m->nbounds = nbounds;
    m->bounds = xcalloc(nbounds ? nbounds : 1, sizeof *m->bounds);
    if (nbounds) memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
    return family_add(reg, m);
}

static void fn_family(hale_metrics *reg, kind k, const char *name, const char *help,
                      double (*fn)(void *), void *arg) {
    if (!fn) hale_panic("metrics: %s: callback missing", name ? name : "(null)");
    hale_metric *m = family_new(reg, k, name, help, 0, NULL);
    m->fn = fn;
    m->fn_arg = arg;
    family_add(reg, m);
}

void hale_metrics_gauge_fn(hale_metrics *reg, const char *name, const char *help,
                           double (*fn)(void *), void *arg) {
    fn_family(reg, K_GAUGE_FN, name, help, fn, arg);
}

void hale_metrics_counter_fn(hale_metrics *reg, const char *name, const char *help,
                             double (*fn)(void *), void *arg) {
    fn_family(reg, K_COUNTER_FN, name, help, fn, arg);
}

/* ---- children ----------------------------------------------------------- */

static child *child_new(hale_metric *m, uint64_t hash, char **values) {
    size_t nb = m->kind == K_HISTOGRAM ? m->nbounds + 1 : 0;
    size_t size = sizeof(child) + nb * sizeof(_Atomic uint64_t);
    size = (size + 63) & ~(size_t)63;
    child *c = aligned_alloc(64, size);
    if (!c) hale_panic("metrics: out of memory");
    memset(c, 0, size);
    atomic_init(&c->value, m->kind == K_GAUGE ? dbits(0.0) : 0);
    atomic_init(&c->sum_bits, dbits(0.0));
    c->hash = hash;
    c->values = values;
    c->family = m;
    return c;
}

/* FNV-1a over the values, each followed by a 0xFF separator (a byte that
 * valid UTF-8 never holds). */
static uint64_t hash_values(const char *const *v, size_t n, bool *high) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++) {
            *high |= *p >= 0x80;
            h = (h ^ *p) * 1099511628211ull;
        }
        h = (h ^ 0xFF) * 1099511628211ull;
    }
    return h;
}

/* Copy of s with each invalid UTF-8 byte replaced by U+FFFD. */
static char *sanitize(const char *s) {
    hale_buf b;
    hale_buf_init(&b);
    size_t n = strlen(s);
    hale_buf_reserve(&b, n);
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t l = hale_utf8_seq(p, (size_t)(end - p), NULL);
        if (l) hale_buf_append(&b, p, l);
        else hale_buf_append(&b, "\xEF\xBF\xBD", 3);
        p += l ? l : 1;
    }
    return b.data;
}

static child *index_find(const ctable *t, uint64_t h, const char *const *v, size_t n) {
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        child *c = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!c) return NULL;
        if (c->hash != h) continue;
        size_t k = 0;
        while (k < n && strcmp(c->values[k], v[k]) == 0) k++;
        if (k == n) return c;
    }
}

static void table_put(ctable *t, child *c) {
    size_t i = c->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed)) i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], c, memory_order_release);
}

/* Add c to the ordered list and the index. Caller holds reg->mu. */
static void index_insert(hale_metric *m, child *c) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->list = xrealloc(m->list, m->cap * sizeof(child *));
    }
    m->list[m->n++] = c;
    ctable *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    if (m->n * 2 > t->mask + 1) { /* keep load <= 1/2 so probes stay short */
        size_t slots = (t->mask + 1) * 2;
        ctable *nt = xcalloc(1, sizeof *nt + slots * sizeof nt->slot[0]);
        nt->mask = slots - 1;
        nt->older = t;
        for (size_t i = 0; i < m->n; i++) table_put(nt, m->list[i]);
        atomic_store_explicit(&m->table, nt, memory_order_release);
    } else {
        table_put(t, c);
    }
}

static child *child_with(hale_metric *m, kind k, const char *const *values) {
    if (m->kind != k) hale_panic("metrics: %s used as the wrong metric type", m->name);
    if (m->nlabels && !values) hale_panic("metrics: %s: label values missing", m->name);
    for (size_t i = 0; i < m->nlabels; i++)
        if (!values[i]) hale_panic("metrics: %s: label value %zu is NULL", m->name, i);
    bool high = false;
    uint64_t h = hash_values(values, m->nlabels, &high);
    char **clean = NULL;
    if (high) { /* rare: maybe invalid UTF-8; look up the sanitized form */
        clean = xcalloc(m->nlabels ? m->nlabels : 1, sizeof *clean);
        for (size_t i = 0; i < m->nlabels; i++) clean[i] = sanitize(values[i]);
        values = (const char *const *)clean;
        bool ignored = false;
        h = hash_values(values, m->nlabels, &ignored);
    }
    child *c = index_find(atomic_load_explicit(&m->table, memory_order_acquire), h, values,
                          m->nlabels);
    if (c) { free_strv(clean, m->nlabels); return c; }

    pthread_mutex_lock(&m->reg->mu);
    c = index_find(atomic_load_explicit(&m->table, memory_order_relaxed), h, values, m->nlabels);
    if (!c) {
        if (!clean && m->nlabels) {
            clean = xcalloc(m->nlabels, sizeof *clean);
            for (size_t i = 0; i < m->nlabels; i++) clean[i] = xstrdup(values[i]);
        }
        c = child_new(m, h, clean);
        clean = NULL; /* owned by c now */
        index_insert(m, c);
    }
    pthread_mutex_unlock(&m->reg->mu);
    free_strv(clean, m->nlabels);
    return c;
}

hale_counter *hale_counter_with(hale_metric *m, const char *const *v) {
    return (hale_counter *)child_with(m, K_COUNTER, v);
}
hale_gauge *hale_gauge_with(hale_metric *m, const char *const *v) {
    return (hale_gauge *)child_with(m, K_GAUGE, v);
}
hale_histogram *hale_histogram_with(hale_metric *m, const char *const *v) {
    return (hale_histogram *)child_with(m, K_HISTOGRAM, v);
}

/* ---- updates ------------------------------------------------------------ */

void hale_counter_add(hale_counter *c, uint64_t n) {
    atomic_fetch_add_explicit(&c->c.value, n, memory_order_relaxed);
}

uint64_t hale_counter_value(const hale_counter *c) {
    return atomic_load_explicit(&((hale_counter *)c)->c.value, memory_order_relaxed);
}

static void add_double(_Atomic uint64_t *bits, double delta) {
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void hale_gauge_set(hale_gauge *g, double v) {
    atomic_store_explicit(&g->c.value, dbits(v), memory_order_relaxed);
}
void hale_gauge_add(hale_gauge *g, double delta) { add_double(&g->c.value, delta); }
void hale_gauge_set_int(hale_gauge *g, int64_t v) { hale_gauge_set(g, (double)v); }
void hale_gauge_add_int(hale_gauge *g, int64_t delta) { add_double(&g->c.value, (double)delta); }

double hale_gauge_value(const hale_gauge *g) {
    return bitsd(atomic_load_explicit(&((hale_gauge *)g)->c.value, memory_order_relaxed));
}

void hale_histogram_observe(hale_histogram *h, double v) {
    if (isnan(v)) return;
    const hale_metric *m = h->c.family;
    size_t lo = 0, hi = m->nbounds; /* first bound >= v; nbounds means +Inf */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= m->bounds[mid]) hi = mid;
        else lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->c.buckets[lo], 1, memory_order_relaxed);
    add_double(&h->c.sum_bits, v);
}

/* ---- exposition --------------------------------------------------------- */

/* Shortest %g form that reads back as the same double (Go and Prometheus
 * print the shortest round-trip form too), or NaN/+Inf/-Inf. */
static const char *fmt_double(char tmp[40], double v) {
    if (isnan(v)) return "NaN";
    if (isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, 40, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    for (char *p = tmp; *p; p++) if (*p == ',') *p = '.'; /* setlocale() safety */
    return tmp;
}

static void put_double(hale_buf *out, double v) {
    char tmp[40];
    hale_buf_puts(out, fmt_double(tmp, v));
}

/* Escape for HELP (\\ and \n) or label values (also \"). */
static void put_escaped(hale_buf *out, const char *s, bool quote) {
    for (const char *p = s; *p; p++) {
        const char *r = NULL;
        if (*p == '\\') r = "\\\\";
        else if (*p == '\n') r = "\\n";
        else if (quote && *p == '"') r = "\\\"";
        if (r) hale_buf_append(out, r, 2);
        else hale_buf_append(out, p, 1);
    }
}

/* {a="x",b="y"} with an optional extra le label; nothing when empty. */
static void put_labels(hale_buf *out, const hale_metric *m, const child *c, const char *le) {
    if (m->nlabels == 0 && !le) return;
    hale_buf_append(out, "{", 1);
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i) hale_buf_append(out, ",", 1);
        hale_buf_puts(out, m->label_names[i]);
        hale_buf_append(out, "=\"", 2);
        put_escaped(out, c->values[i], true);
        hale_buf_append(out, "\"", 1);
    }
    if (le) hale_buf_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    hale_buf_append(out, "}", 1);
}

static void render_histogram(hale_buf *out, const hale_metric *m, const child *c) {
    uint64_t cum = 0;
    char tmp[40];
    for (size_t i = 0; i <= m->nbounds; i++) {
        cum += atomic_load_explicit(&((child *)c)->buckets[i], memory_order_relaxed);
        const char *le = i < m->nbounds ? fmt_double(tmp, m->bounds[i]) : "+Inf";
        hale_buf_printf(out, "%s_bucket", m->name);
        put_labels(out, m, c, le);
        hale_buf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    hale_buf_printf(out, "%s_sum", m->name);
    put_labels(out, m, c, NULL);
    hale_buf_append(out, " ", 1);
    put_double(out, bitsd(atomic_load_explicit(&((child *)c)->sum_bits, memory_order_relaxed)));
    hale_buf_printf(out, "\n%s_count", m->name);
    put_labels(out, m, c, NULL);
    hale_buf_printf(out, " %llu\n", (unsigned long long)cum); /* == +Inf by construction */
}

void hale_metrics_render(hale_metrics *reg, hale_buf *out) {
    static const char *const type_name[] = {"counter", "gauge", "histogram", "counter", "gauge"};
    pthread_mutex_lock(&reg->mu);
    for (const hale_metric *m = reg->first; m; m = m->next) {
        hale_buf_printf(out, "# HELP %s ", m->name);
        put_escaped(out, m->help, false);
        hale_buf_printf(out, "\n# TYPE %s %s\n", m->name, type_name[m->kind]);
        if (m->kind == K_COUNTER_FN || m->kind == K_GAUGE_FN) {
            hale_buf_printf(out, "%s ", m->name);
            put_double(out, m->fn(m->fn_arg));
            hale_buf_append(out, "\n", 1);
            continue;
        }
        for (size_t i = 0; i < m->n; i++) {
            const child *c = m->list[i];
            if (m->kind == K_HISTOGRAM) { render_histogram(out, m, c); continue; }
            hale_buf_puts(out, m->name);
            put_labels(out, m, c, NULL);
            hale_buf_append(out, " ", 1);
            uint64_t v = atomic_load_explicit(&((child *)c)->value, memory_order_relaxed);
            if (m->kind == K_COUNTER) hale_buf_printf(out, "%llu", (unsigned long long)v);
            else put_double(out, bitsd(v));
            hale_buf_append(out, "\n", 1);
        }
    }
    pthread_mutex_unlock(&reg->mu);
}
