import PipelineCore
import Stages
import Testing

/// The registry runs one stage per `StageID`, in `StageID`'s order: the order that chains
/// fingerprints, that `--until` and `status` follow, and that the database's stage check lists.
@Suite struct StageRegistryTests {
    @Test func oneStagePerIdInOrder() {
        let stages = StageRegistry.stages(for: PipelineConfiguration())
        #expect(stages.map(\.stageID) == StageID.allCases)
        #expect(StageRegistry.order == stages.map(\.id))
        #expect(StageRegistry.units.map(\.unit) == [.source, .source, .source, .source, .clip, .clip, .clip, .clip])
    }
}
