"""A real `dvn serve` process for lab tests, benchmarks and the demo, and a REST client."""

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status, self.body = status, body


class Client:
    """A small REST client over a real socket (HTTPS, verifying the server
    against ``ca_file``, when one is given; ``cert``: (certificate, key) of a
    TLS client)."""

    def __init__(self, port, token, host="127.0.0.1", ca_file=None, cert=None):
        self.host, self.port, self.token = host, port, token
        self.ca_file, self.cert = ca_file, cert

    def connection(self, timeout):
        if self.ca_file is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert is not None:
            ctx.load_cert_chain(*self.cert)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)

    def request(self, method, path, body=None, timeout=30):
        conn = self.connection(timeout)
        headers = {"Authorization": "Bearer %s" % self.token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        payload = json.loads(raw) if raw else None
        return resp.status, payload

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        status, payload = self.request(method, path, body)
        if status not in expect:
            raise ApiError(status, payload)
        return payload

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body):
        return self.call("POST", path, body)

    def delete(self, path):
        return self.call("DELETE", path)


class DvnServer:
    """`dvn serve` as a child process; kill it, start it again on the same state."""

    def __init__(self, state_dir, api_port, listen_ip, of_port=6653, ovsdb_port=6640, extra=(), api_host="127.0.0.1"):
        self.state_dir = state_dir
        self.extra = list(extra)  # more `dvn serve` options
        self.api_host, self.api_port = api_host, api_port
        self.tls = "--tls" in self.extra      # then the API is https, its certificate from dvn's CA
        self.listen_ip = listen_ip
        self.of_port, self.ovsdb_port = of_port, ovsdb_port
        self.log_path = os.path.join(state_dir, "dvn.log")
        self.proc = None
        os.makedirs(state_dir, exist_ok=True)

    def command(self):
        return [sys.executable, "-m", "controller.serve",
                "--state-dir", self.state_dir,
                "--api-listen", "%s:%d" % (self.api_host, self.api_port),
                "--openflow-listen", "%s:%d" % (self.listen_ip, self.of_port),
                "--ovsdb-listen", "%s:%d" % (self.listen_ip, self.ovsdb_port),
                "--log-file", self.log_path] + self.extra

    def start(self, timeout=30):
        cmd = self.command()
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.state_dir, "dvn.stderr"), "ab"))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("dvn serve exited with %s; see %s" % (self.proc.returncode, self.log_path))
                try:
                    status, _ = self.client().request("GET", "/v1/networks", timeout=2)
                    if status == 200:
                        return self
                except (OSError, http.client.HTTPException, ValueError):
                    pass
                time.sleep(0.1)
            raise RuntimeError("dvn serve did not answer in %d s" % timeout)
        except RuntimeError:
            # Leave nothing behind: the process and the store it may have started.
            self.kill()
            self.stop_store()
            raise

    @property
    def admin_token(self):
        with open(os.path.join(self.state_dir, "admin.token")) as f:
            return f.read().strip()

    @property
    def ca_file(self):
        return os.path.join(self.state_dir, "ca-cert.pem")

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.api_host, self.api_port)

    def client(self, token=None):
        return Client(self.api_port, token or self.admin_token, host=self.api_host,
                      ca_file=self.ca_file if self.tls else None)

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def stop(self):
        self.kill(signal.SIGTERM)

    def stop_store(self):
        from ovsdb import nbserver
        nbserver.stop(self.state_dir)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, count=1, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            time.sleep(0.1)
        raise AssertionError("%r did not appear %d time(s) in the dvn log in %d s" % (text, count, timeout))


def join(hv, controller_ip, encap_ip, of_port=6653, ovsdb_port=6640, extra=(), wait=0, check=True):
    """Run `dvn join` inside a lab hypervisor (``extra``: more options). By
    default it waits only for ovs-vswitchd to apply it, not for the node's
    sessions (``wait``: seconds it may), as the labs and benchmarks wait for
    what they need themselves."""
    return hv.run(sys.executable, "-m", "controller.cli", "join",
                  "--controller", controller_ip, "--encap-ip", encap_ip,
                  "--system-id", hv.name, "--datapath-type", "netdev",
                  "--openflow-port", str(of_port), "--ovsdb-port", str(ovsdb_port), "--wait", str(wait), *extra,
                  check=check)


