"""Every sentence the workflow says in a thread or to a user, in one place.

Texts are Slack-style mrkdwn; values a user typed pass through `esc()`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .authorization import Standing
from .boot_gate import Gate
from .catalog import CatalogImage
from .checks import Check
from .fleet import Fleet, FleetState
from .policy import Tally
from .ports import Explanation
from .progress import Progress
from .request import Request, mask_url
from .states import State
from .text import duration, esc, local_time, mention, progress_bar, truncate

STATE_ICONS = {
    State.PENDING_APPROVAL: "⏳",
    State.APPROVED: "👍",
    State.SUBMITTING: "📤",
    State.DEPLOYING: "🚧",
    State.BOOTING: "🔌",
    State.DONE: "✅",
    State.FAILED: "🔥",
    State.REJECTED: "🚫",
    State.CANCELLED: "🗑️",
    State.EXPIRED: "⌛",
}


def label(request: Request) -> str:
    """``r-abc123 (ns1.example.net)``."""
    return f"`{request.id}` ({esc(request.spec.server)})"


def busy(server: str, other: Request) -> str:
    return (
        f"{esc(server)} already has an active request {label(other)}, {other.state}. "
        "One deployment at a time per server: wait for it to finish, or cancel it with "
        f"`/byoi cancel {other.id}`."
    )


def card_failed() -> str:
    """A card the chat could not take for now (busy, down, slow): a retry can help."""
    return (
        "Slack did not take the request card (busy or unavailable), so nobody could approve "
        "it: the request is cancelled and nothing was changed. Try again in a minute."
    )


def requested(request: Request | Fleet) -> str:
    """A deploy command's answer: the card is posted, or waits for the chat's pace."""
    if request.message_ts:
        return f"Request `{request.id}` is posted; it needs approval before anything happens."
    return (
        f"Request `{request.id}` is stored; its card appears in this channel as soon as Slack "
        "takes it (Slack paces each channel's posts). It needs approval before anything happens."
    )


def card_not_posted_dm(request: Request | Fleet, why: str) -> str:
    """A direct message: the card could not be posted, and nobody waited for the answer."""
    ended = request.state in (State.PENDING_APPROVAL, FleetState.PENDING_APPROVAL)
    text = (
        f"byoi-bot could not post the card of your request `{request.id}` in <#{request.channel}>"
    )
    return text + (", so it is cancelled. " if ended else ". ") + why


def channel_gone_dm(request: Request | Fleet, why: str) -> str:
    """A direct message: the channel refuses the bot in the middle of a request."""
    return (
        f"byoi-bot can no longer post about your request `{request.id}` in "
        f"<#{request.channel}>: {why}. The request goes on; its outcome will be sent here, "
        f"and `/byoi status {request.id}` shows where it stands."
    )


def outcome_dm(request: Request | Fleet, text: str, why: str) -> str:
    """A direct message: the outcome the channel refused to show."""
    said = f"\n{text}" if text else ""
    return (
        f"Your request `{request.id}` is {request.state.replace('_', ' ')}. byoi-bot could not "
        f"say so in <#{request.channel}> ({why}).{said}"
    )


def refused_by_checks() -> str:
    return "⛔ Not posted: the deploy would fail. Nothing was changed on the server."


def running_elsewhere() -> str:
    return (
        "OVHcloud already runs an installation on this server (started outside byoi-bot). "
        "Wait for it to end, or check the server's tasks in the OVHcloud Control Panel."
    )


def not_pending(request: Request) -> str:
    return f"{label(request)} is {request.state}; approvals are no longer taken."


def cannot_approve(reason: str) -> str:
    return f"Your approval was not counted: {reason}."


def cannot_reject(reason: str) -> str:
    return f"Your rejection was not counted: {reason}."


def approval(user: str, tally: Tally) -> str:
    text = f"✅ {mention(user)} approved ({len(tally.counted)}/{tally.required})."
    if tally.missing_groups:
        groups = ", ".join(f"<!subteam^{g}>" for g in tally.missing_groups)
        text += f" Still needed: one approver from {groups}."
    return text


def approved(request: Request) -> str:
    return f"👍 {mention(request.requester)}, {label(request)} is approved."


def withdrawn(user: str) -> str:
    return f"↩️ {mention(user)} withdrew their approval."


def submitted(request: Request) -> str:
    return (
        f"📤 Deployment of {label(request)} started at OVHcloud. "
        "Status updates follow in this thread."
    )


def progress(p: Progress) -> str:
    step = p.current_step
    bar = progress_bar(p.fraction_done)
    where = f" — {esc(step.name)} ({step.status})" if step else ""
    return f"🚧 {p.phase}{where} {bar}".rstrip()


def heartbeat(p: Progress, elapsed: timedelta) -> str:
    step = p.current_step
    where = f" at *{esc(step.name)}*" if step else ""
    return f"💓 Still running{where} after {duration(elapsed)}; no change since the last update."


def stalled(request: Request, elapsed: timedelta) -> str:
    return (
        f"⚠️ {label(request)} has been running for {duration(elapsed)}, far beyond the usual "
        "~10 minutes. Check the server's KVM/IPMI console in the OVHcloud Control Panel; "
        "the bot keeps following it."
    )


def status_line(request: Request, p: Progress) -> str:
    step = p.current_step
    return f"{p.phase}: {step.name} ({step.status})" if step else str(p.phase)


def card_status(request: Request, pace: float | None = None, interval: float = 20) -> str:
    """The card's status line; says so when the API budget polls less often than `interval`
    (`pace`: seconds between two polls of this deployment)."""
    icon = STATE_ICONS[request.state]
    text = f"{icon} *{request.state.replace('_', ' ')}*"
    if request.state in (State.DEPLOYING, State.BOOTING) and request.last_status:
        text += f" — {esc(request.last_status)}"
    if request.state is State.DEPLOYING and pace is not None and pace > interval:
        text += f" · updates every ~{round(pace, -1 if pace >= 60 else 0):.0f} s: API budget"
    return text


def explanation(e: Explanation) -> str:
    text = f"*{esc(e.summary)}*\n*Likely cause:* {esc(e.cause)}\n*What to do:* {esc(e.action)}"
    if e.raw:
        text += f"\n> {esc(e.raw)}"
    return text


def quorum_lost(tally: Tally) -> str:
    return (
        f"The approvals no longer reach the quorum ({len(tally.counted)}/{tally.required}); "
        "nothing was sent to OVHcloud. Ask again with `/byoi deploy`."
    )


def blocked_at_submission(blockers: list[Check]) -> str:
    reasons = "\n".join(check_line(c) for c in blockers)
    return f"The checks at submission found blocking problems; nothing was sent:\n{reasons}"


def recheck_crashed() -> str:
    return (
        "The checks before the deployment could not run (an unexpected error, logged for the "
        "operators); nothing was sent to OVHcloud. Ask again with `/byoi deploy`."
    )


def changed_after_approval() -> str:
    return (
        "What would be sent no longer matches what was approved; nothing was sent to OVHcloud. "
        "Ask again with `/byoi deploy`."
    )


def check_line(check: Check) -> str:
    """A check's verdict as one line; its text may quote the image server, so it is escaped."""
    return f"• *{esc(check.name)}*: {esc(check.message)}"


