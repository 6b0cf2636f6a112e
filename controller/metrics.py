"""Prometheus metrics of a running dvn, served at ``GET /metrics`` (admin
token) in Prometheus' text format.

What a change costs is counted where it happens (a histogram of reconcile
latency and of bundle sizes, API requests by route and status, firewall
events by verdict). What the fleet looks like now (switches and lanes
connected, nodes in sync, flows and groups per switch, load-balancer
members' health, IPsec tunnels per node) is read from the controller when
Prometheus scrapes, so it is never stale and costs nothing between scrapes.

Each Core has its own registry (not prometheus_client's global one): tests
run several in one process.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BUNDLE_BUCKETS = (1, 10, 100, 1000, 10000, 100000, 1000000)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=False)
        self.reconcile = Histogram(
            "dvn_reconcile_seconds", "A change to a switch, from its compile to the switch's commit",
            ["kind"], buckets=RECONCILE_BUCKETS, registry=self.registry)
        self.bundle_changes = Histogram(
            "dvn_bundle_changes", "Flow and group changes sent to a switch in one change",
            buckets=BUNDLE_BUCKETS, registry=self.registry)
        self.api_requests = Counter(
            "dvn_api_requests", "REST API requests by method, route (its pattern) and status",
            ["method", "route", "status"], registry=self.registry)
        self.firewall_events = Counter(
            "dvn_firewall_events", "Logged firewall decisions by verdict", ["verdict"], registry=self.registry)

    def watch(self, core):
        """Read the fleet's state from ``core`` at every scrape."""
        self.registry.register(_Fleet(core))

    def changed(self, kind, changes, seconds):
        """A change of ``changes`` flows and groups sent to a switch ("change" or "resync")."""
        self.reconcile.labels(kind).observe(seconds)
        if changes:
            self.bundle_changes.observe(changes)

    def render(self):
        return generate_latest(self.registry)


class _Fleet:
    """Gauges read from the controller when scraped."""

    def __init__(self, core):
        self.core = core

    def collect(self):
        core = self.core
        connected = GaugeMetricFamily("dvn_switch_connected", "1 while the node's br-int is connected to dvn",
                                      labels=["node"])
        lanes = GaugeMetricFamily("dvn_switch_lanes", "Extra OpenFlow connections (lanes) of the node's br-int",
                                  labels=["node"])
        in_sync = GaugeMetricFamily("dvn_node_in_sync", "1 while the node's br-int holds all dvn wants there",
                                    labels=["node"])
        flows = GaugeMetricFamily("dvn_switch_flows", "Flows dvn has on the node's br-int", labels=["node"])
        groups = GaugeMetricFamily("dvn_switch_groups", "Groups dvn has on the node's br-int", labels=["node"])
        sessions = GaugeMetricFamily("dvn_node_session_up", "1 while the node's OVSDB session to dvn is up",
                                     labels=["node"])
        ipsec = GaugeMetricFamily("dvn_ipsec_tunnels", "IPsec tunnel ports on the node's br-int", labels=["node"])
        nodes = set(core.switches) | set(core.nodes) | set(core.sessions)
        for node in sorted(nodes):
            state = core.switch_state(node)
            connected.add_metric([node], int(state["connected"]))
            lanes.add_metric([node], state["lanes"])
            in_sync.add_metric([node], int(state["synced"] and not state["pending"]))
            flows.add_metric([node], state["flows"])
            groups.add_metric([node], state["groups"])
            session = core.sessions.get(node)
            sessions.add_metric([node], int(session is not None))
            if session is not None:
                ipsec.add_metric([node], len(session.tunnels("ipsec")))
        total = GaugeMetricFamily("dvn_switches_connected", "Switches connected to dvn",
                                  value=sum(1 for s in list(core.switches.values()) if s.conn is not None))
        members = GaugeMetricFamily("dvn_lb_member_up", "1 while a load-balancer member is ONLINE (or not "
                                    "monitored) and admin up", labels=["load_balancer", "member", "status"])
        for lb_id, balancer in sorted(core.lbs.items()):
            for m in balancer.members:
                members.add_metric([lb_id, m.id, m.status], int(m.admin_up and m.status != "OFFLINE"))
        yield from (total, connected, lanes, in_sync, flows, groups, sessions, ipsec, members)
