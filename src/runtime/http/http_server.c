/* http_server: the listening socket, the worker threads and their epoll
 * loops, the server's control functions (drain, quiesce, stop), the
 * hand-off of requests to other threads (suspend/resume), and per-address
 * connection counts. Connections themselves live in http_conn.c.
 *
 * One listening socket (bound without SO_REUSEPORT, so a second process on
 * the port fails; or inherited) sits in every worker's epoll set with
 * EPOLLEXCLUSIVE: one worker wakes per connection. Each worker's eventfd
 * wakes it for a resumed request, an adopted socket, drain, quiesce, stop. */
#define _GNU_SOURCE 1 /* accept4 */ // NOLINT(bugprone-reserved-identifier)
#include "http_internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define SWEEP_MS 200          /* deadline granularity */
#define ACCEPT_BATCH 4        /* connections taken per wake-up: the others go to
                                 other workers, so a busy one does not hoard them */
#define MAX_EVENTS 64

static char listen_tag, wake_tag; /* epoll data.ptr markers */

static void wake(hale_http_worker *w) {
    uint64_t one = 1;
    ssize_t n;
    do n = write(w->evfd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

static void wake_all(hale_http_server *s) {
    for (unsigned i = 0; i < s->nworkers; i++) wake(&s->workers[i]);
}

/* ---- per-address counts ---- */

static unsigned ip_hash(const unsigned char *a) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) h = (h ^ a[i]) * 16777619u;
    return h % HALE_HTTP_IP_BUCKETS;
}

/* Counts one more connection from addr; NULL when over the limit. */
static hale_ip_node *ip_acquire(hale_http_server *s, const unsigned char *addr) {
    pthread_mutex_lock(&s->ip_mu);
    hale_ip_node **b = &s->ip_buckets[ip_hash(addr)], *n = *b;
    while (n && memcmp(n->addr, addr, 16) != 0) n = n->next;
    if (!n) {
        n = xcalloc(1, sizeof *n);
        memcpy(n->addr, addr, 16);
        n->next = *b;
        *b = n;
    }
    if (n->count >= s->o.max_connections_per_ip) n = NULL;
    else n->count++;
    pthread_mutex_unlock(&s->ip_mu);
    return n;
}

void hale_http_ip_release(hale_http_server *s, hale_ip_node *ip) {
    pthread_mutex_lock(&s->ip_mu);
    if (--ip->count == 0) {
        hale_ip_node **p = &s->ip_buckets[ip_hash(ip->addr)];
        while (*p != ip) p = &(*p)->next;
        *p = ip->next;
        free(ip);
    }
    pthread_mutex_unlock(&s->ip_mu);
}

/* ---- accepting ---- */

static void open_conn(hale_http_worker *w, int fd, const struct sockaddr_storage *sa) {
    hale_http_server *s = w->srv;
    char remote[64] = "";
    unsigned char key[16] = {0};
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, remote, sizeof remote);
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, remote, sizeof remote);
        memcpy(key, &in6->sin6_addr, 16);
    }
    if (atomic_fetch_add_explicit(&s->nconns, 1, memory_order_relaxed) >= s->o.max_connections) {
        atomic_fetch_sub_explicit(&s->nconns, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    hale_ip_node *ip = NULL;
    if (s->ip_buckets && !(ip = ip_acquire(s, key))) {
        atomic_fetch_sub_explicit(&s->nconns, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    hale_conn_open(w, fd, remote, ip);
}

/* Puts the listening socket in (on) or out of this worker's epoll set. */
static void listen_on(hale_http_worker *w, int on) {
    struct epoll_event le = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_tag};
    if (on && !w->listening) w->listening = epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->srv->lfd, &le) == 0;
    else if (!on && w->listening && epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->srv->lfd, NULL) == 0) w->listening = 0;
}

/* Accepting is wanted: not held (opts.accept_later), quiesced, or paused. */
static int may_accept(const hale_http_worker *w) {
    hale_http_server *s = w->srv;
    return !atomic_load(&s->accept_held) && !atomic_load(&s->quiesced) && !w->accept_paused_ns;
}

static void accept_some(hale_http_worker *w) {
    hale_http_server *s = w->srv;
    /* quiesced: not one more (an inherited socket is not shut, so accept
     * would still succeed, taking a connection the next process should get) */
    if (!may_accept(w)) return listen_on(w, 0);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        memset(&sa, 0, sizeof sa);
        socklen_t len = sizeof sa;
        int fd = accept4(s->lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            /* EAGAIN: another worker took it; EINVAL: quiesced; out of
             * descriptors: the listener (level-triggered) would wake us
             * again at once, so it leaves the epoll set for a moment and
             * the backlog waits */
            if ((errno == EINVAL || errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                 errno == ENOMEM) && w->listening) {
                if (errno != EINVAL) w->accept_paused_ns = hale_now_ns() + 100000000u;
                listen_on(w, 0);
            }
            return;
        }
        open_conn(w, fd, &sa);
    }
}

