"""cocalcproxy: a streaming HTTP/WebSocket proxy for multi-user notebook platforms."""

__version__ = "0.1.0"
