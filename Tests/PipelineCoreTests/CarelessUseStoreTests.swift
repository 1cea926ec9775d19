import Foundation
import GRDB
@testable import PipelineCore
import PipelineTestSupport
import Testing

/// The store and file-system pieces behind issue 17 ("nothing lost under careless use"), each on
/// its own; `pipelinedTests/CarelessUseTests` drives them through the CLI.
@Suite struct CarelessUseStoreTests {
    static func file(_ path: String, size: Int64 = 1, mtime: Double = 1, hash: String? = "h") -> DiscoveredFile {
        DiscoveredFile(relativePath: path, size: size, mtime: mtime, contentHash: hash)
    }

    /// Item 2: two sources that differ only by extension (or whose names collide otherwise) get
    /// different output stems; a stem, once given, never changes.
    @Test func outputStemsAreUniquePerSource() throws {
        let store = try PipelineStore.inMemory()
        _ = try store.syncSources([Self.file("talk.mp4"), Self.file("a/talk.mp4")])
        _ = try store.syncSources([Self.file("talk.mp4"), Self.file("a/talk.mp4"), Self.file("talk.mov"), Self.file("talk.mov.mp4"), Self.file("talk")])
        let stems = Dictionary(uniqueKeysWithValues: try store.activeSources().map { ($0.relativePath, $0.namingStem) })
        #expect(stems["talk.mp4"] == "talk" && stems["a/talk.mp4"] == "a/talk", "\(stems)")
        #expect(stems["talk.mov"] == "talk.mov", "\(stems)")
        #expect(Set(stems.values).count == stems.count, "stems collide: \(stems)")
        // A long name is cut to fit the file system, with a hash keeping it unique.
        let long = String(repeating: "é", count: 120) + ".mp4"
        let fitted = OutputNaming.stem(for: long, taken: [])
        #expect(fitted.utf8.count <= OutputNaming.maxNameBytes && fitted != OutputNaming.stem(for: "x" + long, taken: []), "\(fitted)")
        #expect(OutputFiles.temporaryName(for: fitted + "_shot_001_000_p12.landmarks").utf8.count <= 255)
    }

    /// Items 3 and 7: a vanished majority is refused without changing anything; a same-size rewrite
    /// is a change when the hash differs, a `touch` is not.
    @Test func massRemovalIsRefusedAndChangesNeedTheirHash() throws {
        let store = try PipelineStore.inMemory()
        _ = try store.syncSources([Self.file("a.mp4", hash: "a"), Self.file("b.mp4", hash: "b"), Self.file("c.mp4", hash: "c")])
        #expect(throws: StoreError.self) { try store.syncSources([Self.file("a.mp4", hash: "a")], maxGoneShare: 0.5) }
        #expect(try store.activeSources().count == 3, "a refused sync changes nothing")
        #expect(try store.syncSources([Self.file("a.mp4", hash: "a"), Self.file("b.mp4", hash: "b")], maxGoneShare: 0.5).gone == 1)

        let known = try #require(try store.sourcesByPath()["a.mp4"])
        #expect(!PipelineStore.needsHash(Self.file("a.mp4", hash: nil), known: known), "same size and mtime: not even hashed")
        #expect(PipelineStore.needsHash(Self.file("a.mp4", mtime: 2, hash: nil), known: known))
        #expect(try store.syncSources([Self.file("a.mp4", mtime: 2, hash: "a"), Self.file("b.mp4", hash: "b")]).changed == 0, "touched only")
        #expect(try store.syncSources([Self.file("a.mp4", mtime: 3, hash: "a2"), Self.file("b.mp4", hash: "b")]).changed == 1, "rewritten, same size")
        // A row from before v2 holds a partial hash: a moved mtime cannot be proven harmless.
        try store.writer.write { try $0.execute(sql: "UPDATE source SET contentHash = ? WHERE relativePath = 'b.mp4'", arguments: [String(repeating: "0", count: 32)]) }
        #expect(try store.syncSources([Self.file("a.mp4", mtime: 3, hash: "a2"), Self.file("b.mp4", mtime: 9, hash: String(repeating: "1", count: 64))]).changed == 1)
    }

    /// Item 7 end to end on a file: the whole content is hashed, so a change in the middle shows.
    @Test func wholeFileHashSeesAChangeInTheMiddle() throws {
        let dir = try Fixtures.temporaryDirectory("hash")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.bin")
        var bytes = [UInt8](repeating: 7, count: 5 << 20)
        try Data(bytes).write(to: url)
        let before = try Fingerprint.ofWholeFile(atPath: url.path)
        bytes[bytes.count / 2] = 8
        try Data(bytes).write(to: url)
        #expect(try Fingerprint.ofWholeFile(atPath: url.path) != before)
        #expect(before.count == 64)
    }

