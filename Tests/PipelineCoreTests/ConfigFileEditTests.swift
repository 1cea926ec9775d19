import Foundation
import PipelineCore
import Testing

/// `calibrate sync --apply` edits one key of the user's pipeline.conf and nothing else.
@Suite struct ConfigFileEditTests {
    let original = """
        # my settings
        [broken]
        min_duration_seconds = 1   # short clips are fine

        [sync]
        # stricter than the default
        min_confidence = 0.95
        max_offset = 15

        [quality]
        max_brisque = 45
        """

    @Test func replacesTheKeyInItsSection() throws {
        let edited = ConfigFileEdit.setting("min_confidence", to: "0.183401", in: "sync", of: original, comment: "calibrated")
        #expect(edited == original.replacingOccurrences(of: "min_confidence = 0.95", with: "min_confidence = 0.183401  # calibrated") + "\n")
        let c = try PipelineConfiguration(toml: edited)
        #expect(c.sync.minConfidence == 0.183401 && c.sync.maxOffset == 15 && c.quality.maxBrisque == 45 && c.broken.minDurationSeconds == 1)
    }

    @Test func addsTheKeyToItsSectionOrTheSection() throws {
        // The section exists without the key: added after its last setting, before the next section.
        let withSection = ConfigFileEdit.setting("stable_syncnet_min_confidence", to: "0.07", in: "sync", of: original)
        let lines = withSection.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[lines.firstIndex(of: "max_offset = 15")! + 1] == "stable_syncnet_min_confidence = 0.07")
        #expect(try PipelineConfiguration(toml: withSection).sync.stableSyncnetMinConfidence == 0.07)
        // No [sync] section: appended; an empty file gets just the section.
        let noSync = "[quality]\nmax_brisque = 45\n"
        #expect(ConfigFileEdit.setting("min_confidence", to: "0.2", in: "sync", of: noSync) == "[quality]\nmax_brisque = 45\n\n[sync]\nmin_confidence = 0.2\n")
        #expect(ConfigFileEdit.setting("min_confidence", to: "0.2", in: "sync", of: "") == "[sync]\nmin_confidence = 0.2\n")
        // A key of the same name in another section is not touched.
        let other = "[broken]\nmin_confidence_note = 1\n[other]\nmin_confidence = 3\n"
        #expect(ConfigFileEdit.setting("min_confidence", to: "0.2", in: "sync", of: other).hasSuffix("[other]\nmin_confidence = 3\n\n[sync]\nmin_confidence = 0.2\n"))
    }
}
