// Single-precision matrix multiply, the one place the engine calls into C.
//
//   C (M×N) = alpha · op(A) · op(B) + beta · C      row-major, op = identity or transpose
//
// `sgemm` runs oneDNN's `dnnl_sgemm` (Debian libdnnl-dev); `naiveSgemm` is the same
// contract in three loops with a Double accumulator, the oracle in tests.
//
// Why oneDNN: on VGG16's convolution shapes it was the fastest of the SGEMMs Debian
// ships, and it picks its JIT kernel from the instruction set the CPU reports rather
// than from a table of known CPU models (BENCHMARKS.md, "Inference engine").
//
// Threads: the process has one thread budget, `ThreadPool.shared.threadCount`. The
// engine splits its work into tasks on that pool, and oneDNN runs single-threaded
// inside each task. oneDNN (OpenMP build) uses `omp_get_max_threads()` of the calling
// thread, a per-thread setting, so every call (`xfer_sgemm`) first sets it to 1 for that
// thread — a store into the thread's OpenMP state, no environment variable and no thread team.

import COneDNN

/// Row-major single-precision GEMM: `C = alpha·op(A)·op(B) + beta·C`.
package enum GEMM {
    /// Runs on the calling thread only. `op(A)` is M×K, `op(B)` is K×N, `C` is M×N;
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    ///
    /// ```swift
    /// // (2×3)·(3×2)
    /// let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [1, 0, 0, 1, 1, 1]
    /// var c = [Float](repeating: 0, count: 4)
    /// GEMM.sgemm(m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 2)
    /// // c == [4, 5, 10, 11]
    /// ```
    package static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        let status = xfer_sgemm(transA ? 84 /* T */ : 78 /* N */, transB ? 84 : 78,
                                Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda),
                                b, Int64(ldb), beta, c, Int64(ldc))
        precondition(status == 0, "dnnl_sgemm failed (status \(status)) for M=\(m) N=\(n) K=\(k)")
    }

    /// Array convenience for tests and small products.
    package static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: [Float], lda: Int, b: [Float], ldb: Int,
                             beta: Float = 0, c: inout [Float], ldc: Int) {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                          a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
                          beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
    }

    /// The same contract as `sgemm`, written out; sums in Double.
    package static func naiveSgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                  alpha: Float = 1, a: [Float], lda: Int, b: [Float], ldb: Int,
                                  beta: Float = 0, c: inout [Float], ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * sum + old)
            }
        }
    }
}
