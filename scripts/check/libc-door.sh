#!/usr/bin/env bash
# libc-door: `Sys` (Sources/CourierCore/System/) and the C shim (Sources/CCourierShim/) are the only
# door to the system (docs/ARCHITECTURE.md, "Sys is the only door to the system"). This lists every
# raw libc call in Sources/ outside them — comments and string text ignored, code interpolated in
# strings (`"\(getpid())"`) not — and exits 1 naming file:line and the call if one is not on the
# allow-list below. It also lists, outside System/, `Sys.close` and the raw openers (`Sys.open`,
# `Sys.openat`, `Sys.openDirectory`, `Sys.openDirectoryAt`, `Sys.reopen`): there a descriptor is an
# `OwnedFD` that closes itself. Exits 0 and prints nothing when the tree is clean.
#
# Usage: scripts/check/libc-door.sh [ROOT]   (ROOT defaults to the repository holding this script)
set -euo pipefail
ROOT="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$ROOT"

exec python3 - <<'PY'
import os, re, sys

# The calls looked for: what the code used before it went through Sys, and their relatives.
CALLS = """
open openat openat2 creat close close_range read write pread pwrite readv writev preadv pwritev lseek
fsync fdatasync sync syncfs ftruncate truncate fallocate posix_fallocate posix_fadvise
copy_file_range sendfile splice ioctl fcntl flock lockf
rename renameat renameat2 unlink unlinkat rmdir mkdir mkdirat mkfifo mknod mknodat
stat lstat fstat fstatat statx statfs fstatfs statvfs fstatvfs access faccessat
symlink symlinkat readlink readlinkat link linkat realpath
chmod fchmod fchmodat chown fchown lchown fchownat utimensat futimens utimes umask
opendir fdopendir readdir closedir rewinddir scandir chdir fchdir getcwd mkstemp mkdtemp
pipe pipe2 dup dup2 dup3 socket socketpair bind listen accept accept4 connect shutdown
send recv sendto recvfrom sendmsg recvmsg setsockopt getsockopt
poll ppoll select epoll_create epoll_create1 epoll_ctl epoll_wait eventfd timerfd_create signalfd
inotify_init inotify_init1 inotify_add_watch inotify_rm_watch memfd_create
mmap munmap mremap madvise msync mlock munlock malloc_trim
fork vfork execv execve execvp execvpe posix_spawn posix_spawnp
posix_spawn_file_actions_init posix_spawn_file_actions_adddup2 posix_spawn_file_actions_addclose
posix_spawnattr_init posix_spawnattr_setflags posix_spawnattr_setpgroup posix_spawnattr_setsigmask
kill killpg raise waitpid wait wait3 wait4 waitid setpgid setsid prctl syscall
getpid getppid gettid getuid geteuid getgid getegid setuid setgid
sigaction sigprocmask pthread_sigmask signal alarm setrlimit getrlimit
fopen fdopen fclose fread fwrite fflush popen pclose system isatty
""".split()
# Names that are also C struct types: `stat()` with no arguments makes a struct, not a call.
STRUCTS = {"stat", "statfs", "statvfs", "sigaction", "flock"}

# Raw calls kept outside Sys on purpose, "path:call": reason. The same list, with the same
# reasons, is in docs/ARCHITECTURE.md ("Sys is the only door to the system").
ALLOW = {
}

DOORS = ("Sources/CourierCore/System/", "Sources/CCourierShim/")


