/*
 * proc.c: child processes.  Owns spawning with pipes (fd hygiene: only the
 * three standard fds and the ones the caller names reach the child), the
 * poll loop that streams and captures output within a fixed memory bound,
 * timeouts that kill the whole process group, and reaping.
 *
 * Lua: shannot.core.proc
 *   spawn(argv, opts) -> Process | nil, msg, code
 *   join_cgroups(fds) -> Process | nil, msg, code
 *   Process:communicate(opts) -> result | nil, msg, code
 *   Process:kill(signame) -> true | nil, msg, code
 *   Process:poll() -> nil (running) | {code | signal, signal_name}
 *   Process:pid() -> integer
 *   Process:close() (also __gc, __close): kills and reaps a running child
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef SH_CLIENT
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "shannot.h"

#ifdef SH_CLIENT
/* The client build runs no sandbox: no namespaces (sandbox.c), no socket
 * supervision (notify.c), no pidfd (the loop polls for the exit), no
 * death signal, fork for vfork. */
int sh_notify_pollfds(const struct sh_notify *n, struct pollfd *fds)
{
    (void)n;
    (void)fds;
    return 0;
}

void sh_notify_step(struct sh_notify *n, const struct pollfd *fds)
{
    (void)n;
    (void)fds;
}

void sh_notify_close(struct sh_notify *n)
{
    if (n->channel >= 0) {
        close(n->channel);
        n->channel = -1;
    }
}
#endif

#define CHUNK 65536
#define DEFAULT_CAPTURE (1024 * 1024)

extern char **environ;

/* Output of one stream: the first bytes, then a ring of the last bytes. */
struct capture {
    int fd;            /* our read end, -1 when closed or not piped */
    struct sh_tee tee; /* the copy passed on as it comes */
    int piped;
    struct sh_keep keep;
};

typedef struct {
    pid_t pid; /* -1 once reaped (or never started) */
    int pidfd;
    int in_fd;
    int own_pgroup;
    int status;
    struct rusage usage;
    struct capture out, err;
} Process;

static void capture_init(struct capture *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->tee.fd = -1;
}

static void capture_free(struct capture *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    sh_keep_free(&c->keep);
    int piped = c->piped;
    capture_init(c);
    c->piped = piped;
}

static void capture_add(struct capture *c, const char *p, size_t n)
{
    sh_tee_write(&c->tee, p, n);
    sh_keep_add(&c->keep, p, n);
}

/* [-1, +0, m] Pops a value into field NAME_SUFFIX of the table below it. */
static void set_suffixed(lua_State *L, const char *name, const char *suffix)
{
    char key[64];
    snprintf(key, sizeof key, "%s%s", name, suffix);
    lua_setfield(L, -2, key);
}

/* [-0, +0, m] Sets result fields NAME, NAME_tail, NAME_dropped, NAME_bytes. */
static void capture_push(lua_State *L, struct capture *c, const char *name)
{
    if (!c->piped) {
        return;
    }
    lua_pushlstring(L, c->keep.head ? c->keep.head : "", c->keep.head_len);
    set_suffixed(L, name, "");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (c->keep.ring_len > 0) {
        size_t first = c->keep.ring_limit - c->keep.ring_start;
        if (first > c->keep.ring_len) {
            first = c->keep.ring_len;
        }
        luaL_addlstring(&b, c->keep.ring + c->keep.ring_start, first);
        luaL_addlstring(&b, c->keep.ring, c->keep.ring_len - first);
    }
    luaL_pushresult(&b);
    set_suffixed(L, name, "_tail");
    lua_pushinteger(
        L, (lua_Integer)(c->keep.total - c->keep.head_len - c->keep.ring_len));
    set_suffixed(L, name, "_dropped");
    lua_pushinteger(L, (lua_Integer)c->keep.total);
    set_suffixed(L, name, "_bytes");
}

static Process *check_process(lua_State *L)
{
    return luaL_checkudata(L, 1, SH_PROCESS_MT);
}

static void process_signal(Process *p, int sig)
{
    if (p->pid <= 0) {
        return;
    }
    if (p->own_pgroup) {
        kill(-p->pid, sig); /* the whole group: children included */
    }
    kill(p->pid, sig);
}

static int process_reap(Process *p, int options)
{
    if (p->pid <= 0) {
        return 1;
    }
    pid_t r;
    do {
#ifdef SH_CLIENT
        memset(&p->usage, 0, sizeof p->usage); /* no wait4: no peak RSS */
        r = waitpid(p->pid, &p->status, options);
#else
        r = wait4(p->pid, &p->status, options, &p->usage);
#endif
    } while (r < 0 && errno == EINTR);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        if (p->own_pgroup) { /* descendants left in the group go with it */
            kill(-p->pid, SIGKILL);
        }
        p->pid = -1;
        return 1;
    }
    return 0;
}

/* Process:close(): idempotent; a child still running is killed and reaped. */
static int process_close(lua_State *L)
{
    Process *p = check_process(L);
    if (p->pid > 0) {
        process_signal(p, SIGKILL);
        process_reap(p, 0);
    }
    if (p->pidfd >= 0) {
        close(p->pidfd);
        p->pidfd = -1;
    }
    if (p->in_fd >= 0) {
        close(p->in_fd);
        p->in_fd = -1;
    }
    capture_free(&p->out);
    capture_free(&p->err);
    return 0;
}

