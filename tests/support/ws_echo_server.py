"""A WebSocket echo server (the ``websockets`` library) on a TCP port or a unix socket.

    python -m tests.support.ws_echo_server (--port P | --unix PATH)

Plain HTTP requests (the proxy's readiness probe) get websockets' 426 answer.
"""

import argparse

from websockets.sync.server import serve, unix_serve


def echo(ws):
    for message in ws:
        ws.send(message)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--unix")
    args = ap.parse_args()
    server = unix_serve(echo, args.unix) if args.unix else serve(echo, "127.0.0.1", args.port)
    with server:
        server.serve_forever()


if __name__ == "__main__":
    main()
