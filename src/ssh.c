/*
 * ssh.c: SSH sessions through libssh (DESIGN §6, §10): connecting with
 * strict known_hosts checking and key or agent authentication, commands
 * on exec channels, files over SFTP.  Mechanisms only: messages, defaults
 * and policy live in lua/shannot/ssh.lua and its callers.
 *
 * libssh is not linked: it pulls libcrypto in, ~0.7 ms of every start-up
 * (docs/design-notes.md item 23).  It is dlopen()ed on first use and every
 * function used is resolved into a struct ssh_api kept in the registry,
 * one per Lua state (as store.c does for libcrypto).
 *
 * Lua: shannot.core.ssh; failures return nil, msg, code (code: an errno
 * name, or ELIBACC (libssh missing), CONNECT, SSH (protocol or connection),
 * HOSTKEY_UNKNOWN, HOSTKEY_CHANGED, KNOWN_HOSTS, IDENTITY, AUTH):
 *   connect(opts) -> Session | nil, msg, code [, info]
 *   Session:exec(command [, opts]) -> result | nil, msg, code
 *   Session:sftp() -> Sftp | nil, msg, code
 *   Session:host_key() -> {fingerprint, key_type, added}
 *   Sftp:stat/lstat/readlink/symlink/mkdir/rmdir/unlink/rename/chmod/
 *        chown/readdir/read/get/put (see each below)
 *   Session:close(), Sftp:close() (also __gc, __close): idempotent
 *
 * Ownership: a Session owns the ssh_session; an Sftp owns the
 * sftp_session and pins its Session (user value); a Channel (one exec) and
 * an SftpFile (one transfer or listing) own their libssh handles for the
 * length of one call, so a Lua error (only possible while pushing
 * results) never leaks them.  A parent closes its live children first,
 * so no libssh handle outlives the session it belongs to.  No Lua code
 * runs while a libssh call is on the stack: callbacks only record.
 *
 * C names: libssh owns the ssh_, sftp_ and (legacy.h) channel_ prefixes,
 * so module functions are lssh_*, Sftp methods lsftp_*, Channel chan_*.
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "shannot.h"

#define API_MT "shannot.ssh.Api"

#define DEFAULT_CAPTURE (1024 * 1024)
#define FEED_CHUNK 32768 /* stdin bytes per channel write */
#define XFER_CHUNK 65536 /* SFTP read/write size */
#define SLICE_MS 250     /* longest wait between checks */
#define DEFAULT_READ_MAX (64 * 1024 * 1024)
#define FP_LEN 128 /* "SHA256:" + 43 base64 digits */
#define SSH_FXP_EXTENDED 200
#define SSH_FXP_STATUS 101

/* Every libssh function used, resolved by name at first use (a list laid
 * out by hand, which the formatter leaves alone). */
/* clang-format off */
#define SSH_FUNCS(X)                                                        \
    X(ssh_new) X(ssh_free) X(ssh_options_set) X(ssh_options_get)            \
    X(ssh_options_get_port) X(ssh_options_parse_config) X(ssh_connect)      \
    X(ssh_disconnect) X(ssh_is_connected) X(ssh_get_error) X(ssh_get_fd)    \
    X(ssh_set_blocking)                                                     \
    X(ssh_session_is_known_server) X(ssh_session_update_known_hosts)        \
    X(ssh_known_hosts_parse_line) X(ssh_knownhosts_entry_free)              \
    X(ssh_get_server_publickey) X(ssh_get_publickey_hash)                   \
    X(ssh_get_fingerprint_hash) X(ssh_clean_pubkey_hash) X(ssh_key_free)    \
    X(ssh_key_type) X(ssh_key_type_to_char) X(ssh_string_free_char)         \
    X(ssh_pki_import_privkey_file) X(ssh_userauth_none)                     \
    X(ssh_userauth_list) X(ssh_userauth_publickey)                          \
    X(ssh_userauth_publickey_auto) X(ssh_channel_new) X(ssh_channel_free)   \
    X(ssh_channel_open_session) X(ssh_channel_request_exec)                 \
    X(ssh_channel_request_send_signal) X(ssh_channel_write)                 \
    X(ssh_channel_read) X(ssh_channel_send_eof) X(ssh_channel_is_eof)       \
    X(ssh_channel_is_closed) X(ssh_channel_window_size)                     \
    X(ssh_set_channel_callbacks) X(ssh_remove_channel_callbacks)            \
    X(ssh_event_new) X(ssh_event_add_session) X(ssh_event_remove_session)   \
    X(ssh_event_dopoll) X(ssh_event_free) X(sftp_new_channel) X(sftp_init) \
    X(ssh_channel_request_sftp)                                             \
    X(sftp_free) X(sftp_get_error) X(sftp_extension_supported)              \
    X(sftp_stat) X(sftp_lstat) X(sftp_attributes_free) X(sftp_readlink)     \
    X(sftp_symlink) X(sftp_mkdir) X(sftp_rmdir) X(sftp_unlink)              \
    X(sftp_rename) X(sftp_chmod) X(sftp_chown) X(sftp_opendir)              \
    X(sftp_readdir) X(sftp_dir_eof) X(sftp_closedir) X(sftp_open)           \
    X(sftp_read) X(sftp_write) X(sftp_close)
/* clang-format on */

struct ssh_api {
    void *lib;
#define X(fn) __typeof__(fn) *fn;
    SSH_FUNCS(X)
#undef X
};

typedef struct Sftp Sftp;
typedef struct Channel Channel;
typedef struct SftpFile SftpFile;

typedef struct {
    const struct ssh_api *api;
    ssh_session s; /* NULL when closed */
    Sftp *sftp;    /* its open Sftp, closed with it */
    Channel *chan; /* the exec in progress */
    char fp[FP_LEN], key_type[32];
    int added; /* accept_new added the host key */
} Session;

struct Sftp {
    const struct ssh_api *api;
    Session *owner;
    sftp_session sftp; /* NULL when closed */
    SftpFile *file;    /* the transfer in progress */
};

/* Output of one stream: the first bytes, then a ring of the last bytes,
 * or everything written to fd. */
struct capture {
    int fd; /* stream here instead of capturing, -1 for none */
    struct sh_keep keep;
    struct sh_tee tee; /* and copy here as it comes */
};

struct Channel {
    const struct ssh_api *api;
    Session *owner;
    ssh_channel ch; /* NULL when closed */
    ssh_event ev;   /* pumps the session while exec waits */
    struct ssh_channel_callbacks_struct cb;
    struct capture out, err;
    int status;       /* exit status, -1 until reported */
    char signame[32]; /* exit signal ("TERM"), "" until reported */
    int write_err;    /* errno of a failed write to stdout_fd */
};

struct SftpFile {
    const struct ssh_api *api;
    Sftp *owner;
    sftp_file file;
    sftp_dir dir;
    sftp_attributes attr;
    int fd;       /* the local file of get/put, -1 */
    char *unlink; /* get: local file to remove on failure */
    char *buf;
};

static const char API_KEY = 0;

/* ---- loading libssh ---------------------------------------------------- */

static int api_gc(lua_State *L)
{
    struct ssh_api *a = luaL_checkudata(L, 1, API_MT);
    if (a->lib != NULL) {
        dlclose(a->lib);
        a->lib = NULL;
    }
    return 0;
}

#define SSH_NAME(fn) #fn,
#define SSH_COUNT(fn) +1
static const char *const SSH_NAMES[] = {SSH_FUNCS(SSH_NAME)};
enum { SSH_NFUNCS = 0 SSH_FUNCS(SSH_COUNT) };
#undef SSH_NAME
#undef SSH_COUNT

/* Resolves every function or none (sh_dlopen_all); 0 or -1 (dlerror()
 * says why). */
static int api_load(struct ssh_api *a)
{
    static const char *const sonames[] = {"libssh.so.4", NULL};
    void *f[SSH_NFUNCS];
    if ((a->lib = sh_dlopen_all(sonames, SSH_NAMES, f, SSH_NFUNCS)) == NULL) {
        return -1;
    }
    size_t i = 0;
    /* Why the memcpy: ISO C has no cast from void * to a function pointer. */
#define X(fn) memcpy(&a->fn, &f[i++], sizeof f[0]);
    SSH_FUNCS(X)
#undef X
    return 0;
}

