/* copy: see copy.h. The flow: check the arguments (nothing touched on an
 * error), open the source read-only, connect to the target and migrate it,
 * copy page by page from where the last run stopped, then verify. */
#include "copy.h"

#include "lifecycle.h"
#include "url_check.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#ifdef HALE_HAVE_PQ

#include "copy_int.h"

#define MAX_KEY 4096                       /* longest key the progress row can hold */
#define PROGRESS_CAP (2 * MAX_KEY + 32)    /* "<count> <hex of the last key>" */
#define DEFAULT_BATCH 500

typedef struct copy_opts {
    const char *from;       /* SQLite path */
    const char *to;         /* postgres:// URL */
    size_t batch;
    unsigned pause_ms;      /* between batches: go easy on a busy source */
    bool verify_only;
    unsigned connect_ms;
} copy_opts;

typedef struct copy_run {
    copy_opts o;
    copy_src src;
    copy_dst dst;
    FILE *out, *errs;
    char source_id[PATH_MAX + 8];
    char err[512];
} copy_run;

static const char USAGE[] =
    "usage: hale copy [--from sqlite:PATH] [--to postgres://...] [--batch N] [--pause MS] [--verify-only]\n"
    "  defaults: --from database.sqlite_path, --to database.url\n";

/* The value of "--name V" or "--name=V" at argv[*i], advancing *i; NULL
 * when argv[*i] is not that option. *missing when V is absent. */
static const char *opt(int argc, char **argv, int *i, const char *name, bool *missing) {
    size_t n = strlen(name);
    if (!argv[*i] || strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!v) { *missing = true; return NULL; }
    ++*i;
    return v;
}

static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *v) {
    char *end;
    if (!*s || *s == '-') return -1;
    *v = strtoul(s, &end, 10);
    return *end || *v < lo || *v > hi ? -1 : 0;
}

/* Returns 0, HALE_EXIT_CONFIG after printing why, or -1 after printing
 * the usage (--help). */
static int parse_args(copy_run *x, const kv_copy_defaults *cfg, int argc, char **argv) {
    copy_opts *o = &x->o;
    o->from = cfg->sqlite_path;
    o->to = cfg->database_url;
    o->batch = DEFAULT_BATCH;
    o->connect_ms = cfg->connect_timeout_ms;
    for (int i = 1; i < argc && argv[i]; i++) {
        bool missing = false;
        const char *v;
        unsigned long n;
        if ((v = opt(argc, argv, &i, "--from", &missing))) {
            if (!strncmp(v, "sqlite://", 9)) o->from = v + 9;
            else if (!strncmp(v, "sqlite:", 7)) o->from = v + 7;
            else {
                fprintf(x->errs, "hale copy: --from must be sqlite:PATH (the embedded store): copying "
                                 "from another kind of store is not supported\n");
                return HALE_EXIT_CONFIG;
            }
        } else if ((v = opt(argc, argv, &i, "--to", &missing))) {
            o->to = v;
        } else if ((v = opt(argc, argv, &i, "--batch", &missing))) {
            if (parse_uint(v, 1, 100000, &n) != 0) {
                fprintf(x->errs, "hale copy: --batch: expected a number of keys from 1 to 100000\n");
                return HALE_EXIT_CONFIG;
            }
            o->batch = n;
        } else if ((v = opt(argc, argv, &i, "--pause", &missing))) {
            if (parse_uint(v, 0, 60000, &n) != 0) {
                fprintf(x->errs, "hale copy: --pause: expected milliseconds from 0 to 60000\n");
                return HALE_EXIT_CONFIG;
            }
            o->pause_ms = (unsigned)n;
        } else if (!missing && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
            fputs(USAGE, x->out);
            return -1;
        } else if (!missing && !strcmp(argv[i], "--verify-only")) {
            o->verify_only = true;
        } else {
            fprintf(x->errs, "hale copy: %s \"%s\"\n%s", missing ? "a value is missing after" : "unknown option",
                    argv[i], USAGE);
            return HALE_EXIT_CONFIG;
        }
    }
    if (!o->from || !*o->from) {
        fprintf(x->errs, "hale copy: no source: pass --from sqlite:PATH or set database.sqlite_path\n");
        return HALE_EXIT_CONFIG;
    }
    if (!o->to || !*o->to) {
        fprintf(x->errs, "hale copy: no target: pass --to postgres://... or set database.url "
                         "(DATABASE_URL)\n");
        return HALE_EXIT_CONFIG;
    }
    if (app_url_check("--to", o->to, APP_URL_POSTGRES, x->err, sizeof x->err) != 0) {
        fprintf(x->errs, "hale copy: %s\n", x->err);
        return HALE_EXIT_CONFIG;
    }
    char real[PATH_MAX];
    snprintf(x->source_id, sizeof x->source_id, "sqlite:%s", realpath(o->from, real) ? real : o->from);
    return 0;
}

