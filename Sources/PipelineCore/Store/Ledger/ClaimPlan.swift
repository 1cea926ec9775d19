import Foundation

/// The stages a worker runs, as the store needs them to hand out work: for each, its fingerprint
/// and the result upstream it must find current and done.
public struct ClaimPlan: Sendable {
    public struct Step: Sendable {
        public var stage: String
        public var unit: WorkUnit
        public var fingerprint: String
        /// The stage before this one and its fingerprint (nil for the first stage, which takes
        /// every source present).
        public var upstream: Upstream?
        public init(stage: String, unit: WorkUnit, fingerprint: String, upstream: Upstream?) {
            self.stage = stage; self.unit = unit; self.fingerprint = fingerprint; self.upstream = upstream
        }
    }
    public struct Upstream: Sendable {
        public var stage: String
        public var unit: WorkUnit
        public var fingerprint: String
        public init(stage: String, unit: WorkUnit, fingerprint: String) { self.stage = stage; self.unit = unit; self.fingerprint = fingerprint }
    }

    /// In pipeline order.
    public var steps: [Step]
    public var maxAttempts: Int
    /// Hand out a stage's items only once no earlier stage has work queued or running: how the
    /// engine worked before the queue (kept as the baseline of `Benchmarks/first-publish.sh`).
    public var stageBarriers: Bool
    /// Hand a worker an item that failed under it again once its backoff has passed. A one-shot
    /// `run` does not: it tries each item at most once, and its failures wait for the next run
    /// (cron's), which is what its exit code 3 promises; a long-running worker does.
    public var retriesWithinRun: Bool

    public init(steps: [Step], maxAttempts: Int, stageBarriers: Bool = false, retriesWithinRun: Bool = false) {
        self.steps = steps; self.maxAttempts = maxAttempts; self.stageBarriers = stageBarriers; self.retriesWithinRun = retriesWithinRun
    }

    /// The step after `stage`, if this plan runs one.
    public func step(after stage: String) -> Step? {
        guard let i = steps.firstIndex(where: { $0.stage == stage }), i + 1 < steps.count else { return nil }
        return steps[i + 1]
    }
}

/// An item a worker holds: its claimed row, and what the stage needs to run on it.
public struct ClaimedWork: Sendable {
    public var claim: StageResultRecord
    /// Index into the plan's steps.
    public var step: Int
    public var source: SourceRecord
    public var clip: ClipRecord?

    var candidate: ClaimOrder.Candidate { ClaimOrder.Candidate(sourceId: source.id!, frames: clip.map { $0.startFrame..<$0.endFrame }) }
}

/// Per stage, the items queued for it now (claimable, or waiting for a retry) and held by workers.
public struct StageQueue: Sendable, Equatable {
    public var stage: String
    public var queued: Int
    public var running: Int
}
