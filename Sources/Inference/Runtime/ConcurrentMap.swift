import Dispatch
import Synchronization

/// `body(0) … body(count − 1)` on up to `workers` threads at once, results in index order; the first
/// error (by index) is rethrown once all have finished. Data-parallel replicas and sample building
/// both run through it.
public func concurrentMap<T: Sendable>(_ count: Int, workers: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    let lanes = max(1, min(workers, count))
    if lanes == 1 { return try (0..<count).map(body) }
    let slots = Mutex<[Result<T, any Error>?]>(Array(repeating: nil, count: count))
    DispatchQueue.concurrentPerform(iterations: lanes) { lane in
        for i in stride(from: lane, to: count, by: lanes) {
            let result = Result { try body(i) }
            slots.withLock { $0[i] = result }
        }
    }
    return try slots.withLock { $0 }.map { try $0!.get() }
}
