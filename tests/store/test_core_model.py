"""The controller's model against a real northbound store."""

import json
import subprocess
import sys

from ovsdb import nbserver
from ovsdb.nb import Northbound


def test_a_change_the_model_failed_to_take_is_read_again(tmp_path):
    remote = nbserver.start(str(tmp_path))
    try:
        nb = Northbound(remote).start()
        nb.transact([nb.api.db_create("Network", name="n1", tenant="t", vni=5001)])
        nb.stop()
        res = subprocess.run([sys.executable, "-m", "tests.core_probe", remote], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        out = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        nbserver.stop(str(tmp_path))
    # Without the reload the model would lack "bad" until a restart.
    assert out == {"ports": ["bad", "good"], "errors": 1, "reloads": 1}, out
    assert "reading it all again" in res.stderr
