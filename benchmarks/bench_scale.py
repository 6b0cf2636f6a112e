"""Scale (issue 6): P ports on one node, the whole workload of benchmarks/workload.py.

One joined hypervisor (userspace OVS, its vswitchd started with
--enable-dummy). Before the clock starts, the lab plugs P interfaces into its
br-int without an iface-id: P - 3 ``type=dummy`` ones (``--port-type patch``:
patch ports without a peer instead) and three real VMs (veths into
namespaces). Every dummy interface is a port of the userspace datapath, which
vswitchd's main loop polls: with 10,000 of them vswitchd takes in about 1,800
flow_mods/s over one connection (it reads 50 messages from each connection
per pass: dvn spreads a large change over the switch's lanes, four
connections in all, for about 7,000-10,000/s) and a round trip takes
150-200 ms (patch ports: 110,000/s and 30 ms), and adding them costs
vswitchd time in proportion to the ports it has. Binding an interface to a port is setting its ``external_ids:iface-id``,
which is what dvn reacts to, and that happens inside the measured window.

1. Full convergence: from the first API call of the bulk apply until every
   flow is on the switch. The bulk apply is one POST /v1/import of the whole
   workload, then every interface bound in one OVSDB transaction
   (--bind-batch N: N per transaction); with
   --per-object it is one call per object (security groups, their rules,
   networks, ports with their groups, load balancers with their members;
   --clients calls in flight at once, each client with a keep-alive
   connection), ports bound as they are created. The switch is
   done when dvn says so (GET /v1/nodes/hv1: synced, nothing pending) and
   br-int has exactly the flows dvn put there (dump-aggregate), both for
   --quiet seconds; the time is that of dvn's last commit (its log line
   comes after the switch's commit reply). At the end, dvn is
   restarted on the same store: its resync reads the switch back and must
   find nothing to change and say it has exactly the flows the switch has.
2. Incremental operations, 5 of each, one at a time: a rule (ingress
   tcp/900x from 198.51.100.0/24) added to a random group, until br-int
   reports a flow with tp_dst=900x added; a member added to a random VIP,
   until br-int reports its DNAT flow added (its bucket comes in the same
   bundle; the VIP's select group is then checked to have exactly the
   buckets dvn must give it). The switch's reports come from a flow monitor
   (`ovs-ofctl monitor`) started before the API call; each operation is
   shown from the API call to that report and to dvn's commit (its log).
3. br-int's flows (by cookie category) and groups; peak RSS (VmHWM) and CPU
   seconds (utime + stime) of dvn, of the node's vswitchd, and of the two
   ovsdb-servers.
4. Sanity: vm_a -> vm_b ping passes, vm_c -> vm_b and vm_a -> vm_c drop; TCP
   through the sanity VIP (member vm_b:80) answers vm_c and not vm_a (see
   benchmarks/workload.py for why).

5. With --tls both, each P runs twice: plain TCP, then dvn with --tls and the
   node joined with a token, so that the REST API, OpenFlow (every lane) and
   the node's OVSDB session are TLS; the ratios of convergence and of dvn's
   CPU in the bulk apply come last (issue 12: at most 1.2x).

Every wait is bounded; the lab (namespaces, OVS, dvn, its store) is torn
down on exit.

Run as root: .venv/bin/python -m benchmarks.bench_scale [--ports 1000 3000] [--clients 4] [--port-type patch]
The big one: .venv/bin/python -m benchmarks.bench_scale --ports 10000 [--tls both]
"""

import argparse
import datetime
import http.client
import json
import math
import os
import queue
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from benchmarks.workload import OPS, Workload
from flows import lb
from flows.flow import cookie_category
from flows.pipeline import table_id
from tests import scale
from tests.dvnproc import ROOT, add_joined_hv, dvn_lab

TAG, OCTET, API_PORT = "bscale", 76, 18680   # tests use 61-63, demo 70, other benchmarks 72-75
HV_IP = "192.168.%d.11" % OCTET
BATCH = scale.BATCH
VIP_TABLE = table_id("vip_lb")
NAT_TABLE = table_id("lb_nat")


