#!/usr/bin/env python3
"""Download one object from the origin, straight or through a CONNECT tunnel, and print the
transfer rate.

usage: download.py ORIGIN_PORT PATH [PROXY_PORT]

With PROXY_PORT, opens a CONNECT tunnel to 127.0.0.1:ORIGIN_PORT through the proxy on
127.0.0.1:PROXY_PORT first; the GET then travels inside it. Prints one line

    BYTES SECONDS BYTES_PER_SECOND

timed from the connect to the last byte. Exits non-zero on any failure or when the body is
short. Reads into one 1 MiB buffer, so the client costs little next to what it measures.
"""
import socket
import sys
import time


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    op, path = int(sys.argv[1]), sys.argv[2].lstrip("/")
    pp = int(sys.argv[3]) if len(sys.argv) == 4 else 0
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", pp or op), timeout=30)
    if pp:
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (op, op))
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                sys.exit("the proxy closed the connection")
            head += d
        if b" 200" not in head.split(b"\r\n", 1)[0]:
            sys.exit("CONNECT refused: %r" % head[:100])
    s.sendall(b"GET /%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (path.encode(), op))
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    n = 0
    while True:
        k = s.recv_into(mv)
        if k == 0:
            break
        if n == 0:
            head, _, _ = bytes(mv[:min(k, 4096)]).partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                sys.exit("origin answered: %r" % head[:100])
            length = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")]
            want = (length[0] if length else 0) + len(head) + 4
        n += k
    dt = time.monotonic() - t0
    if n < want:
        sys.exit("short body: %d of %d bytes" % (n, want))
    print("%d %.3f %.0f" % (n, dt, n / dt))


if __name__ == "__main__":
    main()
