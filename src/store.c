/*
 * store.c: the content-addressed blob store for captured file contents
 * (DESIGN §3, §10).  A blob is named by the SHA-256 of its content:
 * DIR/<64 hex> holds it raw, DIR/<64 hex>.z zlib-compressed, which only a
 * content of up to compress_max bytes that shrinks by 10% or more gets.
 * (Stores written before note 151 put it one level down, in DIR/ab/, ab
 * its first two digits: it is looked for there too.)  Larger contents are
 * streamed in fixed chunks, so memory stays bounded for any size, and
 * runs of zeros stay holes.  A new blob is written to a temp file
 * DIR/.tmp-XXXXXX and renamed into place, so a blob's name always holds a
 * whole blob; nothing is fsynced here (the caller syncs the store once).
 *
 * Lua: shannot.core.store; every function returns its value or
 * nil, msg, code (code is the errno name, e.g. "ENOENT"):
 *   hash_file(path) -> hex, size
 *   hash_string(s) -> hex
 *   name_hash(s) -> 16 hex digits (FNV-1a: names, not content)
 *   put_file(dir, path [, opts]) -> info
 *   put_string(dir, data [, opts]) -> info
 *     opts: compress_max (default 1 MiB), move and head (put_file only:
 *     head = N puts a small file's first N bytes in info.head)
 *     info: {hash, size, stored, compressed, new, moved [, head]}
 *   read(dir, hex [, max]) -> data
 *   peek(dir, hex, n) -> head, tail, size (a preview: see store_peek)
 *   copy_out(dir, hex, dest [, mode [, opts]]) -> true, size
 *     opts: verify, uid, gid, mtime_sec, mtime_nsec (see store_copy_out)
 *   has(dir, hex) -> boolean
 * A blob whose content does not match its name is refused with code
 * "EBADMSG" and the message "<blob>: blob is corrupt (hash mismatch)".
 *
 * Every native resource of a call (fds, hash and zlib state, buffers)
 * belongs to a Job userdata made before any is acquired; the work between
 * runs without Lua calls, so only pushing the result can raise, and then
 * the Job's __gc frees what is left.
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dlfcn.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "shannot.h"

#define CHUNK (256 * 1024) /* streamed I/O and inflate piece */
#define HEX_LEN 64
#define DEFAULT_COMPRESS_MAX (1024 * 1024)
#define MAX_COMPRESS_MAX (1024 * 1024 * 1024) /* whole file in memory */
#define DEFAULT_READ_MAX (64 * 1024 * 1024)
/* Level 1: on 250 MB of /etc and /usr files level 6 stores 4% fewer
 * bytes at half the speed. */
#define ZLEVEL 1
/* Below this a zlib stream (6 bytes of framing and more) seldom saves the
 * 10% a compressed blob must, and a deflate's set-up costs more than the
 * whole file. */
#define MIN_DEFLATE 128
#define JOB_MT "shannot.store.Job"

enum { Z_NONE, Z_DEFLATING, Z_INFLATING };

/* libcrypto's SHA-256, loaded when a job is worth it: linked at start-up
 * it cost every shannot command ~0.7 ms (bench/startup), most of which
 * never hash anything, and loaded it costs ~1.5 ms (dlopen, relocation,
 * initialisation), as much as hashing ~300 KiB with sha256.c's.  So the
 * jobs of a Lua state use sha256.c's until OWN_MAX bytes have been
 * hashed, or one is expected to be that long itself; libcrypto's after
 * that (or sha256.c's still, where it cannot be loaded).  Both give the
 * same digests.  Kept in the registry, one per Lua state. */
#define OWN_MAX (256 * 1024)
struct sha_api {
    void *lib;
    EVP_MD_CTX *(*ctx_new)(void);
    void (*ctx_free)(EVP_MD_CTX *);
    int (*init)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);
    int (*update)(EVP_MD_CTX *, const void *, size_t);
    int (*final)(EVP_MD_CTX *, unsigned char *, unsigned int *);
    const EVP_MD *(*sha256)(void);
    void (*md_free)(EVP_MD *); /* OpenSSL 3's, when it fetched md */
    /* Made once, used by every call in turn (a call hashes without Lua
     * in between): OpenSSL 3 looks the algorithm up again at every
     * EVP_sha256() init, and a context made and freed per call cost more
     * than hashing a small file (perf: 5% of an execute). */
    EVP_MD *fetched;
    const EVP_MD *md;
    EVP_MD_CTX *ctx;
    int loaded;         /* libcrypto's is ready */
    int unavailable;    /* it cannot be loaded here: sha256.c's for all */
    uint64_t own_bytes; /* hashed with sha256.c's so far */
};

typedef struct {
    struct sha_api *sha;
    int in;         /* the file or blob being read, -1 for none */
    int out;        /* the temp file or dest being written, -1 */
    EVP_MD_CTX *md; /* sha->ctx, once begun (not the Job's to free) */
    int own;        /* this job hashes with sha256.c's, in own_md */
    struct sh_sha256 own_md;
    z_stream z;
    int zmode;           /* Z_NONE or which of deflate/inflate owns z */
    int zdone;           /* inflate reached the stream's end */
    unsigned char *buf;  /* CHUNK bytes for reading */
    unsigned char *zbuf; /* deflated or inflated bytes */
    unsigned char *data; /* a whole content (put, read) */
    int trust;           /* copy_out without hashing (opts.verify false) */
    int at_end;          /* a read came back short: it met the end */
} Job;

typedef struct {
    int err;          /* errno value */
    const char *what; /* the path it is about */
    const char *why;  /* NULL when strerror says it all */
} Fail;

/* One call's view of a blob. */
typedef struct {
    const char *dir;
    char hex[HEX_LEN + 1];
    char path[PATH_MAX]; /* DIR/ab/<hex>, or <hex>.z when compressed */
    char tmp[PATH_MAX];  /* DIR/.tmp-XXXXXX */
    int tmp_live;        /* tmp exists and is ours to remove */
    int compressed, fresh, moved;
    int64_t size;   /* content bytes; -1: any (has) */
    int64_t stored; /* bytes on disk */
    Fail fail;
} Blob;

