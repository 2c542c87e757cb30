#!/usr/bin/env bash
# The peer of courier-inboxd in scripts/bench/inboxd.sh: the pipeline an administrator would write
# with inotify-tools, bash, GNU tar and coreutils, doing the same steps for each package:
#
#   wait for close_write / moved_to of a *.cpkg (dot-names and temporary suffixes ignored)
#   → extract the payload with `tar --zstd -xf` into a new directory <store>/<revision>.tmp
#   → check every file's SHA-256 against the package's list (`sha256sum --strict -c`)
#   → rename the directory into place, switch `current` atomically (`ln -sfn` + `mv -T`)
#   → run the hook (`sh -c`, COURIER_REVISION and COURIER_PATH in its environment)
#   → remove the package from the inbox.
#
# A package that fails a step goes to <store>/../quarantine. What it does not do (and
# courier-inboxd does): verify the Ed25519 signature, check expiry and rollback, fsync, keep a
# state file and history, retention.
#
# Usage: peer.sh INBOX STORE LISTS HOOK [sync]
#   LISTS/<package name>.sha256 holds `sha256sum` lines for the files of the package's tree.
#   With "sync", the new tree is made durable (`sync -f`, a syncfs) before the switch, as
#   courier-inboxd does.
# Prints "Watches established." on stderr (from inotifywait) once it is listening.
set -uo pipefail

inbox=$1 store=$2 lists=$3 hook=$4 durable=${5:-}
mkdir -p -- "$store" "$store/../quarantine"

inotifywait -m -e close_write -e moved_to --format '%f' -- "$inbox" | while IFS= read -r f; do
    case $f in
        .* | *.tmp | *.part | *.partial | *~) continue ;;
        *.cpkg) ;;
        *) continue ;;
    esac
    [[ -f $inbox/$f ]] || continue
    rev=${f%.cpkg}
    rev=${rev##*_}
    new=$store/$rev.tmp
    rm -rf -- "$new"
    mkdir -- "$new"
    if tar --zstd -xf "$inbox/$f" -C "$new" --strip-components=1 payload \
        && (cd -- "$new" && sha256sum --quiet --strict -c -- "$lists/$f.sha256") \
        && { [[ $durable != sync ]] || sync -f -- "$new"; }; then
        rm -rf -- "${store:?}/$rev"
        mv -T -- "$new" "$store/$rev"
        ln -sfn -- "$rev" "$store/.current.tmp"
        mv -T -- "$store/.current.tmp" "$store/current"
        COURIER_REVISION=$rev COURIER_PATH=$store/$rev sh -c "$hook" || echo "peer: hook failed for $f" >&2
        rm -f -- "$inbox/$f"
    else
        echo "peer: refused $f" >&2
        rm -rf -- "$new"
        mv -- "$inbox/$f" "$store/../quarantine/"
    fi
done
