/*
 * fs.c: the file system primitives: stat/lstat, whole-file read, atomic
 * write (temp file, fsync, rename, fsync of the directory), directory
 * listing, mkdir -p, realpath, readlink, remove, mkdtemp, and File handles
 * (an fd owned by a userdata) for passing files to children.
 *
 * Lua: shannot.core.fs; every function returns its value or
 * nil, msg, code (code is the errno name, e.g. "ENOENT").
 */
#ifdef SH_CLIENT
/* The client build (no local sandbox): POSIX.1-2008 with XSI (realpath,
 * sync), nothing of Linux; what only Linux has falls back below. */
#define _XOPEN_SOURCE 700
#else
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifndef SH_CLIENT
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#endif

#include "shannot.h"

typedef struct {
    int fd; /* -1 when closed */
} File;

typedef struct {
    DIR *dir; /* NULL when closed */
} Dir;

/* [-0, +1, m] A table describing `st`. */
static void push_stat(lua_State *L, const struct stat *st)
{
    struct sh_stat s;
    sh_stat_from(&s, st);
    sh_push_stat(L, &s);
}

/* stat(path) -> table | nil, msg, code (follows symlinks) */
static int fs_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) < 0) {
        return sh_fail(L, path, errno);
    }
    push_stat(L, &st);
    return 1;
}

/* lstat(path) -> table | nil, msg, code (does not follow symlinks) */
static int fs_lstat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) < 0) {
        return sh_fail(L, path, errno);
    }
    push_stat(L, &st);
    return 1;
}

/* [-0, +1, m] A closed File userdata, ready to own an fd. */
static File *new_file(lua_State *L)
{
    File *f = lua_newuserdatauv(L, sizeof *f, 0);
    f->fd = -1;
    luaL_setmetatable(L, SH_FILE_MT);
    return f;
}

static File *check_file(lua_State *L)
{
    File *f = luaL_checkudata(L, 1, SH_FILE_MT);
    if (f->fd < 0) {
        luaL_error(L, "attempt to use a closed File");
    }
    return f;
}

/* [-0, +1|3, m] Pushes everything read from fd (or the failure); st is
 * its fstat, which sizes the first read. */
static int push_fd_contents(lua_State *L, int fd, const struct stat *st,
                            lua_Integer max, const char *what)
{
    /* Why 64 KiB: LUAL_BUFFERSIZE (1 KiB) made a 5 MiB file 5 000 reads.
     * Why not always: a 64 KiB buffer is an mmap and munmap of its own,
     * for the many small files (/proc, /sys, configs) read whole.  So the
     * first read asks for the file's size (4 KiB where it has none: /proc),
     * and after a short read, which is likely the end, only 4 KiB more. */
    enum { CHUNK = 65536, SMALL = 4096 };
    size_t want = SMALL;
    if (S_ISREG(st->st_mode) && st->st_size > 0) {
        want = st->st_size < CHUNK ? (size_t)st->st_size + 1 : CHUNK;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer total = 0;
    for (;;) {
        char *p = luaL_prepbuffsize(&b, want);
        ssize_t n = read(fd, p, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return sh_fail(L, what, errno);
        }
        if (n == 0) {
            break;
        }
        if ((total += n) > max) {
            return sh_fail(L, what, EFBIG);
        }
        luaL_addsize(&b, (size_t)n);
        want = (size_t)n < want ? SMALL : CHUNK;
    }
    luaL_pushresult(&b);
    return 1;
}

/* read_file(path [, max]) -> data | nil, msg, code
 * Refuses (EFBIG) a file larger than max bytes (default: no limit). */
static int fs_read_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, LUA_MAXINTEGER);
    File *f = new_file(L);
    /* Why O_NONBLOCK: a FIFO planted where a file is expected must not
     * block the open; it is refused below. */
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (f->fd < 0 || fstat(f->fd, &st) < 0) {
        return sh_fail(L, path, errno);
    }
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        return sh_failf(L, EINVAL, "%s: a %s, not a file", path,
                        S_ISFIFO(st.st_mode) ? "FIFO" : "socket");
    }
    fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) & ~O_NONBLOCK);
    return push_fd_contents(L, f->fd, &st, max, path);
}

