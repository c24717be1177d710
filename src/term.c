/*
 * term.c: the terminal primitives for the review UI: whether an fd is a
 * terminal, its size, raw mode (owned by a userdata whose close restores
 * the saved settings), reading what the keyboard sent with a timeout, and
 * writing.  Decoding keys, drawing and every decision live in Lua
 * (lua/shannot/term.lua, lua/shannot/tui.lua).
 *
 * Lua: shannot.core.term; expected failures return nil, msg, code (code
 * is the errno name, e.g. "ENOTTY").
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "shannot.h"

/* Bytes read_key returns at most: a burst of keys or one long sequence. */
#define READ_MAX 256
/* Bytes a line reader asks one read(2) for. */
#define LINE_CHUNK (1024 * 1024)
#define SH_TERM_LINES_MT "shannot.term.lines"

typedef struct {
    int fd;               /* the terminal in raw mode; -1 when closed */
    int out;              /* where the leave string is written */
    struct termios saved; /* the settings to restore */
} Raw;

/* isatty(fd) -> boolean */
static int term_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* size(fd) -> cols, rows | nil, msg, code */
static int term_size(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0) {
        return sh_fail(L, "terminal size", errno);
    }
    lua_pushinteger(L, ws.ws_col);
    lua_pushinteger(L, ws.ws_row);
    return 2;
}

/* The raw settings: bytes as typed, no echo, no line editing, no flow
 * control; Ctrl-C still raises SIGINT (the host's interrupt path, which
 * unwinds to the Raw's close), but Ctrl-Z is off: a stopped process would
 * leave the shell in our raw mode. */
static void make_raw(struct termios *t)
{
    t->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR |
                              IGNCR | ICRNL | IXON);
    t->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN);
    t->c_lflag |= ISIG;
    t->c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t->c_cflag |= CS8;
    t->c_cc[VMIN] = 1;
    t->c_cc[VTIME] = 0;
    t->c_cc[VSUSP] = _POSIX_VDISABLE;
#ifdef VDSUSP
    t->c_cc[VDSUSP] = _POSIX_VDISABLE;
#endif
}

/* raw(fd [, leave [, out]]) -> Raw | nil, msg, code
 * Puts the terminal fd in raw mode.  Raw:close() (also __close, __gc)
 * writes `leave` to fd `out` (default fd), then restores the settings. */
static int term_raw(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    luaL_optstring(L, 2, NULL);
    int out = (int)luaL_optinteger(L, 3, fd);
    lua_settop(L, 3);
    /* Own the resource before acquiring it (STYLE 10): closed until set. */
    Raw *r = lua_newuserdatauv(L, sizeof *r, 1);
    r->fd = -1;
    r->out = out;
    luaL_setmetatable(L, SH_TERM_RAW_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1); /* the leave string, or nil */
    struct termios t;
    if (tcgetattr(fd, &t) < 0) {
        return sh_fail(L, "terminal settings", errno);
    }
    r->saved = t;
    make_raw(&t);
    /* Why TCSAFLUSH: keys typed before the UI began are not commands. */
    if (tcsetattr(fd, TCSAFLUSH, &t) < 0) {
        return sh_fail(L, "raw mode", errno);
    }
    r->fd = fd;
    return 1;
}

/* Raw:close(): idempotent; writes the leave string, restores settings */
static int raw_close(lua_State *L)
{
    Raw *r = luaL_checkudata(L, 1, SH_TERM_RAW_MT);
    if (r->fd < 0) {
        return 0;
    }
    size_t len;
    lua_getiuservalue(L, 1, 1); /* Raw ... leave */
    const char *leave = lua_tolstring(L, -1, &len);
    if (leave != NULL) {
        sh_write_all(r->out, leave, len); /* nothing to do on failure */
    }
    lua_pop(L, 1);
    /* Why TCSADRAIN: the leave string reaches the terminal first. */
    tcsetattr(r->fd, TCSADRAIN, &r->saved);
    r->fd = -1;
    return 0;
}

/* Raw:active() -> boolean: false once closed */
static int raw_active(lua_State *L)
{
    Raw *r = luaL_checkudata(L, 1, SH_TERM_RAW_MT);
    lua_pushboolean(L, r->fd >= 0);
    return 1;
}

/* [-0, +1|3, m] Pushes what one read(2) of at most max bytes of fd
 * returned. */
