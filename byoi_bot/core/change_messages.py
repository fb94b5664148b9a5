"""What the bot says about windows, freezes, emergencies and their reviews."""

from __future__ import annotations

from datetime import datetime

from .change_control import Freeze, StartDecision
from .policy import Policy
from .request import Request
from .text import duration, esc, local_time, mention


def countdown(when: datetime, now: datetime) -> str:
    """``in 3h 12m``, kept current by Slack (its ``{ago}`` token) where it renders dates."""
    return f"<!date^{int(when.timestamp())}^{{ago}}|in {duration(when - now)}>"


def waiting_to_start(decision: StartDecision, now: datetime) -> str:
    """The card's word on an approved deploy that waits: when it starts, and why."""
    return f"approved — starts at {_when(decision, now)}"


def waiting_post(decision: StartDecision, now: datetime) -> str:
    """The thread's word when an approved deploy has to wait."""
    return f"🕒 Scheduled: the deployment starts at {_when(decision, now)}."


def next_wave(decision: StartDecision, now: datetime) -> str:
    """A fleet card's word while its rollout waits (new waves start only when allowed)."""
    return f"next wave starts at {_when(decision, now)}"


def _when(decision: StartDecision, now: datetime) -> str:
    start = decision.start_at
    return f"{local_time(start)} ({countdown(start, now)}), after {decision.reason}"


def window_closes(ends: datetime) -> str:
    """The card's note while an install runs inside a window."""
    return (
        f"the maintenance window closes at {local_time(ends)}; an install that has started "
        "is never stopped midway, so it may finish after that"
    )


def at_outside_window(policy: Policy, decision: StartDecision) -> str:
    windows = ", ".join(f"`{w.describe()}`" for w in policy.windows)
    return (
        f"`at=` falls outside the maintenance windows of policy `{esc(policy.name)}` "
        f"({windows}). The next start allowed is {local_time(decision.start_at)}; ask for "
        f"that time (`at={decision.start_at:%Y-%m-%dT%H:%MZ}`), or leave `at=` out to start "
        "in the next window once approved."
    )


def emergency_banner(request: Request) -> str:
    return f"🚨 *EMERGENCY OVERRIDE* — {esc(request.spec.emergency or '')}"


def emergency_started(request: Request, skipped: tuple[str, ...], due: datetime) -> str:
    what = " and ".join(skipped) or "nothing (it was inside its window, with no freeze)"
    return (
        f"🚨 {mention(request.requester)} started this as an *emergency override* "
        f"({esc(request.spec.emergency or '')}); it skipped: {what}. An approver must "
        f"review it by {local_time(due)}: `/byoi review {request.id}` or the App Home."
    )


def review_overdue(request_id: str, due: datetime) -> str:
    return (
        f"⏰ The emergency override `{request_id}` was due for review at {local_time(due)} "
        f"and nobody has reviewed it yet. An approver: `/byoi review {request_id}`."
    )


def reviewed(user: str) -> str:
    return f"✅ {mention(user)} reviewed this emergency override."


def freeze_set(freeze: Freeze) -> str:
    return f"🧊 Freeze {freeze.describe()}. Approved deploys it covers wait until it ends."


def freeze_lifted(freeze: Freeze) -> str:
    return f"☀️ Freeze `{freeze.id}` lifted; deploys it held start as their windows allow."


def freeze_list(freezes: list[Freeze]) -> str:
    if not freezes:
        return "No freeze is in force or planned."
    return "*Freezes*\n" + "\n".join(f"• {f.describe()}" for f in freezes)
