import PipelineCore

extension StageContext {
    /// The source of `item` read on the normalised timeline (stage 2's frame map at `normalize.fps`),
    /// for the stages after segmenting. `decoderThreads` defaults to the engine's share per item.
    func normalizedReader(for item: WorkItem, stage: String, normalize: PipelineConfiguration.Normalize,
                          decoderThreads: Int? = nil) throws -> NormalizedReader {
        guard let map = try FrameMapAnalysis.load(sourceId: item.source.id!, rate: Rational(Int64(normalize.fps), 1), from: store) else {
            throw StageError(stage: stage, item: item.name, message: "no frame map recorded; rerun stage broken")
        }
        return NormalizedReader(path: item.sourcePath, frameMap: map, sampleRate: normalize.sampleRate,
                                decoderThreads: decoderThreads ?? self.decoderThreads)
    }
}
