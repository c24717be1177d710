/* swapper DIR N DONE SECONDS: an attacker for the race specs.  In DIR, fI
 * is a file and lI a symlink (I = 1..N).  It waits until shannot has given
 * the first file the mode DONE (octal), then for up to SECONDS swaps fI
 * and lI with renameat2(RENAME_EXCHANGE), hammering the pairs shannot is
 * about to reach: operations come in path order, and a pair is done once
 * its file has mode DONE.  Prints how many swaps it made when SECONDS are
 * over or SIGTERM comes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXN 4096

static char names[MAXN][16];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The mode of pair NAME's regular file (at fNAME or, swapped, lNAME). */
static int file_mode(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/f%s", dir, name);
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        return st.st_mode & 0777;
    }
    snprintf(path, sizeof path, "%s/l%s", dir, name);
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        return st.st_mode & 0777;
    }
    return -1;
}

static long swaps;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void swap(const char *dir, const char *name)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/f%s", dir, name);
    snprintf(b, sizeof b, "%s/l%s", dir, name);
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) {
        swaps++;
    }
}

int main(int argc, char **argv)
{
    if (argc != 5 || atoi(argv[2]) < 1 || atoi(argv[2]) > MAXN) {
        fprintf(stderr, "usage: swapper DIR N(1..%d) DONE(octal mode) SECONDS\n", MAXN);
        return 2;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]), done = (int)strtol(argv[3], NULL, 8);
    double end = now() + atof(argv[4]);
    signal(SIGTERM, on_term);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%d", i + 1);
    }
    qsort(names, (size_t)n, sizeof names[0], by_name);
    int next = 0;
    while (!stop && now() < end && file_mode(dir, names[0]) != done) {
        usleep(100);
    }
    while (!stop && now() < end) {
        while (next < n && file_mode(dir, names[next]) == done) {
            next++;
        }
        for (int k = 0; k < 8; k++) {
            for (int j = next; j < next + 1 && j < n; j++) {
                swap(dir, names[j]);
            }
        }
        if (next >= n) {
            next = 0; /* all done once: keep going from the start */
        }
    }
    printf("%ld swaps\n", swaps);
    return 0;
}
