"""A small configurable HTTP server that supervised-server tests start as a real process.

    python -m tests.support.toy_server [--port P | --unix PATH] [--delay S] [--exit-after N]
                                       [--record FILE] [--raw]

Every GET answers JSON: the path it saw, its headers, its pid and selected
environment variables (``TOY_*``).  ``--record`` appends the pid to FILE at
start (to count starts); ``--delay`` waits before listening (slow start);
``--exit-after N`` exits cleanly after N requests; ``--raw`` is a raw TCP echo
server (for raw_socket_proxy).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        pad = 0
        if "pad=" in self.path:
            pad = int(self.path.split("pad=", 1)[1].split("&")[0])
        body = json.dumps({
            "pad": "x" * pad,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "pid": os.getpid(),
            "env": {k: v for k, v in os.environ.items() if k.startswith("TOY_")},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.server.count += 1
        if self.server.exit_after and self.server.count >= self.server.exit_after:
            self.wfile.flush()
            self.close_connection = True
            threading.Thread(target=self.server.shutdown).start()

    def log_message(self, fmt, *args):
        sys.stderr.write("toy: " + (fmt % args) + "\n")
        sys.stderr.flush()


class TcpServer(socketserver.ThreadingMixIn, HTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class Tcp6Server(TcpServer):
    address_family = socket.AF_INET6


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)

    def server_bind(self):
        socketserver.UnixStreamServer.server_bind(self)
        self.server_name, self.server_port = "unix", 0


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--unix")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--exit-after", type=int, default=0)
    ap.add_argument("--record")
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--ipv6", action="store_true", help="listen on ::1 only")
    args = ap.parse_args()
    if args.record:
        with open(args.record, "a") as f:
            f.write(f"{os.getpid()}\n")
    print(f"toy server pid {os.getpid()} starting", flush=True)
    if args.delay:
        time.sleep(args.delay)
    if args.raw:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", args.port), EchoHandler)
    elif args.unix:
        server = UnixServer(args.unix, Handler)
    elif args.ipv6:
        server = Tcp6Server(("::1", args.port), Handler)
    else:
        server = TcpServer(("127.0.0.1", args.port), Handler)
    server.count = 0
    server.exit_after = args.exit_after
    server.serve_forever(poll_interval=0.05)
    print("toy server exiting", flush=True)


if __name__ == "__main__":
    main()
