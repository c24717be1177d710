/*
 * shannot.h: the one internal header of the C host.
 *
 * Names shared with Lua (metatable names, module names) are defined here
 * and in lua/shannot/const.lua, spelled alike; each cites the other.
 */
#ifndef SHANNOT_H
#define SHANNOT_H

/* The client build (make client: no local sandbox) is POSIX.1-2008 with
 * XSI and nothing of GNU or Linux: checked here. */
#if defined(SH_CLIENT) && (defined(_GNU_SOURCE) || defined(_DEFAULT_SOURCE))
#error "the client build takes POSIX interfaces only"
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

/* Metatable names (see lua/shannot/const.lua). */
#define SH_PROCESS_MT "shannot.proc.Process"
#define SH_FILE_MT "shannot.fs.File"
#define SH_TERM_RAW_MT "shannot.term.Raw"
#define SH_TAR_READER_MT "shannot.tar.Reader"
#define SH_SSH_SESSION_MT "shannot.ssh.Session"
#define SH_SSH_SFTP_MT "shannot.ssh.Sftp"
#define SH_SSH_CHANNEL_MT "shannot.ssh.Channel"
#define SH_SSH_SFTPFILE_MT "shannot.ssh.SftpFile"

/* Fallback when the kernel headers lack it (close_range(2), Linux 5.11). */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* util.c */

/* [-0, +3, m] Pushes nil, "<what>: <strerror>", "<ENAME>"; returns 3. */
int sh_fail(lua_State *L, const char *what, int errnum);
/* [-0, +3, m] Like sh_fail with a formatted "what". */
int sh_failf(lua_State *L, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Seconds on the monotonic clock. */
double sh_monotonic(void);
/* Marks every fd >= lowfd close-on-exec (close_range or a loop). */
void sh_cloexec_from(int lowfd);
/* write(2) of the whole buffer, retrying on EINTR; 0 or -1 with errno. */
int sh_write_all(int fd, const void *buf, size_t len);
/* [-0, +0, e] Field `key` of the table at `idx` as a string or NULL. */
const char *sh_optfield_string(lua_State *L, int idx, const char *key);
/* [-0, +0, e] Field `key` of the table at `idx` as a number or `def`. */
double sh_optfield_number(lua_State *L, int idx, const char *key, double def);
/* [-0, +0, e] Field `key` of the table at `idx` as a boolean or `def`. */
int sh_optfield_boolean(lua_State *L, int idx, const char *key, int def);
/* [-0, +0, e] t[key] = v for the table on top. */
void sh_set_int(lua_State *L, const char *key, lua_Integer v);
/* The word Lua sees for a file type: "file", "dir", "link", ... */
const char *sh_type_name(mode_t m);

/* What a stat table holds, wherever it was read (a local stat, SFTP). */
struct sh_stat {
    mode_t mode; /* type and permission bits */
    lua_Integer uid, gid, size;
    double mtime;
    lua_Integer mtime_sec, mtime_nsec; /* the same, exact (JSON's numbers
                                          hold each, not their product) */
    int has_ids; /* nlink, ino, dev, rdev, blocks are known */
    lua_Integer nlink, ino, dev, rdev, blocks;
};
/* A local struct stat as an sh_stat. */
void sh_stat_from(struct sh_stat *out, const struct stat *st);
/* [-0, +1, m] The one shape of a stat table: type, mode (permission bits),
 * uid, gid, size, mtime, mtime_sec, mtime_nsec, and nlink, ino, dev,
 * rdev, blocks (512-byte units allocated: fewer than size in a sparse file)
 * when known. */
void sh_push_stat(lua_State *L, const struct sh_stat *st);

/* sandbox.c: the user + mount namespace a sandbox child sets up before it
 * execs bwrap (DESIGN §2 step 1).  proc.c forks such a child with
 * clone(CLONE_NEWUSER|CLONE_NEWNS); the parent writes its id maps, then
 * the child mounts. */
struct sh_ns_mount {
    const char *target;
    const char *lower; /* lower, upper, work: NULL for a rebind */
    const char *upper;
    const char *work;
    int rebind;  /* bind target's own directory back over an overlay */
    int no_sync; /* overlayfs "volatile": no sync of the upper, ever */
};
struct sh_ns_setup {
    int full_map;      /* map every uid and gid onto itself (real root) */
    unsigned uid, gid; /* otherwise map only these */
    int nmounts;
    struct sh_ns_mount *mounts;
};
/* [-0, +1, e] Reads the namespace table at idx; the pushed userdata holds
 * the memory, the strings stay owned by the table. */
void sh_ns_read(lua_State *L, int idx, struct sh_ns_setup *s);
/* In the parent: writes the child's setgroups/uid_map/gid_map; 0 or -1. */
int sh_ns_parent(const struct sh_ns_setup *s, pid_t child);
/* In the child: private propagation, then each mount in order; 0, or -1
 * with errno and *failed = the mount's index (-1: the propagation step). */
int sh_ns_child(const struct sh_ns_setup *s, int *failed);

/* The first program inside a sandbox (argv after "__sandbox-enter"):
 * restricts writes to the given directories, then execs the command.
 * Returns an exit status only when it could not. */
int sh_sandbox_enter(int argc, char **argv);
int sh_stage(int argc, char **argv);       /* stage.c: shannot-enter __stage */
int sh_ns_exec(int argc, char **argv);     /* stage.c: shannot-enter __ns */
#define SH_SANDBOX_ENTER "__sandbox-enter" /* see lua/shannot/const.lua */

/* notify.c: the supervisor of a sandbox's socket calls (a profile's
 * unix_sockets allow list), driven by proc.c's communicate loop. */
struct pollfd;
struct sh_notify {
    int channel;  /* where the listener comes from (owned), -1 once done */
    int listener; /* the seccomp listener (owned), -1 before and after */
    const char **allow; /* the host sockets a connect may reach */
    int nallow;
};
/* Fills fds[0..1] to poll; returns 2. */
int sh_notify_pollfds(const struct sh_notify *n, struct pollfd *fds);
/* Acts on what the poll of those fds said. */
void sh_notify_step(struct sh_notify *n, const struct pollfd *fds);
void sh_notify_close(struct sh_notify *n);

/* util.c: the first of sonames (NULL-terminated) that dlopen()s, with
 * f[i] = the symbol names[i] for each of n; the handle, or NULL when no
 * library has them all (dlerror() says why).  For the libraries loaded on
 * first use (libcrypto, libseccomp): linked, they would cost every
 * command its start-up time. */
void *sh_dlopen_all(const char *const *sonames, const char *const *names,
                    void **f, size_t n);

/* sha256.c: SHA-256 in portable C (store.c's for small jobs, where
 * loading libcrypto would cost more than the hashing). */
struct sh_sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t fill;
};
void sh_sha256_init(struct sh_sha256 *s);
void sh_sha256_update(struct sh_sha256 *s, const void *data, size_t n);
void sh_sha256_final(struct sh_sha256 *s, unsigned char out[32]);

