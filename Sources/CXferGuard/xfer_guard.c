#include "xfer_guard.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

static char subject[4096];
static volatile sig_atomic_t has_subject = 0;

void xfer_guard_set_subject(const char *path) {
    if (path == NULL || path[0] == '\0') { has_subject = 0; return; }
    strncpy(subject, path, sizeof subject - 1);
    subject[sizeof subject - 1] = '\0';
    has_subject = 1;
}

static void say(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w; n -= (size_t)w;
    }
}

/* The faults libhdf5 has been seen to raise on damaged files: invalid reads, glibc's heap
   checks (abort), division by zero in its size arithmetic. */
static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define FAULTS (sizeof fault_signals / sizeof fault_signals[0])
static struct sigaction previous[FAULTS];

static void on_fault(int sig) {
    if (!has_subject) {
        /* Not inside libhdf5: hand the crash to whoever handled it before (the Swift
           runtime's backtracer), so xfer's own bugs still show as crashes. */
        for (size_t i = 0; i < FAULTS; i++)
            if (fault_signals[i] == sig) sigaction(sig, &previous[i], NULL);
        raise(sig);
        return;
    }
    say("xfer: error: ");
    say(subject);
    say(": is damaged: libhdf5 could not read its structure\n");
    say("hint: the file is corrupt; copy or save it again\n");
    _exit(3);
}

void xfer_guard_install(void) {
    static char stack[64 * 1024];
    stack_t ss;
    ss.ss_sp = stack;
    ss.ss_size = sizeof stack;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < FAULTS; i++) sigaction(fault_signals[i], &sa, &previous[i]);
}

/* ---- Interrupts (SIGINT, SIGTERM, SIGHUP) and the temporary files being written ---- */

#define XFER_TEMP_SLOTS 16
#define XFER_TEMP_PATH 4096

static volatile sig_atomic_t interrupts = 0;
static volatile sig_atomic_t armed = 0;

/* The temporary files being written right now (set by writeAtomically, cleared after the
   rename), so that an "exit now" can remove them first. `temp_lock` guards the table and is
   held while a temporary file is created: the exit path takes it and never gives it back, so
   no file can be created between its unlink and its _exit. */
static pthread_mutex_t temp_lock = PTHREAD_MUTEX_INITIALIZER;
static char temp_paths[XFER_TEMP_SLOTS][XFER_TEMP_PATH];
static int temp_used[XFER_TEMP_SLOTS];

int xfer_interrupt_track_temp(const char *path) {
    pthread_mutex_lock(&temp_lock);
    if (path == NULL || strlen(path) >= XFER_TEMP_PATH) return -1;
    for (int i = 0; i < XFER_TEMP_SLOTS; i++) {
        if (temp_used[i]) continue;
        memcpy(temp_paths[i], path, strlen(path) + 1);
        temp_used[i] = 1;
        return i;
    }
    return -1;
}

void xfer_interrupt_temp_created(void) { pthread_mutex_unlock(&temp_lock); }

void xfer_interrupt_untrack_temp(int slot) {
    if (slot < 0 || slot >= XFER_TEMP_SLOTS) return;
    pthread_mutex_lock(&temp_lock);
    temp_used[slot] = 0;
    temp_paths[slot][0] = '\0';
    pthread_mutex_unlock(&temp_lock);
}

/* Removes the temporary files being written and exits. Runs on the signal thread (not in a
   signal handler), so taking the lock is allowed; it waits at most for one open() to finish. */
static void exit_now(int code) {
    pthread_mutex_lock(&temp_lock);
    for (int i = 0; i < XFER_TEMP_SLOTS; i++) {
        if (temp_used[i]) unlink(temp_paths[i]);
    }
    _exit(code);
}

static void *wait_for_interrupts(void *arg) {
    sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) continue;
        if (sig != SIGINT) exit_now(128 + sig);     /* SIGTERM, SIGHUP: stop at once, quietly */
        if (!armed || interrupts >= 1) {
            if (armed) say("\nxfer: interrupted twice: quitting without saving\n");
            exit_now(130);
        }
        interrupts = 1;
        say("\nxfer: interrupted: finishing the current batch and saving the weights (Ctrl-C again to quit now)\n");
    }
    return NULL;
}

void xfer_interrupt_install(void) {
    static sigset_t set;
    /* Writing past `ulimit -f` makes write() fail with EFBIG (reported as one error line, the
       temporary file removed) instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return;
    pthread_t thread;
    if (pthread_create(&thread, NULL, wait_for_interrupts, &set) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return;
    }
    pthread_detach(thread);
}

void xfer_interrupt_arm(void) { armed = 1; }

int xfer_interrupt_count(void) { return interrupts; }
