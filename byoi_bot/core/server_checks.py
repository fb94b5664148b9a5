"""Checks of the server itself, from its facts (no I/O)."""

from __future__ import annotations

from .checks import Check, Severity
from .ports import ServerFacts

OK, BLOCKING = Severity.OK, Severity.BLOCKING


def server_checks(facts: ServerFacts) -> list[Check]:
    """Checks of the server itself: its state must be `ok`."""
    if facts.state == "ok":
        return [Check("server_state", OK, f"{facts.name} is in state ok.")]
    why = {
        "error": "OVHcloud reports an error on it",
        "hacked": "OVHcloud flagged it as hacked",
        "hackedBlocked": "OVHcloud blocked it as hacked",
    }.get(facts.state, "only servers in state ok can be reinstalled")
    return [
        Check(
            "server_state",
            BLOCKING,
            f"{facts.name} is in state {facts.state!r}: {why}. Resolve it with OVHcloud support "
            "(or in the control panel) before deploying.",
        )
    ]
