"""Command line: ``twistd -n cocalcproxy <role> [options]`` (SPEC §1).

The twistd plugin names this module; ``Options`` and ``makeService`` are what
twistd calls.  Roles are modules in ``cocalcproxy.roles``; their options are
subcommands here.
"""

from __future__ import annotations

from twisted.python import usage

from . import __version__, roles


def _subcommands():
    out = []
    for name in roles.ROLE_MODULES:
        module = roles.load(name)
        out.append([module.NAME, None, module.Options, module.DESCRIPTION])
    return out


class Options(usage.Options):
    synopsis = "<role> [options]"
    longdesc = (
        "cocalcproxy: streaming HTTP/WebSocket proxy for multi-user notebook platforms. "
        "Run 'twistd -n cocalcproxy <role> --help' for the options of a role."
    )
    subCommands = _subcommands()

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"cocalcproxy {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("choose a role: " + ", ".join(name for name, *_ in self.subCommands))


def makeService(options: Options):
    from twisted.internet import reactor

    return roles.load(options.subCommand).make_service(options.subOptions, reactor)
