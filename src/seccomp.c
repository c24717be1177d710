/*
 * seccomp.c: compiling a seccomp filter (classic BPF, as bwrap's
 * --add-seccomp-fd reads it) from a list of rules, for this machine's
 * architecture or another's (a remote host's).  Which system calls are
 * refused is decided in Lua (lua/shannot/seccomp.lua); this only turns the
 * rules into a program, with libseccomp, loaded on first use: most
 * commands never build a sandbox.
 *
 * Lua: shannot.core.seccomp
 *   compile(rules, arch | nil) -> bpf bytes, skipped names | nil, msg, code
 *     rules: {{name, errno = N | kill = true, args = {{index, op, a [,
 * b]}...}}...} op: "eq" | "ne" | "masked_eq" (a = mask, b = value); arch: a
 * uname -m name ("x86_64", "aarch64", ...), default this machine's.  Everything
 *     not ruled is allowed; a call of another architecture is refused
 *     (ENOSYS).  Names the architecture lacks are skipped and listed.
 *   native_arch() -> the uname -m name libseccomp gives this machine
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <seccomp.h>

#include "shannot.h"

#define MAX_ARGS 6

/* libseccomp's calls this needs, loaded with dlopen (see sha_api in
 * store.c for why).  Kept in the registry, one per Lua state. */
struct seccomp_api {
    void *lib;
    scmp_filter_ctx (*init)(uint32_t);
    void (*release)(scmp_filter_ctx);
    int (*attr_set)(scmp_filter_ctx, enum scmp_filter_attr, uint32_t);
    uint32_t (*arch_resolve_name)(const char *);
    uint32_t (*arch_native)(void);
    int (*arch_add)(scmp_filter_ctx, uint32_t);
    int (*arch_remove)(scmp_filter_ctx, uint32_t);
    int (*resolve_name)(const char *);
    int (*resolve_name_arch)(uint32_t, const char *);
    int (*rule_add_array)(scmp_filter_ctx, uint32_t, int, unsigned int,
                          const struct scmp_arg_cmp *);
    int (*export_bpf)(const scmp_filter_ctx, int);
};

static const char API_KEY = 0;
#define API_MT "shannot.seccomp.Api"
#define NFUNCS 11

static void api_close(struct seccomp_api *a)
{
    if (a->lib != NULL) {
        dlclose(a->lib);
        a->lib = NULL;
    }
}

static int api_gc(lua_State *L)
{
    api_close(luaL_checkudata(L, 1, API_MT));
    return 0;
}

/* Resolves every function or none; 0 or -1 (dlerror() says why). */
static int api_load(struct seccomp_api *a)
{
    static const char *const sonames[] = {"libseccomp.so.2", NULL};
    static const char *const names[NFUNCS] = {
        "seccomp_init",
        "seccomp_release",
        "seccomp_attr_set",
        "seccomp_arch_resolve_name",
        "seccomp_arch_native",
        "seccomp_arch_add",
        "seccomp_arch_remove",
        "seccomp_syscall_resolve_name",
        "seccomp_syscall_resolve_name_arch",
        "seccomp_rule_add_array",
        "seccomp_export_bpf"};
    void *f[NFUNCS];
    if ((a->lib = sh_dlopen_all(sonames, names, f, NFUNCS)) == NULL) {
        return -1;
    }
    /* Why the memcpy: ISO C has no cast from void * to a function pointer. */
    memcpy(&a->init, &f[0], sizeof a->init);
    memcpy(&a->release, &f[1], sizeof a->release);
    memcpy(&a->attr_set, &f[2], sizeof a->attr_set);
    memcpy(&a->arch_resolve_name, &f[3], sizeof a->arch_resolve_name);
    memcpy(&a->arch_native, &f[4], sizeof a->arch_native);
    memcpy(&a->arch_add, &f[5], sizeof a->arch_add);
    memcpy(&a->arch_remove, &f[6], sizeof a->arch_remove);
    memcpy(&a->resolve_name, &f[7], sizeof a->resolve_name);
    memcpy(&a->resolve_name_arch, &f[8], sizeof a->resolve_name_arch);
    memcpy(&a->rule_add_array, &f[9], sizeof a->rule_add_array);
    memcpy(&a->export_bpf, &f[10], sizeof a->export_bpf);
    return 0;
}

