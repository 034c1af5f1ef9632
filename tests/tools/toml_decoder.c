/* toml_decoder: the decoder that toml-test drives (R: C2).
 * Reads TOML on stdin; prints toml-test's tagged JSON on stdout and exits 0,
 * or prints "line:col: message" on stderr and exits 1 for invalid input.
 * Uses the default limits, so the suite also proves they fit real files. */
#include "toml.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void emit(hale_buf *o, const toml_value *v);

static void tagged(hale_buf *o, const char *type, const char *val, size_t n) {
    hale_buf_printf(o, "{\"type\":\"%s\",\"value\":\"", type);
    hale_buf_json_escape(o, val, n);
    hale_buf_puts(o, "\"}");
}

static void emit_scalar(hale_buf *o, const toml_value *v) {
    char tmp[64];
    size_t n;
    const char *s;
    switch (toml_type_of(v)) {
    case TOML_STRING:
        s = toml_str(v, &n);
        tagged(o, "string", s, n);
        return;
    case TOML_INTEGER:
        n = (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)toml_int(v));
        tagged(o, "integer", tmp, n);
        return;
    case TOML_FLOAT: {
        double d = toml_float(v);
        if (isnan(d)) n = (size_t)snprintf(tmp, sizeof tmp, "nan");
        else if (isinf(d)) n = (size_t)snprintf(tmp, sizeof tmp, d < 0 ? "-inf" : "inf");
        else n = (size_t)snprintf(tmp, sizeof tmp, "%.17g", d);
        tagged(o, "float", tmp, n);
        return;
    }
    case TOML_BOOL:
        s = toml_bool(v) ? "true" : "false";
        tagged(o, "bool", s, toml_bool(v) ? 4 : 5);
        return;
    case TOML_DATETIME: {
        static const char *kinds[] = {"datetime", "datetime-local", "date-local", "time-local"};
        const toml_datetime *dt = toml_dt(v);
        char b[TOML_DT_BUFSZ];
        n = toml_datetime_format(dt, b, sizeof b);
        tagged(o, kinds[dt->kind], b, n);
        return;
    }
    default:
        emit(o, v);
    }
}

static void emit(hale_buf *o, const toml_value *v) {
    size_t n = toml_len(v);
    if (toml_type_of(v) == TOML_ARRAY) {
        hale_buf_puts(o, "[");
        for (size_t i = 0; i < n; i++) {
            if (i) hale_buf_puts(o, ",");
            emit_scalar(o, toml_array_at(v, i));
        }
        hale_buf_puts(o, "]");
        return;
    }
    if (toml_type_of(v) != TOML_TABLE) {
        emit_scalar(o, v);
        return;
    }
    hale_buf_puts(o, "{");
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = toml_table_key_at(v, i, &klen, NULL);
        if (i) hale_buf_puts(o, ",");
        hale_buf_puts(o, "\"");
        hale_buf_json_escape(o, k, klen);
        hale_buf_puts(o, "\":");
        emit_scalar(o, toml_table_value_at(v, i));
    }
    hale_buf_puts(o, "}");
}

int main(void) {
    hale_buf in;
    hale_buf_init(&in);
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) hale_buf_append(&in, chunk, got);
    if (ferror(stdin)) {
        perror("toml_decoder: stdin");
        return 2;
    }
    toml_error err;
    toml_value *root = toml_parse(in.data ? in.data : "", in.len, NULL, &err);
    hale_buf_free(&in);
    if (!root) {
        fprintf(stderr, "%d:%d: %s\n", err.pos.line, err.pos.col, err.msg);
        return 1;
    }
    hale_buf out;
    hale_buf_init(&out);
    emit(&out, root);
    hale_buf_puts(&out, "\n");
    fwrite(out.data, 1, out.len, stdout);
    hale_buf_free(&out);
    toml_free(root);
    return 0;
}