/* [-0, +1, m] This state's libssh (its userdata pushed), or NULL with
 * nil, "libssh: <dlerror>", "ELIBACC" pushed (then returns 3 values). */
static const struct ssh_api *api_get(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &API_KEY) == LUA_TUSERDATA) {
        return lua_touserdata(L, -1);
    }
    lua_pop(L, 1);
    struct ssh_api *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    luaL_setmetatable(L, API_MT);
    if (api_load(a) < 0) {
        const char *why = dlerror();
        lua_pushnil(L);
        lua_pushfstring(L, "libssh: %s", why ? why : "not found");
        lua_pushliteral(L, "ELIBACC");
        return NULL;
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &API_KEY);
    return a;
}

/* ---- failures ------------------------------------------------------------ */

/* [-0, +3, m] nil, "<what>: <libssh's error>", code */
static int ssh_fail(lua_State *L, const Session *ss, const char *what,
                    const char *code)
{
    const char *why = ss->s ? ss->api->ssh_get_error(ss->s) : "";
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, why && why[0] ? why : "connection lost");
    lua_pushstring(L, code);
    return 3;
}

/* ---- Session ------------------------------------------------------------- */

static void sftp_release(Sftp *f);
static void chan_release(Channel *c);

static void session_release(Session *ss)
{
    if (ss->chan != NULL) {
        chan_release(ss->chan);
    }
    if (ss->sftp != NULL) {
        sftp_release(ss->sftp);
    }
    if (ss->s != NULL) {
        ss->api->ssh_disconnect(ss->s);
        ss->api->ssh_free(ss->s);
        ss->s = NULL;
    }
}

static Session *check_session(lua_State *L)
{
    Session *ss = luaL_checkudata(L, 1, SH_SSH_SESSION_MT);
    if (ss->s == NULL) {
        luaL_error(L, "attempt to use a closed Session");
    }
    return ss;
}

/* Session:close(): idempotent (also __gc, __close) */
static int session_close(lua_State *L)
{
    session_release(luaL_checkudata(L, 1, SH_SSH_SESSION_MT));
    return 0;
}

static int session_tostring(lua_State *L)
{
    Session *ss = luaL_checkudata(L, 1, SH_SSH_SESSION_MT);
    lua_pushstring(L, ss->s ? "Session" : "Session (closed)");
    return 1;
}

/* Session:host_key() -> {fingerprint, key_type, added} of the server */
static int session_host_key(lua_State *L)
{
    Session *ss = check_session(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, ss->fp);
    lua_setfield(L, -2, "fingerprint");
    lua_pushstring(L, ss->key_type);
    lua_setfield(L, -2, "key_type");
    lua_pushboolean(L, ss->added);
    lua_setfield(L, -2, "added");
    return 1;
}

/* ---- connect: options ---------------------------------------------------- */

struct connect_opts {
    const char *host, *user, *identity, *config, *known_hosts, *ssh_dir;
    int no_config;     /* config = false */
    unsigned int port; /* 0: from config or 22 */
    double timeout;    /* < 0: none */
    int accept_new;
    int key_only; /* stop once the host key is checked: no login */
};

/* [-0, +0, e] Field key of the table at idx: a string (kept alive by the
 * table), or NULL when absent; anything else raises.  Unlike
 * sh_optfield_string, a number is refused: its converted string would
 * live only on the stack. */
static const char *opt_string(lua_State *L, int idx, const char *key,
                              size_t *len)
{
    const char *s = NULL;
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TSTRING) {
        s = lua_tolstring(L, -1, len);
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option '%s' must be a string", key);
    }
    lua_pop(L, 1);
    return s;
}

/* Reads connect's option table (argument 1); raises on misuse. */
static void connect_read(lua_State *L, struct connect_opts *o)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(o, 0, sizeof *o);
    o->host = opt_string(L, 1, "host", NULL);
    luaL_argcheck(L, o->host != NULL && o->host[0] != '\0', 1,
                  "host is required");
    o->user = opt_string(L, 1, "user", NULL);
    o->identity = opt_string(L, 1, "identity", NULL);
    o->known_hosts = opt_string(L, 1, "known_hosts", NULL);
    o->ssh_dir = opt_string(L, 1, "ssh_dir", NULL);
    double port = sh_optfield_number(L, 1, "port", 0);
    luaL_argcheck(L, port >= 0 && port <= 65535 && port == (int)port, 1,
                  "port must be an integer from 1 to 65535");
    o->port = (unsigned int)port;
    o->timeout = sh_optfield_number(L, 1, "timeout", -1);
    o->accept_new = sh_optfield_boolean(L, 1, "accept_new", 0);
    o->key_only = sh_optfield_boolean(L, 1, "key_only", 0);
    int t = lua_getfield(L, 1, "config");
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        o->no_config = 1;
    } else if (t == LUA_TSTRING) {
        o->config = lua_tostring(L, -1); /* the table keeps it alive */
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'config' must be a path or false");
    }
    lua_pop(L, 1);
}

/* Sets the options on a new session; 0 or -1 (ssh_get_error says why).
 * The host is set first, then the config file is read (its Host blocks
 * match it), then explicit options, which win over the file's. */
static int connect_options(Session *ss, const struct connect_opts *o)
{
    const struct ssh_api *a = ss->api;
    ssh_session s = ss->s;
    int one = 1;
    bool no = false;
    if (a->ssh_options_set(s, SSH_OPTIONS_HOST, o->host) < 0 ||
        (o->ssh_dir &&
         a->ssh_options_set(s, SSH_OPTIONS_SSH_DIR, o->ssh_dir) < 0)) {
        return -1;
    }
    if (o->no_config) {
        if (a->ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0) {
            return -1;
        }
    } else if (a->ssh_options_parse_config(s, o->config) < 0) {
        return -1;
    }
    if ((o->port && a->ssh_options_set(s, SSH_OPTIONS_PORT, &o->port) < 0) ||
        (o->user && a->ssh_options_set(s, SSH_OPTIONS_USER, o->user) < 0) ||
        (o->known_hosts &&
         a->ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, o->known_hosts) < 0)) {
        return -1;
    }
    if (o->timeout >= 0) {
        long sec = (long)o->timeout;
        long usec = (long)((o->timeout - (double)sec) * 1e6);
        if (a->ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &sec) < 0 ||
            a->ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &usec) < 0) {
            return -1;
        }
    }
    /* Why: without TCP_NODELAY every small request waits ~40 ms for a
     * delayed ACK (perf-floors: 48 ms per command instead of 3 ms). */
    return a->ssh_options_set(s, SSH_OPTIONS_NODELAY, &one) < 0 ? -1 : 0;
}

/* ---- connect: host key --------------------------------------------------- */

/* The SHA256 fingerprint of key ("SHA256:..." as ssh-keygen -l shows it)
 * into out; 0 or -1. */
static int key_fingerprint(const struct ssh_api *a, ssh_key key, char *out,
                           size_t len)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    if (a->ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
                                  &hlen) < 0) {
        return -1;
    }
    char *fp =
        a->ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    a->ssh_clean_pubkey_hash(&hash);
    if (fp == NULL) {
        return -1;
    }
    snprintf(out, len, "%s", fp);
    a->ssh_string_free_char(fp);
    return 0;
}

/* The name known_hosts files use for the session's server: "host", or
 * "[host]:port" off port 22, lowercased as libssh matches it. */
