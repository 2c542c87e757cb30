#define _GNU_SOURCE
#include "CCourierShim.h"
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>
#include <fcntl.h>
#include <malloc.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <sys/vfs.h>

dev_t courier_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
int courier_syncfs(int fd) { return syncfs(fd); }
ssize_t courier_copy_file_range(int fd_in, int fd_out, size_t len) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, len, 0);
}
int courier_ficlone(int dst_fd, int src_fd) { return ioctl(dst_fd, FICLONE, src_fd); }
int courier_fallocate(int fd, long long len) { return fallocate(fd, 0, 0, (off_t)len); }
int courier_set_direct(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, on ? (fl | O_DIRECT) : (fl & ~O_DIRECT));
}
long long courier_fs_magic(int fd) {
    struct statfs s;
    if (fstatfs(fd, &s) != 0) return -1;
    return (long long)s.f_type;
}
int courier_probe_read_lease(int fd) {
    if (fcntl(fd, F_SETLEASE, F_RDLCK) != 0) return -1;
    fcntl(fd, F_SETLEASE, F_UNLCK);
    return 0;
}

int courier_release_free_memory(void) {
    return malloc_trim(0);
}

int courier_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
pid_t courier_gettid(void) { return (pid_t)syscall(SYS_gettid); }

pid_t courier_spawn_begin(const char *file, char *const argv[], char *const envp[], int out_fd,
                          int *go_fd, int *report_fd) {
    int report[2], go[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -1;
    if (pipe2(go, O_CLOEXEC) != 0) { int e = errno; close(report[0]); close(report[1]); errno = e; return -1; }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(report[0]); close(report[1]); close(go[0]); close(go[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        // Child of a multi-threaded parent: async-signal-safe calls only until exec.
        int e = 0;
        close(go[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) e = errno;
        else if (getppid() != parent) _exit(127);          /* the parent died before prctl */
        if (e == 0 && setpgid(0, 0) != 0) e = errno;
        if (e == 0) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);   /* fails harmlessly for KILL/STOP */
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            int null_fd = open("/dev/null", O_RDONLY);
            if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) e = errno;
            if (null_fd > 2) close(null_fd);
            /* Nothing of the daemon's but stdin, stdout and stderr reaches the command: descriptors
               a parent leaked to us without close-on-exec (a test harness's pipe, a log) would
               otherwise be held open by the command and everything it starts. Marked
               close-on-exec rather than closed, so the report pipe still works until exec. */
            if (e == 0 && syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
                for (int fd = 3; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
            }
        }
        if (e == 0) {
            /* Wait for the parent's go: it records our process group first, so that no command
               can run unrecorded. End of file means the parent gave up (or died): do not run. */
            char c;
            ssize_t n;
            do { n = read(go[0], &c, 1); } while (n < 0 && errno == EINTR);
            if (n != 1) _exit(127);
            execvpe(file, argv, envp);
            e = errno;
        }
        ssize_t w;
        do { w = write(report[1], &e, sizeof e); } while (w < 0 && errno == EINTR);
        _exit(127);
    }
    close(report[1]);
    close(go[0]);
    setpgid(pid, pid);   /* also here, so the group exists before the parent signals it */
    *go_fd = go[1];
    *report_fd = report[0];
    return pid;
}

int courier_spawn_finish(pid_t pid, int go_fd, int report_fd) {
    char c = 1;
    ssize_t w;
    do { w = write(go_fd, &c, 1); } while (w < 0 && errno == EINTR);
    close(go_fd);
    int e = 0;
    ssize_t n;
    do { n = read(report_fd, &e, sizeof e); } while (n < 0 && errno == EINTR);
    close(report_fd);
    if (n == (ssize_t)sizeof e) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        errno = e;
        return -1;
    }
    return 0;
}
