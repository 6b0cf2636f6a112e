"""Clients run inside lab VMs (system python3, stdlib only); print JSON.

tcp HOST PORT COUNT SPORT_BASE   COUNT connections, source ports SPORT_BASE..; each: the line read,
                                 "refused", "timeout" or "error: ..."
udp HOST PORT                    one datagram: the answer, "refused" or "timeout"
stream HOST PORT                 read to the end: {"bytes": n, "sha256": hex, "seconds": s}
"""
import hashlib
import json
import socket
import sys
import time


def one_tcp(host, port, sport):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(3)
    try:
        if sport:
            s.bind(("0.0.0.0", sport))
        s.connect((host, port))
        data = b""
        while b"\n" not in data and len(data) < 4096:  # the first line is the answer
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\n", 1)[0].decode("latin-1").strip()
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return "error: %s" % exc
    finally:
        s.close()


def tcp(host, port, count, sport_base):
    out = [one_tcp(host, int(port), int(sport_base) + i if int(sport_base) else 0) for i in range(int(count))]
    print(json.dumps(out))


def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((host, int(port)))
    try:
        s.send(b"hello")
        print(json.dumps(s.recv(200).decode()))
    except ConnectionRefusedError:
        print(json.dumps("refused"))
    except socket.timeout:
        print(json.dumps("timeout"))


def stream(host, port):
    started = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=30)
    h, n = hashlib.sha256(), 0
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    {"tcp": tcp, "udp": udp, "stream": stream}[sys.argv[1]](*sys.argv[2:])
