"""Every size and time default in one place, with the SPEC section it comes from."""

from __future__ import annotations

#: SPEC §3: a request line over 8 KiB is answered 414 (checked before the head limit).
MAX_REQUEST_LINE = 8192
#: SPEC §2 ``--max-header-bytes``: request line + headers larger than this → 431.
MAX_HEADER_BYTES = 65536
#: SPEC §3: a chunk-size line (with extensions) over 4 KiB → 400.
MAX_CHUNK_LINE = 4096
#: Response heads from backends larger than this → 502 (not in the SPEC; generous).
MAX_RESPONSE_HEAD = 65536

CONNECT_TIMEOUT = 10.0  # SPEC §2 --connect-timeout
HEADER_TIMEOUT = 30.0  # SPEC §2 --header-timeout
IDLE_TIMEOUT = 300.0  # SPEC §2 --idle-timeout
MAX_CONNECTIONS = 10000  # SPEC §2 --max-connections
DRAIN_TIMEOUT = 10.0  # SPEC §2: SIGTERM lets in-flight requests finish for this long

#: Idle keep-alive connections kept per backend address, and how long.
POOL_MAX_IDLE_PER_TARGET = 64
POOL_IDLE_TIMEOUT = 60.0
