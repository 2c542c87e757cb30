#ifndef COURIER_SHIM_H
#define COURIER_SHIM_H
// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE or are macros).
#include <stddef.h>
#include <sys/types.h>

dev_t courier_makedev(unsigned int major, unsigned int minor);
int courier_syncfs(int fd);
ssize_t courier_copy_file_range(int fd_in, int fd_out, size_t len);
int courier_ficlone(int dst_fd, int src_fd);
/// Reserves the blocks of [0, len) for an open file (Linux fallocate, mode 0): 0, or -1 with errno
/// (EOPNOTSUPP where the file system cannot, ENOSPC when the blocks are not there).
int courier_fallocate(int fd, long long len);
/// Turns O_DIRECT on (on != 0) or off for an open file (fcntl F_SETFL): 0, or -1 with errno
/// (EINVAL where the file system has no direct I/O).
int courier_set_direct(int fd, int on);
/// The file system type of an open file (statfs f_type, e.g. 0xEF53 for ext2/3/4), or -1 with errno.
long long courier_fs_magic(int fd);
/// Takes and at once releases a read lease: 0 when nobody has the file open for writing,
/// -1 with errno EAGAIN when someone does, other errno when leases are unsupported.
int courier_probe_read_lease(int fd);
/// Gives the heap's free pages back to the kernel (glibc `malloc_trim(0)`); 1 when some were.
int courier_release_free_memory(void);

/// pipe2(O_CLOEXEC): both ends close-on-exec from birth, so a child spawned by another thread
/// between pipe() and fcntl() cannot inherit them.
int courier_pipe_cloexec(int fds[2]);
/// The calling thread's kernel id (gettid(2)), which Swift's Glibc module does not import.
pid_t courier_gettid(void);

/// Starts a test or apply command, in two steps so that the caller can record the child's
/// process group before the command runs. `courier_spawn_begin` forks; the child takes a process
/// group of its own, SIGKILL when the parent thread dies (PR_SET_PDEATHSIG: the command must not
/// outlive a killed daemon and run on a tree the restarted daemon removes), all signals default
/// and unblocked, stdin /dev/null, stdout and stderr to `out_fd`, every other descriptor
/// close-on-exec, and then waits for the go. Returns the child's pid (also its process group),
/// with `*go_fd` and `*report_fd` for `courier_spawn_finish`, or -1 with errno.
pid_t courier_spawn_begin(const char *file, char *const argv[], char *const envp[], int out_fd,
                          int *go_fd, int *report_fd);
/// Lets the child exec. Returns 0 once it runs, or -1 with errno set to the exec's own errno
/// (reported through a close-on-exec pipe, so "command not found" is an error here and not an
/// exit status 127), the child reaped.
int courier_spawn_finish(pid_t pid, int go_fd, int report_fd);
#endif