static int current_umask(void)
{
    mode_t m = umask(022);
    umask(m);
    return (int)m;
}

/* Writes data to a fresh temp file next to `path`, then renames it over. */
static int write_atomic(const char *path, const char *data, size_t len,
                        int mode, int *err)
{
    size_t plen = strlen(path);
    sh_autofree char *tmp = malloc(plen + 16);
    sh_autoclose int fd = -1;
    if (tmp == NULL) {
        *err = ENOMEM;
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    fd = sh_mkstemp_cloexec(tmp);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (sh_write_all(fd, data, len) < 0 || fchmod(fd, (mode_t)mode) < 0 ||
        fsync(fd) < 0 || rename(tmp, path) < 0) {
        *err = errno;
        unlink(tmp);
        return -1;
    }
    /* Why: the rename is durable only once its directory is synced. */
    char *slash = strrchr(tmp, '/');
    const char *dir = ".";
    if (slash != NULL) {
        slash[slash == tmp ? 1 : 0] = '\0';
        dir = tmp;
    }
    sh_autoclose int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
    }
    return 0;
}

/* write_atomic(path, data [, mode]) -> true | nil, msg, code
 * mode defaults to 0666 less the umask; the file is replaced by rename, so
 * a reader sees the old or the new content, never a part. */
static int fs_write_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int mode = (int)luaL_optinteger(L, 3, 0666 & ~current_umask());
    int err = 0;
    if (write_atomic(path, data, len, mode & 07777, &err) < 0) {
        return sh_fail(L, path, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int dir_close(lua_State *L)
{
    Dir *d = luaL_checkudata(L, 1, "shannot.fs.Dir");
    if (d->dir != NULL) {
        closedir(d->dir);
        d->dir = NULL;
    }
    return 0;
}

/* readdir(path) -> array of names (no "." or "..", unsorted) */
static int fs_readdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    Dir *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->dir = NULL;
    luaL_setmetatable(L, "shannot.fs.Dir");
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (d->dir = fdopendir(fd)) == NULL) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return sh_fail(L, path, e);
    }
    lua_newtable(L);
    lua_Integer n = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d->dir)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            lua_pushstring(L, de->d_name);
            lua_seti(L, -2, ++n);
        }
        errno = 0;
    }
    if (errno != 0) {
        return sh_fail(L, path, errno);
    }
    return 1;
}

