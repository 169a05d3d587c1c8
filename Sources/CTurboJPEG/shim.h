// libjpeg-turbo's TurboJPEG API (Debian: libturbojpeg0-dev, pkg-config libturbojpeg).
// Only Sources/XferKit/Data/JPEGDecoder.swift imports this module.
#ifndef XFER_CTURBOJPEG_SHIM_H
#define XFER_CTURBOJPEG_SHIM_H
#include <turbojpeg.h>
#endif
