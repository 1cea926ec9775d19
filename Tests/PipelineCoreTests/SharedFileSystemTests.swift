import Foundation
import GRDB
@testable import PipelineCore
import PipelineTestSupport
import Testing

/// SQLite on a filesystem several hosts mount: the store refuses to open a database for writing
/// while another host is running on it, and says why; local disks, ended runs and dead runs do not
/// stop anyone.
@Suite struct SharedFileSystemTests {
    @Test func filesystemTypesAreNamed() throws {
        #expect(FileSystemKind.of(type: 0x6969) == FileSystemKind(name: "nfs", shared: true))
        #expect(FileSystemKind.of(type: 0xFF53_4D42) == FileSystemKind(name: "cifs", shared: true))
        #expect(FileSystemKind.of(type: 0x6573_5546).shared)  // FUSE: sshfs, s3fs, …
        #expect(FileSystemKind.of(type: 0xEF53) == FileSystemKind(name: "ext4", shared: false))
        #expect(FileSystemKind.of(type: 0x1234) == FileSystemKind(name: "0x1234", shared: false))
        // statfs itself, on filesystems this machine certainly has; a file not made yet is looked up by its folder.
        #expect(FileSystemKind.of(path: "/proc/self") == FileSystemKind(name: "proc", shared: false))
        let temporary = try #require(FileSystemKind.of(path: NSTemporaryDirectory() + "not-made-yet/pipelined.sqlite"))
        #expect(!temporary.shared, "the test machine's temporary folder is on \(temporary)")
    }

    @Test func anotherHostsLiveRunOnASharedFilesystemIsRefused() throws {
        let folder = try Fixtures.temporaryDirectory("shared-fs")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("pipelined.sqlite").path
        let nfs = FileSystemKind(name: "nfs", shared: true), ext4 = FileSystemKind(name: "ext4", shared: false)
        let start = Date()

        // Host a runs (on NFS, alone: fine).
        let a = try PipelineStore(path: path, host: "a", fileSystem: nfs, now: start)
        let run = try a.beginRun(host: "a", pid: 1, version: "test", now: start)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))

        // Host b, while a's run is alive: refused, naming the filesystem, the host and the run; nothing written.
        do {
            _ = try PipelineStore(path: path, host: "b", fileSystem: nfs, now: start.addingTimeInterval(60))
            Issue.record("a second host on NFS should be refused")
        } catch let error as StoreError {
            let text = "\(error)"
            #expect(text.contains("nfs") && text.contains("host a") && text.contains("run #\(run.id!)") && text.contains("one host at a time"), "\(text)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes)
        // The same host (a second process of a), or any host on a local disk, opens it.
        _ = try PipelineStore(path: path, host: "a", fileSystem: nfs, now: start.addingTimeInterval(60))
        _ = try PipelineStore(path: path, host: "b", fileSystem: ext4, now: start.addingTimeInterval(60))
        // A run that stopped heartbeating two leases ago is dead; one that ended is over.
        _ = try PipelineStore(path: path, host: "b", fileSystem: nfs, now: start.addingTimeInterval(2 * Lease.duration + 1))
        try a.finishRun(id: run.id!, status: .finished, counts: nil, now: start.addingTimeInterval(30))
        _ = try PipelineStore(path: path, host: "b", fileSystem: nfs, now: start.addingTimeInterval(60))
    }
}
