/* timer: the runtime's periodic background work (health checks, the API-key
 * file reload) on one thread, "hale-timer". Internal: not installed.
 *
 * Promises:
 *  - A task runs first at once (as soon as the timer runs, or when added to
 *    a running timer), then period_ms after its previous run ENDED: a late
 *    or slow run shifts the schedule, it never causes a catch-up burst.
 *  - Tasks run one at a time, in deadline order (the earliest due first;
 *    equal deadlines in the order the tasks were added). A slow task delays
 *    the others by as long as it runs, and drops none of them: every task
 *    due meanwhile runs once it returns, earliest deadline first.
 *  - Deadlines are CLOCK_MONOTONIC: a wall-clock step moves nothing.
 *  - hale_timer_cancel(t, id) returns only once the task is not running and
 *    will never run again (unless called from the task itself); after
 *    hale_timer_stop returns, no task runs any more. Both are idempotent.
 *  - At most HALE_TIMER_MAX_TASKS tasks at a time; a task's fn must bound
 *    itself (it holds up every other task while it runs).
 *  Thread-safety: every function but new/free may be called from any
 *  thread, tasks included (except stop and free from a task).
 */
#ifndef HALE_TIMER_H
#define HALE_TIMER_H

#include <stddef.h>

#define HALE_TIMER_MAX_TASKS 16

typedef struct hale_timer hale_timer;

/* A stopped timer with no task. */
hale_timer *hale_timer_new(void);

/* Adds a task, before or after start: fn(arg) every period_ms (0 counts as
 * 1), first at once. name is for diagnostics (copied). Returns the task's
 * id (>= 0, for hale_timer_cancel), or -1 when the table is full or the
 * timer was stopped. */
int hale_timer_every(hale_timer *t, const char *name, unsigned period_ms, void (*fn)(void *arg),
                     void *arg);

/* Removes the task id (waits for its run in progress to end, unless called
 * on the timer thread). Unknown or already removed ids are ignored. */
void hale_timer_cancel(hale_timer *t, int id);

/* Starts the thread. Returns 0 (also when already running), or -1 with err
 * when the thread cannot be created (or the timer was stopped). */
int hale_timer_start(hale_timer *t, char *err, size_t errlen);

/* Stops the thread and joins it; the timer takes no task afterwards. */
void hale_timer_stop(hale_timer *t);

/* Stops t and frees it. NULL is fine. */
void hale_timer_free(hale_timer *t);

#endif
