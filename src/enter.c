/*
 * enter.c: the first program inside a sandbox, run before any Lua state:
 *   shannot __sandbox-enter [--report NAME] CHANNEL N DIR1..DIRN CMD [ARGS...]
 * restricts opening files for writing to beneath DIR1..DIRN (Landlock),
 * hands its socket calls over to shannot when CHANNEL is an fd (a
 * profile's unix_sockets allow list), then execs CMD (with --report:
 * runs it, waits, and exits as shannot's run would).  No Lua and nothing else
 * of shannot's, so it also builds alone as a small static program (make
 * build/shannot-enter, with -DSH_ENTER_MAIN, and stage.c: __stage fills the
 * remote staging) that a remote sandbox gets for the run: there is no
 * shannot installed on a remote host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>

#include "shannot.h"

/* Adds "access allowed beneath path" to a Landlock ruleset; a path that
 * does not exist in this sandbox is no place to allow.  0 or -1. */
static int allow_beneath(int ruleset, const char *path, __u64 access)
{
    struct landlock_path_beneath_attr rule = {
        .allowed_access = access,
        .parent_fd = open(path, O_PATH | O_CLOEXEC),
    };
    if (rule.parent_fd < 0) {
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    }
    long rc = syscall(SYS_landlock_add_rule, ruleset,
                      LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
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
        syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                &rule, 0);
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
    /* Any ruleset refuses a link or rename into another directory (EXDEV)
     * unless it handles REFER and allows it (Landlock ABI 2+): a script's
     * `ln a dir/b` or `mv` must work as it does outside, so it is allowed
     * everywhere (a file still cannot gain write access by moving). */
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
                       LANDLOCK_CREATE_RULESET_VERSION);
    __u64 refer = abi >= 2 ? LANDLOCK_ACCESS_FS_REFER : 0;
    struct landlock_ruleset_attr attr = {
        .handled_access_fs = LANDLOCK_ACCESS_FS_WRITE_FILE | refer,
    };
    int ruleset =
        (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) {
        return errno == ENOSYS || errno == EOPNOTSUPP ? 0
                                                      : -1; /* no Landlock */
    }
    int rc = refer ? allow_beneath(ruleset, "/", refer) : 0;
    for (long i = 0; i < n && rc == 0; i++) {
        rc = allow_beneath(ruleset, dirs[i], LANDLOCK_ACCESS_FS_WRITE_FILE);
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

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* What the sender thread needs: the channel, the pipe the listener's
 * number comes on, and how its sendmsg went. */
struct handoff {
    int channel;
    int pipe[2];
    int listener;
    int err;
};

/* The sender thread: the listener's descriptor over the channel. */
static void *send_listener(void *arg)
{
    struct handoff *h = arg;
    ssize_t got;
    do {
        got = read(h->pipe[0], &h->listener, sizeof h->listener);
    } while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof h->listener || h->listener < 0) {
        h->err = EIO;
        return NULL;
    }
    char byte = 'L';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr c;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &h->listener, sizeof(int));
    h->err = sendmsg(h->channel, &msg, 0) == 1 ? 0 : errno;
    return NULL;
}

/* Hands the calls that may reach a host socket to shannot, outside the
 * sandbox, which makes each itself (design note 43): connect, since the
 * default filter leaves no AF_UNIX datagram socket to send to an address: a
 * filter whose listener goes back over `channel` (SCM_RIGHTS).  0 or -1 with
 * errno. */
static int hand_over_sockets(int channel)
{
#ifdef NATIVE_ARCH
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ALLOW), /* the default filter refuses them */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog prog = {sizeof code / sizeof *code, code};
    struct handoff h = {channel, {-1, -1}, -1, 0};
    pthread_t sender;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        pipe2(h.pipe, O_CLOEXEC) < 0) {
        return -1;
    }
    /* Why a thread: the filter holds only the thread that installs it (no
     * TSYNC), so this one, made before, may still sendmsg the listener. */
    if ((errno = pthread_create(&sender, NULL, send_listener, &h)) != 0) {
        return -1;
    }
    int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    int e = errno;
    ssize_t put;
    do {
        put = write(h.pipe[1], &listener, sizeof listener);
    } while (put < 0 && errno == EINTR);
    pthread_join(sender, NULL);
    close(h.pipe[0]);
    close(h.pipe[1]);
    if (listener >= 0) {
        close(listener);
    }
    close(channel);
    errno = listener < 0 ? e : h.err;
    return listener < 0 || h.err != 0 ? -1 : 0;
#else
    (void)channel;
    errno = ENOSYS;
    return -1;
#endif
}

/* Runs cmd as a child and ends as shannot's run would after it (DESIGN
 * §7): 0 when it succeeded; else 1, its code (128 + N for signal N, as
 * bwrap reports one) said on stderr under `name` (already made inert).
 * For a sandbox shannot exec'd in place of itself (cmd/run.lua), where
 * no shannot is left outside to map the exit. */
static int run_and_report(const char *name, char **cmd)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "shannot: cannot run %s: %s\n", cmd[0],
                strerror(errno));
        return 1;
    }
    if (pid == 0) {
        execvp(cmd[0], cmd);
        fprintf(stderr, "shannot: cannot run %s: %s\n", cmd[0],
                strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return 1;
        }
    }
    int code = WIFEXITED(status)     ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : 1;
    if (code == 0) {
        return 0;
    }
    fprintf(stderr, "shannot: command %s exited with code %d\n", name, code);
    return 1;
}

/* argv: [--report NAME] CHANNEL N DIR1..DIRN CMD [ARGS...]; CHANNEL is
 * "-" or the fd the socket calls' listener goes back on; --report: wait
 * for CMD and report its end (run_and_report) instead of exec'ing it. */
int sh_sandbox_enter(int argc, char **argv)
{
    const char *report = NULL;
    if (argc > 2 && strcmp(argv[0], "--report") == 0) {
        report = argv[1];
        argc -= 2;
        argv += 2;
    }
    char *end = NULL;
    long n = argc > 1 ? strtol(argv[1], &end, 10) : -1;
    if (end == NULL || *end != '\0' || n < 0 || n > argc - 3) {
        fputs("shannot: __sandbox-enter CHANNEL N DIR... CMD [ARGS...] (run by "
              "shannot itself)\n",
              stderr);
        return 2;
    }
    if (strcmp(argv[0], "-") != 0 && hand_over_sockets(atoi(argv[0])) < 0) {
        fprintf(stderr,
                "shannot: cannot hand the sandbox's socket calls over: %s\n",
                strerror(errno));
        return 126;
    }
    if (restrict_writes(argv + 2, n) < 0) {
        fprintf(
            stderr,
            "shannot: cannot restrict writes in the sandbox (Landlock): %s\n",
            strerror(errno));
        return 126;
    }
    char **cmd = argv + 2 + n;
    if (report != NULL) {
        return run_and_report(report, cmd);
    }
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
    if (argc > 1 && strcmp(argv[1], "__stage") == 0) {
        return sh_stage(argc - 2, argv + 2);
    }
    if (argc > 1 && strcmp(argv[1], "__ns") == 0) {
        return sh_ns_exec(argc - 2, argv + 2);
    }
    fputs("shannot-enter: run by shannot itself, as " SH_SANDBOX_ENTER
          " CHANNEL N DIR... CMD, __stage OP ARG ARG... or __ns ...\n",
          stderr);
    return 2;
}
#endif