def lost_submission() -> str:
    return (
        "The start call's outcome was unknown (a time-out or a restart), and OVHcloud shows no "
        "deployment started for it: the call never reached it, so nothing on the server "
        "changed. "
        "Ask again with `/byoi deploy`."
    )


def failed(request: Request, text: str) -> str:
    return f"🔥 {mention(request.requester)}, {label(request)} failed.\n{text}"


def finished(request: Request, actor: str, e: Explanation | None, now: datetime) -> str:
    if request.state is State.DONE:
        took = duration(now - request.submitted_at) if request.submitted_at else "?"
        return f"✅ {mention(request.requester)}, {label(request)} is done in {took}."
    if request.state is State.FAILED:
        return failed(request, explanation(e) if e else "")
    if request.state is State.EXPIRED:
        return (
            f"⌛ {label(request)} expired without enough approvals; nothing was changed. "
            "Ask again with `/byoi deploy` if it is still needed."
        )
    who = "the bot" if actor == "byoi-bot" else mention(actor)
    return f"{STATE_ICONS[request.state]} {label(request)} was {request.state} by {who}."


def unknown_request(request_id: str) -> str:
    return f"No request `{esc(request_id)}`. `/byoi list all` shows recent ones."


def cancel_not_allowed(request: Request) -> str:
    return f"Only the requester or an approver can cancel {label(request)}."


