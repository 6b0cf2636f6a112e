"""The test lab: simulated hypervisors and VMs in network namespaces, real Open vSwitch.

Every hypervisor is a namespace ``dvn-<tag>-<name>`` running its own
ovsdb-server and ovs-vswitchd (userspace ``netdev`` datapath), with state in
``/tmp/dvn-<tag>/<name>``. Their ``eth0`` veths meet on a Linux bridge in the
underlay namespace, and ``br-phy`` carries each one's tunnel IP (the OVS
userspace-tunnelling layout). VMs are namespaces whose ``eth0`` is a veth
plugged into a hypervisor's br-int. The controller runs in this machine's own
namespace and is reached over a veth into the underlay. More underlay
subnets (``segment``), routers between them and 1:1 NATs (nftables) make
routed underlays and cloud-like nodes.

No pytest here: the demo and benchmarks use it too.
"""

import atexit
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def sh(*args, check=True, env=None, timeout=60):
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), res.returncode, res.stderr.strip()))
    return res.stdout


def _alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


def stop_pids(pids, timeout=5.0):
    """TERM our own processes, then KILL what is left (never pkill: other OVS may run here)."""
    pids = [p for p in pids if p and _alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _netns_pids(ns):
    out = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in out.split()]


class Lab:
    def __init__(self, tag):
        if not re.match(r"^[a-z0-9]{1,6}$", tag):
            raise ValueError("a lab tag is 1 to 6 lowercase letters or digits")
        self.tag = tag
        self.dir = "/tmp/dvn-%s" % tag
        self.namespaces = []
        self.hvs = {}
        self.vms = {}
        self.procs = []
        self.host_veth = None
        self.ul = None
        self._closed = False

    # ---- life cycle ----------------------------------------------------------
    def __enter__(self):
        if os.geteuid() != 0:
            raise RuntimeError("the lab needs root")
        for tool in ("ovs-vswitchd", "ovsdb-server", "ip", "ethtool", "curl"):
            if shutil.which(tool) is None:
                raise RuntimeError("%s is not installed (make test installs it)" % tool)
        stale = [n for n in self.list_namespaces(self.tag)]
        if stale:
            raise RuntimeError("stale lab namespaces %s (Lab.cleanup_stale(%r))" % (stale, self.tag))
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        atexit.register(self.close)
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def list_namespaces(tag):
        out = sh("ip", "netns", "list", check=False)
        return [line.split()[0] for line in out.splitlines() if line.startswith("dvn-%s-" % tag)]

    @classmethod
    def cleanup_stale(cls, tag):
        """Remove what a killed run with this tag left behind."""
        for ns in cls.list_namespaces(tag):
            stop_pids(_netns_pids(ns))
            sh("ip", "netns", "del", ns, check=False)
        for name in ("dvn%s" % tag,):
            sh("ip", "link", "del", name, check=False)
        shutil.rmtree("/tmp/dvn-%s" % tag, ignore_errors=True)

    def close(self):
        if self._closed:
            return
        self._closed = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        pids = []
        for hv in self.hvs.values():
            pids += hv.daemon_pids()
        for ns in self.namespaces:
            pids += _netns_pids(ns)
        stop_pids(pids)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        if self.host_veth:
            sh("ip", "link", "del", self.host_veth, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _netns(self, name):
        ns = "dvn-%s-%s" % (self.tag, name)
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")
        return ns

    # ---- topology ---------------------------------------------------------------
    def underlay(self, subnet="192.168.50.0/24"):
        self.ul = self._netns("ul")
        self.subnet = subnet
        sh("ip", "-n", self.ul, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.ul, "link", "set", "br0", "up")

    def controller_uplink(self, ip_cidr):
        """A veth from this machine's namespace into the underlay, holding ``ip_cidr``."""
        self.host_veth = "dvn%s" % self.tag
        sh("ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", "ctl", "netns", self.ul)
        sh("ip", "-n", self.ul, "link", "set", "ctl", "master", "br0", "up")
        sh("ip", "addr", "add", ip_cidr, "dev", self.host_veth)
        sh("ip", "link", "set", self.host_veth, "up")
        # The hypervisors' userspace datapath does not complete partial checksums:
        # without this the controller's TCP segments arrive with bad checksums.
        sh("ethtool", "-K", self.host_veth, "tx", "off")

    def segment(self, bridge):
        """Another underlay subnet: a bridge of its own in the underlay namespace
        (``add_hv(..., segment=bridge)``), joined to the others only by a router."""
        sh("ip", "-n", self.ul, "link", "add", bridge, "type", "bridge")
        sh("ip", "-n", self.ul, "link", "set", bridge, "up")

    def _leg(self, ns, name, bridge, cidr, mtu=1600):
        """A veth from ``ns`` (its end ``name``, holding ``cidr``) onto an underlay bridge."""
        outside = "%s-%s" % (ns.rsplit("-", 1)[1], name)
        sh("ip", "link", "add", outside, "netns", self.ul, "mtu", str(mtu), "type", "veth",
           "peer", "name", name, "netns", ns, "mtu", str(mtu))
        sh("ip", "-n", self.ul, "link", "set", outside, "master", bridge, "up")
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", name)
        sh("ip", "-n", ns, "link", "set", name, "up")

    def add_router(self, name, legs):
        """A router namespace with one leg per underlay bridge: {bridge: address/prefix}."""
        ns = self._netns(name)
        for i, (bridge, cidr) in enumerate(sorted(legs.items())):
            self._leg(ns, "eth%d" % i, bridge, cidr)
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        return ns

    def add_nat(self, name, outside, inside, mapping, gateway=None):
        """A 1:1 NAT (the cloud pattern) between two underlay bridges, with
        nftables: ``outside``/``inside`` are (bridge, address/prefix) of its
        legs; ``mapping`` {public address: private address}. The public
        addresses are the NAT's own on its outside leg, so it answers ARP for
        them; each private host is seen outside as its public address, and
        everything sent to that address is forwarded to it. ``gateway``: its
        default route, on the outside."""
        if shutil.which("nft") is None:
            raise RuntimeError("nft is not installed (tools/setup.sh installs nftables)")
        ns = self._netns(name)
        self._leg(ns, "out", outside[0], outside[1])
        self._leg(ns, "in", inside[0], inside[1])
        prefix = outside[1].split("/")[1]
        rules = ["table ip nat {",
                 " chain pre { type nat hook prerouting priority dstnat; }",
                 " chain post { type nat hook postrouting priority srcnat; }", "}"]
        for public, private in sorted(mapping.items()):
            sh("ip", "-n", ns, "addr", "add", "%s/%s" % (public, prefix), "dev", "out")
            rules += ["add rule ip nat pre ip daddr %s dnat to %s" % (public, private),
                      "add rule ip nat post ip saddr %s snat to %s" % (private, public)]
        if gateway:
            sh("ip", "-n", ns, "route", "add", "default", "via", gateway, "dev", "out")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input="\n".join(rules) + "\n",
                       text=True, check=True, capture_output=True)
        return ns

    def host_route(self, prefix, via):
        """A route in this machine's namespace (where dvn runs) over the underlay
        uplink; it goes with the uplink."""
        sh("ip", "route", "add", prefix, "via", via, "dev", self.host_veth)

    def add_hv(self, name, tunnel_ip_cidr, mtu=1600, enable_dummy=False, segment="br0", gateway=None):
        """A hypervisor on the underlay bridge ``segment``; with ``gateway``,
        its default route goes through that router (on br-phy)."""
        hv = Hypervisor(self, name, self._netns(name), tunnel_ip_cidr, mtu, enable_dummy, segment)
        self.hvs[name] = hv
        hv.start()
        if gateway:
            hv.add_route("default", gateway)
        return hv

    def seed_neighbors(self):
        """Preload every tunnel neighbour cache, so no first packet waits for ARP."""
        for hv in self.hvs.values():
            for peer in self.hvs.values():
                if peer is not hv:
                    hv.appctl("tnl/neigh/set", "br-phy", peer.ip, peer.mac)

    def add_vm(self, name, hv, ip_cidr, mac, mtu=1400, iface_id=None, ipv6_cidr=None):
        vm = VM(self, name, self._netns(name), hv, ip_cidr, mac, mtu)
        self.vms[name] = vm
        vm.start(iface_id)
        if ipv6_cidr:
            vm.add_ipv6(ipv6_cidr)
        return vm

    def spawn(self, args, **kwargs):
        proc = subprocess.Popen(args, **kwargs)
        self.procs.append(proc)
        return proc


