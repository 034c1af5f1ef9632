/* fuzz_toml: libFuzzer target for the TOML parser (R: Y2).
 * Any input must give a tree or an error with a position, within the
 * default limits, without a crash, leak or sanitizer report; a tree must be
 * fully walkable. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "toml.h"
#include "util.h"

static size_t walk(const toml_value *v, int depth) {
    size_t n = 1;
    HALE_ASSERT(depth <= toml_default_limits.max_depth + 1);
    toml_pos p = toml_pos_of(v);
    HALE_ASSERT(p.line >= 1 && p.col >= 1);
    switch (toml_type_of(v)) {
    case TOML_TABLE:
        for (size_t i = 0; i < toml_len(v); i++) {
            size_t kl;
            const char *k = toml_table_key_at(v, i, &kl, &p);
            HALE_ASSERT(k[kl] == '\0');
            if (!memchr(k, '\0', kl)) HALE_ASSERT(toml_table_get(v, k) == toml_table_value_at(v, i));
            n += walk(toml_table_value_at(v, i), depth + 1);
        }
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < toml_len(v); i++) n += walk(toml_array_at(v, i), depth + 1);
        break;
    case TOML_STRING: {
        size_t l;
        const char *s = toml_str(v, &l);
        HALE_ASSERT(s[l] == '\0');
        break;
    }
    case TOML_DATETIME: {
        char b[TOML_DT_BUFSZ];
        size_t l = toml_datetime_format(toml_dt(v), b, sizeof b);
        HALE_ASSERT(l < sizeof b);
        break;
    }
    default:
        break;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    toml_error err;
    toml_value *root = toml_parse((const char *)data, size, NULL, &err);
    if (root) {
        walk(root, 0);
        toml_free(root);
    } else {
        HALE_ASSERT(err.pos.line >= 1 && err.pos.col >= 1 && err.msg[0]);
    }
    return 0;
}
