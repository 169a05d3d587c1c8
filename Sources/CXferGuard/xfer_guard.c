#include "xfer_guard.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
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

static void on_fault(int sig) {
    if (!has_subject) {
        /* Not inside libhdf5: let the crash be a crash. */
        signal(sig, SIG_DFL);
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
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}