/* Where a previous run stopped: *count keys done, the last key in key/klen
 * (klen 0: from the start). Refuses a target that holds keys it did not
 * get from this source. */
static int start_point(copy_run *x, size_t *count, char *key, size_t *klen) {
    char *val = xmalloc(PROGRESS_CAP);
    bool found = false, any = false;
    int rc = -1;
    *count = 0;
    *klen = 0;
    if (copy_dst_meta_get(&x->dst, "copy_source", val, PROGRESS_CAP, &found, x->err, sizeof x->err) != 0)
        goto out;
    if (found && strcmp(val, x->source_id) != 0) {
        hale_err(x->err, sizeof x->err, "the target is a copy of %s, not of %s: copy into an empty "
                 "database (or schema)", val, x->source_id);
        goto out;
    }
    if (!found) {
        if (copy_dst_has_rows(&x->dst, &any, x->err, sizeof x->err) != 0) goto out;
        if (any) {
            hale_err(x->err, sizeof x->err, "the target already holds keys that hale copy did not "
                     "write: copy into an empty database (or schema)");
            goto out;
        }
        if (copy_dst_meta_set(&x->dst, "copy_source", x->source_id, x->err, sizeof x->err) != 0) goto out;
    }
    if (copy_dst_meta_get(&x->dst, "copy_progress", val, PROGRESS_CAP, &found, x->err, sizeof x->err) != 0)
        goto out;
    rc = 0;
    if (!found) goto out;
    char *sp = strchr(val, ' ');
    long n = sp ? copy_unhex(sp + 1, key, MAX_KEY) : -1;
    if (n < 0) {
        hale_err(x->err, sizeof x->err, "the target's copy_progress row is unreadable");
        rc = -1;
        goto out;
    }
    *count = strtoul(val, NULL, 10);
    *klen = (size_t)n;
    fprintf(x->out, "copy: resuming after %zu keys\n", *count);
out:
    free(val);
    return rc;
}

/* Removes, from the target's rows in (after, the page's last key] (an
 * empty page: to the end) with version <= maxv, those the source page does
 * not have: both are in key order, so one walk over each finds them. */
static int drop_stale(copy_run *x, const char *after, size_t alen, const copy_rows *page,
                      int64_t maxv, size_t *dropped) {
    const copy_row *last = page->n ? &page->r[page->n - 1] : NULL;
    copy_rows t = {0};
    char *cur = xmalloc(MAX_KEY);
    size_t clen = alen;
    memcpy(cur, after, alen);
    size_t j = 0;
    int rc = 0;
    for (bool more = true; more && rc == 0;) {
        if ((rc = copy_dst_page(&x->dst, cur, clen, x->o.batch, maxv, &t, x->err, sizeof x->err)) != 0) break;
        more = t.n == x->o.batch;
        for (size_t i = 0; i < t.n && rc == 0; i++) {
            const copy_row *r = &t.r[i];
            if (last) {
                size_t m = r->klen < last->klen ? r->klen : last->klen;
                int c = memcmp(r->key, last->key, m);
                if (c > 0 || (c == 0 && r->klen > last->klen)) { more = false; break; }
            }
            while (j < page->n) { /* advance the source walk to >= r */
                const copy_row *s = &page->r[j];
                size_t m = s->klen < r->klen ? s->klen : r->klen;
                int c = memcmp(s->key, r->key, m);
                if (c > 0 || (c == 0 && s->klen >= r->klen)) break;
                j++;
            }
            bool kept = j < page->n && page->r[j].klen == r->klen && !memcmp(page->r[j].key, r->key, r->klen);
            if (!kept) rc = copy_dst_del(&x->dst, r->key, r->klen, maxv, dropped, x->err, sizeof x->err);
        }
        if (t.n) {
            clen = t.r[t.n - 1].klen;
            memcpy(cur, t.r[t.n - 1].key, clen);
        }
    }
    copy_rows_clear(&t);
    free(t.r);
    free(cur);
    return rc;
}

/* One batch in one target transaction: the rows, the stale rows of the
 * range, the progress row, the sequence. */