/* Process:pid() -> integer (or nil once reaped) */
static int process_pid(lua_State *L)
{
    Process *p = check_process(L);
    if (p->pid <= 0) {
        return 0;
    }
    lua_pushinteger(L, p->pid);
    return 1;
}

/* Process:kill(signame) -> true | nil, msg, code */
static int process_kill(lua_State *L)
{
    static const char *const names[] = {"TERM", "KILL", "INT", "HUP", NULL};
    static const int sigs[] = {SIGTERM, SIGKILL, SIGINT, SIGHUP};
    Process *p = check_process(L);
    int sig = sigs[luaL_checkoption(L, 2, "TERM", names)];
    if (p->pid <= 0) {
        return sh_fail(L, "kill", ESRCH);
    }
    process_signal(p, sig);
    lua_pushboolean(L, 1);
    return 1;
}

/* One spawn request, gathered from Lua before any resource is taken. */
struct spawn_req {
    char **argv;
    char **envp; /* NULL: inherit */
    const char *cwd;
    int mode[3];         /* 0 inherit, 1 null, 2 pipe, 3 file */
    const char *file[3]; /* mode 3: the file the stream goes to */
    int *keep;
    int nkeep;
    int new_pgroup;
    int die_with_parent;
    int has_ns; /* a sandbox namespace to set up before exec (sandbox.c) */
    struct sh_ns_setup ns;
    int *join; /* cgroup.procs or tasks files the child writes itself into */
    int njoin;
    lua_Integer nproc; /* RLIMIT_NPROC; -1: unchanged */
};

/* What a child that did not reach exec reports through its error pipe. */
struct spawn_error {
    int err;
    int where; /* SPAWN_AT_EXEC, SPAWN_AT_NS, or the index of a mount */
};
#define SPAWN_AT_EXEC (-1)
#define SPAWN_AT_NS (-2)
#define SPAWN_AT_PROPAGATION (-3)
#define SPAWN_AT_LIMITS (-4)

/* [-0, +1, m] A NULL-terminated char*[] from an array of strings. */
static char **string_array(lua_State *L, int idx, const char *what)
{
    lua_Integer n = luaL_len(L, idx);
    char **v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "%s[%d] must be a string", what, (int)i);
        }
        v[i - 1] = (char *)lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
    }
    v[n] = NULL;
    return v;
}

static int stream_mode(lua_State *L, int opts, const char *key)
{
    static const char *const modes[] = {"inherit", "null", "pipe", NULL};
    lua_getfield(L, opts, key);
    int m = luaL_checkoption(L, -1, "inherit", modes);
    lua_pop(L, 1);
    return m;
}

/* [-0, +1|2, e] The integers of the array opts[key] (NULL, *n = 0 when
 * absent); pushes it and the memory holding them. */
static int *int_array(lua_State *L, int opts, const char *key, int *n)
{
    *n = 0;
    if (lua_getfield(L, opts, key) == LUA_TNIL) {
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    int t = lua_gettop(L);
    *n = (int)luaL_len(L, t);
    int *v = lua_newuserdatauv(L, sizeof(int) * (size_t)*n + 1, 0);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, t, i + 1);
        v[i] = (int)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    return v;
}

/* Reads argv and opts (args 1, 2); pushes the temporary arrays. */
static void spawn_read(lua_State *L, struct spawn_req *r)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argcheck(L, luaL_len(L, 1) >= 1, 1, "argv must not be empty");
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    r->argv = string_array(L, 1, "argv");
    r->envp = NULL;
    if (lua_getfield(L, 2, "env") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        r->envp = string_array(L, lua_gettop(L), "env");
    }
    r->cwd = sh_optfield_string(L, 2, "cwd");
    r->mode[0] = stream_mode(L, 2, "stdin");
    r->mode[1] = stream_mode(L, 2, "stdout");
    r->mode[2] = stream_mode(L, 2, "stderr");
    r->file[0] = NULL;
    r->file[1] = sh_optfield_string(L, 2, "stdout_file");
    r->file[2] = sh_optfield_string(L, 2, "stderr_file");
    for (int i = 1; i < 3; i++) {
        if (r->file[i] != NULL) {
            r->mode[i] = 3;
        }
    }
    r->new_pgroup = sh_optfield_boolean(L, 2, "new_pgroup", 1);
    r->die_with_parent = sh_optfield_boolean(L, 2, "die_with_parent", 0);
    r->has_ns = 0;
    if (lua_getfield(L, 2, "namespace") != LUA_TNIL) {
#ifdef SH_CLIENT
        luaL_error(L, "namespace: the client build has no sandbox");
#else
        sh_ns_read(L, lua_gettop(L), &r->ns);
        r->has_ns = 1;
#endif
    }
    r->keep = int_array(L, 2, "keep_fds", &r->nkeep);
    r->join = int_array(L, 2, "join_fds", &r->njoin);
    r->nproc = -1;
    if (lua_getfield(L, 2, "rlimits") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        r->nproc =
            (lua_Integer)sh_optfield_number(L, lua_gettop(L), "nproc", -1);
    }
}

/* In the child: never returns. Reports exec failure through `errfd`.
 * Runs in a vfork child (memory shared with the parent, parent suspended),
 * so it only makes system calls: no allocation, no stdio, no Lua. */