static void host_port(const struct ssh_api *a, ssh_session s, char *out,
                      size_t len)
{
    char *host = NULL;
    unsigned int port = 22;
    out[0] = '\0';
    if (a->ssh_options_get(s, SSH_OPTIONS_HOST, &host) != SSH_OK) {
        return;
    }
    a->ssh_options_get_port(s, &port);
    for (char *p = host; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    if (port == 22) {
        snprintf(out, len, "%s", host);
    } else {
        snprintf(out, len, "[%s]:%u", host, port);
    }
    a->ssh_string_free_char(host);
}

/* The fingerprint of the first key known_hosts records for hp other than
 * the fingerprint `now`, into out ("" if none).  libssh only returns the
 * matching entry, so the user known_hosts file is read here. */
static void old_fingerprint(const struct ssh_api *a, ssh_session s,
                            const char *hp, const char *now, char *out,
                            size_t len)
{
    char *path = NULL;
    char line[8192];
    out[0] = '\0';
    if (a->ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &path) != SSH_OK) {
        return;
    }
    FILE *fp = fopen(path, "re");
    a->ssh_string_free_char(path);
    while (fp != NULL && out[0] == '\0' && fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line + strspn(line, " \t");
        struct ssh_knownhosts_entry *e = NULL;
        if (*p == '\0' || *p == '#' || *p == '@' ||
            a->ssh_known_hosts_parse_line(hp, p, &e) != SSH_OK) {
            continue;
        }
        if (key_fingerprint(a, e->publickey, out, len) == 0 &&
            strcmp(out, now) == 0) {
            out[0] = '\0';
        }
        a->ssh_knownhosts_entry_free(e);
    }
    if (fp != NULL) {
        fclose(fp);
    }
}

/* [-0, +4, m] nil, msg, code, {fingerprint, key_type [, old_fingerprint]} */
static int hostkey_fail(lua_State *L, const Session *ss, const char *hp,
                        const char *code, const char *old)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s host key %s", hp, old ? "changed" : "unknown",
                    ss->fp);
    lua_pushstring(L, code);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, ss->fp);
    lua_setfield(L, -2, "fingerprint");
    lua_pushstring(L, ss->key_type);
    lua_setfield(L, -2, "key_type");
    if (old != NULL && old[0] != '\0') {
        lua_pushstring(L, old);
        lua_setfield(L, -2, "old_fingerprint");
    }
    return 4;
}

/* Checks the server's key against known_hosts: 0, or the failure pushed
 * and its number of values returned. */
static int check_host_key(lua_State *L, Session *ss, int accept_new)
{
    const struct ssh_api *a = ss->api;
    ssh_key key = NULL;
    char hp[1100], old[FP_LEN];
    if (a->ssh_get_server_publickey(ss->s, &key) < 0) {
        return ssh_fail(L, ss, "server host key", "SSH");
    }
    int fp_ok = key_fingerprint(a, key, ss->fp, sizeof ss->fp);
    const char *type = a->ssh_key_type_to_char(a->ssh_key_type(key));
    snprintf(ss->key_type, sizeof ss->key_type, "%s", type ? type : "");
    a->ssh_key_free(key);
    if (fp_ok < 0) {
        return ssh_fail(L, ss, "server host key", "SSH");
    }
    host_port(a, ss->s, hp, sizeof hp);
    switch (a->ssh_session_is_known_server(ss->s)) {
    case SSH_KNOWN_HOSTS_OK:
        return 0;
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
        if (!accept_new) {
            return hostkey_fail(L, ss, hp, "HOSTKEY_UNKNOWN", NULL);
        }
        if (a->ssh_session_update_known_hosts(ss->s) != SSH_OK) {
            return ssh_fail(L, ss, "known_hosts", "KNOWN_HOSTS");
        }
        ss->added = 1;
        return 0;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
        old_fingerprint(a, ss->s, hp, ss->fp, old, sizeof old);
        return hostkey_fail(L, ss, hp, "HOSTKEY_CHANGED", old);
    default:
        return ssh_fail(L, ss, "known_hosts", "KNOWN_HOSTS");
    }
}

/* ---- connect: authentication --------------------------------------------- */

/* [-0, +4, m] nil, msg, "AUTH", {methods = {...}} */
static int auth_fail(lua_State *L, Session *ss)
{
    static const struct {
        int bit;
        const char *name;
    } names[] = {{SSH_AUTH_METHOD_NONE, "none"},
                 {SSH_AUTH_METHOD_PASSWORD, "password"},
                 {SSH_AUTH_METHOD_PUBLICKEY, "publickey"},
                 {SSH_AUTH_METHOD_HOSTBASED, "hostbased"},
                 {SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive"},
                 {SSH_AUTH_METHOD_GSSAPI_MIC, "gssapi-with-mic"}};
    int methods = ss->api->ssh_userauth_list(ss->s, NULL);
    lua_pushnil(L);
    lua_pushliteral(L, "authentication failed");
    lua_pushliteral(L, "AUTH");
    lua_createtable(L, 0, 1);
    lua_createtable(L, 6, 0);
    lua_Integer n = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (methods & names[i].bit) {
            lua_pushstring(L, names[i].name);
            lua_rawseti(L, -2, ++n);
        }
    }
    lua_setfield(L, -2, "methods");
    return 4;
}

/* Authenticates with the identity file, or agent + default keys +
 * IdentityFile: 0, or the failure pushed and its count returned. */
static int authenticate(lua_State *L, Session *ss, const char *identity)
{
    const struct ssh_api *a = ss->api;
    int rc;
    if (identity != NULL) {
        ssh_key key = NULL;
        struct stat st;
        if (stat(identity, &st) < 0) {
            return sh_fail(L, identity, errno);
        }
        /* No passphrase callback: an encrypted key fails, nothing prompts. */
        if (a->ssh_pki_import_privkey_file(identity, NULL, NULL, NULL, &key) !=
            SSH_OK) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s: cannot load the private key", identity);
            lua_pushliteral(L, "IDENTITY");
            return 3;
        }
        rc = a->ssh_userauth_publickey(ss->s, NULL, key);
        a->ssh_key_free(key);
    } else {
        rc = a->ssh_userauth_publickey_auto(ss->s, NULL, NULL);
    }
    if (rc == SSH_AUTH_SUCCESS) {
        return 0;
    }
    if (rc == SSH_AUTH_ERROR) {
        return ssh_fail(L, ss, "authentication", "SSH");
    }
    if (ss->api->ssh_userauth_list(ss->s, NULL) == 0 &&
        a->ssh_userauth_none(ss->s, NULL) == SSH_AUTH_SUCCESS) {
        return 0; /* no key was offered, and the server wants none */
    }
    return auth_fail(L, ss);
}

/* TCP keepalive on the connection: a host that vanished (powered off, a
 * NAT that forgot us) is noticed within a few minutes rather than never,
 * for the whole life of a long execute.  libssh 0.10 has no SSH-level
 * keepalive; failures here are harmless and ignored. */
static void keepalive(int fd)
{
    int on = 1, idle = 60, interval = 15, count = 4;
    if (fd < 0) {
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

/* Acknowledges what the server sends at once (TCP_QUICKACK), for the
 * next few segments: sshd sets no TCP_NODELAY for a session without a
 * terminal, so a reply that follows another one of its own (the channel
 * confirmation after its hostkeys notice, an exit status after output)
 * waits for our ACK, which Linux delays up to 40 ms.  Not permanent (the
 * kernel leaves quick mode again), hence set before each exchange;
 * failures are harmless and ignored. */
static void quickack(const struct ssh_api *a, ssh_session s)
{
    int fd = a->ssh_get_fd(s), on = 1;
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
    }
}

/* Opens a session channel: the first second without blocking inside
 * libssh, so that each wait for the server's confirmation starts with
 * quickack (the first channel of a connection meets sshd's hostkeys
 * notice), then blocking, with libssh's own timeout and error: SSH_OK or
 * SSH_ERROR. */
static int open_channel(const struct ssh_api *a, ssh_session s, ssh_channel ch)
{
    a->ssh_set_blocking(s, 0);
    int rc, fd = a->ssh_get_fd(s);
    double until = sh_monotonic() + 1.0;
    while ((rc = a->ssh_channel_open_session(ch)) == SSH_AGAIN &&
           sh_monotonic() < until) {
        quickack(a, s);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, SLICE_MS); /* EINTR or an error: the next call says */
    }
    a->ssh_set_blocking(s, 1);
    if (rc == SSH_AGAIN) {
        rc = a->ssh_channel_open_session(ch); /* the pending open, blocking */
    }
    return rc;
}