/* [-0, +0|1, m] This state's libseccomp, or NULL with the reason pushed. */
static const struct seccomp_api *seccomp_api(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &API_KEY) == LUA_TUSERDATA) {
        const struct seccomp_api *a = lua_touserdata(L, -1);
        lua_pop(L, 1); /* the registry keeps it */
        return a;
    }
    lua_pop(L, 1);
    struct seccomp_api *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    if (luaL_newmetatable(L, API_MT)) {
        lua_pushcfunction(L, api_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (api_load(a) < 0) {
        const char *why = dlerror();
        api_close(a);
        lua_pop(L, 1);
        lua_pushfstring(L,
                        "libseccomp (for the sandbox's system call filter): %s",
                        why ? why : "not found");
        return NULL;
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &API_KEY);
    return a;
}

/* [-1, +3, m] nil, the reason seccomp_api pushed, "ELIBACC". */
static int api_failure(lua_State *L)
{
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushliteral(L, "ELIBACC");
    return 3;
}

/* A filter being built; released by the Lua-side guard on every way out. */
typedef struct {
    const struct seccomp_api *api;
    scmp_filter_ctx ctx;
    int fd;
} Build;

static int build_close(lua_State *L)
{
    Build *b = lua_touserdata(L, 1);
    if (b->ctx != NULL) {
        b->api->release(b->ctx);
        b->ctx = NULL;
    }
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
    return 0;
}

static enum scmp_compare compare_op(lua_State *L, int idx)
{
    static const char *const names[] = {"eq", "ne", "masked_eq", NULL};
    static const enum scmp_compare ops[] = {SCMP_CMP_EQ, SCMP_CMP_NE,
                                            SCMP_CMP_MASKED_EQ};
    return ops[luaL_checkoption(L, idx, NULL, names)];
}

/* [-0, +0, e] The argument comparisons of the rule at idx. */
static unsigned read_args(lua_State *L, int idx, struct scmp_arg_cmp *args)
{
    unsigned n = 0;
    if (lua_getfield(L, idx, "args") == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    int t = lua_gettop(L);
    lua_Integer len = luaL_len(L, t);
    luaL_argcheck(L, len <= MAX_ARGS, 1, "a rule compares at most 6 arguments");
    for (lua_Integer i = 1; i <= len; i++, n++) {
        lua_geti(L, t, i);
        int c = lua_gettop(L);
        lua_geti(L, c, 1);
        lua_geti(L, c, 2);
        lua_geti(L, c, 3);
        lua_geti(L, c, 4);
        args[n].arg = (unsigned)luaL_checkinteger(L, c + 1);
        args[n].op = compare_op(L, c + 2);
        args[n].datum_a = (scmp_datum_t)luaL_checkinteger(L, c + 3);
        args[n].datum_b = (scmp_datum_t)luaL_optinteger(L, c + 4, 0);
        luaL_argcheck(L, args[n].arg < MAX_ARGS, 1, "an argument index is 0-5");
        lua_settop(L, t);
    }
    lua_pop(L, 1);
    return n;
}

static uint32_t rule_action(lua_State *L, int idx)
{
    if (sh_optfield_boolean(L, idx, "kill", 0)) {
        return SCMP_ACT_KILL_PROCESS;
    }
    lua_Integer e = (lua_Integer)sh_optfield_number(L, idx, "errno", -1);
    luaL_argcheck(L, e > 0 && e < 4096, 1,
                  "a rule needs errno = N or kill = true");
    return SCMP_ACT_ERRNO((uint32_t)e);
}

/* Adds rule i (the table at idx); a name the architecture lacks is
 * appended to the skipped list at `skipped`.  0 or -errno. */
static int add_rule(lua_State *L, Build *b, uint32_t arch, int idx, int skipped)
{
    lua_geti(L, idx, 1);
    const char *name = luaL_checkstring(L, -1);
    struct scmp_arg_cmp args[MAX_ARGS];
    unsigned nargs = read_args(L, idx, args);
    uint32_t action = rule_action(L, idx);
    if (b->api->resolve_name_arch(arch, name) < 0) {
        lua_seti(L, skipped, luaL_len(L, skipped) + 1);
        return 0;
    }
    /* Rules name calls in the native numbering; libseccomp translates them
     * for every architecture in the filter. */
    int nr = b->api->resolve_name(name);
    lua_pop(L, 1);
    return b->api->rule_add_array(b->ctx, action, nr, nargs,
                                  nargs ? args : NULL);
}

/* [-0, +1, m] The program exported into b->fd, read back as a string. */
static int push_program(lua_State *L, Build *b)
{
    off_t size = lseek(b->fd, 0, SEEK_END);
    if (size < 0 || lseek(b->fd, 0, SEEK_SET) < 0) {
        return -1;
    }
    luaL_Buffer buf;
    char *p = luaL_buffinitsize(L, &buf, (size_t)size);
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t n = read(b->fd, p + got, (size_t)size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    luaL_pushresultsize(&buf, got);
    return 0;
}

/* Makes b a filter for `arch` alone: allow by default, other arches ENOSYS. */
static int build_init(Build *b, uint32_t arch)
{
    const struct seccomp_api *a = b->api;
    if ((b->ctx = a->init(SCMP_ACT_ALLOW)) == NULL) {
        return -ENOMEM;
    }
    int rc =
        a->attr_set(b->ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
    uint32_t native = a->arch_native();
    if (rc == 0 && arch != native) {
        rc = a->arch_add(b->ctx, arch);
        if (rc == 0) {
            rc = a->arch_remove(b->ctx, native);
        }
    }
    return rc;
}

/* compile(rules, arch | nil) -> bpf, skipped | nil, msg, code */
static int seccomp_compile(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *arch_name = luaL_optstring(L, 2, NULL);
    lua_settop(L, 2);
    const struct seccomp_api *api = seccomp_api(L);
    if (api == NULL) {
        return api_failure(L);
    }
    uint32_t arch =
        arch_name ? api->arch_resolve_name(arch_name) : api->arch_native();
    if (arch == 0) {
        return sh_failf(L, EINVAL, "seccomp: unknown architecture %s",
                        arch_name);
    }
    Build *b = lua_newuserdatauv(L, sizeof *b, 0); /* 3 */
    b->api = api;
    b->ctx = NULL;
    b->fd = -1;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, build_close);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, 3);
    lua_newtable(L); /* 4: skipped names */
    int rc = build_init(b, arch);
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; rc == 0 && i <= n; i++) {
        lua_geti(L, 1, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        rc = add_rule(L, b, arch, lua_gettop(L), 4);
        lua_settop(L, 4);
    }
    if (rc == 0) {
        b->fd = memfd_create("shannot-seccomp", MFD_CLOEXEC);
        rc = b->fd < 0 ? -errno : api->export_bpf(b->ctx, b->fd);
    }
    if (rc == 0 && push_program(L, b) < 0) {
        rc = -errno;
    }
    if (rc != 0) {
        lua_pushcfunction(L, build_close);
        lua_pushvalue(L, 3);
        lua_call(L, 1, 0);
        return sh_fail(L, "seccomp: building the filter", -rc);
    }
    lua_pushcfunction(L, build_close);
    lua_pushvalue(L, 3);
    lua_call(L, 1, 0);
    lua_pushvalue(L, 4); /* bpf, skipped */
    return 2;
}

/* native_arch() -> "x86_64" | "aarch64" | ... | nil, msg, code */
static int seccomp_native_arch(lua_State *L)
{
    static const struct {
        uint32_t token;
        const char *name;
    } names[] = {{SCMP_ARCH_X86_64, "x86_64"},   {SCMP_ARCH_AARCH64, "aarch64"},
                 {SCMP_ARCH_X86, "i686"},        {SCMP_ARCH_ARM, "armv7l"},
                 {SCMP_ARCH_PPC64LE, "ppc64le"}, {SCMP_ARCH_S390X, "s390x"},
                 {SCMP_ARCH_RISCV64, "riscv64"}};
    const struct seccomp_api *api = seccomp_api(L);
    if (api == NULL) {
        return api_failure(L);
    }
    uint32_t native = api->arch_native();
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (names[i].token == native) {
            lua_pushstring(L, names[i].name);
            return 1;
        }
    }
    return sh_fail(L, "seccomp: this architecture", ENOTSUP);
}

static const luaL_Reg seccomp_funcs[] = {
    {"compile", seccomp_compile},
    {"native_arch", seccomp_native_arch},
    {NULL, NULL},
};

int luaopen_shannot_core_seccomp(lua_State *L)
{
    luaL_newlib(L, seccomp_funcs);
    return 1;
}
