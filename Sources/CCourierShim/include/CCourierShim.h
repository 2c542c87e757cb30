#ifndef COURIER_SHIM_H
#define COURIER_SHIM_H
// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE or are macros).
#include <stddef.h>
#include <sys/types.h>

dev_t courier_makedev(unsigned int major, unsigned int minor);
int courier_syncfs(int fd);
ssize_t courier_copy_file_range(int fd_in, int fd_out, size_t len);
int courier_ficlone(int dst_fd, int src_fd);
/// Takes and at once releases a read lease: 0 when nobody has the file open for writing,
/// -1 with errno EAGAIN when someone does, other errno when leases are unsupported.
int courier_probe_read_lease(int fd);
/// Gives the heap's free pages back to the kernel (glibc `malloc_trim(0)`); 1 when some were.
int courier_release_free_memory(void);

#endif
