import PipelineCore

/// The pipeline's stages, in order: the one place that lists them.
public enum StageRegistry {
    /// Ids in execution order (what `--until` accepts).
    public static let order = ["broken", "normalize", "scenes", "segment"]

    public static func stages(for configuration: PipelineConfiguration) -> [any Stage] {
        [BrokenFileStage(configuration: configuration), NormalizeStage(configuration: configuration),
         SceneStage(configuration: configuration), SegmentStage(configuration: configuration)]
    }
}
