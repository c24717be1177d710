/*
 * data.c: what every record of a session goes through, done in C because
 * execute and capture do it for each of 100 000 operations: numbers made
 * integers after lua-cjson decoded them (integral), and the check that
 * lua-cjson encodes a record exactly (plain).  Mechanisms only: what a
 * record holds, and how it is written, are the Lua side's.
 *
 * Lua: shannot.core.data
 *   integral(t) -> t
 *   plain(v) -> boolean
 */
#include <stddef.h>
#include <stdint.h>

#include "shannot.h"

/* Nested as deep as lua-cjson decodes (its default limit). */
#define INTEGRAL_DEPTH 1000

static void integral_at(lua_State *L, int t, int depth)
{
    if (depth > INTEGRAL_DEPTH) {
        luaL_error(L, "integral: tables nested more than %d deep",
                   INTEGRAL_DEPTH);
    }
    luaL_checkstack(L, 4, "integral");
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        int isint = 0;
        if (lua_type(L, -1) == LUA_TTABLE) {
            integral_at(L, lua_gettop(L), depth + 1);
        } else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Integer n = lua_tointegerx(L, -1, &isint);
            if (isint) { /* a field set while traversed: allowed */
                lua_pushvalue(L, -2);
                lua_pushinteger(L, n);
                lua_rawset(L, t);
            }
        }
        lua_pop(L, 1);
    }
}

/* integral(t) -> t: every float in t, nested tables included, whose value
 * is an integer made that integer (lua-cjson decodes every JSON number as
 * a float; math.tointeger's rule).  Per record in Lua it was a quarter of
 * an execute's interpreter time. */
static int data_integral(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    integral_at(L, 1, 1);
    return 1;
}

/* Whether s[0..n) is UTF-8 as utf8.len takes it (strict: no overlong
 * form, no surrogate, nothing past U+10FFFF); NUL is a character. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len) {
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

#define PLAIN_DEPTH 16
#define PLAIN_LIMIT 1e14 /* lua-cjson writes 14 significant digits */

static int plain_at(lua_State *L, int idx, int depth)
{
    size_t len;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return utf8_valid((const unsigned char *)s, len);
    case LUA_TNUMBER:
        if (!lua_isinteger(L, idx)) {
            return 0;
        } else {
            lua_Integer v = lua_tointeger(L, idx);
            return v > -PLAIN_LIMIT && v < PLAIN_LIMIT;
        }
    case LUA_TBOOLEAN:
        return 1;
    case LUA_TLIGHTUSERDATA: /* lua-cjson's null */
        return lua_touserdata(L, idx) == NULL;
    case LUA_TTABLE:
        break;
    default:
        return 0;
    }
    if (depth > PLAIN_DEPTH) {
        return 0;
    }
    luaL_checkstack(L, 3, "plain");
    int ok = 1;
    lua_pushnil(L);
    while (ok && lua_next(L, idx) != 0) {
        int top = lua_gettop(L);
        ok = (lua_type(L, top - 1) != LUA_TSTRING ||
              plain_at(L, top - 1, depth + 1)) &&
             plain_at(L, top, depth + 1);
        lua_pop(L, 1);
    }
    if (!ok) {
        lua_pop(L, 1); /* the key lua_next left */
    }
    return ok;
}

/* plain(v) -> whether lua-cjson encodes v exactly: strings (keys too)
 * valid UTF-8, numbers integers within its 14 significant digits,
 * booleans, its null, tables of those nested at most 16 deep (so no
 * cycle).  json.encode_line asks it of every record it writes. */
static int data_plain(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lua_pushboolean(L, plain_at(L, 1, 0));
    return 1;
}

static const luaL_Reg data_funcs[] = {
    {"integral", data_integral}, {"plain", data_plain}, {NULL, NULL}};

int luaopen_shannot_core_data(lua_State *L)
{
    luaL_newlib(L, data_funcs);
    return 1;
}
