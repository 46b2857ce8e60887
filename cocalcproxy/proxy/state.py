"""The states of a client connection (``HttpFront``); the diagram is in ``front.py``
and docs/architecture.md."""

from __future__ import annotations

import enum


class State(enum.Enum):
    WAIT_HEAD = "waiting for a request head (or idle between requests)"
    ROUTING = "the router is deciding (a Deferred); the client is paused"
    CONNECTING = "connecting to the backend; the client is paused"
    FORWARDING = "request and response flowing between client and backend"
    TUNNEL = "after a 101: a Relay splices the two connections"
    DELEGATED = "another protocol (the WebSocket bridge, a file) owns the connection"
    LINGERING = "answer sent and FIN out; reading and dropping what the client still sends"
    CLOSING = "closing or closed; further input is ignored"


# Module-level names: the per-read dispatch compares against these.
WAIT_HEAD, ROUTING, CONNECTING, FORWARDING, TUNNEL, DELEGATED, LINGERING, CLOSING = State
NEVER = float("inf")
