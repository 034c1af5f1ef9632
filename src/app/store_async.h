/* store_async: a small, bounded completion pool that turns a backend's
 * blocking write into store.h's asynchronous submit.
 *
 * Promises:
 *  - `threads` threads run run(ctx, op) for queued ops, in FIFO order; run
 *    sets op's results and the pool then calls op->done on that thread.
 *  - The queue holds at most `capacity` ops: kv_async_submit on a full (or
 *    stopping) pool answers op with KV_UNAVAILABLE at once, on the caller's
 *    thread, so a caller never waits for room.
 *  - kv_async_destroy finishes every queued op (they run) and joins.
 */
#ifndef APP_STORE_ASYNC_H
#define APP_STORE_ASYNC_H

#include "store.h"

typedef struct kv_async kv_async;

/* run returns the op's status (op->version/created set for a KV_OK PUT). */
typedef kv_status (*kv_async_run)(void *ctx, kv_op *op);

/* NULL with err when a thread cannot be started. */
kv_async *kv_async_new(unsigned threads, unsigned capacity, kv_async_run run, void *ctx,
                       char *err, size_t errlen);
void kv_async_submit(kv_async *a, kv_op *op);
void kv_async_destroy(kv_async *a);

#endif
