#include "cfilesystem.h"

#include <sys/vfs.h>

int pipelined_filesystem_type(const char *path, long *type) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    *type = (long)info.f_type;
    return 0;
}