def running_cancel_needs_approver(request: Request) -> str:
    return (
        f"{label(request)} is already deploying; stopping it needs an approver other than the "
        f"requester to run `/byoi cancel {request.id}`."
    )


def not_cancellable(request: Request) -> str:
    return f"{label(request)} is {request.state}; there is nothing to cancel."


def cancelled_answer(request: Request) -> str:
    return f"{label(request)} is cancelled."


def summary_line(request: Request, url_limit: int | None = None) -> str:
    """One line of `/byoi status`, `list` and `history` (the URL cut to `url_limit`)."""
    url = request.spec.display_url
    line = (
        f"{STATE_ICONS[request.state]} {label(request)} {request.state} · "
        f"{esc(truncate(url, url_limit) if url_limit else url)} · "
        f"by {mention(request.requester)} · {local_time(request.created_at)}"
    )
    if request.state in (State.DEPLOYING, State.BOOTING) and request.last_status:
        line += f" · {esc(request.last_status)}"
    if account := (request.server_facts or {}).get("account"):
        line += f" · account `{esc(account)}`"
    return line


LISTING_URL_LIMITS = (None, 120, 80, 50, 30)  # URL lengths `listing` tries, longest first


def listing(title: str, requests: list[Request], empty: str, limit: int | None = None) -> str:
    """A titled list of summary lines, or `empty` when there is nothing.

    With `limit`, the list fits in `limit` characters and every request keeps its line:
    long URLs are shortened first, and only if that is not enough, every line.
    """
    if not requests:
        return empty
    heading = f"*{title}*"
    if limit is None:
        return "\n".join([heading, *(summary_line(r) for r in requests)])
    room = limit - len(heading)
    for url_limit in LISTING_URL_LIMITS:
        lines = [summary_line(r, url_limit) for r in requests]
        if sum(len(line) + 1 for line in lines) <= room:
            return "\n".join([heading, *lines])
    share = room // len(requests) - 1
    return "\n".join([heading, *(truncate(line, share) for line in lines)])


def checksum_progress(done: int, total: int | None) -> str:
    """The card's checksum line while the image is streamed."""
    return f"verifying… {done * 100 // total} %" if total else "verifying…"


def checksum_waiting() -> str:
    return "Approved: the start call waits until the image's checksum is verified."


def checksum_failed(message: str) -> str:
    return f"The image's checksum was not confirmed, so nothing was sent to OVHcloud: {message}"


def checksum_crashed() -> str:
    return "the checksum could not be verified (an internal error; see the bot's log)."


def vote_on_the_card(request: Request, reaction: str) -> str:
    return (
        f"Your :{reaction}: is on a reply in the thread of {label(request)}, so it was not "
        "counted. Votes count on the request card itself: react there (or use its buttons)."
    )


def counted(title: str, requests: list[Request]) -> str:
    """Too many to list: how many per state, and where to see them one by one."""
    per_state: dict[State, int] = {}
    for request in requests:
        per_state[request.state] = per_state.get(request.state, 0) + 1
    lines = [f"*{title}: {len(requests):,}*"]
    lines += [f"{STATE_ICONS[s]} {s}: {n:,}" for s, n in per_state.items()]
    lines.append(
        "The bot's App Home (open byoi-bot, tab Home) shows them one by one; "
        "`/byoi status <server>` shows one."
    )
    return "\n".join(lines)


