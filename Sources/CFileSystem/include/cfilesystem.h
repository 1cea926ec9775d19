#ifndef PIPELINED_CFILESYSTEM_H
#define PIPELINED_CFILESYSTEM_H

/// statfs(2)'s f_type for `path` (Glibc's Swift module does not export <sys/vfs.h>).
/// Returns 0 and sets *type, or -1 with errno set.
int pipelined_filesystem_type(const char *path, long *type);

#endif
