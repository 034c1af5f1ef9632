/* metrics_process: the standard process_* collector, hale_build_info and
 * the logger's own counters. See metrics.h.
 *
 * Names, types and meanings follow the Prometheus Go client (procfs) and
 * Python client on Linux: CPU is utime+stime from /proc/self/stat in clock
 * ticks over sysconf(_SC_CLK_TCK); memory is vsize and rss*page size from
 * the same line; open fds counts the entries of /proc/self/fd (like both
 * clients this includes the descriptor used to list it); max fds is the
 * soft RLIMIT_NOFILE; start time is btime from /proc/stat plus the
 * process's starttime ticks. */
#include "log.h"
#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Fields of /proc/self/stat, counted from 1 as in proc(5). */
enum { STAT_UTIME = 14, STAT_STIME = 15, STAT_STARTTIME = 22, STAT_VSIZE = 23, STAT_RSS = 24 };

/* Read the numeric fields 3..24 of /proc/self/stat into f[3..24].
 * Returns 0, or -1 when the file cannot be read or parsed. */
static int read_stat(unsigned long long f[25]) {
    char buf[1024];
    FILE *fp = fopen("/proc/self/stat", "re");
    if (!fp) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* Field 2 is the command in parentheses and may itself hold spaces and
     * parentheses, so parse from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    for (int i = 3; i <= STAT_RSS; i++) {
        while (*p == ' ') p++;
        if (!*p) return -1;
        if (i == 3) { /* state: a letter */
            while (*p && *p != ' ') p++;
            f[i] = 0;
            continue;
        }
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) return -1;
        f[i] = (unsigned long long)v;
        p = end;
    }
    return 0;
}

static double cpu_seconds(void *arg) {
    (void)arg;
    unsigned long long f[25];
    if (read_stat(f) < 0) return NAN;
    return (double)(f[STAT_UTIME] + f[STAT_STIME]) / (double)sysconf(_SC_CLK_TCK);
}

static double virtual_bytes(void *arg) {
    (void)arg;
    unsigned long long f[25];
    if (read_stat(f) < 0) return NAN;
    return (double)f[STAT_VSIZE];
}

static double resident_bytes(void *arg) {
    (void)arg;
    unsigned long long f[25];
    if (read_stat(f) < 0) return NAN;
    return (double)f[STAT_RSS] * (double)sysconf(_SC_PAGESIZE);
}

static double open_fds(void *arg) {
    (void)arg;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return NAN;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static double max_fds(void *arg) {
    (void)arg;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return NAN;
    return (double)rl.rlim_cur;
}

/* Seconds since the epoch when this process started, or NAN. */
static double start_time(void) {
    unsigned long long f[25];
    if (read_stat(f) < 0) return NAN;
    FILE *fp = fopen("/proc/stat", "re");
    if (!fp) return NAN;
    char line[256];
    double btime = NAN;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "btime ", 6) == 0) {
            char *end;
            unsigned long long v = strtoull(line + 6, &end, 10);
            if (end != line + 6) btime = (double)v;
            break;
        }
    }
    fclose(fp);
    return btime + (double)f[STAT_STARTTIME] / (double)sysconf(_SC_CLK_TCK);
}

void hale_metrics_register_process(hale_metrics *reg) {
    hale_metrics_counter_fn(reg, "process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.", cpu_seconds, NULL);
    hale_metrics_gauge_fn(reg, "process_open_fds", "Number of open file descriptors.",
                          open_fds, NULL);
    hale_metrics_gauge_fn(reg, "process_max_fds", "Maximum number of open file descriptors.",
                          max_fds, NULL);
    hale_metrics_gauge_fn(reg, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                          virtual_bytes, NULL);
    hale_metrics_gauge_fn(reg, "process_resident_memory_bytes", "Resident memory size in bytes.",
                          resident_bytes, NULL);
    /* Constant for the life of the process: computed once. */
    double st = start_time();
    if (!isnan(st)) {
        hale_metric *m = hale_metrics_gauge(reg, "process_start_time_seconds",
                                            "Start time of the process since unix epoch in seconds.",
                                            0, NULL);
        hale_gauge_set(hale_gauge_with(m, NULL), st);
    }
}

void hale_metrics_register_build_info(hale_metrics *reg, const char *version,
                                      const char *revision, const char *compiler) {
    static const char *const names[] = {"version", "revision", "compiler"};
    hale_metric *m = hale_metrics_gauge(
        reg, "hale_build_info",
        "A metric with a constant '1' value labeled by version, revision and compiler "
        "from which hale was built.",
        3, names);
    const char *values[] = {version ? version : "", revision ? revision : "",
                            compiler ? compiler : ""};
    hale_gauge_set(hale_gauge_with(m, values), 1);
}

static double log_truncated(void *arg) {
    (void)arg;
    uint64_t t;
    hale_log_counters(&t, NULL);
    return (double)t;
}

static double log_dropped(void *arg) {
    (void)arg;
    uint64_t d;
    hale_log_counters(NULL, &d);
    return (double)d;
}

void hale_metrics_register_log(hale_metrics *reg) {
    hale_metrics_counter_fn(reg, "hale_log_lines_truncated_total",
                            "Log lines cut to the maximum line length.", log_truncated, NULL);
    hale_metrics_counter_fn(reg, "hale_log_lines_dropped_total",
                            "Log lines lost because writing them failed.", log_dropped, NULL);
}
