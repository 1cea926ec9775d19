import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// `pipelined work`, the long-running worker, as a process: it makes the dataset `run` makes,
/// takes an input that appears while it runs (once the file stands still), serves metrics whose
/// text parses as Prometheus text and whose counters agree with `status --json`, and exits 0 on
/// SIGTERM leaving no temporary file. `work --once` makes the same dataset and exits like `run`.
@Suite(.serialized) struct WorkCommandTests {
    /// Per (stage, state), the counter `pipelined_items_total`, parsed by an independent parser
    /// (Debian's python3-prometheus-client), which fails on text that is not Prometheus text format.
    static func scrape(port: Int) throws -> (counters: [String: Double], queued: Double, running: Double, held: Double) {
        let script = """
            import sys, urllib.request
            from prometheus_client.parser import text_string_to_metric_families
            text = urllib.request.urlopen("http://127.0.0.1:\(port)/metrics", timeout=10).read().decode()
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    print(f"{s.name}\\t{labels}\\t{s.value}")
            """
        let r = try Fixtures.run("/usr/bin/python3", ["-c", script])
        guard r.status == 0 else { throw CLIFailure("the metrics did not parse as Prometheus text: \(r.stderr)") }
        var counters: [String: Double] = [:]
        var queued = 0.0, running = 0.0, held = 0.0
        for line in String(decoding: r.stdout, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, let value = Double(fields[2]) else { continue }
            switch fields[0] {
            case "pipelined_items_total": counters[fields[1]] = value
            case "pipelined_items_queued": queued += value
            case "pipelined_items_running": running += value
            case "pipelined_leases_held": held = value
            default: break
            }
        }
        return (counters, queued, running, held)
    }