def no_request_for(server: str) -> str:
    return (
        f"No request for server `{esc(server)}` yet. `/byoi list all` shows recent requests; "
        f"`/byoi deploy {esc(server)} <image URL>` asks for one."
    )


def accounts_line(accounts: dict[str, int]) -> str:
    """Under `/byoi images` when several OVHcloud accounts are configured: where servers are."""
    if not accounts:
        return ""
    listed = ", ".join(
        f"`{esc(name)}` ({count} server{'' if count == 1 else 's'})"
        for name, count in accounts.items()
    )
    return f"\nOVHcloud accounts: {listed}"


def catalog(images: tuple[CatalogImage, ...]) -> str:
    """`/byoi images`: one line per catalog image, then how to deploy one."""
    if not images:
        return (
            "The image catalog is empty: add `[[image]]` tables to the BYOI_CONFIG file "
            "(docs/catalog.md), or deploy an image URL."
        )
    lines = [f"*Image catalog* ({len(images)})"]
    for image in images:
        checksum = (
            f"{image.checksum.type} in the catalog"
            if image.checksum
            else f"checksum from {esc(mask_url(image.checksum_url or ''))}"
            + (" (signed)" if image.signature_url else "")
        )
        parts = [f"`{esc(image.name)}`", f"{image.os}, {image.type or 'type from URL'}", checksum]
        if image.servers:
            parts.append("servers " + ", ".join(f"`{esc(p)}`" for p in image.servers))
        if image.keep_disks is not None:
            kept = ", ".join(map(str, image.keep_disks))
            parts.append(f"keeps disk groups {kept}" if kept else "keeps no disk group")
        if image.description:
            parts.append(truncate(esc(image.description), 120))
        lines.append("• " + " · ".join(parts))
    lines.append(esc("Deploy one: `/byoi deploy <server> <image> [key=value…]`"))
    return "\n".join(lines)


# -- fleets (deploys to many servers) -------------------------------------------------------


def fleet_summary(ready: int, refused: list[tuple[str, str]]) -> str:
    """ "38 ready, 2 refused (why)": the preflight of a fleet in one line, then the refusals."""
    line = f"{ready} ready, {len(refused)} refused"
    if not refused:
        return line + "."
    reasons = "; ".join(
        f"`{esc(server)}`: {truncate(esc(why), 200)}" for server, why in refused[:10]
    )
    more = f"; and {len(refused) - 10} more" if len(refused) > 10 else ""
    return f"{line} ({reasons}{more})."


def fleet_status(fleet: Fleet, members: tuple[Request, ...]) -> str:
    """The card's status line: the fleet's state and its servers' counts."""
    counts: dict[str, int] = {}
    for m in members:
        counts[str(m.state)] = counts.get(str(m.state), 0) + 1
    parts = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(counts.items()))
    return f"*{fleet.state.replace('_', ' ').capitalize()}* · {len(members)} servers: {parts}"


def fleet_counted(standings: list[Standing]) -> str:
    """Each policy's approvals against its quorum: "`lab` 1/1, `production` 0/1"."""
    return ", ".join(
        f"`{esc(s.policy)}` {len(s.approved_by)}/{s.required}" + (" ✔" if s.met else "")
        for s in standings
    )


def fleet_approval(user: str, standings: list[Standing]) -> str:
    """A vote on a fleet counted, and what each policy still needs."""
    waiting = [s for s in standings if not s.met]
    needs = "; ".join(f"`{esc(s.policy)}` ({servers_of(s)}) {_still(s)}" for s in waiting)
    return f"✅ {mention(user)} approved: {fleet_counted(standings)}. Still needed: {needs}."


def _still(s: Standing) -> str:
    missing = s.required - len(s.approved_by)
    parts = [f"{missing} more approval(s)"] if missing > 0 else []
    if s.missing_groups:
        parts.append("one approver from " + ", ".join(f"<!subteam^{g}>" for g in s.missing_groups))
    return " and ".join(parts) or "its approvals"


