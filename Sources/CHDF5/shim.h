// The few libhdf5 values Swift cannot import: they are macros that call
// H5open() and read a global, so they are wrapped in static inline getters.
#ifndef XFER_CHDF5_SHIM_H
#define XFER_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t xfer_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t xfer_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t xfer_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t xfer_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t xfer_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t xfer_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t xfer_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t xfer_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t xfer_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t xfer_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t xfer_H5P_GROUP_CREATE(void) { return H5P_GROUP_CREATE; }
static inline hid_t xfer_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline size_t xfer_H5T_VARIABLE(void) { return H5T_VARIABLE; }
static inline hid_t xfer_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline unsigned xfer_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned xfer_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned xfer_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }

/// Switches off libhdf5's automatic printing of its error stack; failures
/// come back as negative return values that the Swift side turns into errors.
static inline void xfer_H5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
