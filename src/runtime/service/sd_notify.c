/* sd_notify: see systemd.h. One datagram socket per process, unconnected:
 * each message is a sendto() to the address parsed once at creation, so
 * the timer thread (checks), the watchdog and the main thread may all send. */
#include "systemd.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct hale_sdnotify {
    int fd;
    struct sockaddr_un addr;
    socklen_t addrlen;
    uint64_t watchdog_usec;
    bool (*live)(void *);
    void *live_arg;
    pthread_t thread;
    bool thread_running, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static const char *env_get(char *const *envp, const char *name) {
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

/* A decimal number with nothing around it; false when it is not one. */
static bool parse_u64(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

hale_sdnotify *hale_sdnotify_new(char *const *envp, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    const char *path = env_get(envp, "NOTIFY_SOCKET");
    if (!path || !*path) return NULL;
    size_t len = strlen(path);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof a.sun_path || len < 2) {
        hale_err(err, errlen, "NOTIFY_SOCKET=\"%s\": expected an AF_UNIX path (/...) or an "
                 "abstract address (@...) of at most %zu bytes", path, sizeof a.sun_path - 1);
        return NULL;
    }
    memcpy(a.sun_path, path, len);
    if (path[0] == '@') a.sun_path[0] = '\0'; /* abstract: no terminating NUL counted */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        hale_err(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
        return NULL;
    }
    hale_sdnotify *n = xcalloc(1, sizeof *n);
    n->fd = fd;
    n->addr = a;
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    uint64_t usec = 0, pid = 0;
    const char *wpid = env_get(envp, "WATCHDOG_PID");
    if (parse_u64(env_get(envp, "WATCHDOG_USEC"), &usec) &&
        (!wpid || (parse_u64(wpid, &pid) && pid == (uint64_t)getpid())))
        n->watchdog_usec = usec;
    pthread_mutex_init(&n->mu, NULL);
    if (hale_cond_init_monotonic(&n->cv) != 0) hale_panic("sd_notify: no monotonic condition variable");
    return n;
}

int hale_sdnotify_send(hale_sdnotify *n, const char *msg) {
    if (!n) return 0;
    ssize_t r;
    do r = sendto(n->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
                  (const struct sockaddr *)&n->addr, n->addrlen);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

uint64_t hale_sdnotify_watchdog_usec(const hale_sdnotify *n) { return n ? n->watchdog_usec : 0; }

/* Its own thread, not a task of the runtime's timer: see systemd.h. */
static void *watchdog_main(void *arg) {
    hale_sdnotify *n = arg;
    hale_thread_name("hale-watchdog");
    uint64_t half_ns = n->watchdog_usec * 500u; /* usec / 2, in ns */
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        pthread_mutex_unlock(&n->mu);
        /* asked outside the lock: live() reads the workers' busy slots */
        if (n->live(n->live_arg)) hale_sdnotify_send(n, "WATCHDOG=1");
        uint64_t now = hale_now_ns();
        uint64_t next = half_ns > UINT64_MAX - now ? UINT64_MAX : now + half_ns;
        pthread_mutex_lock(&n->mu);
        while (!n->stop && !hale_cond_wait_until(&n->cv, &n->mu, next)) {}
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int hale_sdnotify_watchdog_start(hale_sdnotify *n, bool (*live)(void *arg), void *arg) {
    if (!n || !n->watchdog_usec) return 0;
    if (n->thread_running || !live) return -1;
    /* an interval below 2 us would spin; systemd's own minimum is far above */
    if (n->watchdog_usec < 2) n->watchdog_usec = 2;
    if (n->watchdog_usec > UINT64_MAX / 1000u) n->watchdog_usec = UINT64_MAX / 1000u;
    n->live = live;
    n->live_arg = arg;
    n->stop = false;
    if (pthread_create(&n->thread, NULL, watchdog_main, n) != 0) return -1;
    n->thread_running = true;
    return 0;
}

void hale_sdnotify_watchdog_stop(hale_sdnotify *n) {
    if (!n || !n->thread_running) return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    n->thread_running = false;
}

void hale_sdnotify_free(hale_sdnotify *n) {
    if (!n) return;
    hale_sdnotify_watchdog_stop(n);
    close(n->fd);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}
