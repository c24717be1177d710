/*
 * notify.c: the supervisor of a sandbox's connects, for a profile's
 * unix_sockets allow list (design note 43).  The sandbox's first program
 * (enter.c) hands its connect calls over with a seccomp user-notification
 * filter and sends the listener back on a socketpair; proc.c's
 * communicate loop polls it and calls here.
 *
 * No call is ever let through (SECCOMP_USER_NOTIF_FLAG_CONTINUE): the
 * kernel would look the descriptor and the address up again, after the
 * check, and the sandbox can change both meanwhile.  Every connect is made
 * here instead, on the sandbox's own socket (pidfd_getfd of the calling
 * thread: the same open socket, so its network namespace), with the
 * address read once: an AF_UNIX one only to an allowed path, reached
 * without following a symlink; any other family as asked (the profile
 * isolates the network, so these stay inside the sandbox's loopback).
 * Datagram AF_UNIX sockets are refused by the default filter, so no send
 * can carry an address of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <linux/seccomp.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9: a pidfd of the thread itself */
#endif

#include "shannot.h"

/* The listener, once the sandbox's first program has sent it. */
static void receive_listener(struct sh_notify *n)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    ssize_t got = recvmsg(n->channel, &msg, MSG_CMSG_CLOEXEC);
    struct cmsghdr *c = got == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (c != NULL && c->cmsg_level == SOL_SOCKET &&
        c->cmsg_type == SCM_RIGHTS) {
        memcpy(&n->listener, CMSG_DATA(c), sizeof(int));
    }
    if (got <= 1) { /* the fd, or the sandbox went away: nothing more comes */
        close(n->channel);
        n->channel = -1;
    }
}

static int allowed(const struct sh_notify *n, const char *path)
{
    for (int i = 0; i < n->nallow; i++) {
        if (strcmp(n->allow[i], path) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The address the sandbox passed, read once into addr: its length, or -1. */
static ssize_t read_address(const struct seccomp_notif *req,
                            struct sockaddr_storage *addr)
{
    size_t len = (size_t)req->data.args[2];
    if (len < sizeof(sa_family_t) || len > sizeof *addr) {
        return -1;
    }
    memset(addr, 0, sizeof *addr);
    struct iovec local = {addr, len};
    struct iovec remote = {(void *)(uintptr_t)req->data.args[1], len};
    if (process_vm_readv((pid_t)req->pid, &local, 1, &remote, 1, 0) !=
        (ssize_t)len) {
        return -1;
    }
    return (ssize_t)len;
}

/* connect(sock, path) for an allowed path: reached without following a
 * symlink (a writable directory on the way cannot redirect it), and only
 * to a socket.  0 or -errno. */
static int connect_path(int sock, const char *path)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd < 0) {
        return errno == ELOOP ? -EACCES : -errno;
    }
    struct stat st;
    int rc = -EACCES;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
        struct sockaddr_un via = {.sun_family = AF_UNIX};
        snprintf(via.sun_path, sizeof via.sun_path, "/proc/self/fd/%d", fd);
        rc =
            connect(sock, (struct sockaddr *)&via, sizeof via) < 0 ? -errno : 0;
    }
    close(fd);
    return rc;
}

/* connect(sock, addr, len) on the sandbox's behalf: 0 or -errno. */
static int connect_for(const struct sh_notify *n,
                       const struct seccomp_notif *req, int sock)
{
    int domain = -1;
    socklen_t dl = sizeof domain;
    struct sockaddr_storage addr;
    ssize_t len = read_address(req, &addr);
    if (len < 0 || getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0) {
        return -EACCES;
    }
    /* the request must still be live: its pid not a reused one */
    if (ioctl(n->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
        return -EACCES;
    }
    if (domain != AF_UNIX) {
        /* The socket's family cannot change, and its namespace is the
         * sandbox's: the connect is what the sandbox asked for. */
        return connect(sock, (struct sockaddr *)&addr, (socklen_t)len) < 0
                   ? -errno
                   : 0;
    }
    struct sockaddr_un *un = (struct sockaddr_un *)&addr;
    size_t plen = (size_t)len - offsetof(struct sockaddr_un, sun_path);
    if ((size_t)len <= offsetof(struct sockaddr_un, sun_path) ||
        un->sun_family != AF_UNIX || un->sun_path[0] != '/' ||
        memchr(un->sun_path, '\0', plen) == NULL || !allowed(n, un->sun_path)) {
        return -EACCES;
    }
    return connect_path(sock, un->sun_path);
}

/* One request: its answer in resp, never "go on". */
static void judge(const struct sh_notify *n, const struct seccomp_notif *req,
                  struct seccomp_notif_resp *resp)
{
    /* The calling thread's own descriptor table: a thread may have one of
     * its own (clone without CLONE_FILES).  A kernel without PIDFD_THREAD
     * (before 6.9) fails here for threads, and the connect is refused. */
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)req->pid, PIDFD_THREAD);
    int sock = pidfd < 0 ? -1
                         : (int)syscall(SYS_pidfd_getfd, pidfd,
                                        (int)req->data.args[0], 0);
    if (req->data.nr != SYS_connect) {
        resp->error = -EACCES;
    } else if (sock < 0) {
        resp->error = pidfd >= 0 && errno == EBADF ? -EBADF : -EACCES;
    } else {
        resp->error = connect_for(n, req, sock);
    }
    if (sock >= 0) {
        close(sock);
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
}

static void answer_one(struct sh_notify *n)
{
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    memset(&req, 0, sizeof req);
    if (ioctl(n->listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
        if (errno != EINTR && errno != ENOENT) { /* the sandbox is gone */
            close(n->listener);
            n->listener = -1;
        }
        return;
    }
    memset(&resp, 0, sizeof resp);
    resp.id = req.id;
    judge(n, &req, &resp);
    ioctl(n->listener, SECCOMP_IOCTL_NOTIF_SEND,
          &resp); /* ENOENT: it died meanwhile */
}

int sh_notify_pollfds(const struct sh_notify *n, struct pollfd *fds)
{
    fds[0].fd = n->channel;
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    fds[1].fd = n->listener;
    fds[1].events = POLLIN;
    fds[1].revents = 0;
    return 2;
}

void sh_notify_step(struct sh_notify *n, const struct pollfd *fds)
{
    if (n->channel >= 0 && fds[0].revents) {
        receive_listener(n);
    }
    if (n->listener >= 0 && (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
        close(n->listener);
        n->listener = -1;
    } else if (n->listener >= 0 && fds[1].revents) {
        answer_one(n);
    }
}

void sh_notify_close(struct sh_notify *n)
{
    if (n->channel >= 0) {
        close(n->channel);
    }
    if (n->listener >= 0) {
        close(n->listener);
    }
    n->channel = n->listener = -1;
}
