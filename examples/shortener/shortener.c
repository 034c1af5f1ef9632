/* shortener: a URL shortener on the installed hale runtime (libhale).
 *
 * A service of another shape than hale's key-value one, built out of tree
 * against <hale/...> only (docs/runtime.md walks through it):
 *  - settings of its own in the settings table (shortener.*), shown by
 *    `shortener config` with their sources like the runtime's own;
 *  - routes: POST /v1/links (body: the URL) -> 201 {"code","short_url","url"}
 *    and Location; GET /s/{code} -> 302 to the URL; GET /v1/links/{code} ->
 *    200 {"code","url","hits"}; errors are hale's JSON errors;
 *  - a deferred response: POST suspends its request and hands it to one
 *    writer thread, which stores the link (after shortener.write_delay, a
 *    stand-in for a slow disk or a remote store) and resumes the request;
 *  - a health check of its own ("writer": the writer thread is alive), so
 *    readiness is 503 until it runs and while it is stuck;
 *  - metrics of its own: shortener_links_created_total,
 *    shortener_redirects_total{result}, shortener_links; and GET /stats on
 *    the admin listener, the same counts as one JSON document.
 * On SIGTERM the runtime drains: requests the writer still holds count as
 * in flight and are answered before stop() ends the writer.
 */
#include <hale/lifecycle.h>
#include <hale/log.h>
#include <hale/service.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const hale_setting settings[] = {
    {"shortener.base_url", HALE_SETTING_STRING, "http://localhost:8080", 0, 0, NULL,
     "SHORTENER_BASE_URL", 0, "Prefix of the short links handed out (no trailing slash).", HALE_NO_FIELD},
    {"shortener.max_links", HALE_SETTING_INT, "10000", 1, 1000000, NULL, NULL, 0,
     "Links kept in memory; a POST past it answers 507.", HALE_NO_FIELD},
    {"shortener.code_length", HALE_SETTING_INT, "7", 4, 16, NULL, NULL, 0,
     "Characters of a short code (base 62).", HALE_NO_FIELD},
    {"shortener.max_url_bytes", HALE_SETTING_INT, "2048", 16, 65536, NULL, NULL, 0,
     "Longest URL accepted (400 past it).", HALE_NO_FIELD},
    {"shortener.write_delay", HALE_SETTING_DURATION, "0ms", 0, 60000, NULL, NULL, 0,
     "Time the writer takes per link (stands in for a slow store).", HALE_NO_FIELD},
};

typedef struct short_link {
    char code[17];
    char *url;
    atomic_ulong hits;
} short_link;

typedef struct job {
    hale_req *req;
    char *url;
    struct job *next;
} job;

typedef struct shortener {
    /* settings, read in setup */
    const char *base_url;
    size_t max_links, code_len, max_url;
    unsigned write_delay_ms;
    /* the link table: open addressing, 2 * max_links slots, under mu */
    pthread_mutex_t mu;
    short_link *slots;
    size_t nslots, nlinks;
    /* the writer thread and its queue */
    pthread_cond_t cv;
    job *head, *tail;
    bool stopping, writer_running;
    pthread_t writer;
    atomic_ullong heartbeat_ms;
    /* metrics */
    hale_counter *created, *redirect_found, *redirect_missing;
} shortener;

static shortener the_app = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static unsigned long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

