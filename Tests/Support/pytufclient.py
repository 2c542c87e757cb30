#!/usr/bin/env python3
"""python-tuf 7.0.1's ngclient behind the tuf-conformance client protocol, for Courier's
differential tests (courier-tuf and this must make the same requests and keep the same files).

    pytufclient.py --metadata-dir DIR init TRUSTED_ROOT
    pytufclient.py --metadata-dir DIR --metadata-url URL refresh
    pytufclient.py --metadata-dir DIR --metadata-url URL --target-name T [--target-name T2 ...]
                   --target-base-url URL --target-dir DIR download

Exit status 0 on success, 1 on any failure.
"""
import argparse
import os
import shutil
import sys

from tuf.ngclient import Updater


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[])
    p.add_argument("--target-base-url")
    p.add_argument("--target-dir")
    p.add_argument("command")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    try:
        if a.command == "init":
            os.makedirs(a.metadata_dir, exist_ok=True)
            shutil.copyfile(a.args[0], os.path.join(a.metadata_dir, "root.json"))
        elif a.command == "refresh":
            Updater(a.metadata_dir, a.metadata_url, bootstrap=None).refresh()
        elif a.command == "download":
            u = Updater(a.metadata_dir, a.metadata_url, a.target_dir, a.target_base_url, bootstrap=None)
            for name in a.target_name:
                info = u.get_targetinfo(name)
                if info is None:
                    raise RuntimeError(f"target {name} not found")
                if u.find_cached_target(info) is None:
                    u.download_target(info)
        else:
            raise RuntimeError(f"unknown command {a.command}")
    except Exception as e:  # noqa: BLE001
        print(f"pytufclient: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