class FlowWatch:
    """`ovs-ofctl monitor` on br-int: when the switch itself says it added a
    flow (polling dump-flows costs 0.3-0.6 s a call at 10,000 ports, more than
    what it measures)."""

    def __init__(self, hv, spec):
        self.proc = subprocess.Popen(["ip", "netns", "exec", hv.ns, "stdbuf", "-oL", "ovs-ofctl", "-O", "OpenFlow15", "monitor", "br-int",
                                      "watch:!initial," + spec], env=hv.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)   # (its stderr on /dev/null: no events)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=30)     # the monitor's reply: it is watching
        if first is None or "FLOW_MONITOR reply" not in first:
            raise RuntimeError("ovs-ofctl monitor did not start: %r" % first)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def added(self, needle, deadline):
        """The time (monotonic) a flow added with ``needle`` in it was reported, or None by ``deadline``."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            if "event=ADDED" in line and needle in line:
                return time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()

BUNDLE = re.compile(r"^(\S+ \S+) INFO controller\.\w+: switch of node \S+: (\d+) flow changes in "
                    r"(?:one bundle|one flow_mod|bundles over (\d+) connections) "
                    r"\((\d+) units, compile ([\d.]+) s, bundle ([\d.]+) s\)")
SYNC = re.compile(r"^(\S+ \S+) INFO controller\.\w+: switch of node \S+ in sync: (\d+) flows, (\d+) changed "
                  r"\(compile ([\d.]+) s, (?:read\+diff|confirmed by its mark) ([\d.]+) s, bundle ([\d.]+) s\)"
                  r"(?: in (?:one bundle|nothing|bundles over (\d+) connections))?")
CONNECT = re.compile(r"^(\S+ \S+) INFO ovsdb\.node: node OVSDB connection from")
PROBLEM = re.compile(r" (ERROR|CRITICAL|WARNING) |Traceback")


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def short(text, limit=400):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


# ---- processes ---------------------------------------------------------------------
HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def mem_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


# ---- the REST API, with keep-alive connections -------------------------------------
class ApiError(Exception):
    pass


class Api:
    """One keep-alive HTTP connection per thread."""

    def __init__(self, dvn):
        self.host, self.port, self.token = dvn.api_host, dvn.api_port, dvn.admin_token
        self.tls = ssl.create_default_context(cafile=dvn.ca_file) if dvn.tls else None
        self.local = threading.local()

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            if self.tls:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=300, context=self.tls)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            self.local.conn = conn
        return conn

    def _drop(self):
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": "Bearer %s" % self.token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection before reading the request.
                self._drop()
                if attempt:
                    raise
                continue
            if resp.will_close:
                self._drop()
            break
        payload = json.loads(raw) if raw else None
        if resp.status not in expect:
            raise ApiError("%s %s: HTTP %d: %s" % (method, path, resp.status, short(payload)))
        return payload

    def post(self, path, body):
        return self.call("POST", path, body)

    def get(self, path):
        return self.call("GET", path)


class Deadline(Exception):
    """The time limit passed during a phase: ``done`` calls of it had been made."""

    def __init__(self, done, latencies):
        super().__init__("the time limit passed after %d calls of the phase" % done)
        self.done, self.latencies = done, latencies


def pool_calls(api, calls, workers, done=None, deadline=None, progress=None):
    """Run ``calls`` [(path, body)] as POSTs, ``workers`` at once; (results in order, latencies in ms).
    Raises Deadline once ``deadline`` (monotonic) has passed."""
    results, latencies = [None] * len(calls), [None] * len(calls)
    failed, late = [], []

    def one(i):
        if failed or late:
            return
        if deadline is not None and time.monotonic() > deadline:
            late.append(i)
            return
        path, body = calls[i]
        t = time.monotonic()
        try:
            results[i] = api.post(path, body)
        except Exception:
            failed.append(i)
            raise
        latencies[i] = (time.monotonic() - t) * 1000
        if progress is not None:
            progress[0] += 1
        if done is not None:
            done(i, results[i])

    with ThreadPoolExecutor(max_workers=workers) as ex:
        for _ in ex.map(one, range(len(calls))):
            pass
    made = [x for x in latencies if x is not None]
    if late:
        raise Deadline(len(made), made)
    return results, latencies


# ---- dvn's log ------------------------------------------------------------------------
class LogWatch:
    """Reads dvn's log as it grows."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, []

    def skip(self):
        self.poll()
        return len(self.lines)

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        new = data[:cut].decode(errors="replace").splitlines()
        self.lines += new
        return new

    def syncs(self, since=0):
        """[(kind, wall time, fields)] of the bundle and resync lines from line ``since`` on."""
        out = []
        for line in self.lines[since:]:
            m = BUNDLE.match(line)
            if m:
                out.append(("bundle", log_time(m.group(1)), {"changes": int(m.group(2)),
                                                              "connections": int(m.group(3) or 1),
                                                              "units": int(m.group(4)),
                                                              "compile": float(m.group(5)),
                                                              "bundle": float(m.group(6))}))
                continue
            m = SYNC.match(line)
            if m:
                out.append(("sync", log_time(m.group(1)), {"flows": int(m.group(2)), "changes": int(m.group(3)),
                                                            "connections": int(m.group(7) or 1),
                                                            "compile": float(m.group(4)),
                                                            "read": float(m.group(5)),
                                                            "bundle": float(m.group(6))}))
        return out

    def problems(self, since=0):
        return [line for line in self.lines[since:] if PROBLEM.search(line) and "dvn.http" not in line]


# ---- what br-int holds -----------------------------------------------------------------
def group_count(hv):
    return len(re.findall(r"^\s*group_id=", hv.ofctl("dump-groups", "br-int"), re.M))


def flows_by_category(hv):
    counts = {}
    for m in re.finditer(r"cookie=(0x[0-9a-f]+)", hv.ofctl("--no-stats", "dump-flows", "br-int")):
        name = cookie_category(int(m.group(1), 16))
        counts[name] = counts.get(name, 0) + 1
    return counts


def want_buckets(members):
    counts = lb.bucket_counts([SimpleNamespace(id=m["id"], weight=m["weight"]) for m in members])
    return set(lb.bucket_ids(counts).values())


def buckets_of(hv, gid):
    return {int(b) for b in re.findall(r"bucket_id:(\d+)", hv.ofctl("dump-groups", "br-int", str(gid)))}


