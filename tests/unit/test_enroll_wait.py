"""A node that boots before dvn waits for dvn's API (`dvn join --token`,
ovsdb/enroll.py's fetch_ca_waiting), but only while nobody answers: an
answer that is not dvn's ends the wait at once. Real sockets on the
loopback; the lab (tests/lab/test_cloudinit_lab.py) starts dvn under it."""

import socket
import threading
import time

import pytest

from ovsdb import enroll

PIN = "sha256:" + "0" * 64


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_waits_while_nothing_listens_says_so_once_and_then_gives_up():
    said = []
    url = "https://127.0.0.1:%d" % _free_port()
    start = time.monotonic()
    with pytest.raises(enroll.Unreachable) as exc:
        enroll.fetch_ca_waiting(url, PIN, 1.5, said.append, interval=0.1)
    assert time.monotonic() - start >= 1.4          # it did wait, tried again and again
    assert len(said) == 1 and "cannot reach dvn's API" in said[0] and "waiting up to 2 s" in said[0], said
    assert "waited 2 s" in str(exc.value)


def test_without_a_wait_an_unreachable_api_fails_at_once_and_says_nothing_of_waiting():
    said = []
    with pytest.raises(enroll.Unreachable):
        enroll.fetch_ca_waiting("https://127.0.0.1:%d" % _free_port(), PIN, 0, said.append)
    assert said == []


def test_an_answer_that_is_not_dvns_ends_the_wait_at_once():
    """Something answers on the port, in plain HTTP: not unreachable, so no
    waiting for a dvn that may never come there."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def answer():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    threading.Thread(target=answer, daemon=True).start()
    said = []
    try:
        with pytest.raises(enroll.EnrollError) as exc:
            enroll.fetch_ca_waiting("https://127.0.0.1:%d" % srv.getsockname()[1], PIN, 30, said.append)
    finally:
        srv.close()
    assert not isinstance(exc.value, enroll.Unreachable) and said == [], (exc.value, said)


def test_a_malformed_pin_is_refused_before_any_wait():
    said = []
    with pytest.raises(enroll.EnrollError) as exc:
        enroll.fetch_ca_waiting("https://127.0.0.1:%d" % _free_port(), "sha256:abc", 30, said.append)
    assert "--ca-hash" in str(exc.value) and said == []
