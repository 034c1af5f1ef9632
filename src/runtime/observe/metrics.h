/** @file
 * metrics: a Prometheus metrics registry and its text exposition (O3, O4).
 *
 * Promises:
 *  - A registry (hale_metrics) holds metric families: counters, gauges,
 *    histograms, and callback gauges/counters sampled at exposition. A
 *    family has a name, a help text and a fixed list of label names; each
 *    distinct set of label values is a child, created on first use and
 *    never freed before the registry, so child pointers are stable and
 *    callers may cache them.
 *  - Updates (hale_counter_add, hale_gauge_*, hale_histogram_observe) are
 *    lock-free: relaxed atomics on the child's own cache line(s). Measured
 *    on the 2-vCPU build machine, per-thread shards did not beat one
 *    atomic per child (8 threads on one counter: 43 vs 39 ns wall per add
 *    per thread, i.e. no contention cost to remove on 2 vCPUs), so
 *    children are not sharded; each child is cache-line aligned so two
 *    children never share a line. Known limit: on a many-core host one very
 *    hot child pays a cache-line transfer per update (tens of ns); shard
 *    then, with a new measurement.
 *  - Child lookup (hale_*_with) does not lock when the child exists (an
 *    open-addressing table read with acquire loads); only creating a child
 *    takes the registry mutex. So calling _with per request is fine; caching
 *    the pointer saves the lookup (~20 ns for 3 labels, measured).
 *  - hale_metrics_render() may run concurrently with updates and child
 *    creation. Each value is read atomically; a histogram's buckets, +Inf
 *    bucket and _count are always consistent with each other (_count is the
 *    sum of the bucket counts read), its _sum may lag by in-flight updates.
 *  - Output is text format 0.0.4: # HELP and # TYPE per family, families
 *    in registration order, children in creation order, label values
 *    escaped (\\, \", \n), histograms as cumulative _bucket{le=...} ending
 *    with le="+Inf" equal to _count, then _sum and _count.
 *  - Label values may be any bytes: invalid UTF-8 is replaced by U+FFFD
 *    (values that differ only in invalid bytes share one child). Keep label
 *    values bounded (route templates, not raw paths): every distinct set
 *    is a child that lives as long as the registry.
 *
 * Misuse that is a programming error (an invalid or duplicate metric name,
 * an invalid label name, unsorted buckets, a counter handle used as a
 * gauge, a NULL label value) aborts through hale_panic with a message:
 * metric names come from code, never from input.
 */
#ifndef HALE_METRICS_H
#define HALE_METRICS_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** The Content-Type of hale_metrics_render's output. */
#define HALE_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct hale_metrics hale_metrics;     /**< the registry */
typedef struct hale_metric hale_metric;       /**< a family */
typedef struct hale_counter hale_counter;     /**< one child of a counter family */
typedef struct hale_gauge hale_gauge;         /**< one child of a gauge family */
typedef struct hale_histogram hale_histogram; /**< one child of a histogram family */

/** HTTP latency buckets in seconds, 100 µs to 10 s (16 bounds). */
extern const double hale_metrics_latency_buckets[];
/** Bounds in hale_metrics_latency_buckets. */
#define HALE_METRICS_LATENCY_NBUCKETS 16

/** New empty registry; never NULL (aborts on OOM). Free with
 * hale_metrics_free once no thread uses it or any of its pointers. */
hale_metrics *hale_metrics_new(void);
/** Frees reg, its families and children. */
void hale_metrics_free(hale_metrics *reg);

/** @name Families
 * Register a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*, unique in reg. help:
 * any text (copied). label_names: nlabels names [a-zA-Z_][a-zA-Z0-9_]*,
 * not starting with "__" (copied; may be NULL when nlabels is 0). A family
 * with no labels gets its single child at once, so it renders 0 from the
 * start. Returns the family, owned by reg. Thread-safe (takes the mutex).
 * @{ */
/** A counter family. */
hale_metric *hale_metrics_counter(hale_metrics *reg, const char *name, const char *help,
                                  size_t nlabels, const char *const *label_names);
/** A gauge family. */
hale_metric *hale_metrics_gauge(hale_metrics *reg, const char *name, const char *help,
                                size_t nlabels, const char *const *label_names);
