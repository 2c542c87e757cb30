#!/usr/bin/env python3
"""Writes canonical_vectors.json: random JSON documents (nested objects and lists, strings
drawn from ASCII, escapes, controls, BMP and astral code points, integers at the Int64 edges),
each written by Python's json.dumps in a random style, with securesystemslib's encode_canonical
of it. Tests/TUFTests (CanonicalJSONTests) parses each input and requires the same bytes.
Run: python3 make_canonical_vectors.py  (needs securesystemslib)."""
import json, random, unicodedata
from securesystemslib.formats import encode_canonical

rng = random.Random(14)
ALPHABET = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\x00', '\x1f', '\x7f', '\u00e9', 'e\u0301',
            '\u212a', 'K', '\u2028', '\u202e', '\ufeff', '\uffff', '\U00010000', '\U0001f600', '\u4e2d']

def s():
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))

def value(depth):
    r = rng.random()
    if depth > 3 or r < 0.35:
        return rng.choice([None, True, False, rng.randint(-2**63, 2**63 - 1), rng.randint(-5, 5), s(), s()])
    if r < 0.6:
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]
    # Keys that are canonically equivalent Unicode (U+212A and "K", "\u00e9" and "e\u0301")
    # are refused by our parser as duplicates on purpose; keep them out of one object here.
    o, nfc = {}, set()
    for _ in range(rng.randint(0, 5)):
        k = s()
        if unicodedata.normalize("NFC", k) not in nfc:
            nfc.add(unicodedata.normalize("NFC", k))
            o[k] = value(depth + 1)
    return o

out = []
while len(out) < 300:
    v = value(0)
    text = json.dumps(v, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]), sort_keys=rng.random() < 0.3)
    out.append({"input": text.encode("utf-8").hex(), "canonical": encode_canonical(v).encode("utf-8").hex()})
with open("canonical_vectors.json", "w") as f:
    json.dump(out, f, indent=0)