def code_only(text):
    """The text with comments and string contents blanked (newlines kept, so lines still count),
    except code interpolated in strings, which stays. Swift block comments nest."""
    out = []
    i, n = 0, len(text)
    # Stack of contexts: ("code", paren depth) inside interpolation, ("str", quote) in a literal.
    stack = [("code", 0)]
    while i < n:
        kind, val = stack[-1]
        c = text[i]
        if kind == "code":
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                out.append(" " * (j - i)); i = j; continue
            if text.startswith("/*", i):
                depth, j = 1, i + 2
                while j < n and depth:
                    if text.startswith("/*", j): depth += 1; j += 2
                    elif text.startswith("*/", j): depth -= 1; j += 2
                    else: j += 1
                out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j; continue
            m = re.match(r'(#*)("""|")', text[i:i + 8])
            if m:
                stack.append(("str", m.group(1) + m.group(2)))
                out.append(" " * len(m.group(0))); i += len(m.group(0)); continue
            if c == "(" and len(stack) > 1:
                stack[-1] = ("code", val + 1)
            elif c == ")" and len(stack) > 1:
                if val == 0:
                    stack.pop(); out.append(" "); i += 1; continue
                stack[-1] = ("code", val - 1)
            out.append(c); i += 1; continue
        # In a string literal.
        hashes = len(val) - len(val.lstrip("#"))
        quote = val.lstrip("#")
        close = quote + "#" * hashes
        if text.startswith(close, i):
            stack.pop(); out.append(" " * len(close)); i += len(close); continue
        esc = "\\" + "#" * hashes
        if text.startswith(esc + "(", i):
            stack.append(("code", 0)); out.append(" " * (len(esc) + 1)); i += len(esc) + 1; continue
        if text.startswith(esc, i) and i + len(esc) < n:
            escaped = text[i + len(esc)]
            out.append(" " * len(esc) + ("\n" if escaped == "\n" else " ")); i += len(esc) + 1; continue
        out.append("\n" if c == "\n" else " "); i += 1
    return "".join(out)


call_re = re.compile(r"(?<![\w.])(Glibc\.)?(" + "|".join(sorted(CALLS, key=len, reverse=True)) + r")\s*\((\s*\))?")
func_re = re.compile(r"\bfunc\s+(\w+)\s*[(<]")

found = []
for dirpath, _, files in os.walk("Sources"):
    for f in sorted(files):
        if not f.endswith(".swift"):
            continue
        path = os.path.join(dirpath, f)
        if path.startswith(DOORS):
            continue
        code = code_only(open(path, encoding="utf-8").read())
        own = set(func_re.findall(code))  # a type's own `read(…)` is not libc's
        for m in call_re.finditer(code):
            qualified, name, empty = m.group(1), m.group(2), m.group(3)
            if not qualified and name in own:
                continue
            if name in STRUCTS and empty:
                continue
            before = code[max(0, m.start() - 6):m.start()].rstrip()
            if before.endswith("func") or before.endswith("case"):  # a declaration, an enum case
                continue
            line = code.count("\n", 0, m.start()) + 1
            found.append((path, line, name))

# Owned descriptors: outside System/ a descriptor is born an `OwnedFD` (its openers, or a Sys call
# that returns one) and closes itself, so the raw openers and `Sys.close` do not appear there.
RAW_FD = ["close", "open", "openat", "openDirectory", "openDirectoryAt", "openDirectoryChain", "reopen"]
raw_fd_re = re.compile(r"\bSys\.(" + "|".join(sorted(RAW_FD, key=len, reverse=True)) + r")\s*\(")
for dirpath, _, files in os.walk("Sources"):
    for f in sorted(files):
        path = os.path.join(dirpath, f)
        if not f.endswith(".swift") or path.startswith(DOORS):
            continue
        code = code_only(open(path, encoding="utf-8").read())
        for m in raw_fd_re.finditer(code):
            line = code.count("\n", 0, m.start()) + 1
            found.append((path, line, "Sys." + m.group(1)))

bad = [x for x in found if f"{x[0]}:{x[2]}" not in ALLOW]
for path, line, name in bad:
    if name.startswith("Sys."):
        print(f"{path}:{line}: {name}() hands out or closes a raw descriptor; use OwnedFD (Sources/CourierCore/System/OwnedFD.swift)")
    else:
        print(f"{path}:{line}: raw {name}() outside Sys; use (or add) a checked wrapper in Sources/CourierCore/System/")
if bad:
    print(f"libc-door: {len(bad)} raw call(s) in {len({p for p, _, _ in bad})} file(s) outside Sys", file=sys.stderr)
    sys.exit(1)
PY
