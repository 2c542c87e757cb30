"""The mirror simulation of docs/SCALE.md (`make scale-sim`) at a small size, so that it keeps
working: courier-stage stages three revisions, nginx serves the outbox with the shipped site
config, and 300 simulated clients poll (every answer a 304) and then download after a publish
(every package checked against index.json by size and SHA-256). Needs nginx and courier-stage
($COURIER_BIN)."""
import json, os, shutil, subprocess, tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("COURIER_BIN", "/tmp/courier-bin")
pytestmark = [
    pytest.mark.skipif(not os.access(os.path.join(BIN, "courier-stage"), os.X_OK), reason=f"no courier-stage in {BIN}"),
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (make bootstrap installs it)"),
]


def test_small_simulation_serves_every_client():
    out = tempfile.mkdtemp(prefix="courier-pullsim-test.")
    try:
        env = dict(os.environ, SIM_CLIENTS="300", SIM_CONCURRENCY="50", SIM_DB_MIB="1", SIM_PORT="18091", SIM_OUT=out)
        p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "scale", "pullsim.sh"), BIN], env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr + p.stdout
        r = json.load(open(os.path.join(out, "report.json")))
        poll, pub = r["phases"]["poll"], r["phases"]["publish"]
        assert poll["errors"] == 0 and pub["errors"] == 0
        # Nothing changed: every client's conditional GET is answered 304 with no body, and the
        # server's own log agrees.
        assert poll["server"]["status"] == {"304": 300} and poll["server"]["body_bytes_sent"] == 0
        # After the publish: one index per client plus each client's packages, all 200.
        d = pub["downloads"]
        assert pub["server"]["status"] == {"200": 300 + d["delta"] + d["full"]}
        # 95 % of the clients were behind on each of the two types (spread 80/10/5 behind, 5 up to
        # date); deltas for those holding a base, fulls for those with nothing.
        assert d["delta"] > d["full"] > 0
        # What the server sent is what the clients counted (bodies), to the byte.
        assert pub["server"]["body_bytes_sent"] == pub["body_bytes"]
        assert "nginx CPU" in p.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)
