"""The `dvn` command: the controller (`serve`), a node's `join`/`leave`, and a REST client."""

import sys


def _monkey_patch_for_serve(argv):
    # `dvn serve` runs on eventlet: patch before anything else is imported.
    if len(argv) > 1 and argv[1] == "serve":
        import eventlet
        eventlet.monkey_patch()


_monkey_patch_for_serve(sys.argv)

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import urllib.parse  # noqa: E402


class CliError(Exception):
    pass


def _token(args):
    if args.token:
        return args.token
    path = os.environ.get("DVN_TOKEN_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    raise CliError("no token: give --token, or set DVN_TOKEN or DVN_TOKEN_FILE")


def connection(url, ca_file=None, timeout=30):
    """An HTTP(S) connection to dvn's API at ``url``; https verifies dvn's
    certificate against ``ca_file`` (dvn's CA: --ca-file, DVN_CA_FILE), else
    against the system's CAs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        import ssl
        try:
            ctx = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CliError("cannot read the CA file %s: %s" % (ca_file, exc))
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=ctx)
    if parts.scheme != "http":
        raise CliError("--url %s: give http://HOST:PORT or https://HOST:PORT" % url)
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)


def request(args, method, path, body=None, timeout=30):
    conn = connection(args.url, args.ca_file, timeout)
    headers = {"Authorization": "Bearer %s" % _token(args)}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as exc:
        raise CliError("cannot reach dvn at %s: %s" % (args.url, exc))
    finally:
        conn.close()
    payload = json.loads(raw) if raw else None
    if resp.status >= 400:
        detail = payload.get("detail") if isinstance(payload, dict) else raw.decode(errors="replace")
        field = payload.get("field") if isinstance(payload, dict) else None
        raise CliError("%d %s%s" % (resp.status, detail, " (field: %s)" % field if field else ""))
    return payload


def _print(args, payload, columns):
    if args.json:
        print(json.dumps(payload, indent=2))
        return
    rows = payload if isinstance(payload, list) else [payload]
    if payload is None:
        return
    table = [[("-" if r.get(c) is None else ",".join(map(str, r[c])) if isinstance(r.get(c), list)
               else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in table]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


NET_COLS = ["id", "name", "tenant", "vni", "cidrs", "tags"]
PORT_COLS = ["id", "name", "tenant", "network", "mac", "ips", "tags", "node"]
NODE_COLS = ["system_id", "hostname", "encap_ip", "state"]


def _resolve(args, kind, ref):
    """A name or an id -> the object's id."""
    items = request(args, "GET", "/v1/%s?%s" % (kind, urllib.parse.urlencode({"name": ref})))
    if len(items) == 1:
        return items[0]["id"]
    if len(items) > 1:
        raise CliError("%r names %d %s; use the id" % (ref, len(items), kind))
    return ref


def _crud(args, kind, columns, create_body):
    """create, list, show, update (name, tags) and delete of networks or ports."""
    if args.action == "create":
        return _print(args, request(args, "POST", "/v1/%s" % kind, create_body()), columns)
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/%s" % kind), columns)
    path = "/v1/%s/%s" % (kind, _resolve(args, kind, args.name))
    if args.action == "show":
        return _print(args, request(args, "GET", path), columns)
    if args.action == "update":
        body = {}
        if args.new_name:
            body["name"] = args.new_name
        if args.tag is not None:
            body["tags"] = args.tag
        return _print(args, request(args, "PATCH", path, body), columns)
    request(args, "DELETE", path)


def _optional(body, **fields):
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def cmd_network(args):
    return _crud(args, "networks", NET_COLS, lambda: _optional(
        {"name": args.name}, tenant=args.tenant, vni=args.vni, cidrs=args.cidr, tags=args.tag))


def cmd_port(args):
    return _crud(args, "ports", PORT_COLS, lambda: _optional(
        {"name": args.name, "network": _resolve(args, "networks", args.network)},
        mac=args.mac, ips=args.ip, tags=args.tag))


SG_COLS = ["id", "name", "tenant", "description"]
RULE_COLS = ["id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "icmp_type",
             "remote_ip_prefix", "remote_group_id", "action", "priority", "log"]
EVENT_COLS = ["time", "node", "port", "rule", "verdict", "direction", "src", "dst", "protocol", "dst_port"]


def cmd_group(args):
    if args.action == "create":
        body = {"name": args.name}
        if args.tenant:
            body["tenant"] = args.tenant
        if args.description:
            body["description"] = args.description
        if args.criteria:
            try:
                body["criteria"] = json.loads(args.criteria)
            except ValueError as exc:
                raise CliError("--criteria is not JSON: %s" % exc)
        return _print(args, request(args, "POST", "/v1/security-groups", body), SG_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/security-groups"), SG_COLS)
    path = "/v1/security-groups/%s" % _resolve(args, "security-groups", args.name)
    if args.action == "show":
        group = request(args, "GET", path)
        if args.json:
            return _print(args, group, SG_COLS)
        _print(args, group, SG_COLS)
        print()
        return _print(args, group["rules"], RULE_COLS)
    if args.action == "members":
        return _print(args, request(args, "GET", path + "/members"), ["id", "name"])
    request(args, "DELETE", path)


def cmd_rule(args):
    path = "/v1/security-groups/%s/rules" % _resolve(args, "security-groups", args.group)
    if args.action == "delete":
        request(args, "DELETE", "%s/%s" % (path, args.rule_id))
        return
    if args.action == "stats":
        return _print(args, request(args, "GET", "%s/%s/stats" % (path, args.rule_id)),
                      ["packets", "bytes", "established_packets", "switches"])
    body = _optional({"direction": args.direction}, ethertype=args.ethertype, protocol=args.protocol,
                     remote_ip_prefix=args.remote_ip_prefix, action=args.verdict, priority=args.priority,
                     icmp_type=args.icmp_type)
    if args.remote_group:
        body["remote_group_id"] = _resolve(args, "security-groups", args.remote_group)
    if args.ports:
        lo, _, hi = args.ports.partition("-")
        body["port_range_min"] = int(lo)
        body["port_range_max"] = int(hi or lo)
    if args.log:
        body["log"] = True
    return _print(args, request(args, "POST", path, body), RULE_COLS)


LB_COLS = ["id", "name", "tenant", "network", "vip_address", "protocol", "protocol_port", "members"]
MEMBER_COLS = ["id", "name", "address", "protocol_port", "weight", "admin_state_up", "operating_status"]


def _address_port(text, what, weight=False):
    """IP:PORT (or IP:PORT:WEIGHT) -> a member body."""
    parts = text.split(":")
    try:
        if len(parts) not in ((2, 3) if weight else (2,)):
            raise ValueError
        out = {"address": parts[0], "protocol_port": int(parts[1])}
        if len(parts) == 3:
            out["weight"] = int(parts[2])
    except ValueError:
        raise CliError("%s %r: give IP:PORT%s" % (what, text, "[:WEIGHT]" if weight else ""))
    return out


def _lb_rows(lbs):
    """Load balancers as table rows: the members as a count."""
    return [dict(b, members=len(b["members"])) for b in lbs]


def _monitor(args):
    options = {"delay": args.monitor_delay, "timeout": args.monitor_timeout, "max_retries": args.monitor_rise,
               "max_retries_down": args.monitor_fall, "url_path": args.monitor_path,
               "expected_codes": args.monitor_codes}
    if args.monitor is None:
        given = [k for k, v in options.items() if v is not None]
        if given:
            raise CliError("--monitor-%s needs --monitor tcp|http" % {
                "max_retries": "rise", "max_retries_down": "fall", "url_path": "path",
                "expected_codes": "codes"}.get(given[0], given[0]))
        return None
    return _optional({"type": args.monitor.upper()}, **options)


def cmd_lb(args):
    if args.action == "create":
        body = {"name": args.name, "network": _resolve(args, "networks", args.network),
                "vip_address": args.vip, "protocol_port": args.port, "protocol": args.protocol,
                "members": [_address_port(m, "--member", weight=True) for m in args.member or []]}
        if args.description:
            body["description"] = args.description
        if args.affinity is not None:
            body["session_persistence"] = {"type": "SOURCE_IP", "persistence_timeout": args.affinity}
        monitor = _monitor(args)
        if monitor is not None:
            body["health_monitor"] = monitor
        made = request(args, "POST", "/v1/load-balancers", body)
        return _print(args, made if args.json else _lb_rows([made]), LB_COLS)
    if args.action == "list":
        lbs = request(args, "GET", "/v1/load-balancers")
        return _print(args, lbs if args.json else _lb_rows(lbs), LB_COLS)
    path = "/v1/load-balancers/%s" % _resolve(args, "load-balancers", args.name)
    if args.action == "show":
        lb = request(args, "GET", path)
        if args.json:
            return _print(args, lb, LB_COLS)
        _print(args, _lb_rows([lb]), LB_COLS)
        sp, hm = lb["session_persistence"], lb["health_monitor"]
        print("affinity: %s" % ("source IP, %d s" % sp["persistence_timeout"] if sp else "none"))
        print("monitor: %s" % (" ".join("%s=%s" % (k, hm[k]) for k in sorted(hm)) if hm else "none"))
        print()
        return _print(args, lb["members"], MEMBER_COLS)
    if args.action == "stats":
        stats = request(args, "GET", path + "/stats")
        if args.json:
            return _print(args, stats, [])
        _print(args, stats, ["connections", "switches"])
        print()
        return _print(args, [{"member": m, "connections": n} for m, n in sorted(stats["members"].items())],
                      ["member", "connections"])
    request(args, "DELETE", path)


def _member_id(args, lb_path, ref):
    """A member id, or the IP:PORT of a member -> the member's id."""
    if ref.count(":") == 1:
        for m in request(args, "GET", lb_path + "/members"):
            if "%s:%d" % (m["address"], m["protocol_port"]) == ref:
                return m["id"]
    return ref


def cmd_member(args):
    lb_path = "/v1/load-balancers/%s" % _resolve(args, "load-balancers", args.lb)
    if args.action == "add":
        body = _optional(_address_port(args.member, "member"), weight=args.weight, name=args.name)
        return _print(args, request(args, "POST", lb_path + "/members", body), MEMBER_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", lb_path + "/members"), MEMBER_COLS)
    path = "%s/members/%s" % (lb_path, _member_id(args, lb_path, args.member))
    if args.action == "update":
        body = _optional({}, weight=args.weight, admin_state_up=args.admin_state_up)
        return _print(args, request(args, "PATCH", path, body), MEMBER_COLS)
    request(args, "DELETE", path)


def cmd_events(args):
    query = urllib.parse.urlencode(_optional({"limit": args.limit}, port=args.port, rule=args.rule))
    return _print(args, request(args, "GET", "/v1/events?" + query), EVENT_COLS)


IMPORT_KINDS = ("networks", "security_groups", "ports", "load_balancers")


def cmd_import(args):
    """POST /v1/import: a document (docs/api.md) creates a tenant's networks,
    security groups, ports and load balancers in one transaction."""
    try:
        if args.file == "-":
            doc = json.load(sys.stdin)
        else:
            with open(args.file) as f:
                doc = json.load(f)
    except OSError as exc:
        raise CliError("cannot read %s: %s" % (args.file, exc))
    except ValueError as exc:
        raise CliError("%s is not JSON: %s" % (args.file, exc))
    if args.tenant:
        if not isinstance(doc, dict):
            raise CliError("%s is not a JSON object" % args.file)
        doc["tenant"] = args.tenant
    made = request(args, "POST", "/v1/import", doc, timeout=args.timeout)
    if args.json:
        return _print(args, made, [])
    return _print(args, [{"kind": kind, "name": name, "id": made[kind][name]}
                         for kind in IMPORT_KINDS if kind in made for name in sorted(made[kind])],
                  ["kind", "name", "id"])


def cmd_node(args):
    if args.action == "revoke":
        return cmd_revoke_node(args)
    if args.action == "certificates":
        return _print(args, request(args, "GET", "/v1/certificates"), CERT_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/nodes"), NODE_COLS)
    if args.action == "show":
        return _print(args, request(args, "GET", "/v1/nodes/%s" % args.system_id), NODE_COLS)
    request(args, "DELETE", "/v1/nodes/%s" % args.system_id)


def cmd_revoke_node(args):
    revoked = request(args, "POST", "/v1/nodes/%s/revoke" % args.system_id)
    if args.json:
        return _print(args, revoked, [])
    print("node %s revoked: its certificate%s %s refused from now on, %d pair key%s deleted" % (
        revoked["node"], "s" if len(revoked["revoked"]) > 1 else "", ", ".join(revoked["revoked"]),
        revoked.get("keys_deleted", 0), "" if revoked.get("keys_deleted", 0) == 1 else "s"))
    return 0


TOKEN_COLS = ["id", "node", "uses", "used", "expires_at", "revoked", "usable", "description"]
CERT_COLS = ["node", "serial", "fingerprint", "not_after", "token", "revoked"]


def cmd_join_token(args):
    """Join tokens (docs/join.md), through the API: create, list, show, revoke."""
    if args.action == "create" and args.nb:   # the old form of `dvn api-token create`
        return cmd_api_token(args)
    if args.action == "create":
        body = _optional({}, node=args.node, ttl=args.ttl, uses=args.uses, description=args.description)
        made = request(args, "POST", "/v1/join-tokens", body)
        if args.json:
            return _print(args, made, [])
        print(made["token"])
        hint = " --ca-hash %s" % made["ca_hash"] if made.get("ca_hash") else ""
        print("# shown once. On the node: dvn join --api-url %s --token %s%s --controller HOST --encap-ip IP%s"
              % (args.url, made["token"], hint, " --system-id %s" % made["node"] if made["node"] else ""),
              file=sys.stderr)
        return 0
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/join-tokens"), TOKEN_COLS)
    if args.action == "show":
        return _print(args, request(args, "GET", "/v1/join-tokens/%s" % args.id), TOKEN_COLS)
    return _print(args, request(args, "POST", "/v1/join-tokens/%s/revoke" % args.id), TOKEN_COLS)


def cmd_ca_hash(args):
    """The hash `dvn join --ca-hash` pins, from a CA file (on the controller host)."""
    from ovsdb.pki import ca_hash
    try:
        with open(args.ca_cert) as f:
            print(ca_hash(f.read()))
    except (OSError, ValueError) as exc:
        raise CliError("cannot read a certificate from %s: %s" % (args.ca_cert, exc))
    return 0


def cmd_api_token(args):
    from controller.api import create_token
    from ovsdb.nb import Northbound
    nb = Northbound(args.nb).start()
    try:
        print(create_token(nb, args.tenant or "", "admin" if args.admin else "tenant"))
    finally:
        nb.stop()


def parser():
    from controller import serve
    from ovsdb import join

    ap = argparse.ArgumentParser(prog="dvn", description="dvn: distributed virtual networking for Open vSwitch")
    ap.add_argument("--url", default=os.environ.get("DVN_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--token", default=os.environ.get("DVN_TOKEN"))
    ap.add_argument("--ca-file", default=os.environ.get("DVN_CA_FILE"),
                    help="the CA that signed dvn's API certificate, for an https --url (default: $DVN_CA_FILE, "
                         "else the system's CAs)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    sub = ap.add_subparsers(dest="command", required=True)
    serve.register(sub)
    join.register(sub)

    net = sub.add_parser("network", help="tenant networks")
    nsub = net.add_subparsers(dest="action", required=True)
    c = nsub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--tenant")
    c.add_argument("--vni", type=int)
    c.add_argument("--cidr", action="append")
    c.add_argument("--tag", action="append")
    nsub.add_parser("list")
    for action in ("show", "delete"):
        nsub.add_parser(action).add_argument("name", help="name or id")
    u = nsub.add_parser("update")
    u.add_argument("name", help="name or id")
    u.add_argument("--new-name")
    u.add_argument("--tag", action="append")
    net.set_defaults(func=cmd_network)

    port = sub.add_parser("port", help="ports of tenant networks")
    psub = port.add_subparsers(dest="action", required=True)
    c = psub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--network", required=True, help="name or id")
    c.add_argument("--mac")
    c.add_argument("--ip", action="append")
    c.add_argument("--tag", action="append")
    psub.add_parser("list")
    for action in ("show", "delete"):
        psub.add_parser(action).add_argument("name", help="name or id")
    u = psub.add_parser("update")
    u.add_argument("name", help="name or id")
    u.add_argument("--new-name")
    u.add_argument("--tag", action="append")
    port.set_defaults(func=cmd_port)

    grp = sub.add_parser("security-group", help="security groups (and dynamic groups)")
    gsub = grp.add_subparsers(dest="action", required=True)
    c = gsub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--tenant")
    c.add_argument("--description")
    c.add_argument("--criteria", help='dynamic membership, JSON: {"tags_any": ["pci"]}')
    gsub.add_parser("list")
    for action in ("show", "members", "delete"):
        gsub.add_parser(action).add_argument("name", help="name or id")
    grp.set_defaults(func=cmd_group)

    rule = sub.add_parser("rule", help="rules of a security group")
    rsub = rule.add_subparsers(dest="action", required=True)
    c = rsub.add_parser("add")
    c.add_argument("group", help="security group name or id")
    c.add_argument("direction", choices=["ingress", "egress"])
    c.add_argument("--ethertype", choices=["IPv4", "IPv6"])
    c.add_argument("--protocol", help="tcp, udp, icmp, icmpv6, any or a number")
    c.add_argument("--ports", help="a port or a range: 80 or 8000-8080")
    c.add_argument("--icmp-type", type=int)
    c.add_argument("--remote-ip-prefix")
    c.add_argument("--remote-group", help="security group name or id")
    c.add_argument("--deny", dest="verdict", action="store_const", const="deny")
    c.add_argument("--priority", type=int)
    c.add_argument("--log", action="store_true")
    for action in ("delete", "stats"):
        r = rsub.add_parser(action)
        r.add_argument("group", help="security group name or id")
        r.add_argument("rule_id")
    rule.set_defaults(func=cmd_rule)

    lbp = sub.add_parser("lb", help="load balancers (a VIP, its pool of members and their health monitor)")
    lsub = lbp.add_subparsers(dest="action", required=True)
    c = lsub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--network", required=True, help="name or id")
    c.add_argument("--vip", required=True, help="the VIP: an IPv4 address of the network")
    c.add_argument("--port", required=True, type=int, help="the VIP's port")
    c.add_argument("--protocol", choices=["tcp", "udp"], default="tcp")
    c.add_argument("--description")
    c.add_argument("--member", action="append", metavar="IP:PORT[:WEIGHT]", help="a member (repeat for more)")
    c.add_argument("--affinity", type=int, metavar="SECONDS",
                   help="session persistence by source IP (a client stays on its member while the pool's "
                        "members do not change; the timeout is kept for Octavia's model)")
    c.add_argument("--monitor", choices=["tcp", "http"], help="health-check the members")
    c.add_argument("--monitor-delay", type=float, metavar="S", help="seconds between checks")
    c.add_argument("--monitor-timeout", type=float, metavar="S", help="seconds a check waits for an answer")
    c.add_argument("--monitor-rise", type=int, metavar="N", help="successes that bring a member back")
    c.add_argument("--monitor-fall", type=int, metavar="N", help="failures that take a member out")
    c.add_argument("--monitor-path", metavar="P", help="the URL path of an http check")
    c.add_argument("--monitor-codes", metavar="C", help="the HTTP codes that pass: 200, 200,202 or 200-204")
    lsub.add_parser("list")
    for action in ("show", "stats", "delete"):
        lsub.add_parser(action).add_argument("name", help="name or id")
    lbp.set_defaults(func=cmd_lb)

    mem = sub.add_parser("member", help="members of a load balancer's pool")
    msub = mem.add_subparsers(dest="action", required=True)
    c = msub.add_parser("add")
    c.add_argument("lb", help="load balancer name or id")
    c.add_argument("member", metavar="IP:PORT")
    c.add_argument("--weight", type=int, help="0 to 256 (default 1; 0 takes no new connections)")
    c.add_argument("--name")
    msub.add_parser("list").add_argument("lb", help="load balancer name or id")
    u = msub.add_parser("update")
    u.add_argument("lb", help="load balancer name or id")
    u.add_argument("member", metavar="MEMBER_ID", help="member id (or its IP:PORT)")
    u.add_argument("--weight", type=int)
    state = u.add_mutually_exclusive_group()
    state.add_argument("--up", dest="admin_state_up", action="store_const", const=True)
    state.add_argument("--down", dest="admin_state_up", action="store_const", const=False)
    d = msub.add_parser("delete")
    d.add_argument("lb", help="load balancer name or id")
    d.add_argument("member", metavar="MEMBER_ID", help="member id (or its IP:PORT)")
    mem.set_defaults(func=cmd_member)

    ev = sub.add_parser("events", help="recent firewall log events")
    ev.add_argument("--port")
    ev.add_argument("--rule")
    ev.add_argument("--limit", type=int, default=50)
    ev.set_defaults(func=cmd_events)

    imp = sub.add_parser("import", help="create a tenant's configuration from one JSON document, all or nothing")
    imp.add_argument("file", help="the document (- for standard input)")
    imp.add_argument("--tenant", help="the document's tenant (an admin token must give one, here or in it)")
    imp.add_argument("--timeout", type=float, default=600, metavar="S",
                     help="seconds to wait for the answer (default 600: a large document takes a while)")
    imp.set_defaults(func=cmd_import)

    node = sub.add_parser("node", help="nodes (admin)")
    ndsub = node.add_subparsers(dest="action", required=True)
    ndsub.add_parser("list")
    for action in ("show", "delete"):
        ndsub.add_parser(action).add_argument("system_id")
    ndsub.add_parser("revoke", help="refuse the node's certificates from now on").add_argument("system_id")
    ndsub.add_parser("certificates", help="the certificates dvn's CA issued to nodes")
    node.set_defaults(func=cmd_node)

    tok = sub.add_parser("token", help="join tokens, which admit nodes (docs/join.md)")
    tsub = tok.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("create", help="create a join token; it is printed once")
    t.add_argument("--node", help="the one node name (system-id) it admits (default: any new name)")
    t.add_argument("--ttl", type=int, metavar="S", help="seconds until it expires (default 86400)")
    t.add_argument("--uses", type=int, metavar="N", help="how many nodes it admits (default 1)")
    t.add_argument("--description")
    t.add_argument("--nb", help=argparse.SUPPRESS)        # the old `dvn token create --nb`: an API token
    t.add_argument("--tenant", help=argparse.SUPPRESS)
    t.add_argument("--admin", action="store_true", help=argparse.SUPPRESS)
    tsub.add_parser("list")
    for action in ("show", "revoke"):
        tsub.add_parser(action).add_argument("id", help="the token's id (the part before the dot)")
    tok.set_defaults(func=cmd_join_token)

    api_tok = sub.add_parser("api-token", help="API tokens (on the controller host)")
    asub = api_tok.add_subparsers(dest="action", required=True)
    t = asub.add_parser("create", help="create an API token; it is printed once")
    t.add_argument("--nb", required=True, help="the northbound store, e.g. unix:/var/lib/dvn/nb.sock")
    t.add_argument("--tenant")
    t.add_argument("--admin", action="store_true")
    api_tok.set_defaults(func=cmd_api_token)

    cah = sub.add_parser("ca-hash", help="the hash of dvn's CA that `dvn join --ca-hash` pins")
    cah.add_argument("ca_cert", nargs="?", default=os.path.join(os.environ.get("DVN_STATE_DIR", "/var/lib/dvn"),
                                                                 "ca-cert.pem"))
    cah.set_defaults(func=cmd_ca_hash)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        rc = args.func(args)
    except CliError as exc:
        print("dvn: %s" % exc, file=sys.stderr)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
