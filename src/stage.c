/*
 * stage.c: a remote capture's steps outside the sandbox, each in one
 * process of the uploaded helper (shannot-enter) instead of a dozen
 * (mkdir, chmod, chown, touch, mkfifo, ln; unshare, sh, mount, env,
 * prlimit: every process costs a host a fork and an exec, and a fleet
 * pays that on every host).  Mechanism only.
 *
 *   shannot-enter __stage OP ARG ARG [OP ARG ARG ...]
 * fills the staging directory, the operations in the order given, on
 * paths of a directory only the caller can reach:
 *   d MODE PATH     a directory, exactly MODE (octal; no umask)
 *   f MODE PATH     an empty regular file that must not exist, exactly MODE
 *   p MODE PATH     a FIFO, exactly MODE
 *   w MODE PATH     a regular file holding the next argument, exactly MODE
 *                   (that is: w MODE PATH TEXT)
 *   l TARGET PATH   a symlink
 *   r REF PATH      PATH takes REF's permission bits and times
 *   o REF PATH      PATH takes REF's owner and group
 * The first failure stops it: one line on stderr, exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shannot.h"

static int fail(const char *op, const char *path)
{
    fprintf(stderr, "shannot-enter: %s %s: %s\n", op, path, strerror(errno));
    return 1;
}

/* MODE as octal permission bits, or -1 */
static long mode_of(const char *s)
{
    char *end = NULL;
    errno = 0;
    long m = strtol(s, &end, 8);
    if (errno != 0 || end == s || *end != '\0' || m < 0 || m > 07777) {
        return -1;
    }
    return m;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A new regular file at path holding len bytes of data, exactly mode. */
static int new_file(const char *path, mode_t mode, const char *data, size_t len)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    if (write_all(fd, data, len) < 0 || fchmod(fd, mode) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

/* PATH takes REF's permission bits and times, or (owner) its owner. */
static int like(const char *ref, const char *path, int owner)
{
    struct stat st;
    if (stat(ref, &st) < 0) {
        return -1;
    }
    if (owner) {
        return lchown(path, st.st_uid, st.st_gid);
    }
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (fchmodat(AT_FDCWD, path, st.st_mode & 07777, 0) < 0) {
        return -1;
    }
    return utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW);
}

/* One operation; the number of arguments it took, or -1 (said). */
static int step(char **argv, int argc)
{
    const char *op = argv[0];
    if (argc < 3 || strlen(op) != 1) {
        fprintf(stderr, "shannot-enter: __stage: bad operation \"%s\"\n", op);
        return -1;
    }
    const char *a = argv[1], *path = argv[2];
    long mode = strchr("dfpw", op[0]) != NULL ? mode_of(a) : 0;
    if (mode < 0) {
        fprintf(stderr, "shannot-enter: __stage %s: bad mode \"%s\"\n", op, a);
        return -1;
    }
    int rc;
    switch (op[0]) {
    case 'd':
        rc = mkdir(path, 0700) < 0 ? -1
                                   : fchmodat(AT_FDCWD, path, (mode_t)mode, 0);
        break;
    case 'f':
        rc = new_file(path, (mode_t)mode, "", 0);
        break;
    case 'p':
        rc = mkfifo(path, 0600) < 0 ? -1
                                    : fchmodat(AT_FDCWD, path, (mode_t)mode, 0);
        break;
    case 'w':
        if (argc < 4) {
            fputs("shannot-enter: __stage w: no text\n", stderr);
            return -1;
        }
        rc = new_file(path, (mode_t)mode, argv[3], strlen(argv[3]));
        if (rc == 0) {
            return 4;
        }
        break;
    case 'l':
        rc = symlink(a, path);
        break;
    case 'r':
    case 'o':
        rc = like(a, path, op[0] == 'o');
        break;
    default:
        fprintf(stderr, "shannot-enter: __stage: bad operation \"%s\"\n", op);
        return -1;
    }
    if (rc < 0) {
        fail(op, path);
        return -1;
    }
    return 3;
}

int sh_stage(int argc, char **argv)
{
    for (int i = 0; i < argc;) {
        int n = step(argv + i, argc - i);
        if (n < 0) {
            return 1;
        }
        i += n;
    }
    return 0;
}

/*   shannot-enter __ns user|root NPROC [b FROM ONTO | o OPTIONS ONTO]... -- CMD
 * [ARGS...] a mount namespace of its own (and, "user", a user namespace mapping
 * the caller to 0, as `unshare -U --map-root-user`), every mount private,
 * then each bind (b, MS_BIND) and overlay (o, its options) in order,
 * RLIMIT_NPROC (when NPROC >= 0), an empty environment, and CMD exec'd
 * (a path).  Any failure: one line on stderr, exit status 125. */

static int ns_fail(const char *what, const char *arg)
{
    fprintf(stderr, "shannot-enter: %s%s%s: %s\n", what, arg ? " " : "",
            arg ? arg : "", strerror(errno));
    return 125;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = write_all(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* The caller as 0 in a new user namespace (and a new mount namespace). */
static int user_ns(void)
{
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
        return -1;
    }
    if (write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT) {
        return -1;
    }
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) < 0) {
        return -1;
    }
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    return write_file("/proc/self/gid_map", map);
}

int sh_ns_exec(int argc, char **argv)
{
    if (argc < 3 ||
        (strcmp(argv[0], "user") != 0 && strcmp(argv[0], "root") != 0)) {
        fputs("shannot-enter: __ns user|root NPROC [b FROM ONTO | o OPTIONS "
              "ONTO]... -- CMD\n",
              stderr);
        return 125;
    }
    char *end = NULL;
    long nproc = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0') {
        fputs("shannot-enter: __ns: bad NPROC\n", stderr);
        return 125;
    }
    int rc = strcmp(argv[0], "user") == 0 ? user_ns() : unshare(CLONE_NEWNS);
    if (rc < 0) {
        return ns_fail("cannot make the namespaces", NULL);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        return ns_fail("cannot make the mounts private", NULL);
    }
    int i = 2;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 3) {
        if (i + 2 >= argc || strlen(argv[i]) != 1) {
            fprintf(stderr, "shannot-enter: __ns: bad mount \"%s\"\n", argv[i]);
            return 125;
        }
        const char *a = argv[i + 1], *onto = argv[i + 2];
        if (argv[i][0] == 'b') {
            rc = mount(a, onto, NULL, MS_BIND, NULL);
        } else if (argv[i][0] == 'o') {
            rc = mount("overlay", onto, "overlay", 0, a);
        } else {
            fprintf(stderr, "shannot-enter: __ns: bad mount \"%s\"\n", argv[i]);
            return 125;
        }
        if (rc < 0) {
            return ns_fail("cannot mount", onto);
        }
    }
    if (i + 1 >= argc) {
        fputs("shannot-enter: __ns: no command after --\n", stderr);
        return 125;
    }
    struct rlimit rl = {(rlim_t)nproc, (rlim_t)nproc};
    if (nproc >= 0 && setrlimit(RLIMIT_NPROC, &rl) < 0) {
        return ns_fail("cannot limit the processes", NULL);
    }
    char *none[] = {NULL};
    char **cmd = argv + i + 1;
    execve(cmd[0], cmd, none);
    return ns_fail("cannot run", cmd[0]);
}
