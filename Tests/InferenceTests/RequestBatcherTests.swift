import Dispatch
import Foundation
import Inference
import Synchronization
import Testing

/// Requests from concurrent threads are merged into fewer forwards, and every caller gets exactly its own rows back.
@Suite struct RequestBatcherTests {
    /// Output row r = (sum of input row r, 4).
    static func expected(_ input: [Float], rows: Int) -> [Float] {
        var out: [Float] = []
        for r in 0..<rows {
            var sum: Float = 0
            for i in (r * 4)..<(r * 4 + 4) { sum += input[i] }
            out += [sum, 4]
        }
        return out
    }

    @Test func concurrentRequestsShareForwardsAndGetTheirOwnRows() throws {
        let calls = Mutex<[Int]>([])
        // Output row = (sum of the input row, row size): distinguishable per row and per request.
        let batcher = RequestBatcher(rowSize: 4, maxRows: 24, window: .milliseconds(20)) { input, rows in
            calls.withLock { $0.append(rows) }
            return Self.expected(input, rows: rows)
        }
        let group = DispatchGroup()
        let failures = Mutex(0)
        for t in 0..<8 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for round in 0..<3 {
                    let rows = 1 + (t + round) % 3
                    let base = t * 1000 + round * 100
                    let input: [Float] = (0..<(rows * 4)).map { Float(base + $0) }
                    let output: [Float]? = try? batcher.run(input, rows: rows)
                    if output != Self.expected(input, rows: rows) { failures.withLock { $0 += 1 } }
                }
            }
        }
        group.wait()
        #expect(failures.withLock { $0 } == 0)
        let stats = batcher.statistics, sizes = calls.withLock { $0 }
        #expect(stats.requests == 24)
        #expect(stats.batches < stats.requests, "no merging: \(sizes)")
        #expect(sizes.allSatisfy { $0 <= 24 }, "a batch over maxRows: \(sizes)")
        print("RequestBatcher: 24 requests from 8 threads in \(stats.batches) forwards of \(sizes) rows")
    }

    /// A request larger than maxRows runs in chunks; an error reaches every caller of that batch.
    @Test func largeRequestsAreChunkedAndErrorsPropagate() throws {
        let sizes = Mutex<[Int]>([])
        let batcher = RequestBatcher(rowSize: 1, maxRows: 4, window: .zero) { input, rows in
            sizes.withLock { $0.append(rows) }
            return input.map { $0 * 2 }
        }
        #expect(try batcher.run((0..<10).map(Float.init), rows: 10) == (0..<10).map { Float($0 * 2) })
        #expect(sizes.withLock { $0 } == [4, 4, 2])
        struct Boom: Error {}
        let failing = RequestBatcher(rowSize: 1, maxRows: 4, window: .zero) { _, _ in throw Boom() }
        #expect(throws: Boom.self) { try failing.run([1], rows: 1) }
    }
}