def wait_until(predicate, timeout=10, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_in_sync(api, nodes, timeout=60, interval=0.05):
    """Wait for dvn's own "node in sync" signal: GET /v1/nodes/{id} says each
    node's switch is connected, synced and has nothing pending, i.e. every
    change dvn knows of is on that switch. Returns {node: switch object}.

    A change made through the REST API is known to dvn once the call has
    returned, so call this right after it. A change that reaches dvn another
    way (a node plugging an interface, a switch or dvn restarting) needs its
    own sign first (the port bound, the resync in the log: resyncs), or the
    old state may still read as in sync."""
    nodes = [nodes] if isinstance(nodes, str) else list(nodes)
    seen = {}

    def synced():
        for node in nodes:
            status, view = api.request("GET", "/v1/nodes/%s" % node)
            seen[node] = view.get("switch") if status == 200 else "HTTP %d" % status
            state = seen[node]
            if not (isinstance(state, dict) and state["connected"] and state["synced"] and not state["pending"]):
                return False
        return True
    try:
        wait_until(synced, timeout=timeout, interval=interval, what="%s in sync (GET /v1/nodes)" % ", ".join(nodes))
    except AssertionError as exc:
        raise AssertionError("%s; dvn last said %s" % (exc, seen)) from None
    return dict(seen)


def resyncs(dvn, node):
    """How many times dvn has brought ``node``'s switch in sync from a
    (re)connect: its log line "switch of node X in sync", which only a resync
    writes. Take it before a restart, wait for one more, then wait_in_sync."""
    return dvn.log().count("switch of node %s in sync" % node)


def wait_resynced(dvn, api, nodes, before, timeout=60):
    """After a restart (of dvn or of the nodes' switches): every node of
    ``nodes`` resynced since ``before`` ({node: resyncs(dvn, node)}), then in sync."""
    nodes = [nodes] if isinstance(nodes, str) else list(nodes)
    wait_until(lambda: all(resyncs(dvn, n) > before[n] for n in nodes), timeout=timeout, interval=0.1,
               what="a resync of %s in the dvn log" % ", ".join(nodes))
    return wait_in_sync(api, nodes, timeout=timeout)


@contextlib.contextmanager
def dvn_lab(tag, octet, api_port, state=None, extra=(), api_on_underlay=False):
    """A lab whose underlay is 192.168.<octet>.0/24, with dvn running on this
    machine at 192.168.<octet>.1, reached by the hypervisors over the underlay
    (its REST API too, with ``api_on_underlay``; else on the loopback).
    Yields (lab, dvn); tears everything down after, the store included."""
    from tests.netlab import Lab
    made = state is None   # (a state directory of its own goes with it; the caller's stays)
    state = state or tempfile.mkdtemp(prefix="dvn-%s-" % tag)
    ctl = "192.168.%d.1" % octet
    Lab.cleanup_stale(tag)
    try:
        with Lab(tag) as lab:
            lab.underlay("192.168.%d.0/24" % octet)
            lab.controller_uplink(ctl + "/24")
            dvn = DvnServer(state, api_port=api_port, listen_ip=ctl, extra=extra,
                            api_host=ctl if api_on_underlay else "127.0.0.1").start()
            try:
                yield lab, dvn
            finally:
                dvn.stop()
                dvn.stop_store()
    finally:
        if made:
            shutil.rmtree(state, ignore_errors=True)


def token_join(dvn, hv, ip, token, ca_hash=None, wait=30, check=True, extra=()):
    """`dvn join` with a join token (None: without one) and the pin of dvn's
    CA (default: the right one), its key and certificate in ``hv``'s pki/
    (``extra``: more options)."""
    ca_hash = ca_hash or dvn.client().get("/v1/ca")["ca_hash"]
    extra = ["--api-url", dvn.url, "--pki-dir", os.path.join(hv.dir, "pki"), "--ca-hash", ca_hash] + list(extra)
    if token is not None:
        extra += ["--token", token]
    return join(hv, dvn.listen_ip, ip, extra=extra, wait=wait, check=check)


def add_joined_hv(lab, dvn, name, ip, enable_dummy=False):
    """A hypervisor at ``ip`` on the underlay that has run `dvn join`: with a
    join token of its own when dvn runs with ``--tls`` (its API then on the
    underlay), so that every channel is TLS."""
    hv = lab.add_hv(name, ip + "/24", enable_dummy=enable_dummy)
    lab.seed_neighbors()
    if dvn.tls:
        token = dvn.client().post("/v1/join-tokens", {"node": name, "ttl": 600})["token"]
        token_join(dvn, hv, ip, token, wait=60)
    else:
        join(hv, dvn.listen_ip, ip)
    return hv
