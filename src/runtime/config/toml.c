/* toml: the document grammar (keys, tables, arrays, inline tables) and the
 * TOML 1.0 rules on defining tables. See toml.h; scalars are in toml_lex.c,
 * the tree and its accessors in toml_tree.c. */
#include "toml_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys ------------------------------------------------------------- */

typedef struct kpart {
    char *s;
    size_t n;
    toml_pos pos;
} kpart;

typedef struct tkey {
    kpart *p;
    size_t n, cap;
} tkey;

static void key_free(tkey *k) {
    for (size_t i = 0; i < k->n; i++) free(k->p[i].s);
    free(k->p);
}

/* A key part for messages: quoted, control characters as '?', cut short. */
static const char *show(char buf[static 48], const kpart *kp) {
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < kp->n; i++) {
        unsigned char c = (unsigned char)kp->s[i];
        if (o > 40 && (c & 0xC0) != 0x80) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void skip_ws(tparser *ps) {
    while (!tp_eof(ps) && (*ps->p == ' ' || *ps->p == '\t')) tp_adv(ps);
}

static bool is_bare(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* key = part ( ws '.' ws part )*; leaves the cursor after trailing spaces. */
static int parse_key(tparser *ps, tkey *k) {
    for (;;) {
        skip_ws(ps);
        kpart kp = {NULL, 0, tp_pos(ps)};
        int c = tp_peek(ps, 0);
        if (c == '"' || c == '\'') {
            if (tp_string(ps, false, &kp.s, &kp.n) < 0) return -1;
        } else if (is_bare(c)) {
            const char *s = ps->p;
            while (is_bare(tp_peek(ps, 0))) tp_adv(ps);
            kp.n = (size_t)(ps->p - s);
            kp.s = xstrndup(s, kp.n);
        } else {
            return tp_fail(ps, k->n ? "expected a key after '.'" : "expected a key");
        }
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 4;
            k->p = xrealloc(k->p, k->cap * sizeof(kpart));
        }
        k->p[k->n++] = kp;
        if (k->n > (size_t)ps->lim.max_depth)
            return tp_fail_at(ps, kp.pos, "nesting deeper than %d levels", ps->lim.max_depth);
        skip_ws(ps);
        if (tp_peek(ps, 0) != '.') return 0;
        tp_adv(ps);
    }
}

/* ---- values ----------------------------------------------------------- */

static toml_value *parse_value(tparser *ps, int depth);
static int keyval(tparser *ps, toml_value *t);

static int comment(tparser *ps) {
    tp_adv(ps); /* '#' */
    while (!tp_eof(ps) && *ps->p != '\n') {
        int c = (unsigned char)*ps->p;
        if (c == '\r' && tp_peek(ps, 1) == '\n') break;
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return tp_fail(ps, "control character U+%04X in a comment", c);
        tp_adv(ps);
    }
    return 0;
}

/* Spaces, newlines and comments between array elements. */
static int skip_blank(tparser *ps) {
    for (;;) {
        int c = tp_peek(ps, 0);
        if (c == ' ' || c == '\t' || c == '\n') tp_adv(ps);
        else if (c == '\r' && tp_peek(ps, 1) == '\n') { tp_adv(ps); tp_adv(ps); }
        else if (c == '#') { if (comment(ps) < 0) return -1; }
        else return 0;
    }
}

static toml_value *parse_array(tparser *ps, int depth) {
    toml_value *a = tp_new_value(ps, TOML_ARRAY, depth, tp_pos(ps));
    if (!a) return NULL;
    tp_adv(ps); /* '[' */
    for (;;) {
        if (skip_blank(ps) < 0) goto fail;
        if (tp_peek(ps, 0) == ']') break;
        toml_value *e = parse_value(ps, depth + 1);
        if (!e) goto fail;
        tp_arr_push(a, e);
        if (skip_blank(ps) < 0) goto fail;
        int c = tp_peek(ps, 0);
        if (c == ',') { tp_adv(ps); continue; }
        if (c == ']') break;
        tp_fail(ps, "expected ',' or ']' after an array element");
        goto fail;
    }
    tp_adv(ps); /* ']' */
    return a;
fail:
    toml_free(a);
    return NULL;
}

static toml_value *parse_inline(tparser *ps, int depth) {
    toml_value *t = tp_new_value(ps, TOML_TABLE, depth, tp_pos(ps));
    if (!t) return NULL;
    tp_adv(ps); /* '{' */
    /* dotted keys inside may build sub-tables, but only inside these braces */
    uint32_t saved = ps->section;
    ps->section = ++ps->next_section;
    skip_ws(ps);
    if (tp_peek(ps, 0) != '}') {
        for (;;) {
            if (keyval(ps, t) < 0) goto fail;
            skip_ws(ps);
            int c = tp_peek(ps, 0);
            if (c == ',') {
                tp_adv(ps);
                skip_ws(ps);
                c = tp_peek(ps, 0);
                if (c == '\n' || c == '\r' || c == '}') {
                    tp_fail(ps, c == '}' ? "expected a key after ',' (no trailing comma "
                                           "in inline tables)"
                                         : "expected a key after ',' (inline tables are "
                                           "on one line)");
                    goto fail;
                }
                continue;
            }
            if (c == '}') break;
            tp_fail(ps, "expected ',' or '}' after a value in an inline table "
                        "(inline tables are on one line)");
            goto fail;
        }
    }
    tp_adv(ps); /* '}' */
    ps->section = saved;
    t->flags |= TF_INLINE;
    return t;
fail:
    toml_free(t);
    return NULL;
}

static toml_value *parse_value(tparser *ps, int depth) {
    toml_pos pos = tp_pos(ps);
    int c = tp_peek(ps, 0);
    if (c == '[') return parse_array(ps, depth);
    if (c == '{') return parse_inline(ps, depth);
    bool str = c == '"' || c == '\'';
    if (!str && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != 'i' && c != 'n' &&
        c != 't' && c != 'f') {
        tp_fail(ps, "expected a value (string, number, boolean, datetime, array "
                    "or inline table)");
        return NULL;
    }
    toml_value *v = tp_new_value(ps, str ? TOML_STRING : TOML_BOOL, depth, pos);
    if (!v) return NULL;
    int rc = str ? tp_string(ps, true, &v->u.str.s, &v->u.str.len) : tp_scalar(ps, v);
    if (rc < 0) {
        toml_free(v); /* a failed string left its pointer NULL */
        return NULL;
    }
    return v;
}

static const char *a_type(toml_type t) {
    switch (t) {
    case TOML_TABLE: return "a table";
    case TOML_ARRAY: return "an array";
    case TOML_STRING: return "a string";
    case TOML_INTEGER: return "an integer";
    case TOML_FLOAT: return "a float";
    case TOML_BOOL: return "a boolean";
    case TOML_DATETIME: return "a datetime";
    }
    return "a value";
}

/* Insert a dotted key's value into t, making the tables on the way.
 * Takes ownership of v. */
static int insert_dotted(tparser *ps, toml_value *t, const tkey *k, toml_value *v) {
    char b[48];
    HALE_ASSERT(k->n > 0); /* parse_key succeeds only with a part */
    for (size_t i = 0; i + 1 < k->n; i++) {
        const kpart *kp = &k->p[i];
        toml_value *c = tp_tab_find(t, kp->s, kp->n);
        if (!c) {
            c = tp_new_value(ps, TOML_TABLE, t->depth + 1, kp->pos);
            if (!c) goto fail;
            c->flags = TF_DOTTED;
            c->section = ps->section;
            if (tp_tab_add(ps, t, kp->s, kp->n, kp->pos, c) < 0) goto fail;
        } else if (c->type != TOML_TABLE) {
            tp_fail_at(ps, kp->pos, "key %s is already %s, not a table", show(b, kp),
                       (c->flags & TF_AOT) ? "an array of tables" : a_type(c->type));
            goto fail;
        } else if (c->flags & TF_INLINE) {
            tp_fail_at(ps, kp->pos, "cannot add keys to the inline table %s", show(b, kp));
            goto fail;
        } else if ((c->flags & TF_HEADER) ||
                   ((c->flags & TF_DOTTED) && c->section != ps->section)) {
            tp_fail_at(ps, kp->pos, "table %s is already defined; dotted keys cannot "
                       "add to it here", show(b, kp));
            goto fail;
        } else {
            c->flags |= TF_DOTTED;
            c->section = ps->section;
        }
        t = c;
    }
    const kpart *last = &k->p[k->n - 1];
    if (tp_tab_find(t, last->s, last->n)) {
        tp_fail_at(ps, last->pos, "duplicate key %s", show(b, last));
        goto fail;
    }
    return tp_tab_add(ps, t, last->s, last->n, last->pos, v);
fail:
    toml_free(v);
    return -1;
}

static int keyval(tparser *ps, toml_value *t) {
    tkey k = {0};
    int rc = -1;
    if (parse_key(ps, &k) < 0) goto out;
    if (tp_peek(ps, 0) != '=') {
        tp_fail(ps, "expected '=' after key");
        goto out;
    }
    tp_adv(ps);
    skip_ws(ps);
    int c = tp_peek(ps, 0);
    if (c < 0 || c == '\n' || c == '\r' || c == '#') {
        tp_fail(ps, "expected a value after '='");
        goto out;
    }
    toml_value *v = parse_value(ps, t->depth + (int)k.n);
    if (!v) goto out;
    rc = insert_dotted(ps, t, &k, v);
out:
    key_free(&k);
    return rc;
}

/* [a.b] or [[a.b]]; returns the table that now receives key/values. */
static toml_value *header(tparser *ps, toml_value *root) {
    char b[48];
    tkey k = {0};
    toml_value *res = NULL;
    tp_adv(ps); /* '[' */
    bool aot = tp_peek(ps, 0) == '[';
    if (aot) tp_adv(ps);
    if (parse_key(ps, &k) < 0) goto out;
    if (tp_peek(ps, 0) != ']' || (aot && tp_peek(ps, 1) != ']')) {
        tp_fail(ps, aot ? "expected ']]' to close the array-of-tables header"
                        : "expected ']' to close the table header");
        goto out;
    }
    tp_adv(ps);
    if (aot) tp_adv(ps);
    HALE_ASSERT(k.n > 0);
    toml_value *t = root;
    for (size_t i = 0; i + 1 < k.n; i++) {
        const kpart *kp = &k.p[i];
        toml_value *c = tp_tab_find(t, kp->s, kp->n);
        if (!c) {
            c = tp_new_value(ps, TOML_TABLE, t->depth + 1, kp->pos);
            if (!c || tp_tab_add(ps, t, kp->s, kp->n, kp->pos, c) < 0) goto out;
        } else if (c->type == TOML_ARRAY && (c->flags & TF_AOT)) {
            c = c->u.arr.v[c->u.arr.len - 1];
        } else if (c->type != TOML_TABLE || (c->flags & TF_INLINE)) {
            tp_fail_at(ps, kp->pos, "key %s is already %s, which cannot be extended",
                       show(b, kp), (c->flags & TF_INLINE) ? "an inline table" : a_type(c->type));
            goto out;
        }
        t = c;
    }
    const kpart *kp = &k.p[k.n - 1];
    toml_value *c = tp_tab_find(t, kp->s, kp->n);
    if (!aot) {
        if (!c) {
            c = tp_new_value(ps, TOML_TABLE, t->depth + 1, kp->pos);
            if (!c || tp_tab_add(ps, t, kp->s, kp->n, kp->pos, c) < 0) goto out;
        } else if (c->type == TOML_TABLE && !(c->flags & (TF_INLINE | TF_HEADER | TF_DOTTED))) {
            c->pos = kp->pos; /* an implicit table, now defined here */
        } else {
            tp_fail_at(ps, kp->pos, c->type == TOML_TABLE ? "table %s is already defined"
                       : "key %s is already defined as a value", show(b, kp));
            goto out;
        }
        c->flags |= TF_HEADER;
    } else {
        if (!c) {
            c = tp_new_value(ps, TOML_ARRAY, t->depth + 1, kp->pos);
            if (!c) goto out;
            c->flags = TF_AOT;
            if (tp_tab_add(ps, t, kp->s, kp->n, kp->pos, c) < 0) goto out;
        } else if (c->type != TOML_ARRAY || !(c->flags & TF_AOT)) {
            tp_fail_at(ps, kp->pos, "key %s is already %s, not an array of tables",
                       show(b, kp), a_type(c->type));
            goto out;
        }
        toml_value *e = tp_new_value(ps, TOML_TABLE, c->depth + 1, kp->pos);
        if (!e) goto out;
        e->flags = TF_HEADER;
        tp_arr_push(c, e);
        c = e;
    }
    ps->section = ++ps->next_section;
    res = c;
out:
    key_free(&k);
    return res;
}

/* Spaces, an optional comment, then a newline or the end of input. */
static int end_of_line(tparser *ps, const char *after) {
    skip_ws(ps);
    if (tp_peek(ps, 0) == '#' && comment(ps) < 0) return -1;
    int c = tp_peek(ps, 0);
    if (c < 0) return 0;
    if (c == '\n') { tp_adv(ps); return 0; }
    if (c == '\r' && tp_peek(ps, 1) == '\n') { tp_adv(ps); tp_adv(ps); return 0; }
    if (c == '\r') return tp_fail(ps, "carriage return not followed by a line feed");
    return tp_fail(ps, "expected a newline or a comment after %s", after);
}

/* Position of byte offset off, for errors found before parsing. */
static toml_pos pos_at(const char *s, size_t off) {
    toml_pos p = {1, 1};
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') { p.line++; p.col = 1; }
        else if ((c & 0xC0) != 0x80) p.col++;
    }
    return p;
}


