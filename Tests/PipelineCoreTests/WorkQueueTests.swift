import Foundation
@testable import PipelineCore
import Testing

/// The order `Engine` hands items to its workers (`WorkQueue`).
struct WorkQueueTests {
    static func source(_ id: Int64) -> SourceRecord {
        SourceRecord(id: id, relativePath: "s\(id).mp4", size: 0, mtime: 0, contentHash: "", discoveredAt: Date(timeIntervalSince1970: 0))
    }

    /// Clips of `source` covering `frames` in pieces of 100 (ids from `firstId`).
    static func clips(source id: Int64, frames: Range<Int>, scene: Int = 0, firstId: Int64) -> [WorkItem] {
        stride(from: frames.lowerBound, to: frames.upperBound, by: 100).enumerated().map { n, start in
            WorkItem(source: source(id), sourcePath: "s\(id).mp4",
                     clip: ClipRecord(id: firstId + Int64(n), sourceId: id, sceneIndex: scene, segmentIndex: n, startFrame: start, endFrame: start + 100))
        }
    }

    /// Simulates `workers` workers that finish items in the order `finishOrder` picks, and returns
    /// the clip ids each worker ran.
    static func schedule(_ queue: inout WorkQueue, workers: Int) -> [[Int64]] {
        var ran = [[Int64]](repeating: [], count: workers)
        var current = [Int?](repeating: nil, count: workers)
        for w in 0..<workers { current[w] = queue.next(after: nil) }
        // Round-robin finishing: worker 0 finishes first, then 1, …
        var w = 0
        while current.contains(where: { $0 != nil }) {
            if let index = current[w] {
                ran[w].append(queue[index].clip?.id ?? -queue[index].source.id!)
                queue.finished(index)
                current[w] = queue.next(after: index)
            }
            w = (w + 1) % workers
        }
        return ran
    }

    @Test func aWorkerKeepsTheNextClipOfItsSourceAndOthersStartOtherSources() {
        let items = Self.clips(source: 1, frames: 0..<300, firstId: 10) + Self.clips(source: 2, frames: 0..<300, firstId: 20)
        var queue = WorkQueue(items: items)
        #expect(Self.schedule(&queue, workers: 2) == [[10, 11, 12], [20, 21, 22]])
    }

    @Test func aSingleLongSourceIsSplitInTheMiddleOfWhatIsLeft() {
        var queue = WorkQueue(items: Self.clips(source: 1, frames: 0..<1000, firstId: 0))
        let ran = Self.schedule(&queue, workers: 2)
        // Worker 0 starts at the beginning; worker 1 at the middle of clips 1–9 (clip 5).
        #expect(ran == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
        var three = WorkQueue(items: Self.clips(source: 1, frames: 0..<1000, firstId: 0))
        // The third starts in the middle of the first of the equal stretches 1–4 and 6–9; whoever
        // then runs into a taken clip splits what is left (8–9: the one finishing first takes 9).
        #expect(Self.schedule(&three, workers: 3) == [[0, 1, 2, 8], [5, 6, 7], [3, 4, 9]])
    }

    @Test func clipsWithAGapBetweenThemAreSeparateRuns() {
        // Scene 0: frames 0–200; scene 1 starts at 250 (a rejected stretch between).
        let items = Self.clips(source: 1, frames: 0..<200, firstId: 0) + Self.clips(source: 1, frames: 250..<450, scene: 1, firstId: 2)
        var queue = WorkQueue(items: items)
        // One worker still goes in list order; with two, the second starts the second run.
        #expect(Self.schedule(&queue, workers: 1) == [[0, 1, 2, 3]])
        var two = WorkQueue(items: items)
        #expect(Self.schedule(&two, workers: 2) == [[0, 1], [2, 3]])
    }

    @Test func deferredItemsGoLastAndEveryItemGoesOutOnce() {
        let regular = Self.clips(source: 1, frames: 0..<300, firstId: 0)
        let deferred = Self.clips(source: 2, frames: 0..<200, firstId: 10)
        var queue = WorkQueue(items: regular, deferred: deferred)
        var order: [Int64] = []
        var previous: Int?
        while let index = queue.next(after: previous) {
            order.append(queue[index].clip!.id!)
            queue.finished(index)
            previous = index
        }
        #expect(order == [0, 1, 2, 10, 11])
        // Source items (stages 1–4) have no runs: plain list order.
        let sources = (1...3).map { WorkItem(source: Self.source(Int64($0)), sourcePath: "s\($0).mp4") }
        var plain = WorkQueue(items: sources)
        #expect(Self.schedule(&plain, workers: 2).flatMap { $0 }.sorted() == [-3, -2, -1])
        var firstTwo = WorkQueue(items: sources)
        #expect([firstTwo.next(after: nil), firstTwo.next(after: nil)] == [0, 1])
    }
}
