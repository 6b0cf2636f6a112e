"""The `dvn` command without a server: what its client commands import, its
shell completion, and the README's commands (tests/store/test_cli.py runs
every command against a real server)."""

import os
import re
import shlex
import socket
import subprocess
import sys
import threading

import pytest

from controller import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER_STACK = ("eventlet", "os_ken", "ovs", "ovsdbapp", "webob", "jsonschema", "jsonschema_rs", "greenlet")


def _client_commands():
    """Every client command path (network create, rule list, ...): the leaves of the parser but the server's
    and the controller host's own commands."""
    import argparse
    out = []

    def walk(ap, path):
        subs = [a for a in ap._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append(path)
        for action in subs:
            for name, child in action.choices.items():
                walk(child, path + [name])
    walk(cli.parser(full=True), [])
    return [p for p in out if p[0] not in cli.SERVER_COMMANDS + ("api-token", "ca-hash", "completion")]


def test_client_commands_import_nothing_of_the_server_stack():
    """Each client command's help, and a request (to a port where nothing listens), in one process."""
    commands = _client_commands()
    assert ["port", "update"] in commands and ["rule", "list"] in commands and len(commands) > 30
    script = ("import sys\nfrom controller import cli\n"
              "for path in %r:\n"
              "    assert cli.main(path + ['--help']) == 0, path\n"
              "assert cli.main(['--url', 'http://127.0.0.1:1', '--token', 't', 'network', 'list']) == 1\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))\n"
              "print(sorted(m for m in sys.modules if m.startswith(('controller.', 'ovsdb', 'flows'))))\n"
              % (commands, SERVER_STACK))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONWARNINGS=""))
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "dvn: cannot reach dvn at http://127.0.0.1:1: [Errno 111] Connection refused"
    assert out.stdout.strip().splitlines()[-2:] == ["[]", "['controller.cli']"]


def test_serve_and_join_get_their_own_parsers_only_when_they_run():
    usage = subprocess.run([sys.executable, "-m", "controller.cli", "join", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONWARNINGS=""))
    assert usage.returncode == 0 and "--encap-ip" in usage.stdout and usage.stderr == ""
    assert cli._command_word(["--url", "http://x", "--json", "serve", "--help"]) == "serve"
    assert cli._command_word(["--token", "serve", "network", "list"]) == "network"


@pytest.fixture(scope="module")
def completion(tmp_path_factory):
    path = tmp_path_factory.mktemp("completion") / "dvn.bash"
    out = subprocess.run([sys.executable, "-m", "controller.cli", "completion", "bash"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONWARNINGS=""))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    path.write_text(out.stdout)
    return path


def complete(script, line):
    """What bash completes for ``line`` (the word being completed is its last, maybe empty)."""
    words = line.split(" ")
    program = ("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_dvn\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n"
               % (shlex.quote(str(script)), " ".join(shlex.quote(w) for w in words), len(words) - 1))
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return sorted(w for w in out.stdout.splitlines() if w)


@pytest.mark.parametrize("line,expected", [
    ("dvn po", ["port"]),
    ("dvn se", ["security-group", "serve"]),
    ("dvn security-group u", ["update"]),
    ("dvn --json --url http://x network l", ["list"]),
    ("dvn port update vm1 --add-s", ["--add-security-group"]),
    ("dvn port create vm1 --network blue --no-port", ["--no-port-security"]),
    ("dvn rule add web ", ["egress", "ingress"]),
    ("dvn rule add web ingress --ethertype ", ["IPv4", "IPv6"]),
    ("dvn lb create www --protocol ", ["tcp", "udp"]),
    ("dvn network list --js", ["--json"]),
    ("dvn serve --ipsec-auth ", ["ca", "psk"]),
    ("dvn join --datapath-type ", ["netdev", "system"]),
    ("dvn completion ", ["bash"]),
])
def test_bash_completes_commands_options_and_choices(completion, line, expected):
    assert complete(completion, line) == expected


def readme_commands():
    """The `dvn ...` lines of the README's code blocks, as argv lists."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    lines = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip().rstrip("&").strip()
            if line.startswith("dvn "):
                lines.append(shlex.split(line)[1:])
    return lines


def test_the_readme_commands_are_commands_of_this_cli():
    commands = readme_commands()
    assert any(c[:2] == ["port", "create"] and "--security-group" in c for c in commands)
    for argv in commands:
        argv = [os.path.expandvars(a) for a in argv]
        try:
            cli.parser(only=cli._command_word(argv)).parse_args(argv)
        except SystemExit:
            pytest.fail("the README's `dvn %s` is not a command" % " ".join(argv))


@pytest.mark.parametrize("answer,result", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"4\r\n[{\"a\r\n7\r\n\": 1}]\n\r\n0\r\n\r\n", [{"a": 1}]),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\": 2}", {"a": 2}),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n{\"a\": 2}", "ends 82 bytes early"),
    (b"HTTP/1.1 422 Unprocessable\r\nContent-Length: 75\r\n\r\n"
     b"{\"title\": \"Unprocessable\", \"detail\": \"no such group\", \"field\": \"groups[0]\"}",
     "422 Unprocessable: no such group (field: groups[0])"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP answer"),
    (b"", "not an HTTP answer"),
])
def test_the_http_client_reads_what_a_server_may_answer(answer, result):
    """Lengths, chunks, a problem, and what is not an answer (one line each; no traceback)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve():
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(answer)
            conn.close()
        server = threading.Thread(target=serve)
        server.start()
        args = cli.parser(only="network").parse_args(
            ["network", "list", "--url", "http://127.0.0.1:%d" % listener.getsockname()[1], "--token", "t"])
        try:
            got = cli.request(args, "GET", "/v1/networks")
        except cli.CliError as exc:
            got = str(exc)
        server.join()
    if isinstance(result, str):
        assert isinstance(got, str) and result in got and "\n" not in got
    else:
        assert got == result