/* ---- the loop ---- */

/* Work other threads queued for this worker. */
static void take_wakeups(hale_http_worker *w) {
    hale_http_server *s = w->srv;
    uint64_t v;
    ssize_t n = read(w->evfd, &v, sizeof v);
    (void)n;
    pthread_mutex_lock(&w->mu);
    hale_conn *done = w->done;
    w->done = NULL;
    int *fds = w->adopted;
    size_t nfds = w->nadopted;
    w->adopted = NULL;
    w->nadopted = w->adopted_cap = 0;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < nfds; i++) {
        struct sockaddr_storage sa;
        memset(&sa, 0, sizeof sa);
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        open_conn(w, fds[i], &sa);
    }
    free(fds);
    while (done) {
        hale_conn *c = done;
        done = c->done_next;
        c->done_next = NULL;
        c->req.suspended = 0;
        hale_conn_resumed(c);
        hale_http_unref(s);
    }
    listen_on(w, may_accept(w)); /* quiesced, or accepting released */
    if (!w->drained && hale_http_close_idle_now(s)) {
        w->drained = 1;
        hale_conn_drain_idle(w);
    }
}

static void *worker_main(void *arg) {
    hale_http_worker *w = arg;
    hale_http_server *s = w->srv;
    struct epoll_event evs[MAX_EVENTS];
    hale_thread_name("%s-w%u", s->name, (unsigned)(w - s->workers)); /* "main-w0", "admin-w1" */
    hale_log_batch_begin();
    while (!atomic_load_explicit(&s->stopping, memory_order_acquire)) {
        int timeout = -1;
        if (w->conns || w->accept_paused_ns) {
            uint64_t now = hale_now_ns();
            timeout = w->next_sweep_ns > now ? (int)((w->next_sweep_ns - now) / 1000000u) + 1 : 0;
        }
        hale_log_batch_flush();
        int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) break;
        int woken = 0;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag) accept_some(w);
            else if (p == &wake_tag) woken = 1;
            else hale_conn_event(p, evs[i].events);
        }
        if (woken) take_wakeups(w);
        uint64_t now = hale_now_ns();
        if (w->accept_paused_ns && now >= w->accept_paused_ns) {
            w->accept_paused_ns = 0;
            listen_on(w, may_accept(w));
        }
        if (now >= w->next_sweep_ns) {
            hale_conn_sweep(w, now);
            w->next_sweep_ns = now + (uint64_t)SWEEP_MS * 1000000u;
        }
    }
    /* Stopping: close everything; a request another thread still holds is
     * marked dead and freed by its resume (which sees `stopped`). */
    hale_conn_close_all(w);
    pthread_mutex_lock(&w->mu);
    w->stopped = 1;
    hale_conn *done = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    while (done) {
        hale_conn *c = done;
        done = c->done_next;
        hale_conn_free_dead(c); /* closed above: dead */
        hale_http_unref(s);
    }
    hale_log_batch_end();
    return NULL;
}

int hale_http_close_idle_now(const hale_http_server *s) {
    hale_http_server *m = (hale_http_server *)s;
    return atomic_load_explicit(&m->draining, memory_order_relaxed) &&
           (!s->o.close_idle_at_quiesce || atomic_load_explicit(&m->quiesced, memory_order_relaxed));
}

/* ---- deferred answers ---- */

void hale_req_suspend(hale_req *r) {
    HALE_ASSERT(!r->suspended);
    r->suspended = 1;
    atomic_fetch_add(&r->srv->refs, 1);
}

void hale_req_resume(hale_req *r) {
    hale_conn *c = r->conn;
    hale_http_worker *w = c->w;
    hale_http_server *s = r->srv;
    if (!r->status) hale_resp_error(r, 500, "internal", "the asynchronous handler produced no response");
    pthread_mutex_lock(&w->mu);
    if (w->stopped) {
        pthread_mutex_unlock(&w->mu);
        hale_conn_free_dead_elsewhere(c);
        hale_http_unref(s);
        return;
    }
    /* Once queued, the worker may answer and drop the request's reference
     * at any moment: hold one of our own until the wake-up is written. */
    atomic_fetch_add(&s->refs, 1);
    c->done_next = w->done;
    w->done = c;
    pthread_mutex_unlock(&w->mu);
    wake(w);
    hale_http_unref(s);
}