static int failed(Fail *f, int err, const char *what, const char *why)
{
    f->err = err;
    f->what = what;
    f->why = why;
    return -1;
}

/* A failure of ours (not a syscall's) about a blob's content. */
static int corrupt(Blob *b, const char *why)
{
    return failed(&b->fail, EBADMSG, b->path, why);
}

/* [-0, +3, m] */
static int push_fail(lua_State *L, const Fail *f)
{
    if (f->err == EBADMSG) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: blob is corrupt (%s)", f->what, f->why);
        lua_pushliteral(L, "EBADMSG");
        return 3;
    }
    if (f->why != NULL) {
        return sh_failf(L, f->err, "%s: %s", f->what, f->why);
    }
    return sh_fail(L, f->what, f->err);
}

static void zend(Job *j)
{
    if (j->zmode == Z_DEFLATING) {
        deflateEnd(&j->z);
    } else if (j->zmode == Z_INFLATING) {
        inflateEnd(&j->z);
    }
    j->zmode = Z_NONE;
}

/* Frees all a Job owns; idempotent. */
static void job_release(Job *j)
{
    if (j->in >= 0) {
        close(j->in);
        j->in = -1;
    }
    if (j->out >= 0) {
        close(j->out);
        j->out = -1;
    }
    zend(j);
    free(j->buf);
    free(j->zbuf);
    free(j->data);
    j->buf = j->zbuf = j->data = NULL;
}

static int job_gc(lua_State *L)
{
    job_release(luaL_checkudata(L, 1, JOB_MT));
    return 0;
}

static const char SHA_KEY = 0;
#define SHA_MT "shannot.store.Sha"

static void sha_close(struct sha_api *a)
{
    if (a->ctx != NULL) {
        a->ctx_free(a->ctx);
        a->ctx = NULL;
    }
    if (a->fetched != NULL) {
        a->md_free(a->fetched);
        a->fetched = NULL;
    }
    if (a->lib != NULL) {
        dlclose(a->lib);
        a->lib = NULL;
    }
}

static int sha_gc(lua_State *L)
{
    sha_close(luaL_checkudata(L, 1, SHA_MT));
    return 0;
}

/* Resolves every function or none; 0 or -1 (dlerror() says why). */
static int sha_load(struct sha_api *a)
{
    static const char *const sonames[] = {"libcrypto.so.3", "libcrypto.so",
                                          NULL};
    static const char *const names[] = {
        "EVP_MD_CTX_new",   "EVP_MD_CTX_free",    "EVP_DigestInit_ex",
        "EVP_DigestUpdate", "EVP_DigestFinal_ex", "EVP_sha256"};
    void *f[6];
    if ((a->lib = sh_dlopen_all(sonames, names, f, 6)) == NULL) {
        return -1;
    }
    /* Why the memcpy: ISO C has no cast from void * to a function pointer. */
    memcpy(&a->ctx_new, &f[0], sizeof a->ctx_new);
    memcpy(&a->ctx_free, &f[1], sizeof a->ctx_free);
    memcpy(&a->init, &f[2], sizeof a->init);
    memcpy(&a->update, &f[3], sizeof a->update);
    memcpy(&a->final, &f[4], sizeof a->final);
    memcpy(&a->sha256, &f[5], sizeof a->sha256);
    /* OpenSSL 3: the implementation fetched once (EVP_MD_fetch), where
     * EVP_sha256() at each init fetches it anew */
    EVP_MD *(*fetch)(void *, const char *, const char *) = NULL;
    void *fetch_f = dlsym(a->lib, "EVP_MD_fetch");
    void *free_f = dlsym(a->lib, "EVP_MD_free");
    if (fetch_f != NULL && free_f != NULL) {
        memcpy(&fetch, &fetch_f, sizeof fetch);
        memcpy(&a->md_free, &free_f, sizeof a->md_free);
        a->fetched = fetch(NULL, "SHA256", NULL);
    }
    a->md = a->fetched != NULL ? a->fetched : a->sha256();
    if ((a->ctx = a->ctx_new()) == NULL || a->md == NULL) {
        return -1;
    }
    return 0;
}

/* [-0, +0, m] This state's SHA-256 (libcrypto's not loaded yet). */
static struct sha_api *sha_api(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SHA_KEY) == LUA_TUSERDATA) {
        struct sha_api *a = lua_touserdata(L, -1);
        lua_pop(L, 1); /* the registry keeps it */
        return a;
    }
    lua_pop(L, 1);
    struct sha_api *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    if (luaL_newmetatable(L, SHA_MT)) {
        lua_pushcfunction(L, sha_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SHA_KEY);
    return a;
}

/* [-0, +1, m] A Job owning nothing yet. */
static Job *new_job(lua_State *L)
{
    struct sha_api *sha = sha_api(L);
    Job *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    j->sha = sha;
    j->in = j->out = -1;
    luaL_setmetatable(L, JOB_MT);
    return j;
}

static void to_hex(const unsigned char *md, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < HEX_LEN / 2; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[HEX_LEN] = '\0';
}

/* Begins a SHA-256 of about `expect` bytes (0: not known) with
 * sha256.c's or libcrypto's (see OWN_MAX). */
static int md_start(Job *j, int64_t expect)
{
    struct sha_api *a = j->sha;
    if (!a->loaded && !a->unavailable &&
        (expect >= OWN_MAX || a->own_bytes >= OWN_MAX)) {
        if (sha_load(a) == 0) {
            a->loaded = 1;
        } else {
            sha_close(a); /* (dlerror's reason: nobody to tell) */
            a->unavailable = 1;
        }
    }
    j->own = !a->loaded;
    if (j->own) {
        sh_sha256_init(&j->own_md);
        return 0;
    }
    j->md = a->ctx; /* the state's one context, begun anew */
    return a->init(j->md, a->md, NULL) == 1 ? 0 : -1;
}

static void md_update(Job *j, const void *p, size_t n)
{
    if (j->own) {
        sh_sha256_update(&j->own_md, p, n);
        j->sha->own_bytes += n;
        return;
    }
    j->sha->update(j->md, p, n);
}

