// The command-line program's guards: the crash guard for damaged files and Ctrl-C handling,
// both implemented in C (CXferGuard).

import CXferGuard

/// Installs the crash guard for damaged files (see CXferGuard). For command-line programs.
package func installDamagedFileGuard() {
    xfer_guard_install()
}

/// Takes Ctrl-C on a thread of its own (see CXferGuard). For command-line programs, first thing
/// in `main`, before any other thread starts.
package func installInterruptHandler() {
    xfer_interrupt_install()
}

/// From now on the first Ctrl-C only sets `interruptRequested()`; a second one exits.
package func armInterrupt() {
    xfer_interrupt_arm()
}

/// Whether Ctrl-C was pressed since `armInterrupt()`.
package func interruptRequested() -> Bool {
    xfer_interrupt_count() > 0
}
