"""Who may use a project's web servers through the hub (SPEC §6): a pure decision
over what the database said.

Allowed: the project's owner or a collaborator, or an admin (``admin`` in the
account's groups).  Refused: an unknown or expired credential (401); a banned
account, a viewer, a non-member, or a project-scoped API key used for another
project (403); a project the database does not know (404).
"""

from __future__ import annotations

from dataclasses import dataclass

MEMBER_GROUPS = frozenset(("owner", "collaborator"))


@dataclass(frozen=True, slots=True)
class Facts:
    """What one lookup found for (credential, project)."""

    account_id: str | None  # None: no such credential, or it has expired
    key_project: str | None = None  # an API key limited to this project
    groups: tuple[str, ...] = ()
    banned: bool = False
    project_found: bool = False
    users: dict | None = None  # projects.users


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    status: int = 200
    message: str = ""
    account_id: str | None = None


UNAUTHENTICATED = Decision(False, 401, "Sign in to use this project's web servers (your session or API key is "
                                       "missing, unknown or expired).")


def decide(facts: Facts, project_id: str) -> Decision:
    account = facts.account_id
    if account is None:
        return UNAUTHENTICATED
    if facts.banned:
        return Decision(False, 403, "This account is banned.", account)
    if facts.key_project is not None and facts.key_project != project_id:
        return Decision(False, 403, "This API key is limited to another project.", account)
    if not facts.project_found:
        return Decision(False, 404, "No such project.", account)
    if "admin" in facts.groups:
        return Decision(True, account_id=account)
    entry = (facts.users or {}).get(account)
    group = entry.get("group") if isinstance(entry, dict) else None
    if group in MEMBER_GROUPS:
        return Decision(True, account_id=account)
    if group == "viewer":
        return Decision(False, 403, "Viewers of a project cannot use its web servers.", account)
    return Decision(False, 403, "You are not a collaborator on this project.", account)


__all__ = ["Decision", "Facts", "MEMBER_GROUPS", "UNAUTHENTICATED", "decide"]
