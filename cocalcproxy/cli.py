"""Command line: ``twistd -n cocalcproxy <role> [options]`` (SPEC §1).

The twistd plugin names this module; ``Options`` and ``makeService`` are what
twistd calls.  Roles come from ``roles.ROLES``; their options are subcommands
here.  A usage error is one line on stderr naming the option (twistd itself
would print the whole help first), and exit status 2.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from . import __version__, roles


def _subcommands():
    out = []
    for name in roles.ROLES:
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

    def parseOptions(self, options=None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            role = self.subCommand or "<role>"
            sys.stderr.write(f"cocalcproxy {role}: {e} (see: twistd -n cocalcproxy {role} --help)\n")
            raise SystemExit(2) from None

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("choose a role: " + ", ".join(name for name, *_ in self.subCommands))


def makeService(options: Options):
    from twisted.internet import reactor

    return roles.load(options.subCommand).make_service(options.subOptions.config(), reactor)