toml_value *toml_parse(const char *text, size_t len, const toml_limits *lim,
                       toml_error *err) {
    tparser ps = {0};
    ps.p = text;
    ps.end = text + len;
    ps.line = ps.col = 1;
    ps.lim = lim ? *lim : toml_default_limits;
    ps.err = err;
    if (err) memset(err, 0, sizeof *err);
    if (len > ps.lim.max_input) {
        tp_fail(&ps, "input larger than %zu bytes", ps.lim.max_input);
        return NULL;
    }
    size_t bad = hale_utf8_check(text, len);
    if (bad < len) {
        tp_fail_at(&ps, pos_at(text, bad), "invalid UTF-8");
        return NULL;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) ps.p += 3; /* BOM */
    toml_value *root = tp_new_value(&ps, TOML_TABLE, 0, tp_pos(&ps));
    toml_value *cur = root;
    while (!tp_eof(&ps)) {
        skip_ws(&ps);
        int c = tp_peek(&ps, 0);
        const char *after = "the end of the line";
        if (c == '[') {
            cur = header(&ps, root);
            if (!cur) break;
            after = "a table header";
        } else if (c >= 0 && c != '#' && c != '\n' && c != '\r') {
            if (keyval(&ps, cur) < 0) break;
            after = "the value";
        }
        if (end_of_line(&ps, after) < 0) break;
    }
    if (ps.failed) {
        toml_free(root);
        return NULL;
    }
    return root;
}

