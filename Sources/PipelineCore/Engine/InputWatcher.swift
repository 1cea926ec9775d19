import CFileSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells a long-running worker that something under the input folder changed, so that it rescans
/// now instead of at its next periodic rescan. inotify on Linux, every folder watched (hidden ones
/// too: an upload tool may write to `.name.part` and rename it into place).
///
/// A hint, never the truth: inotify sees only this host's writes (not another NFS client's), the
/// kernel may drop events, and a folder created between a scan and its watch is missed. The
/// periodic rescan is what guarantees that every file is found; this makes the common case fast.
public final class InputWatcher: @unchecked Sendable {
    // @unchecked: `changedAt` is guarded by `lock`; the descriptor is used by the watching thread only.
    private let lock = NSLock()
    private var changedAt: Date?
    private let fd: Int32
    private let root: String
    private var stopped = false

    /// nil where inotify is not available (not Linux, or the watch limit reached): the periodic
    /// rescan alone then finds new files.
    public init?(root: URL) {
        let fd = pipelined_inotify_open()
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.root = root.path
        watchFolders()
        Thread.detachNewThread { [self] in watch() }
    }

    deinit { stop() }

    public func stop() {
        lock.lock(); defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
    }

    /// When the last change was seen since the last `take()`, if any; clears it.
    public func take() -> Date? {
        lock.lock(); defer { lock.unlock() }
        defer { changedAt = nil }
        return changedAt
    }

    private func watch() {
        while true {
            lock.lock(); let done = stopped; lock.unlock()
            if done { close(fd); return }
            let seen = pipelined_inotify_drain(fd, 500)
            if seen < 0 { return }
            if seen == 0 { continue }
            lock.lock(); changedAt = Date(); lock.unlock()
            if seen & Int32(PIPELINED_INOTIFY_NEW_FOLDER | PIPELINED_INOTIFY_OVERFLOW) != 0 {
                watchFolders()
            }
        }
    }

    /// Adds a watch to every folder under the root (adding one twice is harmless).
    private func watchFolders() {
        var pending = [root]
        var walked = 0
        while let folder = pending.popLast(), walked < 100_000 {
            walked += 1
            guard pipelined_inotify_watch(fd, folder) >= 0 || errno != ENOSPC else { return } // out of watches: rescans still find everything
            guard let dir = opendir(folder) else { continue }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                guard name != ".", name != ".." else { continue }
                var info = stat()
                let path = folder + "/" + name
                if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { pending.append(path) }
            }
        }
    }
}
