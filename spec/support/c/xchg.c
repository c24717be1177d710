/* xchg A B SECONDS [AFTER]: swaps the names A and B with
 * renameat2(RENAME_EXCHANGE) as fast as it can, for SECONDS or until
 * SIGTERM (once the path AFTER exists, if given: say, a checkpoint that
 * shows the drift check is over); prints how many swaps it made.  An
 * attacker for the race specs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: xchg A B SECONDS [AFTER]\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    time_t end = time(NULL) + atoi(argv[3]);
    struct stat st;
    while (argc == 5 && !stop && time(NULL) < end && stat(argv[4], &st) < 0) {
        usleep(200);
    }
    long swaps = 0;
    while (!stop && time(NULL) < end) {
        if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) == 0) {
            swaps++;
        }
    }
    printf("%ld swaps\n", swaps);
    return 0;
}
