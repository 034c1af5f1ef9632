/* Tests for src/runtime/common/breaker.c with a fake clock. R: A7 Y5 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "breaker.h"

static _Atomic uint64_t fake_now = 1000000000u;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }
static void advance_ms(uint64_t ms) { atomic_fetch_add(&fake_now, ms * 1000000u); }

static void init(hale_breaker *b, unsigned failures, unsigned open_ms) {
    hale_breaker_init(b, failures, open_ms);
    b->clock = fake_clock;
}

static void test_opens_after_n_consecutive_failures(void **st) {
    (void)st;
    hale_breaker b;
    init(&b, 3, 100);
    hale_breaker_failure(&b);
    hale_breaker_failure(&b);
    hale_breaker_success(&b); /* resets the count */
    hale_breaker_failure(&b);
    hale_breaker_failure(&b);
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_CLOSED);
    assert_true(hale_breaker_allow(&b));
    hale_breaker_failure(&b);
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_OPEN);
    assert_false(hale_breaker_allow(&b));
    assert_int_equal(hale_breaker_opens(&b), 1);
    hale_breaker_destroy(&b);
}

static void test_half_open_lets_one_probe_through(void **st) {
    (void)st;
    hale_breaker b;
    init(&b, 1, 100);
    hale_breaker_failure(&b);
    advance_ms(99);
    assert_false(hale_breaker_allow(&b));
    advance_ms(1);
    assert_true(hale_breaker_allow(&b)); /* the probe */
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_HALF_OPEN);
    assert_false(hale_breaker_allow(&b)); /* nobody else */
    assert_false(hale_breaker_allow(&b));
    hale_breaker_success(&b);
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_CLOSED);
    assert_true(hale_breaker_allow(&b));
    hale_breaker_destroy(&b);
}

static void test_failed_probe_reopens_for_a_full_period(void **st) {
    (void)st;
    hale_breaker b;
    init(&b, 2, 100);
    hale_breaker_failure(&b);
    hale_breaker_failure(&b);
    advance_ms(100);
    assert_true(hale_breaker_allow(&b));
    hale_breaker_failure(&b); /* one failure is enough in half-open */
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_OPEN);
    assert_int_equal(hale_breaker_opens(&b), 2);
    advance_ms(50);
    assert_false(hale_breaker_allow(&b));
    advance_ms(50);
    assert_true(hale_breaker_allow(&b));
    hale_breaker_destroy(&b);
}

static void test_lost_probe_does_not_stick(void **st) {
    (void)st;
    hale_breaker b;
    init(&b, 1, 100);
    hale_breaker_failure(&b);
    advance_ms(100);
    assert_true(hale_breaker_allow(&b)); /* probe that never reports */
    advance_ms(60);
    assert_false(hale_breaker_allow(&b));
    advance_ms(40);
    assert_true(hale_breaker_allow(&b)); /* another probe after open_ms */
    hale_breaker_destroy(&b);
}

static void test_late_failures_while_open_are_ignored(void **st) {
    (void)st;
    hale_breaker b;
    init(&b, 1, 100);
    hale_breaker_failure(&b);
    advance_ms(80);
    hale_breaker_failure(&b); /* a call that started before it opened */
    advance_ms(20);
    assert_true(hale_breaker_allow(&b)); /* the open period was not extended */
    assert_int_equal(hale_breaker_opens(&b), 1);
    hale_breaker_destroy(&b);
}

static void test_trip_opens_at_once(void **st) {
    (void)st;
    hale_breaker b;
    init(&b, 5, 100);
    hale_breaker_failure(&b);
    hale_breaker_trip(&b);
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_OPEN);
    assert_int_equal(hale_breaker_opens(&b), 1);
    advance_ms(60);
    hale_breaker_trip(&b); /* already open: the period is not extended */
    assert_int_equal(hale_breaker_opens(&b), 1);
    advance_ms(40);
    assert_true(hale_breaker_allow(&b));
    hale_breaker_success(&b);
    /* the failure count starts again from zero */
    for (int i = 0; i < 4; i++) hale_breaker_failure(&b);
    assert_int_equal(hale_breaker_get_state(&b), HALE_BREAKER_CLOSED);
    hale_breaker_destroy(&b);
}

static void test_state_names(void **st) {
    (void)st;
    assert_string_equal(hale_breaker_state_name(HALE_BREAKER_CLOSED), "closed");
    assert_string_equal(hale_breaker_state_name(HALE_BREAKER_OPEN), "open");
    assert_string_equal(hale_breaker_state_name(HALE_BREAKER_HALF_OPEN), "half_open");
}

/* Many threads failing and succeeding at once: exactly one probe per
 * half-open period, never a crash, and the state stays a valid value. */
static hale_breaker shared;
static atomic_int probes;

static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        if (hale_breaker_allow(&shared)) {
            if (hale_breaker_get_state(&shared) == HALE_BREAKER_HALF_OPEN) atomic_fetch_add(&probes, 1);
            if (i % 10) hale_breaker_failure(&shared);
            else hale_breaker_success(&shared);
        }
    }
    return NULL;
}

static void test_concurrent_use(void **st) {
    (void)st;
    hale_breaker_init(&shared, 4, 0); /* probe at once after opening */
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    int s = hale_breaker_get_state(&shared);
    assert_true(s >= HALE_BREAKER_CLOSED && s <= HALE_BREAKER_HALF_OPEN);
    assert_true(hale_breaker_opens(&shared) > 0);
    hale_breaker_destroy(&shared);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_n_consecutive_failures),
        cmocka_unit_test(test_half_open_lets_one_probe_through),
        cmocka_unit_test(test_failed_probe_reopens_for_a_full_period),
        cmocka_unit_test(test_lost_probe_does_not_stick),
        cmocka_unit_test(test_late_failures_while_open_are_ignored),
        cmocka_unit_test(test_trip_opens_at_once),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