static int push_read(lua_State *L, int fd, size_t max)
{
    luaL_Buffer b;
    char *buf = luaL_buffinitsize(L, &b, max);
    ssize_t n;
    do {
        n = read(fd, buf, max);
    } while (n < 0 && errno == EINTR && sh_interrupted() == 0);
    if (n < 0) {
        return sh_fail(L, "read from the terminal", errno);
    }
    if (n == 0) { /* the terminal hung up */
        return sh_fail(L, "read from the terminal", EIO);
    }
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* read_key(fd, timeout_ms) -> bytes | "" (timed out) | nil, msg, code
 * Waits for input at most timeout_ms (negative: forever), then returns
 * the bytes one read(2) gives: a key, an escape sequence or several
 * keys.  A SIGINT or SIGTERM ends the wait: nil, msg, "EINTR". */
/* Waits for input on fd at most ms (negative: forever): 1 when there is
 * some, 0 on a timeout (or a signal other than SIGINT/SIGTERM: the
 * caller polls again), -1 with errno (EINTR: interrupted). */
static int wait_input(int fd, lua_Integer ms)
{
    int timeout = ms > 3600000 ? 3600000 : (int)(ms < 0 ? -1 : ms);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout);
    if (n < 0 && errno == EINTR && sh_interrupted() == 0) {
        return 0;
    }
    return n < 0 ? -1 : (n > 0);
}