static int md_end(Job *j, char *hex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    if (j->own) {
        sh_sha256_final(&j->own_md, md);
    } else if (j->sha->final(j->md, md, NULL) != 1) {
        return -1;
    }
    to_hex(md, hex);
    return 0;
}

static int hash_mem(Job *j, const void *p, size_t n, char *hex)
{
    if (md_start(j, (int64_t)n) < 0) {
        return -1;
    }
    md_update(j, p, n);
    return md_end(j, hex);
}

/* Starts a streamed SHA-256 of about `expect` bytes and makes sure j->buf
 * exists. */
static int md_begin(Job *j, int64_t expect)
{
    if (j->buf == NULL && (j->buf = malloc(CHUNK)) == NULL) {
        return -1;
    }
    return md_start(j, expect);
}

/* read(2) until n bytes or the end; the count, or -1 with errno. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Writes n bytes to fd, or seeks past them when all are zero, so the file
 * keeps its holes; *hole says the file must then be extended. */
static int out_write(int fd, const unsigned char *p, size_t n, int *hole)
{
    *hole = n >= 4096 && p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
    if (*hole) {
        return lseek(fd, (off_t)n, SEEK_CUR) < 0 ? -1 : 0;
    }
    return sh_write_all(fd, p, n);
}

/* Opens a file to store or hash: never through a symlink (O_NOFOLLOW), and
 * without blocking on a FIFO (O_NONBLOCK), which is then refused along
 * with every other file that is not a regular one. */
static int open_regular(Job *j, const char *path, struct stat *st, Fail *f)
{
    j->in =
        open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (j->in < 0 || fstat(j->in, st) < 0) {
        return failed(f, errno, path, NULL);
    }
    if (S_ISDIR(st->st_mode)) {
        return failed(f, EISDIR, path, NULL);
    }
    if (!S_ISREG(st->st_mode)) {
        return failed(f, EINVAL, path, "not a regular file");
    }
    return 0;
}

/* The size of the file open as fd, 0 when fstat fails: what a hash of it
 * expects to read (md_start). */
static int64_t fd_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* SHA-256 and length of what is left to read from j->in. */
static int hash_fd(Job *j, const char *what, char *hex, int64_t *size, Fail *f)
{
    int64_t total = 0;
    if (md_begin(j, fd_size(j->in)) < 0) {
        return failed(f, ENOMEM, what, NULL);
    }
    for (;;) {
        ssize_t n = read_full(j->in, j->buf, CHUNK);
        if (n < 0) {
            return failed(f, errno, what, NULL);
        }
        if (n == 0) {
            break;
        }
        md_update(j, j->buf, (size_t)n);
        total += n;
    }
    *size = total;
    return md_end(j, hex) < 0 ? failed(f, ENOMEM, what, NULL) : 0;
}

static void blob_init(Blob *b, const char *dir, const char *hex)
{
    memset(b, 0, sizeof *b);
    b->dir = dir;
    if (hex != NULL) {
        memcpy(b->hex, hex, HEX_LEN);
    }
}

/* The names a blob may have, in the order they are looked for: raw and
 * compressed in DIR itself (where blobs are written), then in DIR/ab/ (a
 * store written before note 151). */
enum { FORM_RAW, FORM_Z, FORM_OLD_RAW, FORM_OLD_Z, FORMS };

/* Points b->path at the blob's name in that form (FORM_RAW or FORM_Z:
 * where a new blob goes). */
static int set_path(Blob *b, int form)
{
    int z = form & 1;
    int n = form >= FORM_OLD_RAW
                ? snprintf(b->path, sizeof b->path, "%s/%.2s/%s%s", b->dir,
                           b->hex, b->hex, z ? ".z" : "")
                : snprintf(b->path, sizeof b->path, "%s/%s%s", b->dir, b->hex,
                           z ? ".z" : "");
    b->compressed = z;
    if (n < 0 || (size_t)n >= sizeof b->path) {
        return failed(&b->fail, ENAMETOOLONG, b->dir, NULL);
    }
    return 0;
}

/* Whether a name of form `form` being absent may show as ENOTDIR: only
 * below DIR/ab, which a store of ours never made a file. */
static int absent(int form, int err)
{
    return err == ENOENT || (err == ENOTDIR && form >= FORM_OLD_RAW);
}

/* 1 when the blob is there in any form, 0 when not, -1 on error.  A raw
 * blob must have b->size bytes (a short one, left by a crash before the
 * caller's sync, is replaced); b->stored is its size on disk.  A short
 * one at the name blobs are read from first is removed when the blob is
 * found elsewhere: it would hide it from every read. */
static int blob_find(Blob *b)
{
    int short_raw = 0;
    for (int form = 0; form < FORMS; form++) {
        struct stat st;
        if (set_path(b, form) < 0) {
            return -1;
        }
        if (lstat(b->path, &st) < 0) {
            if (!absent(form, errno)) {
                return failed(&b->fail, errno, b->path, NULL);
            }
        } else if (S_ISREG(st.st_mode) &&
                   (b->compressed ? st.st_size > 0
                                  : b->size < 0 || st.st_size == b->size)) {
            b->stored = st.st_size;
            if (short_raw) {
                char found[PATH_MAX];
                memcpy(found, b->path, sizeof found);
                if (set_path(b, FORM_RAW) == 0) {
                    unlink(b->path);
                }
                memcpy(b->path, found, sizeof found);
                b->compressed = form & 1;
            }
            return 1;
        } else if (form == FORM_RAW && S_ISREG(st.st_mode)) {
            short_raw = 1;
        }
    }
    return 0;
}

/* Renames `from` (a temp file, or the caller's file with move) to
 * b->path; -1 with errno. */
static int place(const Blob *b, const char *from)
{
    return rename(from, b->path);
}

static int temp_open(Job *j, Blob *b)
{
    int n = snprintf(b->tmp, sizeof b->tmp, "%s/.tmp-XXXXXX", b->dir);
    if (n < 0 || (size_t)n >= sizeof b->tmp) {
        return failed(&b->fail, ENAMETOOLONG, b->dir, NULL);
    }
    j->out = sh_mkstemp_cloexec(b->tmp);
    if (j->out < 0) {
        return failed(&b->fail, errno, b->dir, NULL);
    }
    b->tmp_live = 1;
    if (fchmod(j->out, 0600) < 0) {
        return failed(&b->fail, errno, b->tmp, NULL);
    }
    return 0;
}

