"""The Api: a webob WSGI app that routes each request to its handler (the
resource modules' mixins), authenticates it, reads its JSON body, and answers
errors as application/problem+json naming the field at fault. Nothing
changes on error. Also the entry point that serves the API alone (tests).
"""

import json
import logging
import re
import threading

import webob

from controller import validation as v
from controller.api import schemas
from controller.api.audit import WRITES, Audit, AuditLog, detail_of
from controller.api.auth import authenticate, ensure_admin_token
from controller.api.context import NOUNS, Context
from controller.api.events import Events
from controller.api.imports import Import
from controller.api.load_balancers import LoadBalancers
from controller.api.networks import Networks
from controller.api.nodes import Nodes
from controller.api.ports import Ports
from controller.api.security_groups import SecurityGroups, criteria_column
from controller.api.trace import Traces
from controller.api.webhooks import Webhooks
from controller.api.trust import TrustedNodes
from controller.validation import Problem, conflict, invalid
from ovsdb.nb import Conflict, NbError, Timeout

LOG = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
MAX_DEPTH = 32  # of arrays and objects in a body: a document's deepest criteria take about 20


def _not_json(constant):
    """NaN and Infinity: Python's json reads them, JSON has no such numbers (and
    NaN passes every minimum and maximum)."""
    raise ValueError("%s is not a JSON number" % constant)


def too_deep(value, limit):
    """Whether arrays and objects nest in ``value`` more than ``limit`` deep
    (without recursion: the check must not fail the way it guards against)."""
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False


