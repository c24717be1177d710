/*
 * loader.c: what the Lua state starts with.  The curated standard
 * library, the C primitives as requirable shannot.core.* modules, and a
 * package searcher that finds the Lua sources embedded at build time.
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "shannot.h"

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
        if (luaL_loadbufferx(L, (const char *)m->data, m->len, m->chunk, "b") !=
            LUA_OK) {
            return lua_error(L);
        }
        lua_pushstring(L, m->chunk + 1); /* second loader argument */
        return 2;
    }
    lua_pushfstring(L, "no embedded module '%s'", name);
    return 1;
}

void sh_open_libs(lua_State *L)
{
    static const luaL_Reg std_libs[] = {{LUA_GNAME, luaopen_base},
                                        {LUA_LOADLIBNAME, luaopen_package},
                                        {LUA_COLIBNAME, luaopen_coroutine},
                                        {LUA_TABLIBNAME, luaopen_table},
                                        {LUA_IOLIBNAME, luaopen_io},
                                        {LUA_OSLIBNAME, luaopen_os},
                                        {LUA_STRLIBNAME, luaopen_string},
                                        {LUA_MATHLIBNAME, luaopen_math},
                                        {LUA_UTF8LIBNAME, luaopen_utf8},
                                        {LUA_DBLIBNAME, luaopen_debug},
                                        {NULL, NULL}};
    static const luaL_Reg modules[] = {
        /* requirable, never globals */
        {"shannot.core.proc", luaopen_shannot_core_proc},
        {"shannot.core.fs", luaopen_shannot_core_fs},
#ifndef SH_CLIENT /* the client build has no local sandbox */
        {"shannot.core.sandbox", luaopen_shannot_core_sandbox},
#endif
        {"shannot.core.sys", luaopen_shannot_core_sys},
        {"shannot.core.data", luaopen_shannot_core_data},
        {"shannot.core.store", luaopen_shannot_core_store},
        {"shannot.core.diff", luaopen_shannot_core_diff},
        {"shannot.core.term", luaopen_shannot_core_term},
        {"shannot.core.tar", luaopen_shannot_core_tar},
        {"shannot.core.ssh", luaopen_shannot_core_ssh},
#ifndef SH_CLIENT
        {"shannot.core.seccomp", luaopen_shannot_core_seccomp},
#endif
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
void sh_setup_package(lua_State *L)
{
#ifdef SH_CLIENT
    /* secure_getenv's rule where it is missing: never when set-id */
    const char *dir = getuid() == geteuid() ? getenv("SHANNOT_LUA_DIR") : NULL;
#else
    const char *dir = secure_getenv("SHANNOT_LUA_DIR");
#endif
    lua_getglobal(L, LUA_LOADLIBNAME);
    if (dir != NULL && dir[0] != '\0') {
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    } else {
        lua_pushliteral(L, "");
    }
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    /* Where this Lua's own installation keeps modules: not searched, but
     * named for the one system library shannot may load (lyaml). */
    lua_pushliteral(L, LUA_PATH_DEFAULT);
    lua_setfield(L, -2, "system_path");
    lua_pushliteral(L, LUA_CPATH_DEFAULT);
    lua_setfield(L, -2, "system_cpath");
    lua_getfield(L, -1, "searchers"); /* package searchers */
    lua_pushcfunction(L, searcher_embedded);
    for (lua_Integer i = (lua_Integer)luaL_len(L, -2); i >= 3; i--) {
        lua_geti(L, -2, i);
        lua_seti(L, -3, i + 1); /* shift C searchers up by one */
    }
    lua_seti(L, -2, 3); /* after preload and the Lua path searcher */
    lua_pop(L, 2);
}