/* util.c: what is kept of a stream: the first head_limit bytes and a ring
 * of the last ring_limit bytes; total counts everything seen. */
struct sh_keep {
    char *head;
    size_t head_len, head_cap, head_limit;
    char *ring;
    size_t ring_start, ring_len, ring_limit;
    unsigned long long total;
};
void sh_keep_add(struct sh_keep *k, const char *p, size_t n);
/* Frees the buffers; the limits stay. */
void sh_keep_free(struct sh_keep *k);

/* util.c: signals by their names without "SIG" ("TERM"): the number, 0
 * for an unknown name; the name, NULL for an unknown number; one more
 * than the highest signal number. */
int sh_signal_number(const char *name);
const char *sh_signal_name(int sig);
int sh_signal_max(void);
/* util.c: pipe2(O_CLOEXEC) and mkostemp(O_CLOEXEC), or their POSIX
 * equivalents in the client build (not atomic there: it runs no
 * sandbox that could inherit a descriptor meanwhile). */
int sh_pipe_cloexec(int fds[2]);
int sh_mkstemp_cloexec(char *template);

/* util.c: a copy of a command's output passed on as it comes, to fd (-1:
 * none); no_strings leaves terminal control strings (OSC, DCS, APC, PM,
 * SOS) out of it, so a command cannot set the reader's clipboard or title.
 * The filter's state carries over from one chunk to the next. */
struct sh_tee {
    int fd;
    int no_strings;
    int state;     /* where the filter is in an escape or string */
    size_t string; /* bytes of the string being left out */
    int cont;      /* UTF-8 continuation bytes still due in the text */
};
void sh_tee_write(struct sh_tee *t, const char *p, size_t n);

/* main.c: the Lua state's allocator.  It counts what the state holds and
 * refuses to grow past a cap, so a policy file's rules can be given a
 * memory budget (sys.heap_cap). */
struct sh_heap {
    long long used; /* bytes allocated since the count began (may be < 0) */
    long long cap;  /* growth past this is refused; LLONG_MAX: no cap */
    int refused;    /* a growth was refused since the cap was set */
    int exiting;    /* lua_close before exit: frees are left to the kernel */
};
void *sh_heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* main.c: the signal that interrupted us (SIGINT, SIGTERM) or 0. */
int sh_interrupted(void);
/* main.c: forgets the interrupt (the REPL handled a Ctrl-C itself). */
void sh_clear_interrupt(void);

/* Cleanup helpers for plain-C paths (as bubblewrap's utils.h does). */
static inline void sh_freep(void *p)
{
    free(*(void **)p);
}
static inline void sh_closep(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
}
#define sh_autofree __attribute__((cleanup(sh_freep)))
#define sh_autoclose __attribute__((cleanup(sh_closep)))

/* Module openers (one per C file). */
int luaopen_shannot_core_proc(lua_State *L);
int luaopen_shannot_core_fs(lua_State *L);
int luaopen_shannot_core_sandbox(lua_State *L);
int luaopen_shannot_core_sys(lua_State *L);
int luaopen_shannot_core_data(lua_State *L);
int luaopen_shannot_core_store(lua_State *L);
int luaopen_shannot_core_diff(lua_State *L);
int luaopen_shannot_core_term(lua_State *L);
int luaopen_shannot_core_tar(lua_State *L);
int luaopen_shannot_core_ssh(lua_State *L);
int luaopen_shannot_core_seccomp(lua_State *L);

/* build/embedded_lua.c, generated by scripts/embed.lua */
struct sh_embedded {
    const char *name;  /* module name, e.g. "shannot.cli" */
    const char *chunk; /* chunk name, e.g. "@lua/shannot/cli.lua" */
    const unsigned char *data;
    size_t len;
};
extern const struct sh_embedded sh_embedded_lua[];
extern const size_t sh_embedded_lua_count;

/* loader.c: the standard library, shannot.core.*, the embedded searcher. */
void sh_open_libs(lua_State *L);
void sh_setup_package(lua_State *L);

#endif
