"""What a Deferred fired with, for tests on fake reactors (trial's
``successResultOf``/``failureResultOf`` as plain functions).

``d.called`` only says that a Deferred fired, not with what: a test that stops
there passes whether the start succeeded, failed or was cancelled.  These look
at the result itself.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure


def recorded(d: defer.Deferred) -> list:
    """A list that gets whatever ``d`` fires with (a value or a ``Failure``),
    leaving the result unchanged for the callbacks added after this one.  Add it
    before handing ``d`` to the code under test to see what that code got."""
    seen: list = []

    def record(result):
        seen.append(result)
        return result

    d.addBoth(record)
    return seen


def success_result_of(d: defer.Deferred):
    """The value ``d`` has already fired with; fails the test if it has not fired
    or failed.  Consumes the result."""
    got: list = []
    d.addBoth(got.append)
    assert got, f"{d!r} has not fired"
    if isinstance(got[0], Failure):
        raise AssertionError(f"{d!r} failed: {got[0].getTraceback()}")
    return got[0]


def failure_result_of(d: defer.Deferred, *types: type[BaseException]) -> Failure:
    """The ``Failure`` ``d`` has already failed with (of one of ``types``, if
    given); fails the test otherwise.  Consumes the failure."""
    got: list = []
    d.addBoth(got.append)
    assert got, f"{d!r} has not fired"
    result = got[0]
    assert isinstance(result, Failure), f"{d!r} succeeded with {result!r}"
    if types and not result.check(*types):
        raise AssertionError(f"{d!r} failed with {result.type.__name__}, not one of {[t.__name__ for t in types]}")
    return result