/** A histogram family. bounds: nbounds finite upper bounds in strictly increasing order (a
 * trailing +Inf is accepted and ignored; "le" is not a valid label name
 * here). bounds NULL and nbounds 0 means hale_metrics_latency_buckets. */
hale_metric *hale_metrics_histogram(hale_metrics *reg, const char *name, const char *help,
                                    size_t nlabels, const char *const *label_names,
                                    size_t nbounds, const double *bounds);
/** @} */

/** @name Callback families
 * Families whose single, label-less value is fn(arg), called during every
 * hale_metrics_render with the registry mutex held: fn must be quick and
 * must not call into this registry. Return NaN for "unknown". arg is
 * borrowed and must outlive reg. Thread-safe.
 * @{ */
/** A gauge sampled from fn. */
void hale_metrics_gauge_fn(hale_metrics *reg, const char *name, const char *help,
                           double (*fn)(void *), void *arg);
/** A counter sampled from fn (fn must never go down). */
void hale_metrics_counter_fn(hale_metrics *reg, const char *name, const char *help,
                             double (*fn)(void *), void *arg);
/** @} */

/** @name Children
 * The child for label_values (one string per label name, in order; may be
 * NULL for a family without labels), created on first use. The pointer is
 * owned by the registry and valid until hale_metrics_free. Thread-safe;
 * lock-free when the child already exists. Aborts if the family is not of
 * the matching kind.
 * @{ */
/** A child of a counter family. */
hale_counter *hale_counter_with(hale_metric *m, const char *const *label_values);
/** A child of a gauge family. */
hale_gauge *hale_gauge_with(hale_metric *m, const char *const *label_values);
/** A child of a histogram family. */
hale_histogram *hale_histogram_with(hale_metric *m, const char *const *label_values);
/** @} */

/* Updates: thread-safe, lock-free, no allocation. */
/** Adds n to a counter (thread-safe, lock-free, no allocation). */
void hale_counter_add(hale_counter *c, uint64_t n);
/** Adds 1 to a counter. */
static inline void hale_counter_inc(hale_counter *c) { hale_counter_add(c, 1); }
/** A counter's value now. */
uint64_t hale_counter_value(const hale_counter *c);

/* A gauge holds a double; the _int forms are exact up to 2^53. */
/** Sets a gauge (thread-safe, lock-free, no allocation). */
void hale_gauge_set(hale_gauge *g, double v);
/** Adds delta (may be negative) to a gauge. */
void hale_gauge_add(hale_gauge *g, double delta);
/** Sets a gauge to an integer (exact up to 2^53). */
void hale_gauge_set_int(hale_gauge *g, int64_t v);
/** Adds an integer delta to a gauge (exact up to 2^53). */
void hale_gauge_add_int(hale_gauge *g, int64_t delta);
/** Adds 1 to a gauge. */
static inline void hale_gauge_inc(hale_gauge *g) { hale_gauge_add_int(g, 1); }
/** Subtracts 1 from a gauge. */
static inline void hale_gauge_dec(hale_gauge *g) { hale_gauge_add_int(g, -1); }
/** A gauge's value now. */
double hale_gauge_value(const hale_gauge *g);

/** Count v into the first bucket whose bound is >= v (or +Inf) and add it
 * to the sum. NaN is ignored (it would poison _sum forever). */
void hale_histogram_observe(hale_histogram *h, double v);

/** Append the whole registry in text format 0.0.4 to out (grown as needed;
 * caller owns out). Thread-safe; takes the registry mutex for the walk. */
void hale_metrics_render(hale_metrics *reg, hale_buf *out);

/* --- metrics_process.c --- */

/** The standard process collector, with the names, types and meanings of
 * the Prometheus Go and Python clients: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds. Linux
 * only (/proc/self/stat, /proc/self/fd, /proc/stat, getrlimit). A value
 * that cannot be read renders as NaN (start time: the metric is left out).
 * Call once per registry. */
void hale_metrics_register_process(hale_metrics *reg);

/** hale_build_info{version,revision,compiler} 1. Strings are copied. */
void hale_metrics_register_build_info(hale_metrics *reg, const char *version,
                                      const char *revision, const char *compiler);

/** hale_log_lines_truncated_total and hale_log_lines_dropped_total, from
 * hale_log_counters(). */
void hale_metrics_register_log(hale_metrics *reg);

#pragma GCC visibility pop

#endif
