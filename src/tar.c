/*
 * tar.c: reading a tar stream, as GNU tar writes it on a remote host
 * (DESIGN §2 step 4): ustar and pax (extended 'x' and global 'g' headers:
 * path, linkpath, size, uid, gid, mtime, SCHILY.xattr.NAME) and GNU
 * (long names 'L', long links 'K', base-256 numbers).  The stream is
 * hostile until proven otherwise: every header is checked (checksum,
 * magic, numbers, names) and anything that cannot be represented safely
 * is refused, never guessed at.
 *
 * A Reader owns one fd and a fixed buffer (no allocation per entry; file
 * contents are streamed in 64 KiB chunks, so memory stays flat for
 * entries of any size).  A format error is sticky: once next(), skip()
 * or extract() has failed on the stream, next() repeats that failure.
 *
 * Lua: shannot.core.tar; failures are nil, msg, code.  Format errors use
 * EBADMSG (corrupt or truncated), EINVAL (unsafe name), ENAMETOOLONG,
 * EFBIG (oversize header or size) and EOPNOTSUPP (an entry type or pax
 * feature we cannot represent).
 */
#ifndef SH_CLIENT
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shannot.h"

#define BLOCK 512
#define NAME_LIMIT 4096       /* bytes in a name or link target */
#define PAX_LIMIT (64 * 1024) /* pax data before one entry; all 'g' data */
#define XATTR_NAME_LIMIT 255  /* XATTR_NAME_MAX */
#define CHUNK (64 * 1024)     /* content is streamed in chunks this size */
#define SIZE_LIMIT (INT64_MAX - BLOCK) /* padding arithmetic stays in range */

enum { ST_HEADER, ST_ENTRY, ST_END, ST_FAILED };

/* What pax 'x' and GNU 'L'/'K' headers say about the entry that follows. */
typedef struct {
    int has_path, has_link, has_size, has_uid, has_gid, has_mtime;
    int64_t size, uid, gid, mtime_sec;
    long mtime_nsec;
    size_t pax_bytes; /* pax data seen for this entry (PAX_LIMIT) */
    char path[NAME_LIMIT + 1];
    char link[NAME_LIMIT + 1];
} Ext;

/* What pax 'g' headers say about every entry that follows. */
typedef struct {
    int has_uid, has_gid, has_mtime;
    int64_t uid, gid, mtime_sec;
    long mtime_nsec;
    size_t pax_bytes; /* all 'g' data so far (PAX_LIMIT) */
} Global;

typedef struct {
    int fd;          /* -1 when closed */
    int state;       /* ST_* */
    int content;     /* the current entry is a file whose data is unread */
    int errnum;      /* ST_FAILED: the failure that next() repeats */
    int64_t remain;  /* data bytes of the current entry not yet read */
    int64_t pad;     /* then this many bytes of block padding */
    uint64_t offset; /* bytes read from the stream */
    uint64_t at;     /* offset of the header being read (for messages) */
    Global g;
    Ext x;
    char name[NAME_LIMIT + 1]; /* the entry being read ("" unknown) */
    char err[512];
    unsigned char hdr[BLOCK];
    unsigned char buf[PAX_LIMIT]; /* pax data, long names, content */
    size_t in_off, in_len;        /* what of in[] is read, and unread */
    unsigned char in[CHUNK];      /* read ahead: a header is one block */
} Reader;

/* Header fields (offset, length) of ustar; GNU shares them up to 345. */
#define H_NAME 0, 100
#define H_MODE 100, 8
#define H_UID 108, 8
#define H_GID 116, 8
#define H_SIZE 124, 12
#define H_MTIME 136, 12
#define H_CHKSUM 148, 8
#define H_TYPE 156
#define H_LINK 157, 100
#define H_DEVMAJOR 329, 8
#define H_DEVMINOR 337, 8
#define H_PREFIX 345, 155

/* Copies up to n bytes of s into out (size outlen) with non-printable
 * bytes, quotes and backslashes as \xNN, cut short with "...". */
static void escape(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= outlen) {
            memcpy(out + o, "...", 4);
            return;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        }
    }
    out[o] = '\0';
}

/* Records a failure of the stream, naming the entry; the reader stays
 * failed.  Returns -1. */
