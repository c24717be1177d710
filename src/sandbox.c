/*
 * sandbox.c: namespaces and overlay mounts.  The setup a capturing child
 * makes in its own user + mount namespace before it execs bwrap (called
 * from proc.c: sh_ns_read, sh_ns_parent, sh_ns_child), and the probes that
 * tell whether this machine can do what a capture needs.  Each probe runs
 * in a throw-away child so nothing it changes reaches this process.
 *
 * Lua: shannot.core.sandbox
 *   probe(dir | nil) -> true | nil, msg, code
 *   landlock_abi() -> version, 0 without Landlock
 * and proc.spawn(argv, {namespace = {full_map =, mounts = {{target =,
 *   lower =, upper =, work =} | {target =, rebind = true}...}}}) for the
 * setup itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "shannot.h"

#define NS_MAX_MOUNTS 256

void sh_ns_read(lua_State *L, int idx, struct sh_ns_setup *s)
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    s->full_map = sh_optfield_boolean(L, idx, "full_map", 0);
    s->uid = (unsigned)getuid();
    s->gid = (unsigned)getgid();
    s->nmounts = 0;
    lua_getfield(L, idx, "mounts");
    int t = lua_gettop(L);
    lua_Integer n = lua_isnil(L, t) ? 0 : luaL_len(L, t);
    if (n < 0 || n > NS_MAX_MOUNTS) {
        luaL_error(L, "namespace.mounts: at most %d mounts", NS_MAX_MOUNTS);
    }
    s->mounts =
        lua_newuserdatauv(L, sizeof(struct sh_ns_mount) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, t, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        struct sh_ns_mount *m = &s->mounts[i - 1];
        m->target = sh_optfield_string(L, -1, "target");
        m->lower = sh_optfield_string(L, -1, "lower");
        m->upper = sh_optfield_string(L, -1, "upper");
        m->work = sh_optfield_string(L, -1, "work");
        m->rebind = sh_optfield_boolean(L, -1, "rebind", 0);
        m->no_sync = sh_optfield_boolean(L, -1, "volatile", 0);
        if (m->target == NULL ||
            (!m->rebind &&
             (m->lower == NULL || m->upper == NULL || m->work == NULL))) {
            luaL_error(
                L,
                "namespace.mounts[%d]: needs target, lower, upper and work "
                "(or target and rebind)",
                (int)i);
        }
        lua_pop(L, 1); /* the strings stay referenced by the table */
    }
    s->nmounts = (int)n;
    lua_remove(L, t);
}

static int write_map(pid_t child, const char *name, const char *text)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)child, name);
    sh_autoclose int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    return sh_write_all(fd, text, strlen(text));
}

int sh_ns_parent(const struct sh_ns_setup *s, pid_t child)
{
    char map[64];
    if (s->full_map) {
        /* Why: as real root the dry-run must act as root does (files of
         * other users, chown, apt's _apt): every id maps onto itself. */
        snprintf(map, sizeof map, "0 0 %u\n", (unsigned)UINT32_MAX);
        return write_map(child, "uid_map", map) < 0 ||
                       write_map(child, "gid_map", map) < 0
                   ? -1
                   : 0;
    }
    /* Why: an unprivileged parent may map only its own ids, and only after
     * setgroups is denied; inside, the user keeps their own identity. */
    if (write_map(child, "setgroups", "deny") < 0) {
        return -1;
    }
    snprintf(map, sizeof map, "%u %u 1\n", s->uid, s->uid);
    if (write_map(child, "uid_map", map) < 0) {
        return -1;
    }
    snprintf(map, sizeof map, "%u %u 1\n", s->gid, s->gid);
    return write_map(child, "gid_map", map);
}

static int open_dir_path(const char *path)
{
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Opens what mount i needs: lower, upper, work, or (a rebind) the target. */
static int open_mount_dirs(const struct sh_ns_mount *m, int fds[3])
{
    if (m->rebind) {
        return (fds[0] = open_dir_path(m->target)) < 0 ? -1 : 0;
    }
    if ((fds[0] = open_dir_path(m->lower)) < 0 ||
        (fds[1] = open_dir_path(m->upper)) < 0 ||
        (fds[2] = open_dir_path(m->work)) < 0) {
        return -1;
    }
    return 0;
}

static int mount_one(const struct sh_ns_mount *m, const int fds[3])
{
    char src[64];
    if (m->rebind) {
        /* Why: the real directory (staging) back at its own path, so the
         * binds bwrap makes from paths under it never reach the overlay's
         * copy of it. */
        snprintf(src, sizeof src, "/proc/self/fd/%d", fds[0]);
        return mount(src, m->target, NULL, MS_BIND | MS_REC, NULL);
    }
    char opts[160];
    snprintf(opts, sizeof opts,
             "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,"
             "workdir=/proc/self/fd/%d,userxattr%s",
             fds[0], fds[1], fds[2], m->no_sync ? ",volatile" : "");
    int rc = mount("overlay", m->target, "overlay", 0, opts);
    if (rc < 0 && errno == EINVAL && m->no_sync) {
        /* a kernel before 5.10 knows no "volatile": synced, then */
        *strrchr(opts, ',') = '\0';
        rc = mount("overlay", m->target, "overlay", 0, opts);
    }
    return rc;
}

/* Every directory is opened before the first mount: an overlay on a parent
 * hides the submounts below it, whose own lower dirs it would shadow.
 * Paths go to overlayfs as /proc/self/fd/N, which needs no escaping of
 * the ',' and ':' its option syntax gives meaning to. */
int sh_ns_child(const struct sh_ns_setup *s, int *failed)
{
    int fds[NS_MAX_MOUNTS][3];
    int rc = 0;
    *failed = -1;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        return -1;
    }
    for (int i = 0; i < s->nmounts; i++) {
        if (open_mount_dirs(&s->mounts[i], fds[i]) < 0) {
            *failed = i;
            return -1;
        }
    }
    for (int i = 0; i < s->nmounts && rc == 0; i++) {
        rc = mount_one(&s->mounts[i], fds[i]);
        if (rc < 0) {
            *failed = i;
        }
    }
    return rc;
}

/* What a probe child reports: the step that failed and its errno. */
struct probe_report {
    int step;
    int err;
};

/* The system call each probe step makes (Lua words the message). */
static const char *const probe_steps[] = {"ok",
                                          "unshare(CLONE_NEWUSER|CLONE_NEWNS)",
                                          "write uid_map/gid_map",
                                          "mount(MS_REC|MS_PRIVATE)",
                                          "mount(overlay, userxattr)",
                                          "open(O_CREAT) in the overlay",
                                          "stat() in the upper dir"};

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

/* landlock_abi() -> version (0: the kernel has no Landlock) */
static int sandbox_landlock_abi(lua_State *L)
{
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
                     LANDLOCK_CREATE_RULESET_VERSION);
    lua_pushinteger(L, v < 0 ? 0 : v);
    return 1;
}

static const luaL_Reg sandbox_funcs[] = {{"landlock_abi", sandbox_landlock_abi},
                                         {"probe", sandbox_probe},
                                         {NULL, NULL}};

int luaopen_shannot_core_sandbox(lua_State *L)
{
    luaL_newlib(L, sandbox_funcs);
    return 1;
}
