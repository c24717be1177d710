/*
 * util.c: helpers shared by the primitive families (sh_*): the uniform
 * `nil, msg, code` failure, the monotonic clock, fd hygiene, option
 * table readers, the one stat table and the one lazy dlopen loader.  Nothing
 * here is visible to Lua by itself.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
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
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC) ==
        0) {
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

/* The head and the tail of a stream, within fixed limits (proc.c, ssh.c). */
static void keep_head(struct sh_keep *c, const char **p, size_t *n)
{
    size_t take = c->head_limit - c->head_len;
    if (take > *n) {
        take = *n;
    }
    if (take == 0) {
        return;
    }
    if (c->head_len + take > c->head_cap) {
        size_t cap = c->head_cap ? c->head_cap * 2 : 4096;
        while (cap < c->head_len + take) {
            cap *= 2;
        }
        if (cap > c->head_limit) {
            cap = c->head_limit;
        }
        char *nh = realloc(c->head, cap);
        if (nh == NULL) { /* keep what we have: the rest counts as dropped */
            c->head_limit = c->head_len;
            return;
        }
        c->head = nh;
        c->head_cap = cap;
    }
    memcpy(c->head + c->head_len, *p, take);
    c->head_len += take;
    *p += take;
    *n -= take;
}

static void keep_tail(struct sh_keep *c, const char *p, size_t n)
{
    size_t cap = c->ring_limit;
    if (n == 0 || cap == 0) {
        return;
    }
    if (c->ring == NULL && (c->ring = malloc(cap)) == NULL) {
        c->ring_limit = 0;
        return;
    }
    if (n >= cap) { /* only the last `cap` bytes survive */
        memcpy(c->ring, p + n - cap, cap);
        c->ring_start = 0;
        c->ring_len = cap;
        return;
    }
    size_t end = (c->ring_start + c->ring_len) % cap;
    size_t first = cap - end < n ? cap - end : n;
    memcpy(c->ring + end, p, first);
    memcpy(c->ring, p + first, n - first);
    c->ring_len += n;
    if (c->ring_len > cap) {
        c->ring_start = (c->ring_start + c->ring_len - cap) % cap;
        c->ring_len = cap;
    }
}

void sh_keep_add(struct sh_keep *k, const char *p, size_t n)
{
    k->total += n;
    keep_head(k, &p, &n);
    keep_tail(k, p, n);
}

void sh_keep_free(struct sh_keep *k)
{
    free(k->head);
    free(k->ring);
    k->head = k->ring = NULL;
    k->head_len = k->head_cap = k->ring_start = k->ring_len = 0;
}

void *sh_dlopen_all(const char *const *sonames, const char *const *names,
                    void **f, size_t n)
{
    void *lib = NULL;
    for (size_t i = 0; sonames[i] != NULL && lib == NULL; i++) {
        lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
    }
    for (size_t i = 0; lib != NULL && i < n; i++) {
        if ((f[i] = dlsym(lib, names[i])) == NULL) {
            dlclose(lib);
            return NULL;
        }
    }
    return lib;
}

void sh_set_int(lua_State *L, const char *key, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

const char *sh_type_name(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFREG:
        return "file";
    case S_IFDIR:
        return "dir";
    case S_IFLNK:
        return "link";
    case S_IFCHR:
        return "char";
    case S_IFBLK:
        return "block";
    case S_IFIFO:
        return "fifo";
    case S_IFSOCK:
        return "socket";
    default:
        return "unknown";
    }
}

void sh_stat_from(struct sh_stat *out, const struct stat *st)
{
    out->mode = st->st_mode;
    out->uid = st->st_uid;
    out->gid = st->st_gid;
    out->size = st->st_size;
    out->mtime = (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9;
    out->mtime_sec = (lua_Integer)st->st_mtim.tv_sec;
    out->mtime_nsec = (lua_Integer)st->st_mtim.tv_nsec;
    out->has_ids = 1;
    out->nlink = (lua_Integer)st->st_nlink;
    out->ino = (lua_Integer)st->st_ino;
    out->dev = (lua_Integer)st->st_dev;
    out->rdev = (lua_Integer)st->st_rdev;
    out->blocks = (lua_Integer)st->st_blocks;
}

void sh_push_stat(lua_State *L, const struct sh_stat *st)
{
    lua_createtable(L, 0, 10);
    lua_pushstring(L, sh_type_name(st->mode));
    lua_setfield(L, -2, "type");
    sh_set_int(L, "mode", st->mode & 07777);
    sh_set_int(L, "uid", st->uid);
    sh_set_int(L, "gid", st->gid);
    sh_set_int(L, "size", st->size);
    lua_pushnumber(L, st->mtime);
    lua_setfield(L, -2, "mtime");
    sh_set_int(L, "mtime_sec", st->mtime_sec);
    sh_set_int(L, "mtime_nsec", st->mtime_nsec);
    if (st->has_ids) {
        sh_set_int(L, "nlink", st->nlink);
        sh_set_int(L, "ino", st->ino);
        sh_set_int(L, "dev", st->dev);
        sh_set_int(L, "rdev", st->rdev);
        sh_set_int(L, "blocks", st->blocks);
    }
}