/* connect(opts) -> Session | nil, msg, code [, info]
 * opts: host (required), port, user, identity (private key file; default:
 * agent, default keys and IdentityFile), config (ssh config file; false:
 * none; default ~/.ssh/config), ssh_dir (where the default keys and config
 * are: libssh takes the passwd entry's home, not $HOME), known_hosts (file),
 * timeout (s, for the
 * connection and each blocking protocol step), accept_new (add an unknown
 * host key to known_hosts), key_only (no login: the session only says the
 * host key is known; a fleet checks every host's key so, cheaply).  info:
 * HOSTKEY_* {fingerprint, key_type, old_fingerprint (CHANGED, if known_hosts
 * has it)}, AUTH {methods}. */
static int lssh_connect(lua_State *L)
{
    struct connect_opts o;
    connect_read(L, &o);
    lua_settop(L, 1);
    const struct ssh_api *a = api_get(L); /* 2: its userdata */
    if (a == NULL) {
        return 3;
    }
    Session *ss = lua_newuserdatauv(L, sizeof *ss, 2); /* 3 */
    memset(ss, 0, sizeof *ss);
    ss->api = a;
    luaL_setmetatable(L, SH_SSH_SESSION_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 3, 1); /* pins the library */
    int n = 0;
    if ((ss->s = a->ssh_new()) == NULL) {
        n = sh_fail(L, "ssh_new", ENOMEM);
    } else if (connect_options(ss, &o) < 0) {
        n = ssh_fail(L, ss, o.host, "EINVAL");
    } else if (a->ssh_connect(ss->s) != SSH_OK) {
        n = ssh_fail(L, ss, o.host, "CONNECT");
    } else {
        keepalive(a->ssh_get_fd(ss->s));
        if ((n = check_host_key(L, ss, o.accept_new)) == 0 && !o.key_only) {
            n = authenticate(L, ss, o.identity);
        }
    }
    if (n > 0) {
        session_release(ss); /* the connection goes now, not at __gc */
        return n;
    }
    lua_settop(L, 3);
    return 1;
}

/* ---- exec: capture ------------------------------------------------------- */

static void capture_free(struct capture *c)
{
    sh_keep_free(&c->keep);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* [-0, +0, m] Sets NAME (head and tail joined), NAME_bytes, NAME_dropped,
 * NAME_truncated, NAME_dropped_at (when truncated) in the table on top;
 * only NAME_bytes for a stream sent to an fd. */
static void capture_push(lua_State *L, struct capture *c, const char *name)
{
    char key[32];
    lua_pushinteger(L, (lua_Integer)c->keep.total);
    snprintf(key, sizeof key, "%s_bytes", name);
    lua_setfield(L, -2, key);
    if (c->fd >= 0) {
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, c->keep.head ? c->keep.head : "", c->keep.head_len);
    size_t first = c->keep.ring_limit - c->keep.ring_start;
    first = first < c->keep.ring_len ? first : c->keep.ring_len;
    luaL_addlstring(&b, c->keep.ring ? c->keep.ring + c->keep.ring_start : "",
                    first);
    luaL_addlstring(&b, c->keep.ring ? c->keep.ring : "",
                    c->keep.ring_len - first);
    luaL_pushresult(&b);
    lua_setfield(L, -2, name);
    lua_Integer dropped =
        (lua_Integer)(c->keep.total - c->keep.head_len - c->keep.ring_len);
    lua_pushinteger(L, dropped);
    snprintf(key, sizeof key, "%s_dropped", name);
    lua_setfield(L, -2, key);
    lua_pushboolean(L, dropped > 0);
    snprintf(key, sizeof key, "%s_truncated", name);
    lua_setfield(L, -2, key);
    if (dropped > 0) {
        lua_pushinteger(L, (lua_Integer)c->keep.head_len);
        snprintf(key, sizeof key, "%s_dropped_at", name);
        lua_setfield(L, -2, key);
    }
}

/* ---- exec: the channel --------------------------------------------------- */

/* libssh callbacks: record, never call Lua or libssh. */
static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
                   int is_stderr, void *ud)
{
    (void)s;
    (void)ch;
    Channel *c = ud;
    struct capture *cap = is_stderr ? &c->err : &c->out;
    const char *p = data;
    size_t n = len;
    if (cap->fd >= 0) {
        cap->keep.total += n;
        if (c->write_err == 0 && sh_write_all(cap->fd, p, n) < 0) {
            c->write_err = errno;
        }
    } else {
        sh_tee_write(&cap->tee, p, n);
        sh_keep_add(&cap->keep, p, n);
    }
    return (int)len; /* all consumed: libssh grows the window */
}

static void on_exit_status(ssh_session s, ssh_channel ch, int status, void *ud)
{
    (void)s;
    (void)ch;
    ((Channel *)ud)->status = status;
}

static void on_exit_signal(ssh_session s, ssh_channel ch, const char *sig,
                           int core, const char *errmsg, const char *lang,
                           void *ud)
{
    (void)s;
    (void)ch;
    (void)core;
    (void)errmsg;
    (void)lang;
    Channel *c = ud;
    snprintf(c->signame, sizeof c->signame, "%s", sig ? sig : "UNKNOWN");
}

/* Frees the libssh side (event, callbacks, channel); keeps the captures. */
static void chan_drop(Channel *c)
{
    const struct ssh_api *a = c->api;
    if (c->ev != NULL) {
        if (c->owner != NULL) {
            a->ssh_event_remove_session(c->ev, c->owner->s);
        }
        a->ssh_event_free(c->ev);
        c->ev = NULL;
    }
    if (c->ch != NULL) {
        /* A channel freed before the server closed it lives on inside
         * libssh until then: it must not call back into freed memory. */
        a->ssh_remove_channel_callbacks(c->ch, &c->cb);
        a->ssh_channel_free(c->ch);
        c->ch = NULL;
    }
    if (c->owner != NULL && c->owner->chan == c) {
        c->owner->chan = NULL;
    }
    c->owner = NULL;
}

static void chan_release(Channel *c)
{
    chan_drop(c);
    capture_free(&c->out);
    capture_free(&c->err);
}

/* Channel:close(): idempotent (also __gc, __close) */
static int chan_close(lua_State *L)
{
    chan_release(luaL_checkudata(L, 1, SH_SSH_CHANNEL_MT));
    return 0;
}

struct exec_opts {
    const char *cmd;
    const char *input;
    size_t input_len, input_off;
    int eof_sent;
    double t0, deadline;
    size_t cap;
    int out_fd;
    int tee_out, tee_err, tee_no_strings;
};

enum { END_DONE, END_TIMEOUT, END_INTERRUPTED, END_SSH, END_WRITE };

/* The progress of a long transfer: the function at stack index fn (0:
 * none) is called with the bytes so far, at most every REPORT_EVERY
 * seconds and once at the end.  Its errors are ignored: a display must
 * never end a transfer. */
#define REPORT_EVERY 0.1
struct report {
    lua_State *L;
    int fn;
    double at;
    long long told;
};

static struct report report_at(lua_State *L, int idx)
{
    struct report r = {L, lua_isfunction(L, idx) ? idx : 0, 0, -1};
    return r;
}

static void report_bytes(struct report *r, long long n, int last)
{
    if (r->fn == 0 || n == r->told) {
        return;
    }
    double now = sh_monotonic();
    if (!last && now - r->at < REPORT_EVERY) {
        return;
    }
    r->at = now;
    r->told = n;
    lua_pushvalue(r->L, r->fn);
    lua_pushinteger(r->L, (lua_Integer)n);
    if (lua_pcall(r->L, 1, 0, 0) != LUA_OK) {
        lua_pop(r->L, 1);
    }
}

/* The fd in field NAME of the options at index 3, or -1; raises on one
 * that is not an fd. */
static int opt_fd(lua_State *L, const char *name)
{
    double fd = sh_optfield_number(L, 3, name, -1);
    if (!(fd >= -1 && fd <= INT_MAX && fd == (int)fd)) {
        luaL_error(L, "%s: not an fd", name);
    }
    return (int)fd;
}

/* Reads exec's arguments (command, opts table); raises on misuse.  The
 * stdin string is kept at stack index 3. */
