/* kv_api: handlers for /v1/kv. See kv_api.h. */
#include "kv_api.h"

#include "http.h"
#include "httpdate.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define JSON "application/json"

const char *kv_key_problem(const char *k, size_t n) {
    if (n == 0) return "the key is empty";
    if (n > KV_MAX_KEY_BYTES) return "the key is longer than 512 bytes";
    const unsigned char *p = (const unsigned char *)k;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = hale_utf8_seq(p + i, n - i, &cp);
        if (len == 0) return "the key is not valid UTF-8";
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return "the key contains a control character";
        i += len;
    }
    return NULL;
}

/* Decodes and validates the {key} capture into out; answers 400 itself. */
static bool take_key(hale_req *r, hale_buf *out) {
    size_t n;
    const char *raw = hale_req_param(r, "key", &n);
    if (!raw || hale_percent_decode(raw, n, false, out) != 0) {
        hale_resp_error(r, 400, "invalid_key", "the key has an invalid percent-encoding");
        return false;
    }
    const char *why = kv_key_problem(out->data, out->len);
    if (why) {
        hale_resp_error(r, 400, "invalid_key", why);
        return false;
    }
    return true;
}

static void set_etag(hale_req *r, int64_t version) {
    char etag[32];
    snprintf(etag, sizeof etag, "\"%" PRId64 "\"", version);
    hale_resp_header(r, "ETag", etag);
}

/* ---- conditional requests (RFC 9110 §13) ---- */

static void join_line(const char *v, void *arg) {
    hale_buf *b = arg;
    hale_buf_reserve(b, strlen(v) + 2); /* data != NULL from now on: "present" */
    if (b->len) hale_buf_puts(b, ",");
    hale_buf_puts(b, v);
}

/* Every field line named `name` joined into one list (§5.3: repeated lines
 * and comma-separated members are the same list). False when absent. */
static bool header_list(hale_req *r, const char *name, hale_buf *out) {
    hale_buf_init(out);
    hale_req_header_each(r, name, join_line, out);
    bool present = out->data != NULL;
    if (!present) hale_buf_reserve(out, 1);
    out->data[out->len] = '\0';
    return present;
}

/* One member of an entity-tag list: `*`, or `"opaque"` with an optional
 * `W/`. Advances *pp past it and its separator; false at the end. A
 * malformed member is skipped up to the next comma (it matches nothing). */
typedef struct etag_member {
    bool any, weak, valid;
    const char *opaque;
    size_t len;
} etag_member;

static bool next_member(const char **pp, etag_member *m) {
    const char *p = *pp;
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (!*p) return false;
    memset(m, 0, sizeof *m);
    if (*p == '*') {
        m->any = m->valid = true;
        p++;
    } else {
        if (p[0] == 'W' && p[1] == '/') { m->weak = true; p += 2; }
        if (*p == '"') {
            const char *q = strchr(p + 1, '"');
            if (q) {
                m->opaque = p + 1;
                m->len = (size_t)(q - p - 1);
                m->valid = true;
                p = q + 1;
            }
        }
    }
    while (*p == ' ' || *p == '\t') p++;
    if (*p && *p != ',') m->valid = false; /* trailing garbage */
    while (*p && *p != ',') p++;
    *pp = p;
    return true;
}

/* Does the list name version v? weak selects the weak comparison
 * (If-None-Match: W/"7" matches "7"); the strong one (If-Match) never
 * matches a weak tag. Our tags are the decimal version, compared as bytes. */
static bool etag_list_match(const char *list, int64_t v, bool weak) {
    char tag[24];
    int n = snprintf(tag, sizeof tag, "%" PRId64, v);
    etag_member m;
    while (next_member(&list, &m)) {
        if (!m.valid) continue;
        if (m.any) return true;
        if ((weak || !m.weak) && m.len == (size_t)n && memcmp(m.opaque, tag, m.len) == 0) return true;
    }
    return false;
}

/* The version a one-member strong list names, 0 when it names none we
 * could have issued; *members gets the number of members. */
