/* Tests for src/runtime/observe/metrics.c and metrics_process.c. R: O3, R: O4
 * The exposition is read back by a strict text-format 0.0.4 parser below
 * (and by `promtool check metrics` when installed), not compared as a blob. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

/* ---- a strict exposition parser ----------------------------------------- */

typedef struct sample {
    char name[128];
    size_t nl;
    char lname[8][64];
    char *lval[8];
    double value;
} sample;

typedef struct family {
    char name[128], type[16];
    char *help;
} family;

typedef struct expo {
    sample *s;
    size_t ns;
    family f[64];
    size_t nf;
} expo;

static void expo_free(expo *e) {
    for (size_t i = 0; i < e->ns; i++)
        for (size_t j = 0; j < e->s[i].nl; j++) free(e->s[i].lval[j]);
    for (size_t i = 0; i < e->nf; i++) free(e->f[i].help);
    free(e->s);
    memset(e, 0, sizeof *e);
}

static bool is_name(const char *s, size_t n, bool colon) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (colon && c == ':') || (i && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static const family *family_of(const expo *e, const char *sample_name) {
    for (size_t i = 0; i < e->nf; i++) {
        const family *f = &e->f[i];
        size_t n = strlen(f->name);
        if (strcmp(sample_name, f->name) == 0) return f;
        if (strcmp(f->type, "histogram") == 0 && strncmp(sample_name, f->name, n) == 0 &&
            (!strcmp(sample_name + n, "_bucket") || !strcmp(sample_name + n, "_sum") ||
             !strcmp(sample_name + n, "_count")))
            return f;
    }
    return NULL;
}

static double parse_value(const char *s, const char **end) {
    if (!strncmp(s, "+Inf", 4)) { *end = s + 4; return INFINITY; }
    if (!strncmp(s, "-Inf", 4)) { *end = s + 4; return -INFINITY; }
    if (!strncmp(s, "NaN", 3)) { *end = s + 3; return NAN; }
    char *e;
    double v = strtod(s, &e);
    *end = e;
    return v;
}

/* Parses text; fails the test on any syntax error. Checks: HELP/TYPE come
 * once per family before its samples, samples of a family are contiguous. */
static void expo_parse(const char *text, expo *e) {
    memset(e, 0, sizeof *e);
    size_t cap = 64;
    e->s = calloc(cap, sizeof *e->s);
    const family *current = NULL;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl) fail_msg("last line lacks a newline: %s", p);
        if (!strncmp(p, "# HELP ", 7) || !strncmp(p, "# TYPE ", 7)) {
            const char *n0 = p + 7, *n1 = n0;
            while (n1 < nl && *n1 != ' ') n1++;
            assert_true(is_name(n0, (size_t)(n1 - n0), true));
            family *f = NULL;
            for (size_t i = 0; i < e->nf; i++)
                if (strlen(e->f[i].name) == (size_t)(n1 - n0) && !strncmp(e->f[i].name, n0, (size_t)(n1 - n0)))
                    f = &e->f[i];
            if (!f) {
                assert_true(e->nf < 64);
                f = &e->f[e->nf++];
                memcpy(f->name, n0, (size_t)(n1 - n0));
            }
            if (p[2] == 'H') {
                assert_null(f->help);
                f->help = calloc(1, (size_t)(nl - n1) + 1);
                size_t k = 0;
                for (const char *q = n1 + 1; q < nl; q++) { /* unescape \\ and \n */
                    if (*q == '\\') {
                        q++;
                        assert_true(*q == '\\' || *q == 'n');
                        f->help[k++] = *q == 'n' ? '\n' : '\\';
                    } else f->help[k++] = *q;
                }
            } else {
                assert_int_equal(f->type[0], '\0');
                size_t tl = (size_t)(nl - n1 - 1);
                assert_true(tl < sizeof f->type);
                memcpy(f->type, n1 + 1, tl);
                assert_true(!strcmp(f->type, "counter") || !strcmp(f->type, "gauge") ||
                            !strcmp(f->type, "histogram"));
            }
            p = nl + 1;
            continue;
        }
        assert_int_not_equal(*p, '#');
        if (e->ns == cap) e->s = realloc(e->s, (cap *= 2) * sizeof *e->s);
        sample *s = &e->s[e->ns++];
        memset(s, 0, sizeof *s);
        const char *q = p;
        while (q < nl && *q != '{' && *q != ' ') q++;
        assert_true(is_name(p, (size_t)(q - p), true));
        memcpy(s->name, p, (size_t)(q - p));
        if (*q == '{') {
            q++;
            while (*q != '}') {
                const char *l0 = q;
                while (*q != '=') { assert_true(q < nl); q++; }
                assert_true(is_name(l0, (size_t)(q - l0), false));
                memcpy(s->lname[s->nl], l0, (size_t)(q - l0));
                assert_int_equal(*++q, '"');
                q++;
                char *v = calloc(1, (size_t)(nl - q) + 1);
                size_t k = 0;
                while (*q != '"') {
                    assert_true(q < nl);
                    if (*q == '\\') {
                        q++;
                        assert_true(*q == '\\' || *q == 'n' || *q == '"');
                        v[k++] = *q == 'n' ? '\n' : *q;
                    } else v[k++] = *q;
                    q++;
                }
                s->lval[s->nl++] = v;
                q++;
                if (*q == ',') q++;
                else assert_int_equal(*q, '}');
            }
            q++;
        }
        assert_int_equal(*q++, ' ');
        const char *end;
        s->value = parse_value(q, &end);
        assert_true(end == nl);
        const family *f = family_of(e, s->name);
        if (!f || !f->type[0]) fail_msg("sample %s has no TYPE before it", s->name);
        if (f != current) { /* a family's samples must be contiguous */
            for (size_t i = 0; i + 1 < e->ns; i++) assert_ptr_not_equal(family_of(e, e->s[i].name), f);
            current = f;
        }
        p = nl + 1;
    }
}

