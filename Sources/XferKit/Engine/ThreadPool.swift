// The process's worker threads and its one thread budget.
//
// `parallelFor(count) { index, worker in … }` runs `count` tasks on up to
// `threadCount` threads, the caller being one of them, and returns when all are done.
// `worker` (0..<threadCount) says which thread runs the task, so a task can use that
// thread's slice of a shared scratch buffer. Tasks are handed out one at a time in
// index order; make them coarse (a GEMM tile, a row block), not per element.
//
// A parallelFor issued while another is running runs its tasks serially on its caller
// — never deadlocks, never oversubscribes. From inside a task it keeps that task's
// worker index (so the task's scratch stays its own); from an unrelated thread it runs
// as worker 0, so two threads must not share worker-indexed scratch (Network
// serialises its calls).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The process's worker threads.
///
/// ```swift
/// ThreadPool.shared.threadCount = 2           // the whole process's budget
/// var sums = [Float](repeating: 0, count: 8)
/// sums.withUnsafeMutableBufferPointer { s in
///     let s = s.baseAddress!
///     parallelFor(8) { i, _ in s[i] = Float(i * i) }   // tasks 0..<8 on up to 2 threads
/// }
/// ```
package final class ThreadPool: @unchecked Sendable {
    /// The pool every engine computation uses.
    package static let shared = ThreadPool()

    // Heap-allocated: pthread objects must not move.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)      // workers wait for a job
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)  // the caller waits for its end
    private var workers: [pthread_t] = []
    /// Thread-specific: 1 + the worker index of the thread while it runs a task, else nil.
    private var workerKey = pthread_key_t()
    private var wanted: Int

    // The running job, guarded by `mutex`.
    private var generation = 0
    private var busy = false
    private var job: ((Int, Int) -> Void)?
    private var jobCount = 0
    private var nextIndex = 0
    private var participants = 0
    private var running = 0  // participants (besides the caller) not yet done

    init(threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        wanted = max(1, threads)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
        pthread_key_create(&workerKey, nil)
    }

    /// Threads a `parallelFor` uses, the caller included. Default: the active
    /// processor count. Settable at any time between computations.
    package var threadCount: Int {
        get { lock(); defer { unlock() }; return wanted }
        set { lock(); wanted = max(1, newValue); unlock() }
    }

    /// Runs `body(index, worker)` for every index in 0..<count on at most
    /// `min(threadCount, maxThreads)` threads; returns when all ran.
    package func parallelFor(_ count: Int, maxThreads: Int = .max,
                            _ body: (_ index: Int, _ worker: Int) -> Void) {
        guard count > 0 else { return }
        lock()
        let threads = min(wanted, count, max(1, maxThreads))
        if busy || threads == 1 {
            unlock()
            let worker = pthread_getspecific(workerKey).map { Int(bitPattern: $0) - 1 } ?? 0
            for i in 0..<count { body(i, worker) }
            return
        }
        busy = true
        while workers.count < threads - 1 { spawnWorker(id: workers.count + 1) }
        withoutActuallyEscaping(body) { body in
            job = body
            jobCount = count
            nextIndex = 0
            participants = threads
            running = threads - 1
            generation += 1
            pthread_cond_broadcast(wake)
            pthread_setspecific(workerKey, UnsafeRawPointer(bitPattern: 1))
            runTasks(worker: 0)  // returns with the mutex held
            pthread_setspecific(workerKey, nil)
            while running > 0 { pthread_cond_wait(finished, mutex) }
            job = nil
        }
        busy = false
        unlock()
    }

    /// Takes tasks until none is left. Called and returns with the mutex held.
    private func runTasks(worker: Int) {
        while nextIndex < jobCount, let body = job {
            let i = nextIndex
            nextIndex += 1
            unlock()
            body(i, worker)
            lock()
        }
    }

    /// `seen`: the job generation current when the thread was created; it joins the next one.
    private func workerLoop(id: Int, seen: Int) {
        pthread_setspecific(workerKey, UnsafeRawPointer(bitPattern: id + 1))
        lock()
        var seen = seen
        while true {
            while generation == seen { pthread_cond_wait(wake, mutex) }
            seen = generation
            guard id < participants else { continue }
            runTasks(worker: id)
            running -= 1
            if running == 0 { pthread_cond_signal(finished) }
        }
    }

    private func spawnWorker(id: Int) {
        final class Start {
            let pool: ThreadPool, id: Int, seen: Int
            init(_ pool: ThreadPool, _ id: Int, _ seen: Int) { self.pool = pool; self.id = id; self.seen = seen }
        }
        let start = Unmanaged.passRetained(Start(self, id, generation)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let start = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Start
            start.pool.workerLoop(id: start.id, seen: start.seen)
            return nil
        }, start)
        precondition(rc == 0, "cannot start a worker thread (error \(rc))")
        pthread_detach(thread)
        workers.append(thread)
    }

    private func lock() { pthread_mutex_lock(mutex) }
    private func unlock() { pthread_mutex_unlock(mutex) }
}

/// `ThreadPool.shared.parallelFor`.
package func parallelFor(_ count: Int, maxThreads: Int = .max, _ body: (_ index: Int, _ worker: Int) -> Void) {
    ThreadPool.shared.parallelFor(count, maxThreads: maxThreads, body)
}

/// Splits 0..<total into `parts` nearly equal consecutive ranges; part `i` of them.
@inline(__always)
func chunk(_ i: Int, of parts: Int, total: Int) -> Range<Int> {
    (total * i / parts) ..< (total * (i + 1) / parts)
}
