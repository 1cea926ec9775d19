import Foundation
import GRDB
import Inference
@testable import PipelineCore
import PipelineTestSupport
import Testing

/// Issue 17, through the CLI as an operator uses it: nothing is lost, damaged or silently wrong
/// under careless use. Inputs and foreign files are hashed before and after every step that must
/// not touch them.
@Suite(.serialized) struct CarelessUseTests {
    /// `pipelined ARGS` with standard error going to `stderr` (a full disk, a closed pipe).
    static func run(_ arguments: [String], stderr: FileHandle) throws -> Int32 {
        let process = Process()
        process.executableURL = try CLI.executable
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationReason == .exit, "pipelined died from signal \(process.terminationStatus)")
        return process.terminationStatus
    }

    static func lines(_ url: URL) throws -> [String] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// The files under `high_visual_quality/`, as a directory-based consumer sees the dataset.
    static func publishedFiles(_ out: URL) -> Set<String> {
        let folder = out.appendingPathComponent("high_visual_quality")
        let names = (FileManager.default.enumerator(atPath: folder.path)?.allObjects as? [String]) ?? []
        return Set(names.filter { $0.hasSuffix(".mp4") }.map { folder.appendingPathComponent($0).path })
    }

    /// fileslist.txt lists exactly the published clips on disk, each existing.
    static func expectExactDataset(_ out: URL, count: Int, _ step: String) throws {
        let listed = try lines(out.appendingPathComponent("fileslist.txt"))
        #expect(listed.count == count, "\(step): \(listed)")
        #expect(Set(listed).count == listed.count, "\(step): a clip listed twice: \(listed)")
        #expect(Set(listed) == publishedFiles(out), "\(step): list \(listed) vs folder \(publishedFiles(out))")
        for path in listed { #expect(FileManager.default.fileExists(atPath: path), "\(step): \(path) is listed but missing") }
    }

    /// The scripted careless operator: a duplicate stem, prune with the input folder
    /// missing, the folder returning, an output dir inside the input dir, a changed source, logs to
    /// a full disk and to a closed pipe. Ends with a dataset whose fileslist.txt lists exactly the
    /// existing published clips of the present sources.
    @Test func carelessOperatorEndsWithAnExactDataset() throws {
        let root = try Fixtures.temporaryDirectory("careless")
        defer { try? FileManager.default.removeItem(at: root) }
        let raw = root.appendingPathComponent("raw"), out = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        try TalkingClips.write(raw.appendingPathComponent("talk.mp4"), frames: 130, offset: 2)
        // The same streams in another container: other bytes, so not a duplicate of talk.mp4.
        try Fixtures.ffmpeg(["-i", raw.appendingPathComponent("talk.mp4").path, "-c", "copy", "-f", "mov"], output: raw.appendingPathComponent("talk.mov"))
        // An input whose name carries the temporaries' marker (item 5).
        try Fixtures.video(raw.appendingPathComponent("holiday.pipelined-tmp-2019.mp4"), seconds: 1)
        let args = ["run", "--input-dir", raw.path, "--output-dir", out.path, "--quiet"]
        let inputs = try Fixtures.digests(of: raw)

        // 1. Two inputs differing only by extension each get their own clips (item 2).
        var r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectExactDataset(out, count: 2, "first run")
        // Discovery goes in name order: talk.mov keeps the reference's name, talk.mp4 its extension.
        #expect(Set(try Self.lines(out.appendingPathComponent("fileslist.txt")).map { URL(fileURLWithPath: $0).lastPathComponent })
                == ["talk_shot_001_000.mp4", "talk.mp4_shot_001_000.mp4"])
        #expect(try Fixtures.digests(of: raw) == inputs, "inputs changed")

        // 2. The input disk is "unmounted": prune is refused, nothing is deleted (item 3). (Lock
        // files hold the pid of their last holder; the database is compared by what it says.)
        func outputs() throws -> [String: String] {
            var files = try Fixtures.digests(of: out).filter { !$0.key.hasSuffix(".lock") && !$0.key.contains("pipelined.sqlite") }
            files["status"] = try CLI.run(["status", "--output-dir", out.path]).stdout.split(separator: "\n").filter { !$0.hasPrefix("last run") }.joined()
            return files
        }
        let before = try outputs()
        try FileManager.default.moveItem(at: raw, to: root.appendingPathComponent("raw.away"))
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        r = try CLI.run(args + ["--prune"])
        #expect(r.status == 1 && r.stderr.contains("--allow-mass-removal") && r.stderr.contains("mounted"), "\(r.stderr)")
        #expect(try outputs() == before, "a refused run changed the output")

        // 3. The operator insists: the dataset is pruned…
        r = try CLI.run(args + ["--prune", "--allow-mass-removal"])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectExactDataset(out, count: 0, "pruned")
        let aligned = (FileManager.default.enumerator(atPath: out.appendingPathComponent("aligned").path)?.allObjects as? [String]) ?? []
        #expect(aligned.filter { $0.hasSuffix(".mp4") }.isEmpty, "\(aligned)")

        // 4. …and the folder comes back: every source is made again, not "already decided".
        try FileManager.default.removeItem(at: raw)
        try FileManager.default.moveItem(at: root.appendingPathComponent("raw.away"), to: raw)
        r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectExactDataset(out, count: 2, "returned")
        // A published clip deleted by hand is noticed (a stat per file) and made again.
        let deleted = try #require(try Self.lines(out.appendingPathComponent("fileslist.txt")).first)
        try FileManager.default.removeItem(atPath: deleted)
        r = try CLI.run(args)
        #expect(r.status == 0 && FileManager.default.fileExists(atPath: deleted), "\(r.stderr)")
        try Self.expectExactDataset(out, count: 2, "deleted by hand")

        // 5. Pruning one of the two same-stem inputs leaves the other's clips alone (item 2).
        try FileManager.default.removeItem(at: raw.appendingPathComponent("talk.mov"))
        r = try CLI.run(args + ["--prune"])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectExactDataset(out, count: 1, "one pruned")
        #expect(try Self.lines(out.appendingPathComponent("fileslist.txt")).first?.hasSuffix("high_visual_quality/talk.mp4_shot_001_000.mp4") == true)

        // 6. An output dir inside (or equal to) the input dir is refused; nothing is written there (item 4).
        let rawBefore = try Fixtures.digests(of: raw)
        for inside in [raw.appendingPathComponent("out"), raw] {
            r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", inside.path, "--quiet"])
            #expect(r.status == 1 && r.stderr.contains("input directory"), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: raw.appendingPathComponent("out").path))
        #expect(try Fixtures.digests(of: raw) == rawBefore)

        // 7. A source changes into one without a face: its old published clip leaves the folder too (item 9).
        try FileManager.default.removeItem(at: raw.appendingPathComponent("talk.mp4"))
        try FaceClips.write(raw.appendingPathComponent("talk.mp4"), frames: 130, gap: 0..<130)
        // 8. Logs to a full disk and to a closed pipe: the run neither traps nor dies of SIGPIPE (item 11).
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        #expect(try Self.run(Array(args.dropLast()), stderr: full) == 0)
        try Self.expectExactDataset(out, count: 0, "changed source")
        try FileManager.default.copyItem(at: raw.appendingPathComponent("talk.mp4"), to: raw.appendingPathComponent("again.mp4"))
        let pipe = Pipe()
        try pipe.fileHandleForReading.close()
        #expect(try Self.run(Array(args.dropLast()), stderr: pipe.fileHandleForWriting) == 0)
        r = try CLI.run(["status", "--output-dir", out.path, "--json"])
        let report = try JSONDecoder.iso.decode(StatusReport.self, from: Data(r.stdout.utf8))
        #expect(report.activeSources == 3 && report.lastRun?.status == .finished, "\(r.stdout)")
        try Self.expectExactDataset(out, count: 0, "after the closed pipe")
        #expect(FileManager.default.fileExists(atPath: raw.appendingPathComponent("holiday.pipelined-tmp-2019.mp4").path), "the sweep deleted an input")
    }

    /// Items 1, 15, 16, 17, 18: report and export write through devices and links and refuse the
    /// database; readers never write the database; errors name the path and what to do.
    @Test func readersAndUserNamedFilesNeverDamageAnything() throws {
        let root = try CommandTests.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out"), raw = root.appendingPathComponent("raw")
        let conf = root.appendingPathComponent("pipeline.conf").path
        var r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let database = out.appendingPathComponent("pipelined.sqlite")
        let databaseBytes = try Data(contentsOf: database)

        // A character device stays a device (item 1).
        let device = root.appendingPathComponent("n").path
        #expect(mknod(device, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
        r = try CLI.run(["report", "--output-dir", out.path, "--html", device])
        #expect(r.status == 0, "\(r.stderr)")
        var info = stat()
        #expect(stat(device, &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR, "report replaced a device with a file")
        // A symlink is written through.
        let target = root.appendingPathComponent("list-target.txt"), link = root.appendingPathComponent("list.txt")
        try Data().write(to: target)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: target.path)
        r = try CLI.run(["export", "--output-dir", out.path, "--fileslist", link.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == target.path)
        // The database is refused under any of its names.
        for path in [database.path, database.path + "-wal", out.appendingPathComponent("./pipelined.sqlite").path] {
            r = try CLI.run(["report", "--output-dir", out.path, "--html", path])
            #expect(r.status == 1 && r.stderr.contains("database"), "\(path): \(r.stderr)")
        }
        // Readers opened it read-only: the file is byte for byte what the run left (item 15).
        r = try CLI.run(["status", "--output-dir", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: database) == databaseBytes, "a reader wrote the database")

        // On a read-only mount (a bind mount remounted read-only; tests run as root), readers still read.
        let mount = root.appendingPathComponent("ro-mount")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        #expect(try Fixtures.run("/bin/mount", ["--bind", out.path, mount.path]).status == 0, "bind mount (needs root)")
        defer { _ = try? Fixtures.run("/bin/umount", [mount.path]) }
        #expect(try Fixtures.run("/bin/mount", ["-o", "remount,bind,ro", mount.path]).status == 0)
        #expect(!FileManager.default.createFile(atPath: mount.appendingPathComponent("probe").path, contents: Data()), "the mount is writable")
        for arguments in [["status"], ["export", "--fileslist", root.appendingPathComponent("ro-list.txt").path],
                          ["report", "--html", root.appendingPathComponent("ro-report.html").path]] {
            r = try CLI.run(arguments + ["--output-dir", mount.path])
            #expect(r.status == 0, "\(arguments) on a read-only mount: \(r.stderr)")
        }
        _ = try Fixtures.run("/bin/umount", [mount.path])

        // A run row left "running" by a killed process reads "interrupted" once its lock is free (item 16).
        var pool: DatabaseQueue? = try DatabaseQueue(path: database.path)
        try pool!.write { try $0.execute(sql: "UPDATE run SET status = 'running', finishedAt = NULL") }
        pool = nil
        r = try CLI.run(["status", "--output-dir", out.path, "--json"])
        var report = try JSONDecoder.iso.decode(StatusReport.self, from: Data(r.stdout.utf8))
        #expect(report.lastRun?.status == .interrupted && report.workers.isEmpty, "\(r.stdout)")
        do {
            let lock = try RunLock(databasePath: database.path, wait: false)
            r = try CLI.run(["status", "--output-dir", out.path, "--json"])
            report = try JSONDecoder.iso.decode(StatusReport.self, from: Data(r.stdout.utf8))
            #expect(report.lastRun?.status == .running)
            // The run holding the lock is listed as a worker.
            #expect(report.workers.map(\.run) == [report.lastRun!.id], "\(r.stdout)")
            let text = try CLI.run(["status", "--output-dir", out.path]).stdout
            #expect(text.contains("workers:") && text.contains("run #\(report.lastRun!.id) on"), "\(text)")
            _ = lock
        }

        // Messages name the path and what to do; no Foundation error dumps (items 17, 18).
        let file = root.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let cases: [([String], String)] = [
            (["run", "--input-dir", raw.path, "--output-dir", file.path], "is a file, not a folder"),
            (["run", "--input-dir", raw.path, "--output-dir", root.appendingPathComponent("o2").path, "--config", root.path], "it is a folder"),
            (["export", "--output-dir", out.path, "--fileslist", root.appendingPathComponent("no/such/list.txt").path], "does not exist; create it first"),
            (["run", "--input-dir", root.appendingPathComponent("nonexistent/raw").path, "--output-dir", root.appendingPathComponent("nonexistent/out").path], "does not exist"),
        ]
        for (arguments, expected) in cases {
            r = try CLI.run(arguments)
            #expect(r.status == 1 && r.stderr.contains(expected) && !r.stderr.contains("NSCocoaErrorDomain"), "\(arguments): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("nonexistent").path), "a failed run created folders")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("o2").path))
    }

    /// Items 15 and 19: a database an older release wrote is refused by readers and upgraded by
    /// `run`; a database with damaged pages stops the run before anything is written.
    @Test func olderAndDamagedDatabases() throws {
        let root = try CommandTests.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out"), raw = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let database = out.appendingPathComponent("pipelined.sqlite")
        let conf = root.appendingPathComponent("pipeline.conf").path
        do {
            let old = try DatabaseQueue(path: database.path)
            try Migrations.migrator.migrate(old, upTo: "v1-initial")
        }
        var r = try CLI.run(["status", "--output-dir", out.path])
        #expect(r.status == 1 && r.stderr.contains("older pipelined"), "\(r.stderr)")
        r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try CLI.run(["status", "--output-dir", out.path]).status == 0)

        // Damage a page in the middle of the file (seeded, printed).
        let size = try FileManager.default.attributesOfItem(atPath: database.path)[.size] as! Int
        var random = SeededGenerator(seed: 17)
        let page = 2 + Int(random.next() % UInt64(max(1, size / 4096 - 3)))
        print("damaging page \(page) of \(size / 4096)")
        let handle = try FileHandle(forWritingTo: database)
        try handle.seek(toOffset: UInt64(page * 4096))
        try handle.write(contentsOf: Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &random) }))
        try handle.close()
        let damaged = try Data(contentsOf: database)
        r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf, "--quiet"])
        #expect(r.status == 1 && (r.stderr.contains("damaged") || r.stderr.contains("malformed")), "\(r.stderr)")
        #expect(try Data(contentsOf: database) == damaged, "a damaged database was written into")
    }

    /// Items 6 and 12: `infer` never overwrites its inputs and checks them before loading models;
    /// nonsense numbers are usage errors.
    @Test func inferAndNumbersAreCheckedFirst() throws {
        let root = try Fixtures.temporaryDirectory("infer-checks")
        defer { try? FileManager.default.removeItem(at: root) }
        let video = root.appendingPathComponent("v.mp4")
        try Fixtures.video(video, seconds: 1)
        let digest = try Fixtures.digests(of: root)
        let link = root.appendingPathComponent("link.mp4")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: video.path)
        for out in [video.path, link.path, root.appendingPathComponent("./v.mp4").path] {
            let r = try CLI.run(["infer", "--video", video.path, "--audio", video.path, "--out", out])
            #expect(r.status == 1 && r.stderr.contains("input video"), "\(r.stderr)")
        }
        #expect(try Fixtures.digests(of: root).filter { $0.key == "v.mp4" } == digest)
        var r = try CLI.run(["infer", "--video", root.appendingPathComponent("missing.mp4").path, "--audio", video.path, "--out", root.appendingPathComponent("o.mp4").path])
        #expect(r.status == 1 && r.stderr.contains("missing.mp4: no such file") && !r.stderr.contains("--unet"), "the video is checked before the models: \(r.stderr)")
        r = try CLI.run(["infer", "--video", video.path, "--audio", video.path, "--out", root.appendingPathComponent("no/dir/o.mp4").path])
        #expect(r.status == 1 && r.stderr.contains("does not exist"), "\(r.stderr)")
        for bad in ["nan", "inf", "-1"] {
            r = try CLI.run(["infer", "--video", video.path, "--audio", video.path, "--out", root.appendingPathComponent("o.mp4").path, "--guidance", bad])
            #expect(r.status == 64 && r.stderr.contains("--guidance"), "\(bad): \(r.stderr)")
        }
        for jobs in ["2147483648", "9223372036854775807", "0", "1025"] {
            r = try CLI.run(["run", "--input-dir", root.path, "--jobs", jobs])
            #expect(r.status == 64 && r.stderr.contains("--jobs"), "\(jobs): \(r.stderr)")
        }
    }

    /// Items 7, 8, 10, 14: a same-size rewrite is a change and a touch is not; names that cannot be
    /// listed are rejected once with the reason, long names work; failed items get their exit code;
    /// configuration is checked before any work.
    @Test func changesNamesFailuresAndConfiguration() throws {
        let root = try CommandTests.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out"), raw = root.appendingPathComponent("raw")
        let conf = root.appendingPathComponent("pipeline.conf")
        try Data("x".utf8).write(to: raw.appendingPathComponent("two\nlines.mp4"))
        let long = String(repeating: "long name ", count: 23) + ".mp4"
        try TalkingClips.write(raw.appendingPathComponent(long), frames: 130, offset: 0)
        let args = ["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf.path, "--json"]
        var r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        var status = try JSONDecoder.iso.decode(StatusReport.self, from: Data(try CLI.run(["status", "--output-dir", out.path, "--json"]).stdout.utf8))
        let reasons = status.rejections.flatMap(\.examples).map(\.reason)
        #expect(reasons.contains { $0.contains("line break") }, "\(reasons)")
        #expect(try Self.lines(out.appendingPathComponent("fileslist.txt")).count == 1, "the long-named clip is published")
        // Decided once: the next run has nothing to do for them.
        r = try CLI.run(args)
        let counts = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect((counts["counts"] as? [String: [String: Int]])?.values.allSatisfy(\.isEmpty) == true, "\(r.stdout)")

        // A touch is not a change; a same-size rewrite in the middle is.
        let good = raw.appendingPathComponent("good.mp4")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: good.path)
        r = try CLI.run(args)
        #expect((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["sources"] as? [String: Int] == ["new": 0, "changed": 0, "gone": 0, "returned": 0])
        var bytes = try Data(contentsOf: good)
        let middle = bytes.count / 2
        bytes[middle] = bytes[middle] ^ 0xFF
        try bytes.write(to: good)
        r = try CLI.run(args)
        #expect(((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["sources"] as? [String: Int])?["changed"] == 1, "\(r.stdout)")

        // Configuration: a missing model file or another frame rate stops the run before any work.
        for (text, key) in [("[align]\nlandmark_model = \"/nonexistent.dat\"\n", "align.landmark_model"),
                            ("[quality]\nbrisque_model = \"/nonexistent.yml\"\n", "quality.brisque_model"),
                            ("[normalize]\nfps = 30\n", "normalize.fps"), ("[normalize]\nsample_rate = 44100\n", "normalize.sample_rate")] {
            let c = root.appendingPathComponent("c.conf")
            try text.write(to: c, atomically: true, encoding: .utf8)
            r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", root.appendingPathComponent("never").path, "--config", c.path])
            #expect(r.status == 1 && r.stderr.contains(key), "\(key): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("never").path))

        // Failed items: waiting for a retry (3), then failed for good (4), said even with --quiet.
        let garbage = root.appendingPathComponent("garbage.dat")
        try Data("not a model".utf8).write(to: garbage)
        for (attempts, codes) in [(2, [Int32(3), 4]), (1, [Int32(4), 4])] {
            let c = root.appendingPathComponent("fail\(attempts).conf")
            try "[broken]\nmin_duration_seconds = 1.0\n[run]\nmax_attempts = \(attempts)\nretry_backoff_seconds = 0\n[align]\nlandmark_model = \"\(garbage.path)\"\n"
                .write(to: c, atomically: true, encoding: .utf8)
            let failOut = root.appendingPathComponent("fail\(attempts)")
            for code in codes {
                r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", failOut.path, "--config", c.path, "--quiet"])
                #expect(r.status == code && r.stderr.contains("failed") && r.stderr.contains("status --failed"), "\(attempts): \(r.status) \(r.stderr)")
            }
        }
        status = try JSONDecoder.iso.decode(StatusReport.self, from: Data(try CLI.run(["status", "--output-dir", root.appendingPathComponent("fail1").path, "--json"]).stdout.utf8))
        #expect(!status.failures.isEmpty)
    }

    /// Items 5 and 20: the output directory is locked too; --wait-timeout gives up; SIGHUP drains.
    @Test func locksTimeoutsAndHangUps() throws {
        let root = try CommandTests.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out"), raw = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let conf = root.appendingPathComponent("pipeline.conf").path
        do {
            let lock = try RunLock(lockFile: RunLock.outputDirectoryLockFile(out), waitSeconds: nil, subject: .outputDirectory)
            var r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", out.path, "--db", root.appendingPathComponent("other.sqlite").path, "--config", conf])
            #expect(r.status == 75 && r.stderr.contains("output directory"), "\(r.stderr)")
            let started = Date()
            r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf, "--wait-timeout", "1"])
            #expect(r.status == 75 && r.stderr.contains("waiting 1 s") && Date().timeIntervalSince(started) >= 1, "\(r.stderr)")
            _ = lock
        }
        // SIGHUP: the run stops taking work and exits 130; the next run resumes.
        for k in 0..<4 { try Fixtures.video(raw.appendingPathComponent("more\(k).mp4"), seconds: 2) }
        let process = try CLI.start(["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf, "--jobs", "1"])
        // The run holds the output directory's lock (its pid in the file) once its handlers are in place.
        let lockFile = RunLock.outputDirectoryLockFile(out)
        for _ in 0..<600 where (try? String(contentsOfFile: lockFile, encoding: .utf8))?.hasPrefix("\(process.processIdentifier)\n") != true {
            usleep(50_000)
        }
        usleep(300_000)
        kill(process.processIdentifier, SIGHUP)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && [0, 130].contains(process.terminationStatus), "SIGHUP killed the run: \(process.terminationStatus)")
        let r = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", out.path, "--config", conf, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
    }
}
