"""Servers run inside lab VMs (system python3, stdlib only).

tcp NAME PORT[-PORT2]  every connection gets "NAME PEER-IP LOCAL-PORT\\n", then closed
udp NAME PORT          every datagram is answered with "NAME PEER-IP"
bulk PORT MBYTES       every connection gets MBYTES MiB of a fixed pattern, paced over ~3 s
"""
import selectors
import socket
import sys
import threading
import time


def tcp(name, ports):
    lo, _, hi = ports.partition("-")
    sel = selectors.DefaultSelector()
    for port in range(int(lo), int(hi or lo) + 1):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(256)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            try:
                c, addr = key.fileobj.accept()
            except BlockingIOError:
                continue
            c.setblocking(True)
            c.sendall(("%s %s %d\n" % (name, addr[0], key.fileobj.getsockname()[1])).encode())
            c.close()


def udp(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(port)))
    while True:
        _data, addr = s.recvfrom(2048)
        s.sendto(("%s %s" % (name, addr[0])).encode(), addr)


def pattern(mbytes):
    block = bytes(range(256)) * 4096  # 1 MiB
    return [block] * int(mbytes)


def bulk(port, mbytes):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(16)
    blocks = pattern(mbytes)

    def serve(c):
        pause = 3.0 / len(blocks)
        for block in blocks:
            c.sendall(block)
            time.sleep(pause)
        c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    {"tcp": tcp, "udp": udp, "bulk": bulk}[sys.argv[1]](*sys.argv[2:])
