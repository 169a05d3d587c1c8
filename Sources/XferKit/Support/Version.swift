// The one place xfer's version is written: `xfer --version` prints it.

/// xfer's version (semantic versioning).
package let xferVersion = "0.1.0"
