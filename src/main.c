/*
 * main.c: the Lua state and bootstrap.  Opens a curated standard library,
 * registers the C primitives as shannot.core.*, makes the embedded Lua
 * sources requirable, then returns require("shannot.main").run(arg).
 * The only C file that touches argv, the environment, signals or exit().
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "shannot.h"

#define EXIT_INTERNAL 70 /* a bug: see lua/shannot/const.lua */

/* Sole file-scope mutable state (STYLE 16): what the signal handler needs. */
static lua_State *sig_L;
static volatile sig_atomic_t sig_caught;

int sh_interrupted(void)
{
    return sig_caught;
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

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            return 1;
        }
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* package.searchers entry: finds a module among the embedded sources. */
static int searcher_embedded(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (size_t i = 0; i < sh_embedded_lua_count; i++) {
        const struct sh_embedded *m = &sh_embedded_lua[i];
        if (strcmp(m->name, name) != 0) {
            continue;
        }
        /* Bytecode made at build time by scripts/embed.lua from our own
         * sources; anything loaded from disk stays text-only. */
        if (luaL_loadbufferx(L, (const char *)m->data, m->len, m->chunk, "b")
            != LUA_OK) {
            return lua_error(L);
        }
        lua_pushstring(L, m->chunk + 1); /* second loader argument */
        return 2;
    }
    lua_pushfstring(L, "no embedded module '%s'", name);
    return 1;
}

static void open_libs(lua_State *L)
{
    static const luaL_Reg std_libs[] = {
        {LUA_GNAME, luaopen_base}, {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_IOLIBNAME, luaopen_io}, {LUA_OSLIBNAME, luaopen_os},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_DBLIBNAME, luaopen_debug},
        {NULL, NULL}};
    static const luaL_Reg modules[] = { /* requirable, never globals */
        {"shannot.core.proc", luaopen_shannot_core_proc},
        {"shannot.core.fs", luaopen_shannot_core_fs},
        {"shannot.core.sandbox", luaopen_shannot_core_sandbox},
        {"shannot.core.sys", luaopen_shannot_core_sys},
        {"cjson", luaopen_cjson},
        {NULL, NULL}};
    for (const luaL_Reg *lib = std_libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    for (const luaL_Reg *lib = modules; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 0);
        lua_pop(L, 1);
    }
}

/* Module lookup: SHANNOT_LUA_DIR (if set), then the embedded sources. */
static void setup_package(lua_State *L)
{
    const char *dir = secure_getenv("SHANNOT_LUA_DIR");
    lua_getglobal(L, LUA_LOADLIBNAME);
    if (dir != NULL && dir[0] != '\0') {
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    } else {
        lua_pushliteral(L, "");
    }
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "searchers"); /* package searchers */
    lua_pushcfunction(L, searcher_embedded);
    for (lua_Integer i = (lua_Integer)luaL_len(L, -2); i >= 3; i--) {
        lua_geti(L, -2, i);
        lua_seti(L, -3, i + 1); /* shift C searchers up by one */
    }
    lua_seti(L, -2, 3); /* after preload and the Lua path searcher */
    lua_pop(L, 2);
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);

    luaL_checkversion(L);
    open_libs(L);
    setup_package(L);
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
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fputs("shannot: cannot create Lua state: not enough memory\n", stderr);
        return EXIT_INTERNAL;
    }
    sig_L = L;
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
    lua_close(L);
    return code;
}