static const char *label(const sample *s, const char *name) {
    for (size_t i = 0; i < s->nl; i++)
        if (!strcmp(s->lname[i], name)) return s->lval[i];
    return NULL;
}

/* The sample called name whose labels include all of the given k=v pairs
 * (NULL-terminated); NULL if none. */
static const sample *find(const expo *e, const char *name, ...) {
    for (size_t i = 0; i < e->ns; i++) {
        if (strcmp(e->s[i].name, name)) continue;
        va_list ap;
        va_start(ap, name);
        bool ok = true;
        const char *k;
        while (ok && (k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *), *have = label(&e->s[i], k);
            ok = have && !strcmp(have, v);
        }
        va_end(ap);
        if (ok) return &e->s[i];
    }
    return NULL;
}

static const family *fam(const expo *e, const char *name) {
    for (size_t i = 0; i < e->nf; i++)
        if (!strcmp(e->f[i].name, name)) return &e->f[i];
    return NULL;
}

/* Every histogram series: buckets cumulative, le ascending, ends with +Inf,
 * +Inf == _count. Returns the number of series checked. */
static size_t check_histograms(const expo *e) {
    size_t series = 0;
    for (size_t i = 0; i < e->ns; i++) {
        const sample *s = &e->s[i];
        size_t n = strlen(s->name);
        if (n < 7 || strcmp(s->name + n - 7, "_bucket")) continue;
        const sample *first = s;
        double prev_le = -INFINITY, prev = 0;
        for (;; s = &e->s[++i]) {
            assert_true(i < e->ns);
            assert_string_equal(s->name, first->name);
            const char *le_s = label(s, "le");
            assert_non_null(le_s);
            const char *end;
            double le = parse_value(le_s, &end);
            assert_true(*end == '\0' && le > prev_le);
            assert_true(s->value >= prev);
            prev_le = le;
            prev = s->value;
            if (isinf(le)) break;
        }
        char base[128];
        snprintf(base, sizeof base, "%.*s", (int)(n - 7), first->name);
        const sample *sum = &e->s[i + 1], *count = &e->s[i + 2];
        assert_string_equal(sum->name, strcat(strcpy((char[140]){0}, base), "_sum"));
        assert_string_equal(count->name, strcat(strcpy((char[140]){0}, base), "_count"));
        assert_true(count->value == prev); /* +Inf == _count */
        assert_int_equal(count->nl + 1, first->nl);
        series++;
        i += 2;
    }
    return series;
}

