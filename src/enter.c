/*
 * enter.c: the first program inside a sandbox, run before any Lua state:
 *   shannot __sandbox-enter N DIR1..DIRN CMD [ARGS...]
 * restricts opening files for writing to beneath DIR1..DIRN (Landlock),
 * then execs CMD.  No Lua and nothing else of shannot's, so it also builds
 * alone as a small static program (make build/shannot-enter, with
 * -DSH_ENTER_MAIN) that a remote sandbox gets for the run: there is no
 * shannot installed on a remote host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "shannot.h"

/* Adds "writes allowed beneath path" to a Landlock ruleset; a path that
 * does not exist in this sandbox is no place to allow.  0 or -1. */
static int allow_writes(int ruleset, const char *path)
{
    struct landlock_path_beneath_attr rule = {
        .allowed_access = LANDLOCK_ACCESS_FS_WRITE_FILE,
        .parent_fd = open(path, O_PATH | O_CLOEXEC),
    };
    if (rule.parent_fd < 0) {
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    }
    long rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                      &rule, 0);
    int e = errno;
    close(rule.parent_fd);
    errno = e;
    return rc < 0 ? -1 : 0;
}

/* The file a standard descriptor was given by whoever started shannot (a
 * terminal, a log file, a pipe), so that reopening it (`> /dev/stderr`)
 * works as it does outside. */
static void allow_stdio(int ruleset, int fd)
{
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct landlock_path_beneath_attr rule = {
        .allowed_access = LANDLOCK_ACCESS_FS_WRITE_FILE,
        .parent_fd = open(path, O_PATH | O_CLOEXEC),
    };
    struct stat st;
    if (rule.parent_fd < 0) {
        return; /* closed */
    }
    /* An allowance, not a restriction: where Landlock takes no rule (a
     * pipe's inode: EBADFD), there is simply none. */
    if (fstat(rule.parent_fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
        syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
    }
    close(rule.parent_fd);
}

/* Why: the sandbox sees the host read-only, but a FIFO (or a device node)
 * on a read-only mount still opens for writing, and a host daemon may be
 * reading it.  Landlock refuses every open for writing outside the given
 * directories (the sandbox's own tmpfs, /dev, the capture overlays and
 * writable binds); regular files there are read-only anyway.  0; -1 with
 * errno when the kernel has Landlock and applying it failed. */
static int restrict_writes(char *const *dirs, long n)
{
    struct landlock_ruleset_attr attr = {
        .handled_access_fs = LANDLOCK_ACCESS_FS_WRITE_FILE,
    };
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) {
        return errno == ENOSYS || errno == EOPNOTSUPP ? 0 : -1; /* no Landlock */
    }
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        rc = allow_writes(ruleset, dirs[i]);
    }
    for (int fd = 0; fd <= 2 && rc == 0; fd++) {
        allow_stdio(ruleset, fd);
    }
    if (rc == 0) {
        rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    if (rc == 0) {
        rc = (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
    }
    int e = errno;
    close(ruleset);
    errno = e;
    return rc;
}

int sh_sandbox_enter(int argc, char **argv)
{
    char *end = NULL;
    long n = argc > 0 ? strtol(argv[0], &end, 10) : -1;
    if (end == NULL || *end != '\0' || n < 0 || n > argc - 2) {
        fputs("shannot: __sandbox-enter N DIR... CMD [ARGS...] (run by shannot itself)\n",
              stderr);
        return 2;
    }
    if (restrict_writes(argv + 1, n) < 0) {
        fprintf(stderr, "shannot: cannot restrict writes in the sandbox (Landlock): %s\n",
                strerror(errno));
        return 126;
    }
    char **cmd = argv + 1 + n;
    execvp(cmd[0], cmd);
    fprintf(stderr, "shannot: cannot run %s: %s\n", cmd[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

#ifdef SH_ENTER_MAIN
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], SH_SANDBOX_ENTER) == 0) {
        return sh_sandbox_enter(argc - 2, argv + 2);
    }
    fputs("shannot-enter: run by shannot itself, as " SH_SANDBOX_ENTER " N DIR... CMD\n", stderr);
    return 2;
}
#endif
