"""Import rules of STYLE.md §2.3, checked on the source with ``ast``.

Every ``import`` anywhere in a module counts, lazy ones inside functions too.
To add a rule, append a ``Rule`` to ``RULES``; to list a new level-0 module, add
its glob to ``LEVEL0``.  A known violation in code owned elsewhere goes in
``KNOWN_VIOLATIONS`` (it then runs as a strict xfail until it is fixed).
"""

from __future__ import annotations

import ast
import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cocalcproxy"

#: Level 0 (STYLE §2.3): pure, standard library only.
LEVEL0 = (
    "cocalcproxy/http1/*",
    "cocalcproxy/routing/*",
    "cocalcproxy/limits.py",
    "cocalcproxy/proxy/errors.py",
    "cocalcproxy/supervise/spec.py",
)
#: The composition root: the only modules that may touch the global reactor.  ``options.py`` is
#: the command line's shared half (split out of ``cli.py``): it turns --listen strings into
#: endpoints of the process's reactor at option time, so a typo is a usage error.
COMPOSITION_ROOT = ("cocalcproxy/cli.py", "cocalcproxy/options.py", "cocalcproxy/service.py", "cocalcproxy/roles/*")
FRAMEWORKS = ("twisted", "autobahn", "treq", "psycopg", "zope", "OpenSSL", "service_identity", "prometheus_client")


@dataclass(frozen=True)
class Rule:
    """Modules matching ``applies_to`` (and not ``exempt``) may not import ``forbids``.

    Globs are ``fnmatch`` patterns on the path relative to the repository
    (``*`` crosses ``/``).  ``forbids`` are dotted module prefixes.
    """

    name: str
    forbids: tuple[str, ...]
    applies_to: tuple[str, ...] = ("cocalcproxy/*",)
    exempt: tuple[str, ...] = ()

    def covers(self, relpath: str) -> bool:
        return _matches(relpath, self.applies_to) and not _matches(relpath, self.exempt)

    def violations(self, imported: set[str]) -> list[str]:
        return sorted(name for name in imported if any(_is_within(name, f) for f in self.forbids))


RULES = (
    Rule("level-0 imports no framework", forbids=FRAMEWORKS, applies_to=LEVEL0),
    Rule("http1 does not depend on routing", forbids=("cocalcproxy.routing",), applies_to=("cocalcproxy/http1/*",)),
    Rule(
        "level 0 does not import Twisted-level code of ours",
        forbids=tuple(
            f"cocalcproxy.{m}"
            for m in (
                "net",
                "proxy.front",
                "proxy.back",
                "proxy.factory",
                "service",
                "cli",
                "roles",
                "registry",
                "supervise",
            )
        ),
        applies_to=LEVEL0,
    ),
    Rule("global reactor only in the composition root", forbids=("twisted.internet.reactor",), exempt=COMPOSITION_ROOT),
    Rule(
        "autobahn only in the WebSocket bridge",
        forbids=("autobahn",),
        exempt=("cocalcproxy/bridge*", "cocalcproxy/wsbridge*", "cocalcproxy/*/wsbridge*"),
    ),
    Rule("treq only in supervise/", forbids=("treq",), exempt=("cocalcproxy/supervise/*",)),
    Rule("psycopg only in registry/", forbids=("psycopg", "psycopg2"), exempt=("cocalcproxy/registry/*",)),
)

#: (module, rule name) → why it is known to break the rule (owned by someone else).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def _matches(relpath: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(relpath, g) for g in globs)