/* Closes the finished temp file and renames it to b->path. */
static int temp_place(Job *j, Blob *b)
{
    int fd = j->out;
    j->out = -1;
    if (close(fd) < 0) {
        return failed(&b->fail, errno, b->tmp, NULL);
    }
    if (place(b, b->tmp) < 0) {
        return failed(&b->fail, errno, b->path, NULL);
    }
    b->tmp_live = 0;
    b->fresh = 1;
    return 0;
}

/* Removes a temp file a call leaves behind (failed, or not needed). */
static void temp_discard(Job *j, Blob *b)
{
    if (j->out >= 0) {
        close(j->out);
        j->out = -1;
    }
    if (b->tmp_live) {
        unlink(b->tmp);
        b->tmp_live = 0;
    }
}

/* Deflates n bytes into j->zbuf: 1 with *zlen when that saves 10% or
 * more, 0 when not, -1 when zlib fails (out of memory). */
static int deflate_pays(Job *j, const unsigned char *p, size_t n, size_t *zlen)
{
    size_t room = n - (n + 9) / 10; /* floor(0.9 n) */
    if (room == 0) {
        return 0;
    }
    free(j->zbuf);
    if ((j->zbuf = malloc(room)) == NULL ||
        deflateInit(&j->z, ZLEVEL) != Z_OK) {
        return -1;
    }
    j->zmode = Z_DEFLATING;
    j->z.next_in = (unsigned char *)p; /* zlib does not write to it */
    j->z.avail_in = (uInt)n;           /* n <= MAX_COMPRESS_MAX */
    j->z.next_out = j->zbuf;
    j->z.avail_out = (uInt)room;
    int rc = deflate(&j->z, Z_FINISH);
    *zlen = room - j->z.avail_out;
    zend(j);
    if (rc == Z_STREAM_END) {
        return 1;
    }
    return rc == Z_OK || rc == Z_BUF_ERROR ? 0 : -1; /* out of room */
}

static int write_blob(Job *j, Blob *b, const void *p, size_t n)
{
    if (temp_open(j, b) < 0) {
        return -1;
    }
    if (sh_write_all(j->out, p, n) < 0) {
        return failed(&b->fail, errno, b->tmp, NULL);
    }
    return temp_place(j, b);
}

/* Renames `from` to b->path unless a blob is there (RENAME_NOREPLACE:
 * one call where looking for it first took two); 1 when renamed, 0 when a
 * whole blob was there, -1 with errno.  A short raw blob (a crash before
 * the caller's sync) is replaced, as blob_find would have it.  (A blob
 * in an old store's DIR/ab/ is found by blob_find after the rename: it
 * was there, so the same content is there twice, which is harmless.) */
static int place_new(Blob *b, const char *from)
{
#ifndef SH_CLIENT
    if (renameat2(AT_FDCWD, from, AT_FDCWD, b->path, RENAME_NOREPLACE) == 0) {
        return 1;
    }
    if (errno != EEXIST && errno != EINVAL && errno != ENOSYS) {
        return -1;
    }
    /* there, or no RENAME_NOREPLACE on this file system */
#endif
    int r = blob_find(b);
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    if (set_path(b, FORM_RAW) < 0) { /* blob_find left it elsewhere */
        errno = ENAMETOOLONG;
        return -1;
    }
    return place(b, from) < 0 ? -1 : 1;
}

/* Renames the caller's file (open as j->in) into the store: 1 when done
 * (or when the blob was there already: the file is then left), 0 when it
 * must be copied instead (another file system, or not ours to chmod), -1
 * on error.  Another file system shows as the rename's EXDEV, after the
 * chmod: a file handed over to be moved is the store's to change. */
static int move_in(Job *j, Blob *b, const char *from)
{
    if (fchmod(j->in, 0600) < 0) {
        return 0;
    }
    int r = place_new(b, from);
    if (r > 0) {
        b->fresh = b->moved = 1;
        return 1;
    }
    if (r == 0) {
        return 1;
    }
    if (errno == EXDEV) {
        return 0;
    }
    return failed(&b->fail, errno, b->path, NULL);
}

/* Stores n bytes held in memory, compressed when `try_z` and it pays;
 * with move_from (the same content's file) a raw blob is a rename. */
static int store_mem(Job *j, Blob *b, const unsigned char *p, size_t n,
                     int try_z, const char *move_from)
{
    size_t zlen = 0;
    b->size = (int64_t)n;
    if (hash_mem(j, p, n, b->hex) < 0) {
        return failed(&b->fail, ENOMEM, b->dir, "sha256");
    }
    /* A file moved in raw is looked up as it is placed (place_new), any
     * other blob once, before it is written. */
    int r = move_from == NULL ? blob_find(b) : 0;
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    int z = try_z && n >= MIN_DEFLATE ? deflate_pays(j, p, n, &zlen) : 0;
    if (z < 0) {
        return failed(&b->fail, ENOMEM, b->dir, "deflate");
    }
    if (move_from != NULL && !z) {
        if (set_path(b, FORM_RAW) < 0) {
            return -1;
        }
        b->stored = (int64_t)n;
        if ((r = move_in(j, b, move_from)) != 0) {
            return r < 0 ? -1 : 0;
        }
    }
    /* (a moved file that deflates, or one copied after all: EXDEV) */
    if (move_from != NULL && (r = blob_find(b)) != 0) {
        return r < 0 ? -1 : 0;
    }
    if (set_path(b, z) < 0) {
        return -1;
    }
    b->stored = z ? (int64_t)zlen : (int64_t)n;
    return z ? write_blob(j, b, j->zbuf, zlen) : write_blob(j, b, p, n);
}

/* Copies j->in to a temp file in chunks, hashing as it goes, then names
 * it (or leaves it to temp_discard when the blob was there). */
