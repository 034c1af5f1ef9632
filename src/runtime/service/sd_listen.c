/* sd_listen: see systemd.h. */
#include "systemd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 2 /* the API and the admin listener */

static const char *env_get(char *const *envp, const char *name) {
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

static bool parse_uint(const char *s, unsigned long *out) {
    if (!s || *s < '0' || *s > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* The i-th colon-separated name of LISTEN_FDNAMES into out ("" if absent). */
static void fd_name(const char *names, unsigned i, char *out, size_t n) {
    out[0] = '\0';
    for (const char *p = names; p; i--) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i == 0) {
            if (len >= n) len = n - 1;
            memcpy(out, p, len);
            out[len] = '\0';
            return;
        }
        p = end ? end + 1 : NULL;
    }
}

static int check_listening(int fd, const char *name, char *err, size_t errlen) {
    int type = 0, acc = 0;
    socklen_t l1 = sizeof type, l2 = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) != 0)
        return hale_err(err, errlen, "inherited fd %d (\"%s\") is not a socket: %s", fd, name,
                        strerror(errno));
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) != 0 || !acc)
        return hale_err(err, errlen, "inherited fd %d (\"%s\") is not a listening stream socket "
                        "(ListenStream= in the .socket unit, Accept=no)", fd, name);
    return 0;
}

int hale_sd_listen(char *const *envp, hale_sd_listeners *out, char *err, size_t errlen) {
    out->api_fd = out->admin_fd = -1;
    out->count = 0;
    const char *spid = env_get(envp, "LISTEN_PID"), *sfds = env_get(envp, "LISTEN_FDS");
    unsigned long pid = 0, nfds = 0;
    if (!spid) return 0;
    if (!parse_uint(spid, &pid))
        return hale_err(err, errlen, "LISTEN_PID=\"%s\" is not a process id", spid);
    if (pid != (unsigned long)getpid()) return 0; /* meant for another process */
    if (!parse_uint(sfds, &nfds))
        return hale_err(err, errlen, "LISTEN_FDS=\"%s\" is not a number of fds", sfds ? sfds : "");
    if (nfds == 0) return 0;
    if (nfds > MAX_FDS)
        return hale_err(err, errlen, "LISTEN_FDS=%lu: hale takes at most %d sockets (one named "
                        "\"api\", one named \"admin\")", nfds, MAX_FDS);
    const char *names = env_get(envp, "LISTEN_FDNAMES");
    int other[MAX_FDS];
    unsigned nother = 0;
    for (unsigned i = 0; i < nfds; i++) {
        int fd = HALE_SD_LISTEN_FDS_START + (int)i;
        char name[64];
        fd_name(names, i, name, sizeof name);
        if (check_listening(fd, name, err, errlen) != 0) return -1;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
            return hale_err(err, errlen, "inherited fd %d: %s", fd, strerror(errno));
        int *slot = !strcmp(name, "api") ? &out->api_fd : !strcmp(name, "admin") ? &out->admin_fd : NULL;
        if (!slot) {
            other[nother++] = fd;
        } else if (*slot >= 0) {
            return hale_err(err, errlen, "LISTEN_FDNAMES=\"%s\": two sockets are named \"%s\"",
                            names, name);
        } else {
            *slot = fd;
        }
    }
    for (unsigned i = 0; i < nother; i++) {
        if (out->api_fd < 0) out->api_fd = other[i];
        else out->admin_fd = other[i]; /* both open: MAX_FDS leaves no third */
    }
    out->count = (unsigned)nfds;
    return 0;
}
