/* router: template matching. See router.h.
 * Routes are few (tens), so a linear scan over pre-split segments is both
 * simplest and fastest; no allocation happens while matching. */
#include "router.h"
#include "util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 16

typedef struct seg {
    const char *s;   /* literal text, or the capture name */
    size_t n;
    int capture;
} seg;

typedef struct entry {
    hale_route route;
    char *tmpl_copy;
    seg segs[MAX_SEGS];
    size_t nsegs;
} entry;

struct hale_router {
    entry *v;
    size_t n, cap;
};

hale_router *hale_router_new(void) { return xcalloc(1, sizeof(hale_router)); }

void hale_router_free(hale_router *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        for (size_t k = 0; k < r->v[i].nsegs; k++)
            if (r->v[i].segs[k].capture) free((char *)r->v[i].segs[k].s);
        free(r->v[i].tmpl_copy);
        free((char *)r->v[i].route.method);
    }
    free(r->v);
    free(r);
}

static int split_template(entry *e, char *err, size_t errlen) {
    const char *t = e->tmpl_copy;
    if (t[0] != '/') return hale_err(err, errlen, "route template must start with '/': %s", t);
    size_t nparams = 0;
    const char *p = t + 1;
    e->nsegs = 0;
    if (*p == '\0') return 0; /* "/" has no segments */
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (e->nsegs == MAX_SEGS) return hale_err(err, errlen, "too many segments: %s", t);
        seg *s = &e->segs[e->nsegs++];
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            if (++nparams > HALE_ROUTE_MAX_PARAMS)
                return hale_err(err, errlen, "too many captures: %s", t);
            s->s = xstrndup(p + 1, len - 2); s->n = len - 2; s->capture = 1;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len))
                return hale_err(err, errlen, "capture must be a whole segment: %s", t);
            s->s = p; s->n = len; s->capture = 0;
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* True when every request that new_e matches is matched by first (same
 * method; segment by segment, first has a capture or the same literal):
 * registered later, new_e could never be reached, since the first
 * registered route wins. */
static bool covers(const entry *first, const entry *new_e) {
    if (strcmp(first->route.method, new_e->route.method) != 0 || first->nsegs != new_e->nsegs)
        return false;
    for (size_t k = 0; k < first->nsegs; k++) {
        const seg *x = &first->segs[k], *y = &new_e->segs[k];
        if (x->capture) continue;
        if (y->capture || x->n != y->n || memcmp(x->s, y->s, x->n) != 0) return false;
    }
    return true;
}

/* Refuses a template that names one capture twice (which one would
 * hale_req_param answer?) or that a route already registered hides. */
static int check_reachable(const hale_router *r, const entry *e, char *err, size_t errlen) {
    for (size_t i = 0; i < e->nsegs; i++)
        for (size_t j = i + 1; j < e->nsegs; j++)
            if (e->segs[i].capture && e->segs[j].capture && strcmp(e->segs[i].s, e->segs[j].s) == 0)
                return hale_err(err, errlen, "capture {%s} appears twice: %s", e->segs[i].s, e->tmpl_copy);
    for (size_t k = 0; k < r->n; k++)
        if (covers(&r->v[k], e))
            return hale_err(err, errlen, "route %s %s could never match: %s %s, registered first, "
                            "matches all its requests", e->route.method, e->tmpl_copy,
                            r->v[k].route.method, r->v[k].route.tmpl);
    return 0;
}

int hale_router_add(hale_router *r, const hale_route *route, char *err, size_t errlen) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = xrealloc(r->v, r->cap * sizeof(entry));
    }
    entry *e = &r->v[r->n];
    memset(e, 0, sizeof *e);
    e->route = *route;
    e->tmpl_copy = xstrdup(route->tmpl);
    e->route.tmpl = e->tmpl_copy;
    e->route.method = xstrdup(route->method);
    e->route.index = (unsigned)r->n;
    if (split_template(e, err, errlen) != 0 || check_reachable(r, e, err, errlen) != 0) {
        for (size_t k = 0; k < e->nsegs; k++)
            if (e->segs[k].capture) free((char *)e->segs[k].s);
        free(e->tmpl_copy);
        free((char *)e->route.method);
        return -1;
    }
    r->n++;
    return 0;
}

/* Matches path segments against e; fills captures in m. */
static int match_entry(const entry *e, const char *path, size_t n, hale_route_match *m) {
    size_t i = 1, si = 0; /* skip leading '/' */
    m->nparams = 0;
    if (n == 1 && e->nsegs == 0) return 1;
    while (i <= n && si < e->nsegs) {
        size_t j = i;
        while (j < n && path[j] != '/') j++;
        const seg *s = &e->segs[si];
        size_t len = j - i;
        if (s->capture) {
            if (len == 0) return 0;
            m->param_name[m->nparams] = s->s;
            m->param_ptr[m->nparams] = path + i;
            m->param_len[m->nparams] = len;
            m->nparams++;
        } else if (len != s->n || memcmp(path + i, s->s, len) != 0) {
            return 0;
        }
        si++;
        i = j + 1;
        if (j == n) break;
    }
    return si == e->nsegs && i > n;
}

static int method_matches(const char *route_m, const char *m) {
    if (strcmp(route_m, m) == 0) return 1;
    return strcmp(m, "HEAD") == 0 && strcmp(route_m, "GET") == 0;
}

static void allow_add(char *allow, size_t cap, const char *m) {
    size_t len = strlen(allow);
    if (strstr(allow, m)) return;
    snprintf(allow + len, cap - len, "%s%s", len ? ", " : "", m);
}

hale_match_result hale_router_match(const hale_router *r, const char *method,
                                    const char *path, size_t n,
                                    hale_route_match *m) {
    int path_seen = 0;
    m->route = NULL;
    m->allow[0] = '\0';
    if (n == 0 || path[0] != '/') return HALE_MATCH_NOT_FOUND;
    for (size_t k = 0; k < r->n; k++) {
        const entry *e = &r->v[k];
        hale_route_match tmp;
        if (!match_entry(e, path, n, &tmp)) continue;
        if (method_matches(e->route.method, method)) {
            tmp.route = &e->route;
            memcpy(tmp.allow, m->allow, sizeof tmp.allow);
            *m = tmp;
            return HALE_MATCH_OK;
        }
        path_seen = 1;
        allow_add(m->allow, sizeof m->allow, e->route.method);
        if (strcmp(e->route.method, "GET") == 0) allow_add(m->allow, sizeof m->allow, "HEAD");
    }
    return path_seen ? HALE_MATCH_METHOD : HALE_MATCH_NOT_FOUND;
}

size_t hale_router_count(const hale_router *r) { return r->n; }

