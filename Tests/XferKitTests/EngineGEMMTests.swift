// The chosen SGEMM against the naive triple loop, in every transpose combination,
// with leading dimensions larger than the rows, alpha and beta, and from several
// threads at once (the engine calls it that way).

import XCTest
@testable import XferKit

final class EngineGEMMTests: XCTestCase {
    func testSgemmMatchesNaiveInAllTransposes() {
        var rng = SeededRandom(seed: 1)
        for (m, n, k) in [(1, 1, 1), (7, 5, 3), (37, 29, 53), (64, 17, 130), (3, 200, 9)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let pad = 3  // leading dimensions wider than the matrices
                    let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
                    let a = rng.floats((transA ? k : m) * lda)
                    let b = rng.floats((transB ? n : k) * ldb)
                    let c0 = rng.floats(m * ldc)
                    for (alpha, beta): (Float, Float) in [(1, 0), (0.5, 1), (-2, 0.25)] {
                        var fast = c0, slow = c0
                        GEMM.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                   a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &fast, ldc: ldc)
                        GEMM.naiveSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                        a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &slow, ldc: ldc)
                        let err = zip(fast, slow).map { abs($0 - $1) }.max()!
                        XCTAssertLessThanOrEqual(err, 1e-4, "m\(m) n\(n) k\(k) tA \(transA) tB \(transB) α \(alpha) β \(beta)")
                    }
                }
            }
        }
    }

    func testSgemmFromPoolThreads() {
        var rng = SeededRandom(seed: 2)
        let m = 33, n = 47, k = 65
        let a = rng.floats(m * k), b = rng.floats(k * n)
        var expected = [Float](repeating: 0, count: m * n)
        GEMM.naiveSgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &expected, ldc: n)
        let tasks = 16
        var results = [[Float]](repeating: [Float](repeating: 0, count: m * n), count: tasks)
        results.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            ThreadPool.shared.parallelFor(tasks) { t, _ in
                GEMM.sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &out[t], ldc: n)
            }
        }
        for r in results { XCTAssertLessThanOrEqual(zip(r, expected).map { abs($0 - $1) }.max()!, 1e-4) }
    }

    func testParallelForRunsEveryIndexOnceAndNests() {
        let count = 1000
        var hits = [Int](repeating: 0, count: count)
        hits.withUnsafeMutableBufferPointer { h in
            let h = h.baseAddress!
            ThreadPool.shared.parallelFor(count) { i, worker in
                XCTAssert(worker < ThreadPool.shared.threadCount)
                h[i] += 1
                // A nested call runs serially on this thread, keeping its worker index.
                ThreadPool.shared.parallelFor(2) { _, inner in XCTAssertEqual(inner, worker) }
            }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: count))
    }
}
