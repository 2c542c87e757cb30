#!/usr/bin/env python3
"""mixed_tree.py DIR MIB NFILES [--seed N]: a content tree that looks like security content.

Half of the bytes are text files of signature-like lines (ClamAV .ndb style: a family name that
repeats, a target type, an offset, a hex body), which zstd level 3 compresses about 2.5:1; the
other half are incompressible blobs (random bytes, as packed databases, YARA compiled rules or
already compressed feeds are). Three text files for every blob, in sub-directories. Every file is
distinct (no dedup helps either side), sizes add up to exactly MIB MiB, and the same seed gives the
same tree.

Used by scripts/bench/verify.sh and stage.sh, so that decompression and hashing both cost what
they cost on real content: a tree of random bytes alone makes zstd's work a memcpy.
"""
import os
import random
import sys

FAMILIES = [b"Win.Trojan.Agent", b"Win.Malware.Emotet", b"Doc.Dropper.Valyria", b"Unix.Trojan.Mirai",
            b"Html.Phishing.Bank", b"Js.Downloader.Nemucod", b"Pdf.Exploit.CVE_2018_4990",
            b"Andr.Spyware.Joker", b"Osx.Adware.Bundlore", b"Xls.Macro.Qakbot"]
TARGETS = [b"0", b"1", b"3", b"6", b"7", b"9"]
OFFSETS = [b"*", b"0", b"EOF-512", b"EP+0", b"SL+128", b"S0+4"]


def text_bytes(rng, size, serial):
    """`size` bytes of signature lines, the last line cut to fit."""
    out = bytearray()
    chunk = 1 << 20
    while len(out) < size:
        # Random hex bodies in bulk, then cut into lines: per-line work stays small.
        raw = rng.randbytes(chunk // 2).hex().encode()
        pos = 0
        lines = []
        have = len(out)
        while pos < len(raw) and have < size:
            n = rng.randrange(24, 160, 2)
            serial += 1
            line = b"%s-%d-%d:%s:%s:%s\n" % (rng.choice(FAMILIES), serial, rng.randrange(10),
                                             rng.choice(TARGETS), rng.choice(OFFSETS), raw[pos:pos + n])
            lines.append(line)
            have += len(line)
            pos += n
        out += b"".join(lines)
    return bytes(out[:size]), serial


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--seed")]
    seed = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--seed=")), 1)
    if len(args) != 3:
        sys.exit("usage: mixed_tree.py DIR MIB NFILES [--seed=N]")
    root, mib, nfiles = args[0], int(args[1]), int(args[2])
    total = mib << 20
    rng = random.Random(seed)
    blobs = max(1, nfiles // 4) if nfiles > 1 else 0
    texts = nfiles - blobs
    text_total = total // 2 if blobs else total
    serial = 0
    for kind, count, share in (("text", texts, text_total), ("blob", blobs, total - text_total)):
        if count == 0:
            continue
        d = os.path.join(root, "signatures" if kind == "text" else "packed")
        os.makedirs(d, exist_ok=True)
        for i in range(count):
            size = share // count + (1 if i < share % count else 0)
            path = os.path.join(d, ("sigs-%05d.ndb" if kind == "text" else "blob-%05d.cdb") % i)
            with open(path, "wb") as f:
                if kind == "text":
                    data, serial = text_bytes(rng, size, serial)
                    f.write(data)
                else:
                    left = size
                    while left:
                        n = min(left, 8 << 20)
                        f.write(os.urandom(n))
                        left -= n


if __name__ == "__main__":
    main()
