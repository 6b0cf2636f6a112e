"""The scale workload of issue 6 ("ten thousand ports on one node"), as REST bodies.

Pure and deterministic: ``Workload(ports, seed)`` is the same every time, no
I/O, no clock. Objects refer to each other by index; the ``*_body`` methods
turn an index into the body to POST once the ids of what it names are known
(``ids`` maps a kind to a list of ids by index).

For P ports, every one on one node:

- ceil(P/50) networks, each a /24 (10.<k // 256>.<k % 256>.0/24), ports i of
  network i // 50 at .10-.59, port security on;
- ceil(P/10) security groups; port i is in group i // 10 and, with
  probability 1/2, in one more group drawn at random. Every group is
  stateful with default deny and these allow rules: ingress tcp/22 from
  192.168.0.0/16, ingress tcp/80 and ingress tcp/443 (two rules) from the
  next group's members (remote group), ingress icmp from its own members,
  egress any IPv4: five rules a group;
- ceil(P/20) TCP VIPs on port 80 at .200 and up of network j % networks, each
  with 4 members on port 8080 drawn from that network's ports;
- the incremental operations: rule k adds ingress tcp/(9000 + k) from
  198.51.100.0/24 to a random group; member k adds a port of a random VIP's
  network (not yet in its pool) on port 8080.

The lab's sanity check needs a few real VMs whose verdicts are known, so
three ports are pinned: ``vm_a`` (port 0) and ``vm_b`` (port 1) are in group 0
only, ``vm_c`` (port 10) in group 1 only, all three in network 0. So a ping
a -> b passes (icmp from its own group), pings c -> b and a -> c drop (not a
member), and TCP c -> b:80 passes (group 0 takes tcp/80 from group 1) while
a -> b:80 drops. One extra VIP (``sanity_vip``, 10.0.0.250:80 in network 0,
member vm_b on port 80) carries that over the load balancer.
"""

import math
import random

TENANT = "scale"
PER_NETWORK = 50
PER_GROUP = 10
PER_VIP = 20
MEMBERS = 4
MEMBER_PORT = 8080
VIP_PORT = 80
OPS = 5                 # incremental operations of each kind
RULE_PORT_BASE = 9000   # incremental rule k: tcp/(9000 + k), k = 1..OPS
RULE_CIDR = "198.51.100.0/24"