static char *render(hale_metrics *reg) {
    hale_buf b;
    hale_buf_init(&b);
    hale_metrics_render(reg, &b);
    return b.data ? b.data : strdup("");
}

/* ---- tests -------------------------------------------------------------- */

static double seven(void *arg) { return *(double *)arg; }

static void test_exposition(void **state) { /* R: O3 */
    (void)state;
    hale_metrics *reg = hale_metrics_new();
    const char *rl[] = {"method", "route", "status"};
    hale_metric *req = hale_metrics_counter(reg, "http_requests_total", "HTTP requests.\nBy route.", 3, rl);
    hale_metric *inflight = hale_metrics_gauge(reg, "http_requests_in_flight", "In flight \\ now.", 0, NULL);
    const char *hl[] = {"method", "route"};
    hale_metric *dur = hale_metrics_histogram(reg, "http_request_duration_seconds", "Latency.", 2, hl, 0, NULL);
    double g = 7.25;
    hale_metrics_gauge_fn(reg, "callback_value", "From a callback.", seven, &g);
    hale_metric *odd = hale_metrics_gauge(reg, "odd_values", "Formatting.", 1, (const char *[]){"k"});

    hale_counter *c1 = hale_counter_with(req, (const char *[]){"GET", "/v1/kv/{key}", "200"});
    hale_counter_add(c1, 41);
    hale_counter_inc(c1);
    assert_ptr_equal(c1, hale_counter_with(req, (const char *[]){"GET", "/v1/kv/{key}", "200"}));
    hale_counter_inc(hale_counter_with(req, (const char *[]){"PUT", "/v1/kv/{key}", "201"}));
    hale_gauge *gi = hale_gauge_with(inflight, NULL);
    hale_gauge_inc(gi);
    hale_gauge_inc(gi);
    hale_gauge_dec(gi);
    hale_gauge_add(gi, 0.5);
    /* the read-back side of the API (a service's own /stats, its tests) */
    assert_int_equal(hale_counter_value(c1), 42);
    assert_true(hale_gauge_value(gi) == 1.5);
    hale_histogram *h = hale_histogram_with(dur, (const char *[]){"GET", "/v1/kv/{key}"});
    const double obs[] = {0.00005, 0.0001 /* on a bound: le is inclusive */, 0.003, 0.7, 11, NAN};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) hale_histogram_observe(h, obs[i]);
    hale_gauge_set(hale_gauge_with(odd, (const char *[]){"tenth"}), 0.1);
    hale_gauge_set(hale_gauge_with(odd, (const char *[]){"nan"}), NAN);
    hale_gauge_set(hale_gauge_with(odd, (const char *[]){"inf"}), -INFINITY);
    hale_gauge_set_int(hale_gauge_with(odd, (const char *[]){"big"}), (int64_t)1 << 53);
    hale_gauge_set(hale_gauge_with(odd, (const char *[]){"third"}), 1.0 / 3);

    char *text = render(reg);
    expo e;
    expo_parse(text, &e);
    /* registration order, HELP escaping, types */
    assert_int_equal(e.nf, 5);
    assert_string_equal(e.f[0].name, "http_requests_total");
    assert_string_equal(e.f[0].help, "HTTP requests.\nBy route.");
    assert_string_equal(e.f[0].type, "counter");
    assert_string_equal(e.f[1].help, "In flight \\ now.");
    assert_string_equal(e.f[1].type, "gauge");
    assert_string_equal(e.f[2].type, "histogram");
    assert_string_equal(fam(&e, "callback_value")->type, "gauge");
    /* values; children in creation order */
    assert_string_equal(label(&e.s[0], "method"), "GET");
    assert_true(e.s[0].value == 42);
    assert_true(find(&e, "http_requests_total", "method", "PUT", "status", "201", NULL)->value == 1);
    assert_true(find(&e, "http_requests_in_flight", NULL)->value == 1.5);
    assert_true(find(&e, "callback_value", NULL)->value == 7.25);
    assert_true(find(&e, "http_request_duration_seconds_bucket", "le", "0.0001", NULL)->value == 2);
    assert_true(find(&e, "http_request_duration_seconds_bucket", "le", "0.005", NULL)->value == 3);
    assert_true(find(&e, "http_request_duration_seconds_bucket", "le", "10", NULL)->value == 4);
    assert_true(find(&e, "http_request_duration_seconds_bucket", "le", "+Inf", NULL)->value == 5);
    assert_true(find(&e, "http_request_duration_seconds_count", NULL)->value == 5);
    assert_true(fabs(find(&e, "http_request_duration_seconds_sum", NULL)->value - 11.70315) < 1e-9);
    assert_int_equal(check_histograms(&e), 1);
    /* 16 default buckets + Inf */
    size_t nb = 0;
    for (size_t i = 0; i < e.ns; i++) nb += !strcmp(e.s[i].name, "http_request_duration_seconds_bucket");
    assert_int_equal(nb, HALE_METRICS_LATENCY_NBUCKETS + 1);
    assert_non_null(strstr(text, "odd_values{k=\"tenth\"} 0.1\n"));
    assert_non_null(strstr(text, "odd_values{k=\"nan\"} NaN\n"));
    assert_non_null(strstr(text, "odd_values{k=\"inf\"} -Inf\n"));
    assert_non_null(strstr(text, "odd_values{k=\"big\"} 9007199254740992\n"));
    assert_true(find(&e, "odd_values", "k", "third", NULL)->value == 1.0 / 3); /* round trip */
    assert_non_null(strstr(text, "http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/kv/{key}\",le=\"0.00025\"} 2\n"));
    expo_free(&e);
    free(text);
    hale_metrics_free(reg);
}

