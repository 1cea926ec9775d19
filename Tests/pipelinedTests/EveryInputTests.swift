import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// Issue 18: inputs that cannot be used end as rejected sources with their reason (none vanish),
/// duplicates are rejected until their original leaves, and the inputs stay byte-identical.
@Suite(.serialized) struct EveryInputTests {
    /// SHA-256 of the regular files under `directory` (a FIFO must not be opened).
    static func regularDigests(_ directory: URL) throws -> [String: String] {
        var result: [String: String] = [:]
        for case let url as URL in FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil, options: [])! {
            var info = stat()
            guard lstat(url.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            result[url.lastPathComponent] = try Fingerprint.ofWholeFile(atPath: url.path)
        }
        return result
    }

    @Test func unusableAndDuplicateInputsAreRejectedWithTheirReason() throws {
        let root = try CommandTests.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let raw = root.appendingPathComponent("raw"), out = root.appendingPathComponent("out")
        try FileManager.default.copyItem(at: raw.appendingPathComponent("good.mp4"), to: raw.appendingPathComponent("zz copy.mp4"))
        #expect(mkfifo(raw.appendingPathComponent("pipe.mp4").path, 0o644) == 0)
        try FileManager.default.createSymbolicLink(atPath: raw.appendingPathComponent("dangling.mp4").path, withDestinationPath: root.appendingPathComponent("gone.mp4").path)
        // Digital silence is rejected; a quiet voice (a tone at about −50 dBFS) is not.
        try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
                             "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], output: raw.appendingPathComponent("muted.mp4"))
        try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000",
                             "-af", "volume=0.035", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le"],
                            output: raw.appendingPathComponent("quiet.mov"))
        let before = try Self.regularDigests(raw)
        let args = ["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", root.appendingPathComponent("pipeline.conf").path, "--quiet"]
        var r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        func rejections() throws -> [String: String] {
            let status = try JSONDecoder.iso.decode(StatusReport.self, from: Data(try CLI.run(["status", "--output-dir", out.path, "--json"]).stdout.utf8))
            return Dictionary(status.rejections.flatMap(\.examples).map { ($0.item, $0.reason) }, uniquingKeysWith: { a, _ in a })
        }
        var reasons = try rejections()
        #expect(reasons["zz copy.mp4"]?.hasPrefix("duplicate of good.mp4") == true, "\(reasons)")
        #expect(reasons["pipe.mp4"]?.contains("FIFO") == true, "\(reasons)")
        #expect(reasons["dangling.mp4"]?.contains("does not exist") == true, "\(reasons)")
        #expect(reasons["muted.mp4"]?.contains("silent audio") == true && reasons["muted.mp4"]?.contains("digital silence") == true, "\(reasons)")
        #expect(reasons["quiet.mov"]?.contains("silent") != true, "\(reasons)")
        #expect(try Self.regularDigests(raw) == before, "inputs changed")

        // The original leaves: the copy is processed in its place.
        try FileManager.default.removeItem(at: raw.appendingPathComponent("good.mp4"))
        r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        reasons = try rejections()
        #expect(reasons["zz copy.mp4"]?.hasPrefix("duplicate") != true, "\(reasons)")
        let status = try JSONDecoder.iso.decode(StatusReport.self, from: Data(try CLI.run(["status", "--output-dir", out.path, "--json"]).stdout.utf8))
        #expect(status.stages.first { $0.stage == "normalize" }?.done == 2, "the copy (and quiet.mov) went on past stage 1")
    }
}