static int store_stream(Job *j, Blob *b, const char *path)
{
    int64_t total = 0;
    int hole = 0;
    if (md_begin(j, fd_size(j->in)) < 0) {
        return failed(&b->fail, ENOMEM, path, NULL);
    }
    if (temp_open(j, b) < 0) {
        return -1;
    }
    for (;;) {
        ssize_t n = read_full(j->in, j->buf, CHUNK);
        if (n < 0) {
            return failed(&b->fail, errno, path, NULL);
        }
        if (n == 0) {
            break;
        }
        md_update(j, j->buf, (size_t)n);
        if (out_write(j->out, j->buf, (size_t)n, &hole) < 0) {
            return failed(&b->fail, errno, b->tmp, NULL);
        }
        total += n;
    }
    if (hole && ftruncate(j->out, (off_t)total) < 0) {
        return failed(&b->fail, errno, b->tmp, NULL);
    }
    if (md_end(j, b->hex) < 0) {
        return failed(&b->fail, ENOMEM, path, NULL);
    }
    b->size = b->stored = total;
    int r = blob_find(b);
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    return set_path(b, FORM_RAW) < 0 ? -1 : temp_place(j, b);
}

/* move of a large file: hash it, then rename it in unless the blob is
 * there.  1 when done, 0 when it must be copied, -1 on error. */
static int move_large(Job *j, Blob *b, const char *path)
{
    if (hash_fd(j, path, b->hex, &b->size, &b->fail) < 0) {
        return -1;
    }
    int r = blob_find(b);
    if (r != 0) {
        return r;
    }
    if (set_path(b, FORM_RAW) < 0) {
        return -1;
    }
    b->stored = b->size;
    if ((r = move_in(j, b, path)) != 0) {
        return r;
    }
    if (lseek(j->in, 0, SEEK_SET) < 0) {
        return failed(&b->fail, errno, path, NULL);
    }
    return 0;
}

/* Reads a small file (st_size bytes) whole, then stores it from memory. */
static int put_small(Job *j, Blob *b, const char *path, size_t size,
                     const char *move_from)
{
    if ((j->data = malloc(size + 1)) == NULL) {
        return failed(&b->fail, ENOMEM, path, NULL);
    }
    ssize_t n = read_full(j->in, j->data, size + 1);
    if (n < 0) {
        return failed(&b->fail, errno, path, NULL);
    }
    if ((size_t)n > size) {
        return failed(&b->fail, EAGAIN, path, "changed while being read");
    }
    return store_mem(j, b, j->data, (size_t)n, 1, move_from);
}

static int put_file(Job *j, Blob *b, const char *path, lua_Integer cmax,
                    int move)
{
    struct stat st;
    if (open_regular(j, path, &st, &b->fail) < 0) {
        return -1;
    }
    /* Why: a hard-linked file would share its inode with the store (one
     * on another file system is copied after the rename's EXDEV). */
    move = move && st.st_nlink == 1;
    if (st.st_size <= cmax) {
        return put_small(j, b, path, (size_t)st.st_size, move ? path : NULL);
    }
    int r = move ? move_large(j, b, path) : 0;
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    return store_stream(j, b, path);
}

/* Opens the blob, raw or compressed, and gets ready to read its content
 * with next_piece. */
