import Foundation
@testable import PipelineCore
import Synchronization
import Testing

/// The engine's claim loop over stand-in stages (broken → segment → align → publish): no barrier
/// between stages, every item exactly once, and a second run that finds nothing to do.
@Suite struct EngineClaimLoopTests {
    /// Every execution, in order, as "stage item".
    final class Log: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    struct FakeStage: Stage {
        var stageID: StageID
        var unit: WorkUnit
        var log: Log
        var fingerprint: String { "fake-\(stageID.rawValue)" }
        func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
            log.append("\(stageID.rawValue) \(item.name)")
            usleep(2000)
            guard stageID == .segment else { return .done() }
            // Three clips of 100 frames per source.
            let clips = (0..<3).map { ClipRecord(sourceId: item.source.id!, sceneIndex: 0, segmentIndex: $0, startFrame: $0 * 100, endFrame: $0 * 100 + 100) }
            return .done(metrics: nil, artifact: nil, handOn: HandOn(clips: clips))
        }
    }

    struct Silent: ProgressReporter { func report(_ event: ProgressEvent) {} }

    static func run(sources: Int, jobs: Int, barriers: Bool, in folder: URL, store: PipelineStore) async throws -> (RunSummary, [String]) {
        let log = Log()
        let stages: [any Stage] = [FakeStage(stageID: .broken, unit: .source, log: log), FakeStage(stageID: .segment, unit: .source, log: log),
                                   FakeStage(stageID: .align, unit: .clip, log: log), FakeStage(stageID: .publish, unit: .clip, log: log)]
        let engine = Engine(store: store, configuration: PipelineConfiguration(), stages: stages,
                            options: EngineOptions(inputDirectory: folder.appendingPathComponent("in"), outputDirectory: folder.appendingPathComponent("out"),
                                                   jobs: jobs, version: "test", stageBarriers: barriers),
                            reporter: Silent())
        return (try await engine.run(), log.all)
    }

    static func folder(sources: Int) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("claimloop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("in"), withIntermediateDirectories: true)
        for n in 0..<sources { try Data("source \(n)".utf8).write(to: folder.appendingPathComponent("in/v\(n).mp4")) }
        return folder
    }

    @Test(arguments: [1, 3]) func withoutBarriersTheFirstClipIsPublishedBeforeTheLastSourceIsChecked(jobs: Int) async throws {
        let folder = try Self.folder(sources: 6)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (summary, log) = try await Self.run(sources: 6, jobs: jobs, barriers: false, in: folder, store: try PipelineStore.inMemory())
        let expected = ["broken": 6, "segment": 6, "align": 18, "publish": 18]
        #expect(summary.counts.mapValues { $0["done"] ?? 0 } == expected)
        #expect(log.count == 48 && Set(log).count == 48, "every item runs exactly once")
        let firstPublish = try #require(log.firstIndex { $0.hasPrefix("publish") })
        let lastBroken = try #require(log.lastIndex { $0.hasPrefix("broken") })
        #expect(firstPublish < lastBroken, "publish waited for every source to be checked: \(log)")
    }

    @Test func withBarriersEachStageFinishesFirstAndTheCountsAreTheSame() async throws {
        let folder = try Self.folder(sources: 4)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (summary, log) = try await Self.run(sources: 4, jobs: 2, barriers: true, in: folder, store: try PipelineStore.inMemory())
        #expect(summary.counts.mapValues { $0["done"] ?? 0 } == ["broken": 4, "segment": 4, "align": 12, "publish": 12])
        let stages = log.map { String($0.split(separator: " ")[0]) }
        #expect(stages == Array(repeating: "broken", count: 4) + Array(repeating: "segment", count: 4)
                + Array(repeating: "align", count: 12) + Array(repeating: "publish", count: 12))
    }

    /// A second run over the same database finds every item decided (the planning pass queues
    /// nothing), also when the first ran the other way.
    @Test func aSecondRunDoesNothing() async throws {
        let folder = try Self.folder(sources: 3)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try PipelineStore(path: folder.appendingPathComponent("out/pipeline.db").path)
        _ = try await Self.run(sources: 3, jobs: 2, barriers: true, in: folder, store: store)
        let (summary, log) = try await Self.run(sources: 3, jobs: 2, barriers: false, in: folder, store: store)
        #expect(log.isEmpty && summary.counts.isEmpty)
    }
}
