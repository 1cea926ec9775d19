#ifndef PIPELINED_CFILESYSTEM_H
#define PIPELINED_CFILESYSTEM_H

/// statfs(2)'s f_type for `path` (Glibc's Swift module does not export <sys/vfs.h>).
/// Returns 0 and sets *type, or -1 with errno set.
int pipelined_filesystem_type(const char *path, long *type);

/// inotify(7), which Glibc's Swift module does not export: the input watcher of `pipelined work`.
/// A non-blocking, close-on-exec instance; -1 with errno set where it is not available.
int pipelined_inotify_open(void);
/// Watches one folder for files appearing, changing, being renamed in or out, or removed.
/// Returns the watch descriptor or -1 with errno set.
int pipelined_inotify_watch(int fd, const char *path);

/// What `pipelined_inotify_drain` saw (bits).
enum {
    PIPELINED_INOTIFY_CHANGE = 1,    ///< something under a watched folder changed
    PIPELINED_INOTIFY_NEW_FOLDER = 2,///< a folder was created or moved in (needs a watch of its own)
    PIPELINED_INOTIFY_OVERFLOW = 4   ///< the kernel dropped events: rescan everything
};
/// Waits up to `timeout_ms` for events and reads every pending one. Returns the bits above
/// (0 on timeout), or -1 with errno set.
int pipelined_inotify_drain(int fd, int timeout_ms);

#endif