/* mkdir(path [, mode]) -> true | nil, msg, code */
static int fs_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int mode = (int)luaL_optinteger(L, 2, 0777);
    if (mkdir(path, (mode_t)mode) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* mkfifo(path [, mode]) -> true | nil, msg, code (a new FIFO; the umask
 * applies, set_meta sets the mode exactly) */
static int fs_mkfifo(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int mode = (int)luaL_optinteger(L, 2, 0600);
    if (mkfifo(path, (mode_t)mode) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* link(existing, new) -> true | nil, msg, code: a second name for the file
 * at existing (linkat without AT_SYMLINK_FOLLOW: a symlink there is linked
 * as itself, never followed) */
static int fs_link(lua_State *L)
{
    const char *existing = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    if (linkat(AT_FDCWD, existing, AT_FDCWD, path, 0) < 0) {
        return sh_failf(L, errno, "link %s to %s", path, existing);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* mkdir_p(path [, mode]) -> true | nil, msg, code (existing dirs are fine) */
static int fs_mkdir_p(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    int mode = (int)luaL_optinteger(L, 2, 0777);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len + 1);
    memcpy(p, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0') {
            continue;
        }
        char saved = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST) {
            return sh_fail(L, p, errno);
        }
        if (stat(p, &st) < 0) {
            return sh_fail(L, p, errno);
        }
        if (!S_ISDIR(st.st_mode)) {
            return sh_fail(L, p, ENOTDIR);
        }
        p[i] = saved;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* realpath(path) -> absolute path with no symlinks | nil, msg, code */
static int fs_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[PATH_MAX];
    if (realpath(path, buf) == NULL) {
        return sh_fail(L, path, errno);
    }
    lua_pushstring(L, buf);
    return 1;
}

/* readlink(path) -> target | nil, msg, code */
static int fs_readlink(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf);
    if (n < 0) {
        return sh_fail(L, path, errno);
    }
    if ((size_t)n == sizeof buf) {
        return sh_fail(L, path, ENAMETOOLONG);
    }
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* remove(path) -> true | nil, msg, code (a file, link or empty dir) */
static int fs_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (unlink(path) < 0 && (errno != EISDIR || rmdir(path) < 0)) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int chmod_fd(int fd, mode_t mode);

/* A stack of directory names: where rmtree is, below its top. */
struct name_stack {
    char **names;
    size_t n, cap;
};

static int names_push(struct name_stack *s, const char *name)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **grown = realloc(s->names, cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        s->names = grown;
        s->cap = cap;
    }
    if ((s->names[s->n] = strdup(name)) == NULL) {
        return -1;
    }
    s->n++;
    return 0;
}

static void names_free(struct name_stack *s)
{
    while (s->n > 0) {
        free(s->names[--s->n]);
    }
    free(s->names);
}

/* The subdirectory `name` of dir, opened to be emptied: made searchable
 * and writable first (overlayfs leaves work/work at mode 000), through an
 * O_PATH descriptor, never a symlink. */
static int open_subdir(int dir, const char *name)
{
#ifdef SH_CLIENT
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
#else
    int fd = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
#endif
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        errno = e;
        return -1;
    }
    if ((st.st_mode & 0700) != 0700 &&
        chmod_fd(fd, (st.st_mode & 07777) | 0700) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Unlinks every non-directory in dir and pushes the names of its
 * subdirectories onto pending (*count of them): each level is read once.
 * 0, or -1 with errno. */
static int empty_level(int dir, struct name_stack *pending, size_t *count)
{
    *count = 0;
    int fd = dup(dir);
    if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        errno = e;
        return -1;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        struct stat st;
#ifdef SH_CLIENT /* d_type is not POSIX */
        int is_dir = fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                     S_ISDIR(st.st_mode);
#else
        int is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN &&
            fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            is_dir = S_ISDIR(st.st_mode);
        }
#endif
        if (is_dir) {
            rc = names_push(pending, e->d_name);
            *count += rc == 0;
        } else if (unlinkat(dir, e->d_name, 0) < 0 && errno != ENOENT) {
            rc = -1;
        }
    }
    if (rc == 0 && errno != 0) {
        rc = -1;
    }
    int saved = errno;
    closedir(d);
    errno = saved;
    return rc;
}

/* The subdirectory `name` of dir, opened to be emptied: one open where it
 * is searchable and writable already, else open_subdir's way. */
static int enter_subdir(int dir, const char *name)
{
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0700) == 0700) {
        return fd;
    }
    if (fd >= 0) {
        close(fd);
    }
    return open_subdir(dir, name);
}

/* Removes the directory open as top (path) and all below it, holding one
 * descriptor at a time: no depth is too deep (PATH_MAX does not apply).
 * Each directory is read once: its subdirectories wait in `pending`,
 * counted per level in `levels`; `down` names the way back up. */
static int remove_below(int top, const char *path)
{
    struct name_stack pending = {NULL, 0, 0}, down = {NULL, 0, 0};
    size_t *levels = NULL, nlevels = 0, cap = 0, count;
    int cur = top, rc = empty_level(cur, &pending, &count);
    while (rc == 0) {
        if (nlevels == cap) {
            size_t *grown =
                realloc(levels, (cap ? 2 * cap : 64) * sizeof *grown);
            if (grown == NULL) {
                rc = -1;
                break;
            }
            levels = grown;
            cap = cap ? 2 * cap : 64;
        }
        levels[nlevels++] = count;
        /* down to the next subdirectory waiting, or up while none is */
        while (nlevels > 0 && levels[nlevels - 1] == 0) {
            nlevels--;
            if (down.n == 0) { /* top is empty */
                close(cur);
                cur = -1;
                rc = rmdir(path);
                break;
            }
            int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (up < 0) {
                rc = -1;
                break;
            }
            close(cur);
            cur = up;
            char *name = down.names[--down.n];
            rc = unlinkat(cur, name, AT_REMOVEDIR);
            free(name);
            if (rc < 0) {
                break;
            }
        }
        if (rc < 0 || nlevels == 0) {
            break;
        }
        levels[nlevels - 1]--;
        char *name = pending.names[--pending.n];
        int next = enter_subdir(cur, name);
        if (next < 0) {
            free(name);
            rc = -1;
            break;
        }
        if (names_push(&down, name) < 0) {
            free(name);
            close(next);
            rc = -1;
            break;
        }
        free(name);
        close(cur);
        cur = next;
        rc = empty_level(cur, &pending, &count);
    }
    int e = errno;
    if (cur >= 0) {
        close(cur);
    }
    names_free(&pending);
    names_free(&down);
    free(levels);
    errno = e;
    return rc < 0 ? -1 : 0;
}

