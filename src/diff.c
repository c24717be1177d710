/*
 * diff.c: line diffs for showing a person what a change does to a file.
 * Myers' O(ND) algorithm in linear space (the middle-snake divide and
 * conquer, run from an explicit stack), after trimming the common prefix
 * and suffix, then GNU diff's boundary shifting and `diff -u` output.
 * Lines are first numbered by content (a hash table: hash, then memcmp),
 * so the search compares integers.  The result is byte for byte what
 * `diff -u --minimal` prints after its two header lines.  Memory: about
 * 33 bytes a line beyond the texts.
 *
 * Lua: shannot.core.diff
 *   unified(a, b [, opts]) -> text, added, removed | nil, msg, code
 *     a, b: the old and new contents (any bytes; lines end at "\n").
 *     opts.context  lines of context around each change (default 3)
 *     opts.a_label, opts.b_label  for the "--- " / "+++ " lines ("a", "b")
 *     opts.max_cost  largest edit distance (lines added + removed) worth
 *       computing; past it: nil, "too many differences", "E2BIG"
 *     Equal inputs give "", 0, 0; the header lines come only with a hunk.
 *
 * All scratch memory lives in one userdata, so a Lua error (out of
 * memory in the output buffer, say) leaks nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shannot.h"

typedef int32_t lin; /* a line number or a diagonal */
#define LIN_MAX INT32_MAX
/* Line counts past this are refused, so diagonals never overflow a lin. */
#define MAX_LINES (INT32_MAX / 4)
/* Deeper than any split of a minimal search: each halves the cost. */
#define STACK_MAX 128

typedef struct {
    lin xoff, xlim, yoff, ylim;
} Box;

typedef struct {
    const char *s[2];   /* the texts */
    lin n[2];           /* their line counts */
    size_t *start[2];   /* line i is start[i] .. start[i + 1] */
    lin *eq[2];         /* equivalence class of each line */
    char *chg[2];       /* changed flags; [-1] and [n] are 0 */
    lin *fd, *bd;       /* the diagonals, valid from -n[1]-1 to n[0]+1 */
    void *scratch;      /* the hash table first, then fd and bd */
    lin prefix, suffix; /* common lines at either end */
    lin lo, hi[2];      /* where changes may be shifted (GNU's horizon) */
    int64_t added, removed;
} Diff;

/* Options and inputs, all read before any work starts. */
typedef struct {
    const char *s[2];
    size_t len[2];
    const char *label[2];
    size_t label_len[2];
    lua_Integer context;
    lua_Integer max_cost; /* -1: no limit */
} Args;