class Api(Networks, Ports, SecurityGroups, Events, LoadBalancers, Nodes, TrustedNodes, Import, Audit, Traces, Webhooks):
    def __init__(self, nb, stats=None, events=None, lb_stats=None, switch_state=None, plugged=None, ca=None,
                 metrics=None, tracer=None):
        from controller import trust
        self.nb = nb
        self.metrics = metrics  # the running controller's controller.metrics.Metrics, if any
        self.audit = AuditLog(nb)
        self.tracer = tracer    # the running controller's trace_packet(controller.trace.Request), if any
        self.ca = ca          # dvn's CA (controller.pki.Ca), which admits nodes; None: no admissions here
        self.trust = trust.Trust(nb, ca)
        self.stats = stats    # rule_stats(group id, rule id) of the running controller, if any
        self.lb_stats = lb_stats  # lb_stats(load balancer id) of the running controller, if any
        self.switch_state = switch_state  # switch_state(system id) of the running controller, if any
        self.plugged = plugged    # plugged(network id): its plugged ports' addresses, from the running controller
        self.events = events  # the controller's recent firewall log events, if any
        self.lock = threading.Lock()  # serializes read-check-write (green under eventlet)
        self.routes = [
            ("GET", r"/v1/networks", self.list_networks),
            ("POST", r"/v1/networks", self.create_network),
            ("GET", r"/v1/networks/{id}", self.show_network),
            ("PATCH", r"/v1/networks/{id}", self.update_network),
            ("DELETE", r"/v1/networks/{id}", self.delete_network),
            ("GET", r"/v1/ports", self.list_ports),
            ("POST", r"/v1/ports", self.create_port),
            ("GET", r"/v1/ports/{id}", self.show_port),
            ("PATCH", r"/v1/ports/{id}", self.update_port),
            ("DELETE", r"/v1/ports/{id}", self.delete_port),
            ("GET", r"/v1/security-groups", self.list_groups),
            ("POST", r"/v1/security-groups", self.create_group),
            ("GET", r"/v1/security-groups/{id}", self.show_group),
            ("PATCH", r"/v1/security-groups/{id}", self.update_group),
            ("DELETE", r"/v1/security-groups/{id}", self.delete_group),
            ("GET", r"/v1/security-groups/{id}/members", self.group_members),
            ("POST", r"/v1/security-groups/{id}/rules", self.create_rule),
            ("DELETE", r"/v1/security-groups/{id}/rules/{rule_id}", self.delete_rule),
            ("GET", r"/v1/security-groups/{id}/rules/{rule_id}/stats", self.rule_stats),
            ("GET", r"/v1/events", self.list_events),
            ("GET", r"/v1/load-balancers", self.list_lbs),
            ("POST", r"/v1/load-balancers", self.create_lb),
            ("GET", r"/v1/load-balancers/{id}", self.show_lb),
            ("PATCH", r"/v1/load-balancers/{id}", self.update_lb),
            ("DELETE", r"/v1/load-balancers/{id}", self.delete_lb),
            ("GET", r"/v1/load-balancers/{id}/members", self.list_members),
            ("POST", r"/v1/load-balancers/{id}/members", self.create_members),
            ("PATCH", r"/v1/load-balancers/{id}/members/{member_id}", self.update_member),
            ("DELETE", r"/v1/load-balancers/{id}/members/{member_id}", self.delete_member),
            ("GET", r"/v1/load-balancers/{id}/stats", self.show_lb_stats),
            ("GET", r"/v1/nodes", self.list_nodes),
            ("GET", r"/v1/nodes/{id}", self.show_node),
            ("DELETE", r"/v1/nodes/{id}", self.delete_node),
            ("POST", r"/v1/nodes/{id}/rotate-keys", self.rotate_keys),
            ("POST", r"/v1/nodes/{id}/revoke", self.revoke_node),
            ("GET", r"/v1/certificates", self.list_certificates),
            ("GET", r"/v1/join-tokens", self.list_join_tokens),
            ("POST", r"/v1/join-tokens", self.create_join_token),
            ("GET", r"/v1/join-tokens/{id}", self.show_join_token),
            ("POST", r"/v1/join-tokens/{id}/revoke", self.revoke_join_token),
            ("GET", r"/v1/ca", self.show_ca),
            ("POST", r"/v1/enroll", self.enroll),
            ("GET", r"/v1/enrollment", self.show_enrollment),
            ("POST", r"/v1/import", self.import_document),
            ("GET", r"/v1/openapi.json", self.openapi),
            ("POST", r"/v1/trace", self.create_trace),
            ("GET", r"/v1/alert-webhooks", self.list_webhooks),
            ("POST", r"/v1/alert-webhooks", self.create_webhook),
            ("DELETE", r"/v1/alert-webhooks/{id}", self.delete_webhook),
            ("GET", r"/v1/audit", self.list_audit),
            ("GET", r"/metrics", self.show_metrics),
        ]
        # No bearer token: the document, the CA's certificate, an enrollment (its
        # join token is in its body) and a node's own enrollment (its certificate).
        self.public = {self.openapi, self.show_ca, self.enroll, self.show_enrollment}
        self._compiled = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), p, h)
                          for m, p, h in self.routes]

    # ---- WSGI ------------------------------------------------------------
    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        try:
            resp = self.dispatch(req)
        except Problem as p:
            resp = self.problem(p)
        except Exception:
            LOG.exception("API: unexpected error on %s %s", req.method, req.path)
            resp = self.problem(Problem(500, "Internal error", "an unexpected error; see the dvn log"))
        if req.method in WRITES and "dvn.caller" in environ:
            self._audit(req, resp)
        if self.metrics is not None:
            # By the route's pattern, not the path: ids must not make a metric per object.
            route = environ.get("dvn.route", "(none)")
            self.metrics.api_requests.labels(req.method, route, str(resp.status_code)).inc()
        return resp(environ, start_response)

    def _audit(self, req, resp):
        payload = None
        if resp.content_type in ("application/json", "application/problem+json") and len(resp.body) < 4096:
            try:
                payload = json.loads(resp.body)
            except ValueError:
                pass
        self.audit.record(req.environ["dvn.caller"], req.method, req.path_info, resp.status_code,
                          detail_of(resp.status_code, payload))

    def show_metrics(self, req, caller):
        if not caller.admin:
            raise Problem(403, "Forbidden", "metrics are visible to admins only")
        if self.metrics is None:
            raise Problem(404, "Not found", "no controller runs with this API: it has no metrics")
        from controller.metrics import CONTENT_TYPE
        return webob.Response(status=200, body=self.metrics.render(), content_type=CONTENT_TYPE.split(";")[0],
                              charset="utf-8")

    @staticmethod
    def problem(p):
        resp = webob.Response(status=p.status, body=json.dumps(p.body()).encode(),
                              content_type="application/problem+json", charset=None)
        for k, val in p.headers.items():
            resp.headers[k] = val
        return resp

    def dispatch(self, req):
        allowed = []
        for method, rx, pattern, handler in self._compiled:
            m = rx.match(req.path_info)
            if not m:
                continue
            req.environ["dvn.route"] = pattern
            if method != req.method:
                allowed.append(method)
                continue
            if handler not in self.public:
                caller = authenticate(self.nb, req)
            else:
                caller = None
            req.environ["dvn.caller"] = caller   # (for the audit log)
            result = handler(req, caller, **m.groupdict())
            if isinstance(result, webob.Response):
                return result
            status, payload = result
            if payload is None:
                return webob.Response(status=status)
            return webob.Response(status=status, body=json.dumps(payload).encode(),
                                  content_type="application/json", charset=None)
        if allowed:
            raise Problem(405, "Method not allowed", "%s is not allowed on %s" % (req.method, req.path_info),
                          headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise Problem(404, "Not found", "no resource at %s" % req.path_info)


    @staticmethod
    def body(req, limit=MAX_BODY):
        if req.content_length is not None and req.content_length > limit:
            raise Problem(413, "Payload too large", "the body is limited to %d bytes" % limit)
        ctype = (req.content_type or "").lower()
        if ctype != "application/json":
            raise Problem(415, "Unsupported media type", "send application/json")
        raw = req.body_file.read(limit + 1)
        if len(raw) > limit:
            raise Problem(413, "Payload too large", "the body is limited to %d bytes" % limit)
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(None, "the body is not valid JSON: %s" % exc)
        except RecursionError:  # the decoder's own limit (about 1,000 levels)
            raise invalid(None, "the body nests deeper than %d levels" % MAX_DEPTH)
        if too_deep(value, MAX_DEPTH):  # nothing recursive after this sees deeper bodies
            raise invalid(None, "the body nests deeper than %d levels" % MAX_DEPTH)
        return value

    # ---- helpers -----------------------------------------------------------
    def _find(self, table, rid, caller):
        row = self.nb.get(table, rid)
        if row is None or not caller.sees(row):
            raise Problem(404, "Not found", "no %s %s" % (table.lower(), rid))
        return row

    def _transact(self, commands, field):
        try:
            return self.nb.transact(commands)
        except Conflict as exc:
            raise conflict(field, "the store refused it: %s" % exc)
        except Timeout as exc:
            raise Problem(503, "Store unavailable", "%s: look before retrying" % exc)
        except NbError as exc:
            raise Problem(503, "Store unavailable", "the northbound store refused the change: %s" % exc)

    @staticmethod
    def _filter(req, allowed):
        """The query's parameters, each checked against its schema (400 naming it)."""
        out = {}
        for key, value in req.GET.items():
            if key not in allowed:
                raise invalid(key, "unknown query parameter %r (allowed: %s)" % (key, ", ".join(allowed)))
            schema = schemas.QUERY[key]
            if schema.get("type") == "integer":
                if not value.isascii() or not value.isdigit():
                    raise invalid(key, "%s is an integer from %d to %d" % (key, schema["minimum"], schema["maximum"]))
                value = int(value)
            out[key] = schemas.check_query(key, value)
        return out

    def _check_name_free(self, table, tenant, name, but):
        """A renamed object's name stays unique per tenant and table (409 naming the field)."""
        for r in self.nb.rows(table):
            if r.tenant == tenant and r.name == name and r.uuid != but:
                raise conflict("name", "tenant %s already has a %s named %s" % (tenant, NOUNS[table], name))

    def _update(self, req, caller, table, id, schema):
        """PATCH of a network, port or security group (its body checked
        against ``schema``); the name stays unique in the tenant."""
        body = schemas.check(schema, self.body(req))
        with self.lock:
            row = self._find(table, id, caller)
            changes = []
            if "name" in body:
                self._check_name_free(table, row.tenant, body["name"], row.uuid)
                changes.append(("name", body["name"]))
            if "tags" in body:
                changes.append(("tags", sorted(set(body["tags"]))))
            if "description" in body:
                changes.append(("description", body["description"]))
            if "criteria" in body:
                changes.append(("criteria", criteria_column(body)))
            ctx = Context(self.nb, caller)
            if "security_groups" in body:
                changes.append(("security_groups", ctx.groups(body["security_groups"], row.tenant)))
            if "encrypt_with" in body:
                changes.append(("encrypt_with", ctx.groups(body["encrypt_with"], row.tenant, "encrypt_with")))
            for flag in ("port_security", "encrypt"):
                if flag in body:
                    changes.append((flag, [body[flag]]))
            if "allowed_address_pairs" in body:
                changes.append(("allowed_address_pairs", v.address_pairs(body["allowed_address_pairs"], row.mac)))
            if changes:
                self._transact([self.nb.api.db_set(table, row.uuid, *changes)], "name")
        return self.nb.get(table, id)

    # ---- the document ------------------------------------------------------------
    def openapi(self, req, caller):
        from controller.openapi import document
        return 200, document(self.routes)


def make_app(nb, stats=None, events=None, lb_stats=None, switch_state=None, plugged=None, ca=None, metrics=None,
             tracer=None):
    return Api(nb, stats, events, lb_stats, switch_state, plugged, ca, metrics, tracer)


def main(argv=None):
    """Run the API alone (tests): python -m controller.api --nb REMOTE --listen HOST:PORT."""
    import eventlet
    eventlet.monkey_patch()
    import argparse
    import eventlet.wsgi
    from ovsdb.nb import Northbound

    ap = argparse.ArgumentParser()
    ap.add_argument("--nb", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--admin-token-file")
    ap.add_argument("--ca-dir", help="dvn's CA (made there if missing), to admit nodes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    nb = Northbound(args.nb).start()
    if args.admin_token_file:
        ensure_admin_token(nb, args.admin_token_file)
    host, _, port = args.listen.rpartition(":")
    sock = eventlet.listen((host, int(port)))
    print("listening %d" % sock.getsockname()[1], flush=True)
    # No controller here: no firewall events to show, and statistics are over
    # no switch (as dvn serve's are before a node connects), not a 503.
    def rule_stats(group_id, rule_id):
        return {"packets": 0, "bytes": 0, "established_packets": 0, "switches": 0}

    def lb_stats(lb_id):
        row = nb.get("LoadBalancer", lb_id)
        return {"connections": 0, "switches": 0, "members": {str(m.uuid): 0 for m in row.members} if row else {}}

    ca = None
    if args.ca_dir:
        from controller.pki import Ca
        ca = Ca(args.ca_dir).ensure()
    app = make_app(nb, stats=rule_stats, events=(), lb_stats=lb_stats, ca=ca)
    eventlet.wsgi.server(sock, app, log=LOG, log_output=False)


if __name__ == "__main__":
    main()