static void child_fail(int errfd, int where)
{
    struct spawn_error se = {errno, where};
    sh_write_all(errfd, &se, sizeof se);
    _exit(127);
}

/* In the child, first: into the cgroups, under the rlimits.  Before any
 * namespace, so the moves are checked against the parent's credentials. */
static void child_limits(const struct spawn_req *r, int errfd)
{
    for (int i = 0; i < r->njoin; i++) {
        if (sh_write_all(r->join[i], "0", 1) < 0) {
            child_fail(errfd, SPAWN_AT_LIMITS);
        }
    }
    struct rlimit rl = {(rlim_t)r->nproc, (rlim_t)r->nproc};
    if (r->nproc >= 0 && setrlimit(RLIMIT_NPROC, &rl) < 0) {
        child_fail(errfd, SPAWN_AT_LIMITS);
    }
}

static void child_exec(const struct spawn_req *r, const int fds[3], int errfd,
                       pid_t parent)
{
    /* Handlers and ignored dispositions would survive into the new program
     * (ignored ones do); every signal is still blocked here, so none of
     * shannot's handlers can run in this shared-memory child. */
    for (int sig = 1; sig < sh_signal_max(); sig++) {
        signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    if (r->new_pgroup) {
        setpgid(0, 0);
    }
    if (r->die_with_parent) {
#ifndef SH_CLIENT
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (getppid() != parent) {
            _exit(127);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0 && dup2(fds[i], i) < 0) {
            goto fail;
        }
    }
    if (r->cwd != NULL && chdir(r->cwd) < 0) {
        goto fail;
    }
    sh_cloexec_from(3);
    for (int i = 0; i < r->nkeep; i++) {
        fcntl(r->keep[i], F_SETFD, 0); /* the caller asked for this one */
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef SH_CLIENT
    if (r->envp != NULL) {
        environ = r->envp; /* a forked child's own copy */
    }
    execvp(r->argv[0], r->argv);
#else
    execvpe(r->argv[0], r->argv, r->envp ? r->envp : environ);
#endif
fail:
    child_fail(errfd, SPAWN_AT_EXEC);
}

static void close_pair(int pair[2])
{
    for (int i = 0; i < 2; i++) {
        if (pair[i] >= 0) {
            close(pair[i]);
            pair[i] = -1;
        }
    }
}

/* Makes the parent/child ends of each stream; child ends in `child`. */
static int open_streams(Process *p, const struct spawn_req *r, int child[3],
                        int pipes[3][2])
{
    for (int i = 0; i < 3; i++) {
        if (r->mode[i] == 1) {
            child[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (child[i] < 0) {
                return -1;
            }
        } else if (r->mode[i] == 3) {
            /* a new file of the caller's, or one it truncates: never
             * through a link */
            child[i] = open(
                r->file[i],
                O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (child[i] < 0) {
                return -1;
            }
        } else if (r->mode[i] == 2) {
            if (sh_pipe_cloexec(pipes[i]) < 0) {
                return -1;
            }
            child[i] = pipes[i][i == 0 ? 0 : 1];
            int ours = pipes[i][i == 0 ? 1 : 0];
            fcntl(ours, F_SETFL, O_NONBLOCK);
            if (i == 0) {
                p->in_fd = ours;
            } else {
                (i == 1 ? &p->out : &p->err)->fd = ours;
                (i == 1 ? &p->out : &p->err)->piped = 1;
            }
            pipes[i][i == 0 ? 1 : 0] = -1; /* now owned by the userdata */
        }
    }
    return 0;
}

#ifndef SH_CLIENT
static int read_byte(int fd)
{
    char c;
    ssize_t n;
    do {
        n = read(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

/* The child's side of a sandbox namespace; returns only to exec.
 * Unprivileged: the user namespace comes with the clone, the parent maps
 * it, then the child mounts.  As real root the mounts come first, made in
 * a mount namespace of the initial user namespace: there the host's
 * submounts are not locked, and overlayfs accepts a lower dir with
 * mounts below it (in a user namespace it fails to clone the lower path,
 * EINVAL).  Only then the user namespace, which the parent maps. */
static void ns_child(const struct spawn_req *r, int errfd, int from_parent,
                     int to_parent)
{
    int failed;
    if (!r->ns.full_map) {
        child_limits(r, errfd); /* (no cgroup without root: rlimits) */
        if (read_byte(from_parent) < 0) {
            _exit(127); /* the parent failed and says why */
        }
    }
    if (sh_ns_child(&r->ns, &failed) < 0) {
        child_fail(errfd, failed < 0 ? SPAWN_AT_PROPAGATION : failed);
    }
    if (r->ns.full_map) {
        /* Into the cgroups after the mounts, still as the parent's
         * credentials: a cgroup.procs move after a quiet while waits for
         * an RCU grace period (milliseconds), which the mounts overlap. */
        child_limits(r, errfd);
        if (unshare(CLONE_NEWUSER) < 0) {
            child_fail(errfd, SPAWN_AT_NS);
        }
        sh_write_all(to_parent, "r", 1);
        if (read_byte(from_parent) < 0) {
            _exit(127);
        }
    }
}

/* A sandbox child: clone()d into new namespaces (a copy of the parent,
 * not vfork: the parent must run to write the id maps), set up by
 * ns_child, then on as any child.  Returns the pid. */
static pid_t spawn_ns_child(const struct spawn_req *r, const int fds[3],
                            int errfd, pid_t parent)
{
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) < 0) {
        return -1;
    }
    if (pipe2(up, O_CLOEXEC) < 0) {
        int e = errno;
        close_pair(down);
        errno = e;
        return -1;
    }
    long flags = CLONE_NEWNS | SIGCHLD | (r->ns.full_map ? 0 : CLONE_NEWUSER);
    pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        ns_child(r, errfd, down[0], up[1]);
        child_exec(r, fds, errfd, parent);
    }
    int e = errno;
    close(down[0]);
    close(up[1]);
    /* As root, wait until the child has its user namespace; if it failed
     * before, its error is in errfd and there is nothing to map. */
    if (pid > 0 && (!r->ns.full_map || read_byte(up[0]) == 0)) {
        if (sh_ns_parent(&r->ns, pid) < 0) {
            struct spawn_error se = {errno, SPAWN_AT_NS};
            sh_write_all(errfd, &se, sizeof se);
        } else {
            sh_write_all(down[1], "g", 1);
        }
    }
    close(down[1]);
    close(up[0]);
    errno = e;
    return pid;
}

#endif

/* vfork + exec with every signal blocked around it: no page tables are
 * copied, which is most of the cost of starting a child from a process
 * holding a Lua state.  Returns the pid, or -1 with errno. */
static pid_t spawn_child(const struct spawn_req *r, const int fds[3], int errfd)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t parent = getpid();
    pid_t pid;
#ifdef SH_CLIENT
    if ((pid = fork()) == 0) {
        child_limits(r, errfd);
        child_exec(r, fds, errfd, parent);
    }
#else
    if (r->has_ns) {
        pid = spawn_ns_child(r, fds, errfd, parent);
    } else if ((pid = vfork()) == 0) {
        child_limits(r, errfd);
        child_exec(r, fds, errfd, parent);
    }
#endif
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = e;
    return pid;
}

/* Waits for the child's exec; se->err is 0 or the errno it failed with. */
static void exec_result(int errfd, struct spawn_error *se)
{
    ssize_t n;
    se->err = 0;
    se->where = SPAWN_AT_EXEC;
    do {
        n = read(errfd, se, sizeof *se);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof *se) {
        se->err = 0;
    }
}

/* [-0, +3|4, m] The failure of a child that did not reach exec: nil,
 * msg, code, and for a mount of the namespace, {mount = index, reason =
 * strerror}. */
static int spawn_fail(lua_State *L, const struct spawn_req *r,
                      const struct spawn_error *se)
{
    if (se->where == SPAWN_AT_NS) {
        return sh_fail(L, "write the id maps of a new user namespace", se->err);
    }
    if (se->where == SPAWN_AT_PROPAGATION) {
        return sh_fail(L, "make the mounts private", se->err);
    }
    if (se->where == SPAWN_AT_LIMITS) {
        return sh_fail(L, "set the sandbox's limits (cgroup, rlimits)",
                       se->err);
    }
    if (se->where >= 0 && r->has_ns && se->where < r->ns.nmounts) {
        const struct sh_ns_mount *m = &r->ns.mounts[se->where];
        sh_failf(L, se->err,
                 m->rebind ? "bind %s back over its overlay"
                           : "mount overlay on %s",
                 m->target);
        /* which mount, as a value: namespace.mounts[mount] (1-based) */
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, se->where + 1);
        lua_setfield(L, -2, "mount");
        lua_pushstring(L, strerror(se->err));
        lua_setfield(L, -2, "reason");
        return 4;
    }
    return sh_failf(L, se->err, "%s", r->argv[0]);
}

/* [-0, +1, m] A Process with no child yet. */
static Process *push_process(lua_State *L, int own_pgroup)
{
    Process *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->pid = -1;
    p->pidfd = -1;
    p->in_fd = -1;
    p->own_pgroup = own_pgroup;
    capture_init(&p->out);
    capture_init(&p->err);
    luaL_setmetatable(L, SH_PROCESS_MT);
    return p;
}

/* spawn(argv, opts) -> Process | nil, msg, code [, {mount =, reason =}]
 * opts: env (array of "K=V"; default inherit), cwd, stdin/stdout/stderr
 * ("inherit" | "null" | "pipe"), stdout_file/stderr_file (a path the
 * stream is written to, made 0600 or truncated), keep_fds (array of fds passed
 * as is), new_pgroup (default true), die_with_parent (default false), join_fds
 * (cgroup.procs or v1 tasks files the child writes itself into: one
 * thread, so a tasks file moves all of it), rlimits
 * ({nproc =}: set in the child). */
static int proc_spawn(lua_State *L)
{
    struct spawn_req r;
    spawn_read(L, &r);
    Process *p = push_process(L, r.new_pgroup);

    int child[3] = {-1, -1, -1};
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int errpipe[2] = {-1, -1};
    int e = 0;
    struct spawn_error se = {0, SPAWN_AT_EXEC};
    if (open_streams(p, &r, child, pipes) < 0 || sh_pipe_cloexec(errpipe) < 0) {
        e = errno;
        goto out;
    }
    pid_t pid = spawn_child(&r, child, errpipe[1]);
    if (pid < 0) {
        e = errno;
        goto out;
    }
    p->pid = pid;
    if (r.new_pgroup) {
        setpgid(pid, pid); /* also here: no race with an early kill */
    }
    close(errpipe[1]);
    errpipe[1] = -1;
    exec_result(errpipe[0], &se);
    e = se.err;
    if (e != 0) {
        process_reap(p, 0);
        goto out;
    }
#ifndef SH_CLIENT
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
out:
    for (int i = 0; i < 3; i++) {
        if ((r.mode[i] == 1 || r.mode[i] == 3) && child[i] >= 0) {
            close(child[i]);
        }
        close_pair(pipes[i]);
    }
    close_pair(errpipe);
    if (e != 0) {
        lua_pushcfunction(L, process_close);
        lua_pushvalue(L, -2);
        lua_call(L, 1, 0);
        se.err = e;
        return spawn_fail(L, &r, &se);
    }
    return 1;
}

/* join_cgroups(fds) -> Process | nil, msg, code: a child that writes
 * itself into each of fds (cgroup.procs or tasks files, in order) and
 * exits: 0, or 1 once a write failed.  A fork, not a vfork: a move may wait in
 * the kernel, and this process goes on meanwhile.  The child makes system calls
 * only. */
static int proc_join_cgroups(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    int fds[16];
    luaL_argcheck(L, n <= (int)(sizeof fds / sizeof fds[0]), 1, "too many");
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        fds[i] = (int)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    Process *p = push_process(L, 0);
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < n; i++) {
            if (sh_write_all(fds[i], "0", 1) < 0) {
                _exit(1);
            }
        }
        _exit(0);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        return sh_fail(L, "fork", e);
    }
    p->pid = pid;
    return 1;
}

