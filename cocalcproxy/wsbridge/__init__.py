"""The WebSocket ↔ raw TCP bridge (SPEC §7): ``protocol`` is the only Autobahn
importer; ``frames`` builds the frames we write ourselves."""

from .protocol import MAX_MESSAGE, BridgeFactory, BridgeProtocol

__all__ = ["BridgeFactory", "BridgeProtocol", "MAX_MESSAGE"]
