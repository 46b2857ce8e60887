"""twistd plugin: ``twistd -n cocalcproxy <role> [options]``.

Names the application module as a string, so ``twistd --help`` imports nothing of ours.
"""

from twisted.application.service import ServiceMaker

cocalcproxy = ServiceMaker(
    "cocalcproxy",
    "cocalcproxy.cli",
    "Streaming HTTP/WebSocket proxy for multi-user notebook platforms (run with --help for its roles).",
    "cocalcproxy",
)
