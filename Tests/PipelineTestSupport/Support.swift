import Foundation
import PipelineCore

/// A reporter that keeps every event, for assertions.
public final class RecordingReporter: ProgressReporter, @unchecked Sendable {
    // @unchecked: `events` is guarded by `lock`.
    private let lock = NSLock()
    private var storage: [ProgressEvent] = []
    public init() {}
    public func report(_ event: ProgressEvent) { lock.lock(); storage.append(event); lock.unlock() }
    public var events: [ProgressEvent] { lock.lock(); defer { lock.unlock() }; return storage }
}

/// The final state and reason of one stage for each source path.
public func decisions(_ store: PipelineStore, stage: String) throws -> [String: (state: ItemState, reason: String?)] {
    let sources = Dictionary(uniqueKeysWithValues: try store.activeSources().map { ($0.id!, $0.relativePath) })
    var out: [String: (ItemState, String?)] = [:]
    for (_, row) in try store.currentResults(stage: stage) {
        if let path = sources[row.sourceId] { out[path] = (row.state, row.reason) }
    }
    return out
}

/// The largest element-wise |a − b| (infinity when the lengths differ): the parity tests' measure
/// against golden tensors.
public func maxDifference<T: FloatingPoint>(_ a: [T], _ b: [T]) -> T {
    a.count == b.count ? zip(a, b).map { abs($0 - $1) }.max() ?? 0 : .infinity
}

/// The seed of a test's random choices: `PIPELINED_TEST_SEED` when set (to replay a failure or try
/// another), otherwise `fixed` when the test gives one, otherwise a fresh one. Printed either way,
/// with the line that replays it.
public func testSeed(_ test: String, fixed: UInt64? = nil) -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["PIPELINED_TEST_SEED"].flatMap(UInt64.init) ?? fixed ?? UInt64.random(in: 0...UInt64.max)
    print("\(test): seed \(seed) (PIPELINED_TEST_SEED=\(seed) replays it)")
    return seed
}