static void test_label_escaping(void **state) { /* R: O3 */
    (void)state;
    hale_metrics *reg = hale_metrics_new();
    hale_metric *m = hale_metrics_counter(reg, "esc_total", "Escapes.", 2, (const char *[]){"a", "b"});
    static const char *vals[][2] = {
        {"quote\"d", "back\\slash"}, {"new\nline", ""}, {"\xff\xfe bad", "utf8 \xe2\x82\xac"},
        {"}{,=\"", "# HELP x"},
    };
    for (size_t i = 0; i < 4; i++) hale_counter_add(hale_counter_with(m, vals[i]), i + 1);
    /* values that differ only in invalid bytes are one child */
    assert_ptr_equal(hale_counter_with(m, (const char *[]){"\xfe\xff bad", "utf8 \xe2\x82\xac"}),
                     hale_counter_with(m, vals[2]));
    char *text = render(reg);
    expo e;
    expo_parse(text, &e);
    assert_int_equal(e.ns, 4);
    assert_true(find(&e, "esc_total", "a", "quote\"d", "b", "back\\slash", NULL)->value == 1);
    assert_true(find(&e, "esc_total", "a", "new\nline", "b", "", NULL)->value == 2);
    assert_true(find(&e, "esc_total", "a", "\xEF\xBF\xBD\xEF\xBF\xBD bad", NULL)->value == 3);
    assert_true(find(&e, "esc_total", "a", "}{,=\"", "b", "# HELP x", NULL)->value == 4);
    expo_free(&e);
    free(text);
    hale_metrics_free(reg);
}

/* ---- concurrency -------------------------------------------------------- */

#define THREADS 8
#define ITERS 50000

typedef struct shared {
    hale_metrics *reg;
    hale_metric *ctr, *gauge, *hist;
    hale_counter *seen[THREADS][16];
    _Atomic int done;
} shared;

static void *updater(void *arg) {
    shared *sh = arg;
    static _Atomic int next_id;
    int id = atomic_fetch_add(&next_id, 1) % THREADS;
    hale_counter *hot = hale_counter_with(sh->ctr, (const char *[]){"hot"});
    hale_gauge *g = hale_gauge_with(sh->gauge, NULL);
    hale_histogram *h = hale_histogram_with(sh->hist, (const char *[]){"x"});
    for (int i = 0; i < ITERS; i++) {
        hale_counter_inc(hot);
        hale_gauge_add_int(g, 1);
        hale_histogram_observe(h, (i % 4) * 0.5); /* sum per 4: 3.0, exact in binary */
        if (i % 1000 == 0) { /* concurrent child creation, shared label sets */
            char v[16];
            snprintf(v, sizeof v, "c%d", (i / 1000) % 16);
            hale_counter *c = hale_counter_with(sh->ctr, (const char *[]){v});
            hale_counter_inc(c);
            sh->seen[id][(i / 1000) % 16] = c;
        }
    }
    return NULL;
}

