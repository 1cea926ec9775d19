import PipelineCore

/// The pipeline's stages, in order: the one place that lists them.
public enum StageRegistry {
    /// Ids in execution order (what `--until` accepts).
    public static let order = StageID.allCases.map(\.rawValue)

    /// Ids and units in execution order (what `status` needs to count pending items).
    public static var units: [(id: String, unit: WorkUnit)] {
        stages(for: PipelineConfiguration()).map { ($0.id, $0.unit) }
    }

    /// One stage per `StageID`, in `StageID`'s order (a test checks it).
    public static func stages(for configuration: PipelineConfiguration) -> [any Stage] {
        [BrokenFileStage(configuration: configuration), NormalizeStage(configuration: configuration),
         SceneStage(configuration: configuration), SegmentStage(configuration: configuration), AlignStage(configuration: configuration),
         SyncStage(configuration: configuration), QualityStage(configuration: configuration), PublishStage(configuration: configuration)]
    }
}