static int open_blob(Job *j, Blob *b)
{
    j->at_end = 0;
    for (int form = 0; form < FORMS; form++) {
        if (set_path(b, form) < 0) {
            return -1;
        }
        j->in = open(b->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (j->in >= 0) {
            break;
        }
        int e = errno;
        if (!absent(form, e)) {
            return failed(&b->fail, e, b->path, NULL);
        }
        if (form == FORMS - 1) {
            /* (one that is nowhere is named where a new one goes) */
            if (set_path(b, FORM_RAW) < 0) {
                return -1;
            }
            return failed(&b->fail, ENOENT, b->path, NULL);
        }
    }
    int md = j->trust
                 ? (j->buf == NULL && (j->buf = malloc(CHUNK)) == NULL ? -1 : 0)
                 : md_begin(j, fd_size(j->in));
    if (md < 0 || (b->compressed && (j->zbuf = malloc(CHUNK)) == NULL)) {
        return failed(&b->fail, ENOMEM, b->path, NULL);
    }
    if (b->compressed) {
        if (inflateInit(&j->z) != Z_OK) {
            return failed(&b->fail, ENOMEM, b->path, NULL);
        }
        j->zmode = Z_INFLATING;
    }
    return 0;
}

/* After the end of the zlib stream: the file must end there too. */
static int inflate_end_ok(Job *j, Blob *b)
{
    j->zdone = 1;
    if (j->z.avail_in == 0) {
        ssize_t n = read_full(j->in, j->buf, 1);
        if (n < 0) {
            return failed(&b->fail, errno, b->path, NULL);
        }
        j->z.avail_in = (uInt)n;
    }
    return j->z.avail_in > 0 ? corrupt(b, "data after the zlib stream") : 0;
}

/* Inflates up to CHUNK bytes of content into j->zbuf. */
static int inflate_piece(Job *j, Blob *b, size_t *n)
{
    j->z.next_out = j->zbuf;
    j->z.avail_out = CHUNK;
    while (!j->zdone && j->z.avail_out > 0) {
        if (j->z.avail_in == 0) {
            ssize_t r = read_full(j->in, j->buf, CHUNK);
            if (r < 0) {
                return failed(&b->fail, errno, b->path, NULL);
            }
            if (r == 0) {
                return corrupt(b, "truncated zlib stream");
            }
            j->z.next_in = j->buf;
            j->z.avail_in = (uInt)r;
        }
        int rc = inflate(&j->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END && inflate_end_ok(j, b) < 0) {
            return -1;
        }
        if (rc == Z_MEM_ERROR) {
            return failed(&b->fail, ENOMEM, b->path, NULL);
        }
        if (rc != Z_OK && rc != Z_STREAM_END) {
            return corrupt(b, "bad zlib stream");
        }
    }
    *n = CHUNK - j->z.avail_out;
    return 0;
}

/* The blob's next piece of content, hashed: *n bytes at *p, 0 at the
 * end. */
static int next_piece(Job *j, Blob *b, const unsigned char **p, size_t *n)
{
    if (b->compressed) {
        if (inflate_piece(j, b, n) < 0) {
            return -1;
        }
        *p = j->zbuf;
    } else {
        /* read_full reads on to CHUNK bytes or the end: short, it has
         * seen the end, and reading again to be told so costs a call per
         * small blob */
        ssize_t r = j->at_end ? 0 : read_full(j->in, j->buf, CHUNK);
        if (r < 0) {
            return failed(&b->fail, errno, b->path, NULL);
        }
        j->at_end = r < CHUNK;
        *n = (size_t)r;
        *p = j->buf;
    }
    if (!j->trust) {
        md_update(j, *p, *n);
    }
    return 0;
}

/* At the end of the content: it must hash to the blob's name. */
static int verify(Job *j, Blob *b)
{
    char hex[HEX_LEN + 1];
    if (md_end(j, hex) < 0) {
        return failed(&b->fail, ENOMEM, b->path, NULL);
    }
    return memcmp(hex, b->hex, HEX_LEN) == 0 ? 0 : corrupt(b, "hash mismatch");
}

/* Appends n bytes to j->data (*len used of *cap), growing it by doubling
 * up to max bytes of content. */
static int append(Job *j, Blob *b, const unsigned char *p, size_t n,
                  size_t *len, size_t *cap, size_t max)
{
    if (n > max - *len) {
        return failed(&b->fail, EFBIG, b->path, NULL);
    }
    if (n > *cap - *len) {
        size_t want = *cap < CHUNK ? CHUNK : *cap;
        want = want > max / 2 ? max : want * 2;
        want = want < *len + n ? *len + n : want;
        unsigned char *d = realloc(j->data, want);
        if (d == NULL) {
            return failed(&b->fail, ENOMEM, b->path, NULL);
        }
        j->data = d;
        *cap = want;
    }
    memcpy(j->data + *len, p, n);
    *len += n;
    return 0;
}

static int read_blob(Job *j, Blob *b, size_t max, size_t *len)
{
    size_t cap = 0;
    struct stat st;
    if (open_blob(j, b) < 0) {
        return -1;
    }
    if (fstat(j->in, &st) < 0) {
        return failed(&b->fail, errno, b->path, NULL);
    }
    if (!b->compressed && (uint64_t)st.st_size > max) {
        return failed(&b->fail, EFBIG, b->path, NULL);
    }
    if (!b->compressed && st.st_size > 0) { /* the usual size: one block */
        if ((j->data = malloc((size_t)st.st_size)) == NULL) {
            return failed(&b->fail, ENOMEM, b->path, NULL);
        }
        cap = (size_t)st.st_size;
    }
    *len = 0;
    for (;;) {
        const unsigned char *p;
        size_t n;
        if (next_piece(j, b, &p, &n) < 0) {
            return -1;
        }
        if (n == 0) {
            return verify(j, b);
        }
        if (append(j, b, p, n, len, &cap, max) < 0) {
            return -1;
        }
    }
}

/* Streams the blob's content into the new file dest; *made says it was
 * created (so a failure must remove it). */
/* A raw blob copied by the kernel (copy_file_range: no trip through user
 * memory, extents shared where the file system can). */
static int copy_raw(Job *j, Blob *b, const char *dest, int64_t *total)
{
    struct stat st;
    if (fstat(j->in, &st) < 0) {
        return failed(&b->fail, errno, b->path, NULL);
    }
    while (*total < (int64_t)st.st_size) {
#ifdef SH_CLIENT
        char buf[65536];
        size_t want = (size_t)(st.st_size - *total);
        ssize_t n = read(j->in, buf, want < sizeof buf ? want : sizeof buf);
        if (n > 0 && sh_write_all(j->out, buf, (size_t)n) < 0) {
            return failed(&b->fail, errno, dest, NULL);
        }
#else
        ssize_t n = copy_file_range(j->in, NULL, j->out, NULL,
                                    (size_t)(st.st_size - *total), 0);
#endif
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return failed(&b->fail, n < 0 ? errno : EIO, dest, NULL);
        }
        *total += n;
    }
    return 0;
}

/* What copy_out sets on the new file before closing it, through its own
 * descriptor: owner (-1: unchanged), then mode (a chown clears setuid
 * bits), then the modification time (when has_mtime). */
typedef struct {
    lua_Integer uid, gid;
    int mode;
    int has_mtime;
    struct timespec mtime;
} Meta;

static int finish_out(Job *j, const Meta *m)
{
    struct timespec ts[2] = {{0, UTIME_OMIT}, m->mtime};
    if ((m->uid >= 0 || m->gid >= 0) &&
        fchown(j->out, (uid_t)m->uid, (gid_t)m->gid) < 0) {
        return -1;
    }
    if (fchmod(j->out, (mode_t)m->mode) < 0 ||
        (m->has_mtime && futimens(j->out, ts) < 0)) {
        return -1;
    }
    return 0;
}

static int copy_out(Job *j, Blob *b, const char *dest, const Meta *m,
                    int64_t *size, int *made)
{
    int64_t total = 0;
    int hole = 0;
    if (open_blob(j, b) < 0) {
        return -1;
    }
    /* Why: O_EXCL|O_NOFOLLOW never writes through a planted symlink. */
    j->out = open(
        dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
        0600);
    if (j->out < 0) {
        return failed(&b->fail, errno, dest, NULL);
    }
    *made = 1;
    if (j->trust && !b->compressed) {
        if (copy_raw(j, b, dest, &total) < 0) {
            return -1;
        }
        if (finish_out(j, m) < 0 || close(j->out) < 0) {
            j->out = -1;
            return failed(&b->fail, errno, dest, NULL);
        }
        j->out = -1;
        *size = total;
        return 0;
    }
    for (;;) {
        const unsigned char *p;
        size_t n;
        if (next_piece(j, b, &p, &n) < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        if (out_write(j->out, p, n, &hole) < 0) {
            return failed(&b->fail, errno, dest, NULL);
        }
        total += (int64_t)n;
    }
    if (!j->trust && verify(j, b) < 0) {
        return -1;
    }
    if ((hole && ftruncate(j->out, (off_t)total) < 0) || finish_out(j, m) < 0 ||
        close(j->out) < 0) {
        j->out = -1; /* a failed close(2) still closes */
        return failed(&b->fail, errno, dest, NULL);
    }
    j->out = -1;
    *size = total;
    return 0;
}

/* Argument: a SHA-256 as 64 lowercase hex digits (so it is safe in a
 * path). */
static const char *check_hash(lua_State *L, int arg)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    int ok = len == HEX_LEN;
    for (size_t i = 0; ok && i < len; i++) {
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    }
    luaL_argcheck(L, ok, arg, "not a SHA-256 (64 lowercase hex digits)");
    return s;
}

