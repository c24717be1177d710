/*
 * stage.c: fills a remote capture's staging directory in one process,
 *   shannot-enter __stage OP ARG ARG [OP ARG ARG ...]
 * so that each host of a fleet starts one program for it instead of a
 * dozen (mkdir, chmod, chown, touch, mkfifo, ln: every process costs a
 * host a fork and an exec).  Mechanism only: the operations run in the
 * order given, on paths of a directory only the caller can reach.
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
