/* toml: a TOML 1.0 parser that builds a tree.
 *
 * Promises:
 *  - Accepts exactly TOML 1.0 (it passes the toml-test suite): anything else,
 *    including invalid UTF-8 anywhere in the input, is an error.
 *  - Every value and every table key records the line and column (1-based,
 *    columns counted in characters) where it was written. Tables keep their
 *    keys in insertion order.
 *  - An error says where (line, column) and what was expected. Messages never
 *    quote values (at most a key's name), so a secret in a broken file cannot
 *    leak through them.
 *  - Limits (input size, nesting depth, total key count) bound memory and
 *    stack, so a hostile file cannot exhaust either; exceeding one is an
 *    ordinary error with a position. Parsing never recurses deeper than
 *    max_depth.
 *  - Datetimes keep their kind (offset datetime, local datetime, local date,
 *    local time) and their fields; toml_datetime_format() renders RFC 3339.
 *
 * Thread-safety: toml_parse() has no shared state; a finished tree is
 * immutable and may be read from any number of threads.
 * Accessors given a value of the wrong type abort (hale_panic): check
 * toml_type_of() first when the type depends on input.
 */
#ifndef HALE_TOML_H
#define HALE_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum toml_type {
    TOML_TABLE,
    TOML_ARRAY,
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME,
} toml_type;

typedef enum toml_dt_kind {
    TOML_DT_OFFSET, /* 1979-05-27T07:32:00-07:00 */
    TOML_DT_LOCAL,  /* 1979-05-27T07:32:00 */
    TOML_DT_DATE,   /* 1979-05-27 */
    TOML_DT_TIME,   /* 07:32:00 */
} toml_dt_kind;

typedef struct toml_datetime {
    toml_dt_kind kind;
    int year, month, day;       /* unused for TOML_DT_TIME */
    int hour, minute, second;   /* unused for TOML_DT_DATE */
    int nanosecond;             /* fraction; digits past the 9th are dropped */
    int frac_digits;            /* digits written (0-9), for faithful output */
    int offset_minutes;         /* TOML_DT_OFFSET: east of UTC */
    bool offset_z;              /* TOML_DT_OFFSET: written as Z */
} toml_datetime;

typedef struct toml_pos {
    int line, col; /* 1-based */
} toml_pos;

typedef struct toml_error {
    toml_pos pos;
    char msg[160]; /* e.g. "expected '=' after key" */
} toml_error;

typedef struct toml_limits {
    size_t max_input;  /* bytes */
    int max_depth;     /* tables and arrays nested in each other */
    size_t max_keys;   /* keys in the whole document */
} toml_limits;

/* 1 MiB, depth 64, 10000 keys. */
extern const toml_limits toml_default_limits;

typedef struct toml_value toml_value;

/* Parse len bytes of text (need not be NUL-terminated). lim NULL means
 * toml_default_limits. Returns the root table, owned by the caller (free
 * with toml_free), or NULL with *err filled in (err may be NULL). */
toml_value *toml_parse(const char *text, size_t len, const toml_limits *lim,
                       toml_error *err);

/* Free a tree returned by toml_parse. NULL is fine. */
void toml_free(toml_value *root);

toml_type toml_type_of(const toml_value *v);
/* "table", "array", "string", "integer", "float", "boolean", "datetime". */
const char *toml_type_name(toml_type t);
/* Where the value starts in the input. */
toml_pos toml_pos_of(const toml_value *v);

/* Scalars. The string is owned by the tree, NUL-terminated, and may contain
 * NUL bytes (from \u0000): use *len (len may be NULL). */
const char *toml_str(const toml_value *v, size_t *len);
int64_t toml_int(const toml_value *v);
double toml_float(const toml_value *v);
bool toml_bool(const toml_value *v);
const toml_datetime *toml_dt(const toml_value *v);

/* Number of elements (array) or keys (table). */
size_t toml_len(const toml_value *v);
const toml_value *toml_array_at(const toml_value *arr, size_t i);

/* The i-th key of a table in insertion order; *len (optional) gets its byte
 * length (keys may contain NUL), *pos (optional) where it was written. */
const char *toml_table_key_at(const toml_value *tab, size_t i, size_t *len,
                              toml_pos *pos);
const toml_value *toml_table_value_at(const toml_value *tab, size_t i);
/* Lookup by NUL-terminated key; NULL when absent. O(1) on average. */
const toml_value *toml_table_get(const toml_value *tab, const char *key);

/* Render dt in RFC 3339 form (date, time or both, with "Z" or "+hh:mm" for
 * offset datetimes). Writes at most cap bytes including the NUL; returns the
 * full length like snprintf. TOML_DT_BUFSZ always suffices. */
#define TOML_DT_BUFSZ 48
size_t toml_datetime_format(const toml_datetime *dt, char *buf, size_t cap);

#endif