    /// Item 8: every entry gets a row or is walked: a line break, a name that is not UTF-8, a
    /// dangling link each carry a problem; a linked folder is followed; a link loop ends.
    @Test func discoveryRecordsEveryInputWithAProblem() throws {
        let root = try Fixtures.temporaryDirectory("names")
        defer { try? FileManager.default.removeItem(at: root) }
        let real = root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: real.appendingPathComponent("deeper"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: real.appendingPathComponent("deeper/in-link.mp4"))
        let input = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: input.appendingPathComponent("plain.mp4"))
        try Data("x".utf8).write(to: input.appendingPathComponent("two\nlines.mp4"))
        // "café.mp4" in Latin-1: the byte 0xE9 alone is not UTF-8.
        var bad = Array((input.path + "/caf").utf8) + [0xE9] + Array(".mp4".utf8) + [0]
        let fd = bad.withUnsafeMutableBufferPointer { buffer in buffer.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) } }
        #expect(fd >= 0); close(fd)
        try FileManager.default.createSymbolicLink(atPath: input.appendingPathComponent("linked").path, withDestinationPath: real.path)
        try FileManager.default.createSymbolicLink(atPath: input.appendingPathComponent("loop").path, withDestinationPath: input.path)
        try FileManager.default.createSymbolicLink(atPath: input.appendingPathComponent("dangling.mp4").path, withDestinationPath: root.appendingPathComponent("nowhere.mp4").path)

        let files = Dictionary(uniqueKeysWithValues: try Discovery.scan(input).map { ($0.relativePath, $0) })
        print("discovered: \(files.keys.sorted())")
        #expect(files["plain.mp4"]?.problem == nil && files["plain.mp4"]?.size == 1)
        #expect(files["linked/deeper/in-link.mp4"] != nil, "a linked folder is walked")
        #expect(files["two\nlines.mp4"]?.problem?.contains("line break") == true)
        #expect(files["caf\\xE9.mp4"]?.problem?.contains("UTF-8") == true)
        #expect(files["dangling.mp4"]?.problem?.contains("does not exist") == true)
        #expect(!files.keys.contains { $0.hasPrefix("loop/") }, "a link back to the root is not walked again")
        // mtime as Foundation reported it before v2 (the stored value is compared for equality: one
        // ulp off would make every file of an upgraded database look touched). Seeded mtimes with
        // nanoseconds.
        let stamps = try Fixtures.temporaryDirectory("mtimes")
        defer { try? FileManager.default.removeItem(at: stamps) }
        var random = SystemRandomNumberGenerator()
        let seed = UInt64.random(in: 0...UInt64.max, using: &random)
        print("mtime seed \(seed)")
        var state = seed
        for k in 0..<200 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let url = stamps.appendingPathComponent("f\(k)")
            try Data().write(to: url)
            var times = [timespec(tv_sec: Int(1_000_000_000 + (state >> 33) % 900_000_000), tv_nsec: Int((state >> 3) % 1_000_000_000)),
                         timespec(tv_sec: Int(1_000_000_000 + (state >> 33) % 900_000_000), tv_nsec: Int((state >> 3) % 1_000_000_000))]
            #expect(utimensat(AT_FDCWD, url.path, &times, 0) == 0)
        }
        for file in try Discovery.scan(stamps) {
            let foundation = try stamps.appendingPathComponent(file.relativePath).resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate!
            #expect(file.mtime == foundation.timeIntervalSince1970, "\(file.relativePath): \(file.mtime) vs \(foundation.timeIntervalSince1970)")
        }
    }

    /// Item 5: the sweep removes only our temporaries whose process is dead on this host, never
    /// an input that happens to carry the marker in its name, nor anything in the input folder.
    @Test func orphanSweepSparesInputsOtherHostsAndLiveRuns() throws {
        let root = try Fixtures.temporaryDirectory("sweep")
        defer { try? FileManager.default.removeItem(at: root) }
        let raw = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run(); dead.waitUntilExit()
        let host = OutputFiles.hostName, deadPid = dead.processIdentifier, me = getpid()
        print("host \(host), dead pid \(deadPid), live pid \(me)")
        let names = ["raw/holiday.pipelined-tmp-2019.mp4", "holiday.pipelined-tmp-2019.mp4", "raw/.a.mp4.pipelined-tmp-\(host)-\(deadPid)-1",
                     ".live.mp4.pipelined-tmp-\(host)-\(me)-2", ".other.mp4.pipelined-tmp-elsewhere-\(deadPid)-3",
                     ".dead.mp4.pipelined-tmp-\(host)-\(deadPid)-4", ".legacy.mp4.pipelined-tmp-\(deadPid)-5"]
        for name in names { try Data("x".utf8).write(to: root.appendingPathComponent(name)) }
        let before = try Fixtures.digests(of: raw)
        #expect(OutputFiles(root: root).removeOrphanTemporaries(excluding: [raw]) == 2)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: root.path))
        #expect(!left.contains(".dead.mp4.pipelined-tmp-\(host)-\(deadPid)-4") && !left.contains(".legacy.mp4.pipelined-tmp-\(deadPid)-5"))
        #expect(left.isSuperset(of: ["holiday.pipelined-tmp-2019.mp4", ".live.mp4.pipelined-tmp-\(host)-\(me)-2", ".other.mp4.pipelined-tmp-elsewhere-\(deadPid)-3"]))
        #expect(try Fixtures.digests(of: raw) == before)
        #expect(FileManager.default.fileExists(atPath: raw.appendingPathComponent(".a.mp4.pipelined-tmp-\(host)-\(deadPid)-1").path))
    }

    /// On a shared output directory, another host's temporary goes once the ledger knows no live
    /// writer for it and nobody touched it for the stale time; a live writer's, or a fresh one, stays.
    @Test func theSharedJanitorRemovesStaleTemporariesOfDeadWorkersOnOtherHosts() throws {
        let root = try Fixtures.temporaryDirectory("janitor")
        defer { try? FileManager.default.removeItem(at: root) }
        let names = [".dead.mp4.pipelined-tmp-node7.cluster-4242-1", ".alive.mp4.pipelined-tmp-node8-4243-2", ".fresh.mp4.pipelined-tmp-node9-4244-3"]
        for name in names { try Data("x".utf8).write(to: root.appendingPathComponent(name)) }
        let old = Date().addingTimeInterval(-600)
        for name in names.prefix(2) { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: root.appendingPathComponent(name).path) }
        let hosts = OutputFiles.OtherHosts(isAlive: { host, pid in host == "node8" && pid == 4243 }, staleAfter: 240)
        // Without the ledger's view (a local ledger), other hosts' files are never touched.
        #expect(OutputFiles(root: root).removeOrphanTemporaries() == 0)
        #expect(OutputFiles(root: root).removeOrphanTemporaries(otherHosts: hosts) == 1)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: root.path))
        #expect(left == Set(names.dropFirst()), "\(left)")
    }

    /// A file under an artifact folder that no result names (a worker killed between the rename and
    /// the commit, its item never made again) goes once it is older than the stale time; a known
    /// file, a young one, a hidden one, the index at the top and the input folder stay.
    @Test func strayOutputsGoOnlyWhenUnknownAndOld() throws {
        let root = try Fixtures.temporaryDirectory("strays")
        defer { try? FileManager.default.removeItem(at: root) }
        for folder in ["aligned", "high_visual_quality", "raw/aligned", "notes"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let files = ["aligned/a_shot_001_000.mp4", "aligned/stray_shot_001_000.mp4", "aligned/young_shot_001_000.mp4", "aligned/.hidden",
                     "high_visual_quality/a_shot_001_000.mp4", "raw/aligned/input.mp4", "notes/mine.txt", "fileslist.txt"]
        for file in files { try Data("x".utf8).write(to: root.appendingPathComponent(file)) }
        let old = Date().addingTimeInterval(-600)
        for file in files where !file.contains("young") {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: root.appendingPathComponent(file).path)
        }
        let known: Set<String> = ["aligned/a_shot_001_000.mp4", "high_visual_quality/a_shot_001_000.mp4"]
        let removed = OutputFiles(root: root).removeStrayOutputs(known: known, olderThan: 240, excluding: [root.appendingPathComponent("raw")])
        #expect(removed == ["aligned/stray_shot_001_000.mp4"])
        for file in files where file != "aligned/stray_shot_001_000.mp4" {
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent(file).path), "\(file) was removed")
        }
    }

    /// Item 1: a device or FIFO is written through, a symlink is followed, the database refused.
    @Test func userOutputFilesWriteThroughAndRefuseTheDatabase() throws {
        let dir = try Fixtures.temporaryDirectory("userfile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("pipelined.sqlite").path
        try Data("db".utf8).write(to: URL(fileURLWithPath: database))
        let protected = UserOutputFile.Protected.database(database)
        func write(_ path: String, _ text: String) throws {
            try UserOutputFile.write(to: path, protecting: protected) { try Data(text.utf8).write(to: URL(fileURLWithPath: $0)) }
        }
        // A character device: the node stays one.
        let device = dir.appendingPathComponent("null").path
        #expect(mknod(device, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0, "mknod needs root (tests run as root in CI)")
        try write(device, "page")
        var info = stat()
        #expect(stat(device, &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR)
        // A symbolic link: the target gets the content, the link stays.
        let target = dir.appendingPathComponent("real.html"), link = dir.appendingPathComponent("link.html")
        try Data("old".utf8).write(to: target)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: target.path)
        try write(link.path, "new")
        #expect(try String(contentsOf: target, encoding: .utf8) == "new")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == target.path)
        // The database, through its own path, a link to it, or its WAL: refused, untouched.
        let toDatabase = dir.appendingPathComponent("db-link").path
        try FileManager.default.createSymbolicLink(atPath: toDatabase, withDestinationPath: database)
        for path in [database, toDatabase, database + "-wal", dir.appendingPathComponent("./pipelined.sqlite").path] {
            #expect(throws: OutputFileError.self) { try write(path, "page") }
        }
        #expect(try String(contentsOf: URL(fileURLWithPath: database), encoding: .utf8) == "db")
        #expect(!FileManager.default.fileExists(atPath: database + "-wal"))
        // A missing folder is named.
        do { try write(dir.appendingPathComponent("no/such/list.txt").path, "x"); Issue.record("wrote into a missing folder") } catch {
            #expect("\(error)".contains("does not exist; create it first"), "\(error)")
        }
    }

    /// Migration v2 on a database an earlier release wrote: stems as the files were named, and only
    /// the later of two sources that shared a name redoes its clips; nothing else is touched.
    @Test func v1DatabaseMigratesWithoutRedoingWork() throws {
        let queue = try DatabaseQueue()
        try Migrations.migrator.migrate(queue, upTo: "v1-initial")
        try queue.write { db in
            for (id, path) in [(1, "talk.mp4"), (2, "talk.mov"), (3, "b/other.mp4")] {
                try db.execute(sql: "INSERT INTO source (id, relativePath, size, mtime, contentHash, discoveredAt) VALUES (?, ?, 1, 1, 'h', 0)", arguments: [id, path])
                try db.execute(sql: "INSERT INTO clip (id, sourceId, sceneIndex, segmentIndex, startFrame, endFrame) VALUES (?, ?, 0, 0, 0, 125)", arguments: [id, id])
                for stage in ["broken", "align", "publish"] {
                    try db.execute(sql: "INSERT INTO stageResult (stage, sourceId, clipId, itemKey, fingerprint, state) VALUES (?, ?, ?, ?, 'f', 'done')",
                                   arguments: [stage, id, stage == "broken" ? nil : id, stage == "broken" ? "s\(id)" : "c\(id)"])
                }
            }
        }
        try Migrations.migrator.migrate(queue, upTo: "v2-output-stems-problems-retired-artifacts")
        try queue.read { db in
            let stems = try Row.fetchAll(db, sql: "SELECT relativePath, outputStem FROM source").map { ($0[0] as String, $0[1] as String) }
            #expect(Dictionary(uniqueKeysWithValues: stems) == ["talk.mp4": "talk", "talk.mov": "talk.mov", "b/other.mp4": "b/other"])
            let superseded = try Row.fetchAll(db, sql: "SELECT sourceId, stage FROM stageResult WHERE superseded = 1").map { "\($0[0] as Int64)/\($0[1] as String)" }
            #expect(Set(superseded) == ["2/align", "2/publish"], "\(superseded)")
        }
    }
}