/* ---- start and stop ---- */

static unsigned cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Binds and listens on host:port; returns the fd, or -1 with err. */
static int bind_listener(const hale_http_server *s, const hale_http_opts *o, char *err, size_t errlen) {
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%u", o->port);
    int gai = getaddrinfo(o->host, portstr, &hints, &ai);
    if (gai != 0)
        return hale_err(err, errlen, "%s listener: bad host \"%s\": %s", s->name, o->host, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    /* SO_REUSEADDR only: a fast restart rebinds past TIME_WAIT, while a
     * second live listener on the port still fails (no SO_REUSEPORT) */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return hale_err(err, errlen, "%s listener: cannot listen on %s:%u: %s", s->name, o->host,
                        o->port, strerror(e));
    }
    freeaddrinfo(ai);
    return fd;
}

static int open_listener(hale_http_server *s, const hale_http_opts *o, char *err, size_t errlen) {
    int fd = o->listen_fd;
    if (fd > 0) {
        /* inherited: the parent bound it. O_NONBLOCK is on the shared file
         * description (accept4 has no per-call flag); the parent only holds it */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
            return hale_err(err, errlen, "%s listener: inherited fd %d: %s", s->name, fd, strerror(errno));
        s->inherited = 1;
    } else if ((fd = bind_listener(s, o, err, errlen)) < 0) {
        return -1;
    }
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    s->port = sa.ss_family == AF_INET6  ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
              : sa.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&sa)->sin_port)
                                        : 0; /* an inherited AF_UNIX socket */
    s->lfd = fd;
    return 0;
}

static void server_free(hale_http_server *s) {
    for (unsigned i = 0; i < s->nworkers; i++) {
        hale_http_worker *w = &s->workers[i];
        if (w->epfd >= 0) close(w->epfd);
        if (w->evfd >= 0) close(w->evfd);
        for (size_t k = 0; k < w->nadopted; k++) close(w->adopted[k]);
        free(w->adopted);
        pthread_mutex_destroy(&w->mu);
    }
    if (s->ip_buckets) {
        for (unsigned i = 0; i < HALE_HTTP_IP_BUCKETS; i++) {
            hale_ip_node *n = s->ip_buckets[i];
            while (n) { hale_ip_node *x = n->next; free(n); n = x; }
        }
        free(s->ip_buckets);
    }
    pthread_mutex_destroy(&s->ip_mu);
    if (s->lfd >= 0) close(s->lfd);
    free(s->workers);
    free(s);
}

void hale_http_unref(hale_http_server *s) {
    if (atomic_fetch_sub(&s->refs, 1) == 1) server_free(s);
}

hale_http_server *hale_http_start(const hale_http_opts *o, const hale_router *router,
                                  const hale_http_hooks *hooks, char *err, size_t errlen) {
    /* no limit of its own: every one comes from the settings table
     * (hale_service_opts_get), so a forgotten field is refused here */
    const char *zero = !o->max_connections ? "max_connections" : !o->max_header_bytes ? "max_header_bytes"
                     : !o->max_headers ? "max_headers" : !o->max_uri_bytes ? "max_uri_bytes"
                     : !o->max_body_bytes ? "max_body_bytes" : !o->header_timeout_ms ? "header_timeout_ms"
                     : !o->idle_timeout_ms ? "idle_timeout_ms" : !o->body_timeout_ms ? "body_timeout_ms"
                                           : NULL;
    if (zero) {
        snprintf(err, errlen, "listener %s: opts.%s is 0 (start from hale_service_opts_get)",
                 o->name ? o->name : "main", zero);
        return NULL;
    }
    hale_http_server *s = xcalloc(1, sizeof *s);
    s->o = *o;
    s->router = router;
    s->lfd = -1;
    if (hooks) s->hooks = *hooks;
    snprintf(s->name, sizeof s->name, "%s", o->name ? o->name : "main");
    s->o.name = s->name;
    s->limits.max_head_bytes = s->o.max_header_bytes;
    s->limits.max_target_bytes = s->o.max_uri_bytes;
    s->limits.max_fields = s->o.max_headers;
    /* the head always fits with room left for body bytes or a pipelined
     * request, so the parser (not a full buffer) decides every 431 */
    s->buf_size = s->o.max_header_bytes + 4096;
    atomic_init(&s->refs, 1);
    atomic_init(&s->accept_held, o->accept_later);
    pthread_mutex_init(&s->ip_mu, NULL);
    if (s->o.max_connections_per_ip)
        s->ip_buckets = xcalloc(HALE_HTTP_IP_BUCKETS, sizeof(hale_ip_node *));
    s->nworkers = o->workers ? o->workers : cpu_count();
    s->workers = xcalloc(s->nworkers, sizeof *s->workers);
    for (unsigned i = 0; i < s->nworkers; i++) {
        s->workers[i].epfd = s->workers[i].evfd = -1;
        pthread_mutex_init(&s->workers[i].mu, NULL);
    }
    if (open_listener(s, o, err, errlen) != 0) goto fail;
    for (unsigned i = 0; i < s->nworkers; i++) {
        hale_http_worker *w = &s->workers[i];
        w->srv = s;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event we = {.events = EPOLLIN, .data.ptr = &wake_tag};
        if (w->epfd >= 0 && !o->accept_later) listen_on(w, 1);
        if (w->epfd < 0 || w->evfd < 0 || (!o->accept_later && !w->listening) ||
            epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &we) != 0) {
            hale_err(err, errlen, "%s listener: cannot set up epoll: %s", s->name, strerror(errno));
            goto fail;
        }
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            hale_err(err, errlen, "%s listener: cannot start worker threads", s->name);
            atomic_store(&s->stopping, 1);
            wake_all(s);
            for (unsigned k = 0; k < i; k++) pthread_join(s->workers[k].thread, NULL);
            goto fail;
        }
    }
    return s;