class Hypervisor:
    def __init__(self, lab, name, ns, tunnel_ip_cidr, mtu, enable_dummy=False, segment="br0"):
        self.lab, self.name, self.ns, self.segment = lab, name, ns, segment
        self.cidr, self.ip = tunnel_ip_cidr, tunnel_ip_cidr.split("/")[0]
        self.mtu = mtu
        self.enable_dummy = enable_dummy   # vswitchd also knows the ``dummy`` interface type
        self.dir = os.path.join(lab.dir, name)
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir)
        self.db = "unix:%s/db.sock" % self.dir
        self.mac = None

    def run(self, *args, check=True, timeout=60):
        return sh("ip", "netns", "exec", self.ns, *args, check=check, env=self.env, timeout=timeout)

    def vsctl(self, *args, check=True):
        return self.run("ovs-vsctl", "--timeout=20", *args, check=check).strip()

    def ofctl(self, *args, check=True):
        return self.run("ovs-ofctl", "-O", "OpenFlow15", *args, check=check)

    def appctl(self, *args, check=True):
        return self.run("ovs-appctl", *args, check=check)

    def start(self):
        os.makedirs(self.dir)
        sh("ovsdb-tool", "create", os.path.join(self.dir, "conf.db"), SCHEMA)
        self.run("ovsdb-server", os.path.join(self.dir, "conf.db"), "-vconsole:off",
                 "--remote=punix:%s/db.sock" % self.dir,
                 "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                 # as Debian's ovs-ctl: an ssl: manager (dvn join --token) uses the SSL table's files
                 "--private-key=db:Open_vSwitch,SSL,private_key", "--certificate=db:Open_vSwitch,SSL,certificate",
                 "--bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert",
                 "--pidfile", "--detach", "--no-chdir", "--log-file")
        self.run("ovs-vsctl", "--no-wait", "init")
        self.run("ovs-vsctl", "--no-wait", "set", "Open_vSwitch", ".",
                 "external_ids:system-id=%s" % self.name, "external_ids:hostname=%s" % self.name)
        self.start_vswitchd()
        # Uplink: eth0 into the underlay bridge, owned by br-phy, which holds the tunnel IP.
        ul = self.lab.ul
        sh("ip", "link", "add", self.name, "netns", ul, "mtu", str(self.mtu), "type", "veth",
           "peer", "name", "eth0", "netns", self.ns, "mtu", str(self.mtu))
        sh("ip", "-n", ul, "link", "set", self.name, "master", self.segment, "up")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        # The kernel also sees every underlay frame on eth0: strict rp_filter drops its copies.
        self.run("sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1")
        self.mac = sh("ip", "-n", self.ns, "-br", "link", "show", "eth0").split()[2]
        self.vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
                   "other_config:hwaddr=%s" % self.mac, "--", "add-port", "br-phy", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "br-phy", "mtu", str(self.mtu), "up")
        sh("ip", "-n", self.ns, "addr", "add", self.cidr, "dev", "br-phy")

    def add_route(self, prefix, via):
        """A route of this node's namespace through a router on br-phy: the
        kernel's, which ovs-vswitchd's tunnel routing (ovs/route/show) copies."""
        sh("ip", "-n", self.ns, "route", "add", prefix, "via", via, "dev", "br-phy")

    def start_vswitchd(self):
        self.run("ovs-vswitchd", self.db, "-vconsole:off", "--pidfile", "--detach", "--no-chdir",
                 "--log-file", "--disable-system", *(("--enable-dummy",) if self.enable_dummy else ()))

    def transact(self, ops, timeout=600):
        """One OVSDB transaction straight on the node's socket (no argv limit, no
        ovs-vsctl cache rebuilt per command); the results, or RuntimeError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(self.db[len("unix:"):])
        try:
            sock.sendall(json.dumps({"method": "transact", "params": ["Open_vSwitch"] + ops, "id": 0}).encode())
            buf, decoder = "", json.JSONDecoder()
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("the node's ovsdb-server closed the connection")
                buf += chunk.decode()
                try:
                    msg, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    continue
                buf = buf.lstrip()[end:]
                if msg.get("method") == "echo":
                    sock.sendall(json.dumps({"id": msg["id"], "result": msg["params"], "error": None}).encode())
                    continue
                break
        finally:
            sock.close()
        if msg.get("error"):
            raise RuntimeError("transaction failed: %.400s" % (msg["error"],))
        errors = [r for r in msg["result"] if r and "error" in r]
        if errors:
            raise RuntimeError("transaction failed: %.400s" % (errors,))
        return msg["result"]

    def flow_count(self):
        """How many flows br-int has (dump-aggregate)."""
        return int(re.search(r"flow_count=(\d+)", self.ofctl("dump-aggregate", "br-int")).group(1))

    def ofport_count(self, names):
        """How many of the interfaces ``names`` have an ofport."""
        out = json.loads(self.run("ovs-vsctl", "--timeout=60", "--format=json", "--columns=name,ofport",
                                  "list", "Interface"))
        got = {name: ofport for name, ofport in out["data"]}
        return sum(1 for n in names if isinstance(got.get(n), int) and got[n] > 0)

    def _pid(self, daemon):
        try:
            with open(os.path.join(self.dir, "%s.pid" % daemon)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def daemon_pids(self):
        return [p for p in (self._pid("ovs-vswitchd"), self._pid("ovsdb-server")) if p]

    def kill_vswitchd(self, sig=signal.SIGKILL):
        pid = self._pid("ovs-vswitchd")
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    _FLOW = re.compile(r"cookie=(0x[0-9a-f]+), duration=([\d.]+)s, (?:table=(\d+), )?n_packets=(\d+), "
                       r"n_bytes=\d+, (?:[a-z_]+=[^ ,]+, )*priority=(\d+),?(\S*) actions=(.*)$")

    def dump_flows(self, bridge="br-int"):
        flows = []
        for line in self.ofctl("dump-flows", bridge).splitlines():
            m = self._FLOW.search(line)
            if m:
                flows.append({"cookie": int(m.group(1), 16), "duration": float(m.group(2)),
                              "table": int(m.group(3) or 0), "n_packets": int(m.group(4)),
                              "priority": int(m.group(5)), "match": m.group(6),
                              "actions": m.group(7)})
        return flows

    def debug_dump(self):
        out = ["===== %s =====" % self.name]
        for args in (("ovs-vsctl", "show"), ("ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int"),
                     ("ovs-appctl", "tnl/ports/show"), ("ovs-appctl", "tnl/neigh/show"),
                     ("ovs-appctl", "dpctl/dump-flows")):
            out.append("$ " + " ".join(args))
            out.append(self.run(*args, check=False))
        try:
            with open(os.path.join(self.dir, "ovs-vswitchd.log")) as f:
                out.append("".join(f.readlines()[-20:]))
        except OSError:
            pass
        return "\n".join(out)

    def remove(self):
        stop_pids(self.daemon_pids() + _netns_pids(self.ns))
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "-n", self.lab.ul, "link", "del", self.name, check=False)
        if self.ns in self.lab.namespaces:
            self.lab.namespaces.remove(self.ns)
        self.lab.hvs.pop(self.name, None)


class Pinger:
    """A running `ping -O`: one ICMP id (one connection) for its whole life.
    Each request is reported as answered ("icmp_seq=N ... time=") or not
    ("no answer yet for icmp_seq=N", when the next one goes out)."""

    def __init__(self, proc):
        self.proc = proc
        self.out = ""

    def _read(self, timeout):
        fd = self.proc.stdout.fileno()
        if select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 65536)
            self.out += chunk.decode(errors="replace")
            return bool(chunk)
        return False

    def answered(self):
        """The sequence numbers of the requests answered so far."""
        return {int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=\d+ time=", self.out)}

    def reported(self):
        """The highest sequence number reported so far (answered or not), 0 if none."""
        return max([int(n) for n in re.findall(r"icmp_seq=(\d+)", self.out)] or [0])

    def wait_for(self, predicate, timeout=20, what="the ping"):
        """Read the ping's reports until ``predicate(self)`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %s s waiting for %s; ping said:\n%s"
                                     % (timeout, what, self.out[-2000:]))
            if not self._read(0.2) and self.proc.poll() is not None:
                raise AssertionError("ping ended: %s" % self.out[-2000:])

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        self.out += out
        return _ping_counts(self.out)