static void exec_read(lua_State *L, struct exec_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cmd = luaL_checkstring(L, 2);
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    double timeout = sh_optfield_number(L, 3, "timeout", -1);
    double cap = sh_optfield_number(L, 3, "max_capture", DEFAULT_CAPTURE);
    luaL_argcheck(L, cap >= 0, 3, "max_capture must not be negative");
    o->cap = (size_t)cap;
    double fd = sh_optfield_number(L, 3, "stdout_fd", -1);
    luaL_argcheck(L, fd >= -1 && fd <= INT_MAX && fd == (int)fd, 3,
                  "stdout_fd: not an fd");
    o->out_fd = (int)fd;
    o->tee_out = opt_fd(L, "tee_stdout");
    o->tee_err = opt_fd(L, "tee_stderr");
    o->tee_no_strings = sh_optfield_boolean(L, 3, "tee_no_strings", 0);
    o->input = opt_string(L, 3, "stdin", &o->input_len);
    o->t0 = sh_monotonic();
    o->deadline = timeout >= 0 ? o->t0 + timeout : 1e308;
    lua_settop(L, 3);
}

/* [-0, +1, m] A closed Channel for the session at index 1. */
static Channel *chan_new(lua_State *L, Session *ss, const struct exec_opts *o)
{
    Channel *c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    c->api = ss->api;
    c->status = -1;
    c->out.fd = o->out_fd;
    c->err.fd = -1;
    c->out.tee.fd = o->tee_out;
    c->err.tee.fd = o->tee_err;
    c->out.tee.no_strings = c->err.tee.no_strings = o->tee_no_strings;
    c->out.keep.head_limit = c->err.keep.head_limit = o->cap / 2;
    c->out.keep.ring_limit = c->err.keep.ring_limit = o->cap - o->cap / 2;
    luaL_setmetatable(L, SH_SSH_CHANNEL_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the session outlives it */
    c->owner = ss;
    ss->chan = c;
    return c;
}

/* Opens the channel, sets the callbacks and starts the command; 0 or -1. */
static int exec_start(Channel *c, ssh_session s, const char *cmd)
{
    const struct ssh_api *a = c->api;
    if ((c->ch = a->ssh_channel_new(s)) == NULL ||
        open_channel(a, s, c->ch) != SSH_OK) {
        return -1;
    }
    ssh_callbacks_init(&c->cb);
    c->cb.userdata = c;
    c->cb.channel_data_function = on_data;
    c->cb.channel_exit_status_function = on_exit_status;
    c->cb.channel_exit_signal_function = on_exit_signal;
    if (a->ssh_set_channel_callbacks(c->ch, &c->cb) != SSH_OK ||
        a->ssh_channel_request_exec(c->ch, cmd) != SSH_OK) {
        return -1;
    }
    if ((c->ev = a->ssh_event_new()) == NULL) {
        return -1;
    }
    return a->ssh_event_add_session(c->ev, s) == SSH_OK ? 0 : -1;
}

/* Sends what the remote window takes of stdin, then EOF; 0 or -1. */
static int exec_feed(Channel *c, struct exec_opts *o)
{
    const struct ssh_api *a = c->api;
    if (o->eof_sent) {
        return 0;
    }
    size_t left = o->input_len - o->input_off;
    if (left > 0) {
        size_t n = a->ssh_channel_window_size(c->ch);
        n = n < left ? n : left;
        n = n < FEED_CHUNK ? n : FEED_CHUNK;
        if (n == 0) {
            return 0; /* wait for the window to open */
        }
        int w =
            a->ssh_channel_write(c->ch, o->input + o->input_off, (uint32_t)n);
        if (w < 0) {
            return a->ssh_channel_is_closed(c->ch) ? 0 : -1;
        }
        o->input_off += (size_t)w;
        if (o->input_off < o->input_len) {
            return 0;
        }
    }
    o->eof_sent = 1;
    if (a->ssh_channel_send_eof(c->ch) != SSH_OK) {
        return a->ssh_channel_is_closed(c->ch) ? 0 : -1;
    }
    return 0;
}

/* Finished: the server closed the channel, or sent EOF and how the
 * command ended. */
static int exec_done(Channel *c)
{
    const struct ssh_api *a = c->api;
    if (a->ssh_channel_is_closed(c->ch)) {
        return 1;
    }
    return a->ssh_channel_is_eof(c->ch) &&
           (c->status >= 0 || c->signame[0] != '\0');
}

/* Pumps the session until the command ends or must be abandoned; returns
 * END_* (*sig: the interrupting signal). */
static int exec_loop(Channel *c, struct exec_opts *o, int *sig,
                     struct report *rep)
{
    const struct ssh_api *a = c->api;
    for (;;) {
        report_bytes(rep, (long long)c->out.keep.total, 0);
        if (exec_done(c)) {
            report_bytes(rep, (long long)c->out.keep.total, 1);
            return END_DONE;
        }
        if (c->write_err != 0) {
            return END_WRITE;
        }
        if ((*sig = sh_interrupted()) != 0) {
            return END_INTERRUPTED;
        }
        double left = o->deadline - sh_monotonic();
        if (left <= 0) {
            return END_TIMEOUT;
        }
        if (exec_feed(c, o) < 0) {
            return END_SSH;
        }
        int ms = left * 1000 < SLICE_MS ? (int)(left * 1000) + 1 : SLICE_MS;
        errno = 0;
        quickack(a, c->owner->s);
        /* A signal interrupts the poll (EINTR): checked on the next turn. */
        if (a->ssh_event_dopoll(c->ev, ms) == SSH_ERROR && errno != EINTR &&
            !a->ssh_is_connected(c->owner->s)) {
            return END_SSH;
        }
    }
}

/* [-0, +1, m] The result table of exec. */
static void exec_push(lua_State *L, Channel *c, const struct exec_opts *o,
                      int end, int sig)
{
    lua_createtable(L, 0, 16);
    if (c->status >= 0) {
        lua_pushinteger(L, c->status);
        lua_setfield(L, -2, "code");
    }
    if (c->signame[0] != '\0') {
        /* as proc.c's: signal the number (of this machine's numbering:
         * Linux's on both ends), signal_name the name libssh gave */
        lua_pushinteger(L, sh_signal_number(c->signame));
        lua_setfield(L, -2, "signal");
        lua_pushstring(L, c->signame);
        lua_setfield(L, -2, "signal_name");
    }
    lua_pushboolean(L, end == END_TIMEOUT);
    lua_setfield(L, -2, "timed_out");
    if (end == END_INTERRUPTED) {
        lua_pushinteger(L, sig);
        lua_setfield(L, -2, "interrupted");
    }
    lua_pushnumber(L, sh_monotonic() - o->t0);
    lua_setfield(L, -2, "duration");
    capture_push(L, &c->out, "stdout");
    capture_push(L, &c->err, "stderr");
}

/* Session:exec(command [, opts]) -> result | nil, msg, code
 * Runs command (through the user's shell, as sshd does) on a new channel
 * of the session.  opts: stdin (string, sent then EOF); timeout (s: then
 * a KILL signal request is sent, which OpenSSH refuses for root logins,
 * and the channel closed, which closes the command's pipes: a command
 * that neither reads nor writes runs on); max_capture (bytes kept per
 * stream, default 1 MiB: half from the start, half from the end);
 * stdout_fd (stream stdout to this fd instead of capturing it);
 * tee_stdout, tee_stderr (fds the streams are copied to as they come,
 * as well as kept) and tee_no_strings (leave terminal control strings
 * out of those copies: see sh_tee); on_stdout_bytes (with stdout_fd: a
 * function called with the bytes streamed so far, a few times a second).
 * result: code (exit status) | signal (name, e.g. "TERM") and
 * signal_name, timed_out, interrupted (signal number, after SIGINT or
 * SIGTERM), duration (s), stdout, stderr, and for each stream NAME_bytes,
 * NAME_dropped, NAME_truncated, NAME_dropped_at (stdout_fd: only
 * stdout_bytes).  A failed write to stdout_fd ends the command and
 * returns nil, "stdout_fd: <strerror>", errno name. */
static int session_exec(lua_State *L)
{
    Session *ss = check_session(L);
    struct exec_opts o;
    exec_read(L, &o);
    Channel *c = chan_new(L, ss, &o);      /* 4 */
    lua_getfield(L, 3, "on_stdout_bytes"); /* 5 */
    struct report rep = report_at(L, 5);
    int sig = 0, end = END_SSH;
    if (exec_start(c, ss->s, o.cmd) == 0) {
        end = exec_loop(c, &o, &sig, &rep);
    }
    if (end == END_SSH) {
        ssh_fail(L, ss, "exec", "SSH");
        chan_release(c);
        return 3;
    }
    if (end == END_DONE && c->status < 0 && c->signame[0] == '\0' &&
        !c->api->ssh_is_connected(ss->s)) {
        ssh_fail(L, ss, "exec", "SSH"); /* the connection is gone */
        chan_release(c);
        return 3;
    }
    if (end != END_DONE) {
        c->api->ssh_channel_request_send_signal(c->ch, "KILL");
    }
    chan_drop(c);
    if (end == END_WRITE) {
        int err = c->write_err;
        chan_release(c);
        return sh_fail(L, "stdout_fd", err);
    }
    exec_push(L, c, &o, end, sig);
    chan_release(c);
    return 1;
}

/* ---- Sftp ---------------------------------------------------------------- */

static void file_release(SftpFile *x);

static void sftp_release(Sftp *f)
{
    if (f->file != NULL) {
        file_release(f->file);
    }
    if (f->sftp != NULL) {
        f->api->sftp_free(f->sftp);
        f->sftp = NULL;
    }
    if (f->owner != NULL && f->owner->sftp == f) {
        f->owner->sftp = NULL;
    }
    f->owner = NULL;
}

static Sftp *check_sftp(lua_State *L)
{
    Sftp *f = luaL_checkudata(L, 1, SH_SSH_SFTP_MT);
    if (f->sftp == NULL) {
        luaL_error(L, "attempt to use a closed Sftp");
    }
    return f;
}

/* Sftp:close(): idempotent (also __gc, __close) */
static int lsftp_close(lua_State *L)
{
    sftp_release(luaL_checkudata(L, 1, SH_SSH_SFTP_MT));
    return 0;
}

/* Session:sftp() -> Sftp | nil, msg, code: the session's SFTP channel,
 * opened on first use and the same object until it is closed. */
static int session_sftp(lua_State *L)
{
    Session *ss = check_session(L);
    lua_settop(L, 1);
    if (ss->sftp != NULL) {
        lua_getiuservalue(L, 1, 2);
        return 1;
    }
    Sftp *f = lua_newuserdatauv(L, sizeof *f, 1); /* 2 */
    memset(f, 0, sizeof *f);
    f->api = ss->api;
    luaL_setmetatable(L, SH_SSH_SFTP_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, 2, 1); /* pins the session */
    const struct ssh_api *a = ss->api;
    ssh_channel ch = a->ssh_channel_new(ss->s);
    if (ch == NULL || open_channel(a, ss->s, ch) != SSH_OK ||
        a->ssh_channel_request_sftp(ch) != SSH_OK ||
        (f->sftp = a->sftp_new_channel(ss->s, ch)) == NULL) {
        if (ch != NULL) {
            a->ssh_channel_free(ch); /* before ssh_fail, which may raise */
        }
        return ssh_fail(L, ss, "sftp", "SSH");
    }
    if (ss->api->sftp_init(f->sftp) != SSH_OK) {
        ssh_fail(L, ss, "sftp", "SSH");
        sftp_release(f);
        return 3;
    }
    f->owner = ss;
    ss->sftp = f;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 2); /* session:sftp() finds it again */
    return 1;
}

