import Foundation

/// Runs a `TimelineAnalyzer` on its own thread, fed with frame references through a short bounded
/// queue, so that analysis overlaps decoding when a core is free (one job on a multi-core machine).
/// Order is kept; an error thrown by the analyzer surfaces at `finish`.
public final class BackgroundAnalyzer: TimelineAnalyzer, @unchecked Sendable {
    // @unchecked: `queue`, `failure` and `closed` are only touched under `condition`.
    public let inner: any TimelineAnalyzer
    public var maxEventLag: Int { inner.maxEventLag }
    private let condition = NSCondition()
    private var queue: [(Frame, Int)] = []
    private var closed = false
    private var failure: (any Error)?
    private let depth: Int
    private let done = DispatchSemaphore(value: 0)

    public init(_ inner: any TimelineAnalyzer, depth: Int = 4) {
        self.inner = inner
        self.depth = depth
        // The thread owns the analyzer until it ends: at `finish`, or at `abandon` if the scan fails.
        let thread = Thread { self.work() }
        thread.name = "pipelined.analyzer"
        thread.start()
    }

    public func begin(video: StreamInfo) { inner.begin(video: video) }

    public func process(_ frame: Frame, index: Int) throws {
        let reference = try frame.reference()
        condition.lock()
        while queue.count >= depth && failure == nil { condition.wait() }
        if let failure { condition.unlock(); throw failure }
        queue.append((reference, index))
        condition.broadcast()
        condition.unlock()
    }

    public func finish(frameCount: Int) throws {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
        done.wait()
        if let failure { throw failure }
        try inner.finish(frameCount: frameCount)
    }

    /// The scan stopped early: drop queued frames and end the thread.
    public func abandon() {
        condition.lock()
        closed = true
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty { condition.unlock(); break }
            let (frame, index) = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            do { try inner.process(frame, index: index) } catch {
                condition.lock(); failure = error; queue.removeAll(); condition.broadcast(); condition.unlock()
                break
            }
        }
        done.signal()
    }
}
