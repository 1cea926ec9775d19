#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Merges concurrent requests to one model into larger batches: the pipeline scores each item on
/// its own worker thread, and a GPU is far better used by one forward over the rows of several items
/// (hyperIQA sees 3 frames per clip) than by many small ones.
///
/// Rows are float32, `rowSize` values each; the forward takes the concatenated rows of a batch and
/// returns the concatenated output rows. The first waiting caller leads: it waits up to `window`
/// for others to join (less when `maxRows` are already pending), runs the forward on the caller
/// threads' behalf and hands every caller its own rows back. Requests are never split across
/// batches unless one alone exceeds `maxRows` (then it runs in chunks of `maxRows`).
public final class RequestBatcher: Sendable {
    public typealias Forward = @Sendable (_ input: [Float], _ rows: Int) throws -> [Float]

    public let rowSize: Int, maxRows: Int
    public let window: Duration
    private let forward: Forward

    private final class Request: @unchecked Sendable {
        // @unchecked: every field is read and written under `state`'s lock.
        let input: [Float], rows: Int
        var output: Result<[Float], any Error>?
        init(_ input: [Float], _ rows: Int) { self.input = input; self.rows = rows }
    }

    private struct State {
        var pending: [Request] = []
        var leading = false
        var batches = 0, requests = 0
    }

    private let state = Mutex(State())
    // A condition variable for followers (Mutex has none); paired with its own pthread mutex.
    private let wake = Condition()

    public init(rowSize: Int, maxRows: Int, window: Duration = .milliseconds(3), forward: @escaping Forward) {
        precondition(rowSize > 0 && maxRows > 0)
        self.rowSize = rowSize; self.maxRows = maxRows; self.window = window; self.forward = forward
    }

    /// Forwards run and requests served so far (batches ≤ requests when requests were merged).
    public var statistics: (batches: Int, requests: Int) { state.withLock { ($0.batches, $0.requests) } }

    /// The output rows for `input` (`rows` rows of `rowSize`), computed in a batch with whatever other
    /// threads submit at the same time.
    public func run(_ input: [Float], rows: Int) throws -> [Float] {
        precondition(input.count == rows * rowSize, "\(input.count) values for \(rows) rows of \(rowSize)")
        let request = Request(input, rows)
        state.withLock { $0.pending.append(request); $0.requests += 1 }
        while true {
            let (done, isLeader) = state.withLock { s -> (Result<[Float], any Error>?, Bool) in
                if let output = request.output { return (output, false) }
                if s.leading { return (nil, false) }
                s.leading = true
                return (nil, true)
            }
            if let done { return try done.get() }
            if isLeader {
                leadOneBatch()
            } else {
                wake.wait { state.withLock { s in request.output != nil || !s.leading } }
            }
        }
    }

    private func leadOneBatch() {
        let pendingRows = state.withLock { $0.pending.reduce(0) { $0 + $1.rows } }
        if pendingRows < maxRows {
            let c = window.components
            var pause = timespec(tv_sec: Int(c.seconds), tv_nsec: Int(c.attoseconds / 1_000_000_000))
            nanosleep(&pause, nil)
        }
        let batch = state.withLock { s -> [Request] in
            var taken: [Request] = [], rows = 0
            while let next = s.pending.first, taken.isEmpty || rows + next.rows <= maxRows {
                taken.append(next); rows += next.rows; s.pending.removeFirst()
            }
            return taken
        }
        let outcome = Result { try runChunked(batch) }
        state.withLock { s in
            switch outcome {
            case let .success(outputs): for (r, out) in zip(batch, outputs) { r.output = .success(out) }
            case let .failure(error): for r in batch { r.output = .failure(error) }
            }
            s.batches += 1
            s.leading = false
        }
        wake.broadcast()
    }

    /// One forward over the batch's rows (in chunks of `maxRows` when a single request is larger), split back per request.
    private func runChunked(_ batch: [Request]) throws -> [[Float]] {
        let input = batch.count == 1 ? batch[0].input : batch.flatMap(\.input)
        let rows = batch.reduce(0) { $0 + $1.rows }
        var output: [Float] = []
        var start = 0
        while start < rows {
            let count = min(maxRows, rows - start)
            output += try forward(Array(input[(start * rowSize)..<((start + count) * rowSize)]), count)
            start += count
        }
        guard output.count % rows == 0 else { throw TorchError.operation("batched forward", "\(output.count) outputs for \(rows) rows") }
        let width = output.count / rows
        var offset = 0
        return batch.map { r in
            defer { offset += r.rows * width }
            return Array(output[offset..<(offset + r.rows * width)])
        }
    }
}

/// A pthread condition variable with its mutex, for waiting until a predicate holds.
final class Condition: @unchecked Sendable {
    // @unchecked: the pthread objects are used only through their own locking calls.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition); pthread_mutex_destroy(mutex)
        mutex.deallocate(); condition.deallocate()
    }

    /// Blocks until `ready()` is true. `ready()` is checked holding this condition's mutex and
    /// `broadcast()` takes it too, so a change made before a broadcast cannot be missed; the 50 ms
    /// timeout only bounds the cost of a caller that changes state without broadcasting.
    func wait(until ready: () -> Bool) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ready() {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_nsec += 50_000_000
            if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
            pthread_cond_timedwait(condition, mutex, &deadline)
        }
    }

    func broadcast() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}
