/* Settings bound to struct fields (hale_cfg_bind) and the generated
 * default.toml (hale_cfg_print_toml): each setting's default is declared
 * once, and the struct and the file both come from that declaration. */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfg_fixture.h"

typedef struct opts {
    const char *host;
    uint16_t port;
    uint64_t big;
    unsigned timeout_ms;
    bool on;
    unsigned char mode; /* index of "fast|safe|slow" */
    int untouched;
} opts;

#define F(m) HALE_FIELD(opts, m)
static const hale_setting bound[] = {
    {"b.host", HALE_SETTING_STRING, "localhost", 0, 0, NULL, NULL, 0, "Host.", F(host)},
    {"b.port", HALE_SETTING_INT, "8080", 1, 65535, NULL, "B_PORT", 0, "Port.", F(port)},
    {"b.big", HALE_SETTING_INT, "5000000000", 0, 0, NULL, NULL, 0, "Unbounded.", F(big)},
    {"b.timeout", HALE_SETTING_DURATION, "2s", 0, 600000, NULL, NULL, 0, "Timeout.", F(timeout_ms)},
    {"b.on", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0, "Switch.", F(on)},
    {"b.mode", HALE_SETTING_ENUM, "safe", 0, 0, "fast|safe|slow", NULL, 0, "Mode.", F(mode)},
    {"b.free", HALE_SETTING_INT, "7", 0, 10, NULL, NULL, 0, "Read with a getter.", HALE_NO_FIELD},
};
#define NB (sizeof bound / sizeof bound[0])

static void test_defaults_without_a_config(void **state) { /* R: C5 */
    (void)state;
    opts o = {.untouched = 42};
    hale_cfg_bind(NULL, bound, NB, &o);
    assert_string_equal(o.host, "localhost");
    assert_int_equal(o.port, 8080);
    assert_true(o.big == 5000000000ull);
    assert_int_equal(o.timeout_ms, 2000);
    assert_true(o.on);
    assert_int_equal(o.mode, 1);
    assert_int_equal(o.untouched, 42);
}

static void test_loaded_values_reach_the_fields(void **state) { /* R: C1, C2, C5 */
    fx *f = *state;
    hale_cfg_declare(f->cfg, bound, NB);
    put(f->conf, "default.toml", "[b]\nhost = \"h.example\"\ntimeout = \"250ms\"\nmode = \"SLOW\"\non = false\n",
        0644);
    const char *env[] = {"B_PORT=9", NULL};
    assert_int_equal(load(f, env), 0);
    opts o;
    memset(&o, 0, sizeof o);
    hale_cfg_bind(f->cfg, bound, NB, &o);
    assert_string_equal(o.host, "h.example");
    assert_int_equal(o.port, 9);
    assert_int_equal(o.timeout_ms, 250);
    assert_false(o.on);
    assert_int_equal(o.mode, 2);
    assert_int_equal(hale_cfg_int(f->cfg, "b.free"), 7);
}

typedef struct small { uint8_t x; bool b; unsigned u; } small;
static void bind_too_small(void) {
    static const hale_setting s[] = {
        {"s.x", HALE_SETTING_INT, "1", 0, 1000, NULL, NULL, 0, "", HALE_FIELD(small, x)}};
    hale_cfg_declare(hale_cfg_new(), s, 1);
}
static void bind_bool_to_int(void) {
    static const hale_setting s[] = {
        {"s.u", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0, "", HALE_FIELD(small, u)},
        {"s.b", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0, "", HALE_FIELD(small, b)}};
    small o;
    hale_cfg_bind(NULL, s, 2, &o);
}
static void bind_negative(void) {
    static const hale_setting s[] = {
        {"s.x", HALE_SETTING_INT, "1", -5, 5, NULL, NULL, 0, "", HALE_FIELD(small, x)}};
    small o;
    hale_cfg_bind(NULL, s, 1, &o);
}
static void bind_undeclared(void) {
    hale_cfg *cfg = hale_cfg_new();
    opts o;
    hale_cfg_bind(cfg, bound, NB, &o);
}

static void test_bindings_that_cannot_hold_abort(void **state) { /* R: C5, B6 */
    (void)state;
    assert_true(aborts(bind_too_small));
    assert_true(aborts(bind_bool_to_int));
    assert_true(aborts(bind_negative));
    assert_true(aborts(bind_undeclared));
}

static void print_toml(const hale_cfg *cfg, FILE *out) { hale_cfg_print_toml(cfg, out); }

static void test_toml_output_is_the_declared_defaults(void **state) { /* R: C2, C5 */
    fx *f = *state;
    hale_cfg_declare(f->cfg, bound, NB);
    put(f->conf, "default.toml", "[b]\nport = 1\n", 0644);
    assert_int_equal(load(f, NULL), 0);
    char *t = capture(print_toml, f->cfg);
    /* the defaults, not the effective values; grouped by section */
    assert_non_null(strstr(t, "\n[b]\n# Host.\nhost = \"localhost\"\n# Port. (env B_PORT)\nport = 8080\n"));
    assert_non_null(strstr(t, "timeout = \"2s\"\n"));
    assert_non_null(strstr(t, "mode = \"safe\"\n"));
    assert_non_null(strstr(t, "big = 5000000000\n"));
    assert_non_null(strstr(t, "\n[server]\n"));
    assert_null(strstr(t, "port = 1\n"));
    /* the output read back as the only config file sets every value to its default */
    put(f->conf, "default.toml", t, 0644);
    assert_int_equal(load(f, NULL), 0);
    assert_int_equal(hale_cfg_diag_count(f->cfg), 0);
    assert_false(hale_cfg_is_default(f->cfg, "b.port"));
    assert_int_equal(hale_cfg_int(f->cfg, "b.port"), 8080);
    assert_string_equal(hale_cfg_str(f->cfg, "database.url"), "sqlite://./data/hale.db");
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_a_config),
        T(test_loaded_values_reach_the_fields),
        cmocka_unit_test(test_bindings_that_cannot_hold_abort),
        T(test_toml_output_is_the_declared_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