static int64_t single_version(const char *list, size_t *members, bool *any) {
    etag_member m;
    int64_t v = 0;
    *members = 0;
    *any = false;
    while (next_member(&list, &m)) {
        (*members)++;
        if (!m.valid) continue;
        if (m.any) { *any = true; continue; }
        if (m.weak || m.len == 0 || m.len > 18 || m.opaque[0] == '0') continue;
        int64_t x = 0;
        size_t i = 0;
        for (; i < m.len && m.opaque[i] >= '0' && m.opaque[i] <= '9'; i++) x = x * 10 + (m.opaque[i] - '0');
        if (i == m.len) v = x;
    }
    return v;
}

static void count_line(const char *v, void *arg) {
    (void)v;
    (*(unsigned *)arg)++;
}

/* The time (seconds) of an If-Modified-Since / If-Unmodified-Since field,
 * or -1 when it must be ignored (RFC 9110 §13.1.3-4): absent, not a valid
 * HTTP-date, or more than one field line. */
static int64_t date_header(hale_req *r, const char *name) {
    unsigned lines = 0;
    hale_req_header_each(r, name, count_line, &lines);
    if (lines != 1) return -1;
    return app_httpdate_parse(hale_req_header(r, name));
}

static int64_t now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* A value's Last-Modified in seconds (never later than now, §8.8.2.1), or
 * -1 when the store does not know it. */
static int64_t last_modified(const kv_item *it) {
    if (it->mtime_ms <= 0) return -1;
    int64_t lm = it->mtime_ms / 1000, now = now_s();
    return lm > now ? now : lm;
}

/* Fills a kv_cond from If-Match / If-None-Match for writes. Returns false
 * (and answers) when a header cannot be honoured. A list of several tags
 * is decided against the current version (read first), and the write is
 * then a compare-and-swap on that version: if the value changes in
 * between, the answer is 412, as if the request had come just after. */
static bool write_cond(hale_req *r, kv_store *store, hale_buf *key, bool is_delete, kv_cond *c) {
    memset(c, 0, sizeof *c);
    hale_buf im, inm;
    bool has_im = header_list(r, "If-Match", &im);
    bool has_inm = header_list(r, "If-None-Match", &inm);
    bool ok = false;
    if (has_im) {
        size_t members;
        bool any;
        int64_t v = single_version(im.data, &members, &any);
        if (any) {
            c->if_match_any = true;
        } else if (members == 1 && v > 0) {
            c->if_match = v;
        } else if (members > 1) {
            kv_item it;
            memset(&it, 0, sizeof it);
            kv_status st = store->ops->get(store, key->data, key->len, &it);
            free(it.value);
            if (st == KV_NOT_FOUND && is_delete) {
                hale_resp_error(r, 404, "not_found", "no value is stored under this key");
                goto out;
            }
            if (st != KV_OK && st != KV_NOT_FOUND) {
                hale_resp_error(r, 503, "unavailable", "the store is unavailable; retry shortly");
                hale_resp_header(r, "Retry-After", "1");
                goto out;
            }
            if (st == KV_NOT_FOUND || !etag_list_match(im.data, it.version, false)) {
                hale_resp_error(r, 412, "precondition_failed", "If-Match does not name a current version");
                goto out;
            }
            c->if_match = it.version;
        } else {
            /* an ETag we never issue cannot match: 412, as RFC 9110 */
            hale_resp_error(r, 412, "precondition_failed", "If-Match does not name a current version");
            goto out;
        }
    }
    int64_t ius = has_im ? -1 : date_header(r, "If-Unmodified-Since");
    if (ius >= 0) {
        /* decided against the current value, then a compare-and-swap on
         * its version: the date check and the write are one step */
        kv_item it;
        memset(&it, 0, sizeof it);
        kv_status st = store->ops->get(store, key->data, key->len, &it);
        free(it.value);
        if (st != KV_OK && st != KV_NOT_FOUND) {
            hale_resp_error(r, 503, "unavailable", "the store is unavailable; retry shortly");
            hale_resp_header(r, "Retry-After", "1");
            goto out;
        }
        int64_t lm = st == KV_OK ? last_modified(&it) : -1;
        if (lm > ius) {
            hale_resp_error(r, 412, "precondition_failed", "the value was modified after If-Unmodified-Since");
            goto out;
        }
        if (lm >= 0) c->if_match = it.version; /* no date known: the header is ignored */
    }
    if (has_inm) {
        size_t members;
        bool any;
        single_version(inm.data, &members, &any);
        if (!any || members != 1) {
            hale_resp_error(r, 400, "bad_precondition", "writes accept only If-None-Match: *");
            goto out;
        }
        c->if_none_match_any = true;
    }
    ok = true;
out:
    hale_buf_free(&im);
    hale_buf_free(&inm);
    return ok;
}

