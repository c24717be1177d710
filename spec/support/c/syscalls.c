/* syscalls: tries, from inside a sandbox, each call the default system
 * call filter must refuse, and prints NAME=ERRNO-NAME (or NAME=ok) per
 * line.  Arguments are harmless even where a call would succeed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *name, long rc)
{
    if (rc >= 0) {
        printf("%s=ok\n", name);
    } else {
        const char *e = errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES"
                      : errno == ENOSYS ? "ENOSYS" : strerror(errno);
        printf("%s=%s\n", name, e);
    }
}

int main(void)
{
    report("add_key", syscall(SYS_add_key, "user", "shannot-spec", "x", 1,
                              KEY_SPEC_SESSION_KEYRING));
    report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                             KEY_SPEC_USER_KEYRING, 0));
    report("request_key", syscall(SYS_request_key, "user", "shannot-spec", NULL,
                                  KEY_SPEC_SESSION_KEYRING));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    report("unshare", unshare(CLONE_NEWUSER));
    report("setns", setns(-1, 0));
    report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    report("socket_unix", socket(AF_UNIX, SOCK_STREAM, 0));
    report("socket_unix_high_bits", syscall(SYS_socket, 0x100000000L | AF_UNIX, SOCK_STREAM, 0));
    report("clone3", syscall(SYS_clone3, NULL, 0));
    report("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0));
    report("ptrace_attach", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
    char c = 'x';
    report("tiocsti", ioctl(0, TIOCSTI, &c));
    report("tiocsti_high_bits", syscall(SYS_ioctl, 0, 0x100000000L | TIOCSTI, &c));
    int sv[2];
    report("socketpair_unix", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    report("socket_inet", socket(AF_INET, SOCK_STREAM, 0));
    report("socket_vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    return 0;
}
