/*
 * util.c: helpers shared by the primitive families (sh_*): the uniform
 * `nil, msg, code` failure, the monotonic clock, fd hygiene, option
 * table readers, the one stat table and the one lazy dlopen loader.  Nothing
 * here is visible to Lua by itself.
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#ifndef SH_CLIENT
#include <sys/syscall.h>
#endif
#include <time.h>
#include <unistd.h>

#include "shannot.h"

#ifdef SH_CLIENT
/* The names the Lua side tells failures apart by; glibc's
 * strerrorname_np is not everywhere. */
static const struct {
    int err;
    const char *name;
} ERRNO_NAMES[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},
    {ENOEXEC, "ENOEXEC"},
    {EBADF, "EBADF"},
    {ECHILD, "ECHILD"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},
    {ENODEV, "ENODEV"},
    {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},
    {ENOTTY, "ENOTTY"},
    {ETXTBSY, "ETXTBSY"},
    {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},
    {ESPIPE, "ESPIPE"},
    {EROFS, "EROFS"},
    {EMLINK, "EMLINK"},
    {EPIPE, "EPIPE"},
    {ERANGE, "ERANGE"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOSYS, "ENOSYS"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {ELOOP, "ELOOP"},
    {ENOTSUP, "ENOTSUP"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {ECONNRESET, "ECONNRESET"},
    {EHOSTUNREACH, "EHOSTUNREACH"},
    {ENETUNREACH, "ENETUNREACH"},
    {EDQUOT, "EDQUOT"},
    {EOVERFLOW, "EOVERFLOW"},
    {ENOTSOCK, "ENOTSOCK"},
};

static const char *sh_errname(int errnum)
{
    for (size_t i = 0; i < sizeof ERRNO_NAMES / sizeof ERRNO_NAMES[0]; i++) {
        if (ERRNO_NAMES[i].err == errnum) {
            return ERRNO_NAMES[i].name;
        }
    }
    return "EUNKNOWN";
}
#else
static const char *sh_errname(int errnum)
{
    const char *name = strerrorname_np(errnum);
    return name ? name : "EUNKNOWN";
}
#endif

#ifdef SH_CLIENT
/* Signals by name, as libssh and the Lua side write them ("TERM"): the
 * POSIX ones, with this system's numbers (glibc's sigabbrev_np is not
 * everywhere). */
static const struct {
    int sig;
    const char *name;
} SIGNALS[] = {
    {SIGHUP, "HUP"},       {SIGINT, "INT"},   {SIGQUIT, "QUIT"},
    {SIGILL, "ILL"},       {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"},
    {SIGBUS, "BUS"},       {SIGFPE, "FPE"},   {SIGKILL, "KILL"},
    {SIGUSR1, "USR1"},     {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"},
    {SIGPIPE, "PIPE"},     {SIGALRM, "ALRM"}, {SIGTERM, "TERM"},
    {SIGCHLD, "CHLD"},     {SIGCONT, "CONT"}, {SIGSTOP, "STOP"},
    {SIGTSTP, "TSTP"},     {SIGTTIN, "TTIN"}, {SIGTTOU, "TTOU"},
    {SIGURG, "URG"},       {SIGXCPU, "XCPU"}, {SIGXFSZ, "XFSZ"},
    {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"}, {SIGSYS, "SYS"},
};

const char *sh_signal_name(int sig)
{
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
        if (SIGNALS[i].sig == sig) {
            return SIGNALS[i].name;
        }
    }
    return NULL;
}

int sh_signal_max(void)
{
    return 64;
}
#else
const char *sh_signal_name(int sig)
{
    return sigabbrev_np(sig);
}

int sh_signal_max(void)
{
    return NSIG;
}
#endif

int sh_signal_number(const char *name)
{
    for (int sig = 1; sig < sh_signal_max(); sig++) {
        const char *abbrev = sh_signal_name(sig);
        if (abbrev != NULL && strcmp(abbrev, name) == 0) {
            return sig;
        }
    }
    return 0;
}

int sh_pipe_cloexec(int fds[2])
{
#ifdef SH_CLIENT
    if (pipe(fds) < 0) {
        return -1;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#else
    return pipe2(fds, O_CLOEXEC);
#endif
}

int sh_mkstemp_cloexec(char *template)
{
#ifdef SH_CLIENT
    int fd = mkstemp(template);
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return fd;
#else
    return mkostemp(template, O_CLOEXEC);
#endif
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
#ifndef SH_CLIENT
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC) ==
        0) {
        return;
    }
#endif
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
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
    /* macOS under _POSIX_C_SOURCE: no st_mtim (untried: no Mac here) */
    out->mtime_nsec = (lua_Integer)st->st_mtimensec;
#else
    out->mtime_nsec = (lua_Integer)st->st_mtim.tv_nsec;
#endif
    out->has_ids = 1;
    out->nlink = (lua_Integer)st->st_nlink;
    out->ino = (lua_Integer)st->st_ino;
    out->dev = (lua_Integer)st->st_dev;
    out->rdev = (lua_Integer)st->st_rdev;
    out->blocks = (lua_Integer)st->st_blocks;
}

void sh_push_stat(lua_State *L, const struct sh_stat *st)
{
    lua_createtable(L, 0, 13);
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

/* ---- the pass-through copy of a command's output (proc.c, ssh.c) ---- */

enum { F_TEXT, F_ESC, F_C2, F_STRING, F_STRING_ESC };
#define MAX_STRING 4096 /* a longer "string" is text the terminal shows */

/* C1 controls that open a string: DCS, SOS, OSC, PM, APC (0x90 0x98
 * 0x9d 0x9e 0x9f), as a raw byte or UTF-8 encoded (0xc2 then the byte). */
static int c1_opens_string(unsigned char b)
{
    return b == 0x90 || b == 0x98 || b == 0x9d || b == 0x9e || b == 0x9f;
}

/* How many continuation bytes a UTF-8 lead byte announces (0: none). */
static int utf8_continuations(unsigned char b)
{
    if (b >= 0xc3 && b <= 0xdf) {
        return 1;
    }
    if (b >= 0xe0 && b <= 0xef) {
        return 2;
    }
    return b >= 0xf0 && b <= 0xf4 ? 3 : 0;
}

static void open_string(struct sh_tee *c)
{
    c->state = F_STRING;
    c->string = 0;
}

/* One byte of text (F_TEXT): kept, or the start of something held back.
 * A byte 0x80-0x9f inside a UTF-8 character is part of it, never a C1. */
static size_t filter_text(struct sh_tee *c, unsigned char b, char *out)
{
    if (c->cont > 0 && (b & 0xc0) == 0x80) {
        c->cont--;
        out[0] = (char)b;
        return 1;
    }
    c->cont = 0;
    if (b == 0x1b) {
        c->state = F_ESC;
    } else if (b == 0xc2) {
        c->state = F_C2;
    } else if (c1_opens_string(b)) {
        open_string(c);
    } else {
        c->cont = utf8_continuations(b);
        out[0] = (char)b;
        return 1;
    }
    return 0;
}

/* The copy for a terminal without its control strings: OSC (title,
 * clipboard: OSC 52, hyperlinks), DCS, APC, PM and SOS, each from its
 * opener (ESC ] or the C1 control, raw or UTF-8 encoded) to BEL or ST
 * (ESC \ or 0x9c).  Colours and cursor movement (CSI) pass.  Why: a
 * command's output must not set the reviewer's clipboard or title.  The
 * kept copy is untouched.  Returns the length written to out (<= n + 1). */
static size_t tee_filtered(struct sh_tee *c, const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)p[i];
        switch (c->state) {
        case F_TEXT:
            o += filter_text(c, b, out + o);
            break;
        case F_ESC:
            c->state = F_TEXT;
            if (b == ']' || b == 'P' || b == '_' || b == '^' || b == 'X') {
                open_string(c);
            } else if (b == 0x1b) {
                out[o++] = 0x1b; /* ESC ESC: the first is lone */
                c->state = F_ESC;
            } else {
                out[o++] = 0x1b;
                out[o++] = (char)b;
            }
            break;
        case F_C2:
            c->state = F_TEXT;
            if (c1_opens_string(b)) {
                open_string(c);
            } else {
                out[o++] = (char)0xc2;
                o += filter_text(c, b, out + o);
            }
            break;
        default: /* F_STRING, F_STRING_ESC */
            if (b == 0x07 || b == 0x9c ||
                (c->state == F_STRING_ESC && b == '\\')) {
                c->state = F_TEXT;
            } else {
                c->state = b == 0x1b ? F_STRING_ESC : F_STRING;
                if (++c->string > MAX_STRING) {
                    c->state = F_TEXT; /* never terminated: plain text */
                }
            }
            break;
        }
    }
    return o;
}

/* The copy: each chunk as it comes, filtered when asked (a chunk is cut
 * into pieces the buffer holds: the filter writes at most n + 1 bytes). */
void sh_tee_write(struct sh_tee *c, const char *p, size_t n)
{
    enum { PIECE = 65536 };
    char buf[PIECE + 2];
    while (c->fd >= 0 && n > 0) {
        size_t piece = n < PIECE ? n : PIECE;
        const char *q = p;
        size_t m = piece;
        if (c->no_strings) {
            m = tee_filtered(c, p, piece, buf);
            q = buf;
        }
        if (m > 0 && sh_write_all(c->fd, q, m) < 0) {
            c->fd = -1; /* the reader went away: capture on, copy no more */
        }
        p += piece;
        n -= piece;
    }
}