# ---- one run ------------------------------------------------------------------------------
class Run:
    def __init__(self, args, p, tls=False):
        self.args, self.p, self.tls = args, p, tls
        self.w = Workload(p, args.seed)
        self.fig = {"ports": p, "tls": tls, "counts": self.w.counts()}

    def pids(self):
        return {"dvn": self.dvn.proc.pid, "vswitchd": self.hv._pid("ovs-vswitchd"),
                "node ovsdb": self.hv._pid("ovsdb-server"),
                "nb ovsdb": read_pid(os.path.join(self.dvn.state_dir, "nb.pid"))}

    def cpu(self):
        return {k: cpu_s(pid) for k, pid in self.pids().items() if pid}

    def say(self, text):
        print("  [%s %6.1f s] %s" % (run_name(self.fig), time.monotonic() - self.started, text), flush=True)

    # -- setup (not timed) --
    def setup(self, lab, dvn):
        self.lab, self.dvn = lab, dvn
        self.log = LogWatch(dvn.log_path)
        self.api = Api(dvn)
        self.hv = hv = add_joined_hv(lab, dvn, "hv1", HV_IP, enable_dummy=True)
        self.wait_log_sync(0, 60, "the switch's first resync")
        t = time.monotonic()
        self.iface_uuid, self.vms = scale.plug(lab, hv, self.w, self.args.port_type, self.args.plug_timeout)
        self.fig["preplug_s"] = time.monotonic() - t
        self.say("%d interfaces on br-int (%d %s, %d VMs) in %.1f s, no iface-id yet" % (
            self.p, self.p - len(scale.VM_NAMES), self.args.port_type, len(scale.VM_NAMES), self.fig["preplug_s"]))
        self.quiet(60, "dvn idle before the bulk apply")

    def wait_log_sync(self, since, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.poll()
            found = [s for s in self.log.syncs(since) if s[0] == "sync"]
            if found:
                return found[-1]
            time.sleep(0.2)
        raise RuntimeError("%s: no 'in sync' line in dvn's log after %d s" % (what, timeout))

    def quiet(self, timeout, what, window=3.0):
        """Wait until dvn's log, dvn's CPU and vswitchd's CPU stay still for ``window`` s."""
        deadline = time.monotonic() + timeout
        pids = self.pids()
        self.log.poll()
        last = (0, cpu_s(pids["dvn"]), cpu_s(pids["vswitchd"]), time.monotonic())
        n0 = len(self.log.lines)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            self.log.poll()
            now = time.monotonic()
            d, v = cpu_s(pids["dvn"]), cpu_s(pids["vswitchd"])
            n = len(self.log.syncs(n0))
            if n or d - last[1] > 0.15 * (now - last[3]) + 0.05 or v - last[2] > 0.4 * (now - last[3]) + 0.05:
                last, n0 = (0, d, v, now), len(self.log.lines)
            elif now - last[3] >= window:
                return
        raise RuntimeError("%s: not quiet after %d s" % (what, timeout))

    # -- 1. the bulk apply --
    def bulk(self):
        w, api, hv, args = self.w, self.api, self.hv, self.args
        mark = self.log.skip()
        cpu0 = self.cpu()
        self.fig["log_mark"] = mark
        phases = {}
        deadline = time.monotonic() + args.timeout
        bound = queue.Queue()
        binder = {"batches": [], "error": None, "done": 0}

        def bind(chunk):
            binder["batches"] += scale.bind(hv, w, dict(chunk), self.iface_uuid, [i for i, _ in chunk])
            binder["done"] += len(chunk)

        def bind_loop():
            """Bind interfaces to the ports created, BATCH per transaction (the rest at the end)."""
            pending = []
            try:
                while True:
                    item = bound.get()
                    if item is not None:
                        pending.append(item)
                    while len(pending) >= BATCH or (item is None and pending):
                        bind(pending[:BATCH])
                        pending = pending[BATCH:]
                    if item is None:
                        return
            except Exception as exc:
                binder["error"] = exc

        self.wall0 = time.time()
        self.t0 = t0 = time.monotonic()
        thread = threading.Thread(target=bind_loop, daemon=True)
        thread.start()
        posted = [0]
        stop_watch = threading.Event()

        def watch():
            pids = self.pids()
            while not stop_watch.wait(30):
                try:
                    flows = hv.flow_count()
                except RuntimeError:
                    flows = -1
                self.say("... %s: %d calls of it made, %d interfaces bound, %d flows on br-int, dvn RSS %d MiB, "
                         "CPU so far dvn %.0f s vswitchd %.0f s" % (
                             current[0], posted[0], binder["done"], flows, mem_kib(pids["dvn"], "VmRSS") // 1024,
                             cpu_s(pids["dvn"]) - cpu0["dvn"], cpu_s(pids["vswitchd"]) - cpu0["vswitchd"]))

        current = ["groups"]
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def phase(name, calls, **kw):
            current[0], posted[0] = name, 0
            t = time.monotonic()
            try:
                results, lat = pool_calls(api, calls, args.clients, deadline=deadline, progress=posted, **kw)
            except Deadline as late:
                phases[name] = (late.done, time.monotonic() - t, late.latencies, len(calls))
                raise
            phases[name] = (len(results), time.monotonic() - t, lat, len(calls))
            self.say("%d %s posted in %.1f s" % (len(results), name, phases[name][1]))
            return results

        gids = nids = ports = lbs = ()
        try:
            gids = [g["id"] for g in phase("groups", [("/v1/security-groups", w.group_body(g))
                                                      for g in range(w.n_groups)])]
            calls = []
            for r in range(len(w.rules)):
                gid, body = w.rule_body(r, gids)
                calls.append(("/v1/security-groups/%s/rules" % gid, body))
            phase("rules", calls)
            nids = [n["id"] for n in phase("networks", [("/v1/networks", w.network_body(k))
                                                         for k in range(w.n_networks)])]
            ports = phase("ports", [("/v1/ports", w.port_body(i, nids, gids)) for i in range(self.p)],
                          done=lambda i, port: bound.put((i, port["id"])))
            bound.put(None)
            calls = [("/v1/load-balancers", w.lb_body(j, nids)) for j in range(w.n_vips)]
            calls.append(("/v1/load-balancers", w.sanity_lb_body(nids)))
            lbs = phase("load balancers", calls)
        except Deadline:
            self.fig["timed_out"] = True
            self.say("TIME LIMIT (%d s) reached while posting %s" % (args.timeout, current[0]))
        finally:
            stop_watch.set()
            bound.put(None)
            thread.join(max(30.0, deadline - time.monotonic()))
        if binder["error"] is not None:
            raise binder["error"]
        if thread.is_alive():
            raise RuntimeError("binding the interfaces ran past the deadline")
        self.api_done = time.monotonic() - t0
        self.fig["phases"] = phases
        self.fig["api_s"] = self.api_done
        self.fig["bind_batches"] = binder["batches"]
        self.fig["bound"] = binder["done"]
        self.ids = SimpleNamespace(groups=gids, networks=nids, ports=[p["id"] for p in ports],
                                   lbs=[b["id"] for b in lbs])
        self.converge(deadline, mark, cpu0)

    def bulk_import(self):
        """The bulk apply as one POST /v1/import; then every interface bound (--bind-batch per transaction)."""
        w, api, hv, args = self.w, self.api, self.hv, self.args
        mark = self.log.skip()
        cpu0 = self.cpu()
        doc = w.document()
        deadline = time.monotonic() + args.timeout
        self.wall0 = time.time()
        self.t0 = t0 = time.monotonic()
        made = api.post("/v1/import", doc)
        import_s = time.monotonic() - t0
        self.say("import of %d objects answered in %.1f s" % (sum(len(v) for k, v in doc.items() if k != "tenant"),
                                                             import_s))
        batches = scale.bind(hv, w, {i: made["ports"][w.port_name(i)] for i in range(self.p)}, self.iface_uuid,
                             batch=args.bind_batch or self.p)
        self.api_done = time.monotonic() - t0
        self.fig["phases"] = {"import": (1, import_s, [import_s * 1000], 1)}
        self.fig["api_s"] = self.api_done
        self.fig["bind_batches"] = batches
        self.fig["bound"] = self.p
        self.ids = SimpleNamespace(groups=[made["security_groups"][g["name"]] for g in doc["security_groups"]],
                                   networks=[made["networks"][n["name"]] for n in doc["networks"]],
                                   ports=[made["ports"][p["name"]] for p in doc["ports"]],
                                   lbs=[made["load_balancers"][b["name"]] for b in doc["load_balancers"][:w.n_vips]])
        self.converge(deadline, mark, cpu0)

    def converge(self, deadline, mark, cpu0):
        """Until the switch is quiet; then the figures of the bulk apply."""
        hv, args = self.hv, self.args
        pids = self.pids()
        window = args.quiet
        samples = []   # (t, flows, dvn cpu, vswitchd cpu, sync lines so far)
        last_change, last_flows, next_report = self.t0, None, time.monotonic() + 15
        done_since = None
        while True:
            now = time.monotonic()
            self.log.poll()
            try:
                flows = hv.flow_count()
            except RuntimeError:
                flows = last_flows
            syncs = self.log.syncs(mark)
            samples.append((now, flows, cpu_s(pids["dvn"]), cpu_s(pids["vswitchd"]), len(syncs)))
            if flows != last_flows:
                last_change, last_flows = now, flows
            # Done when dvn says the switch holds all it wants (GET /v1/nodes:
            # synced, nothing pending), the switch has that many flows, and
            # both stayed so for --quiet seconds.
            state = self.api.get("/v1/nodes/hv1").get("switch") or {}
            done = (state.get("synced") and not state.get("pending") and state.get("flows") == flows
                    and bool(syncs))
            if not done:
                done_since = None
            elif done_since is None:
                done_since = now
            elif now - done_since >= window:
                break
            if now > next_report:
                next_report = now + 15
                done = sum(s[2].get("changes", 0) for s in syncs)
                last = syncs[-1] if syncs else None
                self.say("waiting: %d flows on br-int, %d bundles so far (%d changes), dvn RSS %d MiB, "
                         "CPU since start dvn %.0f s vswitchd %.0f s%s" % (
                             flows or 0, len(syncs), done, mem_kib(pids["dvn"], "VmRSS") // 1024,
                             samples[-1][2] - cpu0["dvn"], samples[-1][3] - cpu0["vswitchd"],
                             (", last: %s %.1f s after start" % (last[0], last[1] - self.wall0)) if last else ""))
            if now > deadline:
                self.fig["timed_out"] = True
                self.say("NOT CONVERGED after %d s: %d flows on br-int" % (args.timeout, flows or 0))
                break
            time.sleep(0.5)
        syncs = self.log.syncs(mark)
        self.fig["converged_log_s"] = (syncs[-1][1] - self.wall0) if syncs else float("nan")
        self.fig["converged_poll_s"] = last_change - self.t0
        self.fig["wall0"] = self.wall0
        self.fig["bundles"] = syncs
        self.fig["reconnects"] = sum(1 for line in self.log.lines[mark:] if CONNECT.match(line))
        self.fig["connect_times"] = [log_time(CONNECT.match(line).group(1)) - self.wall0
                                     for line in self.log.lines[mark:] if CONNECT.match(line)]
        self.fig["cpu_bulk"] = {k: v - cpu0.get(k, 0) for k, v in self.cpu().items()}
        self.fig["flows"] = hv.flow_count()
        self.fig["groups"] = group_count(hv)
        self.fig["rss_bulk"] = {k: mem_kib(pid, "VmHWM") for k, pid in self.pids().items() if pid}
        self.say("bulk apply done: API calls %.1f s, dvn's last commit %.1f s, flows %d, groups %d" % (
            self.fig["api_s"], self.fig["converged_log_s"], self.fig["flows"], self.fig["groups"]))

    # -- 4. sanity --
    def sanity(self):
        checks = scale.sanity(self.lab, self.vms, self.w)
        self.fig["sanity"] = checks
        self.say("sanity: %s" % ", ".join("%s: %s" % (k, "ok" if v else "FAILED") for k, v in checks.items()))

    # -- 2. incremental operations --
    def wait_commit(self, mark, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.poll()
            found = self.log.syncs(mark)
            if found:
                return found[0]
            time.sleep(0.02)
        return None

    def incremental(self):
        w, api, hv = self.w, self.api, self.hv
        rule_ms, rule_dvn, member_ms, member_dvn, polls = [], [], [], [], []
        for k in range(OPS):
            self.quiet(120, "dvn idle before an incremental rule", window=1.0)
            gid, body, tport = w.rule_op_body(k, self.ids.groups)
            mark = self.log.skip()
            with FlowWatch(hv, "tcp,tp_dst=%d" % tport) as watch:
                wall, t0 = time.time(), time.monotonic()
                api.post("/v1/security-groups/%s/rules" % gid, body)
                api_ms = (time.monotonic() - t0) * 1000
                seen = watch.added("tp_dst=%d" % tport, t0 + 60)
            if seen is None:
                raise RuntimeError("rule tcp/%d not on br-int after 60 s" % tport)
            rule_ms.append((seen - t0) * 1000)
            commit = self.wait_commit(mark)
            rule_dvn.append(((commit[1] - wall) * 1000, commit[2], api_ms) if commit else None)
        for k in range(OPS):
            self.quiet(120, "dvn idle before an incremental member", window=1.0)
            j, body = w.member_op_body(k)
            balancer = api.get("/v1/load-balancers/%s" % self.ids.lbs[j])
            out = hv.ofctl("dump-flows", "br-int", "table=%d,tcp,nw_dst=%s,tp_dst=80" % (
                VIP_TABLE, balancer["vip_address"]))
            gid = int(re.search(r"actions=group:(\d+)", out).group(1))
            mark = self.log.skip()
            # The member's flow in lb_nat (its DNAT) comes with its bucket, in one bundle.
            nat = "nat(dst=%s:%d)" % (body["address"], body["protocol_port"])
            with FlowWatch(hv, "table=%d" % NAT_TABLE) as watch:
                wall, t0 = time.time(), time.monotonic()
                new = api.post("/v1/load-balancers/%s/members" % balancer["id"], body)
                api_ms = (time.monotonic() - t0) * 1000
                seen = watch.added(nat, t0 + 60)
            if seen is None:
                raise RuntimeError("member %s not on br-int after 60 s" % nat)
            want = want_buckets(balancer["members"] + [new])
            while buckets_of(hv, gid) != want:
                if time.monotonic() - t0 > 60:
                    raise RuntimeError("member of group %d not on br-int after 60 s" % gid)
            member_ms.append((seen - t0) * 1000)
            balancer["members"].append(new)
            commit = self.wait_commit(mark)
            member_dvn.append(((commit[1] - wall) * 1000, commit[2], api_ms) if commit else None)
        for _ in range(3):
            t = time.monotonic()
            hv.ofctl("dump-flows", "br-int", "tcp,tp_dst=9001")
            polls.append((time.monotonic() - t) * 1000)
        self.fig["inc"] = {"rule": (rule_ms, rule_dvn), "member": (member_ms, member_dvn),
                           "poll_ms": statistics.median(polls)}
        self.say("incremental: rule median %.0f ms, member median %.0f ms (API call to the switch's flow monitor)" % (
            statistics.median(rule_ms), statistics.median(member_ms)))

    # -- the closing check: a restarted dvn finds nothing to change --
    def memory_sites(self):
        """What dvn (started with DVN_TRACEMALLOC) still holds, by the line that allocated it."""
        path = os.environ["DVN_TRACEMALLOC"]
        if os.path.exists(path):
            os.unlink(path)
        os.kill(self.dvn.proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 120
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError("dvn wrote no tracemalloc report")
            time.sleep(0.2)
        with open(path) as f:
            self.fig["memory"] = json.load(f)

    def restart_check(self):
        self.quiet(120, "dvn idle before the restart check")
        flows, groups = self.hv.flow_count(), group_count(self.hv)
        self.fig["flows_final"], self.fig["groups_final"] = flows, groups
        self.fig["by_category"] = flows_by_category(self.hv)
        self.fig["rss_final"] = {k: mem_kib(pid, "VmHWM") for k, pid in self.pids().items() if pid}
        self.fig["cpu_total"] = self.cpu()
        mark = self.log.skip()
        self.dvn.stop()
        t0 = time.monotonic()
        self.dvn.start(timeout=self.args.timeout)
        sync = self.wait_log_sync(mark, self.args.timeout, "the restarted dvn's resync")
        self.fig["restart"] = {"s": time.monotonic() - t0, "sync": sync[2], "switch_flows": flows,
                               "ok": sync[2]["flows"] == flows and sync[2]["changes"] == 0}
        self.say("restart check: dvn wants %d flows, the switch has %d, %d changes sent (resync %.1f s)" % (
            sync[2]["flows"], flows, sync[2]["changes"], self.fig["restart"]["s"]))

    def run(self):
        self.started = time.monotonic()
        with dvn_lab(TAG, OCTET, API_PORT, extra=["--tls"] if self.tls else [], api_on_underlay=self.tls) as (lab, dvn):
            finished = False
            try:
                self.setup(lab, dvn)
                self.bulk() if self.args.per_object else self.bulk_import()
                if not self.fig.get("timed_out"):
                    self.sanity()
                    self.incremental()
                    if self.args.tracemalloc:
                        self.memory_sites()
                    if not self.args.no_restart_check:
                        self.restart_check()
                    finished = True
            except BaseException:
                print("bench_scale %s failed; dvn's log: %s" % (run_name(self.fig), dvn.log_path), file=sys.stderr)
                self.log.poll()
                for line in self.log.problems()[:10]:
                    print("  " + short(line, 300), file=sys.stderr)
                raise
            finally:
                self.log.poll()
                self.fig["problems"] = self.log.problems()
                try:
                    with open(os.path.join(self.hv.dir, "ovsdb-server.log")) as f:
                        self.fig["probe_timeouts"] = f.read().count("no response to inactivity probe")
                except (OSError, AttributeError):
                    pass
                self.fig["elapsed_s"] = time.monotonic() - self.started
                if self.args.keep_log:
                    dst = os.path.join(self.args.keep_log, "dvn-scale-%d%s.log" % (self.p, "-tls" if self.tls else ""))
                    os.makedirs(self.args.keep_log, exist_ok=True)
                    with open(dvn.log_path, "rb") as src, open(dst, "wb") as out:
                        out.write(src.read())
                if not finished:
                    # A dvn still busy may take longer than dvn_lab's 15 s to stop on
                    # SIGTERM (seen at P=3000 with patch ports): kill it, the lab goes anyway.
                    dvn.kill()
        return self.fig


# ---- the report ---------------------------------------------------------------------------
def run_name(f):
    return "P=%d%s" % (f["ports"], " tls" if f["tls"] else "")


def tls_ratios(figs):
    """TLS on every channel against plain TCP, for each P run both ways."""
    plain = {f["ports"]: f for f in figs if not f["tls"]}
    for f in figs:
        base = plain.get(f["ports"])
        if not f["tls"] or base is None or f.get("timed_out") or base.get("timed_out"):
            continue
        print("TLS / plain at P=%d: full convergence %.2fx (%.1f / %.1f s), dvn CPU in the bulk apply %.2fx "
              "(%.1f / %.1f s)" % (f["ports"], f["converged_log_s"] / base["converged_log_s"], f["converged_log_s"],
                                   base["converged_log_s"], f["cpu_bulk"]["dvn"] / base["cpu_bulk"]["dvn"],
                                   f["cpu_bulk"]["dvn"], base["cpu_bulk"]["dvn"]))


def med(values):
    return statistics.median(values) if values else float("nan")


def report(figs, args):
    print("\n==== scale: P ports on one node (issue 6), %d API clients, %s interfaces ====" % (
        args.clients, args.port_type))
    for f in figs:
        c = f["counts"]
        print("\n%s: %d networks, %d groups, %d rules, %d ports (%d group memberships), %d VIPs + 1 (sanity), "
              "%d members" % (run_name(f), c["networks"], c["groups"], c["rules"], c["ports"], c["memberships"],
                              c["vips"], c["members"] + 1))
        print("  interfaces pre-plugged (untimed): %.1f s" % f["preplug_s"])
        for name, (n, secs, lat, wanted) in f.get("phases", {}).items():
            lat = lat or [float("nan")]
            print("  POST %-15s %6d%s in %6.1f s (median %.1f ms, p99 %.1f ms, worst %.0f ms)" % (
                name, n, "" if n == wanted else " of %d" % wanted, secs, med(lat),
                sorted(lat)[int(0.99 * (len(lat) - 1))], max(lat)))
        if f.get("bind_batches"):
            b = f["bind_batches"]
            print("  interfaces bound: %d in %d transactions of <= %d, median %.0f ms" % (
                f["bound"], len(b), max(x[0] for x in b), med([x[1] for x in b])))
        print("  node OVSDB session reconnects in the bulk apply: %d (the node's ovsdb-server: %d inactivity "
              "probe timeouts in all)" % (f.get("reconnects", 0), f.get("probe_timeouts", 0)))
        syncs = f.get("bundles", [])
        if syncs:
            comp = sum(s[2]["compile"] for s in syncs)
            bund = sum(s[2]["bundle"] for s in syncs)
            chg = sum(s[2]["changes"] for s in syncs)
            big = max(syncs, key=lambda s: s[2]["compile"] + s[2]["bundle"])
            print("  dvn's bundles in the bulk apply: %d, %d flow/group changes; compile %.1f s, bundles %.1f s in "
                  "all; the largest: %d changes (compile %.2f s, bundle %.2f s, over %d connection(s))" % (
                      len(syncs), chg, comp, bund, big[2]["changes"], big[2]["compile"], big[2]["bundle"],
                      big[2]["connections"]))
        if syncs:
            timeline(f)
        if f.get("timed_out"):
            print("  NOT CONVERGED within %d s" % args.timeout)
        if f.get("sanity"):
            print("  sanity: " + "; ".join("%s %s" % (k, "ok" if v else "FAILED") for k, v in f["sanity"].items()))
        if f.get("by_category"):
            print("  flows by owner: " + ", ".join("%s %d" % kv for kv in sorted(f["by_category"].items(),
                                                                                key=lambda kv: -kv[1])))
        if f.get("restart"):
            r = f["restart"]
            print("  restart check: %s (dvn wants %d flows, switch has %d, %d changes; resync %.1f s: compile %.1f s, "
                  "read+diff %.1f s)" % ("ok" if r["ok"] else "MISMATCH", r["sync"]["flows"], r["switch_flows"],
                                         r["sync"]["changes"], r["s"], r["sync"]["compile"], r["sync"]["read"]))
        if f.get("memory"):
            mem = f["memory"]
            print("  Python memory dvn still holds (tracemalloc, since its start): %.1f MiB, %.1f KiB/port; "
                  "the largest sites:" % (mem["traced"] / 2**20, mem["traced"] / 1024 / f["bound"]))
            for site in mem["top"][:15]:
                print("    %8.1f KiB %7.2f KiB/port %8d blocks  %s" % (
                    site["bytes"] / 1024, site["bytes"] / 1024 / f["bound"], site["blocks"],
                    site["where"].replace(ROOT + "/", "")))
        if f.get("problems"):
            print("  dvn log: %d WARNING/ERROR/Traceback lines, the first:" % len(f["problems"]))
            for line in f["problems"][:5]:
                print("    " + short(line, 300))
        print("  whole run %.0f s" % f["elapsed_s"])

    rows = [("full convergence, first API call -> dvn's last commit (s)", lambda f: f.get("converged_log_s"), "%.1f"),
            ("  ... -> br-int's flow count last seen changing (s)", lambda f: f.get("converged_poll_s"), "%.1f"),
            ("  of it, the API calls (s)", lambda f: f.get("api_s"), "%.1f"),
            ("rule added -> on br-int, median of 5 (ms)", lambda f: inc(f, "rule", 0), "%.0f"),
            ("  ... -> dvn's commit (ms)", lambda f: inc(f, "rule", 1), "%.0f"),
            ("member added -> on br-int, median of 5 (ms)", lambda f: inc(f, "member", 0), "%.0f"),
            ("  ... -> dvn's commit (ms)", lambda f: inc(f, "member", 1), "%.0f"),
            ("  (one dump-flows poll, ms)", lambda f: f.get("inc", {}).get("poll_ms"), "%.0f"),
            ("OpenFlow flows on br-int", lambda f: f.get("flows"), "%d"),
            ("OpenFlow groups on br-int", lambda f: f.get("groups"), "%d"),
            ("dvn peak RSS (MiB)", lambda f: kib(f, "dvn"), "%.0f"),
            ("vswitchd peak RSS (MiB)", lambda f: kib(f, "vswitchd"), "%.0f"),
            ("nb ovsdb-server peak RSS (MiB)", lambda f: kib(f, "nb ovsdb"), "%.0f"),
            ("dvn CPU in the bulk apply (s)", lambda f: f.get("cpu_bulk", {}).get("dvn"), "%.1f"),
            ("vswitchd CPU in the bulk apply (s)", lambda f: f.get("cpu_bulk", {}).get("vswitchd"), "%.1f"),
            ("nb ovsdb-server CPU in the bulk apply (s)", lambda f: f.get("cpu_bulk", {}).get("nb ovsdb"), "%.1f"),
            ("node ovsdb-server CPU in the bulk apply (s)", lambda f: f.get("cpu_bulk", {}).get("node ovsdb"), "%.1f"),
            ("dvn CPU, whole run (s)", lambda f: f.get("cpu_total", {}).get("dvn"), "%.1f"),
            ("vswitchd CPU, whole run incl. pre-plug (s)", lambda f: f.get("cpu_total", {}).get("vswitchd"), "%.1f")]
    print("\n%-58s" % "" + "".join("%12s" % run_name(f) for f in figs))
    for label, get, fmt in rows:
        cells = []
        for f in figs:
            v = get(f)
            if f.get("timed_out") and label.startswith(("full convergence", "  ... -> br-int")):
                cells.append("%12s" % ("> %d" % args.timeout))
                continue
            cells.append("%12s" % (fmt % v if v is not None and not (isinstance(v, float) and math.isnan(v)) else "-"))
        print("%-58s" % label + "".join(cells))
    print("\nper port (bound):")
    for label, get in (("convergence (ms/port)", lambda f: None if f.get("timed_out")
                        else 1000 * f["converged_log_s"] / f["bound"]),
                       ("flows per port", lambda f: f["flows"] / f["bound"]),
                       ("dvn peak RSS (KiB/port)", lambda f: f["rss_final"]["dvn"] / f["bound"]
                        if f.get("rss_final") else f["rss_bulk"]["dvn"] / f["bound"]),
                       ("dvn CPU in the bulk apply (ms/port)", lambda f: 1000 * f["cpu_bulk"]["dvn"] / f["bound"])):
        cells = []
        for f in figs:
            try:
                v = get(f)
                cells.append("%12.1f" % v if v is not None else "%12s" % "-")
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("%12s" % "-")
        print("%-58s" % ("  " + label) + "".join(cells))
    print("\n(targets at P=10,000: convergence < 60 s, one incremental operation < 200 ms, <= 175,000 flows, "
          "dvn RSS < 600 MiB, costs linear in P)")


def timeline(f, rows=12):
    """dvn's bundles in windows of the bulk apply: where the time went."""
    syncs = f["bundles"]
    t0 = f["wall0"]
    end = max(s[1] for s in syncs) - t0
    width = max(5.0, math.ceil(end / rows / 5) * 5)
    print("  %-13s %8s %8s %9s %10s %10s %11s %10s" % ("window (s)", "bundles", "changes", "units/b", "compile s",
                                                       "bundle s", "max comp s", "reconnects"))
    w = 0.0
    while w < end:
        part = [s for s in syncs if w <= s[1] - t0 < w + width]
        conns = [c for c in f.get("connect_times", ()) if w <= c < w + width]
        if part:
            print("  %5.0f-%-7.0f %8d %8d %9.1f %10.1f %10.1f %11.2f %10d" % (
                w, w + width, len(part), sum(s[2]["changes"] for s in part),
                sum(s[2].get("units", 0) for s in part) / len(part), sum(s[2]["compile"] for s in part),
                sum(s[2]["bundle"] for s in part), max(s[2]["compile"] for s in part), len(conns)))
        w += width


def inc(f, kind, which):
    data = f.get("inc", {}).get(kind)
    if not data:
        return None
    if which == 0:
        return med(data[0])
    vals = [d[0] for d in data[1] if d]
    return med(vals) if vals else None


def kib(f, who):
    rss = f.get("rss_final") or f.get("rss_bulk") or {}
    return rss[who] / 1024 if who in rss else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ports", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--clients", type=int, default=4, help="API calls in flight at once")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=900, help="seconds from the first API call to convergence")
    ap.add_argument("--plug-timeout", type=float, default=1200, help="seconds to pre-plug the interfaces")
    ap.add_argument("--quiet", type=float, default=6.0, help="seconds of stillness that mean converged")
    ap.add_argument("--port-type", choices=("dummy", "patch"), default="dummy",
                    help="the interfaces that are not VMs: dummy (polled by the userspace datapath, which slows "
                         "vswitchd down as they add up) or patch ports without a peer (an ofport and no "
                         "datapath port: vswitchd stays fast, so dvn's own costs show)")
    ap.add_argument("--per-object", action="store_true",
                    help="the bulk apply as one REST call per object (default: one POST /v1/import)")
    ap.add_argument("--bind-batch", type=int, default=0,
                    help="interfaces bound per OVSDB transaction after the import (default: all in one; "
                         "every transaction makes vswitchd reconfigure all its ports)")
    ap.add_argument("--no-restart-check", action="store_true")
    ap.add_argument("--keep-log", metavar="DIR", help="copy dvn's log there after each run")
    ap.add_argument("--tls", choices=("off", "on", "both"), default="off",
                    help="dvn with --tls, the node joined with a token: TLS on the REST API, OpenFlow (every lane) "
                         "and the node's OVSDB session; both: each P plain, then with TLS, and their ratios")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="run dvn with tracemalloc (slower: not for timing) and print what it holds per port")
    args = ap.parse_args()
    if args.tracemalloc:
        os.environ["DVN_TRACEMALLOC"] = os.path.join(tempfile.mkdtemp(prefix="dvn-mem-"), "tracemalloc.json")
    figs = []
    for p in args.ports:
        for tls in {"off": [False], "on": [True], "both": [False, True]}[args.tls]:
            print("bench_scale: P=%d ports, %d API clients%s" % (p, args.clients, ", TLS" if tls else ""), flush=True)
            figs.append(Run(args, p, tls).run())
    report(figs, args)
    tls_ratios(figs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
