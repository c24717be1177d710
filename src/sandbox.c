/*
 * sandbox.c: namespaces and overlay mounts.  For now the probes that tell
 * whether this machine can do what a capture needs: a user + mount
 * namespace, and an overlayfs with user xattrs inside it.  Each probe runs
 * in a throw-away child so nothing it changes reaches this process.
 *
 * Lua: shannot.core.sandbox
 *   probe(dir | nil) -> true | nil, msg, code
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shannot.h"

/* What a probe child reports: the step that failed and its errno. */
struct probe_report {
    int step;
    int err;
};

/* The system call each probe step makes (Lua words the message). */
static const char *const probe_steps[] = {
    "ok", "unshare(CLONE_NEWUSER|CLONE_NEWNS)", "write uid_map/gid_map",
    "mount(MS_REC|MS_PRIVATE)", "mount(overlay, userxattr)",
    "open(O_CREAT) in the overlay", "stat() in the upper dir"};

static int write_file(const char *path, const char *text)
{
    sh_autoclose int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    return sh_write_all(fd, text, strlen(text));
}

static int probe_userns(uid_t uid, gid_t gid)
{
    char map[64];
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
        return 1;
    }
    /* Why: an unprivileged process may map only itself, and only after
     * giving up setgroups. */
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
    if (write_file("/proc/self/setgroups", "deny") < 0 ||
        write_file("/proc/self/uid_map", map) < 0) {
        return 2;
    }
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) < 0) {
        return 2;
    }
    /* Why: our mounts must never propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        return 3;
    }
    return 0;
}

static int probe_overlay(const char *dir)
{
    char opts[4096], merged[1024], probe[1100];
    snprintf(opts, sizeof opts,
             "lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work,userxattr",
             dir, dir, dir);
    snprintf(merged, sizeof merged, "%s/merged", dir);
    if (mount("overlay", merged, "overlay", 0, opts) < 0) {
        return 4;
    }
    snprintf(probe, sizeof probe, "%s/probe", merged);
    sh_autoclose int fd = open(probe, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return 5;
    }
    snprintf(probe, sizeof probe, "%s/upper/probe", dir);
    struct stat st;
    if (stat(probe, &st) < 0) {
        return 6;
    }
    return 0;
}

static void probe_child(const char *dir, int report_fd, uid_t uid, gid_t gid)
{
    struct probe_report r = {0, 0};
    r.step = probe_userns(uid, gid);
    if (r.step == 0 && dir != NULL) {
        r.step = probe_overlay(dir);
    }
    r.err = r.step ? errno : 0;
    sh_write_all(report_fd, &r, sizeof r);
    _exit(0);
}

/* probe(dir | nil) -> true | nil, "<step>: <strerror>", code
 * Without dir: a user + mount namespace.  With dir (holding empty lower,
 * upper, work and merged directories on the file system to test): also an
 * overlayfs mount with userxattr and a write through it. */
static int sandbox_probe(lua_State *L)
{
    const char *dir = luaL_optstring(L, 1, NULL);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        return sh_fail(L, "pipe", errno);
    }
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        probe_child(dir, fds[1], uid, gid);
    }
    int e = errno;
    close(fds[1]);
    struct probe_report r = {0, 0};
    ssize_t n = -1;
    if (pid > 0) {
        do {
            n = read(fds[0], &r, sizeof r);
        } while (n < 0 && errno == EINTR);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    close(fds[0]);
    if (pid < 0) {
        return sh_fail(L, "fork", e);
    }
    if (n != (ssize_t)sizeof r) {
        return sh_fail(L, "probe", EPROTO);
    }
    if (r.step != 0) {
        return sh_fail(L, probe_steps[r.step], r.err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg sandbox_funcs[] = {
    {"probe", sandbox_probe},
    {NULL, NULL}};

int luaopen_shannot_core_sandbox(lua_State *L)
{
    luaL_newlib(L, sandbox_funcs);
    return 1;
}
