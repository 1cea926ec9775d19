import CFileSystem
import Foundation

/// What kind of filesystem holds a path, from `statfs(2)`'s `f_type`: enough to tell a local disk
/// from a filesystem other hosts may share.
///
/// Why it matters: SQLite's write-ahead log keeps its index in shared memory (the `-shm` file,
/// memory-mapped), which works only among processes of one host. Two hosts writing one database on
/// NFS or SMB corrupt it without an error. The store refuses that (`PipelineStore.init(path:)`).
public struct FileSystemKind: Sendable, Equatable, CustomStringConvertible {
    /// A short name: "nfs", "cifs", "fuse", … or the magic number in hex for an unknown local filesystem.
    public var name: String
    /// Whether other hosts may mount the same files (network, cluster and FUSE filesystems).
    public var shared: Bool

    public init(name: String, shared: Bool) { self.name = name; self.shared = shared }

    public var description: String { name }

    /// Filesystems other hosts can mount, by `f_type` (linux/magic.h and the vendors' headers).
    /// FUSE is counted as shared: sshfs, s3fs, GlusterFS and JuiceFS all arrive through it.
    static let sharedTypes: [Int: String] = [
        0x6969: "nfs", 0x517B: "smb", 0xFF53_4D42: "cifs", 0xFE53_4D42: "smb2", 0x00C3_6400: "ceph",
        0x7375_7245: "coda", 0x5346_414F: "afs", 0x6B41_4653: "afs", 0x0102_1997: "9p", 0x6573_5546: "fuse",
        0x0BD0_0BD0: "lustre", 0x4750_4653: "gpfs", 0x0116_1970: "gfs2", 0x7461_636F: "ocfs2",
        0x1983_0326: "beegfs", 0xAAD7_AAEA: "panfs", 0x2003_0528: "orangefs", 0x564C: "ncp",
    ]
    static let localTypes: [Int: String] = [
        0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs", 0x794C_7630: "overlay",
        0x2FC1_2FC1: "zfs", 0x9FA0: "proc", 0xF2F5_2010: "f2fs", 0x4D44: "vfat", 0x5346_544E: "ntfs",
    ]

    /// The kind for a `statfs` type number.
    public static func of(type: Int) -> FileSystemKind {
        let key = type & 0xFFFF_FFFF  // f_type is a signed long; magic numbers are 32-bit
        if let name = sharedTypes[key] { return FileSystemKind(name: name, shared: true) }
        return FileSystemKind(name: localTypes[key] ?? String(format: "0x%x", key), shared: false)
    }

    /// The filesystem holding `path` (a file or a folder; for a file not made yet, its folder).
    public static func of(path: String) -> FileSystemKind? {
        var url = URL(fileURLWithPath: path)
        var type = 0
        while pipelined_filesystem_type(url.path, &type) != 0 {
            guard url.path != "/" else { return nil }
            url.deleteLastPathComponent()
        }
        return of(type: type)
    }
}