def servers_of(s: Standing) -> str:
    """The servers a policy governs in a fleet, shortened past three."""
    shown = ", ".join(f"`{esc(n)}`" for n in s.servers[:3])
    return shown + (f" and {len(s.servers) - 3} more" if len(s.servers) > 3 else "")


def fleet_approved(fleet: Fleet, user: str, standings: list[Standing]) -> str:
    """Every server's policy met: who approved last, and how the rollout goes."""
    r = fleet.rollout
    canary = f", the first {r.canary} done before the others" if r.canary else ""
    stop = "stops after a failure" if r.stop_on_failure else "goes on after a failure"
    return (
        f"👍 {mention(user)} approved; every server's policy is met "
        f"({fleet_counted(standings)}): {len(fleet.servers)} servers, at most {r.parallel} "
        f"at once{canary}; the rollout {stop}."
    )


def fleet_window_closed(s: Standing) -> str:
    return (
        f"the approval window of policy `{esc(s.policy)}` ({servers_of(s)}) closed with "
        f"{len(s.approved_by)}/{s.required} approvals"
    )


def fleet_checksum_failed(fleet: Fleet, text: str) -> str:
    return f"🔥 {text} No server of `{fleet.id}` is installed."


def fleet_stopped_by(member: Request, reason: str | None) -> str:
    """Why a rollout stopped: which server ended early, and how."""
    how = f"{member.state}: {truncate(esc(reason), 300)}" if reason else str(member.state)
    return f"`{esc(member.spec.server)}` {how}"


def fleet_started(members: list[Request]) -> str:
    """The servers whose installation started since the last post, in one line."""
    names = ", ".join(f"`{esc(m.spec.server)}`" for m in members[:30])
    more = f" and {len(members) - 30} more" if len(members) > 30 else ""
    return f"▶️ Started: {names}{more}"


def fleet_member(member: Request, kind: str, reason: str | None) -> str:
    """A server of the fleet done or failed: one thread line."""
    server = f"`{esc(member.spec.server)}`"
    if kind == "done":
        took = (
            f" in {duration(member.finished_at - member.submitted_at)}"
            if member.finished_at and member.submitted_at
            else ""
        )
        return f"✅ {server} done{took}"
    return f"🔥 {server} failed: {truncate(esc(reason or member.state), 300)}"


def fleet_wave(number: int, total: int, wave: list[Request]) -> str:
    done = sum(1 for m in wave if m.state is State.DONE)
    return f"🌊 Wave {number}/{total} finished: {done} done, {len(wave) - done} failed."


def fleet_finished(fleet: Fleet, members: list[Request], why: str | None) -> str:
    """The final summary, with elapsed times; a stopped rollout says `why`."""
    done = [m for m in members if m.state is State.DONE]
    failed = [m for m in members if m.state is State.FAILED]
    skipped = [m for m in members if m.state is State.CANCELLED and not m.submitted_at]
    took = (
        f" in {duration(fleet.finished_at - fleet.started_at)}"
        if fleet.finished_at and fleet.started_at
        else ""
    )
    head = "🏁 Rollout finished" if fleet.state is FleetState.DONE else "🛑 Rollout stopped"
    head += f"{took}: {len(done)} done, {len(failed)} failed, {len(skipped)} not started."
    if fleet.state is FleetState.STOPPED:
        head += f" Why: {why or 'no server was left to start'}."
    lines = [head]
    if done:
        times = sorted(
            (m.finished_at - m.submitted_at) for m in done if m.finished_at and m.submitted_at
        )
        if times:
            lines.append(f"Install times: {duration(times[0])} to {duration(times[-1])}.")
    if failed:
        lines.append("Failed: " + ", ".join(f"`{esc(m.spec.server)}`" for m in failed[:20]))
    lines.append(mention(fleet.requester))
    return "\n".join(lines)