/* SFTP status codes as errno values (0: none fits). */
static int fx_errno(int status)
{
    switch (status) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
        return ENOENT;
    case SSH_FX_PERMISSION_DENIED:
        return EACCES;
    case SSH_FX_BAD_MESSAGE:
        return EBADMSG;
    case SSH_FX_NO_CONNECTION:
        return ENOTCONN;
    case SSH_FX_CONNECTION_LOST:
        return ECONNRESET;
    case SSH_FX_OP_UNSUPPORTED:
        return EOPNOTSUPP;
    case SSH_FX_INVALID_HANDLE:
        return EBADF;
    case SSH_FX_FILE_ALREADY_EXISTS:
        return EEXIST;
    case SSH_FX_WRITE_PROTECT:
        return EROFS;
    case SSH_FX_NO_MEDIA:
        return ENOMEDIUM;
    default:
        return 0;
    }
}

/* [-0, +3, m] The failure of an SFTP request with status `status` (-1:
 * the one libssh recorded).  SSH_FX_FAILURE (SFTP v3 has no finer code,
 * so OpenSSH sends it for EEXIST, ENOTEMPTY, ...) is "EIO". */
static int fx_fail(lua_State *L, Sftp *f, const char *what, int status)
{
    const struct ssh_api *a = f->api;
    if (!a->ssh_is_connected(f->owner->s)) {
        return ssh_fail(L, f->owner, what, "SSH");
    }
    if (status < 0) {
        status = a->sftp_get_error(f->sftp);
    }
    int err = fx_errno(status);
    if (err != 0) {
        return sh_fail(L, what, err);
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s: SFTP request failed (status %d)", what, status);
    lua_pushliteral(L, "EIO");
    return 3;
}

/* Like fx_fail, for a request that creates `path`: a generic failure
 * with path present is reported as EEXIST. */
static int fx_fail_create(lua_State *L, Sftp *f, const char *path)
{
    int status = f->api->sftp_get_error(f->sftp);
    if (status == SSH_FX_FAILURE && f->api->ssh_is_connected(f->owner->s)) {
        sftp_attributes at = f->api->sftp_lstat(f->sftp, path);
        if (at != NULL) {
            f->api->sftp_attributes_free(at);
            return sh_fail(L, path, EEXIST);
        }
    }
    return fx_fail(L, f, path, status);
}

/* at as an sh_stat (no nlink, ino, dev, rdev over SFTP), then frees at.
 * SFTP v3 carries the type in the permission bits; its own type field
 * stands in when a server leaves them out. */
static void fx_stat_take(const struct ssh_api *a, sftp_attributes at,
                         struct sh_stat *st)
{
    static const mode_t by_type[] = {0, S_IFREG, S_IFDIR, S_IFLNK, 0, 0};
    memset(st, 0, sizeof *st);
    st->mode = (mode_t)at->permissions;
    if ((st->mode & S_IFMT) == 0 && at->type <= 5) {
        st->mode |= by_type[at->type];
    }
    st->uid = at->uid;
    st->gid = at->gid;
    st->size = (lua_Integer)at->size;
    st->mtime = at->mtime64 ? (double)at->mtime64 : (double)at->mtime;
    st->mtime_sec =
        at->mtime64 ? (lua_Integer)at->mtime64 : (lua_Integer)at->mtime;
    st->mtime_nsec = (lua_Integer)at->mtime_nseconds;
    a->sftp_attributes_free(at);
}

static int stat_common(lua_State *L, int follow)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    sftp_attributes at = follow ? f->api->sftp_stat(f->sftp, path)
                                : f->api->sftp_lstat(f->sftp, path);
    if (at == NULL) {
        return fx_fail(L, f, path, -1);
    }
    struct sh_stat st;
    fx_stat_take(f->api, at, &st);
    sh_push_stat(L, &st);
    return 1;
}

/* Sftp:stat(path) -> {type, mode, uid, gid, size, mtime} | nil, msg, code */
static int lsftp_stat(lua_State *L)
{
    return stat_common(L, 1);
}

/* Sftp:lstat(path) -> table | nil, msg, code (does not follow symlinks) */
static int lsftp_lstat(lua_State *L)
{
    return stat_common(L, 0);
}

/* Sftp:readlink(path) -> target | nil, msg, code */
static int lsftp_readlink(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    char buf[PATH_MAX];
    char *t = f->api->sftp_readlink(f->sftp, path);
    if (t == NULL) {
        return fx_fail(L, f, path, -1);
    }
    size_t n = strlen(t);
    if (n < sizeof buf) {
        memcpy(buf, t, n + 1);
    }
    f->api->ssh_string_free_char(t);
    if (n >= sizeof buf) {
        return sh_fail(L, path, ENAMETOOLONG);
    }
    lua_pushlstring(L, buf, n);
    return 1;
}

