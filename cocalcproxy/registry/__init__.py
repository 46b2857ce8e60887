"""Lookups behind small interfaces: where a request may go.

``tokens`` (the bridge's ``--token-file``) now; the host role's SQLite
registry, the hub's SQL stores and their caches live here too.
"""