FLEET_ICONS = {
    FleetState.CANCELLED: "🗑️",
    FleetState.REJECTED: "🚫",
    FleetState.EXPIRED: "⌛",
}


def fleet_ended(fleet: Fleet, actor: str, reason: str) -> str:
    """The fleet ended before its rollout did: how, by whom, and (from the bot) why."""
    what = fleet.state.replace("_", " ")
    by = f": {reason}" if actor == "byoi-bot" else f" by {mention(actor)}"
    icon = FLEET_ICONS.get(fleet.state, "🗑️")
    return f"{icon} Fleet request {what}{by}; no new installation starts."


def fleet_cancelled(
    fleet: Fleet, running: int, stopped: list[str], kept: list[tuple[str, str]]
) -> str:
    """The answer to `/byoi cancel f-…`: what stops, what was cancelled, what goes on."""
    lines = [f"Fleet request `{fleet.id}` is cancelled: no new installation starts."]
    if stopped:
        lines.append("Cancelled at OVHcloud: " + ", ".join(f"`{esc(s)}`" for s in stopped))
    lines += [f"`{esc(server)}` goes on: {why}" for server, why in kept]
    if running and not kept:
        lines.append(
            f"{running} running installation(s) finish; an approver other than the requester "
            f"can cancel them with `/byoi cancel {fleet.id}`."
        )
    return "\n".join(lines)


def fleet_member_cancel(request: Request) -> str:
    return (
        f"{label(request)} is one server of the fleet request `{request.fleet_id}`; a fleet is "
        f"cancelled as a whole: `/byoi cancel {request.fleet_id}`."
    )


def fleet_member_vote(request: Request) -> str:
    return (
        f"{label(request)} is one server of the fleet request `{request.fleet_id}`: vote on the "
        "fleet's card, where a vote counts for every server whose policy lists you."
    )


# -- the boot gate (core.boot_gate) ---------------------------------------------------------


def boot_status(gate: Gate) -> str:
    """The card's status while the gate waits (it changes when the server's answer does)."""
    last = f" (last probe: {truncate(gate.last, 120)})" if gate.probes else ""
    return f"waiting for the server to answer{last}"


def boot_waiting(request: Request, gate: Gate) -> str:
    what = f"SSH on `{esc(gate.ip or '?')}:{gate.ssh_port}`"
    if gate.health_url:
        what += f" and {esc(gate.health_url)}"
    until = local_time(gate.deadline) if gate.deadline else "?"
    return (
        f"🔌 OVHcloud has finished installing {label(request)}; waiting for the server to "
        f"answer ({what}) until {until}. Last probe: {esc(truncate(gate.last, 300))}"
    )


def booted(request: Request, proof: str, now: datetime) -> str:
    """Done: the server answered; `proof` is what it said (escaped here)."""
    took = duration(now - request.submitted_at) if request.submitted_at else "?"
    return (
        f"✅ {mention(request.requester)}, {label(request)} is done in {took}: the server "
        f"answered ({esc(truncate(proof, 300))})."
    )


def host_keys(keys: tuple[tuple[str, str], ...]) -> str:
    """The host keys a server reported by phone-home, to compare at the first login."""
    lines = ["Host keys it reported:"]
    lines += [f"• `{esc(kind)}`: `{esc(truncate(key, 600))}`" for kind, key in keys]
    return "\n".join(lines)


def done_unchecked(request: Request, now: datetime) -> str:
    """Done with the boot gate off for this server: say the boot was not checked."""
    took = duration(now - request.submitted_at) if request.submitted_at else "?"
    return (
        f"✅ {mention(request.requester)}, {label(request)} is done in {took} at OVHcloud; "
        "its boot was not checked (the boot gate is off for this server)."
    )


def boot_failed(request: Request, gate: Gate, waited: timedelta) -> str:
    return (
        f"🔥 {mention(request.requester)}, {label(request)} failed: the install finished at "
        f"OVHcloud, but the server did not come back within {duration(waited)}."
    )