__attribute__((format(printf, 3, 4))) static int set_err(Reader *r, int errnum,
                                                         const char *fmt, ...)
{
    char what[256], name[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (r->name[0] != '\0') {
        escape(r->name, strlen(r->name), name, sizeof name);
        snprintf(r->err, sizeof r->err,
                 "tar: entry '%s' (header at byte %llu): %s", name,
                 (unsigned long long)r->at, what);
    } else {
        snprintf(r->err, sizeof r->err, "tar: header at byte %llu: %s",
                 (unsigned long long)r->at, what);
    }
    r->errnum = errnum;
    r->state = ST_FAILED;
    r->content = 0;
    return -1;
}

/* Refills r->in from the stream: 1, 0 at its end, or -1 (read error). */
static int fill(Reader *r)
{
    for (;;) {
        ssize_t k = read(r->fd, r->in, sizeof r->in);
        if (k < 0 && errno == EINTR && !sh_interrupted()) {
            continue;
        }
        if (k < 0) {
            return set_err(r, errno, "read");
        }
        r->in_off = 0;
        r->in_len = (size_t)k;
        return k > 0;
    }
}

/* Reads exactly n bytes, through r->in (a stream of small files is
 * mostly 512-byte headers: one read(2) per 64 KiB, not per block); 0, or
 * -1 (truncated stream or read error). */
static int read_exact(Reader *r, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (r->in_off == r->in_len) {
            int k = fill(r);
            if (k < 0) {
                return -1;
            }
            if (k == 0) {
                return set_err(r, EBADMSG,
                               "truncated archive (stream ends "
                               "after byte %llu)",
                               (unsigned long long)r->offset);
            }
        }
        size_t k = r->in_len - r->in_off;
        k = k < n - got ? k : n - got;
        memcpy((char *)buf + got, r->in + r->in_off, k);
        r->in_off += k;
        got += k;
        r->offset += (uint64_t)k;
    }
    return 0;
}

/* Reads and drops the rest of the current entry's data and padding. */
static int skip_rest(Reader *r)
{
    while (r->remain + r->pad > 0) {
        int64_t left = r->remain + r->pad;
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        if (read_exact(r, r->buf, n) < 0) {
            return -1;
        }
        int64_t from_data = r->remain < (int64_t)n ? r->remain : (int64_t)n;
        r->remain -= from_data;
        r->pad -= (int64_t)n - from_data;
    }
    r->content = 0;
    r->state = ST_HEADER;
    return 0;
}

/* GNU base-256: 0x80 then a big-endian value, or 0xff then a negative
 * one in two's complement.  0, or -2 out of int64 range. */
static int parse_b256(const unsigned char *f, size_t len, int64_t *out)
{
    int neg = f[0] == 0xff;
    uint64_t v = 0;
    for (size_t i = 1; i < len; i++) {
        if (v > (UINT64_MAX >> 8)) {
            return -2;
        }
        v = v << 8 | (unsigned char)(neg ? ~f[i] : f[i]);
    }
    if (v > INT64_MAX) {
        return -2;
    }
    *out = neg ? -(int64_t)v - 1 : (int64_t)v;
    return 0;
}

/* A numeric header field: octal padded with spaces or NULs, or GNU
 * base-256.  0, -1 if malformed, or -2 out of int64 range. */
