/*
 * sys.c: facts about this process and machine: identity, clocks, uname,
 * whether an fd is a terminal; its heap.
 *
 * Lua: shannot.core.sys
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#ifndef SH_CLIENT
#include <malloc.h>
#endif
#include <pwd.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "shannot.h"

/* [-0, +0, m] Sets user and home from the password database, if found. */
static void set_user(lua_State *L, uid_t uid)
{
    char buf[4096];
    struct passwd pw, *found = NULL;
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) {
        lua_pushstring(L, pw.pw_name);
        lua_setfield(L, -2, "user");
        lua_pushstring(L, pw.pw_dir);
        lua_setfield(L, -2, "home");
    }
}

/* ids([names]) -> {uid, gid, euid, egid, pid, ppid, user?, home?}; names
 * false: without user and home (no password database lookup) */
static int sys_ids(lua_State *L)
{
    int names = lua_isnoneornil(L, 1) || lua_toboolean(L, 1);
    lua_createtable(L, 0, 8);
    if (names) {
        set_user(L, getuid());
    }
    sh_set_int(L, "uid", getuid());
    sh_set_int(L, "gid", getgid());
    sh_set_int(L, "euid", geteuid());
    sh_set_int(L, "egid", getegid());
    sh_set_int(L, "pid", getpid());
    sh_set_int(L, "ppid", getppid());
    return 1;
}

/* uname() -> {sysname, release, machine, nodename} | nil, msg, code */
static int sys_uname(lua_State *L)
{
    struct utsname u;
    if (uname(&u) < 0) {
        return sh_fail(L, "uname", errno);
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, u.sysname);
    lua_setfield(L, -2, "sysname");
    lua_pushstring(L, u.release);
    lua_setfield(L, -2, "release");
    lua_pushstring(L, u.machine);
    lua_setfield(L, -2, "machine");
    lua_pushstring(L, u.nodename);
    lua_setfield(L, -2, "nodename");
    return 1;
}

/* monotonic() -> seconds (float) on a clock that never goes back */
static int sys_monotonic(lua_State *L)
{
    lua_pushnumber(L, sh_monotonic());
    return 1;
}

/* time() -> seconds since the epoch (float) */
static int sys_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

/* getcwd() -> the current directory | nil, msg, code */
static int sys_getcwd(lua_State *L)
{
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof buf) == NULL) {
        return sh_fail(L, "getcwd", errno);
    }
    lua_pushstring(L, buf);
    return 1;
}

/* sleep(seconds): a pause (a signal ends it early) */
static int sys_sleep(lua_State *L)
{
    double t = luaL_checknumber(L, 1);
    luaL_argcheck(L, t >= 0 && t <= 3600, 1, "0 to 3600 seconds");
    struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
    nanosleep(&ts, NULL);
    return 0;
}

/* interrupted() -> number of the signal (SIGINT, SIGTERM) caught, or nil */
/* clear_interrupt(): the interrupt was handled (the REPL cancels a line
 * or a command on Ctrl-C and goes on) */
static int sys_clear_interrupt(lua_State *L)
{
    (void)L;
    sh_clear_interrupt();
    return 0;
}

static int sys_interrupted(lua_State *L)
{
    int sig = sh_interrupted();
    if (sig == 0) {
        return 0;
    }
    lua_pushinteger(L, sig);
    return 1;
}

static struct sh_heap *heap_of(lua_State *L)
{
    void *ud;
    if (lua_getallocf(L, &ud) != sh_heap_alloc) {
        luaL_error(L, "the Lua state does not use shannot's allocator");
    }
    return ud;
}

/* heap_used() -> bytes the Lua state has allocated since it began counting */
static int sys_heap_used(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)heap_of(L)->used);
    return 1;
}

/* heap_cap(bytes | nil) -> refused: caps the state's allocations at bytes
 * (nil: no cap); says whether an allocation was refused under the cap
 * this call replaces */
static int sys_heap_cap(lua_State *L)
{
    struct sh_heap *h = heap_of(L);
    long long cap = LLONG_MAX;
    if (!lua_isnoneornil(L, 1)) {
        cap = (long long)luaL_checkinteger(L, 1);
    }
    lua_pushboolean(L, h->refused);
    h->refused = 0;
    h->cap = cap;
    return 1;
}

/* keep_freed(bytes) -> true | false (not glibc)
 * Asks malloc to keep up to bytes of freed memory for reuse instead of
 * giving it back to the kernel at once, and to take blocks below that
 * (at most glibc's 32 MiB cap) from the heap, not from mmap: a process
 * that handles one long message after another (the MCP server) then
 * reuses its pages rather than faulting fresh ones in for each. */
static int sys_keep_freed(lua_State *L)
{
    lua_Integer bytes = luaL_checkinteger(L, 1);
    luaL_argcheck(L, bytes > 0 && bytes <= INT_MAX, 1, "a positive size");
#if !defined(SH_CLIENT) && defined(__GLIBC__)
    int mmap_max = 32 * 1024 * 1024;
    int ok =
        mallopt(M_TRIM_THRESHOLD, (int)bytes) &&
        mallopt(M_MMAP_THRESHOLD, bytes < mmap_max ? (int)bytes : mmap_max);
    lua_pushboolean(L, ok);
#else
    lua_pushboolean(L, 0);
#endif
    return 1;
}

/* release_freed() -> true: gives the memory malloc keeps back to the
 * kernel (malloc_trim), once the work that needed it is over */
static int sys_release_freed(lua_State *L)
{
#if !defined(SH_CLIENT) && defined(__GLIBC__)
    malloc_trim(0);
#endif
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg sys_funcs[] = {{"keep_freed", sys_keep_freed},
                                     {"release_freed", sys_release_freed},
                                     {"heap_used", sys_heap_used},
                                     {"heap_cap", sys_heap_cap},
                                     {"interrupted", sys_interrupted},
                                     {"clear_interrupt", sys_clear_interrupt},
                                     {"ids", sys_ids},
                                     {"uname", sys_uname},
                                     {"monotonic", sys_monotonic},
                                     {"time", sys_time},
                                     {"sleep", sys_sleep},
                                     {"getcwd", sys_getcwd},
                                     {NULL, NULL}};

int luaopen_shannot_core_sys(lua_State *L)
{
    luaL_newlib(L, sys_funcs);
    /* client: true in the client build (make client), which has no local
     * sandbox (no shannot.core.sandbox, shannot.core.seccomp) */
#ifdef SH_CLIENT
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "client");
    return 1;
}
