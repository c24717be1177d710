/*
 * sockets.c: a sandboxed program trying to reach a host unix socket the
 * ways an attacker would (security_spec).  One line per try: NAME=ok, or
 * NAME=<errno name> when refused.
 *
 *   sockets conn PATH        connect and write "conn"
 *   sockets tconn PATH       the same from a second thread
 *   sockets swap PATH N      N connects on fd 100 while a thread swaps an
 *                            AF_INET and an AF_UNIX socket in under it
 *   sockets pairsend PATH    a datagram socketpair sending to PATH
 *   sockets dgram PATH       a datagram socket sending to PATH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *path;
static atomic_int stop;

static const char *result(int rc)
{
    if (rc == 0) {
        return "ok";
    }
    switch (errno) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINVAL: return "EINVAL";
    default: return strerror(errno);
    }
}

static struct sockaddr_un address(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    return a;
}

static int connect_and_write(const char *what)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) {
        return -1;
    }
    struct sockaddr_un a = address();
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    if (rc == 0 && write(s, what, strlen(what)) < 0) {
        rc = -1;
    }
    int e = errno;
    close(s);
    errno = e;
    return rc;
}

static void *thread_connect(void *arg)
{
    (void)arg;
    int rc = connect_and_write("tconn\n");
    printf("tconn=%s\n", result(rc));
    return NULL;
}

static void *swapper(void *arg)
{
    (void)arg;
    int inet = socket(AF_INET, SOCK_STREAM, 0);
    while (!atomic_load(&stop)) {
        int unix_sock = socket(AF_UNIX, SOCK_STREAM, 0);
        dup2(inet, 100);
        if (unix_sock >= 0) {
            dup2(unix_sock, 100);
            close(unix_sock);
        }
    }
    close(inet);
    return NULL;
}

static void swap(int rounds)
{
    pthread_t t;
    int connected = 0;
    struct sockaddr_un a = address();
    int inet = socket(AF_INET, SOCK_STREAM, 0);
    dup2(inet, 100);
    pthread_create(&t, NULL, swapper, NULL);
    for (int i = 0; i < rounds; i++) {
        if (connect(100, (struct sockaddr *)&a, sizeof a) == 0) {
            connected++;
            if (write(100, "swap\n", 5) < 0) {
                perror("write");
            }
        }
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("swap=%s\n", connected ? "ok" : "refused");
}

static void send_datagram(const char *name, int s)
{
    if (s < 0) {
        printf("%s=%s\n", name, result(-1));
        return;
    }
    struct sockaddr_un a = address();
    int rc = sendto(s, name, strlen(name), 0, (struct sockaddr *)&a, sizeof a) < 0 ? -1 : 0;
    printf("%s=%s\n", name, result(rc));
    close(s);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: sockets conn|tconn|swap|pairsend|dgram PATH [N]\n", stderr);
        return 2;
    }
    path = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "conn") == 0) {
        printf("conn=%s\n", result(connect_and_write("conn\n")));
    } else if (strcmp(argv[1], "tconn") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, thread_connect, NULL);
        pthread_join(t, NULL);
    } else if (strcmp(argv[1], "swap") == 0) {
        swap(argc > 3 ? atoi(argv[3]) : 2000);
    } else if (strcmp(argv[1], "pairsend") == 0) {
        int sv[2];
        int rc = socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
        send_datagram("pairsend", rc < 0 ? -1 : sv[0]);
    } else if (strcmp(argv[1], "dgram") == 0) {
        send_datagram("dgram", socket(AF_UNIX, SOCK_DGRAM, 0));
    } else {
        fprintf(stderr, "sockets: unknown mode %s\n", argv[1]);
        return 2;
    }
    return 0;
}