#define MAX_SIGNALS 128 /* above any sh_signal_max() */

/* proc.exec(argv [, opts]) -> nil, msg, code: this process becomes argv
 * (found in PATH) and this returns only when that failed.  opts: env,
 * cwd, keep_fds (left open across the exec; every other fd from 3 up is
 * closed by it), join_fds (cgroup.procs or tasks files to move this process
 * into), rlimits, as spawn's; the streams are this process's own, no
 * namespace.  Every signal gets its default disposition back (shannot
 * ignores SIGPIPE) and none stays blocked. */
static int proc_exec(lua_State *L)
{
    struct spawn_req r;
    spawn_read(L, &r);
    luaL_argcheck(
        L, !r.has_ns && r.mode[0] == 0 && r.mode[1] == 0 && r.mode[2] == 0, 2,
        "exec keeps this process's streams and namespaces");
    for (int i = 0; i < r.njoin; i++) {
        if (sh_write_all(r.join[i], "0", 1) < 0) {
            return sh_fail(L, "join the sandbox's cgroup", errno);
        }
    }
    struct rlimit rl = {(rlim_t)r.nproc, (rlim_t)r.nproc};
    if (r.nproc >= 0 && setrlimit(RLIMIT_NPROC, &rl) < 0) {
        return sh_fail(L, "set the sandbox's process limit", errno);
    }
    if (r.cwd != NULL && chdir(r.cwd) < 0) {
        return sh_fail(L, r.cwd, errno);
    }
    fflush(NULL); /* what Lua's io buffered would be lost with this image */
    int max = sh_signal_max() < MAX_SIGNALS ? sh_signal_max() : MAX_SIGNALS;
    struct sigaction old[MAX_SIGNALS];
    memset(old, 0, sizeof old); /* SIG_DFL where a query fails */
    sigset_t none, saved;
    sigemptyset(&none);
    for (int sig = 1; sig < max; sig++) {
        /* a handler goes with the image; only an ignored one would stay */
        if (sigaction(sig, NULL, &old[sig]) == 0 &&
            old[sig].sa_handler == SIG_IGN) {
            signal(sig, SIG_DFL);
        }
    }
    pthread_sigmask(SIG_SETMASK, &none, &saved);
    sh_cloexec_from(3);
    for (int i = 0; i < r.nkeep; i++) {
        fcntl(r.keep[i], F_SETFD, 0); /* the caller asked for this one */
    }
#ifdef SH_CLIENT
    char **saved_env = environ;
    if (r.envp != NULL) {
        environ = r.envp;
    }
    execvp(r.argv[0], r.argv);
    int e = errno;
    environ = saved_env;
#else
    execvpe(r.argv[0], r.argv, r.envp ? r.envp : environ);
    int e = errno;
#endif
    for (int i = 0; i < r.nkeep; i++) {
        fcntl(r.keep[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    for (int sig = 1; sig < max; sig++) {
        if (old[sig].sa_handler == SIG_IGN) {
            sigaction(sig, &old[sig], NULL);
        }
    }
    return sh_fail(L, r.argv[0], e);
}

/* [-0, +0, m] code, or signal and signal_name, of a wait status into the
 * table on top. */
static void set_status(lua_State *L, int status)
{
    if (WIFEXITED(status)) {
        lua_pushinteger(L, WEXITSTATUS(status));
        lua_setfield(L, -2, "code");
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        lua_pushinteger(L, sig);
        lua_setfield(L, -2, "signal");
        const char *name = sh_signal_name(sig);
        lua_pushstring(L, name ? name : "UNKNOWN");
        lua_setfield(L, -2, "signal_name");
    }
}

/* Process:poll() -> nil (still running) | {code | signal, signal_name}
 * A look without waiting, for callers that serve other input meanwhile
 * (the MCP server); output is not read: give such a child files, not
 * pipes. */
static int process_poll(lua_State *L)
{
    Process *p = check_process(L);
    if (p->pid > 0 && !process_reap(p, WNOHANG)) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 3);
    set_status(L, p->status);
    return 1;
}

/* A file system a run may only fill so far (a capture's staging). */
struct fs_watch {
    const char *path; /* NULL: none */
    double max_growth, min_free, next;
    double used0;
};

/* The state of one communicate() call. */
struct loop {
    const char *input;
    size_t input_len, input_off;
    double deadline, grace, kill_at;
    int timed_out, term_sent, kill_sent, interrupted;
    struct fs_watch watch;
    const char *limit;       /* which limit ended the run, or NULL */
    struct sh_notify notify; /* channel -1: no socket supervision */
    lua_State *L;            /* for the wake function (stack slot WAKE_FN) */
    int wake_fd;             /* -1: none, or already woken */
    int wake_failed;         /* its message is in stack slot WAKE_ERR */
};

/* communicate()'s stack slots beyond its two arguments */
#define SLOT_INPUT 3
#define SLOT_WATCH 4
#define SLOT_ALLOW 5
#define WAKE_FN 6
#define WAKE_ERR 7

static void loop_terminate(Process *p, struct loop *s)
{
    if (!s->term_sent) {
        process_signal(p, SIGTERM);
        s->term_sent = 1;
        s->kill_at = sh_monotonic() + s->grace;
    }
}

#define WATCH_EVERY 0.1 /* seconds between looks at the watched file system */

/* Bytes in use and bytes free for the unprivileged on path's file system. */
static int fs_usage(const char *path, double *used, double *avail)
{
    struct statvfs v;
    if (statvfs(path, &v) < 0) {
        return -1;
    }
    *used = (double)(v.f_blocks - v.f_bfree) * (double)v.f_frsize;
    *avail = (double)v.f_bavail * (double)v.f_frsize;
    return 0;
}

/* Ends the run once it has written more than it may (or left too little
 * free) on the watched file system. */
static void loop_watch(Process *p, struct loop *s)
{
    struct fs_watch *w = &s->watch;
    double now = sh_monotonic(), used, avail;
    if (w->path == NULL || s->limit != NULL || now < w->next) {
        return;
    }
    w->next = now + WATCH_EVERY;
    if (fs_usage(w->path, &used, &avail) < 0) {
        return;
    }
    if (used - w->used0 > w->max_growth || avail < w->min_free) {
        s->limit = "staging";
        loop_terminate(p, s);
    }
}

static void loop_clock(Process *p, struct loop *s)
{
    double now = sh_monotonic();
    if (!s->term_sent && now >= s->deadline) {
        s->timed_out = 1;
        loop_terminate(p, s);
    }
    if (s->term_sent && !s->kill_sent && now >= s->kill_at) {
        process_signal(p, SIGKILL);
        s->kill_sent = 1;
        s->kill_at = now + s->grace; /* then stop waiting for stray writers */
    }
}

static int loop_timeout_ms(const Process *p, const struct loop *s)
{
    double next = s->term_sent ? s->kill_at : s->deadline;
    int ms = -1;
    if (next < 1e300) {
        double left = (next - sh_monotonic()) * 1000.0 + 1.0;
        ms = left < 0 ? 0 : left > 1e9 ? 1000000000 : (int)left;
    }
    if (p->pid > 0 && p->pidfd < 0 && (ms < 0 || ms > 50)) {
        ms = 50; /* no pidfd: poll for the exit instead */
    }
    if (s->watch.path != NULL && (ms < 0 || ms > (int)(WATCH_EVERY * 1000))) {
        ms = (int)(WATCH_EVERY * 1000);
    }
    return ms;
}

static void loop_read(struct capture *c)
{
    char buf[CHUNK];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            capture_add(c, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        close(c->fd); /* EOF or error */
        c->fd = -1;
        return;
    }
}

static void loop_write(Process *p, struct loop *s)
{
    while (s->input_off < s->input_len) {
        ssize_t n = write(p->in_fd, s->input + s->input_off,
                          s->input_len - s->input_off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n < 0) {
            break; /* EPIPE: the child does not want the rest */
        }
        s->input_off += (size_t)n;
    }
    close(p->in_fd);
    p->in_fd = -1;
}

/* The wake fd is readable: call the wake function, once, under
 * lua_pcall (it returns true, or nil, msg).  A failure ends the run. */
static void loop_wake(Process *p, struct loop *s)
{
    lua_State *L = s->L;
    s->wake_fd = -1;
    lua_pushvalue(L, WAKE_FN);
    if (lua_pcall(L, 0, 2, 0) == LUA_OK) {
        if (lua_toboolean(L, -2)) {
            lua_pop(L, 2);
            return;
        }
        lua_remove(L, -2); /* the message */
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushliteral(L, "the wake function failed");
    }
    lua_replace(L, WAKE_ERR);
    s->wake_failed = 1;
    loop_terminate(p, s);
}

/* One poll round; returns 0 to go on, 1 when done, -1 with errno. */
static int loop_step(Process *p, struct loop *s)
{
    struct pollfd fds[7];
    int n = 0, io_open = p->out.fd >= 0 || p->err.fd >= 0;
    if (p->pid <= 0 && !io_open) {
        return 1;
    }
    int fd_list[4] = {p->out.fd, p->err.fd, p->in_fd,
                      p->pid > 0 ? p->pidfd : -1};
    for (int i = 0; i < 4; i++) {
        fds[n].fd = fd_list[i];
        fds[n].events = i == 2 ? POLLOUT : POLLIN;
        fds[n].revents = 0;
        n++;
    }
    n += sh_notify_pollfds(&s->notify, fds + n);
    int wake = -1;
    if (s->wake_fd >= 0) {
        wake = n++;
        fds[wake].fd = s->wake_fd;
        fds[wake].events = POLLIN;
        fds[wake].revents = 0;
    }
    int r = poll(fds, (nfds_t)n, loop_timeout_ms(p, s));
    if (r < 0 && errno != EINTR) {
        return -1;
    }
    if (r < 0 && sh_interrupted() && !s->interrupted) {
        s->interrupted = sh_interrupted();
        loop_terminate(p, s);
    }
    if (p->out.fd >= 0 && fds[0].revents) {
        loop_read(&p->out);
    }
    if (p->err.fd >= 0 && fds[1].revents) {
        loop_read(&p->err);
    }
    if (p->in_fd >= 0 && fds[2].revents) {
        loop_write(p, s);
    }
    if (r > 0) {
        sh_notify_step(&s->notify, fds + 4);
    }
    if (wake >= 0 && r > 0 && fds[wake].revents) {
        loop_wake(p, s);
    }
    if (p->pid > 0 && (p->pidfd < 0 || fds[3].revents)) {
        process_reap(p, WNOHANG);
    }
    loop_clock(p, s);
    loop_watch(p, s);
    if (p->pid <= 0 && s->kill_sent && sh_monotonic() >= s->kill_at) {
        return 1; /* stray holders of our pipes: stop waiting */
    }
    return 0;
}

/* [-0, +1, m] The result table of communicate(). */
static void push_result(lua_State *L, Process *p, struct loop *s, double t0)
{
    lua_createtable(L, 0, 16);
    set_status(L, p->status);
    lua_pushboolean(L, s->timed_out);
    lua_setfield(L, -2, "timed_out");
    if (s->interrupted) {
        lua_pushinteger(L, s->interrupted);
        lua_setfield(L, -2, "interrupted");
    }
    if (s->limit) {
        lua_pushstring(L, s->limit);
        lua_setfield(L, -2, "limit");
    }
    if (s->wake_failed) {
        lua_pushvalue(L, WAKE_ERR);
        lua_setfield(L, -2, "wake_error");
    }
    lua_pushnumber(L, sh_monotonic() - t0);
    lua_setfield(L, -2, "duration");
    lua_pushinteger(L, p->usage.ru_maxrss);
    lua_setfield(L, -2, "maxrss_kb");
    capture_push(L, &p->out, "stdout");
    capture_push(L, &p->err, "stderr");
}

static void loop_read_opts(lua_State *L, Process *p, struct loop *s)
{
    memset(s, 0, sizeof *s);
    /* first: nothing is owned yet if it raises */
    s->L = L;
    s->wake_fd = -1;
    if (lua_getfield(L, 2, "wake") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int w = lua_gettop(L);
        s->wake_fd = (int)sh_optfield_number(L, w, "fd", -1);
        luaL_argcheck(L, s->wake_fd >= 0, 2, "wake needs an fd");
        lua_getfield(L, w, "fn");
        luaL_checktype(L, -1, LUA_TFUNCTION);
        lua_replace(L, WAKE_FN);
    }
    lua_pop(L, 1);
    double timeout = sh_optfield_number(L, 2, "timeout", -1);
    s->deadline = timeout >= 0 ? sh_monotonic() + timeout : 1e308;
    s->grace = sh_optfield_number(L, 2, "kill_grace", 2.0);
    double cap = sh_optfield_number(L, 2, "max_capture", DEFAULT_CAPTURE);
    luaL_argcheck(L, cap >= 0, 2, "max_capture must not be negative");
    struct capture *cs[2] = {&p->out, &p->err};
    for (int i = 0; i < 2; i++) {
        cs[i]->keep.head_limit = (size_t)cap / 2;
        cs[i]->keep.ring_limit = (size_t)cap - (size_t)cap / 2;
    }
    p->out.tee.fd = (int)sh_optfield_number(L, 2, "tee_stdout", -1);
    p->err.tee.fd = (int)sh_optfield_number(L, 2, "tee_stderr", -1);
    p->out.tee.no_strings = p->err.tee.no_strings =
        sh_optfield_boolean(L, 2, "tee_no_strings", 0);
    s->notify.channel = s->notify.listener = -1;
    if (lua_getfield(L, 2, "sockets") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int t = lua_gettop(L);
        int fd = (int)sh_optfield_number(L, t, "channel", -1);
        lua_getfield(L, t, "allow");
        luaL_checktype(L, -1, LUA_TTABLE);
        int a = lua_gettop(L);
        int n = (int)luaL_len(L, a);
        s->notify.allow =
            lua_newuserdatauv(L, sizeof(char *) * (size_t)n + 1, 0);
        for (int i = 0; i < n; i++) {
            lua_geti(L, a, i + 1);
            s->notify.allow[i] = luaL_checkstring(L, -1);
            lua_pop(L, 1); /* still referenced by the table */
        }
        s->notify.nallow = n;
        /* the array, for the whole loop (the strings stay in opts) */
        lua_replace(L, SLOT_ALLOW);
        lua_settop(L, WAKE_ERR);
        s->notify.channel = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, 2, "watch") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int w = lua_gettop(L);
        struct fs_watch *fw = &s->watch;
        fw->path = sh_optfield_string(L, w, "path");
        fw->max_growth = sh_optfield_number(L, w, "max_growth", 1e300);
        fw->min_free = sh_optfield_number(L, w, "min_free", 0);
        double avail;
        luaL_argcheck(L, fw->path != NULL, 2, "watch needs a path");
        if (fs_usage(fw->path, &fw->used0, &avail) < 0) {
            fw->path = NULL; /* nothing to measure there: no watch */
        }
        lua_replace(L, SLOT_WATCH); /* keep it (and its path) referenced */
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, 2, "input") != LUA_TNIL) {
        s->input = luaL_checklstring(L, -1, &s->input_len);
        lua_replace(L, SLOT_INPUT); /* keep it referenced for the whole loop */
    } else {
        lua_pop(L, 1);
    }
}

