#include "cfilesystem.h"

#include <sys/vfs.h>

int pipelined_filesystem_type(const char *path, long *type) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    *type = (long)info.f_type;
    return 0;
}

#ifdef __linux__
#include <sys/inotify.h>
#include <poll.h>
#include <unistd.h>
#include <errno.h>

int pipelined_inotify_open(void) { return inotify_init1(IN_NONBLOCK | IN_CLOEXEC); }

int pipelined_inotify_watch(int fd, const char *path) {
    return inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE
                                       | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF);
}

int pipelined_inotify_drain(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int ready = poll(&p, 1, timeout_ms);
    if (ready < 0) return errno == EINTR ? 0 : -1;
    if (ready == 0) return 0;
    int seen = 0;
    char buffer[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0) { if (errno == EAGAIN || errno == EINTR) break; return -1; }
        if (n == 0) break;
        for (char *at = buffer; at < buffer + n;) {
            const struct inotify_event *event = (const struct inotify_event *)at;
            if (event->mask & IN_Q_OVERFLOW) seen |= PIPELINED_INOTIFY_OVERFLOW;
            else seen |= PIPELINED_INOTIFY_CHANGE;
            if ((event->mask & IN_ISDIR) && (event->mask & (IN_CREATE | IN_MOVED_TO))) seen |= PIPELINED_INOTIFY_NEW_FOLDER;
            at += sizeof(struct inotify_event) + event->len;
        }
    }
    return seen;
}
#else
#include <errno.h>
int pipelined_inotify_open(void) { errno = ENOSYS; return -1; }
int pipelined_inotify_watch(int fd, const char *path) { (void)fd; (void)path; errno = ENOSYS; return -1; }
int pipelined_inotify_drain(int fd, int timeout_ms) { (void)fd; (void)timeout_ms; errno = ENOSYS; return -1; }
#endif
