/* config internals shared by config.c (declarations, values, getters,
 * diagnostics), config_sources.c (loading) and config_print.c (output).
 * Not part of the public API. */
#ifndef HALE_CONFIG_INT_H
#define HALE_CONFIG_INT_H

#include "config.h"
#include "util.h"

/* Source layers, lowest precedence first (R: C7). */
enum cfg_layer {
    L_DEFAULT,
    L_FILE_DEFAULT,
    L_FILE_ENV,
    L_APP_ENV,
    L_ALIAS,
    L_SECRET,
};

typedef struct cfg_val {
    int64_t i;   /* INT, DURATION (ms) */
    bool b;      /* BOOL */
    char *s;     /* STRING, ENUM (owned, the canonical choice for ENUM) */
} cfg_val;

typedef struct cfg_item {
    const hale_setting *def;
    cfg_val val;
    char *source; /* owned provenance string */
    int layer;    /* enum cfg_layer that set val */
} cfg_item;

typedef struct cfg_diag_entry {
    hale_cfg_diag d;  /* d.msg is owned */
    bool unknown;     /* an unknown key/variable: an error under strict */
} cfg_diag_entry;

struct hale_cfg {
    cfg_item *items;
    size_t n, cap;
    cfg_diag_entry *diags;
    size_t ndiag, capdiag;
    char *run_env;
    char *config_dir;
    const char *build_info; /* hale_cfg_set_build_info; not owned, may be NULL */
    size_t nsuggest; /* "did you mean" lookups this load (capped: each costs
                        O(settings * name length^2)) */
};

/* The item named name, or NULL. */
cfg_item *cfg_find(const hale_cfg *cfg, const char *name);

/* Parse text as d's type into *out (out->s xmalloc'ed for STRING/ENUM).
 * 0, or -1 when the text does not fit the type or its bounds. */
int cfg_parse_text(const hale_setting *d, const char *text, cfg_val *out);

/* Aborts when d's field binding (off, size) cannot hold its values. */
void cfg_check_binding(const hale_setting *d);

/* d's type and bounds appended to b, as an error message says them after
 * "expected " (doc false: "an integer 1-65535", "true or false") or as the
 * settings table does (doc true: "integer 1..65535", "boolean"). */
void cfg_type_text(hale_buf *b, const hale_setting *d, bool doc);

/* s (n bytes) as a quoted, escaped, length-capped string, appended to b. */
void cfg_show_string(hale_buf *b, const char *s, size_t n);

/* Milliseconds in the largest unit that is exact: "250ms", "5s", "2m". */
void cfg_fmt_ms(char *buf, size_t cap, int64_t ms);

/* Replace it's value (taking ownership of v->s) and source. */
void cfg_set(cfg_item *it, cfg_val *v, const char *source, int layer);

/* Coerce text into it, or record "<where>: expected ..., got ..." with the
 * value shown only when neither the setting nor the source is secret. */
int cfg_apply_text(hale_cfg *cfg, cfg_item *it, const char *text, const char *where,
                   const char *source, int layer, bool secret_source);

/* True when it's effective value must not be shown. */
bool cfg_is_redacted(const cfg_item *it);

void cfg_diag(hale_cfg *cfg, hale_diag_level level, bool unknown, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reset every item to its default and drop all diagnostics. */
void cfg_reset(hale_cfg *cfg);

#endif
