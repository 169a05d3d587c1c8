// The two C functions xfer's engine calls; the full headers are not imported so that
// Swift sees nothing else of oneDNN or OpenMP.
//
// dnnl_sgemm (oneapi/dnnl/dnnl.h): row-major C = alpha·op(A)·op(B) + beta·C, returns
// dnnl_status_t (0 = success). It picks its JIT kernel from the CPU's instruction set
// at run time. It runs on as many OpenMP threads as omp_get_max_threads() reports in
// the calling thread, a per-thread setting that omp_set_num_threads changes.
#ifndef XFER_CBLAS_SHIM_H
#define XFER_CBLAS_SHIM_H

#include <stdint.h>

int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc);

void omp_set_num_threads(int num_threads);

#endif
