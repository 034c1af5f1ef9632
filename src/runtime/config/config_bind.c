/* config_bind: settings into the struct fields they are declared with
 * (hale_cfg_bind, config.h). The one place a setting's value reaches a
 * plain struct, so no module keeps defaults of its own. */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

static bool int_like(const hale_setting *d) {
    return d->type == HALE_SETTING_INT || d->type == HALE_SETTING_DURATION ||
           d->type == HALE_SETTING_ENUM;
}

static size_t nchoices(const char *c) {
    size_t n = 1;
    for (; *c; c++) n += *c == '|';
    return n;
}

void cfg_check_binding(const hale_setting *d) {
    if (d->size == 0) return;
    if (d->type == HALE_SETTING_BOOL && d->size != sizeof(bool))
        hale_panic("config: %s: bound to a field that is not a bool", d->name);
    if (d->type == HALE_SETTING_STRING && d->size != sizeof(const char *))
        hale_panic("config: %s: bound to a field that is not a string pointer", d->name);
    if (!int_like(d)) return;
    if (d->size != 1 && d->size != 2 && d->size != 4 && d->size != 8)
        hale_panic("config: %s: bound to a field of %zu bytes", d->name, d->size);
    uint64_t top = d->type == HALE_SETTING_ENUM ? nchoices(d->choices) - 1
                   : d->min == 0 && d->max == 0 ? UINT64_MAX
                                                : (uint64_t)d->max;
    if (d->type != HALE_SETTING_ENUM && d->min < 0)
        hale_panic("config: %s: a bound integer must not go below 0", d->name);
    if (d->size < 8 && top >> (8 * d->size) != 0)
        hale_panic("config: %s: its maximum does not fit a %zu-byte field", d->name, d->size);
}

static uint64_t choice_index(const hale_setting *d, const char *s) {
    uint64_t i = 0;
    for (const char *c = d->choices; *c; i++) {
        size_t n = strcspn(c, "|");
        if (strlen(s) == n && strncmp(c, s, n) == 0) return i;
        c += n + (c[n] == '|');
    }
    hale_panic("config: %s: \"%s\" is not one of its choices", d->name, s);
}

static void store_uint(void *field, size_t size, uint64_t x) {
    uint8_t u8 = (uint8_t)x;
    uint16_t u16 = (uint16_t)x;
    uint32_t u32 = (uint32_t)x;
    const void *src = size == 1 ? (const void *)&u8 : size == 2 ? (const void *)&u16
                    : size == 4 ? (const void *)&u32 : (const void *)&x;
    memcpy(field, src, size);
}

/* Stores v (d's type) into its field; a string is stored as s. */
static void store(const hale_setting *d, const cfg_val *v, const char *s, char *base) {
    char *field = base + d->off;
    switch (d->type) {
    case HALE_SETTING_STRING:
        memcpy(field, &s, sizeof s);
        return;
    case HALE_SETTING_BOOL:
        memcpy(field, &v->b, sizeof v->b);
        return;
    case HALE_SETTING_ENUM:
        store_uint(field, d->size, choice_index(d, v->s));
        return;
    case HALE_SETTING_INT:
    case HALE_SETTING_DURATION:
        store_uint(field, d->size, (uint64_t)v->i);
        return;
    }
}

void hale_cfg_bind(const hale_cfg *cfg, const hale_setting *table, size_t n, void *dst) {
    for (size_t k = 0; k < n; k++) {
        const hale_setting *d = &table[k];
        if (d->size == 0) continue;
        cfg_check_binding(d);
        if (cfg) {
            const cfg_item *it = cfg_find(cfg, d->name);
            if (!it || it->def != d) hale_panic("config: %s: bound but not declared", d->name);
            store(d, &it->val, it->val.s, dst);
            continue;
        }
        cfg_val v;
        if (cfg_parse_text(d, d->def ? d->def : "", &v) < 0)
            hale_panic("config: %s: default \"%s\" does not fit its type", d->name, d->def);
        store(d, &v, d->def ? d->def : "", dst);
        free(v.s);
    }
}
