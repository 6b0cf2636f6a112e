"""The `dvn` command: the controller (`serve`), a node's `join`/`leave`, and a REST client.

The client commands import only the standard library, and only what they
use: no eventlet, os-ken, ovs or ovsdbapp (tests/unit/test_cli.py),
so that they start in a few tens of milliseconds and print no library's
warnings. `serve`, `join` and `leave` get their parsers from their own
modules, imported only when one of them is the command (or to write the
completion script). Every failure is one line on stderr and a non-zero
exit, never a traceback (DVN_DEBUG=1 shows it).
"""

import sys


def _command_word(argv):
    """The subcommand in ``argv`` (without the program), skipping the global options."""
    words = iter(argv)
    for word in words:
        if word in VALUED_GLOBALS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


VALUED_GLOBALS = ("--url", "--token", "--ca-file", "--config", "--field")
SERVER_COMMANDS = ("serve", "join", "leave")    # the server stack: imported for these only


def _quiet_libraries():
    """The server stack's libraries warn about their own deprecations (dnspython's
    DSA, eventlet): not for dvn's users, unless they ask (-W, PYTHONWARNINGS)."""
    if not sys.warnoptions:
        import warnings
        warnings.simplefilter("ignore")


def _monkey_patch_for_serve(argv):
    # `dvn serve` runs on eventlet: patch before anything else is imported.
    if _command_word(argv[1:]) == "serve":
        _quiet_libraries()
        from controller import hub
        hub.patch()


