#!/usr/bin/env python3
"""files.py - a static file and git origin for ferry's real-clients suite.

    files.py ROOT [BIND]

Serves the directory ROOT over HTTP/1.1 (keep-alive, one thread per connection) on a port
chosen by the kernel at BIND (default 127.0.0.1; "::1" for IPv6), and prints the port on
stdout once it listens. Python standard library only (http.server's own file handler has no
Range support and speaks HTTP/1.0). Routes:

  /headers, ?headers 200, the request head as received (request line and fields); any
                     path with the query "headers" too
  /git/REPO/...      git's smart HTTP protocol: `git http-backend` run as a CGI program with
                     GIT_PROJECT_ROOT=ROOT (push allowed: http.receivepack is set); request
                     bodies with Content-Length or chunked
  /echo (POST, PUT)  200, the request body (Content-Length or chunked)
  anything else      a file under ROOT (GET, HEAD): Last-Modified, If-Modified-Since (304),
                     one byte range "bytes=A-B", "A-" or "-N" (206 with Content-Range, 416
                     when it starts past the end); a directory gives its index.html
"""
import email.utils
import http.server
import os
import socket
import socketserver
import subprocess
import sys
import urllib.parse

ROOT = "."


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ferry-test-files-py"

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, ctype="text/plain", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
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
        path = u.path
        if path == "/headers" or u.query == "headers":
            head = self.requestline + "\r\n" + str(self.headers).replace("\n", "\r\n")
            self.send_body(200, head.encode())
        elif path.startswith("/git/"):
            self.git(b"")
        else:
            self.file(path)

    do_HEAD = do_GET

    def do_POST(self):
        body = self.read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/git/"):
            self.git(body)
        elif path == "/echo":
            self.send_body(200, body, "application/octet-stream")
        else:
            self.send_body(405, b"method not allowed\n")

    do_PUT = do_POST

    def file(self, path):
        rel = os.path.normpath(urllib.parse.unquote(path)).lstrip("/")
        if rel.startswith(".."):
            self.send_body(403, b"outside the root\n")
            return
        full = os.path.join(ROOT, rel)
        if os.path.isdir(full):
            full = os.path.join(full, "index.html")
        if not os.path.isfile(full):
            self.send_body(404, b"not found\n")
            return
        st = os.stat(full)
        mtime = int(st.st_mtime)
        lm = email.utils.formatdate(mtime, usegmt=True)
        ctype = "text/html" if full.endswith(".html") else "application/octet-stream"
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                if int(email.utils.parsedate_to_datetime(ims).timestamp()) >= mtime:
                    self.send_response(304)
                    self.send_header("Last-Modified", lm)
                    self.end_headers()
                    return
            except (TypeError, ValueError):
                pass
        size = st.st_size
        start, end, code = 0, size - 1, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and "," not in rng:
            a, _, b = rng[6:].strip().partition("-")
            try:
                if a == "":
                    start, end = max(0, size - int(b)), size - 1
                else:
                    start, end = int(a), min(int(b), size - 1) if b else size - 1
                code = 206
            except ValueError:
                code = 200
            if code == 206 and start >= size:
                self.send_body(416, b"", extra=(("Content-Range", "bytes */%d" % size),))
                return
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", lm)
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(full, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                block = f.read(min(left, 1 << 16))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)

    def git(self, body):
        """git http-backend as a CGI program; its answer is relayed with its length."""
        u = urllib.parse.urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            # the repositories are the test's own; the CGI may run as another user
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
            "GIT_CONFIG_KEY_1": "http.receivepack",
            "GIT_CONFIG_VALUE_1": "true",
            "HOME": ROOT,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(u.path[len("/git"):]),
            "QUERY_STRING": u.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "test",
            "REMOTE_ADDR": self.client_address[0],
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for name in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(name):
                env["HTTP_" + name.upper().replace("-", "_")] = self.headers[name]
        p = subprocess.run(["git", "http-backend"], input=body, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        head, _, out = p.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, out = p.stdout.partition(b"\n\n")
        code, fields = 200, []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                code = int(v.split()[0])
            elif k:
                fields.append((k, v.strip()))
        self.send_response(code)
        for k, v in fields:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    global ROOT
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: files.py ROOT [BIND]\n")
        return 2
    ROOT = os.path.abspath(sys.argv[1])
    bind = sys.argv[2] if len(sys.argv) == 3 else "127.0.0.1"
    srv = (Server6 if ":" in bind else Server)((bind, 0), Handler)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