static int copy_batch(copy_run *x, const char *after, size_t alen, const copy_rows *page, size_t count,
                      size_t *dropped, int64_t *next) {
    int64_t maxv = 0, top = 0;
    for (size_t i = 0; i < page->n; i++) {
        if (page->r[i].klen > MAX_KEY)
            return hale_err(x->err, sizeof x->err, "a source key is longer than %d bytes", MAX_KEY);
        if (page->r[i].version > top) top = page->r[i].version;
    }
    /* read after the page: covers every version in it */
    if (copy_src_counter(&x->src, &maxv, x->err, sizeof x->err) != 0) return -1;
    if (copy_dst_run(&x->dst, "BEGIN", x->err, sizeof x->err) != 0) return -1;
    if (copy_dst_put(&x->dst, page, x->err, sizeof x->err) != 0) return -1;
    if (maxv > 0 && drop_stale(x, after, alen, page, maxv, dropped) != 0) return -1;
    int rc;
    if (page->n) {
        const copy_row *last = &page->r[page->n - 1];
        char *val = xmalloc(PROGRESS_CAP);
        int w = snprintf(val, PROGRESS_CAP, "%zu ", count);
        copy_hex(last->key, last->klen, val + w, PROGRESS_CAP - (size_t)w);
        rc = copy_dst_meta_set(&x->dst, "copy_progress", val, x->err, sizeof x->err);
        free(val);
    } else {
        rc = copy_dst_meta_del(&x->dst, "copy_progress", x->err, sizeof x->err);
    }
    if (rc != 0 || copy_dst_seq_above(&x->dst, top > maxv ? top : maxv, next, x->err, sizeof x->err) != 0)
        return -1;
    return copy_dst_run(&x->dst, "COMMIT", x->err, sizeof x->err);
}

static int copy_all(copy_run *x) {
    char *after = xmalloc(MAX_KEY);
    size_t alen = 0, count = 0, dropped = 0, batches = 0;
    int64_t next = 0;
    copy_rows page = {0};
    int rc = start_point(x, &count, after, &alen);
    size_t before = count;
    while (rc == 0) {
        if (hale_shutdown_requested()) {
            rc = hale_err(x->err, sizeof x->err, "interrupted after %zu keys: run the same command "
                          "again to resume", count);
            break;
        }
        if ((rc = copy_src_page(&x->src, after, alen, x->o.batch, &page, x->err, sizeof x->err)) != 0) break;
        count += page.n;
        if ((rc = copy_batch(x, after, alen, &page, count, &dropped, &next)) != 0) break;
        if (!page.n) break;
        batches++;
        fprintf(x->out, "copy: batch %zu: %zu keys (%zu so far)\n", batches, page.n, count);
        fflush(x->out);
        alen = page.r[page.n - 1].klen;
        memcpy(after, page.r[page.n - 1].key, alen);
        if (page.n < x->o.batch) {
            /* the last page: the end range's stale rows and the progress
             * row go in one more (empty) batch */
            copy_rows_clear(&page);
            rc = copy_batch(x, after, alen, &page, count, &dropped, &next);
            break;
        }
        if (x->o.pause_ms) hale_wait_shutdown(x->o.pause_ms);
    }
    if (rc == 0) {
        fprintf(x->out, "copy: done: %zu keys copied (%zu in this run, %zu batches), %zu removed from "
                        "the target\n", count, count - before, batches, dropped);
        fprintf(x->out, "target: version sequence set: the next write gets version %lld\n", (long long)next);
    } else if (x->dst.c && PQtransactionStatus(x->dst.c) != PQTRANS_IDLE) {
        char ignored[64];
        copy_dst_run(&x->dst, "ROLLBACK", ignored, sizeof ignored);
    }
    copy_rows_clear(&page);
    free(page.r);
    free(after);
    return rc;
}

static int rows_equal(const copy_row *a, const copy_row *b) {
    return a->klen == b->klen && !memcmp(a->key, b->key, a->klen) && a->version == b->version &&
           a->ctlen == b->ctlen && !memcmp(a->ct, b->ct, a->ctlen) && a->vlen == b->vlen &&
           !memcmp(a->val, b->val, a->vlen);
}

/* Keeps the last key of page p (the next page starts after it). */
static int remember(char *buf, size_t *len, const copy_rows *p, copy_run *x) {
    if (!p->n) return 0;
    const copy_row *r = &p->r[p->n - 1];
    if (r->klen > MAX_KEY) return hale_err(x->err, sizeof x->err, "a key is longer than %d bytes", MAX_KEY);
    memcpy(buf, r->key, r->klen);
    *len = r->klen;
    return 0;
}

/* Reads both sides again, in step, key order: digests and the first
 * difference. Returns 0 when equal, 1 on a mismatch, -1 on an error. */