static void *scraper(void *arg) {
    shared *sh = arg;
    int scrapes = 0;
    while (!atomic_load(&sh->done) || scrapes < 3) {
        char *text = render(sh->reg);
        expo e;
        expo_parse(text, &e);
        check_histograms(&e); /* +Inf == _count even mid-update */
        expo_free(&e);
        free(text);
        scrapes++;
    }
    return NULL;
}

static void test_concurrent_exact_totals(void **state) { /* R: O3 */
    (void)state;
    shared sh = {0};
    sh.reg = hale_metrics_new();
    sh.ctr = hale_metrics_counter(sh.reg, "work_total", "Work.", 1, (const char *[]){"kind"});
    sh.gauge = hale_metrics_gauge(sh.reg, "level", "Level.", 0, NULL);
    sh.hist = hale_metrics_histogram(sh.reg, "obs_seconds", "Obs.", 1, (const char *[]){"k"}, 3,
                                     (const double[]){0.5, 1, INFINITY});
    pthread_t th[THREADS], sc;
    assert_int_equal(pthread_create(&sc, NULL, scraper, &sh), 0);
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, updater, &sh), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    atomic_store(&sh.done, 1);
    pthread_join(sc, NULL);

    char *text = render(sh.reg);
    expo e;
    expo_parse(text, &e);
    const double total = (double)THREADS * ITERS;
    assert_true(find(&e, "work_total", "kind", "hot", NULL)->value == total);
    assert_true(find(&e, "level", NULL)->value == total);
    assert_true(find(&e, "obs_seconds_count", NULL)->value == total);
    assert_true(find(&e, "obs_seconds_sum", NULL)->value == total / 4 * 3.0);
    assert_true(find(&e, "obs_seconds_bucket", "le", "0.5", NULL)->value == total / 2);
    assert_true(find(&e, "obs_seconds_bucket", "le", "1", NULL)->value == total * 3 / 4);
    double created = 0;
    for (int k = 0; k < 16; k++) {
        char v[16];
        snprintf(v, sizeof v, "c%d", k);
        const sample *s = find(&e, "work_total", "kind", v, NULL);
        assert_non_null(s);
        created += s->value;
        for (int t = 1; t < THREADS; t++) assert_ptr_equal(sh.seen[t][k], sh.seen[0][k]);
    }
    assert_true(created == THREADS * (ITERS / 1000));
    assert_int_equal(e.ns, 1 + 16 + 1 + 3 + 2);
    expo_free(&e);
    free(text);
    hale_metrics_free(sh.reg);
}

static void test_process_and_build_info(void **state) { /* R: O3 */
    (void)state;
    hale_metrics *reg = hale_metrics_new();
    hale_metrics_register_process(reg);
    hale_metrics_register_build_info(reg, "0.1.0", "abc123\"", "GNU-12.2.0");
    hale_metrics_register_log(reg);
    volatile double burn = 0;
    for (int i = 0; i < 3000000; i++) burn += i * 0.5; /* some CPU time */
    assert_true(burn > 0);
    char *text = render(reg);
    expo e;
    expo_parse(text, &e);
    assert_string_equal(fam(&e, "process_cpu_seconds_total")->type, "counter");
    static const char *gauges[] = {"process_resident_memory_bytes", "process_virtual_memory_bytes",
                                   "process_open_fds", "process_max_fds",
                                   "process_start_time_seconds", "hale_build_info"};
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        assert_non_null(fam(&e, gauges[i]));
        assert_string_equal(fam(&e, gauges[i])->type, "gauge");
    }
    double cpu = find(&e, "process_cpu_seconds_total", NULL)->value;
    double rss = find(&e, "process_resident_memory_bytes", NULL)->value;
    double vms = find(&e, "process_virtual_memory_bytes", NULL)->value;
    double fds = find(&e, "process_open_fds", NULL)->value;
    double maxfds = find(&e, "process_max_fds", NULL)->value;
    double start = find(&e, "process_start_time_seconds", NULL)->value;
    assert_true(cpu > 0 && cpu < 3600);
    assert_true(rss > 100000 && vms >= rss);
    assert_true(fds >= 3 && maxfds >= fds);
    double now = (double)time(NULL);
    assert_true(start <= now + 1 && start > now - 3600);
    const sample *bi = find(&e, "hale_build_info", "version", "0.1.0", "revision", "abc123\"",
                            "compiler", "GNU-12.2.0", NULL);
    assert_non_null(bi);
    assert_true(bi->value == 1);
    assert_string_equal(fam(&e, "hale_log_lines_dropped_total")->type, "counter");
    expo_free(&e);
    free(text);
    hale_metrics_free(reg);
}

