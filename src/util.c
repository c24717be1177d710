/*
 * util.c: helpers shared by the primitive families (sh_*): the uniform
 * `nil, msg, code` failure, the monotonic clock, fd hygiene and option
 * table readers.  Nothing here is visible to Lua by itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shannot.h"

static const char *sh_errname(int errnum)
{
    const char *name = strerrorname_np(errnum);
    return name ? name : "EUNKNOWN";
}

int sh_fail(lua_State *L, const char *what, int errnum)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(errnum));
    lua_pushstring(L, sh_errname(errnum));
    return 3;
}

int sh_failf(lua_State *L, int errnum, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sh_fail(L, what, errnum);
}

double sh_monotonic(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sh_cloexec_from(int lowfd)
{
    /* Why: a leaked fd inside the sandbox is the "Leaky Vessels" pattern
     * (runc CVE-2024-21626); nothing but what the caller keeps may pass. */
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC)
        == 0) {
        return;
    }
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) {
        max = 65536;
    }
    for (int fd = lowfd; fd < max; fd++) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
}

int sh_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

const char *sh_optfield_string(lua_State *L, int idx, const char *key)
{
    const char *s = NULL;

    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL) {
        /* Why not lua_tostring: a number would become a new string that
         * the pop below frees; only a string the table holds stays alive. */
        if (t != LUA_TSTRING) {
            luaL_error(L, "option '%s' must be a string", key);
        }
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    /* The string stays alive: it is still referenced by the table. */
    return s;
}

double sh_optfield_number(lua_State *L, int idx, const char *key, double def)
{
    double v = def;

    if (lua_getfield(L, idx, key) != LUA_TNIL) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok) {
            luaL_error(L, "option '%s' must be a number", key);
        }
    }
    lua_pop(L, 1);
    return v;
}

int sh_optfield_boolean(lua_State *L, int idx, const char *key, int def)
{
    int v = def;

    if (lua_getfield(L, idx, key) != LUA_TNIL) {
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}
