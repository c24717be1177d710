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
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "shannot.h"

/* Bytes read_key returns at most by default: a burst of keys or one long
 * sequence; a caller reading a stream (the MCP server) asks for more, up to
 * READ_LIMIT, so a long line costs few reads. */
#define READ_MAX 256
#define READ_LIMIT (1024 * 1024)

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

/* read_key(fd, timeout_ms [, max]) -> bytes | "" (timed out) | nil, msg, code
 * Waits for input at most timeout_ms (negative: forever), then returns
 * the bytes one read(2) gives, at most max (default READ_MAX, at most
 * READ_LIMIT): a key, an escape sequence or several keys.  A SIGINT or
 * SIGTERM ends the wait: nil, msg, "EINTR". */
static int term_read_key(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_Integer ms = luaL_checkinteger(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, READ_MAX);
    luaL_argcheck(L, max > 0 && max <= READ_LIMIT, 3, "between 1 and 1 MiB");
    int timeout = ms > 3600000 ? 3600000 : (int)(ms < 0 ? -1 : ms);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout);
    if (n < 0 && errno == EINTR) {
        if (sh_interrupted() != 0) {
            return sh_fail(L, "waiting for a key", EINTR);
        }
        n = 0; /* another signal: a timeout, the caller polls again */
    }
    if (n < 0) {
        return sh_fail(L, "waiting for a key", errno);
    }
    if (n == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return push_read(L, fd, (size_t)max);
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

static const luaL_Reg term_funcs[] = {
    {"isatty", term_isatty},     {"size", term_size},   {"raw", term_raw},
    {"read_key", term_read_key}, {"write", term_write}, {NULL, NULL}};

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
}

int luaopen_shannot_core_term(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, term_funcs);
    return 1;
}