def _ping_counts(out):
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class HttpServer:
    def __init__(self, proc):
        self.proc = proc

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class VM:
    def __init__(self, lab, name, ns, hv, ip_cidr, mac, mtu):
        self.lab, self.name, self.ns, self.hv = lab, name, ns, hv
        self.cidr, self.ip = ip_cidr, ip_cidr.split("/")[0]
        self.mac, self.mtu = mac, mtu

    def start(self, iface_id):
        sh("ip", "link", "add", "eth0", "netns", self.ns, "mtu", str(self.mtu), "address", self.mac,
           "type", "veth", "peer", "name", self.name, "netns", self.hv.ns, "mtu", str(self.mtu))
        sh("ip", "-n", self.ns, "addr", "add", self.cidr, "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.hv.ns, "link", "set", self.name, "up")
        # The netdev datapath does not complete CHECKSUM_PARTIAL packets from veths.
        self.exec("ethtool", "-K", "eth0", "tx", "off")
        if iface_id is not None:
            self.plug(iface_id)

    def add_ipv6(self, cidr):
        """Turn IPv6 on (the lab keeps it off) with ``cidr`` and no duplicate detection."""
        self.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0")
        self.exec("ip", "-6", "addr", "add", cidr, "dev", "eth0", "nodad")

    def plug(self, iface_id):
        self.hv.vsctl("--may-exist", "add-port", "br-int", self.name, "--", "set", "Interface", self.name,
                      "external_ids:iface-id=%s" % iface_id, "external_ids:attached-mac=%s" % self.mac)

    def unplug(self):
        self.hv.vsctl("--if-exists", "del-port", "br-int", self.name)

    def exec(self, *args, check=True, timeout=60):
        return sh("ip", "netns", "exec", self.ns, *args, check=check, timeout=timeout)

    def connects(self, dst, port, udp=False, timeout=1.5):
        """A TCP connect (or a UDP datagram answered) from this VM to dst:port."""
        family = "AF_INET6" if ":" in dst else "AF_INET"
        kind = "SOCK_DGRAM" if udp else "SOCK_STREAM"
        code = ("import socket,sys; s=socket.socket(socket.%s, socket.%s); s.settimeout(%s); "
                "s.connect((%r, %d)); s.send(b'x'); %s" % (family, kind, timeout, dst, port,
                                                            "s.recv(16)" if udp else "s.close()"))
        res = subprocess.run(["ip", "netns", "exec", self.ns, "python3", "-c", code], capture_output=True,
                             timeout=timeout + 10)
        return res.returncode == 0

    def serve_udp_echo(self, port):
        code = ("import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
                "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(('::', %d))\n"
                "while True:\n d, a = s.recvfrom(100); s.sendto(d, a)" % port)
        server = HttpServer(self.lab.spawn(["ip", "netns", "exec", self.ns, "python3", "-c", code],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait_listening(port, udp=True)
        return server

    def serve_tcp(self, port):
        code = ("import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_STREAM); "
                "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); "
                "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', %d)); s.listen(64)\n"
                "while True:\n c, a = s.accept(); c.close()" % port)
        server = HttpServer(self.lab.spawn(["ip", "netns", "exec", self.ns, "python3", "-c", code],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait_listening(port)
        return server

    def wait_listening(self, port, udp=False, timeout=10):
        """Until a socket of this VM is bound to ``port`` (a server process has started)."""
        deadline = time.monotonic() + timeout
        while True:
            out = sh("ip", "netns", "exec", self.ns, "ss", "-Hn", "-lu" if udp else "-lt",
                     "sport = :%d" % port, check=False)
            if out.strip():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("nothing listens on %s port %d in %s" % ("UDP" if udp else "TCP", port, self.name))
            time.sleep(0.05)

    def ping(self, dst, count=3, interval=0.2, timeout=1, source=None):
        extra = ["-I", source] if source else []
        out = self.exec("ping", "-c", str(count), "-i", str(interval), "-W", str(timeout), *extra, dst,
                        check=False, timeout=count * (interval + timeout) + 10)
        return _ping_counts(out)

    def ping_ok(self, dst):
        """Warm up (the first packets may wait for ARP), then require 3 of 3."""
        for _ in range(5):
            if self.ping(dst, count=1)[1] == 1:
                break
        tx, rx = self.ping(dst, count=3)
        return tx == 3 and rx == 3

    def start_ping(self, dst, interval=0.05):
        proc = self.lab.spawn(["ip", "netns", "exec", self.ns, "ping", "-O", "-i", str(interval), "-W", "1", dst],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return Pinger(proc)

    def serve_http(self, port, directory):
        proc = self.lab.spawn(["ip", "netns", "exec", self.ns, "python3", "-m", "http.server", str(port),
                               "--bind", self.ip, "--directory", directory],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sf", "--noproxy", "*", "-m", "1",
                               "-o", "/dev/null", "http://%s:%d/" % (self.ip, port)]).returncode == 0:
                return HttpServer(proc)
            time.sleep(0.1)
        raise RuntimeError("http server in %s did not start" % self.name)

    def fetch(self, url, timeout=30):
        res = subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sf", "--noproxy", "*",
                              "-m", str(timeout), url], capture_output=True, timeout=timeout + 10)
        if res.returncode != 0:
            raise RuntimeError("curl %s from %s failed (%d)" % (url, self.name, res.returncode))
        return res.stdout

    def remove(self):
        self.unplug()
        stop_pids(_netns_pids(self.ns))
        sh("ip", "netns", "del", self.ns, check=False)
        if self.ns in self.lab.namespaces:
            self.lab.namespaces.remove(self.ns)
        self.lab.vms.pop(self.name, None)
