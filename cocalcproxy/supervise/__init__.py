"""Supervised server processes for the ``project`` role (SPEC §4).

spec.py (options → ``ServerSpec``), process.py (one supervised child),
readiness.py (is it answering yet?), discovery.py (entry points),
api.py / launcher.py (management API and page), activity.py (--activity-file).
"""
