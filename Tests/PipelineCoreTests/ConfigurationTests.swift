import Foundation
import PipelineCore
import Testing

@Suite struct ConfigurationTests {
    /// The repository's pipeline.conf states exactly the built-in defaults, and parses.
    @Test func shippedConfigEqualsDefaults() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../pipeline.conf").standardized
        #expect(try PipelineConfiguration.load(url) == PipelineConfiguration())
    }

    @Test func valuesAreRead() throws {
        let c = try PipelineConfiguration(toml: "[normalize]\nmaterialize = true\ncrf = 23\n[broken]\nmax_decode_error_rate = 0\n")
        #expect(c.normalize.materialize && c.normalize.crf == 23 && c.broken.maxDecodeErrorRate == 0)
        #expect(c.normalize.fps == 25 && c.run.maxAttempts == 3)
    }

    @Test func mistakesAreErrorsNamingTheKey() {
        #expect(throws: ConfigurationError.unknownKey(file: "pipeline.conf", key: "normalize.fsp", known: ["normalize.fps", "normalize.sample_rate", "normalize.materialize", "normalize.crf", "normalize.preset"])) {
            try PipelineConfiguration(toml: "[normalize]\nfsp = 30\n")
        }
        #expect(throws: ConfigurationError.wrongType(file: "pipeline.conf", key: "normalize.materialize", expected: "true or false")) {
            try PipelineConfiguration(toml: "[normalize]\nmaterialize = \"yes\"\n")
        }
        #expect(throws: ConfigurationError.outOfRange(file: "pipeline.conf", key: "broken.max_decode_error_rate", value: "2.0", allowed: "0.0...1.0")) {
            try PipelineConfiguration(toml: "[broken]\nmax_decode_error_rate = 2.0\n")
        }
        #expect(throws: ConfigurationError.self) { try PipelineConfiguration(toml: "[broken\n") }
    }
}