/* Process:communicate(opts) -> result | nil, msg, code
 * opts: input (string for a piped stdin), timeout (s), kill_grace (s,
 * default 2), max_capture (bytes kept per stream, default 1 MiB: half from
 * the start, half from the end), tee_stdout, tee_stderr (fds to copy to),
 * tee_no_strings (leave terminal control strings out of those copies),
 * sockets ({channel = fd, allow = {path...}}: answer the sandbox's socket
 * calls, see notify.c),
 * watch ({path, max_growth, min_free} bytes: the run is ended, and
 * result.limit = "staging", once it has filled path's file system by more
 * than max_growth or left less than min_free),
 * wake ({fd, fn}: fn() is called once, the first time fd is readable; it
 * returns true or nil, msg, and a failure ends the run with
 * result.wake_error = msg).
 * result: code | signal, signal_name, timed_out, interrupted, duration,
 * maxrss_kb, wake_error, and for piped streams stdout, stdout_tail,
 * stdout_dropped, stdout_bytes (likewise stderr). */
static int process_communicate(lua_State *L)
{
    Process *p = check_process(L);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, WAKE_ERR);
    struct loop s;
    loop_read_opts(L, p, &s);
    luaL_argcheck(L, s.input == NULL || p->in_fd >= 0, 2,
                  "input needs stdin = \"pipe\"");
    if (p->in_fd >= 0 && s.input == NULL) {
        close(p->in_fd);
        p->in_fd = -1;
    }
    double t0 = sh_monotonic();
    int r;
    while ((r = loop_step(p, &s)) == 0) {
    }
    sh_notify_close(&s.notify);
    if (r < 0) {
        return sh_fail(L, "poll", errno);
    }
    if (p->pid > 0) { /* only after an abandoned wait: make sure */
        process_signal(p, SIGKILL);
        process_reap(p, 0);
    }
    push_result(L, p, &s, t0);
    capture_free(&p->out);
    capture_free(&p->err);
    return 1;
}