static int parse_num(const unsigned char *f, size_t len, int64_t *out)
{
    if (f[0] == 0x80 || f[0] == 0xff) {
        return parse_b256(f, len, out);
    }
    size_t i = 0;
    int64_t v = 0;
    while (i < len && f[i] == ' ') {
        i++;
    }
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v > (INT64_MAX >> 3)) {
            return -2;
        }
        v = v * 8 + (f[i] - '0');
    }
    for (; i < len; i++) {
        if (f[i] != ' ' && f[i] != '\0') {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* A numeric header field in [lo, hi]; 0, or -1 naming the field. */
static int header_num(Reader *r, size_t off, size_t len, const char *what,
                      int64_t lo, int64_t hi, int64_t *out)
{
    int rc = parse_num(r->hdr + off, len, out);
    if (rc == -1) {
        return set_err(r, EBADMSG, "bad %s field", what);
    }
    if (rc == -2) {
        return set_err(r, EFBIG, "%s out of range", what);
    }
    if (*out < lo) {
        return set_err(r, EBADMSG, "negative %s", what);
    }
    if (*out > hi) {
        return set_err(r, EFBIG, "%s out of range", what);
    }
    return 0;
}

/* The header checksum, summed as unsigned or (historically) signed. */
static int checksum_ok(const unsigned char *h)
{
    int64_t want;
    long usum = 0, ssum = 0;

    if (parse_num(h + 148, 8, &want) < 0) {
        return 0;
    }
    for (int i = 0; i < BLOCK; i++) {
        unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
        usum += c;
        ssum += (signed char)c;
    }
    return want == usum || want == ssum;
}

static int is_zero(const unsigned char *p, size_t n)
{
    return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* A NUL-padded string field of the header into out (size > len); -1 if
 * a NUL is followed by anything but NULs (a name with a NUL in it). */
static int header_str(const Reader *r, size_t off, size_t len, char *out)
{
    const unsigned char *f = r->hdr + off;
    size_t n = strnlen((const char *)f, len);
    memcpy(out, f, n);
    out[n] = '\0';
    for (size_t i = n; i < len; i++) {
        if (f[i] != '\0') {
            return -1;
        }
    }
    return 0;
}

/* Normalises a member name into out (at least strlen(in) + 2 bytes): no
 * leading "./", no empty or "." components, no trailing '/'; a name of
 * only those is ".".  NULL, or what is wrong with the name. */
static const char *normalise(const char *in, char *out)
{
    size_t o = 0;

    if (in[0] == '\0') {
        return "empty name";
    }
    if (in[0] == '/') {
        return "absolute name";
    }
    for (const char *p = in; *p != '\0';) {
        const char *e = strchr(p, '/');
        e = e != NULL ? e : p + strlen(p);
        size_t n = (size_t)(e - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            return "name has a '..' component";
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o > 0) {
                out[o++] = '/';
            }
            memcpy(out + o, p, n);
            o += n;
        }
        p = *e != '\0' ? e + 1 : e;
    }
    if (o == 0) {
        out[o++] = '.';
    }
    out[o] = '\0';
    return NULL;
}

/* Keeps a name or link target of n bytes from a pax record or a GNU
 * long-name block into dst; trailing NULs are dropped. */
static int take_name(Reader *r, const char *src, size_t n, char *dst,
                     const char *what)
{
    while (n > 0 && src[n - 1] == '\0') {
        n--;
    }
    if (n > NAME_LIMIT) {
        return set_err(r, ENAMETOOLONG, "%s longer than %d bytes", what,
                       NAME_LIMIT);
    }
    if (memchr(src, '\0', n) != NULL) {
        return set_err(r, EINVAL, "%s contains a NUL byte", what);
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* A pax decimal integer (optionally negative); 0, or -1. */
static int parse_dec(const char *s, size_t len, int neg_ok, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;

    if (len > 0 && s[0] == '-' && neg_ok) {
        neg = 1;
        i = 1;
    }
    if (i == len) {
        return -1;
    }
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (uint64_t)INT64_MAX / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > INT64_MAX) {
        return -1;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* A pax time "[-]SECONDS[.FRACTION]" as seconds and nanoseconds. */
static int parse_time(const char *s, size_t len, int64_t *sec, long *nsec)
{
    const char *dot = memchr(s, '.', len);
    size_t ilen = dot ? (size_t)(dot - s) : len;
    long ns = 0;
    int digits = 0;

    if (parse_dec(s, ilen, 1, sec) < 0) {
        return -1;
    }
    for (size_t i = ilen + 1; dot != NULL && i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (digits++ < 9) {
            ns = ns * 10 + (s[i] - '0');
        }
    }
    for (; digits < 9; digits++) {
        ns *= 10;
    }
    if (s[0] == '-' && ns > 0) { /* -1.25 is 2 s before 0, then 0.75 s */
        *sec -= 1;
        ns = 1000000000L - ns;
    }
    *nsec = ns;
    return 0;
}

static int key_is(const char *key, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(key, name, klen) == 0;
}

/* [-0, +0, m] A SCHILY.xattr.NAME record into the table at tidx. */
static int pax_xattr(lua_State *L, Reader *r, const char *name, size_t nlen,
                     const char *val, size_t vlen, int tidx)
{
    if (nlen == 0 || nlen > XATTR_NAME_LIMIT) {
        return set_err(r, EBADMSG, "pax xattr name of %zu bytes", nlen);
    }
    if (memchr(name, '\0', nlen) != NULL) {
        return set_err(r, EBADMSG, "pax xattr name contains a NUL byte");
    }
    lua_pushlstring(L, name, nlen);
    lua_pushlstring(L, val, vlen);
    lua_rawset(L, tidx);
    return 0;
}

/* A uid, gid or mtime record (empty value: back to the header's). */
static int pax_number(Reader *r, const char *key, size_t klen, const char *val,
                      size_t vlen, int global)
{
    int *has_uid = global ? &r->g.has_uid : &r->x.has_uid;
    int *has_gid = global ? &r->g.has_gid : &r->x.has_gid;
    int *has_mtime = global ? &r->g.has_mtime : &r->x.has_mtime;
    int64_t v = 0;

    if (key_is(key, klen, "mtime")) {
        *has_mtime = vlen > 0;
        if (vlen > 0 &&
            parse_time(val, vlen, global ? &r->g.mtime_sec : &r->x.mtime_sec,
                       global ? &r->g.mtime_nsec : &r->x.mtime_nsec) < 0) {
            return set_err(r, EBADMSG, "bad pax mtime '%.*s'",
                           (int)(vlen < 40 ? vlen : 40), val);
        }
        return 0;
    }
    int uid = key_is(key, klen, "uid");
    if (vlen > 0 && (parse_dec(val, vlen, 0, &v) < 0 || v > UINT32_MAX)) {
        return set_err(r, EBADMSG, "bad pax %s", uid ? "uid" : "gid");
    }
    *(uid ? has_uid : has_gid) = vlen > 0;
    *(uid ? (global ? &r->g.uid : &r->x.uid)
          : (global ? &r->g.gid : &r->x.gid)) = vlen > 0 ? v : 0;
    return 0;
}

/* A path, linkpath or size record ('x' only; empty: the header's). */
static int pax_entry_field(Reader *r, const char *key, size_t klen,
                           const char *val, size_t vlen)
{
    if (key_is(key, klen, "size")) {
        r->x.has_size = vlen > 0;
        if (vlen > 0 && (parse_dec(val, vlen, 0, &r->x.size) < 0 ||
                         r->x.size > SIZE_LIMIT)) {
            return set_err(r, EFBIG, "bad pax size '%.*s'",
                           (int)(vlen < 40 ? vlen : 40), val);
        }
        return 0;
    }
    int path = key_is(key, klen, "path");
    if (path && take_name(r, val, vlen, r->x.path, "pax path") < 0) {
        return -1;
    }
    if (!path && take_name(r, val, vlen, r->x.link, "pax linkpath") < 0) {
        return -1;
    }
    *(path ? &r->x.has_path : &r->x.has_link) = vlen > 0;
    return 0;
}

/* [-0, +0, m] One pax record; xattrs go into the table at tidx. */
static int pax_apply(lua_State *L, Reader *r, const char *key, size_t klen,
                     const char *val, size_t vlen, int global, int tidx)
{
    static const char xattr[] = "SCHILY.xattr.";
    static const char sparse[] = "GNU.sparse.";

    if (klen >= sizeof xattr - 1 && memcmp(key, xattr, sizeof xattr - 1) == 0) {
        return pax_xattr(L, r, key + sizeof xattr - 1,
                         klen - (sizeof xattr - 1), val, vlen, tidx);
    }
    if (klen >= sizeof sparse - 1 &&
        memcmp(key, sparse, sizeof sparse - 1) == 0) {
        return set_err(r, ENOTSUP, "GNU sparse entries are not supported");
    }
    if (key_is(key, klen, "path") || key_is(key, klen, "linkpath") ||
        key_is(key, klen, "size")) {
        if (global) {
            return set_err(r, EBADMSG, "pax global header sets '%.*s'",
                           (int)klen, key);
        }
        return pax_entry_field(r, key, klen, val, vlen);
    }
    if (key_is(key, klen, "uid") || key_is(key, klen, "gid") ||
        key_is(key, klen, "mtime")) {
        return pax_number(r, key, klen, val, vlen, global);
    }
    return 0; /* atime, ctime, uname, gname, comment, charset, ...: unused */
}

/* [-0, +0, m] Parses len bytes of pax records in r->buf. */
static int pax_parse(lua_State *L, Reader *r, size_t len, int global, int tidx)
{
    for (size_t at = 0; at < len;) {
        const char *rec = (const char *)r->buf + at;
        size_t left = len - at, n = 0, i = 0;
        while (i < left && i < 10 && rec[i] >= '0' && rec[i] <= '9') {
            n = n * 10 + (size_t)(rec[i++] - '0');
        }
        if (i == 0 || i >= left || rec[i] != ' ' || n < i + 4 || n > left ||
            rec[n - 1] != '\n') {
            return set_err(r, EBADMSG, "bad pax record at offset %zu", at);
        }
        const char *key = rec + i + 1, *end = rec + n - 1;
        const char *eq = memchr(key, '=', (size_t)(end - key));
        if (eq == NULL || eq == key) {
            return set_err(r, EBADMSG, "bad pax record at offset %zu", at);
        }
        if (pax_apply(L, r, key, (size_t)(eq - key), eq + 1,
                      (size_t)(end - eq - 1), global, tidx) < 0) {
            return -1;
        }
        at += n;
    }
    return 0;
}

/* Reads the data of a metadata header (size bytes plus padding) into
 * r->buf, at most limit bytes. */
static int read_meta(Reader *r, int64_t size, size_t limit, int errnum,
                     const char *what)
{
    if (size > (int64_t)limit) {
        return set_err(r, errnum, "%s of %lld bytes (limit %zu)", what,
                       (long long)size, limit);
    }
    size_t padded = ((size_t)size + BLOCK - 1) / BLOCK * BLOCK;
    return read_exact(r, r->buf, padded);
}

/* [-0, +0, m] A metadata header: 'x', 'g', 'L' or 'K'; tidx is the
 * entry's xattr table, gidx the global one. */
static int read_ext(lua_State *L, Reader *r, char type, int64_t size, int tidx,
                    int gidx)
{
    if (type == 'x') {
        if (read_meta(r, size, PAX_LIMIT - r->x.pax_bytes, EFBIG,
                      "pax header") < 0) {
            return -1;
        }
        r->x.pax_bytes += (size_t)size;
        return pax_parse(L, r, (size_t)size, 0, tidx);
    }
    if (type == 'g') {
        if (read_meta(r, size, PAX_LIMIT - r->g.pax_bytes, EFBIG,
                      "pax global header") < 0) {
            return -1;
        }
        r->g.pax_bytes += (size_t)size;
        return pax_parse(L, r, (size_t)size, 1, gidx);
    }
    const char *what = type == 'L' ? "GNU long name" : "GNU long link";
    if (read_meta(r, size, NAME_LIMIT + 1, ENAMETOOLONG, what) < 0 ||
        take_name(r, (const char *)r->buf, (size_t)size,
                  type == 'L' ? r->x.path : r->x.link, what) < 0) {
        return -1;
    }
    *(type == 'L' ? &r->x.has_path : &r->x.has_link) = 1;
    return 0;
}

/* The entry type of a typeflag; NULL if it is not one we represent. */
static const char *type_name(char t)
{
    switch (t) {
    case '0':
    case '\0':
    case '7':
        return "file";
    case '1':
        return "hardlink";
    case '2':
        return "link";
    case '3':
        return "char";
    case '4':
        return "block";
    case '5':
        return "dir";
    case '6':
        return "fifo";
    default:
        return NULL;
    }
}

/* Reads one 512-byte header into r->hdr and checks it.  1: a header;
 * 0: the end-of-archive marker (two zero blocks); -1: failure. */
static int read_header(Reader *r)
{
    r->at = r->offset;
    if (read_exact(r, r->hdr, BLOCK) < 0) {
        return -1;
    }
    if (is_zero(r->hdr, BLOCK)) {
        if (read_exact(r, r->hdr, BLOCK) < 0) {
            return -1;
        }
        if (!is_zero(r->hdr, BLOCK)) {
            return set_err(r, EBADMSG, "a lone zero block inside the archive");
        }
        return 0;
    }
    if (!checksum_ok(r->hdr)) {
        return set_err(r, EBADMSG, "bad header checksum");
    }
    if (memcmp(r->hdr + 257,
               "ustar\0"
               "00",
               8) != 0 &&
        memcmp(r->hdr + 257, "ustar  \0", 8) != 0) {
        return set_err(r, EBADMSG, "not a ustar, pax or GNU tar header");
    }
    return 1;
}

/* The entry's raw name from the header (ustar prefix/name, or the long
 * name) into r->name. */
static int header_name(Reader *r)
{
    char name[101], prefix[156];

    if (r->x.has_path) {
        memcpy(r->name, r->x.path, strlen(r->x.path) + 1);
        return 0;
    }
    if (header_str(r, H_NAME, name) < 0) {
        memcpy(r->name, name, strlen(name) + 1);
        return set_err(r, EINVAL, "name contains a NUL byte");
    }
    int posix = memcmp(r->hdr + 257, "ustar\0", 6) == 0;
    if (posix && header_str(r, H_PREFIX, prefix) < 0) {
        return set_err(r, EINVAL, "name prefix contains a NUL byte");
    }
    if (posix && prefix[0] != '\0') {
        snprintf(r->name, sizeof r->name, "%s/%s", prefix, name);
    } else {
        memcpy(r->name, name, strlen(name) + 1);
    }
    return 0;
}

/* The link target (r->x.link filled in from the header if need be),
 * normalised when it names another member (a hard link). */
static int link_target(Reader *r, const char *type, char *out)
{
    if (!r->x.has_link && header_str(r, H_LINK, r->x.link) < 0) {
        return set_err(r, EINVAL, "link target contains a NUL byte");
    }
    if (r->x.link[0] == '\0') {
        return set_err(r, EINVAL, "empty link target");
    }
    if (strcmp(type, "link") == 0) {
        memcpy(out, r->x.link, strlen(r->x.link) + 1);
        return 0;
    }
    const char *bad = normalise(r->x.link, out);
    if (bad != NULL || strcmp(out, ".") == 0) {
        return set_err(r, EINVAL, "hard link target: %s",
                       bad ? bad : "'.' is not a file");
    }
    return 0;
}

/* uid, gid and mtime: pax 'x', else pax 'g', else the header. */
static int entry_ids(Reader *r, int64_t *uid, int64_t *gid, int64_t *sec,
                     long *nsec)
{
    *nsec = 0;
    if (header_num(r, H_UID, "uid", 0, UINT32_MAX, uid) < 0 ||
        header_num(r, H_GID, "gid", 0, UINT32_MAX, gid) < 0 ||
        header_num(r, H_MTIME, "mtime", INT64_MIN, INT64_MAX, sec) < 0) {
        return -1;
    }
    *uid = r->x.has_uid ? r->x.uid : r->g.has_uid ? r->g.uid : *uid;
    *gid = r->x.has_gid ? r->x.gid : r->g.has_gid ? r->g.gid : *gid;
    if (r->x.has_mtime || r->g.has_mtime) {
        *sec = r->x.has_mtime ? r->x.mtime_sec : r->g.mtime_sec;
        *nsec = r->x.has_mtime ? r->x.mtime_nsec : r->g.mtime_nsec;
    }
    return 0;
}

/* [-0, +0, m] Sets the numeric fields of the entry table on top. */
static int entry_numbers(lua_State *L, Reader *r, const char *type,
                         int64_t size)
{
    int64_t mode, uid, gid, sec, major, minor;
    long nsec;

    if (header_num(r, H_MODE, "mode", 0, INT64_MAX, &mode) < 0 ||
        entry_ids(r, &uid, &gid, &sec, &nsec) < 0) {
        return -1;
    }
    sh_set_int(L, "mode", mode & 07777);
    sh_set_int(L, "uid", uid);
    sh_set_int(L, "gid", gid);
    sh_set_int(L, "size", strcmp(type, "file") == 0 ? size : 0);
    lua_pushnumber(L, (double)sec + (double)nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    sh_set_int(L, "mtime_sec", sec);
    sh_set_int(L, "mtime_nsec", nsec);
    if (strcmp(type, "char") == 0 || strcmp(type, "block") == 0) {
        if (header_num(r, H_DEVMAJOR, "devmajor", 0, UINT32_MAX, &major) < 0 ||
            header_num(r, H_DEVMINOR, "devminor", 0, UINT32_MAX, &minor) < 0) {
            return -1;
        }
        sh_set_int(L, "devmajor", major);
        sh_set_int(L, "devminor", minor);
    }
    return 0;
}

/* [-0, +0, m] Copies the global xattrs the entry does not set itself
 * into the entry's table at tidx. */
static void merge_globals(lua_State *L, int tidx, int gidx)
{
    lua_pushnil(L);
    while (lua_next(L, gidx) != 0) { /* key value */
        lua_pushvalue(L, -2);        /* key value key */
        if (lua_rawget(L, tidx) == LUA_TNIL) {
            lua_pushvalue(L, -3);
            lua_pushvalue(L, -3);
            lua_rawset(L, tidx);
        }
        lua_pop(L, 2); /* key */
    }
}

/* The rest of the entry's stream is its content (a file's) or data to
 * skip (any other type's). */
static void start_content(Reader *r, const char *type, int64_t size)
{
    r->remain = size;
    r->pad = (BLOCK - size % BLOCK) % BLOCK;
    r->content = strcmp(type, "file") == 0;
    r->state = ST_ENTRY;
}

/* Checks the entry's name into norm and its link target into link. */
static int entry_names(Reader *r, const char *type, char *norm, char *link)
{
    if (header_name(r) < 0) {
        return -1;
    }
    const char *bad = normalise(r->name, norm);
    if (bad != NULL) {
        return set_err(r, EINVAL, "%s", bad);
    }
    if (strcmp(norm, ".") == 0 && strcmp(type, "dir") != 0) {
        return set_err(r, EINVAL, "'.' is not a directory");
    }
    if ((strcmp(type, "link") == 0 || strcmp(type, "hardlink") == 0) &&
        link_target(r, type, link) < 0) {
        return -1;
    }
    memcpy(r->name, norm, strlen(norm) + 1);
    return 0;
}

/* [-0, +1, m] Pushes the entry table of the header in r->hdr (after its
 * metadata headers); xattrs from the table at tidx. */
static int push_entry(lua_State *L, Reader *r, const char *type, int64_t size,
                      int tidx, int gidx)
{
    char link[NAME_LIMIT + 1], norm[NAME_LIMIT + 2];

    link[0] = '\0';
    if (entry_names(r, type, norm, link) < 0) {
        return -1;
    }
    size = r->x.has_size ? r->x.size : size;
    lua_createtable(L, 0, 12);
    lua_pushstring(L, norm);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    if (entry_numbers(L, r, type, size) < 0) {
        lua_pop(L, 1);
        return -1;
    }
    if (link[0] != '\0') {
        lua_pushstring(L, link);
        lua_setfield(L, -2, "linkname");
    }
    merge_globals(L, tidx, gidx);
    lua_pushvalue(L, tidx);
    lua_setfield(L, -2, "xattrs");
    start_content(r, type, size);
    return 0;
}

static void reset_ext(Reader *r)
{
    r->x.has_path = r->x.has_link = r->x.has_size = 0;
    r->x.has_uid = r->x.has_gid = r->x.has_mtime = 0;
    r->x.pax_bytes = 0;
    r->x.link[0] = '\0';
    r->name[0] = '\0';
}

/* The name to put in messages about the header in r->hdr, before it is
 * checked: the long name, else the name field up to a NUL. */
static void guess_name(Reader *r)
{
    const char *src = r->x.has_path ? r->x.path : (const char *)r->hdr;
    size_t n = r->x.has_path ? strlen(src) : strnlen(src, 100);
    memcpy(r->name, src, n);
    r->name[n] = '\0';
}

/* [-0, +1, m] Reads headers up to the next entry and pushes it; 1, or 0
 * at the end of the archive (nothing pushed), or -1 on failure. */
static int read_entry(lua_State *L, Reader *r, int tidx, int gidx)
{
    for (;;) {
        int rc = read_header(r);
        if (rc <= 0) {
            return rc;
        }
        char t = (char)r->hdr[H_TYPE];
        int64_t size;
        guess_name(r);
        if (header_num(r, H_SIZE, "size", 0, SIZE_LIMIT, &size) < 0) {
            return -1;
        }
        if (t == 'x' || t == 'g' || t == 'L' || t == 'K') {
            if (read_ext(L, r, t, size, tidx, gidx) < 0) {
                return -1;
            }
            r->name[0] = '\0';
            continue;
        }
        const char *type = type_name(t);
        if (type == NULL) {
            return set_err(r, ENOTSUP, "unsupported entry type '%c' (0x%02x)",
                           t > 0x20 && t < 0x7f ? t : '?', (unsigned char)t);
        }
        return push_entry(L, r, type, size, tidx, gidx) < 0 ? -1 : 1;
    }
}

static Reader *check_reader(lua_State *L)
{
    Reader *r = luaL_checkudata(L, 1, SH_TAR_READER_MT);
    if (r->fd < 0) {
        luaL_error(L, "attempt to use a closed Reader");
    }
    return r;
}

/* open(path | fd) -> Reader | nil, msg, code
 * An integer fd is duplicated (the caller keeps and closes its own); the
 * Reader reads ahead, up to 64 KiB past what it has returned. */
static int tar_open(lua_State *L)
{
    const char *path = NULL;
    lua_Integer fd = -1;

    if (lua_type(L, 1) == LUA_TNUMBER) {
        fd = luaL_checkinteger(L, 1);
        luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "bad fd");
    } else {
        path = luaL_checkstring(L, 1);
    }
    Reader *r = lua_newuserdatauv(L, sizeof *r, 1);
    r->fd = -1;
    luaL_setmetatable(L, SH_TAR_READER_MT);
    lua_newtable(L); /* the global ('g') xattrs */
    lua_setiuservalue(L, -2, 1);
    memset(&r->g, 0, sizeof r->g);
    reset_ext(r);
    r->state = ST_HEADER;
    r->content = 0;
    r->remain = r->pad = 0;
    r->offset = r->at = 0;
    r->in_off = r->in_len = 0;
    r->fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
                 : fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    if (r->fd < 0) {
        return sh_fail(L, path ? path : "dup", errno);
    }
    return 1;
}

/* Reader:next() -> entry | false (end of archive) | nil, msg, code
 * entry: {name, type, mode, uid, gid, size, mtime, linkname (link,
 * hardlink), devmajor, devminor (char, block), xattrs = {name = value}}.
 * Skips whatever is left of the previous entry's content. */
static int tar_next(lua_State *L)
{
    Reader *r = check_reader(L);

    if (r->state == ST_FAILED) {
        return sh_fail(L, r->err, r->errnum);
    }
    if (r->state == ST_END) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (skip_rest(r) < 0) {
        return sh_fail(L, r->err, r->errnum);
    }
    reset_ext(r);
    lua_settop(L, 1);
    lua_newtable(L);            /* 2: the entry's xattrs */
    lua_getiuservalue(L, 1, 1); /* 3: the global xattrs */
    int rc = read_entry(L, r, 2, 3);
    if (rc < 0) {
        return sh_fail(L, r->err, r->errnum);
    }
    if (rc == 0) {
        r->state = ST_END;
        lua_pushboolean(L, 0);
    }
    return 1;
}

/* Reader:skip() -> true | nil, msg, code: drops the current entry's
 * content (next() does so by itself). */
static int tar_skip(lua_State *L)
{
    Reader *r = check_reader(L);

    if (r->state == ST_FAILED) {
        return sh_fail(L, r->err, r->errnum);
    }
    if (r->state == ST_ENTRY && skip_rest(r) < 0) {
        return sh_fail(L, r->err, r->errnum);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Copies the current entry's content to fd; zero chunks become holes.
 * 0, -1 (stream failure, in r->err), or an errno of fd. */
static int copy_out(Reader *r, int fd)
{
    int64_t total = r->remain;
    int hole = 0;

    while (r->remain > 0) {
        size_t n = r->remain < CHUNK ? (size_t)r->remain : CHUNK;
        if (read_exact(r, r->buf, n) < 0) {
            return -1;
        }
        r->remain -= (int64_t)n;
        hole = n == CHUNK && is_zero(r->buf, n);
        if (hole && lseek(fd, (off_t)n, SEEK_CUR) < 0) {
            return errno;
        }
        if (!hole && sh_write_all(fd, r->buf, n) < 0) {
            return errno;
        }
    }
    if (hole && ftruncate(fd, (off_t)total) < 0) {
        return errno;
    }
    return 0;
}

/* Reader:extract(dest [, mode]) -> true | nil, msg, code
 * Writes the current file entry's content to a new file dest (mode,
 * default 0600, less the umask), streamed; dest is removed on failure.
 * Raises unless the current entry is a file whose content is unread. */
static int tar_extract(lua_State *L)
{
    Reader *r = check_reader(L);
    const char *dest = luaL_checkstring(L, 2);
    lua_Integer mode = luaL_optinteger(L, 3, 0600);

    luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "mode out of range");
    if (!r->content) {
        return luaL_error(L, "no file content to extract (extract once, "
                             "after next() returned a file)");
    }
    /* Why: O_EXCL|O_NOFOLLOW: never write through a planted symlink or
     * into a file someone else made. */
    int fd = open(
        dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
        (mode_t)mode);
    if (fd < 0) {
        return sh_fail(L, dest, errno);
    }
    r->content = 0;
    int err = copy_out(r, fd);
    if (close(fd) < 0 && err == 0) {
        err = errno;
    }
    if (err != 0) {
        unlink(dest);
    }
    if (err < 0) {
        return sh_fail(L, r->err, r->errnum);
    }
    if (err > 0) {
        return sh_fail(L, dest, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Reader:close(): idempotent */
static int tar_close(lua_State *L)
{
    Reader *r = luaL_checkudata(L, 1, SH_TAR_READER_MT);
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
    return 0;
}

static const luaL_Reg tar_funcs[] = {{"open", tar_open}, {NULL, NULL}};

static const luaL_Reg reader_methods[] = {{"next", tar_next},
                                          {"skip", tar_skip},
                                          {"extract", tar_extract},
                                          {"close", tar_close},
                                          {NULL, NULL}};

static const luaL_Reg reader_meta[] = {{"__gc", tar_close},
                                       {"__close", tar_close},
                                       {"__index", NULL},
                                       {NULL, NULL}};

static void create_meta(lua_State *L)
{
    luaL_newmetatable(L, SH_TAR_READER_MT);
    luaL_setfuncs(L, reader_meta, 0);
    luaL_newlib(L, reader_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_shannot_core_tar(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, tar_funcs);
    return 1;
}