static lin count_lines(const char *s, size_t len)
{
    size_t n = 0;
    const char *end = s + len;
    for (const char *p = s; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return n > MAX_LINES ? -1 : (lin)n;
}

static void split_lines(const char *s, size_t len, lin n, size_t *start)
{
    size_t off = 0;
    for (lin i = 0; i < n; i++) {
        const char *nl = memchr(s + off, '\n', len - off);
        start[i] = off;
        off = nl ? (size_t)(nl - s) + 1 : len;
    }
    start[n] = len;
}

static uint32_t line_hash(uint64_t seed, const unsigned char *p, size_t len)
{
    uint64_t h = seed ^ len;
    uint64_t w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    for (; len > 0; p++, len--) {
        h = (h ^ *p) * 0x100000001b3u;
    }
    h ^= h >> 29;
    h *= 0xc4ceb9fe1a85ec53u;
    return (uint32_t)(h ^ (h >> 32));
}

/* Line `g` counting the lines of both texts, a's first. */
static const char *line_at(const Diff *d, lin g, size_t *len)
{
    int f = g >= d->n[0];
    lin i = f ? g - d->n[0] : g;
    *len = d->start[f][i + 1] - d->start[f][i];
    return d->s[f] + d->start[f][i];
}

/* Hash-table layout in the scratch memory, for `nbuckets` buckets. */
typedef struct {
    lin *bucket, *next, *rep;
    uint32_t *hash;
} Table;

static Table table_at(const Diff *d, size_t nbuckets)
{
    size_t lines = (size_t)d->n[0] + (size_t)d->n[1];
    Table t;
    t.bucket = d->scratch;
    t.next = t.bucket + nbuckets;
    t.rep = t.next + lines;
    t.hash = (uint32_t *)(t.rep + lines);
    return t;
}

/* Numbers every line by its content: equal lines, equal numbers. */
static void classify(Diff *d, size_t nbuckets)
{
    Table t = table_at(d, nbuckets);
    lin total = d->n[0] + d->n[1], classes = 0;
    /* Why: the texts come from a script; a seed it cannot know makes
     * lines crafted to collide (and so a quadratic run) harder. */
    uint64_t seed = (uint64_t)(sh_monotonic() * 1e9) ^ (uintptr_t)t.bucket;
    for (size_t k = 0; k < nbuckets; k++) {
        t.bucket[k] = -1;
    }
    for (lin g = 0; g < total; g++) {
        size_t len, rlen;
        const char *p = line_at(d, g, &len);
        uint32_t h = line_hash(seed, (const unsigned char *)p, len);
        lin *head = &t.bucket[h & (nbuckets - 1)], c;
        for (c = *head; c >= 0; c = t.next[c]) {
            const char *r = line_at(d, t.rep[c], &rlen);
            if (t.hash[c] == h && rlen == len && memcmp(r, p, len) == 0) {
                break;
            }
        }
        if (c < 0) {
            c = classes++;
            t.next[c] = *head;
            t.rep[c] = g;
            t.hash[c] = h;
            *head = c;
        }
        d->eq[g >= d->n[0]][g >= d->n[0] ? g - d->n[0] : g] = c;
    }
}

/* The common prefix and suffix, and the range GNU diff would let
 * shift_runs move changes in: `context` lines into each of them. */
static void trim_ends(Diff *d, lin context)
{
    const lin *x = d->eq[0], *y = d->eq[1];
    lin n = d->n[0], m = d->n[1], small = n < m ? n : m;
    lin p = 0, s = 0;
    while (p < small && x[p] == y[p]) {
        p++;
    }
    /* GNU keeps `context` lines of the prefix in play, and lets the
     * suffix reach back to them (but Myers' search starts after p). */
    d->lo = p > context ? p - context : 0;
    while (s < small - d->lo && x[n - 1 - s] == y[m - 1 - s]) {
        s++;
    }
    d->prefix = p;
    d->suffix = s < small - p ? s : small - p;
    d->hi[0] = s > context ? n - s + context : n;
    d->hi[1] = s > context ? m - s + context : m;
}

/* Marks lines [from, to) of text f as changed. */
static void mark(Diff *d, int f, lin from, lin to)
{
    for (lin i = from; i < to; i++) {
        d->chg[f][i] = 1;
    }
    if (f) {
        d->added += to - from;
    } else {
        d->removed += to - from;
    }
}

/* One round of the forward search; 1 if it met the backward one. */
static int forward(Diff *d, const Box *b, lin *r, lin *mid, int odd)
{
    lin *fd = d->fd;
    const lin *xv = d->eq[0], *yv = d->eq[1];
    lin dmin = b->xoff - b->ylim, dmax = b->xlim - b->yoff;
    if (r[0] > dmin) {
        fd[--r[0] - 1] = -1;
    } else {
        ++r[0];
    }
    if (r[1] < dmax) {
        fd[++r[1] + 1] = -1;
    } else {
        --r[1];
    }
    for (lin k = r[1]; k >= r[0]; k -= 2) {
        lin x = fd[k - 1] >= fd[k + 1] ? fd[k - 1] + 1 : fd[k + 1];
        lin y = x - k;
        while (x < b->xlim && y < b->ylim && xv[x] == yv[y]) {
            x++, y++;
        }
        fd[k] = x;
        if (odd && r[2] <= k && k <= r[3] && d->bd[k] <= x) {
            mid[0] = x, mid[1] = y;
            return 1;
        }
    }
    return 0;
}

/* The same, backward from the bottom-right corner. */
static int backward(Diff *d, const Box *b, lin *r, lin *mid, int odd)
{
    lin *bd = d->bd;
    const lin *xv = d->eq[0], *yv = d->eq[1];
    lin dmin = b->xoff - b->ylim, dmax = b->xlim - b->yoff;
    if (r[2] > dmin) {
        bd[--r[2] - 1] = LIN_MAX;
    } else {
        ++r[2];
    }
    if (r[3] < dmax) {
        bd[++r[3] + 1] = LIN_MAX;
    } else {
        --r[3];
    }
    for (lin k = r[3]; k >= r[2]; k -= 2) {
        lin x = bd[k - 1] < bd[k + 1] ? bd[k - 1] : bd[k + 1] - 1;
        lin y = x - k;
        while (x > b->xoff && y > b->yoff && xv[x - 1] == yv[y - 1]) {
            x--, y--;
        }
        bd[k] = x;
        if (!odd && r[0] <= k && k <= r[1] && x <= d->fd[k]) {
            mid[0] = x, mid[1] = y;
            return 1;
        }
    }
    return 0;
}

/* Myers' middle snake of a box whose first and last lines differ: a
 * point on some minimal path, in mid.  0, or -1 once the edit distance
 * is known to pass max_cost (-1: no limit). */
static int middle_snake(Diff *d, const Box *b, lin *mid, int64_t max_cost)
{
    lin fmid = b->xoff - b->yoff, bmid = b->xlim - b->ylim;
    lin r[4] = {fmid, fmid, bmid, bmid}; /* fmin, fmax, bmin, bmax */
    int odd = (fmid - bmid) & 1;
    if (max_cost < 0) {
        max_cost = INT64_MAX;
    }
    d->fd[fmid] = b->xoff;
    d->bd[bmid] = b->xlim;
    /* Round c finds the paths of cost 2c - 1 (forward), then 2c. */
    for (int64_t c = 1; 2 * c - 1 <= max_cost; c++) {
        if (forward(d, b, r, mid, odd)) {
            return 0;
        }
        if (2 * c > max_cost) {
            break;
        }
        if (backward(d, b, r, mid, odd)) {
            return 0;
        }
    }
    return -1;
}

/* Strips the equal lines at both ends of b; 1 if something is left to
 * search, 0 if the rest was a plain insertion or deletion (now marked). */
static int shrink(Diff *d, Box *b)
{
    const lin *xv = d->eq[0], *yv = d->eq[1];
    while (b->xoff < b->xlim && b->yoff < b->ylim &&
           xv[b->xoff] == yv[b->yoff]) {
        b->xoff++, b->yoff++;
    }
    while (b->xoff < b->xlim && b->yoff < b->ylim &&
           xv[b->xlim - 1] == yv[b->ylim - 1]) {
        b->xlim--, b->ylim--;
    }
    if (b->xoff == b->xlim || b->yoff == b->ylim) {
        mark(d, 0, b->xoff, b->xlim);
        mark(d, 1, b->yoff, b->ylim);
        return 0;
    }
    return 1;
}

/* Marks a minimal set of changed lines: divide and conquer on middle
 * snakes, from a stack (the halves' costs halve, so it stays shallow).
 * 0, or -1 if the edit distance passes max_cost. */
static int compare(Diff *d, int64_t max_cost)
{
    Box stack[STACK_MAX];
    int top = 0;
    lin mid[2];
    stack[top++] =
        (Box){d->prefix, d->n[0] - d->suffix, d->prefix, d->n[1] - d->suffix};
    if (!shrink(d, &stack[0])) {
        return max_cost >= 0 && d->added + d->removed > max_cost ? -1 : 0;
    }
    while (top > 0) {
        Box b = stack[--top];
        if (!shrink(d, &b)) {
            continue;
        }
        if (top + 2 > STACK_MAX) { /* cannot happen; stay correct anyway */
            mark(d, 0, b.xoff, b.xlim);
            mark(d, 1, b.yoff, b.ylim);
            continue;
        }
        if (middle_snake(d, &b, mid, max_cost) < 0) {
            return -1;
        }
        max_cost = -1; /* the first search bounds the whole cost */
        stack[top++] = (Box){mid[0], b.xlim, mid[1], b.ylim};
        stack[top++] = (Box){b.xoff, mid[0], b.yoff, mid[1]};
    }
    return 0;
}

/* A run of changed lines [start, i) in one text; j is the matching
 * position in the other text, kept in step. */
typedef struct {
    char *chg;         /* this text's changed flags */
    const char *other; /* the other text's */
    const lin *eq;
    lin lo, end; /* how far runs may move */
    lin start, i, j;
} Run;

/* GNU diff's shift_boundaries for one run: slide it up, then down, over
 * equal lines, merging with the runs it meets; then settle it where its
 * end meets a change in the other text if it can, else as low as it
 * goes. */
static void slide_run(Run *r)
{
    char *chg = r->chg;
    const char *other = r->other;
    const lin *eq = r->eq;
    lin s = r->start, i = r->i, j = r->j, len, corr;
    do {
        len = i - s;
        while (s > r->lo && eq[s - 1] == eq[i - 1]) {
            chg[--s] = 1, chg[--i] = 0;
            while (chg[s - 1]) {
                s--;
            }
            while (other[--j]) {
            }
        }
        corr = other[j - 1] ? i : r->end;
        while (i != r->end && eq[s] == eq[i]) {
            chg[s++] = 0, chg[i++] = 1;
            while (chg[i]) {
                i++;
            }
            while (other[++j]) {
                corr = i;
            }
        }
    } while (len != i - s); /* merged with another run: again */
    while (corr < i) {
        chg[--s] = 1, chg[--i] = 0;
        while (other[--j]) {
        }
    }
    r->i = i, r->j = j;
}

/* Slides every run of changes in text f (see slide_run), so that the
 * hunks come out as GNU diff's do. */
static void shift_runs(Diff *d, int f)
{
    Run r = {d->chg[f], d->chg[!f], d->eq[f], d->lo, d->hi[f], 0, d->lo, d->lo};
    for (;;) {
        for (; r.i < r.end && !r.chg[r.i]; r.i++) {
            while (r.other[r.j++]) {
            }
        }
        if (r.i == r.end) {
            return;
        }
        r.start = r.i;
        while (r.chg[++r.i]) {
        }
        while (r.other[r.j]) {
            r.j++;
        }
        slide_run(&r);
    }
}

/* A run of changes: at line x of a and y of b, del and ins lines. */
typedef struct {
    lin x, y, del, ins;
} Change;

/* The first change at or after (x, y), stepping both in lockstep. */
static int next_change(const Diff *d, lin x, lin y, Change *c)
{
    const char *ca = d->chg[0], *cb = d->chg[1];
    for (; x < d->n[0] || y < d->n[1]; x++, y++) {
        if (ca[x] || cb[y]) {
            c->x = x, c->y = y;
            while (ca[x]) {
                x++;
            }
            while (cb[y]) {
                y++;
            }
            c->del = x - c->x, c->ins = y - c->y;
            return 1;
        }
    }
    return 0;
}

/* [-?, +?, m] One line of text f after its mark. */
static void add_line(luaL_Buffer *B, const Diff *d, int f, lin i, char tag)
{
    size_t from = d->start[f][i], len = d->start[f][i + 1] - from;
    luaL_addchar(B, tag);
    luaL_addlstring(B, d->s[f] + from, len);
    if (len == 0 || d->s[f][from + len - 1] != '\n') {
        luaL_addstring(B, "\n\\ No newline at end of file\n");
    }
}

/* [-?, +?, m] "-l,s" as GNU prints it: no ",1", and an empty range
 * names the line before it ("-0,0" for an empty file). */
static void add_range(luaL_Buffer *B, char tag, lin first, lin count)
{
    char buf[64];
    if (count == 1) {
        snprintf(buf, sizeof buf, "%c%ld", tag, (long)first + 1);
    } else {
        snprintf(buf, sizeof buf, "%c%ld,%ld", tag, (long)first + (count > 0),
                 (long)count);
    }
    luaL_addstring(B, buf);
}

/* [-?, +?, m] The hunk from change c to change last, with context. */
static void add_hunk(luaL_Buffer *B, const Diff *d, const Change *c,
                     const Change *last, lin context)
{
    lin e0 = last->x + last->del, e1 = last->y + last->ins;
    lin pre = c->x < context ? c->x : context;
    lin post = d->n[0] - e0 < context ? d->n[0] - e0 : context;
    lin x = c->x - pre, y = c->y - pre;
    e0 += post, e1 += post;
    luaL_addstring(B, "@@ ");
    add_range(B, '-', x, e0 - x);
    luaL_addchar(B, ' ');
    add_range(B, '+', y, e1 - y);
    luaL_addstring(B, " @@\n");
    while (x < e0 || y < e1) {
        if (!d->chg[0][x] && !d->chg[1][y]) {
            add_line(B, d, 0, x++, ' ');
            y++;
            continue;
        }
        for (; d->chg[0][x]; x++) {
            add_line(B, d, 0, x, '-');
        }
        for (; d->chg[1][y]; y++) {
            add_line(B, d, 1, y, '+');
        }
    }
}

/* [-0, +1, m] The unified diff of d: headers, then every hunk. */
static void push_unified(lua_State *L, const Diff *d, const Args *a,
                         lin context)
{
    luaL_Buffer B;
    Change c, last, next;
    int more = next_change(d, d->lo, d->lo, &c);
    luaL_buffinit(L, &B);
    for (int f = 0; more && f < 2; f++) {
        luaL_addstring(&B, f ? "+++ " : "--- ");
        luaL_addlstring(&B, a->label[f], a->label_len[f]);
        luaL_addchar(&B, '\n');
    }
    while (more) {
        last = c;
        /* Changes closer than 2 * context + 1 lines share a hunk. */
        while ((more = next_change(d, last.x + last.del, last.y + last.ins,
                                   &next)) &&
               next.x - (last.x + last.del) <= 2 * (int64_t)context) {
            last = next;
        }
        add_hunk(&B, d, &c, &last, context);
        c = next;
    }
    luaL_pushresult(&B);
}

/* Field `key` of the options (at 3): a non-negative integer or def. */
static lua_Integer opt_count(lua_State *L, const char *key, lua_Integer def)
{
    int ok = 1;
    lua_Integer v = def;
    if (lua_isnil(L, 3)) {
        return def;
    }
    if (lua_getfield(L, 3, key) != LUA_TNIL) {
        v = lua_tointegerx(L, -1, &ok);
        ok = ok && lua_type(L, -1) == LUA_TNUMBER && v >= 0;
    }
    lua_pop(L, 1);
    if (!ok) {
        luaL_argerror(L, 3,
                      lua_pushfstring(L,
                                      "'%s' must be a non-negative "
                                      "integer",
                                      key));
    }
    return v;
}

/* [-0, +1, e] Field `key` of the options (at 3) as a string, or def;
 * the string stays on the stack so it outlives any change to opts. */
static const char *opt_label(lua_State *L, const char *key, const char *def,
                             size_t *len)
{
    int t = LUA_TNIL;
    if (!lua_isnil(L, 3) && (t = lua_getfield(L, 3, key)) == LUA_TNIL) {
        lua_pop(L, 1);
    }
    if (t == LUA_TNIL) {
        lua_pushstring(L, def);
    } else if (t != LUA_TSTRING) {
        luaL_argerror(L, 3, lua_pushfstring(L, "'%s' must be a string", key));
    }
    return lua_tolstring(L, -1, len);
}

/* [-0, +2, e] Checks and reads every argument; raises on misuse. */
static void read_args(lua_State *L, Args *a)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    luaL_checktype(L, 2, LUA_TSTRING);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
    }
    lua_settop(L, 3);
    a->s[0] = lua_tolstring(L, 1, &a->len[0]);
    a->s[1] = lua_tolstring(L, 2, &a->len[1]);
    a->context = opt_count(L, "context", 3);
    a->max_cost = opt_count(L, "max_cost", -1);
    a->label[0] = opt_label(L, "a_label", "a", &a->label_len[0]);
    a->label[1] = opt_label(L, "b_label", "b", &a->label_len[1]);
}

