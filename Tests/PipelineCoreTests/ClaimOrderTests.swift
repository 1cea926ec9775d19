import Foundation
@testable import PipelineCore
import Testing

/// Which claimable item a worker gets (`ClaimOrder`), simulated the way the store asks: the
/// claimable items are those nobody has taken, the held ones those workers are running.
struct ClaimOrderTests {
    /// Clips of `source` covering `frames` in pieces of 100, as (id, candidate).
    static func clips(source: Int64, frames: Range<Int>, firstId: Int64) -> [(Int64, ClaimOrder.Candidate)] {
        stride(from: frames.lowerBound, to: frames.upperBound, by: 100).enumerated().map { n, start in
            (firstId + Int64(n), ClaimOrder.Candidate(sourceId: source, frames: start..<(start + 100)))
        }
    }

    /// `workers` workers that finish round-robin (worker 0 first, then 1, …), each asking with its
    /// last item as `after`; returns the ids each worker ran.
    static func schedule(_ items: [(Int64, ClaimOrder.Candidate)], workers: Int) -> [[Int64]] {
        var taken = Set<Int64>()
        var current = [(Int64, ClaimOrder.Candidate)?](repeating: nil, count: workers)
        var ran = [[Int64]](repeating: [], count: workers)
        func next(after previous: ClaimOrder.Candidate?) -> (Int64, ClaimOrder.Candidate)? {
            let claimable = items.filter { !taken.contains($0.0) }
            let held = current.compactMap { $0?.1 }
            guard let i = ClaimOrder.choose(claimable.map(\.1), held: held, after: previous) else { return nil }
            taken.insert(claimable[i].0)
            return claimable[i]
        }
        for w in 0..<workers { current[w] = next(after: nil) }
        var w = 0
        while current.contains(where: { $0 != nil }) {
            if let (id, candidate) = current[w] {
                ran[w].append(id)
                current[w] = nil
                current[w] = next(after: candidate)
            }
            w = (w + 1) % workers
        }
        return ran
    }

    @Test func aWorkerKeepsTheNextClipOfItsSourceAndOthersStartOtherSources() {
        let items = Self.clips(source: 1, frames: 0..<300, firstId: 10) + Self.clips(source: 2, frames: 0..<300, firstId: 20)
        #expect(Self.schedule(items, workers: 2) == [[10, 11, 12], [20, 21, 22]])
    }

    @Test func aSingleLongSourceIsSplitInTheMiddleOfWhatIsLeft() {
        let items = Self.clips(source: 1, frames: 0..<1000, firstId: 0)
        // Worker 0 starts at the beginning; worker 1 at the middle of clips 1–9 (clip 5).
        #expect(Self.schedule(items, workers: 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
        // The third starts in the middle of the first of the equal stretches 1–4 and 6–9; whoever
        // then runs into a taken clip splits what is left (8–9: the one finishing first takes 9).
        #expect(Self.schedule(items, workers: 3) == [[0, 1, 2, 8], [5, 6, 7], [3, 4, 9]])
    }

    @Test func clipsWithAGapBetweenThemAreSeparateRuns() {
        // Scene 0: frames 0–200; scene 1 starts at 250 (a rejected stretch between).
        let items = Self.clips(source: 1, frames: 0..<200, firstId: 0) + Self.clips(source: 1, frames: 250..<450, firstId: 2)
        // One worker still goes in list order; with two, the second starts the second run.
        #expect(Self.schedule(items, workers: 1) == [[0, 1, 2, 3]])
        #expect(Self.schedule(items, workers: 2) == [[0, 1], [2, 3]])
    }

    @Test func sourceItemsGoInListOrderAndEveryItemGoesOutOnce() {
        let sources = (1...3).map { (Int64($0), ClaimOrder.Candidate(sourceId: Int64($0), frames: nil)) }
        #expect(Self.schedule(sources, workers: 2).flatMap { $0 }.sorted() == [1, 2, 3])
        #expect(Self.schedule(sources, workers: 1) == [[1, 2, 3]])
        #expect(ClaimOrder.choose([], held: [], after: nil) == nil)
    }
}