/* promtool (Debian `prometheus`) reads the exposition like a real server. */
static void test_promtool(void **state) { /* R: O4 */
    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) skip();
    hale_metrics *reg = hale_metrics_new();
    hale_metrics_register_process(reg);
    hale_metrics_register_build_info(reg, "0.1.0", "deadbeef", "GNU-12.2.0");
    const char *rl[] = {"method", "route", "status"};
    hale_metric *req = hale_metrics_counter(reg, "http_requests_total", "HTTP requests.", 3, rl);
    hale_counter_add(hale_counter_with(req, (const char *[]){"GET", "/v1/kv/{key}", "200"}), 3);
    hale_counter_inc(hale_counter_with(req, (const char *[]){"GET", "q\"\\\n\xff", "404"}));
    hale_metric *dur = hale_metrics_histogram(reg, "http_request_duration_seconds", "Latency.", 2,
                                              (const char *[]){"method", "route"}, 0, NULL);
    hale_histogram_observe(hale_histogram_with(dur, (const char *[]){"GET", "/v1/kv/{key}"}), 0.002);
    char *text = render(reg);
    FILE *p = popen("promtool check metrics >/tmp/hale_promtool.out 2>&1", "w");
    assert_non_null(p);
    fputs(text, p);
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[2048] = "";
        FILE *f = fopen("/tmp/hale_promtool.out", "r");
        if (f) {
            msg[fread(msg, 1, sizeof msg - 1, f)] = '\0';
            fclose(f);
        }
        fail_msg("promtool check metrics failed (status %d): %s", st, msg);
    }
    unlink("/tmp/hale_promtool.out");
    free(text);
    hale_metrics_free(reg);
}

/* Programming errors abort with a message instead of rendering bad output. */
static void expect_abort(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}
static void bad_name(void) { hale_metrics_counter(hale_metrics_new(), "bad-name", "", 0, NULL); }
static void bad_label(void) {
    hale_metrics_counter(hale_metrics_new(), "x", "", 1, (const char *[]){"__reserved"});
}
static void le_label(void) {
    hale_metrics_histogram(hale_metrics_new(), "x", "", 1, (const char *[]){"le"}, 0, NULL);
}
static void dup_name(void) {
    hale_metrics *r = hale_metrics_new();
    hale_metrics_gauge(r, "x", "", 0, NULL);
    hale_metrics_counter(r, "x", "", 0, NULL);
}
static void unsorted(void) {
    hale_metrics_histogram(hale_metrics_new(), "x", "", 0, NULL, 2, (const double[]){1, 0.5});
}
static void wrong_kind(void) { hale_gauge_with(hale_metrics_counter(hale_metrics_new(), "x", "", 0, NULL), NULL); }
static void null_value(void) {
    hale_counter_with(hale_metrics_counter(hale_metrics_new(), "x", "", 1, (const char *[]){"a"}),
                      (const char *[]){NULL});
}

static void test_misuse_aborts(void **state) {
    (void)state;
    expect_abort(bad_name);
    expect_abort(bad_label);
    expect_abort(le_label);
    expect_abort(dup_name);
    expect_abort(unsorted);
    expect_abort(wrong_kind);
    expect_abort(null_value);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_concurrent_exact_totals),
        cmocka_unit_test(test_process_and_build_info),
        cmocka_unit_test(test_promtool),
        cmocka_unit_test(test_misuse_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