_monkey_patch_for_serve(sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import urllib.parse  # noqa: E402

DEFAULT_URL = "http://127.0.0.1:8080"
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SETTINGS_HELP = """\
Where the client commands find dvn: --url, --token and --ca-file (before or
after the command), else $DVN_URL, $DVN_TOKEN (or $DVN_TOKEN_FILE, a file
holding it) and $DVN_CA_FILE, else the config file: --config FILE, else
$DVN_CONFIG, else $XDG_CONFIG_HOME/dvn/cli.conf (~/.config/dvn/cli.conf), an
INI file like

  [dvn]
  url = https://dvn.example.com:8080
  token_file = ~/.config/dvn/token      (or: token = ...; keep it private)
  ca_file = ~/.config/dvn/ca.pem

else http://127.0.0.1:8080. --json prints what the API answered, --field NAME
one field of it (a line per object), for scripts.
Shell completion: dvn completion bash > /etc/bash_completion.d/dvn"""


class CliError(Exception):
    pass


# ---- settings: flags, then the environment, then the config file ----------------------------------
def config_path(args):
    if args.config:
        return os.path.expanduser(args.config)
    if os.environ.get("DVN_CONFIG"):
        return os.path.expanduser(os.environ["DVN_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "dvn", "cli.conf")


def read_config(args):
    """The [dvn] section of the config file as a dict ({} if there is no file
    where none was asked for)."""
    path = config_path(args)
    explicit = bool(args.config or os.environ.get("DVN_CONFIG"))
    if not explicit and not os.path.exists(path):
        return {}
    import configparser
    parser = configparser.ConfigParser()
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as exc:
        raise CliError("cannot read the config file %s: %s" % (path, exc.strerror or exc))
    except configparser.Error as exc:
        raise CliError("the config file %s is not INI: %s" % (path, " ".join(str(exc).split())))
    if not parser.has_section("dvn"):
        raise CliError("the config file %s has no [dvn] section" % path)
    out = {key.replace("-", "_"): value for key, value in parser.items("dvn")}
    unknown = sorted(set(out) - {"url", "token", "token_file", "ca_file"})
    if unknown:
        raise CliError("the config file %s: unknown key %s (url, token, token_file, ca_file)" % (path, unknown[0]))
    return out


def _read_token(path, where):
    try:
        with open(os.path.expanduser(path)) as f:
            return f.read().strip()
    except OSError as exc:
        raise CliError("cannot read the token file %s (%s): %s" % (path, where, exc.strerror or exc))


def settle(args):
    """Fill in args.url, args.ca_file and args.token_source: flags, then the
    environment, then the config file."""
    env = os.environ
    conf = read_config(args)
    args.url = args.url or env.get("DVN_URL") or conf.get("url") or DEFAULT_URL
    args.ca_file = args.ca_file or env.get("DVN_CA_FILE") or (
        os.path.expanduser(conf["ca_file"]) if conf.get("ca_file") else None)
    if args.token:
        args.token_source = lambda: args.token
    elif env.get("DVN_TOKEN"):
        args.token_source = lambda: env["DVN_TOKEN"]
    elif env.get("DVN_TOKEN_FILE"):
        args.token_source = lambda: _read_token(env["DVN_TOKEN_FILE"], "$DVN_TOKEN_FILE")
    elif conf.get("token"):
        args.token_source = lambda: conf["token"]
    elif conf.get("token_file"):
        args.token_source = lambda: _read_token(conf["token_file"], "token_file in %s" % config_path(args))
    else:
        args.token_source = None
    args.settled = True


def _token(args):
    if args.token_source is None:
        raise CliError("no token: give --token, set DVN_TOKEN or DVN_TOKEN_FILE, or put token_file in %s"
                       % config_path(args))
    return args.token_source()


# ---- HTTP -----------------------------------------------------------------------------------------
# One request per connection, written here over a socket: http.client imports
# the email package, which costs a client command half its start-up.
class HttpError(Exception):
    pass


def endpoint(url):
    """(scheme, host, port) of dvn's API at ``url``."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise CliError("--url %s: give http://HOST:PORT or https://HOST:PORT" % url)
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _tls_context(ca_file):
    import ssl
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise CliError("cannot read the CA file %s: %s" % (ca_file, exc))


def _dechunk(data):
    out = []
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            raise HttpError("a chunked body ends early")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2:]


def http_call(url, ca_file, method, path, body=None, headers=(), timeout=30):
    """(status, body bytes) of one HTTP/1.1 request; https verifies dvn's
    certificate against ``ca_file`` (dvn's CA: --ca-file, DVN_CA_FILE), else
    against the system's CAs. OSError or HttpError if it does not happen."""
    import socket
    scheme, host, port = endpoint(url)
    context = _tls_context(ca_file) if scheme == "https" else None
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % ("[%s]" % host if ":" in host else host, port),
                 "Connection: close", "Accept: application/json", "Content-Length: %d" % len(body or b"")]
        lines += ["%s: %s" % kv for kv in headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, sep, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise HttpError("not an HTTP answer: %r" % status_line[:80])
    if not sep:
        raise HttpError("the answer ends in its headers")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    elif "content-length" in fields:
        length = int(fields["content-length"])
        if len(payload) < length:
            raise HttpError("the answer ends %d bytes early" % (length - len(payload)))
        payload = payload[:length]
    return status, payload


def _problem_text(status, payload, raw):
    """An error answer in one line: status, the problem's title and detail, and the field at fault."""
    if isinstance(payload, dict) and ("detail" in payload or "title" in payload):
        title, detail, field = payload.get("title"), payload.get("detail"), payload.get("field")
        text = "%d %s" % (status, title or "")
        if detail:
            text = "%s: %s" % (text.rstrip(), detail)
        return text + (" (field: %s)" % field if field else "")
    return "%d %s" % (status, " ".join(raw.decode(errors="replace").split())[:300])


def request(args, method, path, body=None, timeout=30, auth=True, text=False):
    """One API call: the answer's JSON (``text``: its text), or CliError (a problem, an unreachable server)."""
    if not getattr(args, "settled", False):
        settle(args)
    headers = [("Authorization", "Bearer %s" % _token(args))] if auth else []
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers.append(("Content-Type", "application/json"))
    try:
        status, raw = http_call(args.url, args.ca_file, method, path, data, headers, timeout)
    except (OSError, HttpError, ValueError) as exc:
        raise CliError("cannot reach dvn at %s: %s" % (args.url, " ".join(str(exc).split()) or type(exc).__name__))
    if text and status < 400:
        return raw.decode("utf-8", "replace")
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
        if status < 400:
            raise CliError("%s at %s answered %d with no JSON: is it dvn's API?" % (args.url, path, status))
    if status >= 400:
        raise CliError(_problem_text(status, payload, raw))
    return payload


# ---- output ---------------------------------------------------------------------------------------
def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join("%s=%s" % (k, _cell(v)) for k, v in value.items()) or "-"
    return str(value)


def _field_only(args, payload):
    """--field NAME: that field of the answer (of each object of a list), a line each; True if it printed."""
    name = getattr(args, "field", None)
    if not name or payload is None:
        return False
    for obj in payload if isinstance(payload, list) else [payload]:
        if not isinstance(obj, dict) or name not in obj:
            raise CliError("--field %s: the answer has %s" % (
                name, ", ".join(sorted(obj)) if isinstance(obj, dict) else "no fields"))
        value = obj[name]
        print(json.dumps(value) if args.json else "" if value is None else _cell(value))
    return True


def _print(args, payload, columns):
    """A table for people (a list, or one object as one row), the JSON for scripts."""
    if _field_only(args, payload):
        return
    if args.json:
        print(json.dumps(payload, indent=2))
        return
    if payload is None:
        return
    rows = payload if isinstance(payload, list) else [payload]
    table = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in table]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _show(args, obj, fields):
    """One object, a field a line (for people), or its JSON."""
    if _field_only(args, obj):
        return
    if args.json:
        print(json.dumps(obj, indent=2))
        return
    width = max(len(f) for f in fields)
    for f in fields:
        print("%s  %s" % (f.ljust(width), _cell(obj.get(f))))


NET_COLS = ["id", "name", "tenant", "vni", "cidrs", "tags"]
PORT_COLS = ["id", "name", "tenant", "network", "mac", "ips", "tags", "node"]
PORT_ROW = PORT_COLS + ["security_groups"]
PORT_FIELDS = PORT_ROW + ["port_security", "encrypt", "allowed_address_pairs"]
NODE_COLS = ["system_id", "hostname", "encap_ip", "state"]
SG_COLS = ["id", "name", "tenant", "description", "criteria", "encrypt", "encrypt_with"]
RULE_COLS = ["id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "icmp_type",
             "icmp_code", "remote_ip_prefix", "remote_group_id", "action", "priority", "log", "alert"]
EVENT_COLS = ["time", "node", "port", "rule", "verdict", "direction", "src", "dst", "protocol", "dst_port"]
LB_COLS = ["id", "name", "tenant", "network", "vip_address", "protocol", "protocol_port", "members"]
MEMBER_COLS = ["id", "name", "address", "protocol_port", "weight", "admin_state_up", "operating_status"]
TOKEN_COLS = ["id", "node", "uses", "used", "expires_at", "revoked", "usable", "description"]
CERT_COLS = ["node", "serial", "fingerprint", "not_after", "token", "revoked"]


# ---- names and ids ----------------------------------------------------------------------------------
KIND_NOUN = {"networks": "network", "ports": "port", "security-groups": "security group",
             "load-balancers": "load balancer"}


def _resolve(args, kind, ref):
    """A name or an id -> the object's id (an id is taken as it is: one request less)."""
    if UUID.match(ref):
        return ref
    items = request(args, "GET", "/v1/%s?%s" % (kind, urllib.parse.urlencode({"name": ref})))
    if len(items) == 1:
        return items[0]["id"]
    if len(items) > 1:
        raise CliError("%r names %d %ss (of tenants %s); give the id" % (
            ref, len(items), KIND_NOUN[kind], ", ".join(sorted(i["tenant"] for i in items))))
    raise CliError("no %s named %r" % (KIND_NOUN[kind], ref))


def _names(args, kind):
    """{id: name} of the caller's objects of a kind (to show names, not ids, to people)."""
    return {o["id"]: o["name"] for o in request(args, "GET", "/v1/%s" % kind)}


def _optional(body, **fields):
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def _query(**params):
    """A query string of the given (not None) parameters: '' or '?a=b'."""
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(given) if given else ""


def _json_arg(text, option):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError("%s is not JSON: %s" % (option, exc))


def _int(text, option):
    try:
        return int(text)
    except ValueError:
        raise CliError("%s %r: give a number" % (option, text))


# ---- networks ----------------------------------------------------------------------------------------
def cmd_network(args):
    if args.action == "create":
        body = _optional({"name": args.name}, tenant=args.tenant, vni=args.vni, cidrs=args.cidr, tags=args.tag)
        return _print(args, request(args, "POST", "/v1/networks", body), NET_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/networks" + _query(tenant=args.tenant)), NET_COLS)
    path = "/v1/networks/%s" % _resolve(args, "networks", args.name)
    if args.action == "show":
        return _show(args, request(args, "GET", path), NET_COLS)
    if args.action == "update":
        body = _optional({}, name=args.new_name, tags=[] if args.no_tags else args.tag)
        return _print(args, request(args, "PATCH", path, body), NET_COLS)
    request(args, "DELETE", path)


# ---- ports -------------------------------------------------------------------------------------------
def _address_pair(text):
    """IP[/PREFIX][,MAC] -> an allowed address pair."""
    ip, _, mac = text.partition(",")
    return _optional({"ip_address": ip}, mac_address=mac or None)


def _group_ids(args, refs):
    return [_resolve(args, "security-groups", g) for g in refs]


def _port_security_body(args, body, port=None):
    """The security fields of a port create or update, from the flags given."""
    _optional(body, encrypt=args.encrypt, port_security=args.port_security)
    if args.allowed_address is not None:
        body["allowed_address_pairs"] = [_address_pair(a) for a in args.allowed_address]
    if args.security_group is not None:
        body["security_groups"] = _group_ids(args, args.security_group)
    if port is not None:
        if args.no_allowed_addresses:
            body["allowed_address_pairs"] = []
        if args.no_security_groups:
            body["security_groups"] = []
        if args.add_security_group or args.remove_security_group:
            groups = list(body.get("security_groups", port["security_groups"]))
            groups += [g for g in _group_ids(args, args.add_security_group or []) if g not in groups]
            gone = set(_group_ids(args, args.remove_security_group or []))
            body["security_groups"] = [g for g in groups if g not in gone]
    return body


def _port_for_people(args, ports):
    """Ports with their groups' and network's names instead of ids (a table, not --json)."""
    if args.json or args.field:
        return ports
    many = isinstance(ports, list)
    ports = ports if many else [ports]
    groups = _names(args, "security-groups") if any(p["security_groups"] for p in ports) else {}
    nets = _names(args, "networks")
    out = [dict(p, network=nets.get(p["network"], p["network"]),
                security_groups=[groups.get(g, g) for g in p["security_groups"]],
                allowed_address_pairs=["%s,%s" % (a["ip_address"], a["mac_address"])
                                       for a in p["allowed_address_pairs"]]) for p in ports]
    return out if many else out[0]


def cmd_port(args):
    if args.action == "create":
        body = _optional({"name": args.name, "network": _resolve(args, "networks", args.network)},
                         mac=args.mac, ips=args.ip, tags=args.tag)
        made = request(args, "POST", "/v1/ports", _port_security_body(args, body))
        return _print(args, _port_for_people(args, made), PORT_ROW)
    if args.action == "list":
        net = _resolve(args, "networks", args.network) if args.network else None
        ports = request(args, "GET", "/v1/ports" + _query(network=net, tenant=args.tenant))
        return _print(args, _port_for_people(args, ports), PORT_ROW)
    path = "/v1/ports/%s" % _resolve(args, "ports", args.name)
    if args.action == "show":
        return _show(args, _port_for_people(args, request(args, "GET", path)), PORT_FIELDS)
    if args.action == "update":
        body = _optional({}, name=args.new_name, tags=[] if args.no_tags else args.tag)
        relative = args.add_security_group or args.remove_security_group
        _port_security_body(args, body, request(args, "GET", path) if relative else {})
        return _print(args, _port_for_people(args, request(args, "PATCH", path, body)), PORT_ROW)
    request(args, "DELETE", path)


# ---- security groups and rules -------------------------------------------------------------------------
def _group_body(args, body, update=False):
    _optional(body, description=args.description, encrypt=args.encrypt)
    if args.criteria is not None:
        body["criteria"] = _json_arg(args.criteria, "--criteria")
    if update and args.no_criteria:
        body["criteria"] = None
    if args.encrypt_with is not None:
        body["encrypt_with"] = _group_ids(args, args.encrypt_with)
    if update and args.no_encrypt_with:
        body["encrypt_with"] = []
    return body


def _group_for_people(args, group):
    if args.json or args.field or not group["encrypt_with"]:
        return group
    names = _names(args, "security-groups")
    return dict(group, encrypt_with=[names.get(g, g) for g in group["encrypt_with"]])


def _rules_for_people(args, rules):
    if args.json or args.field or not any(r["remote_group_id"] for r in rules):
        return rules
    names = _names(args, "security-groups")
    return [dict(r, remote_group_id=names.get(r["remote_group_id"], r["remote_group_id"])) for r in rules]


def cmd_group(args):
    if args.action == "create":
        body = _group_body(args, _optional({"name": args.name}, tenant=args.tenant))
        return _print(args, _group_for_people(args, request(args, "POST", "/v1/security-groups", body)), SG_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/security-groups" + _query(tenant=args.tenant)), SG_COLS)
    path = "/v1/security-groups/%s" % _resolve(args, "security-groups", args.name)
    if args.action == "show":
        group = request(args, "GET", path)
        if args.json or args.field:
            return _print(args, group, SG_COLS)
        _show(args, _group_for_people(args, group), SG_COLS)
        print()
        return _print(args, _rules_for_people(args, group["rules"]), RULE_COLS)
    if args.action == "update":
        body = _group_body(args, _optional({}, name=args.new_name), update=True)
        return _print(args, _group_for_people(args, request(args, "PATCH", path, body)), SG_COLS)
    if args.action == "members":
        return _print(args, request(args, "GET", path + "/members"), ["id", "name"])
    request(args, "DELETE", path)


def _protocol(text):
    return int(text) if text is not None and text.isdigit() else text


def cmd_rule(args):
    group_path = "/v1/security-groups/%s" % _resolve(args, "security-groups", args.group)
    path = group_path + "/rules"
    if args.action == "list":
        return _print(args, _rules_for_people(args, request(args, "GET", group_path)["rules"]), RULE_COLS)
    if args.action == "delete":
        request(args, "DELETE", "%s/%s" % (path, args.rule_id))
        return
    if args.action == "stats":
        return _print(args, request(args, "GET", "%s/%s/stats" % (path, args.rule_id)),
                      ["packets", "bytes", "established_packets", "switches"])
    body = _optional({"direction": args.direction}, ethertype=args.ethertype, protocol=_protocol(args.protocol),
                     remote_ip_prefix=args.remote_ip_prefix, action=args.verdict, priority=args.priority,
                     icmp_type=args.icmp_type, icmp_code=args.icmp_code)
    if args.remote_group:
        body["remote_group_id"] = _resolve(args, "security-groups", args.remote_group)
    if args.ports:
        lo, _, hi = args.ports.partition("-")
        body["port_range_min"] = _int(lo, "--ports")
        body["port_range_max"] = _int(hi or lo, "--ports")
    if args.log:
        body["log"] = True
    if args.alert:
        body["alert"] = True
    return _print(args, _rules_for_people(args, [request(args, "POST", path, body)])[0], RULE_COLS)


# ---- load balancers ---------------------------------------------------------------------------------------
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


def _lb_show(args, lb):
    if args.json or args.field:
        return _print(args, lb, LB_COLS)
    _print(args, _lb_rows([lb]), LB_COLS)
    sp, hm = lb["session_persistence"], lb["health_monitor"]
    print("affinity: %s" % ("source IP, %d s" % sp["persistence_timeout"] if sp else "none"))
    print("monitor: %s" % (" ".join("%s=%s" % (k, hm[k]) for k in sorted(hm)) if hm else "none"))
    print()
    return _print(args, lb["members"], MEMBER_COLS)


def cmd_lb(args):
    if args.action == "create":
        body = _optional({"name": args.name, "network": _resolve(args, "networks", args.network),
                          "vip_address": args.vip, "protocol_port": args.port, "protocol": args.protocol,
                          "members": [_address_port(m, "--member", weight=True) for m in args.member or []]},
                         tenant=args.tenant, description=args.description)
        if args.affinity is not None:
            body["session_persistence"] = {"type": "SOURCE_IP", "persistence_timeout": args.affinity}
        monitor = _monitor(args)
        if monitor is not None:
            body["health_monitor"] = monitor
        made = request(args, "POST", "/v1/load-balancers", body)
        return _print(args, made if args.json or args.field else _lb_rows([made]), LB_COLS)
    if args.action == "list":
        net = _resolve(args, "networks", args.network) if args.network else None
        lbs = request(args, "GET", "/v1/load-balancers" + _query(network=net, tenant=args.tenant))
        return _print(args, lbs if args.json or args.field else _lb_rows(lbs), LB_COLS)
    path = "/v1/load-balancers/%s" % _resolve(args, "load-balancers", args.name)
    if args.action == "show":
        return _lb_show(args, request(args, "GET", path))
    if args.action == "update":
        body = _optional({}, name=args.new_name, description=args.description)
        if args.affinity is not None:
            body["session_persistence"] = {"type": "SOURCE_IP", "persistence_timeout": args.affinity}
        if args.no_affinity:
            body["session_persistence"] = None
        monitor = _monitor(args)
        if monitor is not None:
            body["health_monitor"] = monitor
        if args.no_monitor:
            body["health_monitor"] = None
        return _lb_show(args, request(args, "PATCH", path, body))
    if args.action == "stats":
        stats = request(args, "GET", path + "/stats")
        if args.json or args.field:
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
        raise CliError("the load balancer has no member %s" % ref)
    return ref


def cmd_member(args):
    lb_path = "/v1/load-balancers/%s" % _resolve(args, "load-balancers", args.lb)
    if args.action == "add":
        if args.name and len(args.member) > 1:
            raise CliError("--name names one member: add the others apart")
        bodies = [_optional(_address_port(m, "member"), weight=args.weight, name=args.name,
                            admin_state_up=args.admin_state_up) for m in args.member]
        return _print(args, request(args, "POST", lb_path + "/members", bodies if len(bodies) > 1 else bodies[0]),
                      MEMBER_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", lb_path + "/members"), MEMBER_COLS)
    path = "%s/members/%s" % (lb_path, _member_id(args, lb_path, args.member))
    if args.action == "update":
        body = _optional({}, weight=args.weight, admin_state_up=args.admin_state_up, name=args.name)
        return _print(args, request(args, "PATCH", path, body), MEMBER_COLS)
    request(args, "DELETE", path)


# ---- events, import, nodes, tokens, CA --------------------------------------------------------------------
def cmd_events(args):
    port = _resolve(args, "ports", args.port) if args.port else None
    query = _query(limit=args.limit, port=port, rule=args.rule)
    return _print(args, request(args, "GET", "/v1/events" + query), EVENT_COLS)


IMPORT_KINDS = ("networks", "security_groups", "ports", "load_balancers")
AUDIT_COLS = ["seq", "time", "actor", "method", "path", "status", "detail"]
WEBHOOK_COLS = ["id", "tenant", "url"]


def cmd_webhook(args):
    """The tenant's alert webhook (rules with --alert POST their alerts there)."""
    if args.action == "set":
        return _print(args, request(args, "POST", "/v1/alert-webhooks", _optional({"url": args.hook_url},
                                                                                   tenant=args.tenant)), WEBHOOK_COLS)
    if args.action == "list":
        return _print(args, request(args, "GET", "/v1/alert-webhooks"), WEBHOOK_COLS)
    request(args, "DELETE", "/v1/alert-webhooks/%s" % urllib.parse.quote(args.id, safe=""))
    return 0


def cmd_audit(args):
    return _print(args, request(args, "GET", "/v1/audit" + _query(after=args.after, limit=args.limit)), AUDIT_COLS)


def cmd_metrics(args):
    sys.stdout.write(request(args, "GET", "/metrics", text=True))
    return 0


def _by(by):
    if by.get("kind") == "security group":
        return "security group %s, rule %s (%s)" % (by["security_group"], by["rule"], by["action"])
    named = [by[k] for k in ("port", "network", "node", "load_balancer") if k in by]
    return " ".join([by.get("kind", "?")] + named)


def cmd_trace(args):
    """POST /v1/trace: a packet's walk over the flows dvn installed, told in dvn's terms."""
    proto, _, port = (args.what or "icmp").partition("/")
    body = {"from_port": _resolve(args, "ports", args.from_port), "dest": args.dest, "protocol": proto}
    if port:
        body["port"] = _int(port, "PROTO/PORT")
    if args.established:
        body["established"] = True
    if args.member:
        body["member"] = args.member
    out = request(args, "POST", "/v1/trace", body)
    if args.json or args.field:
        return _print(args, out, [])
    print("%s from port %s on %s" % (out["packet"], out["from_port"], out["node"]))
    if "opened_by" in out:
        print("  (the connection: %s, %s)" % (out["opened_by"]["packet"], out["opened_by"]["verdict"]))
    for step in out["path"]:
        if "tunnel" in step:
            t = step["tunnel"]
            print("  %s: tunnel to %s over the %s mesh, VNI %d, identity 0x%x%s" % (
                step["node"], t["to"], t["mesh"], t["vni"], t["identity"],
                (": " + t["dropped"]) if "dropped" in t else ""))
        elif "member" in step:
            m = step["member"]
            print("  %s: load balancer %s picks member %s (%s:%d)" % (step["node"], step["load_balancer"], m["id"],
                                                                       m["address"], m["port"]))
        elif "table" in step:
            print("  %s %-16s %s%s" % (step["node"], step["table"], _by(step["by"]),
                                       " (no flow)" if step.get("miss") else ""))
    if out["verdict"] == "delivered":
        print("delivered to " + ", ".join("port %s on %s" % (d["port"], d["node"]) for d in out["delivered"]))
    else:
        print("dropped on %s in %s: %s" % (out["dropped"]["node"], out["dropped"]["table"], out["dropped"]["why"]))
    return 0


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
        raise CliError("cannot read %s: %s" % (args.file, exc.strerror or exc))
    except ValueError as exc:
        raise CliError("%s is not JSON: %s" % (args.file, exc))
    if args.tenant:
        if not isinstance(doc, dict):
            raise CliError("%s is not a JSON object" % args.file)
        doc["tenant"] = args.tenant
    made = request(args, "POST", "/v1/import", doc, timeout=args.timeout)
    if args.json or args.field:
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
    path = "/v1/nodes/%s" % urllib.parse.quote(args.system_id, safe="")
    if args.action == "show":
        return _show(args, request(args, "GET", path), NODE_COLS + ["last_seen", "switch"])
    if args.action == "rotate-keys":
        rotated = request(args, "POST", path + "/rotate-keys")
        if args.json or args.field:
            return _print(args, rotated, [])
        print("node %s: %d tunnel key%s rotated" % (rotated["system_id"], rotated["rotated"],
                                                    "" if rotated["rotated"] == 1 else "s"))
        return 0
    request(args, "DELETE", path)


def cmd_revoke_node(args):
    revoked = request(args, "POST", "/v1/nodes/%s/revoke" % urllib.parse.quote(args.system_id, safe=""))
    if args.json or args.field:
        return _print(args, revoked, [])
    print("node %s revoked: its certificate%s %s refused from now on, %d pair key%s deleted" % (
        revoked["node"], "s" if len(revoked["revoked"]) > 1 else "", ", ".join(revoked["revoked"]),
        revoked.get("keys_deleted", 0), "" if revoked.get("keys_deleted", 0) == 1 else "s"))
    return 0


def cmd_join_token(args):
    """Join tokens (docs/join.md), through the API: create, list, show, revoke."""
    if args.action == "create" and args.nb:   # the old form of `dvn api-token create`
        return cmd_api_token(args)
    if args.action == "create":
        body = _optional({}, node=args.node, ttl=args.ttl, uses=args.uses, description=args.description)
        made = request(args, "POST", "/v1/join-tokens", body)
        if args.json or args.field:
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


def cmd_ca(args):
    """dvn's CA as the API serves it (no token needed): its hash, or its certificate."""
    ca = request(args, "GET", "/v1/ca", auth=False)
    if args.json or args.field:
        return _print(args, ca, [])
    print(ca["certificate"].rstrip() if args.pem else ca["ca_hash"])
    return 0


def cmd_openapi(args):
    print(json.dumps(request(args, "GET", "/v1/openapi.json", auth=False), indent=2))
    return 0


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
    try:
        nb = Northbound(args.nb).start()
    except Exception as exc:  # (ovsdbapp's own: the store is not there)
        raise CliError("cannot open the northbound store at %s (is dvn serve running?): %s"
                       % (args.nb, " ".join(str(exc).split())))
    try:
        print(create_token(nb, args.tenant or "", "admin" if args.admin else "tenant"))
    finally:
        nb.stop()


def cmd_completion(args):
    print(completion_script(parser(full=True)), end="")
    return 0


# ---- the parser -------------------------------------------------------------------------------------------
def _connection_options(parser, after):
    """The options of the connection to dvn: on the program (defaults None) and
    on every client command, so they may come after it too (there: only if given)."""
    d = {"default": argparse.SUPPRESS} if after else {}
    g = parser.add_argument_group("connection to dvn (before or after the command; see `dvn --help`)")
    g.add_argument("--url", metavar="URL", help="dvn's REST API (default: $DVN_URL, the config file, else %s)"
                   % DEFAULT_URL, **d)
    g.add_argument("--token", help="the API token (default: $DVN_TOKEN, $DVN_TOKEN_FILE, the config file)", **d)
    g.add_argument("--ca-file", metavar="PEM",
                   help="the CA that signed dvn's API certificate, for an https URL (default: $DVN_CA_FILE, "
                        "the config file, else the system's CAs)", **d)
    g.add_argument("--config", metavar="FILE",
                   help="the config file (default: $DVN_CONFIG, else ~/.config/dvn/cli.conf)", **d)
    g.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)", **d)
    g.add_argument("--field", metavar="NAME", help="print only this field of the answer, a line per object: "
                                                   "dvn port show vm1 --field id", **d)


class _Commands:
    """add_parser for client commands: each gets the connection options."""

    def __init__(self, subparsers, common):
        self.sub, self.common = subparsers, common

    def add(self, name, **kw):
        return self.sub.add_parser(name, parents=[self.common], **kw)


def _ref(p, name="name", what="name or id"):
    p.add_argument(name, help=what)


def _bool(p, name, help):
    p.add_argument("--" + name, action=argparse.BooleanOptionalAction, help=help)


def _port_security_options(p, update):
    g = p.add_argument_group("security")
    g.add_argument("--security-group", action="append", metavar="GROUP",
                   help="a security group, name or id (repeat for more)%s" % (
                       "; replaces the port's groups" if update else ""))
    if update:
        g.add_argument("--add-security-group", action="append", metavar="GROUP", help="put it in one more group")
        g.add_argument("--remove-security-group", action="append", metavar="GROUP", help="take it out of a group")
        g.add_argument("--no-security-groups", action="store_true", help="take it out of every group")
    _bool(g, "port-security", "anti-spoofing: only its own MAC and IPs may leave it (default on)")
    _bool(g, "encrypt", "its traffic to other nodes goes through the IPsec mesh only (docs/encryption.md)")
    g.add_argument("--allowed-address", action="append", metavar="IP[/PREFIX][,MAC]",
                   help="one more address the port may send from (repeat)%s" % (
                       "; replaces the port's" if update else ""))
    if update:
        g.add_argument("--no-allowed-addresses", action="store_true", help="remove every allowed address pair")


def _group_options(p, update):
    p.add_argument("--description")
    p.add_argument("--criteria", metavar="JSON", help='a dynamic group\'s membership: {"tags_any": ["pci"]}')
    if update:
        p.add_argument("--no-criteria", action="store_true", help="no more dynamic membership")
    _bool(p, "encrypt", "its members' traffic to other nodes is encrypted")
    p.add_argument("--encrypt-with", action="append", metavar="GROUP",
                   help="encrypt its traffic with this group's members (repeat)%s" % (
                       "; replaces the list" if update else ""))
    if update:
        p.add_argument("--no-encrypt-with", action="store_true", help="empty --encrypt-with")


def _lb_options(p, update):
    p.add_argument("--description")
    p.add_argument("--affinity", type=int, metavar="SECONDS",
                   help="session persistence by source IP (a client stays on its member while the pool's "
                        "members do not change; the timeout is kept for Octavia's model)")
    if update:
        p.add_argument("--no-affinity", action="store_true", help="no session persistence")
    p.add_argument("--monitor", choices=["tcp", "http"], help="health-check the members%s" % (
        " (replaces the monitor)" if update else ""))
    p.add_argument("--monitor-delay", type=float, metavar="S", help="seconds between checks")
    p.add_argument("--monitor-timeout", type=float, metavar="S", help="seconds a check waits for an answer")
    p.add_argument("--monitor-rise", type=int, metavar="N", help="successes that bring a member back")
    p.add_argument("--monitor-fall", type=int, metavar="N", help="failures that take a member out")
    p.add_argument("--monitor-path", metavar="P", help="the URL path of an http check")
    p.add_argument("--monitor-codes", metavar="C", help="the HTTP codes that pass: 200, 200,202 or 200-204")
    if update:
        p.add_argument("--no-monitor", action="store_true", help="no health monitor")


def _server_commands(sub, full):
    """serve, join and leave: their real parsers when one of them runs (or for
    completion), else a line of help each, without importing them."""
    if full:
        from controller import serve
        from ovsdb import join
        serve.register(sub)
        join.register(sub)
        return
    sub.add_parser("serve", help="run the dvn controller", add_help=False)
    sub.add_parser("join", help="join this node to a dvn controller (run on the node)", add_help=False)
    sub.add_parser("leave", help="disconnect this node from dvn (run on the node)", add_help=False)


class _Parser(argparse.ArgumentParser):
    """A usage error in one line, with where to look, not the whole usage."""

    def error(self, message):
        self.exit(2, "%s: %s (see %s --help)\n" % (self.prog, message, self.prog))


class _Sink:
    """What a command that does not run gets instead of its parser: every call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


class _Only:
    """The subcommands' add_parser that builds one command's parser only (``only``), and
    a line of help for each other: the parser of every command costs a command's
    start-up as much as its imports."""

    def __init__(self, subparsers, only):
        self.sub, self.only = subparsers, only

    def add_parser(self, name, **kw):
        if self.only is None or name == self.only:
            return self.sub.add_parser(name, **kw)
        self.sub.add_parser(name, help=kw.get("help"), add_help=False)
        return _Sink()


def parser(full=False, only=None):
    """The `dvn` parser: with every command's (``full``, the real parsers of
    serve, join and leave included), else with command ``only``'s, and a line
    of help for the others."""
    ap = _Parser(prog="dvn", description="dvn: distributed virtual networking for Open vSwitch",
                 epilog=SETTINGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _connection_options(ap, after=False)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, after=True)
    real = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _server_commands(real, full or only in SERVER_COMMANDS)
    sub = real if full else _Only(real, only or "")
    cmds = _Commands(sub, common)

    net = sub.add_parser("network", parents=[common], help="tenant networks")
    nsub = _Commands(net.add_subparsers(dest="action", required=True), common)
    c = nsub.add("create", help="create a network")
    c.add_argument("name")
    c.add_argument("--tenant", help="its tenant (admin; a tenant's token says its own)")
    c.add_argument("--vni", type=int, help="its GENEVE VNI (default: the next free)")
    c.add_argument("--cidr", action="append", help="an IPv4 or IPv6 network (at most one of each)")
    c.add_argument("--tag", action="append", help="a tag (repeat)")
    nsub.add("list", help="list networks").add_argument("--tenant", help="only this tenant's (admin)")
    for action in ("show", "delete"):
        _ref(nsub.add(action, help="%s a network" % action))
    u = nsub.add("update", help="rename or retag a network")
    _ref(u)
    u.add_argument("--new-name")
    u.add_argument("--tag", action="append", help="a tag (repeat; replaces the tags)")
    u.add_argument("--no-tags", action="store_true", help="remove every tag")
    net.set_defaults(func=cmd_network)

    port = sub.add_parser("port", parents=[common], help="ports of tenant networks")
    psub = _Commands(port.add_subparsers(dest="action", required=True), common)
    c = psub.add("create", help="create a port (then plug a VM with external_ids:iface-id=<port id>)")
    c.add_argument("name")
    c.add_argument("--network", required=True, help="name or id")
    c.add_argument("--mac", help="default: a free one")
    c.add_argument("--ip", action="append", help="an address of the network (repeat)")
    c.add_argument("--tag", action="append", help="a tag (repeat)")
    _port_security_options(c, update=False)
    ls = psub.add("list", help="list ports")
    ls.add_argument("--network", help="only this network's (name or id)")
    ls.add_argument("--tenant", help="only this tenant's (admin)")
    for action in ("show", "delete"):
        _ref(psub.add(action, help="%s a port" % action))
    u = psub.add("update", help="rename, retag, or change the groups and security of a port")
    _ref(u)
    u.add_argument("--new-name")
    u.add_argument("--tag", action="append", help="a tag (repeat; replaces the tags)")
    u.add_argument("--no-tags", action="store_true", help="remove every tag")
    _port_security_options(u, update=True)
    port.set_defaults(func=cmd_port)

    grp = sub.add_parser("security-group", parents=[common], help="security groups (and dynamic groups)")
    gsub = _Commands(grp.add_subparsers(dest="action", required=True), common)
    c = gsub.add("create", help="create a security group (add rules with `dvn rule add`)")
    c.add_argument("name")
    c.add_argument("--tenant", help="its tenant (admin)")
    _group_options(c, update=False)
    gsub.add("list", help="list security groups").add_argument("--tenant", help="only this tenant's (admin)")
    _ref(gsub.add("show", help="a group and its rules"))
    _ref(gsub.add("members", help="the ports in the group now"))
    _ref(gsub.add("delete", help="delete a group nothing uses"))
    u = gsub.add("update", help="change a security group")
    _ref(u)
    u.add_argument("--new-name")
    _group_options(u, update=True)
    grp.set_defaults(func=cmd_group)

    rule = sub.add_parser("rule", parents=[common], help="rules of a security group")
    rsub = _Commands(rule.add_subparsers(dest="action", required=True), common)
    c = rsub.add("add", help="add a rule (allow, unless --deny)")
    c.add_argument("group", help="security group name or id")
    c.add_argument("direction", choices=["ingress", "egress"])
    c.add_argument("--ethertype", choices=["IPv4", "IPv6"])
    c.add_argument("--protocol", help="tcp, udp, icmp, icmpv6, any or a number")
    c.add_argument("--ports", help="a port or a range: 80 or 8000-8080 (tcp, udp)")
    c.add_argument("--icmp-type", type=int)
    c.add_argument("--icmp-code", type=int)
    c.add_argument("--remote-ip-prefix", metavar="CIDR")
    c.add_argument("--remote-group", metavar="GROUP", help="security group name or id")
    verdict = c.add_mutually_exclusive_group()
    verdict.add_argument("--allow", dest="verdict", action="store_const", const="allow")
    verdict.add_argument("--deny", dest="verdict", action="store_const", const="deny")
    c.add_argument("--priority", type=int, help="0 to 1000: the highest matching rule decides")
    c.add_argument("--log", action="store_true", help="log the packets it matches (`dvn events`)")
    c.add_argument("--alert", action="store_true",
                   help="alert the tenant's webhook (`dvn webhook set`) once a minute per connection it matches")
    rsub.add("list", help="a group's rules").add_argument("group", help="security group name or id")
    for action, what in (("delete", "remove a rule"), ("stats", "a rule's hit counters")):
        r = rsub.add(action, help=what)
        r.add_argument("group", help="security group name or id")
        r.add_argument("rule_id")
    rule.set_defaults(func=cmd_rule)

    lbp = sub.add_parser("lb", parents=[common],
                         help="load balancers (a VIP, its pool of members and their health monitor)")
    lsub = _Commands(lbp.add_subparsers(dest="action", required=True), common)
    c = lsub.add("create", help="create a load balancer")
    c.add_argument("name")
    c.add_argument("--network", required=True, help="name or id")
    c.add_argument("--vip", required=True, help="the VIP: an IPv4 address of the network")
    c.add_argument("--port", required=True, type=int, help="the VIP's port")
    c.add_argument("--protocol", choices=["tcp", "udp"], default="tcp")
    c.add_argument("--tenant", help="its network's tenant (admin)")
    c.add_argument("--member", action="append", metavar="IP:PORT[:WEIGHT]", help="a member (repeat for more)")
    _lb_options(c, update=False)
    ls = lsub.add("list", help="list load balancers")
    ls.add_argument("--network", help="only this network's (name or id)")
    ls.add_argument("--tenant", help="only this tenant's (admin)")
    for action, what in (("show", "a load balancer and its members' status"),
                         ("stats", "new connections per VIP and member"), ("delete", "delete a load balancer")):
        _ref(lsub.add(action, help=what))
    u = lsub.add("update", help="change a load balancer's name, description, affinity or monitor")
    _ref(u)
    u.add_argument("--new-name")
    _lb_options(u, update=True)
    lbp.set_defaults(func=cmd_lb)

    mem = sub.add_parser("member", parents=[common], help="members of a load balancer's pool")
    msub = _Commands(mem.add_subparsers(dest="action", required=True), common)
    c = msub.add("add", help="add one member or several")
    c.add_argument("lb", help="load balancer name or id")
    c.add_argument("member", metavar="IP:PORT", nargs="+")
    c.add_argument("--weight", type=int, help="0 to 256 (default 1; 0 takes no new connections)")
    c.add_argument("--name", help="its name (one member only)")
    state = c.add_mutually_exclusive_group()
    state.add_argument("--up", dest="admin_state_up", action="store_const", const=True, help="(the default)")
    state.add_argument("--down", dest="admin_state_up", action="store_const", const=False,
                       help="added, but taking no connections")
    msub.add("list", help="a pool's members").add_argument("lb", help="load balancer name or id")
    u = msub.add("update", help="change a member's name, weight or admin state")
    u.add_argument("lb", help="load balancer name or id")
    u.add_argument("member", metavar="MEMBER", help="member id (or its IP:PORT)")
    u.add_argument("--weight", type=int)
    u.add_argument("--name")
    state = u.add_mutually_exclusive_group()
    state.add_argument("--up", dest="admin_state_up", action="store_const", const=True)
    state.add_argument("--down", dest="admin_state_up", action="store_const", const=False)
    d = msub.add("delete", help="remove a member")
    d.add_argument("lb", help="load balancer name or id")
    d.add_argument("member", metavar="MEMBER", help="member id (or its IP:PORT)")
    mem.set_defaults(func=cmd_member)

    ev = cmds.add("events", help="recent firewall log events")
    ev.add_argument("--port", help="only this port's (name or id)")
    ev.add_argument("--rule", help="only this rule's (id)")
    ev.add_argument("--limit", type=int, default=50)
    ev.set_defaults(func=cmd_events)

    tr = cmds.add("trace", help="why a packet goes where it goes: its walk over the flows dvn installed")
    tr.add_argument("from_port", metavar="FROM_PORT", help="the sending port (name or id)")
    tr.add_argument("dest", metavar="DEST", help="an IPv4 address in its network: a port's or a VIP")
    tr.add_argument("what", metavar="PROTO[/PORT]", nargs="?", help="icmp (default), tcp/PORT or udp/PORT")
    tr.add_argument("--established", action="store_true",
                    help="a reply in a connection DEST opened, not a new connection")
    tr.add_argument("--member", help="for a VIP: the member the switch's hash would pick (id)")
    tr.set_defaults(func=cmd_trace)

    wh = sub.add_parser("webhook", parents=[common], help="the tenant's alert webhook (rules with --alert)")
    wsub = _Commands(wh.add_subparsers(dest="action", required=True), common)
    c = wsub.add("set", help="POST the tenant's alerts to URL (one webhook a tenant)")
    c.add_argument("hook_url", metavar="URL", help="http:// or https://")   # (--url is dvn's)
    c.add_argument("--tenant", help="its tenant (admin; a tenant's token says its own)")
    wsub.add("list", help="list alert webhooks")
    _ref(wsub.add("delete", help="remove an alert webhook"), "id", "its id")
    wh.set_defaults(func=cmd_webhook)

    au = cmds.add("audit", help="the audit log: every API write, newest last")
    au.add_argument("--after", type=int, help="only the records after this seq")
    au.add_argument("--limit", type=int, help="the newest N (default 100, at most 1000)")
    au.set_defaults(func=cmd_audit)

    cmds.add("metrics", help="the controller's Prometheus metrics (admin)").set_defaults(func=cmd_metrics)

    imp = cmds.add("import", help="create a tenant's configuration from one JSON document, all or nothing")
    imp.add_argument("file", help="the document (- for standard input)")
    imp.add_argument("--tenant", help="the document's tenant (an admin token must give one, here or in it)")
    imp.add_argument("--timeout", type=float, default=600, metavar="S",
                     help="seconds to wait for the answer (default 600: a large document takes a while)")
    imp.set_defaults(func=cmd_import)

    node = sub.add_parser("node", parents=[common], help="nodes (admin)")
    ndsub = _Commands(node.add_subparsers(dest="action", required=True), common)
    ndsub.add("list", help="list nodes")
    for action, what in (("show", "a node and its switch as dvn sees it"), ("delete", "forget a node that is down"),
                         ("rotate-keys", "new pre-shared keys for the node's IPsec tunnels (never shown)"),
                         ("revoke", "refuse the node's certificates from now on")):
        ndsub.add(action, help=what).add_argument("system_id")
    ndsub.add("certificates", help="the certificates dvn's CA issued to nodes")
    node.set_defaults(func=cmd_node)

    tok = sub.add_parser("token", parents=[common], help="join tokens, which admit nodes (docs/join.md)")
    tsub = _Commands(tok.add_subparsers(dest="action", required=True), common)
    t = tsub.add("create", help="create a join token; it is printed once")
    t.add_argument("--node", help="the one node name (system-id) it admits (default: any new name)")
    t.add_argument("--ttl", type=int, metavar="S", help="seconds until it expires (default 86400)")
    t.add_argument("--uses", type=int, metavar="N", help="how many nodes it admits (default 1)")
    t.add_argument("--description")
    t.add_argument("--nb", help=argparse.SUPPRESS)        # the old `dvn token create --nb`: an API token
    t.add_argument("--tenant", help=argparse.SUPPRESS)
    t.add_argument("--admin", action="store_true", help=argparse.SUPPRESS)
    tsub.add("list", help="list join tokens (without their secrets)")
    for action in ("show", "revoke"):
        tsub.add(action, help="%s a join token" % action).add_argument(
            "id", help="the token's id (the part before the dot)")
    tok.set_defaults(func=cmd_join_token)

    ca = sub.add_parser("ca", parents=[common], help="dvn's CA, as its API serves it (no token needed)")
    casub = _Commands(ca.add_subparsers(dest="action", required=True), common)
    s = casub.add("show", help="the CA's hash (for `dvn join --ca-hash`; check it against the controller's "
                               "`dvn ca-hash`), or its certificate")
    s.add_argument("--pem", action="store_true", help="print the certificate (PEM)")
    ca.set_defaults(func=cmd_ca)

    cmds.add("openapi", help="the API's OpenAPI document (JSON)").set_defaults(func=cmd_openapi)

    api_tok = sub.add_parser("api-token", help="API tokens (on the controller host)")
    asub = api_tok.add_subparsers(dest="action", required=True)
    t = asub.add_parser("create", help="create an API token; it is printed once")
    t.add_argument("--nb", required=True, help="the northbound store, e.g. unix:/var/lib/dvn/nb.sock")
    t.add_argument("--tenant")
    t.add_argument("--admin", action="store_true")
    api_tok.set_defaults(func=cmd_api_token)

    cah = sub.add_parser("ca-hash", help="the hash of dvn's CA that `dvn join --ca-hash` pins (on the controller "
                                         "host)")
    cah.add_argument("ca_cert", nargs="?", default=os.path.join(os.environ.get("DVN_STATE_DIR", "/var/lib/dvn"),
                                                                "ca-cert.pem"))
    cah.set_defaults(func=cmd_ca_hash)

    comp = sub.add_parser("completion", help="print a shell completion script: "
                                             "dvn completion bash > /etc/bash_completion.d/dvn")
    comp.add_argument("shell", choices=["bash"], help="bash (zsh: autoload bashcompinit; bashcompinit, then the "
                                                      "bash script)")
    comp.set_defaults(func=cmd_completion)
    return ap


# ---- shell completion -------------------------------------------------------------------------------------
def _walk(ap, path=()):
    """(command path, subcommands, options, {option: choices or None if it takes a free value}, positional
    choices) of every parser under ``ap``."""
    subs, options, valued, positional = [], [], {}, []
    children = []
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                subs.append(name)
                children.append((name, child))
        elif action.option_strings:
            if action.help is argparse.SUPPRESS:
                continue
            options.extend(action.option_strings)
            if action.nargs != 0:
                for opt in action.option_strings:
                    valued[opt] = [str(c) for c in action.choices] if action.choices else None
        elif action.choices:
            positional.extend(str(c) for c in action.choices)
    yield path, subs, options, valued, positional
    for name, child in children:
        yield from _walk(child, path + (name,))


def completion_script(ap):
    """A bash completion script for ``ap``: commands, options and the choices of either."""
    def q(text):
        return "'%s'" % text.replace("'", "'\\''")

    lines = ["# bash completion for dvn (dvn completion bash)",
             "declare -gA _dvn_subs=() _dvn_opts=() _dvn_vals=()"]
    for path, subs, options, valued, positional in _walk(ap):
        key = " ".join(("dvn",) + path)
        lines.append("_dvn_subs[%s]=%s" % (q(key), q(" ".join(subs + positional))))
        lines.append("_dvn_opts[%s]=%s" % (q(key), q(" ".join(options))))
        for opt, choices in sorted(valued.items()):
            lines.append("_dvn_vals[%s]=%s" % (q("%s|%s" % (key, opt)), q(" ".join(choices or []) or "-")))
    lines.append(r'''_dvn() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path=dvn word i skip=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((skip)); then skip=0; continue; fi
        if [[ $word == -* ]]; then
            [[ -n ${_dvn_vals["$path|$word"]+x} ]] && skip=1
            continue
        fi
        if [[ " ${_dvn_subs[$path]} " == *" $word "* && -n ${_dvn_subs["$path $word"]+x} ]]; then
            path="$path $word"
        fi
    done
    if [[ $prev == -* && -n ${_dvn_vals["$path|$prev"]+x} ]]; then
        local values=${_dvn_vals["$path|$prev"]}
        if [[ $values == - ]]; then
            COMPREPLY=($(compgen -f -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$values" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_dvn_opts[$path]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${_dvn_subs[$path]}" -- "$cur"))
    fi
}
complete -F _dvn dvn
''')
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------------------
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_word(argv)
    _quiet_libraries()
    if command in ("join", "leave", "api-token", "token"):
        # python-ovs logs a failed connection as well as raising it: the one line below says it.
        import logging
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        try:
            args = parser(only=command).parse_args(argv)
        except SystemExit as exc:    # --help, or a usage error (said)
            return exc.code
        rc = args.func(args)
    except CliError as exc:
        print("dvn: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, never a traceback (DVN_DEBUG=1 shows it)
        if os.environ.get("DVN_DEBUG"):
            raise
        print("dvn %s: %s: %s" % (command or "", type(exc).__name__, " ".join(str(exc).split())[:300] or "no detail"),
              file=sys.stderr)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
