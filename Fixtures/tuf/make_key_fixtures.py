#!/usr/bin/env python3
"""Writes keys.json: public keys of every type securesystemslib's CryptoSigner generates
(ed25519, ecdsa nistp256, rsa pss, rsa pkcs1v15), each with a signature over a message, as
python-tuf 7.0.1 / securesystemslib 1.x write them. Tests/TUFTests (TUFKeyTests) verifies them with TUFKey.
Run: python3 make_key_fixtures.py  (needs `pip install tuf==7.0.1`)."""
import json
from securesystemslib.signer import CryptoSigner

out = []
signers = [
    ("ed25519", CryptoSigner.generate_ed25519()),
    ("ecdsa-p256", CryptoSigner.generate_ecdsa()),
    ("rsa-pss-sha256", CryptoSigner.generate_rsa(size=2048)),
    ("rsa-pkcs1v15-sha256", CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256", size=2048)),
]
for name, s in signers:
    # A message with non-ASCII bytes and a canonical-JSON look, as signed metadata is.
    msg = '{"_type":"targets","n":"caf\u00e9 \\"q\\"","v":1}'.encode()
    sig = s.sign(msg)
    out.append({
        "name": name,
        "keyid": s.public_key.keyid,
        "key": s.public_key.to_dict(),
        "message": msg.hex(),
        "sig": sig.signature,
    })
with open("keys.json", "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