/* [-0, +1, m] Sets up d for texts with n0 and n1 lines, all its arrays
 * in one userdata left on the stack. */
static void new_diff(lua_State *L, Diff *d, const Args *a, lin n0, lin n1)
{
    size_t lines = (size_t)n0 + (size_t)n1, nbuckets = 16;
    while (nbuckets < lines) {
        nbuckets *= 2;
    }
    size_t table = nbuckets + 3 * lines, diags = 2 * (lines + 3);
    size_t scratch = table > diags ? table : diags;
    size_t size = (lines + 2) * sizeof(size_t) +
                  (lines + scratch) * sizeof(lin) + lines + 4;
    char *p = lua_newuserdatauv(L, size, 0);
    for (int f = 0; f < 2; f++) {
        d->s[f] = a->s[f];
        d->n[f] = f ? n1 : n0;
        d->start[f] = (size_t *)p;
        p += ((size_t)d->n[f] + 1) * sizeof(size_t);
        split_lines(a->s[f], a->len[f], d->n[f], d->start[f]);
    }
    d->eq[0] = (lin *)p;
    d->eq[1] = d->eq[0] + n0;
    d->scratch = d->eq[1] + n1;
    d->fd = (lin *)d->scratch + n1 + 1;
    d->bd = d->fd + lines + 3;
    d->chg[0] = (char *)((lin *)d->scratch + scratch) + 1;
    d->chg[1] = d->chg[0] + n0 + 2;
    memset(d->chg[0] - 1, 0, lines + 4);
    d->added = d->removed = 0;
    classify(d, nbuckets);
}

