/* The SQLite store's write-failure bookkeeping: kinds, answers, the
 * degraded state and its counter (R: F2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "store_sqlite_faults.h"
#include "util.h"

static void test_classify(void **state) {
    (void)state;
    assert_int_equal(sqf_classify(SQLITE_FULL, 0), SQF_ENOSPC);
    assert_int_equal(sqf_classify(SQLITE_IOERR_FSYNC, ENOSPC), SQF_ENOSPC);
    assert_int_equal(sqf_classify(SQLITE_IOERR_WRITE, EDQUOT), SQF_ENOSPC);
    assert_int_equal(sqf_classify(SQLITE_IOERR_FSYNC, EIO), SQF_EIO);
    assert_int_equal(sqf_classify(SQLITE_IOERR_TRUNCATE, 0), SQF_EIO);
    assert_int_equal(sqf_classify(SQLITE_BUSY, 0), SQF_BUSY);
    assert_int_equal(sqf_classify(SQLITE_CORRUPT, 0), SQF_CORRUPT);
    assert_int_equal(sqf_classify(SQLITE_CONSTRAINT, 0), SQF_OTHER);
    assert_int_equal(sqf_status(SQF_ENOSPC), KV_FULL);
    assert_int_equal(sqf_status(SQF_EIO), KV_UNAVAILABLE);
    assert_int_equal(sqf_status(SQF_BUSY), KV_UNAVAILABLE);
    assert_int_equal(sqf_status(SQF_OTHER), KV_ERROR);
}

static double counter_of(hale_metrics *reg, const char *kind) {
    hale_buf out;
    hale_buf_init(&out);
    hale_metrics_render(reg, &out);
    char needle[96];
    snprintf(needle, sizeof needle, "hale_store_errors_total{kind=\"%s\"} ", kind);
    const char *p = strstr(out.data, needle);
    double v = p ? strtod(p + strlen(needle), NULL) : -1;
    hale_buf_free(&out);
    return v;
}

static void test_degraded_until_ok(void **state) {
    (void)state;
    sq_faults f;
    sqf_init(&f);
    hale_metrics *reg = hale_metrics_new();
    sqf_register_metrics(&f, reg);
    char err[256] = "";
    assert_int_equal(sqf_degraded(&f, err, sizeof err), 0);
    assert_true(counter_of(reg, "enospc") == 0 && counter_of(reg, "eio") == 0);
    sqf_failed(&f, SQF_ENOSPC, SQLITE_FULL, 0, "commit", "database or disk is full");
    sqf_failed(&f, SQF_ENOSPC, SQLITE_FULL, 0, "commit", "database or disk is full");
    sqf_failed(&f, SQF_EIO, SQLITE_IOERR_FSYNC, EIO, "commit", "disk I/O error");
    assert_int_equal(sqf_degraded(&f, err, sizeof err), 1);
    assert_non_null(strstr(err, "eio"));
    assert_non_null(strstr(err, "Input/output error"));
    assert_true(counter_of(reg, "enospc") == 2);
    assert_true(counter_of(reg, "eio") == 1);
    sqf_ok(&f);
    assert_int_equal(sqf_degraded(&f, err, sizeof err), 0);
    assert_true(counter_of(reg, "eio") == 1); /* a counter never goes back */
    hale_metrics_free(reg);
    sqf_destroy(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_degraded_until_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