def _is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module a source file imports, as absolute dotted names.

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c`` may be a module, such
    as ``twisted.internet.reactor``); relative imports are resolved against
    ``module``.
    """
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _modules() -> list[tuple[str, str, bool]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        dotted = rel[:-3].replace("/", ".")
        is_package = path.name == "__init__.py"
        if is_package:
            dotted = dotted[: -len(".__init__")]
        out.append((rel, dotted, is_package))
    return out


def _cases():
    for rule in RULES:
        for rel, dotted, is_package in _modules():
            if not rule.covers(rel):
                continue
            marks = ()
            known = KNOWN_VIOLATIONS.get((rel, rule.name))
            if known:
                marks = (pytest.mark.xfail(strict=True, reason=known),)
            yield pytest.param(rule, rel, dotted, is_package, id=f"{rule.name}:{rel}", marks=marks)


@pytest.mark.parametrize("rule,relpath,dotted,is_package", list(_cases()))
def test_import_rules(rule: Rule, relpath: str, dotted: str, is_package: bool) -> None:
    imported = imported_names((ROOT / relpath).read_text(encoding="utf-8"), dotted, is_package)
    assert rule.violations(imported) == [], f"{relpath} breaks '{rule.name}'"


def test_level0_imports_only_stdlib_and_level0_modules() -> None:
    """Level 0 is stdlib only; of our own code it may use other level-0 modules and
    the package root (the version string)."""
    level0 = {dotted for rel, dotted, _ in _modules() if _matches(rel, LEVEL0)} | {"cocalcproxy"}
    problems = []
    for rel, dotted, is_package in _modules():
        if not _matches(rel, LEVEL0):
            continue
        for name in imported_names((ROOT / rel).read_text(encoding="utf-8"), dotted, is_package):
            top = name.split(".")[0]
            if top == "cocalcproxy":
                owner = name if name in level0 else name.rpartition(".")[0]
                if owner not in level0:
                    problems.append((rel, name))
            elif top not in sys.stdlib_module_names and top != "__future__":
                problems.append((rel, name))
    assert problems == []


def test_the_walk_sees_the_known_layers() -> None:
    rels = {rel for rel, _, _ in _modules()}
    for expected in (
        "cocalcproxy/http1/reader.py",
        "cocalcproxy/routing/project.py",
        "cocalcproxy/limits.py",
        "cocalcproxy/proxy/errors.py",
        "cocalcproxy/cli.py",
    ):
        assert expected in rels
    covered = {rel for rule in RULES for rel in rels if rule.covers(rel)}
    assert "cocalcproxy/http1/head.py" in covered


# ------------------------------------------------------- the checker can fail


@pytest.mark.parametrize(
    "source,module,rule_name,bad",
    [
        (
            "import twisted.internet.defer\n",
            "cocalcproxy.http1.x",
            "level-0 imports no framework",
            ["twisted.internet.defer"],
        ),
        (
            "def f():\n    from twisted.internet import reactor\n",
            "cocalcproxy.net.x",
            "global reactor only in the composition root",
            ["twisted.internet.reactor"],
        ),
        (
            "import twisted.internet.reactor as r\n",
            "cocalcproxy.net.x",
            "global reactor only in the composition root",
            ["twisted.internet.reactor"],
        ),
        (
            "from twisted.internet import defer, reactor\n",
            "cocalcproxy.proxy.x",
            "global reactor only in the composition root",
            ["twisted.internet.reactor"],
        ),
        (
            "from autobahn.twisted.websocket import WebSocketServerProtocol\n",
            "cocalcproxy.proxy.front",
            "autobahn only in the WebSocket bridge",
            ["autobahn.twisted.websocket", "autobahn.twisted.websocket.WebSocketServerProtocol"],
        ),
        ("import treq\n", "cocalcproxy.net.pool", "treq only in supervise/", ["treq"]),
        ("import psycopg\n", "cocalcproxy.service", "psycopg only in registry/", ["psycopg"]),
        (
            "from ..routing import paths\n",
            "cocalcproxy.http1.head",
            "http1 does not depend on routing",
            ["cocalcproxy.routing", "cocalcproxy.routing.paths"],
        ),
        (
            "from ..net.gate import PauseGate\n",
            "cocalcproxy.routing.x",
            "level 0 does not import Twisted-level code of ours",
            ["cocalcproxy.net.gate", "cocalcproxy.net.gate.PauseGate"],
        ),
    ],
)
def test_checker_catches_violations(source: str, module: str, rule_name: str, bad: list[str]) -> None:
    rule = next(r for r in RULES if r.name == rule_name)
    assert rule.violations(imported_names(source, module)) == bad


def test_checker_allows_what_the_rules_allow() -> None:
    defer_only = imported_names(
        "from twisted.internet import defer\nimport twisted.internet.reactorish\n", "cocalcproxy.net.x"
    )
    reactor_rule = next(r for r in RULES if r.name == "global reactor only in the composition root")
    assert reactor_rule.violations(defer_only) == []
    assert not reactor_rule.covers("cocalcproxy/cli.py") and not reactor_rule.covers("cocalcproxy/roles/hub.py")
    autobahn_rule = next(r for r in RULES if r.name.startswith("autobahn"))
    for rel in (
        "cocalcproxy/wsbridge.py",
        "cocalcproxy/bridge/protocol.py",
        "cocalcproxy/bridge_targets.py",
        "cocalcproxy/proxy/wsbridge_glue.py",
    ):
        assert not autobahn_rule.covers(rel), rel
    assert autobahn_rule.covers("cocalcproxy/proxy/front.py")


def test_relative_imports_resolve() -> None:
    assert imported_names("from . import errors\n", "cocalcproxy.http1", is_package=True) == {
        "cocalcproxy.http1",
        "cocalcproxy.http1.errors",
    }
    assert imported_names("from .. import __version__\n", "cocalcproxy.proxy.errors") == {
        "cocalcproxy",
        "cocalcproxy.__version__",
    }
    assert imported_names("from .body import X\n", "cocalcproxy.http1.reader") == {
        "cocalcproxy.http1.body",
        "cocalcproxy.http1.body.X",
    }


def test_plugin_imports_nothing_of_ours() -> None:
    """STYLE §2.3: the twistd plugin names ``cocalcproxy.cli`` as a string, so
    ``twistd --help`` loads none of our code."""
    plugin = ROOT / "twisted" / "plugins" / "cocalcproxy_plugin.py"
    imported = imported_names(plugin.read_text(encoding="utf-8"), "twisted.plugins.cocalcproxy_plugin")
    assert [name for name in imported if _is_within(name, "cocalcproxy")] == []
    assert not (ROOT / "twisted" / "__init__.py").exists() and not (ROOT / "twisted" / "plugins" / "__init__.py").exists()