# Each request schema of the API, the command that sends it, and the option of each field whose
# option is not --FIELD (with - for _); None: the command's positional argument(s).
BODIES = {
    "NetworkCreate": ("network create", {"name": None, "cidrs": "--cidr", "tags": "--tag"}),
    "NetworkUpdate": ("network update", {"name": "--new-name", "tags": "--tag"}),
    "PortCreate": ("port create", {"name": None, "ips": "--ip", "tags": "--tag", "security_groups": "--security-group",
                                   "allowed_address_pairs": "--allowed-address"}),
    "PortUpdate": ("port update", {"name": "--new-name", "tags": "--tag", "security_groups": "--security-group",
                                   "allowed_address_pairs": "--allowed-address"}),
    "SecurityGroupCreate": ("security-group create", {"name": None}),
    "SecurityGroupUpdate": ("security-group update", {"name": "--new-name"}),
    "RuleCreate": ("rule add", {"direction": None, "port_range_min": "--ports", "port_range_max": "--ports",
                                "remote_group_id": "--remote-group", "action": "--deny"}),
    "MemberCreate": ("member add", {"address": None, "protocol_port": None, "admin_state_up": "--down"}),
    "MemberUpdate": ("member update", {"admin_state_up": "--down"}),
    "LoadBalancerCreate": ("lb create", {"name": None, "vip_address": "--vip", "protocol_port": "--port",
                                         "session_persistence": "--affinity", "health_monitor": "--monitor",
                                         "members": "--member"}),
    "LoadBalancerUpdate": ("lb update", {"name": "--new-name", "session_persistence": "--affinity",
                                         "health_monitor": "--monitor"}),
    "JoinTokenCreate": ("token create", {}),
    "AlertWebhookCreate": ("webhook set", {"url": None}),
    "Trace": ("trace", {"from_port": None, "dest": None, "protocol": None, "port": None}),
    "Import": ("import", {"tenant": "--tenant", "networks": None, "security_groups": None, "ports": None,
                          "load_balancers": None}),
}
MONITOR = {"type": "--monitor", "delay": "--monitor-delay", "timeout": "--monitor-timeout",
           "max_retries": "--monitor-rise", "max_retries_down": "--monitor-fall", "url_path": "--monitor-path",
           "expected_codes": "--monitor-codes"}
LISTS = {"/v1/networks": "network list", "/v1/ports": "port list", "/v1/security-groups": "security-group list",
         "/v1/load-balancers": "lb list", "/v1/events": "events", "/v1/audit": "audit"}


def _leaf(path):
    import argparse
    ap = cli.parser(full=True)
    for word in path.split():
        action = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
        ap = action.choices[word]
    options = {o for a in ap._actions for o in a.option_strings}
    positionals = [a for a in ap._actions if not a.option_strings]
    return options, positionals


@pytest.mark.parametrize("schema", sorted(BODIES))
def test_every_field_of_every_request_body_has_an_option(schema):
    from controller.api.schemas import MONITOR as MONITOR_SCHEMA, SCHEMAS
    command, renamed = BODIES[schema]
    options, positionals = _leaf(command)
    for field in SCHEMAS[schema]["properties"]:
        option = renamed.get(field, "--" + field.replace("_", "-"))
        if option is None:
            assert positionals, (command, field)
        else:
            assert option in options, "`dvn %s` has no option for %s (%s)" % (command, field, option)
    if "health_monitor" in SCHEMAS[schema]["properties"]:
        assert set(MONITOR_SCHEMA["properties"]) == set(MONITOR)
        assert set(MONITOR.values()) <= options


def test_every_query_parameter_of_a_list_has_an_option():
    from controller.openapi import OPERATIONS
    for (method, path), operation in OPERATIONS.items():
        query = operation[4]
        if method != "GET" or not query:
            continue
        options, _ = _leaf(LISTS[path])
        for param in query:
            if param != "name":          # (a name is how every command finds an object)
                assert "--" + param in options, "`dvn %s` has no --%s" % (LISTS[path], param)
