/* toml internals shared by toml.c (grammar), toml_tree.c (tree) and
 * toml_lex.c (strings, numbers, datetimes). Not part of the public API. */
#ifndef HALE_TOML_INT_H
#define HALE_TOML_INT_H

#include "toml.h"

/* Table flags: how a table came to exist decides what may extend it later
 * (TOML 1.0 "defining a table twice" rules). */
enum {
    TF_HEADER = 1,  /* named by a [header]: no second header, no dotted keys */
    TF_DOTTED = 2,  /* made by dotted keys: no header; dotted keys only from
                       the same section (see `section`) */
    TF_INLINE = 4,  /* { ... }: frozen once closed */
    TF_AOT = 8,     /* array made by [[header]] (arrays only) */
};

typedef struct tentry {
    char *key;
    size_t klen;
    toml_pos pos;
    toml_value *val;
} tentry;

struct toml_value {
    toml_type type;
    unsigned flags;
    int depth;          /* root is 0 */
    uint32_t section;   /* TF_DOTTED: the section that made it */
    toml_pos pos;
    union {
        struct { char *s; size_t len; } str;
        int64_t i;
        double f;
        bool b;
        toml_datetime dt;
        struct { toml_value **v; size_t len, cap; } arr;
        struct {
            tentry *e;
            size_t len, cap;
            uint32_t *idx;   /* open-addressed index into e, 0 = empty */
            size_t idxcap;   /* 0 until the table grows past a few keys */
        } tab;
    } u;
};

typedef struct tparser {
    const char *p, *end;
    int line, col;
    toml_limits lim;
    toml_error *err;
    bool failed;
    size_t nkeys;
    uint32_t section, next_section;
} tparser;

static inline bool tp_eof(const tparser *ps) { return ps->p >= ps->end; }

/* Byte k ahead of the cursor, or -1 past the end. */
static inline int tp_peek(const tparser *ps, size_t k) {
    return (size_t)(ps->end - ps->p) > k ? (unsigned char)ps->p[k] : -1;
}

/* Consume one byte, keeping line and column (columns count characters, so
 * UTF-8 continuation bytes do not advance them). */
static inline void tp_adv(tparser *ps) {
    unsigned char c = (unsigned char)*ps->p++;
    if (c == '\n') {
        ps->line++;
        ps->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        ps->col++;
    }
}

static inline toml_pos tp_pos(const tparser *ps) {
    toml_pos p = {ps->line, ps->col};
    return p;
}

/* Record the first error (at the cursor, or at pos) and return -1. */
int tp_fail(tparser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tp_fail_at(tparser *ps, toml_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* toml_tree.c. A new value at depth (error past max_depth: NULL). */
toml_value *tp_new_value(tparser *ps, toml_type t, int depth, toml_pos pos);
/* The value under key k (n bytes) in table t, or NULL. */
toml_value *tp_tab_find(const toml_value *t, const char *k, size_t n);
/* Add key -> v to t, counting the key against max_keys. Takes ownership of
 * v (freed on failure), copies the key. 0 or -1. */
int tp_tab_add(tparser *ps, toml_value *t, const char *key, size_t n,
               toml_pos pos, toml_value *v);
void tp_arr_push(toml_value *a, toml_value *v);

/* toml_lex.c. At a quote: parse a basic/literal string, multi-line ones when
 * allow_multi. *out is xmalloc'ed (NUL-terminated), caller frees. */
int tp_string(tparser *ps, bool allow_multi, char **out, size_t *len);

/* At a digit, sign, 'i', 'n', 't' or 'f': parse an integer, float, boolean
 * or datetime into v (type and payload). */
int tp_scalar(tparser *ps, toml_value *v);

#endif
