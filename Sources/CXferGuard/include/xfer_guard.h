// Defences for damaged files. libhdf5 1.10 can crash, abort or hang (not just fail) on
// corrupted structures, e.g. a damaged global heap behind a variable-length string.
// First line: `xfer_hdf5_probe` walks an untrusted file in a child process (hdf5_probe.c).
// Last line: while libhdf5 reads a file in xfer's own process, that file's name is recorded
// here; if the process then receives SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGABRT, the handler prints
// xfer's one-line error for that file and exits with code 3 instead of dumping a crash report.
// Outside libhdf5 calls the subject is empty and a crash is left to the default
// handler, so xfer's own bugs still show as crashes.
#ifndef XFER_GUARD_H
#define XFER_GUARD_H

/// Installs the fault handler (on its own stack). Called once by the CLI.
void xfer_guard_install(void);

/// Names the file libhdf5 is about to read (NULL or "" when it is done).
void xfer_guard_set_subject(const char *path);

#include <stddef.h>

enum {
    XFER_PROBE_OK = 0,          /* libhdf5 read the whole structure cleanly */
    XFER_PROBE_REFUSED = 1,     /* message: "<object>: <what>", or "!not-hdf5", or "!open: <why>" */
    XFER_PROBE_CRASHED = 2,     /* message: the signal number, or "exit N" */
    XFER_PROBE_TIMEOUT = 3,     /* libhdf5 did not finish within the time limit */
    XFER_PROBE_UNAVAILABLE = 4  /* no child could be made (fork, pipe or stat failed) */
};

/// Opens the HDF5 file at `path` (or the in-memory `image` of `image_size` bytes, named `path`)
/// in a forked child, with `memory_bytes` more address space than the caller has and
/// `timeout_seconds` of wall time, and reads all of its structure (see hdf5_probe.c).
/// Returns one of XFER_PROBE_*; `message` receives the details.
int xfer_hdf5_probe(const char *path, const void *image, size_t image_size, double timeout_seconds,
                    size_t memory_bytes, char *message, size_t message_size);

#endif

#ifndef XFER_INTERRUPT_H
#define XFER_INTERRUPT_H
/// Ctrl-C, SIGTERM and SIGHUP. Called first thing in main, before any other thread exists:
/// blocks those signals in the calling thread (so every thread created later inherits the
/// block and is never interrupted asynchronously, in the middle of a library call) and starts
/// one thread that waits for them with sigwait. Ctrl-C then exits with 130, unless
/// `xfer_interrupt_arm` was called: then the first Ctrl-C is only counted (the training loop
/// polls the count between batches and saves) and a second exits at once. SIGTERM and SIGHUP
/// always exit at once, with 128 + the signal number (143, 129). Every "exit at once" first
/// removes the temporary files registered below. SIGXFSZ is ignored (a write past
/// `ulimit -f` fails with EFBIG instead of killing the process).
void xfer_interrupt_install(void);
void xfer_interrupt_arm(void);
int xfer_interrupt_count(void);

/// Registers a temporary file about to be created (at most 16 at once; the path is copied).
/// Returns its slot, or -1 if the table is full or the path too long. Either way it returns
/// holding the creation lock: create the file, then call `xfer_interrupt_temp_created`. If the
/// process is exiting, it never returns (the exit path holds the lock).
int xfer_interrupt_track_temp(const char *path);
/// Releases the creation lock taken by `xfer_interrupt_track_temp`.
void xfer_interrupt_temp_created(void);
/// Forgets a slot once its file is renamed into place or removed.
void xfer_interrupt_untrack_temp(int slot);
#endif
