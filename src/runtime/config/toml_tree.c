/* toml_tree: the value tree, its tables' hash index, and the public
 * accessors. See toml.h. */
#include "toml_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

const toml_limits toml_default_limits = {1u << 20, 64, 10000};

/* ---- tree ------------------------------------------------------------- */

toml_value *tp_new_value(tparser *ps, toml_type t, int depth, toml_pos pos) {
    if (depth > ps->lim.max_depth) {
        tp_fail_at(ps, pos, "nesting deeper than %d levels", ps->lim.max_depth);
        return NULL;
    }
    toml_value *v = xcalloc(1, sizeof *v);
    v->type = t;
    v->depth = depth;
    v->pos = pos;
    return v;
}

void toml_free(toml_value *v) {
    if (!v) return;
    switch (v->type) {
    case TOML_STRING:
        free(v->u.str.s);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++) toml_free(v->u.arr.v[i]);
        free(v->u.arr.v);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.tab.len; i++) {
            free(v->u.tab.e[i].key);
            toml_free(v->u.tab.e[i].val);
        }
        free(v->u.tab.e);
        free(v->u.tab.idx);
        break;
    default:
        break;
    }
    free(v);
}

static uint32_t hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

toml_value *tp_tab_find(const toml_value *t, const char *k, size_t n) {
    if (t->u.tab.idxcap) {
        size_t mask = t->u.tab.idxcap - 1;
        for (size_t i = hash(k, n) & mask;; i = (i + 1) & mask) {
            uint32_t slot = t->u.tab.idx[i];
            if (!slot) return NULL;
            const tentry *e = &t->u.tab.e[slot - 1];
            if (e->klen == n && memcmp(e->key, k, n) == 0) return e->val;
        }
    }
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const tentry *e = &t->u.tab.e[i];
        if (e->klen == n && memcmp(e->key, k, n) == 0) return e->val;
    }
    return NULL;
}

/* Keep the index at most half full; small tables are scanned instead. */
static void tab_index(toml_value *t) {
    size_t len = t->u.tab.len;
    if (len < 8 || len * 2 <= t->u.tab.idxcap) {
        if (t->u.tab.idxcap) {
            size_t mask = t->u.tab.idxcap - 1, i;
            const tentry *e = &t->u.tab.e[len - 1];
            for (i = hash(e->key, e->klen) & mask; t->u.tab.idx[i]; i = (i + 1) & mask) {}
            t->u.tab.idx[i] = (uint32_t)len;
        }
        return;
    }
    size_t cap = t->u.tab.idxcap ? t->u.tab.idxcap * 2 : 32;
    free(t->u.tab.idx);
    t->u.tab.idx = xcalloc(cap, sizeof(uint32_t));
    t->u.tab.idxcap = cap;
    for (size_t k = 0; k < len; k++) {
        const tentry *e = &t->u.tab.e[k];
        size_t i;
        for (i = hash(e->key, e->klen) & (cap - 1); t->u.tab.idx[i]; i = (i + 1) & (cap - 1)) {}
        t->u.tab.idx[i] = (uint32_t)(k + 1);
    }
}

/* Add key -> v to t. Takes ownership of v (freed on failure); copies key. */
int tp_tab_add(tparser *ps, toml_value *t, const char *key, size_t n,
                   toml_pos pos, toml_value *v) {
    if (++ps->nkeys > ps->lim.max_keys) {
        toml_free(v);
        return tp_fail_at(ps, pos, "more than %zu keys", ps->lim.max_keys);
    }
    if (t->u.tab.len == t->u.tab.cap) {
        size_t cap = t->u.tab.cap ? t->u.tab.cap * 2 : 4, bytes;
        if (!hale_mul_ok(cap, sizeof(tentry), &bytes)) hale_panic("toml: table too large");
        t->u.tab.e = xrealloc(t->u.tab.e, bytes);
        t->u.tab.cap = cap;
    }
    tentry *e = &t->u.tab.e[t->u.tab.len++];
    e->key = xstrndup(key, n);
    e->klen = n;
    e->pos = pos;
    e->val = v;
    tab_index(t);
    return 0;
}

void tp_arr_push(toml_value *a, toml_value *v) {
    if (a->u.arr.len == a->u.arr.cap) {
        size_t cap = a->u.arr.cap ? a->u.arr.cap * 2 : 4, bytes;
        if (!hale_mul_ok(cap, sizeof(toml_value *), &bytes)) hale_panic("toml: array too large");
        a->u.arr.v = xrealloc(a->u.arr.v, bytes);
        a->u.arr.cap = cap;
    }
    a->u.arr.v[a->u.arr.len++] = v;
}

/* ---- accessors -------------------------------------------------------- */

const char *toml_type_name(toml_type t) {
    switch (t) {
    case TOML_TABLE: return "table";
    case TOML_ARRAY: return "array";
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "boolean";
    case TOML_DATETIME: return "datetime";
    }
    return "?";
}

static const toml_value *want(const toml_value *v, toml_type t) {
    if (!v) hale_panic("toml: NULL value where %s expected", toml_type_name(t));
    if (v->type != t)
        hale_panic("toml: %s accessor used on %s", toml_type_name(t), toml_type_name(v->type));
    return v;
}

toml_type toml_type_of(const toml_value *v) { return v->type; }
toml_pos toml_pos_of(const toml_value *v) { return v->pos; }

const char *toml_str(const toml_value *v, size_t *len) {
    want(v, TOML_STRING);
    if (len) *len = v->u.str.len;
    return v->u.str.s;
}

int64_t toml_int(const toml_value *v) { return want(v, TOML_INTEGER)->u.i; }
double toml_float(const toml_value *v) { return want(v, TOML_FLOAT)->u.f; }
bool toml_bool(const toml_value *v) { return want(v, TOML_BOOL)->u.b; }
const toml_datetime *toml_dt(const toml_value *v) { return &want(v, TOML_DATETIME)->u.dt; }

size_t toml_len(const toml_value *v) {
    if (v->type == TOML_ARRAY) return v->u.arr.len;
    return want(v, TOML_TABLE)->u.tab.len;
}

const toml_value *toml_array_at(const toml_value *a, size_t i) {
    want(a, TOML_ARRAY);
    if (i >= a->u.arr.len) hale_panic("toml: array index %zu out of range", i);
    return a->u.arr.v[i];
}

const char *toml_table_key_at(const toml_value *t, size_t i, size_t *len, toml_pos *pos) {
    want(t, TOML_TABLE);
    if (i >= t->u.tab.len) hale_panic("toml: table index %zu out of range", i);
    if (len) *len = t->u.tab.e[i].klen;
    if (pos) *pos = t->u.tab.e[i].pos;
    return t->u.tab.e[i].key;
}

const toml_value *toml_table_value_at(const toml_value *t, size_t i) {
    want(t, TOML_TABLE);
    if (i >= t->u.tab.len) hale_panic("toml: table index %zu out of range", i);
    return t->u.tab.e[i].val;
}

const toml_value *toml_table_get(const toml_value *t, const char *key) {
    want(t, TOML_TABLE);
    return tp_tab_find(t, key, strlen(key));
}