/* RFC 9110 §13.2.2 for GET/HEAD of a stored value, in its order: 412 when
 * If-Match names nothing current (or, without If-Match, the value changed
 * after If-Unmodified-Since); 304 when If-None-Match names it (weak
 * comparison) or, without If-None-Match, it did not change after
 * If-Modified-Since; 0 to answer 200. Dates compare at the one-second
 * resolution of HTTP-dates: two writes within one second share a
 * Last-Modified, so only the ETag tells them apart (If-None-Match wins). */
static int read_cond(hale_req *r, const kv_item *it) {
    hale_buf im, inm;
    int status = 0;
    int64_t lm = last_modified(it), d;
    bool has_im = header_list(r, "If-Match", &im);
    bool has_inm = header_list(r, "If-None-Match", &inm);
    if (has_im) {
        if (!etag_list_match(im.data, it->version, false)) status = 412;
    } else if (lm >= 0 && (d = date_header(r, "If-Unmodified-Since")) >= 0 && lm > d) {
        status = 412;
    }
    if (!status) {
        if (has_inm) {
            if (etag_list_match(inm.data, it->version, true)) status = 304;
        } else if (lm >= 0 && (d = date_header(r, "If-Modified-Since")) >= 0 && d <= now_s() &&
                   lm <= d) {
            status = 304; /* a date in the future is invalid: ignored */
        }
    }
    hale_buf_free(&im);
    hale_buf_free(&inm);
    return status;
}

static void store_failed(hale_req *r, kv_status st) {
    if (st == KV_FULL) {
        hale_resp_error(r, 507, "insufficient_storage", "the store's disk is full; nothing was written");
        hale_resp_header(r, "Retry-After", "5");
    } else if (st == KV_UNAVAILABLE) {
        hale_resp_error(r, 503, "unavailable", "the store is unavailable; retry shortly");
        hale_resp_header(r, "Retry-After", "1");
    } else {
        hale_resp_error(r, 500, "internal", "the store failed");
    }
}

/* The open store, or NULL after answering 503 (still starting). */
static kv_store *store_of(kv_api *api, hale_req *r) {
    kv_store *s = atomic_load_explicit(&api->store, memory_order_acquire);
    if (!s) {
        hale_resp_error(r, 503, "starting", "the store is not open yet; retry shortly");
        hale_resp_header(r, "Retry-After", "1");
    }
    return s;
}

