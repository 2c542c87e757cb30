#!/usr/bin/env python3
"""python-tuf 7.0.1's ngclient behind the tuf-conformance client-under-test CLI protocol (the same
protocol courier-tuf implements): the reference client of the Python interop tests
(Tests/interop/tuf) and of the Swift differential tests (courier-tuf and this must make the same
requests and keep the same files), and the peer of scripts/bench/tuf.sh.

    pytufclient.py --metadata-dir DIR init TRUSTED_ROOT
    pytufclient.py --metadata-dir DIR --metadata-url URL refresh
    pytufclient.py --metadata-dir DIR --metadata-url URL --target-name T [--target-name T2 ...]
                   --target-base-url URL --target-dir DIR download

Options may come in any order, before or after the command. Exit 0 on full success, 1 on any
failure (including bad usage: the protocol knows only the two codes). python-tuf stores metadata
under non-versioned, percent-encoded names (plus its own root_history/ subdirectory), reads the
clock through datetime.now() (so `faketime` moves it) and names a downloaded artifact
quote(target path, safe="") inside the target dir.
"""
import os
import shutil
import sys
import traceback

sys.dont_write_bytecode = True

OPTIONS = {"--metadata-dir": "metadata_dir", "--metadata-url": "metadata_url",
           "--target-base-url": "target_base_url", "--target-dir": "target_dir"}


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """Options anywhere (`--opt VALUE` or `--opt=VALUE`), --target-name repeatable; the rest positional."""
    opts: dict = {"target_names": []}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in OPTIONS or name == "--target-name":
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                i += 1
                value = argv[i]
            if name == "--target-name":
                opts["target_names"].append(value)
            else:
                opts[OPTIONS[name]] = value
        elif arg.startswith("--"):
            raise UsageError(f"unknown option {arg}")
        else:
            positional.append(arg)
        i += 1
    return opts, positional


def need(opts: dict, *keys: str) -> None:
    for k in keys:
        if not opts.get(k):
            raise UsageError(f"--{k.replace('_', '-')} is required")


def main(argv: list[str]) -> int:
    opts, pos = parse(argv)
    if not pos:
        raise UsageError("no command")
    command, args = pos[0], pos[1:]
    need(opts, "metadata_dir")
    mdir = opts["metadata_dir"]

    if command == "init":
        if len(args) != 1:
            raise UsageError("init takes one TRUSTED_ROOT")
        os.makedirs(mdir, exist_ok=True)
        shutil.copyfile(args[0], os.path.join(mdir, "root.json"))  # no checks, no network
        return 0

    # Imported late so that `init` and usage errors work even without python-tuf.
    from tuf.ngclient import Updater

    if args:
        raise UsageError(f"{command} takes no arguments")
    if command == "refresh":
        need(opts, "metadata_url")
        # bootstrap=None: the trust anchor is the root.json that init (or a previous run) left in DIR.
        Updater(mdir, opts["metadata_url"], bootstrap=None).refresh()
        return 0
    if command == "download":
        need(opts, "metadata_url", "target_base_url", "target_dir")
        if not opts["target_names"]:
            raise UsageError("download needs --target-name")
        os.makedirs(opts["target_dir"], exist_ok=True)
        updater = Updater(mdir, opts["metadata_url"], opts["target_dir"], opts["target_base_url"], bootstrap=None)
        # One updater for all names, in argument order: metadata is refreshed once, delegated
        # roles loaded once; the first failure ends the run.
        for name in opts["target_names"]:
            info = updater.get_targetinfo(name)
            if info is None:
                print(f"pytufclient: target {name!r} not found", file=sys.stderr)
                return 1
            if updater.find_cached_target(info) is None:
                updater.download_target(info)
        return 0
    raise UsageError(f"unknown command {command}")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as e:
        print(f"pytufclient: usage: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:  # any TUF, download or OS error is a failed run, reported with its cause
        traceback.print_exc()
        sys.exit(1)