/* Sftp:symlink(target, path) -> true | nil, msg, code (path -> target) */
static int lsftp_symlink(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *target = luaL_checkstring(L, 2);
    const char *path = luaL_checkstring(L, 3);
    /* libssh swaps the arguments for OpenSSH's reversed SSH_FXP_SYMLINK. */
    if (f->api->sftp_symlink(f->sftp, target, path) < 0) {
        return fx_fail_create(L, f, path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Sftp:mkdir(path [, mode = 0755]) -> true | nil, msg, code */
static int lsftp_mkdir(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    mode_t mode = (mode_t)luaL_optinteger(L, 3, 0755);
    if (f->api->sftp_mkdir(f->sftp, path, mode) < 0) {
        return fx_fail_create(L, f, path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Sftp:rmdir(path) -> true | nil, msg, code */
static int lsftp_rmdir(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    if (f->api->sftp_rmdir(f->sftp, path) < 0) {
        return fx_fail(L, f, path, -1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Sftp:unlink(path) -> true | nil, msg, code */
static int lsftp_unlink(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    if (f->api->sftp_unlink(f->sftp, path) < 0) {
        return fx_fail(L, f, path, -1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
    p = put_u32(p, (uint32_t)n);
    memcpy(p, s, n);
    return p + n;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Reads exactly n bytes of the SFTP channel; 0 or -1. */
static int fx_read_exact(Sftp *f, uint8_t *buf, size_t n)
{
    while (n > 0) {
        int r = f->api->ssh_channel_read(f->sftp->channel, buf, (uint32_t)n, 0);
        if (r <= 0) {
            return -1;
        }
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

/* posix-rename@openssh.com (rename(2), replacing `to` atomically), which
 * libssh 0.10 has no call for: the request is written on the SFTP
 * channel and its status read back.  libssh's SFTP calls are synchronous,
 * so nothing else is in flight on the channel.  Returns the SFTP status,
 * or -1 (transport failure). */
static int posix_rename(Sftp *f, const char *from, const char *to)
{
    static const char ext[] = "posix-rename@openssh.com";
    size_t nf = strlen(from), nt = strlen(to); /* < PATH_MAX: checked */
    uint8_t req[2 * PATH_MAX + 64], rep[512];
    uint32_t id = ++f->sftp->id_counter; /* as sftp_get_new_id() does */
    uint8_t *p = req + 4;                /* after the length, set last */
    *p++ = SSH_FXP_EXTENDED;
    p = put_u32(p, id);
    p = put_str(p, ext, sizeof ext - 1);
    p = put_str(p, from, nf);
    p = put_str(p, to, nt);
    put_u32(req, (uint32_t)(p - req - 4));
    if (f->api->ssh_channel_write(f->sftp->channel, req, (uint32_t)(p - req)) !=
            (int)(p - req) ||
        fx_read_exact(f, rep, 4) < 0) {
        return -1;
    }
    uint32_t len = get_u32(rep);
    if (len < 9 || len > sizeof rep || fx_read_exact(f, rep, len) < 0 ||
        rep[0] != SSH_FXP_STATUS || get_u32(rep + 1) != id) {
        return -1;
    }
    return (int)get_u32(rep + 5);
}

/* Sftp:rename(from, to) -> true | nil, msg, code.  Replaces an existing
 * `to` atomically where the server has posix-rename@openssh.com; plain
 * SFTP v3 rename (which refuses an existing `to`) otherwise. */
static int lsftp_rename(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *from = luaL_checkstring(L, 2);
    const char *to = luaL_checkstring(L, 3);
    const struct ssh_api *a = f->api;
    if (strlen(from) >= PATH_MAX || strlen(to) >= PATH_MAX) {
        return sh_fail(L, from, ENAMETOOLONG);
    }
    if (a->sftp_extension_supported(f->sftp, "posix-rename@openssh.com", "1")) {
        int st = posix_rename(f, from, to);
        if (st == -1) {
            return ssh_fail(L, f->owner, from, "SSH");
        }
        if (st != SSH_FX_OK) {
            return fx_fail(L, f, from, st);
        }
    } else if (a->sftp_rename(f->sftp, from, to) < 0) {
        return fx_fail(L, f, from, -1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Sftp:chmod(path, mode) -> true | nil, msg, code (follows symlinks) */
static int lsftp_chmod(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    mode_t mode = (mode_t)luaL_checkinteger(L, 3);
    if (f->api->sftp_chmod(f->sftp, path, mode) < 0) {
        return fx_fail(L, f, path, -1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Sftp:chown(path, uid, gid) -> true | nil, msg, code.  Follows a
 * symlink: SFTP v3 SETSTAT has no lchown, so callers lstat first. */
static int lsftp_chown(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    uid_t uid = (uid_t)luaL_checkinteger(L, 3);
    gid_t gid = (gid_t)luaL_checkinteger(L, 4);
    if (f->api->sftp_chown(f->sftp, path, uid, gid) < 0) {
        return fx_fail(L, f, path, -1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- SftpFile: one transfer or listing ----------------------------------- */

static void file_release(SftpFile *x)
{
    const struct ssh_api *a = x->api;
    if (x->attr != NULL) {
        a->sftp_attributes_free(x->attr);
        x->attr = NULL;
    }
    if (x->dir != NULL) {
        a->sftp_closedir(x->dir);
        x->dir = NULL;
    }
    if (x->file != NULL) {
        a->sftp_close(x->file);
        x->file = NULL;
    }
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
    }
    if (x->unlink != NULL) {
        unlink(x->unlink); /* a partial download, ours (O_EXCL) */
        free(x->unlink);
        x->unlink = NULL;
    }
    free(x->buf);
    x->buf = NULL;
    if (x->owner != NULL && x->owner->file == x) {
        x->owner->file = NULL;
    }
    x->owner = NULL;
}

/* SftpFile:close(): idempotent (also __gc, __close) */
static int file_close(lua_State *L)
{
    file_release(luaL_checkudata(L, 1, SH_SSH_SFTPFILE_MT));
    return 0;
}

/* [-0, +1, m] A closed SftpFile for the Sftp at index 1. */
static SftpFile *file_new(lua_State *L, Sftp *f)
{
    SftpFile *x = lua_newuserdatauv(L, sizeof *x, 1);
    memset(x, 0, sizeof *x);
    x->api = f->api;
    x->fd = -1;
    luaL_setmetatable(L, SH_SSH_SFTPFILE_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    x->owner = f;
    f->file = x;
    return x;
}

/* [-0, +3, m] Releases x, then pushes the failure of the last SFTP
 * request (its status read first: closing x sends requests too). */
static int file_fx_fail(lua_State *L, SftpFile *x, const char *what)
{
    Sftp *f = x->owner;
    int status = f->api->sftp_get_error(f->sftp);
    file_release(x);
    return fx_fail(L, f, what, status);
}

/* [-0, +3, m] Releases x, then pushes sh_fail(what, err). */
static int file_sys_fail(lua_State *L, SftpFile *x, const char *what, int err)
{
    file_release(x);
    return sh_fail(L, what, err);
}

/* Sftp:readdir(path) -> {names} | nil, msg, code (no "." and "..") */
static int lsftp_readdir(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    lua_settop(L, 2);
    SftpFile *x = file_new(L, f); /* 3 */
    if ((x->dir = f->api->sftp_opendir(f->sftp, path)) == NULL) {
        return file_fx_fail(L, x, path);
    }
    lua_newtable(L); /* 4 */
    lua_Integer n = 0;
    while ((x->attr = f->api->sftp_readdir(f->sftp, x->dir)) != NULL) {
        const char *name = x->attr->name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            lua_pushstring(L, name);
            lua_rawseti(L, 4, ++n);
        }
        f->api->sftp_attributes_free(x->attr);
        x->attr = NULL;
    }
    if (!f->api->sftp_dir_eof(x->dir)) {
        return file_fx_fail(L, x, path);
    }
    file_release(x);
    return 1;
}

/* Sftp:read(path [, max = 64 MiB]) -> data | nil, msg, code (EFBIG when
 * the file holds more than max bytes) */
static int lsftp_read(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *path = luaL_checkstring(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, DEFAULT_READ_MAX);
    luaL_argcheck(L, max >= 0, 3, "max must not be negative");
    lua_settop(L, 3);
    SftpFile *x = file_new(L, f); /* 4 */
    if ((x->file = f->api->sftp_open(f->sftp, path, O_RDONLY, 0)) == NULL) {
        return file_fx_fail(L, x, path);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer total = 0;
    for (;;) {
        char *p = luaL_prepbuffsize(&b, XFER_CHUNK);
        ssize_t n = f->api->sftp_read(x->file, p, XFER_CHUNK);
        if (n < 0) {
            return file_fx_fail(L, x, path);
        }
        if (n == 0) {
            break;
        }
        if ((total += n) > max) {
            return file_sys_fail(L, x, path, EFBIG);
        }
        luaL_addsize(&b, (size_t)n);
    }
    file_release(x);
    luaL_pushresult(&b);
    return 1;
}

/* Copies the open remote file to x->fd in fixed chunks; bytes or -1
 * (-2: the local write failed, errno set; -3: interrupted). */
static long long xfer_get(SftpFile *x, struct report *rep)
{
    long long total = 0;
    for (;;) {
        if (sh_interrupted()) {
            return -3;
        }
        ssize_t n = x->api->sftp_read(x->file, x->buf, XFER_CHUNK);
        if (n <= 0) {
            report_bytes(rep, total, 1);
            return n == 0 ? total : -1;
        }
        if (sh_write_all(x->fd, x->buf, (size_t)n) < 0) {
            return -2;
        }
        total += n;
        report_bytes(rep, total, 0);
    }
}

/* Sftp:get(remote, local_path [, on_bytes]) -> bytes | nil, msg, code.
 * local_path is created (O_EXCL, mode 0600) and removed again on failure;
 * memory stays at one chunk whatever the size.  on_bytes: a function
 * called with the bytes so far, a few times a second. */
static int lsftp_get(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *remote = luaL_checkstring(L, 2);
    const char *local = luaL_checkstring(L, 3);
    lua_settop(L, 4);
    struct report rep = report_at(L, 4);
    SftpFile *x = file_new(L, f); /* 5 */
    if ((x->buf = malloc(XFER_CHUNK)) == NULL) {
        return file_sys_fail(L, x, "get", ENOMEM);
    }
    x->fd =
        open(local, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (x->fd < 0) {
        return file_sys_fail(L, x, local, errno);
    }
    if ((x->unlink = strdup(local)) == NULL) {
        unlink(local);
        return file_sys_fail(L, x, "get", ENOMEM);
    }
    if ((x->file = f->api->sftp_open(f->sftp, remote, O_RDONLY, 0)) == NULL) {
        return file_fx_fail(L, x, remote);
    }
    long long n = xfer_get(x, &rep);
    if (n == -2 || n == -3) {
        return file_sys_fail(L, x, local, n == -3 ? EINTR : errno);
    }
    if (n < 0) {
        return file_fx_fail(L, x, remote);
    }
    int fd = x->fd;
    x->fd = -1;
    if (close(fd) < 0) {
        return file_sys_fail(L, x, local, errno);
    }
    free(x->unlink); /* complete: keep it */
    x->unlink = NULL;
    file_release(x);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* Copies x->fd to the open remote file in fixed chunks; bytes or -1
 * (-2: the local read failed, errno set; -3: interrupted). */
static long long xfer_put(SftpFile *x, struct report *rep)
{
    long long total = 0;
    for (;;) {
        if (sh_interrupted()) {
            return -3;
        }
        ssize_t n = read(x->fd, x->buf, XFER_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            report_bytes(rep, total, 1);
            return n == 0 ? total : -2;
        }
        if (x->api->sftp_write(x->file, x->buf, (size_t)n) != n) {
            return -1;
        }
        total += n;
        report_bytes(rep, total, 0);
    }
}

/* Sftp:put(local_path, remote [, mode = 0600 [, on_bytes]]) -> bytes | nil,
 * msg, code.  remote is created (O_EXCL: an existing file is EEXIST, never
 * replaced) and removed again on failure; memory stays at one chunk.
 * on_bytes: a function called with the bytes so far, a few times a second. */
static int lsftp_put(lua_State *L)
{
    Sftp *f = check_sftp(L);
    const char *local = luaL_checkstring(L, 2);
    const char *remote = luaL_checkstring(L, 3);
    mode_t mode = (mode_t)luaL_optinteger(L, 4, 0600);
    lua_settop(L, 5);
    struct report rep = report_at(L, 5);
    SftpFile *x = file_new(L, f); /* 6 */
    if ((x->buf = malloc(XFER_CHUNK)) == NULL) {
        return file_sys_fail(L, x, "put", ENOMEM);
    }
    if ((x->fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        return file_sys_fail(L, x, local, errno);
    }
    x->file =
        f->api->sftp_open(f->sftp, remote, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (x->file == NULL) {
        file_release(x);
        return fx_fail_create(L, f, remote);
    }
    long long n = xfer_put(x, &rep);
    int err = errno;
    int status = f->api->sftp_get_error(f->sftp);
    int rc = f->api->sftp_close(x->file); /* reports late write errors */
    x->file = NULL;
    file_release(x);
    if (n >= 0 && rc == SSH_OK) {
        lua_pushinteger(L, (lua_Integer)n);
        return 1;
    }
    if (n >= 0) {
        status = f->api->sftp_get_error(f->sftp);
    }
    f->api->sftp_unlink(f->sftp, remote); /* ours: created with O_EXCL */
    if (n == -2 || n == -3) {
        return sh_fail(L, local, n == -3 ? EINTR : err);
    }
    return fx_fail(L, f, remote, status);
}

/* ---- registration -------------------------------------------------------- */

static const luaL_Reg ssh_funcs[] = {{"connect", lssh_connect}, {NULL, NULL}};

static const luaL_Reg session_methods[] = {{"exec", session_exec},
                                           {"sftp", session_sftp},
                                           {"host_key", session_host_key},
                                           {"close", session_close},
                                           {NULL, NULL}};

static const luaL_Reg session_meta[] = {{"__gc", session_close},
                                        {"__close", session_close},
                                        {"__tostring", session_tostring},
                                        {"__index", NULL},
                                        {NULL, NULL}};

static const luaL_Reg sftp_methods[] = {
    {"stat", lsftp_stat},         {"lstat", lsftp_lstat},
    {"readlink", lsftp_readlink}, {"symlink", lsftp_symlink},
    {"mkdir", lsftp_mkdir},       {"rmdir", lsftp_rmdir},
    {"unlink", lsftp_unlink},     {"rename", lsftp_rename},
    {"chmod", lsftp_chmod},       {"chown", lsftp_chown},
    {"readdir", lsftp_readdir},   {"read", lsftp_read},
    {"get", lsftp_get},           {"put", lsftp_put},
    {"close", lsftp_close},       {NULL, NULL}};

static const luaL_Reg sftp_meta[] = {{"__gc", lsftp_close},
                                     {"__close", lsftp_close},
                                     {"__index", NULL},
                                     {NULL, NULL}};

static const luaL_Reg chan_meta[] = {{"__gc", chan_close},
                                     {"__close", chan_close},
                                     {"close", chan_close},
                                     {NULL, NULL}};

static const luaL_Reg file_meta[] = {{"__gc", file_close},
                                     {"__close", file_close},
                                     {"close", file_close},
                                     {NULL, NULL}};

/* [-0, +0, m] A metatable `name` with meta, and methods as __index. */
static void new_meta(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    if (methods != NULL) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    } else {
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

static void create_meta(lua_State *L)
{
    static const luaL_Reg api_meta[] = {{"__gc", api_gc}, {NULL, NULL}};
    new_meta(L, API_MT, api_meta, NULL);
    new_meta(L, SH_SSH_SESSION_MT, session_meta, session_methods);
    new_meta(L, SH_SSH_SFTP_MT, sftp_meta, sftp_methods);
    new_meta(L, SH_SSH_CHANNEL_MT, chan_meta, NULL);
    new_meta(L, SH_SSH_SFTPFILE_MT, file_meta, NULL);
}

int luaopen_shannot_core_ssh(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, ssh_funcs);
    return 1;
}