/// Issue 18: every input gets a row, duplicates are rejected until their original leaves.
@Suite struct EveryInputStoreTests {
    static func file(_ path: String, hash: String, mtime: Double = 1) -> DiscoveredFile {
        DiscoveredFile(relativePath: path, size: 1, mtime: mtime, contentHash: hash)
    }

    @Test func duplicatesWaitForTheirOriginalToLeave() throws {
        let store = try PipelineStore.inMemory()
        let h = String(repeating: "a", count: 64), g = String(repeating: "b", count: 64)
        _ = try store.syncSources([Self.file("b/original.mp4", hash: h)], rejectDuplicates: true)
        _ = try store.syncSources([Self.file("a/copy.mp4", hash: h), Self.file("b/original.mp4", hash: h), Self.file("other.mp4", hash: g)],
                                  rejectDuplicates: true)
        var sources = Dictionary(uniqueKeysWithValues: try store.activeSources().map { ($0.relativePath, $0) })
        #expect(sources["b/original.mp4"]?.problem == nil && sources["other.mp4"]?.problem == nil)
        #expect(sources["a/copy.mp4"]?.problem?.hasPrefix("duplicate of b/original.mp4") == true, "the source known first is the original")
        // Unchanged: no re-hash, no change.
        #expect(!PipelineStore.needsHash(DiscoveredFile(relativePath: "a/copy.mp4", size: 1, mtime: 1, contentHash: nil), known: sources["a/copy.mp4"]))
        let again = try store.syncSources([Self.file("a/copy.mp4", hash: h), Self.file("b/original.mp4", hash: h), Self.file("other.mp4", hash: g)],
                                          rejectDuplicates: true)
        #expect(again == SourceSync())
        // The original leaves: the copy takes its place (a change, so it is processed from the start).
        let sync = try store.syncSources([Self.file("a/copy.mp4", hash: h), Self.file("other.mp4", hash: g)], rejectDuplicates: true)
        #expect(sync.changed == 1 && sync.gone == 1, "\(sync)")
        sources = Dictionary(uniqueKeysWithValues: try store.activeSources().map { ($0.relativePath, $0) })
        #expect(sources["a/copy.mp4"]?.problem == nil)
        // Legacy partial hashes are never taken as proof of equality.
        let legacy = String(repeating: "c", count: 32)
        _ = try store.syncSources([Self.file("a/copy.mp4", hash: h), Self.file("other.mp4", hash: g), Self.file("x.mp4", hash: legacy), Self.file("y.mp4", hash: legacy)],
                                  rejectDuplicates: true)
        #expect(try store.activeSources().allSatisfy { $0.problem == nil })
    }

