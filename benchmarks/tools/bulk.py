"""A bulk TCP sender and receiver for the benchmarks' lab VMs (system python3, stdlib only).

serve PORT                       every connection: read to the end, then answer one JSON line
                                 {"bytes": n, "seconds": s} (s from the first byte to the end), close
send HOST PORT MBYTES SECONDS    one connection: send until MBYTES MiB or SECONDS s, whichever first,
                                 close the sending side, read the receiver's answer; print JSON
                                 {"sent": n, "received": n, "seconds": s, "receiver_seconds": s}
                                 (seconds: from connect to the receiver's answer, so what was still
                                 in flight when sending stopped is counted)
"""
import json
import socket
import sys
import threading
import time

BLOCK = b"\xa5" * (256 << 10)


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(16)

    def one(c):
        c.settimeout(60)
        n, first = 0, None
        try:
            while True:
                chunk = c.recv(1 << 18)
                if not chunk:
                    break
                if first is None:
                    first = time.monotonic()
                n += len(chunk)
            seconds = time.monotonic() - first if first is not None else 0.0
            c.sendall((json.dumps({"bytes": n, "seconds": seconds}) + "\n").encode())
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def send(host, port, mbytes, seconds):
    limit, budget = int(float(mbytes) * (1 << 20)), float(seconds)
    started = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=30)
    sent = 0
    while sent < limit and time.monotonic() - started < budget:
        s.sendall(BLOCK[:min(len(BLOCK), limit - sent)])
        sent += min(len(BLOCK), limit - sent)
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    elapsed = time.monotonic() - started
    s.close()
    got = json.loads(answer) if answer else {"bytes": 0, "seconds": 0.0}
    print(json.dumps({"sent": sent, "received": got["bytes"], "seconds": elapsed,
                      "receiver_seconds": got["seconds"]}))


if __name__ == "__main__":
    {"serve": serve, "send": send}[sys.argv[1]](*sys.argv[2:])