static int verify(copy_run *x) {
    copy_digest gs, gd;
    copy_digest_init(&gs);
    copy_digest_init(&gd);
    copy_rows ps = {0}, pd = {0};
    char *as = xmalloc(MAX_KEY), *ad = xmalloc(MAX_KEY), diff[200] = "";
    size_t asl = 0, adl = 0, is = 0, id = 0;
    bool ends = false, endd = false;
    int rc = 0;
    while (rc == 0) {
        if (is == ps.n && !ends) {
            if ((rc = copy_src_page(&x->src, as, asl, x->o.batch, &ps, x->err, sizeof x->err)) != 0) break;
            ends = ps.n < x->o.batch;
            is = 0;
            if ((rc = remember(as, &asl, &ps, x)) != 0) break;
        }
        if (id == pd.n && !endd) {
            if ((rc = copy_dst_page(&x->dst, ad, adl, x->o.batch, 0, &pd, x->err, sizeof x->err)) != 0) break;
            endd = pd.n < x->o.batch;
            id = 0;
            if ((rc = remember(ad, &adl, &pd, x)) != 0) break;
        }
        const copy_row *s = is < ps.n ? &ps.r[is] : NULL, *d = id < pd.n ? &pd.r[id] : NULL;
        if (!s && !d) break;
        /* compare keys: the smaller one is missing on the other side */
        int c = 0;
        if (s && d) {
            size_t m = s->klen < d->klen ? s->klen : d->klen;
            c = memcmp(s->key, d->key, m);
            if (c == 0) c = s->klen < d->klen ? -1 : s->klen > d->klen;
        }
        if (!diff[0] && (!s || !d || c != 0 || !rows_equal(s, d))) {
            bool src_only = !d || (s && c < 0);
            const copy_row *k = src_only ? s : d;
            char hex[65];
            copy_hex(k->key, k->klen, hex, sizeof hex);
            snprintf(diff, sizeof diff, "first difference at key %s (hex%s): %s", hex, k->klen > 32 ? ", cut" : "",
                     src_only ? "only on the source" : !s || c > 0 ? "only on the target"
                     : s->version != d->version ? "versions differ" : "value or content type differs");
        }
        /* advance the smaller key (both when equal): keeps the walk in step */
        if (s && (!d || c <= 0)) { copy_digest_row(&gs, s); is++; }
        if (d && (!s || c >= 0)) { copy_digest_row(&gd, d); id++; }
    }
    char hs[65], hd[65];
    copy_digest_final(&gs, hs);
    copy_digest_final(&gd, hd);
    if (rc == 0) {
        fprintf(x->out, "verify: source %llu keys, sha256 %s\n", (unsigned long long)gs.count, hs);
        fprintf(x->out, "verify: target %llu keys, sha256 %s\n", (unsigned long long)gd.count, hd);
        if (diff[0] || gs.count != gd.count || strcmp(hs, hd) != 0) {
            fprintf(x->out, "verify: MISMATCH: %s\n", diff);
            rc = 1;
        } else {
            fprintf(x->out, "verify: OK\n");
        }
    }
    copy_rows_clear(&ps); free(ps.r);
    copy_rows_clear(&pd); free(pd.r);
    free(as); free(ad);
    return rc;
}

int kv_copy(const kv_copy_defaults *cfg, int argc, char **argv, FILE *out, FILE *errs) {
    copy_run *x = xcalloc(1, sizeof *x);
    x->out = out;
    x->errs = errs;
    int rc = parse_args(x, cfg, argc, argv);
    if (rc != 0) {
        if (rc < 0) rc = HALE_EXIT_OK; /* --help */
        goto done;
    }
    if (copy_src_open(&x->src, x->o.from, x->err, sizeof x->err) != 0) {
        fprintf(errs, "hale copy: %s\n", x->err);
        rc = HALE_EXIT_CONFIG;
        goto done;
    }
    int from = 0, to = 0;
    rc = HALE_EXIT_FATAL;
    if (copy_dst_open(&x->dst, x->o.to, x->o.connect_ms, &from, &to, x->err, sizeof x->err) != 0) {
        fprintf(errs, "hale copy: the target: %s\n", x->err);
        goto done;
    }
    if (from == to) fprintf(out, "target: schema is up to date (version %d)\n", to);
    else fprintf(out, "target: schema migrated from version %d to %d\n", from, to);
    fprintf(out, "copy: from %s to PostgreSQL in batches of %zu keys\n", x->source_id, x->o.batch);
    if (!x->o.verify_only && copy_all(x) != 0) {
        fprintf(errs, "hale copy: %s\n", x->err);
        goto done;
    }
    int v = verify(x);
    if (v < 0) fprintf(errs, "hale copy: verify: %s\n", x->err);
    else if (v > 0) fprintf(errs, "hale copy: the target differs from the source: if the source took "
                                  "writes meanwhile, stop them and run the copy again\n");
    rc = v == 0 ? HALE_EXIT_OK : HALE_EXIT_FATAL;
done:
    copy_dst_close(&x->dst);
    copy_src_close(&x->src);
    free(x);
    return rc;
}

#else /* no libpq */

int kv_copy(const kv_copy_defaults *cfg, int argc, char **argv, FILE *out, FILE *errs) {
    (void)cfg; (void)argc; (void)argv; (void)out;
    fprintf(errs, "hale copy: this hale was built without PostgreSQL support (libpq), "
                  "so it has nothing to copy to\n");
    return HALE_EXIT_CONFIG; /* like any other setting this build cannot honour */
}

#endif