    @Test func fifosAndLinkLoopsGetRows() throws {
        let root = try Fixtures.temporaryDirectory("fifo")
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(mkfifo(root.appendingPathComponent("pipe.mp4").path, 0o644) == 0)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("sub/up").path, withDestinationPath: root.path)
        let files = Dictionary(uniqueKeysWithValues: try Discovery.scan(root).map { ($0.relativePath, $0) })
        #expect(files["pipe.mp4"]?.problem?.contains("FIFO") == true, "\(files)")
        #expect(files["sub/up"]?.problem?.contains("loop") == true, "\(files)")
    }
}

/// Stage 1's fingerprint is its settings' JSON: a key added to `[broken]` that is decided elsewhere
/// must not enter it, or every source of every upgraded database would be scanned again.
@Test func brokenFingerprintJSONIsWhatEarlierReleasesWrote() {
    #expect(Fingerprint.canonicalJSON(PipelineConfiguration().broken) == #"{"maxDecodeErrorRate":0.01,"minDurationSeconds":5}"#)
}

/// Issue 18: the scan's level meter tells speech, a quiet tone and digital silence apart, in
/// planar float (AAC) and packed integer (PCM) audio alike.
@Test func audioLevelMeterSeparatesSpeechFromSilence() throws {
    let dir = try Fixtures.temporaryDirectory("levels")
    defer { try? FileManager.default.removeItem(at: dir) }
    let speech = dir.appendingPathComponent("speech.mp4")
    try TalkingClips.write(speech, frames: 130, offset: 0)
    let silent = dir.appendingPathComponent("silent.mov"), quiet = dir.appendingPathComponent("quiet.mov")
    try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo",
                         "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le"], output: silent)
    try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100",
                         "-af", "volume=0.035", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], output: quiet)
    var shares: [String: Double] = [:]
    for url in [speech, silent, quiet] {
        let level = try ScanPass().run(path: url.path).audioLevel
        shares[url.lastPathComponent] = level.silentShare
        print(String(format: "%@: %.0f%% of samples below −60 dBFS, peak %.1f dBFS", url.lastPathComponent, level.silentShare * 100, level.peakDBFS))
    }
    #expect(shares["speech.mp4"]! < 0.5 && shares["quiet.mov"]! < 0.05 && shares["silent.mov"]! == 1, "\(shares)")
}
