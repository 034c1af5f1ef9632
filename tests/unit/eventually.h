/* eventually: EVENTUALLY(cond) polls cond every 10 ms for up to 5 s, then
 * asserts it: a liveness bound for what a background thread does, never a
 * timing assertion. Include after cmocka.h. */
#ifndef HALE_TEST_EVENTUALLY_H
#define HALE_TEST_EVENTUALLY_H

#include <unistd.h>

#define EVENTUALLY(cond)                                                   \
    do {                                                                   \
        int tries_ = 0;                                                    \
        while (!(cond) && tries_++ < 500) usleep(10000);                   \
        assert_true(cond);                                                 \
    } while (0)

#endif
