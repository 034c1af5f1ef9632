/* store_async: a small, bounded completion pool that turns a backend's
 * blocking write into store.h's asynchronous submit.
 *
 * Promises:
 *  - `threads` threads run run(ctx, op) for queued ops, in FIFO order; run
 *    owns op: it answers it (kv_op_finish) or hands it on.
 *  - The queue holds at most `capacity` ops: kv_async_submit on a full (or
 *    stopping) pool answers op with KV_UNAVAILABLE at once, on the caller's
 *    thread, so a caller never waits for room.
 *  - kv_async_stop refuses new ops (try_submit false), runs every queued
 *    one and joins the threads; the pool stays valid until destroy (which
 *    stops it first, if needed).
 */
#ifndef APP_STORE_ASYNC_H
#define APP_STORE_ASYNC_H

#include "store.h"

typedef struct kv_async kv_async;

typedef void (*kv_async_run)(void *ctx, kv_op *op);

/* NULL with err when a thread cannot be started. The threads are named
 * name0, name1... (name: at most 10 bytes, e.g. "hale-pg"). */
kv_async *kv_async_new(const char *name, unsigned threads, unsigned capacity, kv_async_run run,
                       void *ctx, char *err, size_t errlen);
void kv_async_submit(kv_async *a, kv_op *op);
/* Like submit, but on a full or stopping pool returns false and leaves op
 * with the caller, untouched. */
bool kv_async_try_submit(kv_async *a, kv_op *op);
void kv_async_stop(kv_async *a);
void kv_async_destroy(kv_async *a);

#endif
