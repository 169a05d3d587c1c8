// What xfer's engine calls of oneDNN (Debian: libdnnl-dev); Swift sees nothing else of oneDNN
// or OpenMP. Only Sources/XferKit/Engine/GEMM.swift, Engine/Winograd.swift and
// Engine/DirectConvolution.swift import it.
//
// xfer_sgemm is dnnl_sgemm (oneapi/dnnl/dnnl.h): row-major C = alpha·op(A)·op(B) + beta·C,
// returning dnnl_status_t (0 = success). It picks its JIT kernel from the CPU's instruction set
// at run time and runs on one thread: the calling thread's OpenMP team size is set to 1 first
// (omp_get_max_threads is a per-thread setting, so this touches no other thread).
//
// xfer_wino_*: one 3×3, stride-1, undilated convolution of a fixed shape through oneDNN's
// Winograd F(4×4, 3×3) kernel (onednn.c), NHWC activations and Keras's HWIO kernel in and out.
//
// xfer_dconv_*: the forward (inference) of one convolution of a fixed shape, any kernel size,
// stride, dilation and padding, dense (groups = 1) or depthwise (groups = channels, each with
// `multiplier` filters), through oneDNN's direct convolution primitive on NHWC activations as they
// are, with bias and an activation fused as post-ops. Threads and scratch as for xfer_wino_*.
#ifndef XFER_ONEDNN_H
#define XFER_ONEDNN_H

#include <stddef.h>
#include <stdint.h>

int xfer_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc);

/// One convolution shape with its oneDNN primitives. Calls name the engine's worker thread
/// making them (0 ≤ worker < XFER_WINO_MAX_WORKERS) and pass scratch of their own: each worker
/// has its own stream, so different workers may run calls at the same time, on the same handle
/// or others; a call runs on its calling thread alone. xfer_wino_set_kernel must not overlap
/// other calls of its handle.
typedef struct xfer_wino xfer_wino;

#define XFER_WINO_MAX_WORKERS 256

/// What the forward does after the convolution, fused into the kernel's output transform.
enum { XFER_WINO_BIAS = 1, XFER_WINO_RELU = 2 };

/// The shape: batch n, input h×w×c, o filters, output oh×ow, padding top/left/bottom/right.
/// `backward` also makes the backward primitives; `fuse` is 0 or XFER_WINO_BIAS and/or
/// XFER_WINO_RELU. Returns NULL when oneDNN has no Winograd kernel for it on this CPU (the
/// caller falls back); `why` (may be NULL) then gets a reason.
xfer_wino *xfer_wino_create(int backward, int fuse, int64_t n, int64_t h, int64_t w, int64_t c, int64_t o,
                            int64_t oh, int64_t ow, int64_t pad_top, int64_t pad_left,
                            int64_t pad_bottom, int64_t pad_right, char *why, int why_size);
void xfer_wino_destroy(xfer_wino *conv);

/// The kernel oneDNN chose, e.g. "jit_wino_4x3:avx512_core".
const char *xfer_wino_implementation(const xfer_wino *conv);

/// Takes the kernel (3, 3, c, o) as Keras stores it into the primitives' own layouts (a reorder,
/// made once per kernel version). Call it again whenever the kernel changes. 0 on success.
int xfer_wino_set_kernel(xfer_wino *conv, const float *hwio, int worker, void *scratch);

/// y (n, oh, ow, o) = conv(x (n, h, w, c)), + bias (o) and ReLU as the handle fuses them (`bias`
/// is read only with XFER_WINO_BIAS).
int xfer_wino_forward(xfer_wino *conv, const float *x, const float *bias, float *y, int worker, void *scratch);

/// dx (n, h, w, c) from dy (n, oh, ow, o). Needs `backward`.
int xfer_wino_backward_data(xfer_wino *conv, const float *dy, float *dx, int worker, void *scratch);

/// dkernel (3, 3, c, o) = Σ over the batch of x ⋆ dy, written (not added). Needs `backward`.
int xfer_wino_backward_weights(xfer_wino *conv, const float *x, const float *dy, float *dkernel,
                               int worker, void *scratch);

/// Bytes of scratch each call of `conv` needs (`scratch` below: 64-byte aligned, the caller's,
/// not touched after the call returns).
size_t xfer_wino_scratch_bytes(const xfer_wino *conv);

/// One direct convolution shape (forward only) with its oneDNN primitive.
typedef struct xfer_dconv xfer_dconv;

/// The activations oneDNN fuses after the bias (eltwise post-ops).
enum { XFER_ACT_NONE = 0, XFER_ACT_RELU, XFER_ACT_RELU6, XFER_ACT_SWISH, XFER_ACT_SIGMOID, XFER_ACT_TANH };

/// Batch n, input h×w×c, `o` output channels, kernel kh×kw, strides, dilations (1 = none),
/// output oh×ow, paddings, in `groups` groups (1: none), the kernel (kh, kw, c/groups, o) as Keras
/// stores it (output channel g·(o/groups) + k); a depthwise kernel (kh, kw, c, M), output channel
/// c·M + m, is the case groups = c.
/// `with_sum`: y += the convolution (y holds a residual on entry), before the activation.
/// NULL when oneDNN has no primitive for it (`why`, may be NULL, gets a reason).
xfer_dconv *xfer_dconv_create(int64_t groups, int with_bias, int with_sum, int activation, int64_t n, int64_t h, int64_t w,
                              int64_t c, int64_t o, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                              int64_t dh, int64_t dw, int64_t oh, int64_t ow, int64_t pad_top,
                              int64_t pad_left, int64_t pad_bottom, int64_t pad_right, char *why, int why_size);
void xfer_dconv_destroy(xfer_dconv *conv);

/// The implementation oneDNN chose, e.g. "jit_1x1:avx512_core" or "jit_dw:avx512_core".
const char *xfer_dconv_implementation(const xfer_dconv *conv);

/// Bytes of scratch each call needs (64-byte aligned, the caller's).
size_t xfer_dconv_scratch_bytes(const xfer_dconv *conv);

/// Takes the Keras kernel into the primitive's layout (once per kernel version). 0 on success.
int xfer_dconv_set_kernel(xfer_dconv *conv, const float *kernel, int worker, void *scratch);

/// y (n, oh, ow, o) = act(conv(x (n, h, w, c)) + bias (o) [+ y]); `bias` read only with `with_bias`.
int xfer_dconv_forward(xfer_dconv *conv, const float *x, const float *bias, float *y, int worker, void *scratch);

#endif
