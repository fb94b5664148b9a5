"""Block Kit for a fleet's card: the set, the image, the plan, a compact server table, what
is sent to OVHcloud, and each policy's approvals.

The table (server · step · progress) is one code block, redrawn in place as servers move;
beyond `TABLE_ROWS` servers it shows the running, failed and next ones, then counts. "Sent
to OVHcloud" shows every field the start calls carry (secrets by name only): what every
server gets, then what differs per server, so nothing sent is off the card.
"""

from __future__ import annotations

from ..core.authorization import Standing
from ..core.fleet import FleetState, waves
from ..core.ports import FleetView
from ..core.request import Request
from ..core.sent import disk_plan
from ..core.states import State
from ..core.text import esc, mention, truncate
from .cards import SECTION_LIMIT, _section, approvals_text, sent_lines, slack_date, who

HEADER_LIMIT = 150
TABLE_ROWS = 40
STEP_ICONS = {
    State.PENDING_APPROVAL: "⏳",
    State.APPROVED: "·",
    State.SUBMITTING: "📤",
    State.DEPLOYING: "🚧",
    State.BOOTING: "🔌",
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
            f"*Image* {_image(view.members)}\n*Rollout* {plan}{_purpose(view.members)}"
        ),
        _section("```\n" + _table(view.members, f) + "\n```"),
        *(_section(text) for text in _sent(view.members)),
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


def _image(members: tuple[Request, ...]) -> str:
    """The image every server gets (as its start call names it), and where a catalog
    image's checksum comes from."""
    if not members:
        return "(none)"
    first = members[0]
    lines = [truncate(esc(first.spec.display_url), 300)]
    if source := (first.image_facts or {}).get("catalog"):
        lines.append(f"catalog image `{esc(source['image'])}`")
        if first.spec.checksum:
            checksum = f"{first.spec.checksum.type} `{first.spec.checksum.value}`"
            lines.append(f"{checksum} from {truncate(esc(source['checksum']), 200)}")
    return "\n".join(lines)


def _purpose(members: tuple[Request, ...]) -> str:
    spec = members[0].spec if members else None
    if spec is None or spec.description is None:
        return ""
    return f"\n*Why* {truncate(esc(spec.description), 200)}"


def _sent(members: tuple[Request, ...]) -> list[str]:
    """The "Sent to OVHcloud" sections: the lines every server's call carries, then each
    server's own lines (split into sections that fit Block Kit)."""
    if not members:
        return []
    each = [(m.spec.server, sent_lines(m.spec)) for m in members]
    common = [line for line in each[0][1] if all(line in lines for _, lines in each)]
    head = "*Sent to OVHcloud*, to every server" if len(members) > 1 else "*Sent to OVHcloud*"
    sections = ["\n".join([head, *common])]
    own = [
        f"`{esc(server)}`: " + " · ".join(extra)
        for server, lines in each
        if (extra := [line for line in lines if line not in common])
    ]
    if own:
        sections += _chunks(["*And to each server*", *own])
    return sections


def _chunks(lines: list[str]) -> list[str]:
    """`lines` joined into texts that each fit one section."""
    chunks: list[str] = []
    for line in lines:
        line = truncate(line, SECTION_LIMIT)
        if chunks and len(chunks[-1]) + 1 + len(line) <= SECTION_LIMIT:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return chunks


def _approvals(view: FleetView) -> str:
    """One policy: the request card's paragraph. Several: what each needs and has."""
    pending = view.fleet.state is FleetState.PENDING_APPROVAL
    if len(view.standings) == 1:
        [s] = view.standings
        scope = f" under policy `{esc(s.policy)}`; one approval covers every server above."
        return approvals_text(s, scope, s.expires_at if pending else None) + _never(s)
    lines = [
        "*Approvals:* every server's own policy must be met; a vote counts for the servers "
        "whose policy lists the voter (never the requester)."
    ]
    lines += [_standing(s, pending) for s in view.standings]
    if pending:
        lines.append("React ✅ to approve or ❌ to reject.")
    return "\n".join(lines)


def _standing(s: Standing, pending: bool) -> str:
    servers = ", ".join(f"`{esc(n)}`" for n in s.servers[:5])
    servers += f" and {len(s.servers) - 5} more" if len(s.servers) > 5 else ""
    approvers = ", ".join(who(a) for a in s.approvers) or "nobody is configured"
    line = f"• `{esc(s.policy)}` ({servers}): {len(s.approved_by)}/{s.required} from {approvers}"
    if s.met:
        return line + " ✔ approved by " + ", ".join(mention(u) for u in s.approved_by)
    if s.approved_by:
        line += "; approved by " + ", ".join(mention(u) for u in s.approved_by)
    if s.missing_groups:
        line += "; still needed: one approver from " + ", ".join(map(who, s.missing_groups))
    if pending:
        line += f"; expires {slack_date(s.expires_at)}"
    return line + _never(s)


def _never(s: Standing) -> str:
    return f"\n⛔ *This can never be approved:* {esc(s.unsatisfiable)}" if s.unsatisfiable else ""
