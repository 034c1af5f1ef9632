/* lifecycle: see lifecycle.h. */
#include "lifecycle.h"
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static atomic_int shutdown_flag;
static atomic_int signal_count;
static int first_signo;         /* the signal that requested shutdown */
static uint64_t first_ns;       /* when it came (CLOCK_MONOTONIC) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static hale_lifecycle_hooks hooks;
static sigset_t handled;

static void *signal_main(void *arg) {
    (void)arg;
    hale_thread_name("hale-signals");
    for (;;) {
        int signo = 0;
        if (sigwait(&handled, &signo) != 0) continue;
        if (signo == SIGHUP) continue; /* reserved for reloads */
        uint64_t now = hale_now_ns();
        pthread_mutex_lock(&mu);
        hale_lifecycle_hooks h = hooks;
        pthread_mutex_unlock(&mu);
        /* the same kind again within the window is the same request (a
         * supervisor's SIGTERM to the process group plus make's forwarded
         * one): only the signal thread touches first_signo/first_ns */
        if (atomic_load(&signal_count) >= 1 && signo == first_signo &&
            now - first_ns < (uint64_t)HALE_SIGNAL_REPEAT_WINDOW_MS * 1000000u) {
            if (h.on_repeat) h.on_repeat(signo, h.arg);
            continue;
        }
        int n = atomic_fetch_add(&signal_count, 1) + 1;
        if (n == 1) {
            first_signo = signo;
            first_ns = now;
        }
        if (h.on_signal) h.on_signal(signo, n, h.arg);
        if (n >= 2) _exit(HALE_EXIT_FORCED);
        hale_request_shutdown();
    }
    return NULL;
}

int hale_lifecycle_init(const hale_lifecycle_hooks *h) {
    signal(SIGPIPE, SIG_IGN);
    if (h) hooks = *h;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &handled, NULL) != 0) return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, signal_main, NULL) != 0) return -1;
    pthread_detach(t);
    return 0;
}

bool hale_shutdown_requested(void) { return atomic_load(&shutdown_flag) != 0; }

void hale_request_shutdown(void) {
    pthread_mutex_lock(&mu);
    atomic_store(&shutdown_flag, 1);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

bool hale_wait_shutdown(uint64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&mu);
    while (!atomic_load(&shutdown_flag)) {
        if (pthread_cond_timedwait(&cv, &mu, &ts) != 0) break;
    }
    pthread_mutex_unlock(&mu);
    return hale_shutdown_requested();
}

uint64_t hale_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms) {
    uint64_t cap = base_ms;
    for (unsigned i = 0; i < attempt && cap < max_ms; i++) cap *= 2;
    if (cap > max_ms) cap = max_ms;
    uint64_t lo = base_ms / 2;
    if (cap <= lo) return cap;
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)hale_now_ns();
    return lo + r % (cap - lo + 1);
}
