"""The REST API against its own OpenAPI document, over a real socket.

The server is test_api's (`python -m controller.api` on a real northbound
ovsdb-server). No body, however deep, answers a 5xx.
"""

import http.client
import json

import pytest

from tests.test_api import admin, server  # noqa: F401  (this module's server, test_api's fixtures)

ZERO = "00000000-0000-0000-0000-000000000000"
# Every operation that reads a body (an unknown {id} is looked up after the body is read).
WITH_BODY = [("POST", "/v1/networks"), ("PATCH", "/v1/networks/" + ZERO),
             ("POST", "/v1/ports"), ("PATCH", "/v1/ports/" + ZERO),
             ("POST", "/v1/security-groups"), ("PATCH", "/v1/security-groups/" + ZERO),
             ("POST", "/v1/security-groups/%s/rules" % ZERO),
             ("POST", "/v1/load-balancers"), ("PATCH", "/v1/load-balancers/" + ZERO),
             ("POST", "/v1/load-balancers/%s/members" % ZERO),
             ("PATCH", "/v1/load-balancers/%s/members/%s" % (ZERO, ZERO)),
             ("POST", "/v1/import")]


def send(server, method, path, raw):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=raw, headers={"Authorization": "Bearer %s" % server.admin_token,
                                                      "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), json.loads(resp.read() or b"null")
    finally:
        conn.close()


def nested_criteria(depth):
    """{"not": {"not": ... {"name": "web-*"}}} as JSON text (json.dumps itself stops near 1,000 levels)."""
    return '{"not": ' * depth + '{"name": "web-*"}' + "}" * depth


@pytest.mark.parametrize("method,path", WITH_BODY)
@pytest.mark.parametrize("raw", [b"[" * 20000 + b"]" * 20000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
                                 b"[" * 40 + b"]" * 40],
                         ids=["arrays-20000", "objects-3000", "arrays-40"])
def test_deeply_nested_bodies_are_refused(server, method, path, raw):
    status, ctype, problem = send(server, method, path, raw)
    assert (status, ctype) == (400, "application/problem+json"), (status, problem)
    assert problem["status"] == 400 and "nests deeper" in problem["detail"]


@pytest.mark.parametrize("depth", [9, 100, 3000])
def test_deeply_nested_criteria_are_refused(server, admin, depth):
    criteria = nested_criteria(depth)
    group = admin.post("/v1/security-groups", {"name": "shallow", "tenant": "acme"})
    for method, path, raw in (
            ("POST", "/v1/security-groups", '{"name": "deep", "tenant": "acme", "criteria": %s}' % criteria),
            ("PATCH", "/v1/security-groups/" + group["id"], '{"criteria": %s}' % criteria),
            ("POST", "/v1/import", '{"tenant": "acme", "security_groups": [{"name": "deep", "criteria": %s}]}'
             % criteria)):
        status, ctype, problem = send(server, method, path, raw.encode())
        assert (status, ctype) == (400, "application/problem+json"), (method, path, status, problem)
    assert not [g for g in admin.get("/v1/security-groups") if g["name"] == "deep"]
    assert admin.delete("/v1/security-groups/" + group["id"]) is None
