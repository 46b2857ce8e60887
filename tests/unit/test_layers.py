"""Import rules (STYLE.md §2.3, docs/architecture.md), checked on the source with ``ast``.

Every ``import`` anywhere in a module counts, lazy ones inside functions too:
the layers (level 0 is pure), which package may import which, one importer per
framework (autobahn, treq, psycopg), and no import cycles at all.  To add a
rule, append a ``Rule`` to ``RULES``; to list a new level-0 module, add its glob
to ``LEVEL0``.  A known violation in code owned elsewhere goes in
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
    "cocalcproxy/auth/*",
    "cocalcproxy/limits.py",
    "cocalcproxy/proxy/pages.py",
    "cocalcproxy/proxy/state.py",
    "cocalcproxy/proxy/exchange.py",
    "cocalcproxy/supervise/spec.py",
    "cocalcproxy/wsbridge/frames.py",
)
#: The composition root: the only module that may touch the global reactor.
COMPOSITION_ROOT = ("cocalcproxy/cli.py",)
FRAMEWORKS = ("twisted", "autobahn", "treq", "psycopg", "zope", "OpenSSL", "service_identity", "prometheus_client")


def _ours(*packages: str) -> tuple[str, ...]:
    return tuple(f"cocalcproxy.{p}" for p in packages)


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
        forbids=_ours("net", "proxy.front", "proxy.forwarding", "proxy.back", "proxy.factory", "proxy.tracker",
                      "cli", "roles.common", "roles.services", "registry", "supervise.process",
                      "supervise.readiness", "supervise.supervisor", "wsbridge.protocol"),
        applies_to=LEVEL0,
    ),
    Rule("net imports no HTTP, role or process code", forbids=_ours("proxy", "roles", "supervise", "wsbridge",
                                                                   "registry", "cli"),
         applies_to=("cocalcproxy/net/*",)),
    Rule("registry imports no connection or role code", forbids=_ours("net", "proxy", "roles", "supervise", "wsbridge",
                                                                     "cli"),
         applies_to=("cocalcproxy/registry/*",)),
    Rule("supervise never imports proxy, roles or wsbridge", forbids=_ours("proxy", "roles", "wsbridge", "cli"),
         applies_to=("cocalcproxy/supervise/*",)),
    Rule("proxy never imports roles", forbids=_ours("roles", "cli", "wsbridge", "supervise"),
         applies_to=("cocalcproxy/proxy/*",)),
    Rule("wsbridge imports no HTTP front or role code", forbids=_ours("proxy", "roles", "supervise", "cli"),
         applies_to=("cocalcproxy/wsbridge/*",)),
    Rule("roles never import the command line", forbids=_ours("cli", "admin"), applies_to=("cocalcproxy/roles/*",)),
    Rule("nothing imports the admin tool", forbids=_ours("admin"), exempt=("cocalcproxy/admin.py",)),
    Rule("global reactor only in the composition root", forbids=("twisted.internet.reactor",), exempt=COMPOSITION_ROOT),
)

#: A third-party framework and the one module allowed to import it.
SINGLE_IMPORTERS = {
    "autobahn": "cocalcproxy/wsbridge/protocol.py",
    "treq": "cocalcproxy/supervise/readiness.py",
    "psycopg": "cocalcproxy/registry/database.py",
}

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
        "cocalcproxy/proxy/pages.py",
        "cocalcproxy/net/relay.py",
        "cocalcproxy/net/connect.py",
        "cocalcproxy/wsbridge/protocol.py",
        "cocalcproxy/roles/project/router.py",
        "cocalcproxy/cli.py",
    ):
        assert expected in rels
    covered = {rel for rule in RULES for rel in rels if rule.covers(rel)}
    assert "cocalcproxy/http1/head.py" in covered


# ------------------------------------------------- one importer per framework


def importers_of(package: str) -> list[str]:
    return sorted(
        rel for rel, dotted, is_package in _modules()
        if any(_is_within(n, package) for n in imported_names((ROOT / rel).read_text(encoding="utf-8"), dotted, is_package))
    )


@pytest.mark.parametrize("package", sorted(SINGLE_IMPORTERS))
def test_each_framework_has_one_importer(package: str) -> None:
    expected = SINGLE_IMPORTERS[package]
    assert importers_of(package) == ([expected] if expected else [])


# ----------------------------------------------------------- no import cycles


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (lazy imports inside functions too)."""
    modules = {dotted: (rel, is_package) for rel, dotted, is_package in _modules()}
    graph: dict[str, set[str]] = {}
    for dotted, (rel, is_package) in modules.items():
        targets = set()
        for name in imported_names((ROOT / rel).read_text(encoding="utf-8"), dotted, is_package):
            while name and name not in modules:  # ``from a.b import C``: C is no module, a.b is
                name = name.rpartition(".")[0]
            if name and name != dotted:
                targets.add(name)
        graph[dotted] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order), or None.  A package's own
    ``__init__`` importing its submodules is not a cycle of the submodules'
    making, so edges from a submodule to its package's ``__init__`` are left out."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if node.startswith(nxt + "."):
                continue  # submodule → its own package
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if colour.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles_lazy_imports_included() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert find_cycle({"p": {"p.x"}, "p.x": {"p"}}) is None  # a package and its own submodule


# ------------------------------------------------------- the checker can fail


@pytest.mark.parametrize(
    "source,module,rule_name,bad",
    [
        ("import twisted.internet.defer\n", "cocalcproxy.http1.x", "level-0 imports no framework",
         ["twisted.internet.defer"]),
        ("def f():\n    from twisted.internet import reactor\n", "cocalcproxy.net.x",
         "global reactor only in the composition root", ["twisted.internet.reactor"]),
        ("import twisted.internet.reactor as r\n", "cocalcproxy.net.x",
         "global reactor only in the composition root", ["twisted.internet.reactor"]),
        ("from twisted.internet import defer, reactor\n", "cocalcproxy.roles.x",
         "global reactor only in the composition root", ["twisted.internet.reactor"]),
        ("from ..routing import paths\n", "cocalcproxy.http1.head", "http1 does not depend on routing",
         ["cocalcproxy.routing", "cocalcproxy.routing.paths"]),
        ("from ..net.gate import PauseGate\n", "cocalcproxy.routing.x",
         "level 0 does not import Twisted-level code of ours", ["cocalcproxy.net.gate", "cocalcproxy.net.gate.PauseGate"]),
        ("def f():\n    from ..proxy import front\n", "cocalcproxy.supervise.x",
         "supervise never imports proxy, roles or wsbridge", ["cocalcproxy.proxy", "cocalcproxy.proxy.front"]),
        ("from ..roles.project import named\n", "cocalcproxy.proxy.x", "proxy never imports roles",
         ["cocalcproxy.roles.project", "cocalcproxy.roles.project.named"]),
        ("from ..proxy.pages import reason\n", "cocalcproxy.net.x", "net imports no HTTP, role or process code",
         ["cocalcproxy.proxy.pages", "cocalcproxy.proxy.pages.reason"]),
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
    assert not reactor_rule.covers("cocalcproxy/cli.py") and reactor_rule.covers("cocalcproxy/roles/hub/service.py")


def test_relative_imports_resolve() -> None:
    assert imported_names("from . import errors\n", "cocalcproxy.http1", is_package=True) == {
        "cocalcproxy.http1",
        "cocalcproxy.http1.errors",
    }
    assert imported_names("from .. import __version__\n", "cocalcproxy.proxy.pages") == {
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
