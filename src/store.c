/*
 * store.c: placeholder, being written.
 */
#include "shannot.h"

static const luaL_Reg store_funcs[] = {
    {NULL, NULL}};

int luaopen_shannot_core_store(lua_State *L)
{
    luaL_newlib(L, store_funcs);
    return 1;
}