static size_t hash_code(const char *s, size_t n) {
    size_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

/* The slot holding code, or the empty slot where it would go. Under mu. */
static short_link *find_slot(shortener *a, const char *code, size_t n) {
    for (size_t i = hash_code(code, n) % a->nslots;; i = (i + 1) % a->nslots) {
        short_link *l = &a->slots[i];
        if (!l->url || (strlen(l->code) == n && memcmp(l->code, code, n) == 0)) return l;
    }
}

static bool valid_code(const char *s, size_t n) {
    if (n == 0 || n > 16) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

/* http(s)://host... of printable ASCII without spaces. */
static const char *url_problem(const char *u, size_t n, size_t max) {
    if (n == 0) return "the body must be the URL to shorten";
    if (n > max) return "URL longer than shortener.max_url_bytes";
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return "only http:// and https:// URLs are shortened";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
            return "the URL must be printable ASCII without spaces (percent-encode the rest)";
    const char *host = u + (u[4] == 's' ? 8 : 7);
    if (host >= u + n || *host == '/') return "the URL has no host";
    return NULL;
}

static void json_field(hale_buf *b, const char *key, const char *val, bool comma) {
    hale_buf_printf(b, "%s\"%s\":\"", comma ? "," : "", key);
    hale_buf_json_escape(b, val, strlen(val));
    hale_buf_puts(b, "\"");
}

/* ---- the writer thread: stores links, answers the suspended requests ---- */

static void store_link(shortener *a, job *j) {
    hale_req *r = j->req;
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    pthread_mutex_lock(&a->mu);
    if (a->nlinks >= a->max_links) {
        pthread_mutex_unlock(&a->mu);
        hale_resp_error(r, 507, "full", "shortener.max_links links are stored already");
        free(j->url);
        return;
    }
    short_link *slot;
    char code[17];
    do {
        unsigned char rnd[16];
        if (getrandom(rnd, a->code_len, 0) != (ssize_t)a->code_len) {
            for (size_t i = 0; i < a->code_len; i++) rnd[i] = (unsigned char)rand();
        }
        for (size_t i = 0; i < a->code_len; i++) code[i] = alphabet[rnd[i] % 62];
        code[a->code_len] = '\0';
        slot = find_slot(a, code, a->code_len);
    } while (slot->url); /* taken: draw again (the table is never over half full) */
    memcpy(slot->code, code, a->code_len + 1);
    slot->url = j->url;
    atomic_store(&slot->hits, 0);
    a->nlinks++;
    pthread_mutex_unlock(&a->mu);
    hale_counter_inc(a->created);

    hale_buf loc, body;
    hale_buf_init(&loc);
    hale_buf_init(&body);
    hale_buf_printf(&loc, "%s/s/%s", a->base_url, code);
    hale_buf_puts(&body, "{");
    json_field(&body, "code", code, false);
    json_field(&body, "short_url", loc.data, true);
    json_field(&body, "url", j->url, true);
    hale_buf_puts(&body, "}\n");
    hale_resp_header(r, "Location", loc.data);
    hale_resp_take(r, 201, "application/json", body.data, body.len);
    hale_buf_free(&loc);
}

static void *writer_main(void *arg) {
    shortener *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        atomic_store(&a->heartbeat_ms, now_ms());
        if (!a->head) {
            if (a->stopping) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
            continue;
        }
        job *j = a->head;
        a->head = j->next;
        if (!a->head) a->tail = NULL;
        pthread_mutex_unlock(&a->mu);
        if (a->write_delay_ms) {
            struct timespec d = {a->write_delay_ms / 1000, (long)(a->write_delay_ms % 1000) * 1000000L};
            nanosleep(&d, NULL);
        }
        store_link(a, j);
        hale_req_resume(j->req); /* answers it on its worker thread */
        free(j);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- handlers (worker threads) ---- */

static void h_create(hale_req *r, void *arg) {
    shortener *a = arg;
    size_t n;
    const char *body = hale_req_body(r, &n);
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r')) n--;
    const char *why = url_problem(body, n, a->max_url);
    if (why) {
        hale_resp_error(r, 400, "bad_url", why);
        return;
    }
    job *j = malloc(sizeof *j);
    char *url = malloc(n + 1);
    if (!j || !url) {
        free(j);
        free(url);
        hale_resp_error(r, 503, "out_of_memory", "try again later");
        return;
    }
    memcpy(url, body, n);
    url[n] = '\0';
    *j = (job){.req = r, .url = url};
    hale_req_suspend(r); /* before the hand-off: from here the writer owns r */
    pthread_mutex_lock(&a->mu);
    if (a->tail) a->tail->next = j;
    else a->head = j;
    a->tail = j;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* The link for the {code} capture, NULL (404 set) when there is none. */
static short_link *lookup(shortener *a, hale_req *r, char **url_copy) {
    size_t n;
    const char *code = hale_req_param(r, "code", &n);
    short_link *l = NULL;
    *url_copy = NULL;
    if (code && valid_code(code, n)) {
        pthread_mutex_lock(&a->mu);
        short_link *s = find_slot(a, code, n);
        if (s->url) {
            l = s;
            *url_copy = strdup(s->url);
        }
        pthread_mutex_unlock(&a->mu);
    }
    if (!l) hale_resp_error(r, 404, "not_found", "no link has this code");
    else if (!*url_copy) {
        hale_resp_error(r, 503, "out_of_memory", "try again later");
        l = NULL;
    }
    return l;
}

static void h_redirect(hale_req *r, void *arg) {
    shortener *a = arg;
    char *url;
    short_link *l = lookup(a, r, &url);
    if (!l) {
        hale_counter_inc(a->redirect_missing);
        return;
    }
    atomic_fetch_add(&l->hits, 1); /* slots never move or go away */
    hale_counter_inc(a->redirect_found);
    hale_resp_header(r, "Location", url);
    hale_resp_static(r, 302, "text/plain", "", 0);
    free(url);
}

static void h_info(hale_req *r, void *arg) {
    shortener *a = arg;
    char *url;
    short_link *l = lookup(a, r, &url);
    if (!l) return;
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_puts(&b, "{");
    json_field(&b, "code", l->code, false);
    json_field(&b, "url", url, true);
    hale_buf_printf(&b, ",\"hits\":%lu}\n", atomic_load(&l->hits));
    hale_resp_take(r, 200, "application/json", b.data, b.len);
    free(url);
}

/* ---- health check and metrics ---- */

static int check_writer(void *arg, char *err, size_t errlen) {
    shortener *a = arg;
    unsigned long long beat = atomic_load(&a->heartbeat_ms);
    if (beat == 0) return snprintf(err, errlen, "the writer thread has not started"), -1;
    unsigned long long age = now_ms() - beat;
    /* a link being written counts as alive for the write delay */
    if (age > 3000u + a->write_delay_ms)
        return snprintf(err, errlen, "the writer thread is stuck (%llu ms)", age), -1;
    return 0;
}

static double links_now(void *arg) {
    shortener *a = arg;
    pthread_mutex_lock(&a->mu);
    double n = (double)a->nlinks;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* GET /stats on the admin listener (operators only): the counters as one
 * JSON document, read back from the metrics the handlers count into. */
static void h_stats(hale_req *r, void *arg) {
    shortener *a = arg;
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_printf(&b, "{\"links\":%.0f,\"created\":%lu,\"redirects\":{\"found\":%lu,\"missing\":%lu}}\n",
                    links_now(a), (unsigned long)hale_counter_value(a->created),
                    (unsigned long)hale_counter_value(a->redirect_found),
                    (unsigned long)hale_counter_value(a->redirect_missing));
    hale_resp_take(r, 200, "application/json", b.data, b.len);
}

/* ---- the service callbacks ---- */

static void validate(hale_cfg *cfg, void *arg) {
    (void)arg;
    const char *base = hale_cfg_str(cfg, "shortener.base_url");
    size_t n = strlen(base);
    if (url_problem(base, n, 1024) || base[n - 1] == '/')
        hale_cfg_add_diag(cfg, HALE_DIAG_ERROR,
                          "shortener.base_url (%s): expected http(s)://host[:port][/path] "
                          "without a trailing slash, got \"%s\"",
                          hale_cfg_source(cfg, "shortener.base_url"), base);
}

static int setup(hale_service *svc, void *arg) {
    shortener *a = arg;
    const hale_cfg *cfg = hale_service_cfg(svc);
    a->base_url = hale_cfg_str(cfg, "shortener.base_url");
    a->max_links = (size_t)hale_cfg_int(cfg, "shortener.max_links");
    a->code_len = (size_t)hale_cfg_int(cfg, "shortener.code_length");
    a->max_url = (size_t)hale_cfg_int(cfg, "shortener.max_url_bytes");
    a->write_delay_ms = (unsigned)hale_cfg_ms(cfg, "shortener.write_delay");
    a->nslots = 2 * a->max_links + 1;
    a->slots = calloc(a->nslots, sizeof *a->slots);
    if (!a->slots) return -1;

    const hale_route routes[] = {
        {.method = "POST", .tmpl = "/v1/links", .fn = h_create, .arg = a, .flags = HALE_ROUTE_BODY},
        {.method = "GET", .tmpl = "/s/{code}", .fn = h_redirect, .arg = a},
        {.method = "GET", .tmpl = "/v1/links/{code}", .fn = h_info, .arg = a},
    };
    char err[256];
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (hale_router_add(hale_service_router(svc), &routes[i], err, sizeof err) != 0) {
            HALE_LOG(HALE_LOG_ERROR, "shortener", "cannot add a route", HALE_F_STR("error", err));
            return -1;
        }
    }
    const hale_route stats = {.method = "GET", .tmpl = "/stats", .fn = h_stats, .arg = a};
    if (hale_router_add(hale_service_admin_router(svc), &stats, err, sizeof err) != 0) {
        HALE_LOG(HALE_LOG_ERROR, "shortener", "cannot add the admin route", HALE_F_STR("error", err));
        return -1;
    }
    if (hale_health_add_check(hale_service_health(svc), "writer", check_writer, a, 500, 200, true) != 0)
        return -1;

    hale_metrics *m = hale_service_metrics(svc);
    a->created = hale_counter_with(
        hale_metrics_counter(m, "shortener_links_created_total", "Short links created.", 0, NULL), NULL);
    static const char *const result[] = {"result"};
    hale_metric *redirects = hale_metrics_counter(m, "shortener_redirects_total",
                                                  "GET /s/{code} answers by result.", 1, result);
    a->redirect_found = hale_counter_with(redirects, (const char *const[]){"found"});
    a->redirect_missing = hale_counter_with(redirects, (const char *const[]){"missing"});
    hale_metrics_gauge_fn(m, "shortener_links", "Links stored now.", links_now, a);
    return 0;
}

static int start(hale_service *svc, void *arg) {
    (void)svc;
    shortener *a = arg;
    if (pthread_create(&a->writer, NULL, writer_main, a) != 0) {
        hale_logf(HALE_LOG_ERROR, "shortener", "cannot start the writer thread");
        return -1;
    }
    a->writer_running = true;
    HALE_LOG(HALE_LOG_INFO, "shortener", "writer started", HALE_F_STR("base_url", a->base_url),
             HALE_F_UINT("max_links", a->max_links));
    return 0;
}

/* After the drain: no request is in flight any more, so the queue is empty. */
static void stop(hale_service *svc, void *arg) {
    (void)svc;
    shortener *a = arg;
    if (a->writer_running) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->writer, NULL);
        a->writer_running = false;
    }
    for (size_t i = 0; a->slots && i < a->nslots; i++) free(a->slots[i].url);
    free(a->slots);
    a->slots = NULL;
    hale_logf(HALE_LOG_INFO, "shortener", "writer stopped");
}

static const hale_service_def def = {
    .name = "shortener",
    .settings = settings,
    .nsettings = sizeof settings / sizeof settings[0],
    .app = &the_app,
    .validate = validate,
    .setup = setup,
    .start = start,
    .stop = stop,
};

int main(int argc, char **argv, char **envp) {
    return hale_service_main(&def, argc, argv, envp);
}
