import PipelineCore

/// The pipeline's stages, in order: the one place that lists them.
public enum StageRegistry {
    /// Ids in execution order (what `--until` accepts).
    public static let order = ["broken", "normalize", "scenes", "segment", "align", "sync", "quality", "publish"]

    /// Ids and units in execution order (what `status` needs to count pending items).
    public static var units: [(id: String, unit: WorkUnit)] {
        stages(for: PipelineConfiguration()).map { ($0.id, $0.unit) }
    }

    public static func stages(for configuration: PipelineConfiguration) -> [any Stage] {
        [BrokenFileStage(configuration: configuration), NormalizeStage(configuration: configuration),
         SceneStage(configuration: configuration), SegmentStage(configuration: configuration), AlignStage(configuration: configuration),
         SyncStage(configuration: configuration), QualityStage(configuration: configuration), PublishStage(configuration: configuration)]
    }
}