    struct CLIFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Waits up to `timeout` seconds for `condition`.
    static func eventually(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if try condition() { return true }
            usleep(200_000)
        }
        return try condition()
    }

    @Test func aWorkerTakesNewInputsServesMetricsAndStopsOnSIGTERM() throws {
        let root = try Fixtures.temporaryDirectory("work")
        defer { try? FileManager.default.removeItem(at: root) }
        let all = root.appendingPathComponent("all"), raw = root.appendingPathComponent("raw")
        for folder in [all, raw] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        try TalkingClips.write(all.appendingPathComponent("speaker_a.mp4"), frames: 135, offset: 4)
        try TalkingClips.write(all.appendingPathComponent("speaker_b.mp4"), frames: 160, offset: -3)
        try FaceClips.write(all.appendingPathComponent("nobody.mp4"), frames: 135, gap: 0..<135)
        let config = root.appendingPathComponent("c.conf")
        try "[broken]\nmin_duration_seconds = 1.0\n".write(to: config, atomically: true, encoding: .utf8)

        // The reference: one `run` over every input.
        let local = root.appendingPathComponent("local")
        let reference = try CLI.run(["run", "--input-dir", all.path, "--output-dir", local.path, "--config", config.path, "--quiet", "--jobs", "2"])
        #expect(reference.status == 0, "\(reference.stderr)")

        // The worker starts with one input; the others arrive while it runs.
        try FileManager.default.copyItem(at: all.appendingPathComponent("speaker_a.mp4"), to: raw.appendingPathComponent("speaker_a.mp4"))
        let shared = root.appendingPathComponent("shared")
        let trace = root.appendingPathComponent("trace.tsv")
        let port = try PostgresServer.freePort()
        let log = root.appendingPathComponent("work.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let worker = Process()
        worker.executableURL = try CLI.executable
        worker.arguments = ["work", "--input-dir", raw.path, "--output-dir", shared.path, "--config", config.path, "--slots", "2",
                            "--metrics-port", String(port), "--metrics-address", "127.0.0.1", "--settle", "1", "--rescan", "2", "--grace", "30"]
        worker.environment = ProcessInfo.processInfo.environment.merging(["PIPELINED_TRACE": trace.path]) { $1 }
        worker.standardError = try FileHandle(forWritingTo: log)
        worker.standardOutput = FileHandle.nullDevice
        try worker.run()
        defer { if worker.isRunning { kill(worker.processIdentifier, SIGKILL) } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        func settled(brokenDecided: Double) throws -> Bool {
            guard worker.isRunning, let m = try? Self.scrape(port: port) else { return false }
            let broken = (m.counters["stage=broken,state=done"] ?? 0) + (m.counters["stage=broken,state=rejected"] ?? 0)
            return broken == brokenDecided && m.queued == 0 && m.running == 0 && m.held == 0
                && (m.counters["stage=publish,state=done"] ?? 0) > 0
        }
        #expect(try Self.eventually(120) { try settled(brokenDecided: 1) }, "\(logText())")

        // Copied in while the worker runs, in pieces (as an upload arrives): taken once whole.
        for name in ["speaker_b.mp4", "nobody.mp4"] {
            let bytes = try Data(contentsOf: all.appendingPathComponent(name))
            let handle = try FileHandle(forWritingTo: { FileManager.default.createFile(atPath: raw.appendingPathComponent(name).path, contents: nil); return raw.appendingPathComponent(name) }())
            for chunk in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 4)) {
                try handle.write(contentsOf: bytes[chunk..<min(bytes.count, chunk + max(1, bytes.count / 4))])
                usleep(300_000)
            }
            try handle.close()
        }
        #expect(try Self.eventually(180) { try settled(brokenDecided: 3) }, "\(logText())")
        let metrics = try Self.scrape(port: port)

        // SIGTERM: exit 0, the index written.
        kill(worker.processIdentifier, SIGTERM)
        #expect(Self.eventually(60) { !worker.isRunning }, "did not stop within 60 s of SIGTERM")
        worker.waitUntilExit()
        #expect(worker.terminationStatus == 0, "\(logText())")

        // The dataset `run` made, byte for byte, and the same index.
        func published(_ folder: URL) throws -> [String: String] { try Fixtures.digests(of: folder.appendingPathComponent("high_visual_quality")) }
        let expected = try published(local)
        #expect(!expected.isEmpty)
        #expect(try published(shared) == expected)
        func index(_ folder: URL) throws -> String {
            try String(contentsOf: folder.appendingPathComponent("fileslist.txt"), encoding: .utf8).replacingOccurrences(of: folder.path, with: "OUT")
        }
        #expect(try index(shared) == index(local))
        let leftovers = FileManager.default.enumerator(atPath: shared.path)!.compactMap { $0 as? String }.filter { $0.contains(".partial") || $0.contains(".tmp") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        // No item ran twice, and none on a half-copied file (its broken check would have run twice).
        let executions = try String(contentsOf: trace, encoding: .utf8).split(separator: "\n")
        #expect(Set(executions).count == executions.count, "\(executions)")

        // The counters agree with `status --json`.
        let r = try CLI.run(["status", "--json", "--output-dir", shared.path])
        #expect(r.status == 0, "\(r.stderr)")
        let status = try JSONDecoder.iso.decode(StatusReport.self, from: Data(r.stdout.utf8))
        for stage in status.stages {
            for (state, count) in [("done", stage.done), ("rejected", stage.rejected), ("failed", stage.failed)] {
                #expect(metrics.counters["stage=\(stage.stage),state=\(state)"] ?? -1 == Double(count), "\(stage.stage) \(state): status \(count), metrics \(metrics.counters)")
            }
        }
        #expect(status.stages.contains { $0.rejected > 0 }, "the fixture set should include a rejection")

        // `work --once` makes the same dataset and exits as `run` does.
        let once = root.appendingPathComponent("once")
        let o = try CLI.run(["work", "--once", "--input-dir", all.path, "--output-dir", once.path, "--config", config.path, "--quiet", "--slots", "2"])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(try published(once) == expected)
        #expect(try index(once) == index(local))
    }

    @Test func badArgumentsAreRefusedBeforeAnythingStarts() throws {
        let root = try Fixtures.temporaryDirectory("workargs")
        defer { try? FileManager.default.removeItem(at: root) }
        let r = try CLI.run(["work", "--input-dir", root.path, "--output-dir", root.appendingPathComponent("out").path, "--stages", "broken,bogus"])
        #expect(r.status == 64 && r.stderr.contains("bogus"), "\(r.status) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("out").path))
        // A metrics port that is taken: one line naming it.
        let taken = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(taken) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(taken, $0, length) } }
        _ = listen(taken, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(taken, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let raw = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        let m = try CLI.run(["work", "--input-dir", raw.path, "--output-dir", root.appendingPathComponent("out2").path,
                             "--metrics-port", String(port), "--metrics-address", "127.0.0.1"])
        #expect(m.status == 1 && m.stderr.contains("\(port)"), "\(m.status) \(m.stderr)")
    }
}
