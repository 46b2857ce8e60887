"""Supervised server processes (SPEC §4) — processes only, no HTTP.

spec.py (options → ``ServerSpec``, templates), process.py (one supervised
child: start on demand, readiness, TERM → KILL), readiness.py (is it answering
yet? the only treq importer), supervisor.py (all of them, as a service).
The project role (``roles/project``) routes requests to them.
"""