static void h_get(hale_req *r, void *arg) {
    kv_api *api = arg;
    hale_buf key;
    hale_buf_init(&key);
    if (!take_key(r, &key)) goto out;
    kv_item it;
    memset(&it, 0, sizeof it);
    kv_store *store = store_of(api, r);
    if (!store) goto out;
    kv_status st = store->ops->get(store, key.data, key.len, &it);
    if (st == KV_NOT_FOUND) {
        hale_resp_error(r, 404, "not_found", "no value is stored under this key");
    } else if (st != KV_OK) {
        store_failed(r, st);
    } else {
        int cond = read_cond(r, &it);
        if (cond == 412) {
            free(it.value);
            hale_resp_error(r, 412, "precondition_failed", "If-Match does not name the current version");
            goto out;
        }
        /* A 304 carries what the 200 would (ETag, Cache-Control) and the
         * value as its body: the engine never sends a 304's body, and its
         * Content-Length is then the 200's, the one RFC 9110 §8.6 allows. */
        hale_resp_take(r, cond ? 304 : 200, NULL, it.value, it.len);
        set_etag(r, it.version);
        int64_t lm = last_modified(&it);
        if (lm >= 0) {
            char date[APP_HTTPDATE_LEN];
            app_httpdate_format(lm, date);
            hale_resp_header(r, "Last-Modified", date);
        }
        hale_resp_header(r, "Cache-Control", api->cache_control ? api->cache_control : "no-cache");
        if (!cond) hale_resp_header(r, "Content-Type", it.ctype);
    }
out:
    hale_buf_free(&key);
}

static void put_answer(hale_req *r, kv_status st, int64_t version, bool created) {
    if (st == KV_OK) {
        set_etag(r, version);
        static const char created_body[] = "{\"result\":\"created\"}\n";
        static const char replaced_body[] = "{\"result\":\"replaced\"}\n";
        if (created) hale_resp_static(r, 201, JSON, created_body, sizeof created_body - 1);
        else hale_resp_static(r, 200, JSON, replaced_body, sizeof replaced_body - 1);
    } else if (st == KV_PRECONDITION) {
        hale_resp_error(r, 412, "precondition_failed", "the stored version does not satisfy the precondition");
    } else {
        store_failed(r, st);
    }
}

/* On the store's thread once the write is durable (or failed): answers, resumes. */
static void put_done(kv_op *op) {
    put_answer(op->arg, op->st, op->version, op->created);
    hale_req_resume(op->arg);
    kv_op_free(op);
}

static void del_done(kv_op *op) {
    hale_req *r = op->arg;
    if (op->st == KV_OK) hale_resp_static(r, 204, NULL, "", 0);
    else if (op->st == KV_NOT_FOUND) hale_resp_error(r, 404, "not_found", "no value is stored under this key");
    else if (op->st == KV_PRECONDITION)
        hale_resp_error(r, 412, "precondition_failed", "the stored version does not satisfy the precondition");
    else store_failed(r, op->st);
    hale_req_resume(r);
    kv_op_free(op);
}

static void h_put(hale_req *r, void *arg) {
    kv_api *api = arg;
    hale_buf key;
    hale_buf_init(&key);
    if (!take_key(r, &key)) goto out;
    const char *enc = hale_req_header(r, "Content-Encoding");
    if (enc && strcasecmp(enc, "identity") != 0) {
        hale_resp_error(r, 415, "unsupported_media_type", "content codings are not supported; send the raw bytes");
        goto out;
    }
    const char *ctype = hale_req_header(r, "Content-Type");
    if (!ctype || !*ctype) ctype = "application/octet-stream";
    if (strlen(ctype) >= sizeof(((kv_item *)0)->ctype)) {
        hale_resp_error(r, 415, "unsupported_media_type", "the Content-Type is longer than 127 bytes");
        goto out;
    }
    size_t vlen;
    const char *val = hale_req_body(r, &vlen);
    kv_store *store = store_of(api, r);
    if (!store) goto out;
    kv_cond c;
    if (!write_cond(r, store, &key, false, &c)) goto out;
    /* answered from the store's thread: no worker waits for an fsync */
    kv_op *op = kv_op_new_put(key.data, key.len, val, vlen, ctype, &c, put_done, r);
    hale_req_suspend(r);
    kv_store_submit(store, op);
out:
    hale_buf_free(&key);
}

static void h_del(hale_req *r, void *arg) {
    kv_api *api = arg;
    hale_buf key;
    hale_buf_init(&key);
    if (!take_key(r, &key)) goto out;
    kv_store *store = store_of(api, r);
    if (!store) goto out;
    kv_cond c;
    if (!write_cond(r, store, &key, true, &c)) goto out;
    kv_op *op = kv_op_new_del(key.data, key.len, &c, del_done, r);
    hale_req_suspend(r);
    kv_store_submit(store, op);
out:
    hale_buf_free(&key);
}