class Workload:
    def __init__(self, ports, seed=6):
        if ports < 11:
            raise ValueError("the workload needs at least 11 ports (the sanity check pins ports 0, 1 and 10)")
        self.n_ports, self.seed = ports, seed
        rng = random.Random("dvn-scale-%d-%d" % (ports, seed))
        self.n_networks = math.ceil(ports / PER_NETWORK)
        self.n_groups = math.ceil(ports / PER_GROUP)
        self.n_vips = math.ceil(ports / PER_VIP)
        self.vms = {"vm_a": 0, "vm_b": 1, "vm_c": 10}
        pinned = set(self.vms.values())

        # Ports: (network index, MAC, IP, group indices)
        self.ports = []
        for i in range(ports):
            groups = [i // PER_GROUP]
            if rng.random() < 0.5 and self.n_groups > 1:
                extra = rng.randrange(self.n_groups - 1)
                extra += extra >= groups[0]          # any group but its own
                if i not in pinned:
                    groups.append(extra)
            self.ports.append((i // PER_NETWORK, self.mac(i), self.ip(i), tuple(groups)))
        self.net_ports = [list(range(k * PER_NETWORK, min(ports, (k + 1) * PER_NETWORK)))
                          for k in range(self.n_networks)]

        # Rules: (group index, rule body with "remote_group" as an index)
        self.rules = []
        for g in range(self.n_groups):
            nxt = (g + 1) % self.n_groups
            self.rules += [
                (g, {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                     "remote_ip_prefix": "192.168.0.0/16"}),
                (g, {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                     "remote_group": nxt}),
                (g, {"direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443,
                     "remote_group": nxt}),
                (g, {"direction": "ingress", "protocol": "icmp", "remote_group": g}),
                (g, {"direction": "egress", "ethertype": "IPv4"}),
            ]

        # VIPs: (network index, address, [member port indices])
        self.vips = []
        for j in range(self.n_vips):
            k = j % self.n_networks
            pool = self.net_ports[k]
            members = sorted(rng.sample(pool, min(MEMBERS, len(pool))))
            self.vips.append((k, self.net_ip(k, 200 + j // self.n_networks), members))
        self.sanity_vip = (0, self.net_ip(0, 250), [self.vms["vm_b"]])

        # Incremental operations
        self.rule_ops = [(rng.randrange(self.n_groups),
                          {"direction": "ingress", "protocol": "tcp", "port_range_min": RULE_PORT_BASE + k,
                           "port_range_max": RULE_PORT_BASE + k, "remote_ip_prefix": RULE_CIDR})
                         for k in range(1, OPS + 1)]
        self.member_ops = []
        chosen = set()
        while len(self.member_ops) < OPS:
            j = rng.randrange(self.n_vips)
            k, _addr, members = self.vips[j]
            free = [i for i in self.net_ports[k] if i not in members]
            if j in chosen or not free:
                continue
            chosen.add(j)
            self.member_ops.append((j, rng.choice(free)))

    # ---- addresses ------------------------------------------------------------------
    @staticmethod
    def net_ip(k, host):
        return "10.%d.%d.%d" % (k // 256, k % 256, host)

    @staticmethod
    def cidr(k):
        return "10.%d.%d.0/24" % (k // 256, k % 256)

    def ip(self, i):
        return self.net_ip(i // PER_NETWORK, 10 + i % PER_NETWORK)

    @staticmethod
    def mac(i):
        return "02:76:%02x:%02x:%02x:%02x" % (i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255)

    @staticmethod
    def port_name(i):
        return "p%d" % i

    # ---- counts ---------------------------------------------------------------------
    def counts(self):
        return {"ports": self.n_ports, "networks": self.n_networks, "groups": self.n_groups,
                "rules": len(self.rules), "vips": self.n_vips, "members": sum(len(v[2]) for v in self.vips),
                "memberships": sum(len(p[3]) for p in self.ports)}

    # ---- bodies, once the ids of what they name are known -----------------------------
    def network_body(self, k):
        return {"name": "net%d" % k, "tenant": TENANT, "cidrs": [self.cidr(k)]}

    def group_body(self, g):
        return {"name": "sg%d" % g, "tenant": TENANT}

    @staticmethod
    def _rule(body, group_ids):
        out = dict(body)
        if "remote_group" in out:
            out["remote_group_id"] = group_ids[out.pop("remote_group")]
        return out

    def rule_body(self, r, group_ids):
        """(group id, body) of rule r."""
        g, body = self.rules[r]
        return group_ids[g], self._rule(body, group_ids)

    def port_body(self, i, network_ids, group_ids):
        k, mac, ip, groups = self.ports[i]
        return {"name": self.port_name(i), "network": network_ids[k], "mac": mac, "ips": [ip],
                "security_groups": [group_ids[g] for g in groups], "port_security": True}

    def _lb_body(self, name, vip, network_ids, port, member_port):
        k, address, members = vip
        return {"name": name, "network": network_ids[k], "vip_address": address, "protocol": "tcp",
                "protocol_port": port,
                "members": [{"address": self.ports[i][2], "protocol_port": member_port} for i in members]}

    def lb_body(self, j, network_ids):
        return self._lb_body("vip%d" % j, self.vips[j], network_ids, VIP_PORT, MEMBER_PORT)

    def sanity_lb_body(self, network_ids):
        return self._lb_body("sanity", self.sanity_vip, network_ids, VIP_PORT, VIP_PORT)

    def document(self):
        """The whole workload as one POST /v1/import body (references by name)."""
        nets = [self.network_body(k)["name"] for k in range(self.n_networks)]
        sgs = [self.group_body(g)["name"] for g in range(self.n_groups)]
        rules = {name: [] for name in sgs}
        for r in range(len(self.rules)):
            g, body = self.rule_body(r, sgs)
            rules[g].append(body)
        strip = lambda body: {k: v for k, v in body.items() if k != "tenant"}
        return {"tenant": TENANT,
                "networks": [strip(self.network_body(k)) for k in range(self.n_networks)],
                "security_groups": [dict(strip(self.group_body(g)), rules=rules[sgs[g]])
                                    for g in range(self.n_groups)],
                "ports": [self.port_body(i, nets, sgs) for i in range(self.n_ports)],
                "load_balancers": [self.lb_body(j, nets) for j in range(self.n_vips)] + [self.sanity_lb_body(nets)]}

    def rule_op_body(self, k, group_ids):
        """(group id, body, tcp port) of incremental rule k."""
        g, body = self.rule_ops[k]
        return group_ids[g], dict(body), body["port_range_min"]

    def member_op_body(self, k):
        """(VIP index, member body) of incremental member k."""
        j, i = self.member_ops[k]
        return j, {"address": self.ports[i][2], "protocol_port": MEMBER_PORT}
