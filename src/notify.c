/*
 * notify.c: the supervisor of a sandbox's socket calls, for a profile's
 * unix_sockets allow list (design note 43).  The sandbox's first program
 * (enter.c) hands its connect, sendto, sendmsg and sendmmsg over with a
 * seccomp user-notification filter and sends the listener back on a
 * socketpair; proc.c's communicate loop polls it and calls here.
 *
 * Each call is answered without trusting the sandbox's memory twice: a
 * call on a socket that is not AF_UNIX goes on (the socket's family cannot
 * change; its address is the network namespace's business); a connect to
 * an allowed absolute path is made here, on the sandbox's own socket
 * (pidfd_getfd: the same open socket), with the address read once; any
 * other AF_UNIX connect, a sendto with an address, and sendmsg/sendmmsg on
 * a datagram socket are refused (EACCES).  Nothing is let through with an
 * address read from memory the sandbox could change after the check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/seccomp.h>

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
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t got = recvmsg(n->channel, &msg, MSG_CMSG_CLOEXEC);
    struct cmsghdr *c = got == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
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

/* connect(sock, addr, len) on the sandbox's behalf: 0 or -errno. */
static int connect_for(const struct sh_notify *n, const struct seccomp_notif *req, int sock)
{
    struct sockaddr_un addr;
    size_t len = (size_t)req->data.args[2];
    if (len <= offsetof(struct sockaddr_un, sun_path) || len > sizeof addr) {
        return -EACCES;
    }
    memset(&addr, 0, sizeof addr);
    struct iovec local = {&addr, len};
    struct iovec remote = {(void *)(uintptr_t)req->data.args[1], len};
    if (process_vm_readv((pid_t)req->pid, &local, 1, &remote, 1, 0) != (ssize_t)len) {
        return -EACCES;
    }
    /* the request must still be live: its pid not a reused one */
    if (ioctl(n->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
        return -EACCES;
    }
    size_t plen = len - offsetof(struct sockaddr_un, sun_path);
    if (addr.sun_family != AF_UNIX || addr.sun_path[0] != '/' ||
        memchr(addr.sun_path, '\0', plen) == NULL || !allowed(n, addr.sun_path)) {
        return -EACCES;
    }
    return connect(sock, (struct sockaddr *)&addr, (socklen_t)len) < 0 ? -errno : 0;
}

/* One request: its answer in resp. */
static void judge(const struct sh_notify *n, const struct seccomp_notif *req,
                  struct seccomp_notif_resp *resp)
{
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)req->pid, 0);
    int sock = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, (int)req->data.args[0], 0);
    int domain = -1, type = -1;
    socklen_t l = sizeof domain;
    if (sock >= 0) {
        getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &l);
        l = sizeof type;
        getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &l);
    }
    int nr = req->data.nr;
    if (sock < 0 || domain != AF_UNIX ||
        (nr == SYS_sendto && req->data.args[4] == 0) ||
        ((nr == SYS_sendmsg || nr == SYS_sendmmsg) && type != SOCK_DGRAM)) {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE; /* nothing it could redirect */
    } else if (nr == SYS_connect) {
        resp->error = connect_for(n, req, sock);
    } else {
        resp->error = -EACCES;
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
    ioctl(n->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp); /* ENOENT: it died meanwhile */
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
