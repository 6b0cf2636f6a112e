"""A store made with the schema before join tokens (1.3.0) is converted when
dvn starts on it (ovsdb/nbserver.py): its rows stay, the new tables (join
tokens, certificates, since 1.5.0 the audit log, since 1.6.0 alert webhooks) come."""

import json
import subprocess

from ovsdb import nbserver


def test_a_1_3_store_is_converted_and_keeps_its_rows(tmp_path):
    with open(nbserver.SCHEMA) as f:
        schema = json.load(f)
    assert schema["version"] == "1.6.0"
    newer = ("JoinToken", "NodeCertificate", "Audit", "AlertWebhook")
    old = dict(schema, version="1.3.0", tables={k: v for k, v in schema["tables"].items() if k not in newer})
    (tmp_path / "old.ovsschema").write_text(json.dumps(old))
    db = str(tmp_path / "nb.db")
    subprocess.run(["ovsdb-tool", "create", db, str(tmp_path / "old.ovsschema")], check=True)
    row = {"digest": "a" * 64, "tenant": "", "role": "admin", "description": "before the upgrade"}
    subprocess.run(["ovsdb-tool", "transact", db, json.dumps(
        ["DVN_Northbound", {"op": "insert", "table": "Token", "row": row}])], check=True, capture_output=True)
    remote = nbserver.start(str(tmp_path))
    try:
        def query(table):
            out = subprocess.run(["ovsdb-client", "transact", remote, json.dumps(
                ["DVN_Northbound", {"op": "select", "table": table, "where": []}])],
                capture_output=True, text=True, check=True).stdout
            return json.loads(out)[0]["rows"]
        assert [r["description"] for r in query("Token")] == ["before the upgrade"]
        assert query("JoinToken") == [] and query("NodeCertificate") == [] and query("Audit") == []
        version = subprocess.run(["ovsdb-client", "get-schema-version", remote, "DVN_Northbound"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        assert version == "1.6.0"
    finally:
        nbserver.stop(str(tmp_path))