fail:
    server_free(s);
    return NULL;
}

unsigned hale_http_port(const hale_http_server *s) { return s->port; }

unsigned hale_http_workers(const hale_http_server *s) { return s->nworkers; }

int hale_http_adopt_fd(hale_http_server *s, int fd, char *err, size_t errlen) {
    if (atomic_load(&s->stopping)) return hale_err(err, errlen, "the server is stopping");
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return hale_err(err, errlen, "cannot make the socket non-blocking: %s", strerror(errno));
    hale_http_worker *w = &s->workers[atomic_fetch_add(&s->next_worker, 1) % s->nworkers];
    pthread_mutex_lock(&w->mu);
    if (w->nadopted == w->adopted_cap) {
        w->adopted_cap = w->adopted_cap ? w->adopted_cap * 2 : 8;
        w->adopted = xrealloc(w->adopted, w->adopted_cap * sizeof *w->adopted);
    }
    w->adopted[w->nadopted++] = fd;
    pthread_mutex_unlock(&w->mu);
    wake(w);
    return 0;
}

void hale_http_accept_start(hale_http_server *s) { if (atomic_exchange(&s->accept_held, 0)) wake_all(s); }

void hale_http_set_draining(hale_http_server *s) {
    if (atomic_exchange(&s->draining, 1)) return;
    wake_all(s);
}

int hale_http_quiesce(hale_http_server *s) {
    if (atomic_exchange(&s->quiesced, 1)) return -1;
    /* shutdown() moves the listening socket to CLOSE at once: new connects
     * are refused with a reset instead of waiting in the backlog. The
     * workers drop it from their epoll sets; it is closed after stop.
     * Not an inherited one: shutdown() acts on the socket the parent holds
     * too, and would reset the connections queued for the next process. */
    if (!s->inherited) shutdown(s->lfd, SHUT_RDWR);
    wake_all(s);
    return 0;
}

unsigned hale_http_in_flight(const hale_http_server *s) {
    return atomic_load_explicit(&((hale_http_server *)s)->in_flight, memory_order_relaxed);
}

unsigned hale_http_connections(const hale_http_server *s) { return atomic_load(&((hale_http_server *)s)->nconns); }

uint64_t hale_http_oldest_busy_ns(const hale_http_server *s) {
    hale_http_server *m = (hale_http_server *)s;
    uint64_t oldest = 0;
    unsigned n = atomic_load(&m->next_slot);
    if (n > HALE_HTTP_MAX_BUSY_SLOTS) n = HALE_HTTP_MAX_BUSY_SLOTS;
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = atomic_load_explicit(&m->busy[i], memory_order_relaxed);
        if (t && (!oldest || t < oldest)) oldest = t;
    }
    return oldest;
}

void hale_http_stop(hale_http_server *s) {
    if (!s) return;
    atomic_store_explicit(&s->stopping, 1, memory_order_release);
    wake_all(s);
    for (unsigned i = 0; i < s->nworkers; i++) pthread_join(s->workers[i].thread, NULL);
    hale_http_unref(s);
}