static int too_big(lua_State *L, const char *what)
{
    lua_pushnil(L);
    lua_pushstring(L, what);
    lua_pushliteral(L, "E2BIG");
    return 3;
}

/* unified(a, b [, opts]) -> text, added, removed | nil, msg, code */
static int diff_unified(lua_State *L)
{
    Args a;
    Diff d;
    read_args(L, &a);
    if (a.len[0] == a.len[1] && memcmp(a.s[0], a.s[1], a.len[0]) == 0) {
        lua_pushliteral(L, "");
        lua_pushinteger(L, 0);
        lua_pushinteger(L, 0);
        return 3;
    }
    lin n0 = count_lines(a.s[0], a.len[0]), n1 = count_lines(a.s[1], a.len[1]);
    if (n0 < 0 || n1 < 0) {
        return too_big(L, "too many lines");
    }
    lin most = n0 > n1 ? n0 : n1;
    lin context = a.context > most ? most + 1 : (lin)a.context;
    new_diff(L, &d, &a, n0, n1);
    trim_ends(&d, context);
    if (compare(&d, a.max_cost) < 0) {
        return too_big(L, "too many differences");
    }
    shift_runs(&d, 0);
    shift_runs(&d, 1);
    push_unified(L, &d, &a, context);
    lua_pushinteger(L, d.added);
    lua_pushinteger(L, d.removed);
    return 3;
}

static const luaL_Reg diff_funcs[] = {{"unified", diff_unified}, {NULL, NULL}};

int luaopen_shannot_core_diff(lua_State *L)
{
    luaL_newlib(L, diff_funcs);
    return 1;
}
