#define _GNU_SOURCE
#include "CCourierShim.h"
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>
#include <fcntl.h>
#include <malloc.h>

dev_t courier_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
int courier_syncfs(int fd) { return syncfs(fd); }
ssize_t courier_copy_file_range(int fd_in, int fd_out, size_t len) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, len, 0);
}
int courier_ficlone(int dst_fd, int src_fd) { return ioctl(dst_fd, FICLONE, src_fd); }
int courier_probe_read_lease(int fd) {
    if (fcntl(fd, F_SETLEASE, F_RDLCK) != 0) return -1;
    fcntl(fd, F_SETLEASE, F_UNLCK);
    return 0;
}

int courier_release_free_memory(void) {
    return malloc_trim(0);
}