static int process_tostring(lua_State *L)
{
    Process *p = check_process(L);
    if (p->pid > 0) {
        lua_pushfstring(L, "Process (%d)", (int)p->pid);
    } else {
        lua_pushliteral(L, "Process (done)");
    }
    return 1;
}

/* set_subreaper(on) -> true | nil, msg, code.  While on, descendants
 * orphaned by a dying child (a sandbox whose bwrap was killed, say) become
 * our children instead of init's, so kill_orphan() can end them. */
static int proc_set_subreaper(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
#ifdef SH_CLIENT
    return sh_fail(L, "subreaper", ENOSYS);
#else
    if (prctl(PR_SET_CHILD_SUBREAPER, (unsigned long)lua_toboolean(L, 1)) < 0) {
        return sh_fail(L, "prctl(PR_SET_CHILD_SUBREAPER)", errno);
    }
#endif
    lua_pushboolean(L, 1);
    return 1;
}

/* kill_orphan(pid) -> true (it was our child: killed and reaped) | false.
 * Signals only a child of ours, never a pid that may have been reused:
 * an unreaped child's pid cannot be. */
static int proc_kill_orphan(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n > 0 && n <= INT_MAX, 1, "not a pid");
    pid_t pid = (pid_t)n;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        lua_pushboolean(L, 0); /* ECHILD: not ours */
        return 1;
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg proc_funcs[] = {{"spawn", proc_spawn},
                                      {"join_cgroups", proc_join_cgroups},
                                      {"exec", proc_exec},
                                      {"set_subreaper", proc_set_subreaper},
                                      {"kill_orphan", proc_kill_orphan},
                                      {NULL, NULL}};

static const luaL_Reg process_methods[] = {
    {"poll", process_poll},   {"communicate", process_communicate},
    {"kill", process_kill},   {"pid", process_pid},
    {"close", process_close}, {NULL, NULL}};

static const luaL_Reg process_meta[] = {{"__gc", process_close},
                                        {"__close", process_close},
                                        {"__tostring", process_tostring},
                                        {"__index", NULL},
                                        {NULL, NULL}};

static void create_meta(lua_State *L)
{
    luaL_newmetatable(L, SH_PROCESS_MT);
    luaL_setfuncs(L, process_meta, 0);
    luaL_newlib(L, process_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_shannot_core_proc(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, proc_funcs);
    return 1;
}
