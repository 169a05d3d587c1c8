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

static volatile sig_atomic_t interrupts = 0;
static volatile sig_atomic_t armed = 0;

static void *wait_for_interrupts(void *arg) {
    sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) continue;
        if (!armed || interrupts >= 1) {
            if (armed) say("\nxfer: interrupted twice: quitting without saving\n");
            _exit(130);
        }
        interrupts = 1;
        say("\nxfer: interrupted: finishing the current batch and saving the weights (Ctrl-C again to quit now)\n");
    }
    return NULL;
}

void xfer_interrupt_install(void) {
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
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