/* put_* options: compress_max and move. */
static void check_opts(lua_State *L, int idx, lua_Integer *cmax, int *move)
{
    *cmax = DEFAULT_COMPRESS_MAX;
    *move = 0;
    if (lua_isnoneornil(L, idx)) {
        return;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "compress_max") != LUA_TNIL) {
        int ok;
        *cmax = lua_tointegerx(L, -1, &ok);
        luaL_argcheck(L, ok && *cmax >= 0 && *cmax <= MAX_COMPRESS_MAX, idx,
                      "compress_max must be an integer in 0..2^30");
    }
    lua_pop(L, 1);
    *move = sh_optfield_boolean(L, idx, "move", 0);
}

static void set_field_int(lua_State *L, const char *key, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, key);
}

static void set_field_bool(lua_State *L, const char *key, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, key);
}

/* [-0, +1, m] The info table of a put. */
static int push_info(lua_State *L, const Blob *b)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, b->hex);
    lua_setfield(L, -2, "hash");
    set_field_int(L, "size", b->size);
    set_field_int(L, "stored", b->stored);
    set_field_bool(L, "compressed", b->compressed);
    set_field_bool(L, "new", b->fresh);
    set_field_bool(L, "moved", b->moved);
    return 1;
}

/* hash_file(path) -> hex, size | nil, msg, code (a regular file only) */
static int store_hash_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char hex[HEX_LEN + 1];
    int64_t size = 0;
    Fail f = {0, NULL, NULL};
    struct stat st;
    Job *j = new_job(L);
    int r = open_regular(j, path, &st, &f);
    if (r == 0) {
        r = hash_fd(j, path, hex, &size, &f);
    }
    job_release(j);
    if (r < 0) {
        return push_fail(L, &f);
    }
    lua_pushstring(L, hex);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* hash_string(s) -> hex */
static int store_hash_string(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[HEX_LEN + 1];
    Job *j = new_job(L);
    int r = hash_mem(j, s, len, hex);
    job_release(j);
    if (r < 0) {
        return sh_fail(L, "sha256", ENOMEM);
    }
    lua_pushstring(L, hex);
    return 1;
}

/* name_hash(s) -> 16 hex digits: a 64-bit FNV-1a of s.  For names of
 * things shannot makes itself from its own data (a staging pool, the
 * deferred-command shims): no adversary picks what is hashed, and a run
 * that captures nothing then never loads libcrypto (~1.5 ms: its dlopen
 * and its initialisation, bench/capture). */
static int store_name_hash(lua_State *L)
{
    size_t len;
    const unsigned char *s =
        (const unsigned char *)luaL_checklstring(L, 1, &len);
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ s[i]) * 0x100000001b3u;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, h);
    lua_pushstring(L, hex);
    return 1;
}

/* put_file(dir, path [, opts]) -> info | nil, msg, code
 * With opts.move the file may be renamed into the store (info.moved);
 * otherwise, and when the blob was already there, it is left as it is. */
static int store_put_file(lua_State *L)
{
    Blob b;
    lua_Integer cmax;
    int move;
    blob_init(&b, luaL_checkstring(L, 1), NULL);
    const char *path = luaL_checkstring(L, 2);
    check_opts(L, 3, &cmax, &move);
    lua_Integer head = 0;
    if (lua_istable(L, 3) && lua_getfield(L, 3, "head") != LUA_TNIL) {
        int ok;
        head = lua_tointegerx(L, -1, &ok);
        luaL_argcheck(L, ok && head >= 0, 3, "head must be a count of bytes");
    }
    Job *j = new_job(L);
    int r = put_file(j, &b, path, cmax, move);
    temp_discard(j, &b);
    if (r < 0) {
        job_release(j);
        return push_fail(L, &b.fail);
    }
    push_info(L, &b);
    /* A small file was read whole: its first bytes are at hand, where
     * the caller would open the blob again to read them (peek). */
    if (head > 0 && j->data != NULL) {
        size_t n =
            (size_t)b.size < (size_t)head ? (size_t)b.size : (size_t)head;
        lua_pushlstring(L, (const char *)j->data, n);
        lua_setfield(L, -2, "head");
    }
    job_release(j);
    return 1;
}

/* put_string(dir, data [, opts]) -> info | nil, msg, code */
static int store_put_string(lua_State *L)
{
    Blob b;
    size_t len;
    lua_Integer cmax;
    int move;
    blob_init(&b, luaL_checkstring(L, 1), NULL);
    const char *data = luaL_checklstring(L, 2, &len);
    check_opts(L, 3, &cmax, &move);
    Job *j = new_job(L);
    int r = store_mem(j, &b, (const unsigned char *)data, len,
                      len <= (size_t)cmax, NULL);
    temp_discard(j, &b);
    job_release(j);
    return r < 0 ? push_fail(L, &b.fail) : push_info(L, &b);
}

/* read(dir, hex [, max]) -> data | nil, msg, code
 * EFBIG when the content is larger than max bytes (default 64 MiB). */
static int store_read(lua_State *L)
{
    Blob b;
    size_t len = 0;
    blob_init(&b, luaL_checkstring(L, 1), check_hash(L, 2));
    lua_Integer max = luaL_optinteger(L, 3, DEFAULT_READ_MAX);
    luaL_argcheck(L, max >= 0, 3, "max must not be negative");
    Job *j = new_job(L);
    if (read_blob(j, &b, (size_t)max, &len) < 0) {
        job_release(j);
        return push_fail(L, &b.fail);
    }
    lua_pushlstring(L, len > 0 ? (const char *)j->data : "", len);
    job_release(j);
    return 1;
}

