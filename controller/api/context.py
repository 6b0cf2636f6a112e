"""What new objects are checked against: the store's rows, indexed once, and
what the request creates (a single create's object, or a whole document's)."""

import ipaddress
import secrets
import time
import uuid as uuidlib
from collections import defaultdict
from functools import cached_property

from controller import validation as v
from controller.api import schemas
from controller.validation import Problem, conflict, unprocessable

VNI_AUTO_START = 1000
NOUNS = {"Network": "network", "Port": "port", "SecurityGroup": "security group", "LoadBalancer": "load balancer"}


class Net:
    """The network a new port or load balancer goes in: a store row or one the
    request creates. ``ref`` is what a Port's or LoadBalancer's ``network``
    column takes: the row's uuid, or the network's db_create command."""

    __slots__ = ("ref", "name", "tenant", "cidrs")

    def __init__(self, ref, name, tenant, cidrs):
        self.ref, self.name, self.tenant = ref, name, tenant
        self.cidrs = [ipaddress.ip_network(c) for c in cidrs]


class Later:
    """A security group of a document, known by its name before it is made (an
    earlier group, or its own rules, may name it): ``cmd`` once it is."""

    __slots__ = ("cmd",)

    def __init__(self):
        self.cmd = None


class Context:
    """What new objects are checked against: the store's rows, indexed once
    (each index on first use), and what the request creates, added as it goes.
    A single create uses one for its object, POST /v1/import one for its whole
    document: an object costs a few lookups, not a scan of every row.

    Use it under Api.lock, and drop it after an error (what failed may be half
    in its indexes)."""

    def __init__(self, nb, caller):
        self.nb, self.caller = nb, caller
        self.tenant = None          # a document's tenant (None: each object's own)
        self.document = False       # references may name the document's objects
        self.networks = {}          # name -> Net: the networks the request creates
        self.groups_by_name = {}    # name -> Later: a document's security groups
        self.later = []             # (group command, encrypt_with): groups that name groups made after them
        self.reserved_vnis = set()  # a document's explicit VNIs: no automatic VNI takes one
        self.reserved_macs = set()  # a document's explicit MACs: no generated MAC is one
        self._names = {}
        self._nets = {}
        self._ports_in = {}         # Net.ref -> (MACs, addresses) of its ports
        self._lbs_in = {}           # Net.ref -> (VIPs, {(VIP, protocol, port): load balancer}) of its LBs
        self._next_vni = VNI_AUTO_START
        self._next_group_id = 1

    # ---- the store's rows, indexed once ------------------------------------------
    # Rows are grouped by network in one scan; a network's sets are made from
    # its rows when first asked (a single create reads no other network's).
    @cached_property
    def _vnis(self):
        return {r.vni for r in self.nb.rows("Network")}

    @staticmethod
    def _by_network(rows):
        out = defaultdict(list)
        for r in rows:
            out[r.network.uuid].append(r)
        return out

    @cached_property
    def _port_rows(self):
        return self._by_network(self.nb.rows("Port"))

    @cached_property
    def _lb_rows(self):
        return self._by_network(self.nb.rows("LoadBalancer"))

    @cached_property
    def _group_ids(self):
        return {lb.group_id for lb in self.nb.rows("LoadBalancer")}

    def _ports(self, net):
        """The MACs and the addresses of the network's ports."""
        out = self._ports_in.get(net.ref)
        if out is None:
            rows = self._port_rows.get(net.ref, ()) if isinstance(net.ref, uuidlib.UUID) else ()
            out = self._ports_in[net.ref] = ({p.mac for p in rows}, {ip for p in rows for ip in p.ips})
        return out

    def _lbs(self, net):
        """The network's VIPs, and its (VIP, protocol, port) -> the load balancer there."""
        out = self._lbs_in.get(net.ref)
        if out is None:
            rows = self._lb_rows.get(net.ref, ()) if isinstance(net.ref, uuidlib.UUID) else ()
            out = self._lbs_in[net.ref] = ({lb.vip_address for lb in rows},
                                           {(lb.vip_address, lb.protocol, lb.protocol_port): str(lb.uuid)
                                            for lb in rows})
        return out

    def macs(self, net):
        return self._ports(net)[0]

    def port_ips(self, net):
        return self._ports(net)[1]

    def vips(self, net):
        return self._lbs(net)[0]

    def lb_keys(self, net):
        return self._lbs(net)[1]

    # ---- checks that take what they check ------------------------------------------
    def claim_name(self, table, tenant, name):
        """Names are unique per tenant and table (409 naming the field)."""
        names = self._names.get(table)
        if names is None:
            names = self._names[table] = {(r.tenant, r.name) for r in self.nb.rows(table)}
        if (tenant, name) in names:
            raise conflict("name", "tenant %s already has a %s named %s" % (tenant, NOUNS[table], name))
        names.add((tenant, name))

    def vni(self, vni):
        """The VNI of a new network: ``vni`` if it is free (else 409), or for
        None the first free one from VNI_AUTO_START."""
        used = self._vnis
        if vni is None:
            n = self._next_vni
            while n in used or n in self.reserved_vnis:
                n += 1
            if n > v.VNI_MAX:
                raise conflict("vni", "no VNI is free")
            self._next_vni = n + 1
            vni = n
        elif vni in used:
            raise conflict("vni", "VNI %d is in use" % vni)
        used.add(vni)
        return vni

    def lb_group_id(self):
        """The smallest group id no load balancer has."""
        used = self._group_ids
        n = self._next_group_id
        while n in used:
            n += 1
        self._next_group_id = n + 1
        used.add(n)
        return n

    # ---- what a body names -------------------------------------------------------------
    def check(self, kind, body):
        """``body`` against the schema of a new ``kind`` (Network, SecurityGroup, Rule,
        Port, LoadBalancer): its create body's, or as an item of a document."""
        return schemas.check(("Import" + kind) if self.document else (kind + "Create"), body)

    def tenant_of_new(self, body):
        """The tenant of a new network or security group (or of a document)."""
        if self.tenant is not None:
            return self.tenant
        if self.caller.admin:
            if "tenant" not in body:
                raise unprocessable("tenant", "an admin must name the tenant")
            return body["tenant"]
        if "tenant" in body and body["tenant"] != self.caller.tenant:
            raise unprocessable("tenant", "a tenant token creates objects of its own tenant only")
        return self.caller.tenant

    def network(self, value):
        """The network ``value`` names, else 422 on network: the id of one the
        caller sees, or in a document the name of one of its networks or the
        id of one of its tenant's."""
        net = self.networks.get(value) if self.document else None
        if net is not None:
            return net
        row = self.nb.get("Network", value)
        if row is None or not self.caller.sees(row) or (self.tenant is not None and row.tenant != self.tenant):
            raise unprocessable("network", "no network %s" % value +
                          (" in tenant %s or in the document" % self.tenant if self.document else ""))
        net = self._nets.get(row.uuid)
        if net is None:
            net = self._nets[row.uuid] = Net(row.uuid, row.name, row.tenant, row.cidrs)
        return net

    def group(self, value, tenant, field):
        """The security group ``value`` names in ``tenant``, else 422 on
        ``field``: its uuid, or a document's group by name (its command, or
        its Later while it is not made)."""
        later = self.groups_by_name.get(value)
        if later is not None:
            return later if later.cmd is None else later.cmd
        row = self.nb.get("SecurityGroup", value)
        if row is not None and row.tenant == tenant:
            return row.uuid
        raise unprocessable(field, "no security group %s in tenant %s" % (value, tenant) +
                      (" or in the document" if self.document else ""))

    def groups(self, value, tenant, field="security_groups"):
        out = {}
        for i, gid in enumerate(value):
            out.setdefault(self.group(gid, tenant, "%s[%d]" % (field, i)))
        return list(out)


class Pace:
    """Called once an object of a document: now and then it lets the other
    green threads run (the controller's connections must not starve while a
    large document is checked under the lock)."""

    EVERY = 256

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        if self.n % self.EVERY == 0:
            time.sleep(0)  # eventlet's sleep under `dvn serve`: a yield


def given(**columns):
    """Columns for db_create, without those at the column's default (an empty
    set or string): the store fills them in, and a large transaction is
    cheaper for python-ovs without them."""
    return {k: val for k, val in columns.items() if not (isinstance(val, (list, tuple, str)) and len(val) == 0)}


def at(where, make, *args):
    """``make(*args)``; a problem's field is named by its path in the document."""
    try:
        return make(*args)
    except Problem as p:
        p.field = where + ("." + p.field if p.field else "")
        raise


def free_mac(*used):
    while True:
        mac = "02:" + ":".join("%02x" % b for b in secrets.token_bytes(5))
        if not any(mac in u for u in used):
            return mac

