#!/usr/bin/env python3
"""origin.py - the HTTP + HTTPS + WebSocket origin of ferry's real-clients suite.

    origin.py CERT KEY

Listens on two loopback ports chosen by the kernel, plain HTTP and TLS (the self-signed
certificate the test made with openssl), serves the same routes on both, and prints
"HTTPPORT HTTPSPORT" on stdout once both listen. One thread per connection, HTTP/1.1 with
keep-alive. Routes:

  /len/N              200, Content-Length N, byte i = 'a' + i % 26 (as tests/origin.c)
  /rand/N?seed=S      200, Content-Length N, random.Random(S).randbytes() in 1 MiB blocks:
                      the client regenerates the stream to check its sha256
  /echo  (POST, PUT)  200, the request body (Content-Length or chunked)
  /page?n=N           an HTML page with N images (/res/I.gif) whose script writes
                      "loaded=L failed=F" into <p id="result"> once every image settled
  /wspage?url=U&key=K a page whose script opens WebSocket U, sends a message and writes
                      "ws=echoed" (or what went wrong) into <p id="result">
  /res/I.gif          a 1x1 GIF; counted
  /ws                 WebSocket (RFC 6455) echo of text and binary messages
  /hold?key=K         answers once /release?key=K was asked (60 s at most): a fetch the
                      WebSocket page keeps pending until its result is in the DOM
  /stats              "res=R via=V": images served, and how many of those requests carried
                      a Via field (ferry adds one; a request that bypassed ferry has none)
Anything else: 404.
"""
import base64
import hashlib
import http.server
import random
import socket
import socketserver
import ssl
import struct
import sys
import threading
import urllib.parse

GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BLOCK = 1 << 20

lock = threading.Lock()
stats = {"res": 0, "via": 0}
holds = {}  # key -> threading.Event, for /hold and /release


def rand_stream(n, seed):
    """The /rand body, block by block (fetch.py regenerates it the same way)."""
    r = random.Random(seed)
    while n > 0:
        k = min(n, BLOCK)
        yield r.randbytes(k)
        n -= k


PAGE_JS = """
var want = %d, loaded = 0, failed = 0;
function settle() {
  if (loaded + failed == want)
    document.getElementById('result').textContent = 'loaded=' + loaded + ' failed=' + failed;
}
for (var i = 0; i < want; i++) {
  var img = new Image();
  img.onload = function () { loaded++; settle(); };
  img.onerror = function () { failed++; settle(); };
  img.src = '/res/' + i + '.gif';
  document.getElementById('imgs').appendChild(img);
}
"""

# The pending /hold fetch keeps Chromium's virtual time (--virtual-time-budget) from running
# out while the WebSocket is busy, which it does not count as network activity: the page
# releases it once the result is in the DOM.
WS_JS = """
var key = %s;
fetch('/hold?key=' + key);
function done(text) {
  document.getElementById('result').textContent = text;
  fetch('/release?key=' + key);
}
var msg = 'ferry-ws-echo-' + 'x'.repeat(%d);
var ws = new WebSocket(%s);
ws.onopen = function () { ws.send(msg); };
ws.onmessage = function (e) {
  done('ws=' + (e.data == msg ? 'echoed' : 'wrong:' + e.data.length));
  ws.close();
};
ws.onerror = function () { done('ws=error'); };
"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ferry-test-origin-py"

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(16)
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        parts = u.path.split("/")
        if len(parts) == 3 and parts[1] in ("len", "rand") and parts[2].isdigit():
            n = int(parts[2])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            if parts[1] == "rand":
                for block in rand_stream(n, int(q.get("seed", ["1"])[0])):
                    self.wfile.write(block)
            else:
                pat = bytes(ord("a") + i % 26 for i in range(26 * 4000))
                while n > 0:
                    k = min(n, len(pat))
                    self.wfile.write(pat[:k])
                    n -= k
        elif u.path == "/page":
            n = int(q.get("n", ["100"])[0])
            html = ("<!DOCTYPE html><html><head><title>ferry</title></head><body>"
                    "<p id=\"result\">pending</p><div id=\"imgs\"></div><script>%s</script>"
                    "</body></html>") % (PAGE_JS % n)
            self.send_body(200, html.encode(), "text/html")
        elif u.path == "/wspage":
            url = q.get("url", [""])[0]
            key = q.get("key", ["1"])[0]
            html = ("<!DOCTYPE html><html><body><p id=\"result\">pending</p>"
                    "<script>%s</script></body></html>") % (WS_JS % (repr(key), 200, repr(url)))
            self.send_body(200, html.encode(), "text/html")
        elif u.path.startswith("/res/") and u.path.endswith(".gif"):
            with lock:
                stats["res"] += 1
                if self.headers.get("Via"):
                    stats["via"] += 1
            self.send_body(200, GIF, "image/gif")
        elif u.path == "/stats":
            with lock:
                body = "res=%d via=%d" % (stats["res"], stats["via"])
            self.send_body(200, body.encode())
        elif u.path in ("/hold", "/release"):
            key = q.get("key", [""])[0]
            with lock:
                ev = holds.setdefault(key, threading.Event())
            if u.path == "/release":
                ev.set()
            self.send_body(200, b"released" if ev.wait(60) else b"timeout")
        elif u.path == "/ws":
            self.websocket()
        else:
            self.send_body(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        body = self.read_body()
        if urllib.parse.urlsplit(self.path).path == "/echo":
            self.send_body(200, body, "application/octet-stream")
        else:
            self.send_body(404, b"not found\n")

    do_PUT = do_POST

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or "websocket" not in self.headers.get("Upgrade", "").lower():
            self.send_body(426, b"upgrade required\n")
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        rf, wf = self.rfile, self.wfile
        while True:
            head = rf.read(2)
            if len(head) < 2:
                return
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", rf.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", rf.read(8))[0]
            mask = rf.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(rf.read(n)))
            if op == 8:  # close: answer it and stop
                wf.write(b"\x88" + bytes([len(data[:2])]) + data[:2])
                wf.flush()
                return
            if op == 9:  # ping
                op = 10
            elif op not in (1, 2):
                continue
            if len(data) < 126:
                hdr = bytes([0x80 | op, len(data)])
            elif len(data) < 65536:
                hdr = bytes([0x80 | op, 126]) + struct.pack("!H", len(data))
            else:
                hdr = bytes([0x80 | op, 127]) + struct.pack("!Q", len(data))
            wf.write(hdr + data)
            wf.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256
    tls = None

    def finish_request(self, request, client_address):
        # the TLS handshake runs in the connection's thread, not in the accepting one
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: origin.py CERT KEY\n")
        return 2
    plain = Server(("127.0.0.1", 0), Handler)
    tls = Server(("127.0.0.1", 0), Handler)
    tls.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.tls.load_cert_chain(sys.argv[1], sys.argv[2])
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    sys.stdout.write("%d %d\n" % (plain.server_address[1], tls.server_address[1]))
    sys.stdout.flush()
    plain.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