/* Reads len bytes at off of the open raw blob into dst; 0 or -1. */
static int pread_all(Job *j, Blob *b, unsigned char *dst, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(j->in, dst + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return failed(&b->fail, n < 0 ? errno : EIO, b->path, NULL);
        }
        got += (size_t)n;
    }
    return 0;
}

/* [-0, +3, m] head, tail and size of data[0..len) (see store_peek). */
static int push_peek(lua_State *L, const unsigned char *data, size_t len,
                     size_t n)
{
    size_t head = len < n ? len : n;
    lua_pushlstring(L, data ? (const char *)data : "", head);
    if (len > 2 * n) {
        lua_pushlstring(L, (const char *)data + len - n, n);
    } else {
        lua_pushlstring(L, data ? (const char *)data + head : "", len - head);
    }
    lua_pushinteger(L, (lua_Integer)len);
    return 3;
}

/* peek(dir, hex, n) -> head, tail, size | nil, msg, code
 * The first n bytes of a blob's content, the n after them or its last n
 * (whichever come later: head .. tail is the whole content up to 2n
 * bytes), and its size: what a person sees of a file too large or too
 * binary to diff.  Not checked against the name: a preview, never what
 * is applied.  A raw blob is read at both ends only, whatever its size. */
static int store_peek(lua_State *L)
{
    Blob b;
    blob_init(&b, luaL_checkstring(L, 1), check_hash(L, 2));
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0 && n <= DEFAULT_READ_MAX, 3, "n out of range");
    Job *j = new_job(L);
    j->trust = 1;
    struct stat st;
    if (open_blob(j, &b) < 0) {
        job_release(j);
        return push_fail(L, &b.fail);
    }
    if (b.compressed) { /* small (compress_max): read it whole, verified */
        size_t len = 0;
        job_release(j);
        j->trust = 0;
        if (read_blob(j, &b, DEFAULT_READ_MAX, &len) < 0) {
            job_release(j);
            return push_fail(L, &b.fail);
        }
        int r = push_peek(L, j->data, len, (size_t)n);
        job_release(j);
        return r;
    }
    if (fstat(j->in, &st) < 0) {
        failed(&b.fail, errno, b.path, NULL);
        job_release(j);
        return push_fail(L, &b.fail);
    }
    size_t size = (size_t)st.st_size, k = (size_t)n;
    size_t head = size < k ? size : k, tail = size > 2 * k ? k : size - head;
    unsigned char *buf = lua_newuserdatauv(L, head + tail + 1, 0);
    if (pread_all(j, &b, buf, head, 0) < 0 ||
        pread_all(j, &b, buf + head, tail, (off_t)(size - tail)) < 0) {
        job_release(j);
        return push_fail(L, &b.fail);
    }
    job_release(j);
    lua_pushlstring(L, (const char *)buf, head);
    lua_pushlstring(L, (const char *)buf + head, tail);
    lua_pushinteger(L, (lua_Integer)size);
    return 3;
}

/* copy_out(dir, hex, dest [, mode [, opts]]) -> true, size | nil, msg, code
 * dest must not exist; it gets mode (default 0600) once whole and
 * verified, and is removed on any failure.  opts: verify = false skips
 * the SHA-256 of the content (a raw blob is then copied by the kernel),
 * for callers that checked the blob otherwise; uid, gid, mtime_sec,
 * mtime_nsec are set through the new file's own descriptor before it is
 * closed (what a caller would otherwise do by path: an O_PATH open, a
 * stat and three calls, per file placed). */
static int store_copy_out(lua_State *L)
{
    Blob b;
    int made = 0;
    int64_t size = 0;
    blob_init(&b, luaL_checkstring(L, 1), check_hash(L, 2));
    const char *dest = luaL_checkstring(L, 3);
    lua_Integer mode = luaL_optinteger(L, 4, 0600);
    luaL_argcheck(L, mode >= 0 && mode <= 07777, 4, "not a file mode");
    Meta m = {-1, -1, (int)mode, 0, {0, 0}};
    int trust = 0;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        trust = !sh_optfield_boolean(L, 5, "verify", 1);
        m.uid = sh_optfield_number(L, 5, "uid", -1);
        m.gid = sh_optfield_number(L, 5, "gid", -1);
        lua_getfield(L, 5, "mtime_sec");
        m.has_mtime = lua_isinteger(L, -1);
        m.mtime.tv_sec = (time_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
        m.mtime.tv_nsec = (long)sh_optfield_number(L, 5, "mtime_nsec", 0);
        luaL_argcheck(L, m.mtime.tv_nsec >= 0 && m.mtime.tv_nsec < 1000000000,
                      5, "mtime_nsec out of range");
    }
    Job *j = new_job(L);
    j->trust = trust;
    int r = copy_out(j, &b, dest, &m, &size, &made);
    job_release(j);
    if (r < 0) {
        if (made) {
            unlink(dest);
        }
        return push_fail(L, &b.fail);
    }
    lua_pushboolean(L, 1);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* has(dir, hex) -> boolean | nil, msg, code */
static int store_has(lua_State *L)
{
    Blob b;
    blob_init(&b, luaL_checkstring(L, 1), check_hash(L, 2));
    b.size = -1;
    int r = blob_find(&b);
    if (r < 0) {
        return push_fail(L, &b.fail);
    }
    lua_pushboolean(L, r);
    return 1;
}

static const luaL_Reg store_funcs[] = {{"hash_file", store_hash_file},
                                       {"hash_string", store_hash_string},
                                       {"name_hash", store_name_hash},
                                       {"put_file", store_put_file},
                                       {"put_string", store_put_string},
                                       {"read", store_read},
                                       {"peek", store_peek},
                                       {"copy_out", store_copy_out},
                                       {"has", store_has},
                                       {NULL, NULL}};

static void create_meta(lua_State *L)
{
    luaL_newmetatable(L, JOB_MT);
    lua_pushcfunction(L, job_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

int luaopen_shannot_core_store(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, store_funcs);
    return 1;
}
