/*
 * main.c: the Lua state and bootstrap.  Fills the state (loader.c), then
 * returns require("shannot.main").run(arg) as the exit code.  The only C
 * file that touches argv, signal dispositions or the exit code.
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "shannot.h"

#define EXIT_INTERNAL 70 /* a bug: see lua/shannot/const.lua */

/* Sole file-scope mutable state (STYLE 16): what the signal handler needs. */
static lua_State *sig_L;
static volatile sig_atomic_t sig_caught;

int sh_interrupted(void)
{
    return sig_caught;
}

void sh_clear_interrupt(void)
{
    sig_caught = 0;
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted");
}

static void on_signal(int sig)
{
    sig_caught = sig;
    /* As lua.c does: stop Lua at its next instruction, not inside C. */
    lua_sethook(sig_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT,
                1);
}

void *sh_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct sh_heap *h = ud;
    /* Without a block, osize names the kind of object, not a size. */
    long long old = ptr != NULL ? (long long)osize : 0;
    if (nsize == 0) {
        if (!h->exiting) {
            free(ptr);
        }
        h->used -= old;
        return NULL;
    }
    /* Lua needs shrinking to succeed; only growth can be refused. */
    if ((long long)nsize > old && h->used + ((long long)nsize - old) > h->cap) {
        h->refused = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p != NULL) {
        h->used += (long long)nsize - old;
    }
    return p;
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING) {
            return 1;
        }
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);

    luaL_checkversion(L);
    sh_open_libs(L);
    sh_setup_package(L);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_seti(L, -2, i);
    }
    lua_setglobal(L, "arg");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "shannot.main");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "run");
    lua_getglobal(L, "arg");
    lua_call(L, 1, 1);
    return 1;
}

int main(int argc, char **argv)
{
#ifndef SH_CLIENT /* the client build runs no sandbox */
    if (argc > 1 && strcmp(argv[1], SH_SANDBOX_ENTER) == 0) {
        return sh_sandbox_enter(argc - 2, argv + 2); /* no Lua: it only execs */
    }
#endif
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fputs("shannot: cannot create Lua state: not enough memory\n", stderr);
        return EXIT_INTERNAL;
    }
    /* luaL_newstate's allocator is realloc/free too, so the blocks it made
     * can be freed through ours; the count starts here. */
    struct sh_heap heap = {0, LLONG_MAX, 0, 0};
    lua_setallocf(L, sh_heap_alloc, &heap);
    sig_L = L;
    /* Start-up allocates what lives for the whole run (modules, the argv
     * table): collecting during it is wasted work.  cli.main restarts the
     * collector before a command runs. */
    lua_gc(L, LUA_GCSTOP);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 1);
    int code = EXIT_INTERNAL;
    if (status != LUA_OK) {
        fprintf(stderr, "shannot: internal error: %s\n", lua_tostring(L, -1));
    } else if (lua_isinteger(L, -1)) {
        code = (int)lua_tointeger(L, -1);
    }
    /* lua_close still runs every finalizer (processes, sessions, files);
     * freeing each object one by one as well cost several ms of a run
     * (tens of thousands of small blocks), memory the exit returns whole.
     * Under AddressSanitizer every block is freed: its leak check must
     * see a clean exit. */
#ifndef __SANITIZE_ADDRESS__
    heap.exiting = 1;
#endif
    lua_close(L);
    return code;
}
