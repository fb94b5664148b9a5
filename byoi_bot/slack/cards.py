"""Block Kit for the request card: facts, checks, the data-loss warning, approvals, status.

Every user-supplied value is escaped and truncated to Block Kit's limits.
"""

from __future__ import annotations

from datetime import datetime

from ..core.authorization import Standing
from ..core.checks import Check, Severity
from ..core.ports import CardView
from ..core.request import DeploySpec
from ..core.sent import disk_plan, sent_fields
from ..core.states import State
from ..core.text import esc, mention, progress_bar, size, truncate

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
APPROVE_ACTION = "byoi_approve"
REJECT_ACTION = "byoi_reject"
SEVERITY_ICONS = {Severity.OK: "✅", Severity.WARNING: "⚠️", Severity.BLOCKING: "⛔"}


def card_blocks(view: CardView) -> tuple[list[dict], str]:
    """The card's blocks and its plain-text fallback (notifications, screen readers)."""
    r = view.request
    server = esc(r.spec.server)
    blocks: list[dict] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(f"BYOI deploy {r.id}", HEADER_LIMIT)},
        },
        _section(f"{view.status_line}\n{progress_bar(view.progress_fraction)}".rstrip()),
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Requested by*\n{mention(r.requester)}"),
                _mrkdwn(f"*Server*\n{_server_facts(view)}"),
                _mrkdwn(f"*Image*\n{_image_facts(view)}"),
                _mrkdwn(f"*Why and when*\n{_purpose(view)}"),
            ],
        },
    ]
    blocks.append(_section(_sent(view)))
    if r.checks:
        blocks.append(_section("*Checks*\n" + "\n".join(_check(c) for c in r.checks)))
    if r.state in (State.PENDING_APPROVAL, State.APPROVED):
        plan = disk_plan(r.spec, r.server_facts)
        erases = f"{plan} on {server}" if plan else f"ERASES ALL DATA on {server}"
        blocks.append(_section(f"⚠️ *This deploy {erases}.* It cannot be undone."))
    blocks.append(_section(_approvals(view)))
    if r.state is State.PENDING_APPROVAL:
        blocks.append(_buttons(r.id))
    fallback = f"BYOI deploy {r.id}: {r.spec.server} — {r.state.replace('_', ' ')}"
    return blocks, fallback


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": truncate(text, FIELD_LIMIT)}


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def _server_facts(view: CardView) -> str:
    r = view.request
    facts = r.server_facts or {}
    lines = [f"`{esc(r.spec.server)}`"]
    if facts.get("account"):
        lines[0] += f" · account `{esc(facts['account'])}`"
    if facts:
        lines.append(
            f"{esc(facts.get('datacenter', '?'))} · {size(facts.get('ram_bytes'))} RAM · "
            f"boot {esc(facts.get('boot_mode', '?'))}"
        )
        groups = facts.get("disk_groups") or []
        chosen = next((g for g in groups if g["id"] == r.spec.disk_group), None) or (
            groups[0] if groups else None
        )
        if chosen:
            lines.append(
                f"disk group {chosen['id']}: {chosen.get('number_of_disks', 1)}× "
                f"{size(chosen['disk_size_bytes'])} {esc(chosen.get('disk_type', ''))}".rstrip()
            )
    return "\n".join(lines)


def _image_facts(view: CardView) -> str:
    r = view.request
    facts = r.image_facts or {}
    lines = [truncate(esc(r.spec.display_url), 300), f"type {r.spec.image_type}"]
    if facts.get("format"):
        lines[-1] += f" (found {esc(facts['format'])})"
    if facts.get("download_size") is not None:
        lines.append(f"download {size(facts['download_size'])}")
    if facts.get("virtual_size") is not None:
        lines.append(f"virtual size {size(facts['virtual_size'])}")
    if "has_esp" in facts:
        lines.append("EFI partition: " + ("found" if facts["has_esp"] else "none"))
    if source := facts.get("catalog"):
        lines.append(f"catalog image `{esc(source['image'])}`")
        if r.spec.checksum:
            checksum = f"{r.spec.checksum.type} `{r.spec.checksum.value}`"
            lines.append(f"{checksum} from {truncate(esc(source['checksum']), 200)}")
    return "\n".join(lines)


def _purpose(view: CardView) -> str:
    """What the card says beside the body (which `_sent` shows field by field)."""
    s = view.request.spec
    items = []
    if s.description is not None:
        items.append(truncate(esc(s.description), 200))
    items.append(f"starts at {s.at:%Y-%m-%d %H:%M} UTC" if s.at else "starts once approved")
    if s.health_url:
        items.append(f"done once {truncate(esc(s.health_url), 200)} answers 2xx")
    return "\n".join(items)


def _sent(view: CardView) -> str:
    """Exactly what the deploy call will carry: the API, the OS, every field (secrets hidden)."""
    route, *fields = sent_lines(view.request.spec)
    return "\n".join([f"*Sent to OVHcloud* ({route})", *fields])


def sent_lines(spec: DeploySpec) -> list[str]:
    """The API and its route, then one line per field the deploy call carries."""
    api = spec.api or "reinstall"
    route = "POST …/reinstall" if api == "reinstall" else "POST …/bringYourOwnImage"
    lines = [f"{api} API, `{route}`"]
    lines += [
        f"`{name.rsplit('.', 1)[-1]}` {truncate(value, 300)}" for name, value in sent_fields(spec)
    ]
    return lines


def _check(check: dict) -> str:
    c = Check.from_dict(check)
    return f"{SEVERITY_ICONS[c.severity]} *{esc(c.name)}*: {truncate(esc(c.message), 400)}"


def _approvals(view: CardView) -> str:
    r = view.request
    pending = r.state is State.PENDING_APPROVAL
    text = approvals_text(view, ".", r.expires_at if pending else None)
    if view.unsatisfiable:
        text += f"\n⛔ *This request can never be approved:* {esc(view.unsatisfiable)}"
    return text


def approvals_text(view: CardView | Standing, scope: str, expires_at: datetime | None) -> str:
    """Who may approve, who did, which groups are still missing, and (while pending, given
    `expires_at`) how to vote and when the vote ends; `scope` ends the first sentence."""
    names = ", ".join(who(a) for a in view.approvers) or "nobody is configured"
    text = f"*Approvals:* {len(view.approved_by)}/{view.required} needed from {names}"
    text += f" (not the requester){scope}"
    if view.approved_by:
        text += "\nApproved by " + ", ".join(mention(u) for u in view.approved_by) + "."
    if view.missing_groups:
        text += "\nStill needed: one approver from " + ", ".join(map(who, view.missing_groups))
    if expires_at is not None:
        text += f"\nReact ✅ to approve or ❌ to reject. Expires {slack_date(expires_at)}."
    return text


def slack_date(when: datetime) -> str:
    """A time each reader sees in their own time zone (UTC in the fallback)."""
    stamp = int(when.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{when:%Y-%m-%d %H:%M} UTC>"


def who(entry: str) -> str:
    """A user or a user group, as Slack mentions it."""
    return f"<!subteam^{entry}>" if entry.startswith("S") else mention(entry)


def _buttons(request_id: str) -> dict:
    return {
        "type": "actions",
        "block_id": f"byoi_vote:{request_id}",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": request_id,
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
                "value": request_id,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Reject this deploy?"},
                    "text": {"type": "plain_text", "text": "The request ends as rejected."},
                    "confirm": {"type": "plain_text", "text": "Reject"},
                    "deny": {"type": "plain_text", "text": "Keep it"},
                },
            },
        ],
    }