static int term_read_key(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    int n = wait_input(fd, luaL_checkinteger(L, 2));
    if (n < 0) {
        return sh_fail(L, "waiting for a key", errno);
    }
    if (n == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return push_read(L, fd, READ_MAX);
}

/* A stream of lines read from fd into one buffer kept across lines, so a
 * long line costs a read per LINE_CHUNK and one copy into its string.  A
 * line longer than max is dropped whole: its start is discarded once the
 * buffer passes max, the rest up to its newline as it arrives. */
typedef struct {
    int fd;
    size_t max;   /* the longest line kept */
    char *buf;    /* the unfinished line; NULL once closed */
    size_t len;   /* bytes of it in buf */
    size_t cap;   /* bytes buf holds */
    int skipping; /* inside a line over max, up to its newline */
} Lines;

/* lines(fd, max) -> reader */
static int term_lines(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_Integer max = luaL_checkinteger(L, 2);
    luaL_argcheck(L,
                  max > 0 && max <= ((lua_Integer)1 << 40) &&
                      (uint64_t)max <= SIZE_MAX / 4,
                  2, "a positive size");
    Lines *r = lua_newuserdatauv(L, sizeof *r, 0);
    *r = (Lines){.fd = fd, .max = (size_t)max};
    luaL_setmetatable(L, SH_TERM_LINES_MT);
    r->buf = malloc(LINE_CHUNK);
    if (r->buf == NULL) {
        return luaL_error(L, "out of memory");
    }
    r->cap = LINE_CHUNK;
    return 1;
}

static int lines_close(lua_State *L)
{
    Lines *r = luaL_checkudata(L, 1, SH_TERM_LINES_MT);
    free(r->buf);
    r->buf = NULL;
    return 0;
}

/* reader:shrink() -> true: the buffer back to LINE_CHUNK when no line is
 * unfinished (a long line grew it; an idle server gives the memory back) */
static int lines_shrink(lua_State *L)
{
    Lines *r = luaL_checkudata(L, 1, SH_TERM_LINES_MT);
    if (r->buf != NULL && r->len == 0 && r->cap > LINE_CHUNK) {
        char *small = realloc(r->buf, LINE_CHUNK);
        if (small != NULL) {
            r->buf = small;
            r->cap = LINE_CHUNK;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Room for a read of LINE_CHUNK after the unfinished line: 0 or -1. */
static int lines_room(Lines *r)
{
    if (r->cap - r->len >= LINE_CHUNK) {
        return 0;
    }
    size_t cap = r->cap;
    do {
        if (cap > SIZE_MAX / 2) {
            return -1;
        }
        cap *= 2;
    } while (cap - r->len < LINE_CHUNK);
    char *grown = realloc(r->buf, cap);
    if (grown == NULL) {
        return -1;
    }
    r->buf = grown;
    r->cap = cap;
    return 0;
}

/* [-0, +0, m] The lines ended in the bytes from `from` on, appended to
 * the table on top; the count of lines over max dropped. */
static int lines_split(lua_State *L, Lines *r, size_t from)
{
    int dropped = 0;
    size_t start = 0;
    const char *nl;
    while ((nl = memchr(r->buf + from, '\n', r->len - from)) != NULL) {
        size_t end = (size_t)(nl - r->buf);
        if (r->skipping) {
            r->skipping = 0;
        } else if (end - start > r->max) {
            dropped++;
        } else {
            lua_pushlstring(L, r->buf + start, end - start);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
        start = from = end + 1;
    }
    memmove(r->buf, r->buf + start, r->len - start);
    r->len -= start;
    if (r->skipping) {
        r->len = 0;
    } else if (r->len > r->max) {
        r->len = 0;
        r->skipping = 1;
        dropped++;
    }
    return dropped;
}

/* reader:read(timeout_ms) -> lines, dropped [, timed_out] | nil, msg, code
 * Waits for input at most timeout_ms, reads once and returns the lines
 * that ended (a table, empty on a timeout; without their newlines), how
 * many lines over max were dropped (each counted once, when it passes
 * max or ends), and true when nothing came in time.  At the end of the
 * stream: nil, msg, "EIO" (an unfinished last line is dropped); SIGINT
 * or SIGTERM: "EINTR". */
static int lines_read(lua_State *L)
{
    Lines *r = luaL_checkudata(L, 1, SH_TERM_LINES_MT);
    if (r->buf == NULL) {
        return luaL_error(L, "read of a closed line reader");
    }
    int n = wait_input(r->fd, luaL_checkinteger(L, 2));
    if (n < 0) {
        return sh_fail(L, "waiting for input", errno);
    }
    lua_newtable(L);
    if (n == 0) {
        lua_pushinteger(L, 0);
        lua_pushboolean(L, 1);
        return 3;
    }
    if (lines_room(r) < 0) {
        return sh_fail(L, "read a line", ENOMEM);
    }
    ssize_t got;
    do {
        got = read(r->fd, r->buf + r->len, LINE_CHUNK);
    } while (got < 0 && errno == EINTR && sh_interrupted() == 0);
    if (got < 0) {
        return sh_fail(L, "read input", errno);
    }
    if (got == 0) {
        return sh_fail(L, "read input", EIO);
    }
    size_t from = r->len;
    r->len += (size_t)got;
    lua_pushinteger(L, lines_split(L, r, from));
    return 2;
}

/* write(fd, s) -> true | nil, msg, code (all of s, retrying on EINTR) */
static int term_write(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    if (sh_write_all(fd, s, len) < 0) {
        return sh_fail(L, "write to the terminal", errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* grow_pipe(fd, bytes) -> size | nil, msg, code
 * Asks for a pipe buffer of at least bytes on fd (F_SETPIPE_SZ; the
 * kernel caps it at fs.pipe-max-size for an unprivileged caller), so a
 * long message crosses in few reads instead of one per 64 KiB.  EBADF
 * when fd is not a pipe. */
static int term_grow_pipe(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_Integer want = luaL_checkinteger(L, 2);
    luaL_argcheck(L, want > 0 && want <= INT32_MAX, 2, "a positive size");
#ifdef F_SETPIPE_SZ
    int got = fcntl(fd, F_SETPIPE_SZ, (int)want);
    if (got < 0) {
        return sh_fail(L, "grow the pipe", errno);
    }
    lua_pushinteger(L, got);
    return 1;
#else
    (void)fd;
    return sh_fail(L, "grow the pipe", ENOSYS);
#endif
}

static const luaL_Reg term_funcs[] = {
    {"isatty", term_isatty}, {"size", term_size},
    {"raw", term_raw},       {"read_key", term_read_key},
    {"write", term_write},   {"grow_pipe", term_grow_pipe},
    {"lines", term_lines},   {NULL, NULL}};

static const luaL_Reg lines_methods[] = {{"read", lines_read},
                                         {"shrink", lines_shrink},
                                         {"close", lines_close},
                                         {NULL, NULL}};

static const luaL_Reg lines_meta[] = {{"__gc", lines_close},
                                      {"__close", lines_close},
                                      {"__index", NULL},
                                      {NULL, NULL}};

static const luaL_Reg raw_methods[] = {
    {"active", raw_active}, {"close", raw_close}, {NULL, NULL}};

static const luaL_Reg raw_meta[] = {{"__gc", raw_close},
                                    {"__close", raw_close},
                                    {"__index", NULL},
                                    {NULL, NULL}};

static void create_meta(lua_State *L)
{
    luaL_newmetatable(L, SH_TERM_RAW_MT);
    luaL_setfuncs(L, raw_meta, 0);
    luaL_newlib(L, raw_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, SH_TERM_LINES_MT);
    luaL_setfuncs(L, lines_meta, 0);
    luaL_newlib(L, lines_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_shannot_core_term(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, term_funcs);
    return 1;
}
