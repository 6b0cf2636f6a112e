"""Firewall alerts (micro-segmentation alerts): a rule marked ``alert``
raises an alert for each connection (5-tuple) it sees, at most once a
minute, POSTed as JSON to its tenant's webhook (/v1/alert-webhooks).

Its packets reach dvn as a logged rule's do (through the switch's log meter:
a flood of one connection is a hundred packet-ins a second at most), and
each becomes a firewall event; the alert is the first event of a 5-tuple in
its minute. The POST runs in a green thread of its own, with a timeout: a
slow or unreachable receiver delays nothing else (it is logged, without
the URL, which may carry the receiver's credentials).
"""

import json
import logging
import time
import urllib.request

import eventlet

LOG = logging.getLogger(__name__)

WINDOW_S = 60.0         # one alert a connection per window
POST_TIMEOUT_S = 5.0
MAX_REMEMBERED = 100000  # 5-tuples remembered at once (older ones forgotten first)


def connection_key(event):
    """What identifies an event's connection: its rule and 5-tuple."""
    return (event.get("rule"), event.get("src"), event.get("dst"), event.get("protocol"), event.get("src_port"),
            event.get("dst_port"))


class Alerts:
    def __init__(self, webhook_of, clock=time.monotonic, post=None):
        self.webhook_of = webhook_of     # webhook_of(tenant) -> its URL, or None
        self.clock = clock
        self.post = post or _post
        self.last = {}                   # connection key -> when it last raised an alert
        self.sent = self.failed = 0

    def event(self, event, tenant):
        """A firewall event of an alert rule of ``tenant``: an alert, unless its
        connection raised one less than a minute ago. True if one was raised."""
        now = self.clock()
        key = connection_key(event)
        last = self.last.get(key)
        if last is not None and now - last < WINDOW_S:
            return False
        self.last[key] = now
        if len(self.last) > MAX_REMEMBERED:
            self._forget(now)
        url = self.webhook_of(tenant)
        if url is None:
            LOG.info("alert of rule %s for tenant %s: no webhook set", event.get("rule"), tenant)
            return True
        body = dict(event, alert=True, tenant=tenant)
        eventlet.spawn_n(self._send, url, body)
        return True

    def _forget(self, now):
        self.last = {k: t for k, t in self.last.items() if now - t < WINDOW_S}
        while len(self.last) > MAX_REMEMBERED:
            self.last.pop(next(iter(self.last)))

    def _send(self, url, body):
        try:
            self.post(url, body)
            self.sent += 1
        except Exception as exc:
            self.failed += 1
            LOG.warning("alert of rule %s for tenant %s not delivered to its webhook: %s",
                        body.get("rule"), body["tenant"], type(exc).__name__)


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body, sort_keys=True).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "dvn-alerts"})
    with urllib.request.urlopen(req, timeout=POST_TIMEOUT_S) as resp:
        resp.read()