/* rmtree(path) -> true | nil, msg, code
 * path and everything below it, at any depth: never through a symlink (a
 * symlink is removed itself), directories made writable first.  A path
 * that is already gone is fine. */
static int fs_rmtree(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            lua_pushboolean(L, 1);
            return 1;
        }
        return sh_fail(L, path, errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0) {
            return sh_fail(L, path, errno);
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    if ((st.st_mode & 0700) != 0700) {
        chmod(path, (st.st_mode & 07777) | 0700);
    }
    int top = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0 || remove_below(top, path) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* write_new(path, data [, mode]) -> true | nil, msg, code
 * A new file (never over an existing one or through a symlink), without
 * fsync: for scratch files whose loss in a crash costs nothing. */
static int fs_write_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int mode = (int)luaL_optinteger(L, 3, 0666 & ~current_umask());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  (mode_t)(mode & 07777));
    if (fd < 0) {
        return sh_fail(L, path, errno);
    }
    /* Why fchmod: the umask must not narrow a mode asked for explicitly. */
    if (sh_write_all(fd, data, len) < 0 ||
        fchmod(fd, (mode_t)(mode & 07777)) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return sh_fail(L, path, e);
    }
    if (close(fd) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* syncfs(path) -> true | nil, msg, code: flushes the file system holding
 * path (one call instead of an fsync per file written there) */
static int fs_syncfs(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    sh_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
#ifdef SH_CLIENT
    if (fd >= 0) {
        sync(); /* no syncfs: every file system */
    }
    if (fd < 0) {
#else
    if (fd < 0 || syncfs(fd) < 0) {
#endif
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* symlink(target, path) -> true | nil, msg, code */
static int fs_symlink(lua_State *L)
{
    const char *target = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    if (symlink(target, path) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* lchown(path, uid, gid) -> true | nil, msg, code (of a link itself) */
static int fs_lchown(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uid_t uid = (uid_t)luaL_checkinteger(L, 2);
    gid_t gid = (gid_t)luaL_checkinteger(L, 3);
    if (lchown(path, uid, gid) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Sets mode through an O_PATH descriptor: the magic link names that very
 * inode, never what a path resolves to now.  fchmod refuses O_PATH. */
#ifndef SH_CLIENT
static int chmod_fd(int fd, mode_t mode)
{
    char proc_path[64];
    snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    return chmod(proc_path, mode);
}
#else
/* No O_PATH: the directory itself, opened for reading. */
static int chmod_fd(int fd, mode_t mode)
{
    return fchmod(fd, mode);
}
#endif

/* The modification time of the entry at path itself (a symlink's own, never
 * its target's; the access time is left as it is).  0 or -1 with errno. */
static int set_mtime(const char *path, struct timespec mtime)
{
    struct timespec ts[2] = {{0, UTIME_OMIT}, mtime};
    return utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

/* set_meta(path, {uid =, gid =, mode =, mtime_sec =, mtime_nsec =}) -> type |
 * nil, msg, code
 * Owner, then mode (the chown clears setuid bits), then the modification
 * time (a symlink's own: utimensat AT_SYMLINK_NOFOLLOW), of the entry itself:
 * the last component is opened O_PATH|O_NOFOLLOW and everything goes through
 * that descriptor.  Why: a name swapped for a symlink between a check and
 * the change (renameat2 RENAME_EXCHANGE by whoever may write the parent)
 * would otherwise carry a chmod to the link's target.  A mode for a
 * symlink is refused (ELOOP); its owner is set on the link itself. */
static int fs_set_meta(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer uid = sh_optfield_number(L, 2, "uid", -1);
    lua_Integer gid = sh_optfield_number(L, 2, "gid", -1);
    lua_Integer mode = sh_optfield_number(L, 2, "mode", -1);
    lua_getfield(L, 2, "mtime_sec");
    int has_mtime = lua_isinteger(L, -1);
    struct timespec mtime = {(time_t)lua_tointeger(L, -1),
                             (long)sh_optfield_number(L, 2, "mtime_nsec", 0)};
    lua_pop(L, 1);
    luaL_argcheck(L, mtime.tv_nsec >= 0 && mtime.tv_nsec < 1000000000, 2,
                  "mtime_nsec out of range");
#ifdef SH_CLIENT
    /* No O_PATH: by path, never following a symlink at the end (the
     * client changes only its own files: sessions and checkpoints) */
    struct stat st;
    if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return sh_fail(L, path, errno);
    }
    if ((uid >= 0 || gid >= 0) &&
        fchownat(AT_FDCWD, path, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) <
            0) {
        return sh_fail(L, path, errno);
    }
    if (mode >= 0 && S_ISLNK(st.st_mode)) {
        return sh_fail(L, path, ELOOP);
    }
    if (mode >= 0 && fchmodat(AT_FDCWD, path, (mode_t)mode, 0) < 0) {
        return sh_fail(L, path, errno);
    }
#else
    sh_autoclose int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        return sh_fail(L, path, errno);
    }
    if ((uid >= 0 || gid >= 0) &&
        fchownat(fd, "", (uid_t)uid, (gid_t)gid, AT_EMPTY_PATH) < 0) {
        return sh_fail(L, path, errno);
    }
    if (mode >= 0 && S_ISLNK(st.st_mode)) {
        return sh_fail(L, path, ELOOP);
    }
    if (mode >= 0 && chmod_fd(fd, (mode_t)mode) < 0) {
        return sh_fail(L, path, errno);
    }
#endif
    if (has_mtime && set_mtime(path, mtime) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushstring(L, sh_type_name(st.st_mode));
    return 1;
}

#ifndef SH_CLIENT
/* The value of one attribute of the entry at path itself, grown until it
 * fits; pushes it, or returns -1 with errno. */
static int push_xattr(lua_State *L, const char *path, const char *name)
{
    size_t cap = 256;
    for (;;) {
        char *buf = lua_newuserdatauv(L, cap, 0);
        ssize_t n = lgetxattr(path, name, buf, cap);
        if (n >= 0) {
            lua_pushlstring(L, buf, (size_t)n);
            lua_remove(L, -2);
            return 0;
        }
        lua_pop(L, 1);
        if (errno != ERANGE || cap >= 65536) {
            return -1;
        }
        cap *= 4;
    }
}

/* xattrs(path) -> {name = value} | nil, msg, code: every extended attribute
 * of the entry itself (never a symlink's target), values as bytes */
static int fs_xattrs(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char names[65536];
    ssize_t len = llistxattr(path, names, sizeof names);
    if (len < 0) {
        if (errno == ENOTSUP) {
            lua_newtable(L);
            return 1;
        }
        return sh_fail(L, path, errno);
    }
    lua_newtable(L);
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
        if (push_xattr(L, path, names + i) < 0) {
            if (errno == ENODATA) {
                continue; /* removed meanwhile */
            }
            return sh_fail(L, path, errno);
        }
        lua_setfield(L, -2, names + i);
    }
    return 1;
}

/* set_xattr(path, name [, value]) -> true | nil, msg, code: sets (value) or
 * removes (no value; absent is fine) one attribute of the entry itself */
static int fs_set_xattr(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    size_t n;
    const char *value = luaL_optlstring(L, 3, NULL, &n);
    int rc =
        value ? lsetxattr(path, name, value, n, 0) : lremovexattr(path, name);
    if (rc < 0 && !(value == NULL && errno == ENODATA)) {
        return sh_failf(L, errno, "%s: %s", path, name);
    }
    lua_pushboolean(L, 1);
    return 1;
}

#endif

/* rename(from, to [, "noreplace"]) -> true | nil, msg, code (rename(2):
 * same file system; "noreplace": an existing `to` is EEXIST, atomically,
 * where a check before the call could race) */
static int fs_rename(lua_State *L)
{
    static const char *const flags[] = {"replace", "noreplace", NULL};
    const char *from = luaL_checkstring(L, 1);
    const char *to = luaL_checkstring(L, 2);
    int noreplace = luaL_checkoption(L, 3, "replace", flags);
#ifdef SH_CLIENT
    /* No renameat2: a file gets its new name as a second link (which
     * fails on an existing `to`, atomically), then loses the old one; a
     * directory is renamed after a check, which can race. */
    struct stat st;
    int rc = 0;
    if (noreplace && lstat(from, &st) == 0 && !S_ISDIR(st.st_mode)) {
        rc = link(from, to) < 0 ? -1 : unlink(from);
    } else if (noreplace && lstat(to, &st) == 0) {
        errno = EEXIST;
        rc = -1;
    } else {
        rc = rename(from, to);
    }
#else
    int rc = noreplace
                 ? renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)
                 : rename(from, to);
#endif
    if (rc < 0) {
        return sh_failf(L, errno, "rename %s to %s", from, to);
    }
    lua_pushboolean(L, 1);
    return 1;
}

#ifdef SH_CLIENT
/* No extended attributes in the client build: none to read or set. */
static int fs_xattrs(lua_State *L)
{
    return sh_fail(L, luaL_checkstring(L, 1), ENOTSUP);
}

static int fs_set_xattr(lua_State *L)
{
    return sh_fail(L, luaL_checkstring(L, 1), ENOTSUP);
}

static int fs_getxattr(lua_State *L)
{
    return sh_fail(L, luaL_checkstring(L, 1), ENOTSUP);
}
#else
/* getxattr(path, name) -> value | nil, msg, code (of the link itself;
 * an absent attribute is code "ENODATA") */
static int fs_getxattr(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    if (push_xattr(L, path, name) < 0) {
        return sh_fail(L, path, errno);
    }
    return 1;
}
#endif

/* chmod(path, mode) -> true | nil, msg, code */
static int fs_chmod(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int mode = (int)luaL_checkinteger(L, 2);
    if (chmod(path, (mode_t)mode) < 0) {
        return sh_fail(L, path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* mkdtemp(prefix) -> path of a new mode-0700 directory | nil, msg, code
 * prefix is completed with six random characters. */
static int fs_mkdtemp(lua_State *L)
{
    size_t len;
    const char *prefix = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len + 7);
    memcpy(p, prefix, len);
    memcpy(p + len, "XXXXXX", 7);
    if (mkdtemp(p) == NULL) {
        return sh_fail(L, prefix, errno);
    }
    luaL_pushresultsize(&b, len + 6);
    return 1;
}

/* open(path [, "r" | "w" | "rw" | "a" [, mode]]) -> File | nil, msg, code
 * "w" opens an existing file for writing without truncating it; "a"
 * reads and appends, creating the file (mode, default 0600) if needed,
 * never through a symlink. */
static int fs_open(lua_State *L)
{
    static const char *const modes[] = {"r", "w", "rw", "a", NULL};
    static const int flags[] = {O_RDONLY, O_WRONLY, O_RDWR,
                                O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW};
    const char *path = luaL_checkstring(L, 1);
    int flag = flags[luaL_checkoption(L, 2, "r", modes)];
    mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
    File *f = new_file(L);
    f->fd = open(path, flag | O_CLOEXEC | O_NOCTTY, mode);
    if (f->fd < 0) {
        return sh_fail(L, path, errno);
    }
    return 1;
}

#ifdef SH_CLIENT
/* openat2's RESOLVE_NO_SYMLINKS (and, beneath, RESOLVE_BENEATH) where
 * there is none: one component at a time, O_NOFOLLOW each (ELOOP at a
 * symlink), ".." refused beneath (EXDEV).  A directory fd or -1. */
static int open_nofollow(int start, const char *path, int beneath)
{
    if (beneath && path[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    int cur =
        open(path[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (start != AT_FDCWD && path[0] != '/') {
        close(cur);
        cur = dup(start);
    }
    const char *p = path;
    while (cur >= 0 && *p != '\0') {
        while (*p == '/') {
            p++;
        }
        size_t n = strcspn(p, "/");
        if (n == 0) {
            break;
        }
        char part[NAME_MAX + 1];
        if (n > NAME_MAX) {
            close(cur);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(part, p, n);
        part[n] = '\0';
        p += n;
        if (beneath && strcmp(part, "..") == 0) {
            close(cur);
            errno = EXDEV;
            return -1;
        }
        int next =
            openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(cur);
        errno = e;
        cur = next;
    }
    return cur;
}
#endif

/* open_dir(path) -> File | nil, msg, code: a directory reached without
 * following any symlink on the way (openat2 RESOLVE_NO_SYMLINKS; ELOOP
 * when a component is one), pinned: /proc/self/fd/N/NAME then names an
 * entry of that very directory, whatever happens to the path later. */
static int fs_open_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    File *f = new_file(L);
#ifdef SH_CLIENT
    f->fd = open_nofollow(AT_FDCWD, path, 0);
#else
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    f->fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
#endif
    if (f->fd < 0) {
        return sh_fail(L, path, errno);
    }
    return 1;
}

/* open_dir_at(dir, name) -> File | nil, msg, code: the directory `name`
 * (one component or more) below the open directory File `dir`, reached
 * without any symlink and without leaving dir (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS; ELOOP when a component is a symlink, EXDEV when it
 * would leave): a walk down a tree another user may change under it. */
static int fs_open_dir_at(lua_State *L)
{
    File *dir = luaL_checkudata(L, 1, SH_FILE_MT);
    const char *name = luaL_checkstring(L, 2);
    if (dir->fd < 0) {
        return luaL_error(L, "attempt to use a closed File");
    }
    File *f = new_file(L);
#ifdef SH_CLIENT
    f->fd = open_nofollow(dir->fd, name, 1);
#else
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    f->fd = (int)syscall(SYS_openat2, dir->fd, name, &how, sizeof how);
#endif
    if (f->fd < 0) {
        return sh_fail(L, name, errno);
    }
    return 1;
}

/* pipe() -> File (read end), File (write end) | nil, msg, code
 * Both ends close-on-exec; pass one to a child with spawn's keep_fds. */
static int fs_pipe(lua_State *L)
{
    File *r = new_file(L);
    File *w = new_file(L);
    int fds[2];
    if (sh_pipe_cloexec(fds) < 0) {
        return sh_fail(L, "pipe", errno);
    }
    r->fd = fds[0];
    w->fd = fds[1];
    return 2;
}

/* socketpair() -> File, File | nil, msg, code: a connected pair of
 * AF_UNIX datagram sockets (close-on-exec), e.g. to pass a descriptor
 * from a child back with SCM_RIGHTS */
static int fs_socketpair(lua_State *L)
{
    File *a = new_file(L);
    File *b = new_file(L);
    int fds[2];
#ifdef SH_CLIENT
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, fds) < 0) {
        return sh_fail(L, "socketpair", errno);
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#else
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) < 0) {
        return sh_fail(L, "socketpair", errno);
    }
#endif
    a->fd = fds[0];
    b->fd = fds[1];
    return 2;
}

/* File:read_all([max]) -> data | nil, msg, code (EFBIG past max bytes) */
static int file_read_all(lua_State *L)
{
    File *f = check_file(L);
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        return sh_fail(L, "read", errno);
    }
    return push_fd_contents(L, f->fd, &st,
                            luaL_optinteger(L, 2, LUA_MAXINTEGER), "read");
}

/* File:write(data) -> true | nil, msg, code (all of it) */
static int file_write(lua_State *L)
{
    File *f = check_file(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (sh_write_all(f->fd, data, len) < 0) {
        return sh_fail(L, "write", errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* File:lock([nowait]) -> true | nil, msg, code: an exclusive flock, held
 * until the File is closed; waits for other holders, or with nowait
 * fails at once (code "EWOULDBLOCK") */
static int file_lock(lua_State *L)
{
    File *f = check_file(L);
    int op = lua_toboolean(L, 2) ? LOCK_EX | LOCK_NB : LOCK_EX;
    int r;
    do {
        r = flock(f->fd, op);
    } while (r < 0 && errno == EINTR && !sh_interrupted());
    if (r < 0) {
        return sh_fail(L, "flock", errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* File:stat() -> table | nil, msg, code */
static int file_stat(lua_State *L)
{
    File *f = check_file(L);
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        return sh_fail(L, "fstat", errno);
    }
    push_stat(L, &st);
    return 1;
}

/* File:pread(offset, len) -> data (shorter at the end) | nil, msg, code */
static int file_pread(lua_State *L)
{
    File *f = check_file(L);
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer len = luaL_checkinteger(L, 3);
    luaL_argcheck(L, off >= 0, 2, "negative offset");
    luaL_argcheck(L, len >= 0 && len <= (1 << 26), 3, "length out of range");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)len);
    ssize_t n;
    do {
        n = pread(f->fd, p, (size_t)len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return sh_fail(L, "pread", errno);
    }
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* File:sync() -> true | nil, msg, code (fsync) */
static int file_sync(lua_State *L)
{
    File *f = check_file(L);
    if (fsync(f->fd) < 0) {
        return sh_fail(L, "fsync", errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* File:start_sync() -> true | nil, msg, code: writeback of what was
 * written begins now (sync_file_range SYNC_FILE_RANGE_WRITE); sync() later
 * waits for it.  Files started together ride in one journal commit.  A
 * build without it (the portable client's) starts nothing. */
static int file_start_sync(lua_State *L)
{
    File *f = check_file(L);
#ifdef SYNC_FILE_RANGE_WRITE
    if (sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0) {
        return sh_fail(L, "sync_file_range", errno);
    }
#else
    (void)f;
#endif
    lua_pushboolean(L, 1);
    return 1;
}

/* File:fd() -> integer */
static int file_fd(lua_State *L)
{
    lua_pushinteger(L, check_file(L)->fd);
    return 1;
}

/* File:close(): idempotent */
static int file_close(lua_State *L)
{
    File *f = luaL_checkudata(L, 1, SH_FILE_MT);
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    return 0;
}

static const luaL_Reg fs_funcs[] = {{"stat", fs_stat},
                                    {"lstat", fs_lstat},
                                    {"read_file", fs_read_file},
                                    {"write_atomic", fs_write_atomic},
                                    {"readdir", fs_readdir},
                                    {"mkdir", fs_mkdir},
                                    {"mkfifo", fs_mkfifo},
                                    {"link", fs_link},
                                    {"mkdir_p", fs_mkdir_p},
                                    {"realpath", fs_realpath},
                                    {"readlink", fs_readlink},
                                    {"remove", fs_remove},
                                    {"rmtree", fs_rmtree},
                                    {"chmod", fs_chmod},
                                    {"getxattr", fs_getxattr},
                                    {"xattrs", fs_xattrs},
                                    {"set_xattr", fs_set_xattr},
                                    {"rename", fs_rename},
                                    {"lchown", fs_lchown},
                                    {"set_meta", fs_set_meta},
                                    {"write_new", fs_write_new},
                                    {"symlink", fs_symlink},
                                    {"syncfs", fs_syncfs},
                                    {"mkdtemp", fs_mkdtemp},
                                    {"open", fs_open},
                                    {"open_dir", fs_open_dir},
                                    {"open_dir_at", fs_open_dir_at},
                                    {"pipe", fs_pipe},
                                    {"socketpair", fs_socketpair},
                                    {NULL, NULL}};

static const luaL_Reg file_methods[] = {{"fd", file_fd},
                                        {"write", file_write},
                                        {"lock", file_lock},
                                        {"stat", file_stat},
                                        {"pread", file_pread},
                                        {"sync", file_sync},
                                        {"start_sync", file_start_sync},
                                        {"read_all", file_read_all},
                                        {"close", file_close},
                                        {NULL, NULL}};

static const luaL_Reg file_meta[] = {{"__gc", file_close},
                                     {"__close", file_close},
                                     {"__index", NULL},
                                     {NULL, NULL}};

static void create_meta(lua_State *L)
{
    luaL_newmetatable(L, SH_FILE_MT);
    luaL_setfuncs(L, file_meta, 0);
    luaL_newlib(L, file_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, "shannot.fs.Dir");
    lua_pushcfunction(L, dir_close);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

int luaopen_shannot_core_fs(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, fs_funcs);
    return 1;
}
