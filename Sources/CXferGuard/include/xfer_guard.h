// A last line of defence for damaged files: libhdf5 1.10 can crash (not just fail)
// on some corrupted structures, e.g. a damaged global heap behind a variable-length
// string. While libhdf5 reads a file, that file's name is recorded here; if the
// process then receives SIGSEGV/SIGBUS, the handler prints xfer's one-line error
// for that file and exits with code 3 instead of dumping a crash report.
// Outside libhdf5 calls the subject is empty and a crash is left to the default
// handler, so xfer's own bugs still show as crashes.
#ifndef XFER_GUARD_H
#define XFER_GUARD_H

/// Installs the SIGSEGV/SIGBUS handler (on its own stack). Called once by the CLI.
void xfer_guard_install(void);

/// Names the file libhdf5 is about to read (NULL or "" when it is done).
void xfer_guard_set_subject(const char *path);

#endif
