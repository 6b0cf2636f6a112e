"""Whether a node session's view reaches dvn (ovsdb/node.py NodeSession):
with an ``admit`` check, only once the node states a system-id its
certificate is accepted for, and only while it keeps that one; a refused
session is closed, logged, and never handed over."""

import socket

from ovsdb.node import NodeSession


def session(admit, system_id="hv1"):
    """(a session whose first view is complete, the views dvn was handed, the node's end of the socket)."""
    ours, theirs = socket.socketpair()
    seen = []
    s = NodeSession(ours, ("192.0.2.7", 40000), seen.append, lambda _s: None, admit=admit)
    s.peer_cert = b"der"
    s.ready = True
    say(s, system_id)
    return s, seen, theirs


def say(s, system_id):
    ids = {"system-id": system_id} if system_id else {}
    s.rows["Open_vSwitch"] = {"u1": {"external_ids": ids}}


def test_without_admit_every_view_is_handed_over():
    s, seen, _node = session(None)
    s._notify()
    assert seen == [s] and not s.closed


def test_a_session_waits_for_its_system_id_then_is_asked_once():
    asked = []
    s, seen, _node = session(lambda sess: asked.append((sess.peer_cert, sess.claimed_id)), system_id=None)
    s._notify()
    assert seen == [] and asked == [] and not s.closed
    say(s, "hv1")
    s._notify()
    s._notify()
    assert asked == [(b"der", "hv1")] and seen == [s, s] and s.system_id == "hv1"


def test_a_refused_session_is_closed_logged_and_never_handed_over(caplog):
    s, seen, _node = session(lambda sess: "a certificate of node hv1, presented by one that claims to be hv3", "hv3")
    s._notify()
    s._notify()
    assert seen == [] and s.closed and s.refused
    assert "OVSDB connection from 192.0.2.7:40000 refused: a certificate of node hv1" in caplog.text


def test_an_admitted_node_that_says_it_is_another_is_refused_and_keeps_its_name():
    s, seen, _node = session(lambda sess: None if sess.claimed_id == "hv1" else "not hv1")
    s._notify()
    say(s, "hv3")
    s._notify()
    assert seen == [s] and s.closed and s.system_id == "hv1"
