"""Block Kit for a fleet's card: the set, the image, the plan, and a compact server table.

The table (server · step · progress) is one code block, redrawn in place as servers move;
beyond `TABLE_ROWS` servers it shows the running, failed and next ones, then counts.
"""

from __future__ import annotations

from ..core.fleet import FleetState, waves
from ..core.ports import FleetView
from ..core.request import Request
from ..core.sent import disk_plan
from ..core.states import State
from ..core.text import esc, mention, truncate
from .cards import _section, approvals_text

HEADER_LIMIT = 150
TABLE_ROWS = 40
STEP_ICONS = {
    State.PENDING_APPROVAL: "⏳",
    State.APPROVED: "·",
    State.SUBMITTING: "📤",
    State.DEPLOYING: "🚧",
    State.DONE: "✅",
    State.FAILED: "🔥",
    State.CANCELLED: "🗑️",
    State.EXPIRED: "⌛",
    State.REJECTED: "🚫",
}


def fleet_blocks(view: FleetView) -> tuple[list[dict], str]:
    """The fleet card's blocks and its plain-text fallback."""
    f = view.fleet
    r = f.rollout
    servers = f"`{esc(f.pattern)}` → " if f.pattern else ""
    servers += f"{len(view.members)} servers"
    plan = f"at most {r.parallel} at once"
    if r.canary:
        plan += f", the first {r.canary} done before the others"
    plan += ", stop on failure" if r.stop_on_failure else ", go on after a failure"
    at = view.members[0].spec.at if view.members else None
    plan += f", starts at {at:%Y-%m-%d %H:%M} UTC" if at else ""
    blocks: list[dict] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(f"BYOI fleet deploy {f.id}", HEADER_LIMIT),
            },
        },
        _section(view.status_line),
        _section(
            f"*Requested by* {mention(f.requester)}\n*Servers* {servers}\n"
            f"*Image* {truncate(esc(view.image), 300)}\n*Rollout* {plan}\n"
            f"*Approval* {f.policy_note}"
        ),
        _section("```\n" + _table(view.members, f) + "\n```"),
    ]
    if warnings := _warnings(view.members):
        blocks.append(_section("*Warnings*\n" + warnings))
    if f.refused:
        lines = [f"`{esc(s)}`: {truncate(esc(why), 150)}" for s, why in f.refused[:15]]
        more = f"\n… and {len(f.refused) - 15} more" if len(f.refused) > 15 else ""
        blocks.append(_section(f"*Left out ({len(f.refused)})*\n" + "\n".join(lines) + more))
    if f.state is FleetState.PENDING_APPROVAL:
        blocks.append(_section(_erases(view.members)))
    blocks.append(_section(_approvals(view)))
    fallback = (
        f"BYOI fleet deploy {f.id}: {len(view.members)} servers — {f.state.replace('_', ' ')}"
    )
    return blocks, fallback


def _erases(members: tuple[Request, ...]) -> str:
    """The data-loss warning: all data, or per server what is erased and kept."""
    plans = [(m.spec.server, disk_plan(m.spec, m.server_facts)) for m in members]
    if not any(plan for _, plan in plans):
        return f"⚠️ *This deploy ERASES ALL DATA on {len(members)} servers.* It cannot be undone."
    lines = [f"`{esc(s)}`: {plan or 'ERASES ALL DATA'}" for s, plan in plans[:15]]
    more = f"\n… and {len(plans) - 15} more" if len(plans) > 15 else ""
    return "⚠️ *This deploy erases data; it cannot be undone.*\n" + "\n".join(lines) + more


def _table(members: tuple[Request, ...], fleet) -> str:
    plan = waves(len(members), fleet.rollout)
    wave_of = {i: n for n, positions in enumerate(plan, 1) for i in positions}
    rows = [(i, m) for i, m in enumerate(members)]
    if len(rows) > TABLE_ROWS:
        busy = [(i, m) for i, m in rows if m.state not in (State.APPROVED, State.DONE)]
        rows = (busy + [(i, m) for i, m in rows if (i, m) not in busy])[:TABLE_ROWS]
        rows.sort(key=lambda row: row[0])
    width = max((len(m.spec.server) for _, m in rows), default=6)
    lines = []
    for i, m in rows:
        icon = STEP_ICONS.get(m.state, "?")
        step = truncate(m.last_status or str(m.state).replace("_", " "), 48)
        lines.append(f"{icon} w{wave_of.get(i, '?'):<2} {m.spec.server:<{width}}  {step}")
    hidden = len(members) - len(rows)
    if hidden:
        lines.append(f"… {hidden} more not shown")
    return "\n".join(lines) or "(no servers)"


def _warnings(members: tuple[Request, ...]) -> str:
    """Each preflight warning once, with how many servers it concerns."""
    found: dict[str, list[str]] = {}
    for m in members:
        for check in m.checks:
            if check.get("severity") == "warning":
                found.setdefault(check["message"], []).append(m.spec.server)
    lines = [
        f"⚠️ {truncate(esc(message), 200)} ({len(servers)} server{'s' * (len(servers) > 1)})"
        for message, servers in list(found.items())[:5]
    ]
    return "\n".join(lines)


def _approvals(view: FleetView) -> str:
    pending = view.fleet.state is FleetState.PENDING_APPROVAL
    scope = "; one approval covers every server above."
    return approvals_text(view, scope, view.fleet.expires_at if pending else None)
