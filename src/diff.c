/*
 * diff.c: placeholder, being written.
 */
#include "shannot.h"

static const luaL_Reg diff_funcs[] = {
    {NULL, NULL}};

int luaopen_shannot_core_diff(lua_State *L)
{
    luaL_newlib(L, diff_funcs);
    return 1;
}