static void h_list(hale_req *r, void *arg) {
    kv_api *api = arg;
    hale_buf prefix, after, lim, out;
    hale_buf_init(&prefix); hale_buf_init(&after); hale_buf_init(&lim); hale_buf_init(&out);
    const char *q = hale_req_query(r);
    long limit = KV_LIST_DEFAULT;
    int rp = hale_query_get(q, "prefix", &prefix);
    int ra = hale_query_get(q, "after", &after);
    int rl = hale_query_get(q, "limit", &lim);
    if (rp < 0 || ra < 0 || rl < 0) {
        hale_resp_error(r, 400, "bad_query", "the query string has an invalid percent-encoding");
        goto out;
    }
    if (rl == 1) {
        /* plain decimal digits only: no sign, space, NUL or other byte that
         * strtol would skip or stop at ("+5", " 5", "5\0" are not 5) */
        bool digits = lim.len > 0 && lim.len <= 9;
        for (size_t i = 0; digits && i < lim.len; i++)
            digits = lim.data[i] >= '0' && lim.data[i] <= '9';
        limit = digits ? strtol(lim.data, NULL, 10) : 0;
        if (!digits || limit < 1 || limit > KV_LIST_MAX) {
            hale_resp_error(r, 400, "bad_limit", "limit must be an integer from 1 to 1000");
            goto out;
        }
    }
    if (prefix.len > KV_MAX_KEY_BYTES || after.len > KV_MAX_KEY_BYTES) {
        hale_resp_error(r, 400, "invalid_key", "prefix and after are at most 512 bytes");
        goto out;
    }
    char **keys = NULL;
    size_t n = 0;
    bool more = false;
    kv_store *store = store_of(api, r);
    if (!store) goto out;
    kv_status st = store->ops->list(store, prefix.data ? prefix.data : "", prefix.len,
                                         after.data ? after.data : "", after.len, (size_t)limit,
                                         &keys, &n, &more);
    if (st != KV_OK) {
        store_failed(r, st);
    } else {
        hale_buf_puts(&out, "{\"keys\":[");
        for (size_t i = 0; i < n; i++) {
            hale_buf_puts(&out, i ? ",\"" : "\"");
            hale_buf_json_escape(&out, keys[i], strlen(keys[i]));
            hale_buf_puts(&out, "\"");
        }
        hale_buf_puts(&out, "],\"next\":");
        if (more && n) {
            hale_buf_puts(&out, "\"");
            hale_buf_json_escape(&out, keys[n - 1], strlen(keys[n - 1]));
            hale_buf_puts(&out, "\"");
        } else {
            hale_buf_puts(&out, "null");
        }
        hale_buf_puts(&out, "}\n");
        hale_resp_take(r, 200, JSON, out.data, out.len);
        hale_buf_init(&out);
    }
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
out:
    hale_buf_free(&prefix); hale_buf_free(&after); hale_buf_free(&lim); hale_buf_free(&out);
}

int kv_api_register(kv_api *api, hale_router *r, char *err, size_t errlen) {
    const hale_route routes[] = {
        {.method = "GET", .tmpl = "/v1/kv", .fn = h_list, .arg = api, .flags = HALE_ROUTE_AUTH},
        {.method = "GET", .tmpl = "/v1/kv/{key}", .fn = h_get, .arg = api, .flags = HALE_ROUTE_AUTH},
        {.method = "PUT", .tmpl = "/v1/kv/{key}", .fn = h_put, .arg = api,
         .flags = HALE_ROUTE_AUTH | HALE_ROUTE_BODY},
        {.method = "DELETE", .tmpl = "/v1/kv/{key}", .fn = h_del, .arg = api, .flags = HALE_ROUTE_AUTH},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (hale_router_add(r, &routes[i], err, errlen) != 0) return -1;
    return 0;
}
