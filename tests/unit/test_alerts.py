"""Firewall alerts (controller/alerts.py): one alert a connection (rule and
5-tuple) a minute, to its tenant's webhook; a flood of one connection is one
alert, another connection its own, the next minute another."""

import eventlet

from controller.alerts import WINDOW_S, Alerts


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def event(src_port=40000, rule="r1"):
    return {"rule": rule, "verdict": "deny", "src": "10.0.0.4", "dst": "10.0.0.1", "protocol": 17,
            "src_port": src_port, "dst_port": 9999}


def alerts():
    clock, posted = Clock(), []
    a = Alerts({"acme": "http://127.0.0.1:9/hook"}.get, clock=clock, post=lambda url, body: posted.append((url, body)))
    return a, clock, posted


def test_a_flood_of_one_connection_is_one_alert_a_minute():
    a, clock, posted = alerts()
    raised = [a.event(event(), "acme") for _ in range(10000)]
    eventlet.sleep(0)   # (the POSTs run in green threads)
    assert raised.count(True) == 1 and len(posted) == 1
    url, body = posted[0]
    assert url == "http://127.0.0.1:9/hook" and body["alert"] is True and body["tenant"] == "acme"
    assert body["dst_port"] == 9999 and body["rule"] == "r1"
    clock.now += WINDOW_S - 0.1
    assert not a.event(event(), "acme")
    clock.now += 0.2
    assert a.event(event(), "acme")          # the next minute: the next alert
    eventlet.sleep(0)
    assert len(posted) == 2


def test_each_connection_and_rule_alerts_on_its_own_and_a_tenant_without_webhook_posts_nothing():
    a, clock, posted = alerts()
    assert a.event(event(40000), "acme") and a.event(event(40001), "acme") and a.event(event(40000, "r2"), "acme")
    assert a.event(event(40000, "r3"), "umbrella")   # (raised, but umbrella has no webhook)
    eventlet.sleep(0)
    assert len(posted) == 3


def test_an_unreachable_webhook_is_counted_not_raised():
    def refuse(url, body):
        raise ConnectionRefusedError()
    a = Alerts(lambda tenant: "http://127.0.0.1:9/hook", post=refuse)
    assert a.event(event(), "acme")
    eventlet.sleep(0)
    assert a.failed == 1 and a.sent == 0
