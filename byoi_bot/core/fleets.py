"""Deploys to many servers (issue 14): one card, one vote, a rolling rollout.

Every server has its own `Request` under its own policy, created pending with the fleet,
approved with it once every server's policy is met (`core.authorization`, the decision
single requests use too), and started by `advance()` through `Deployments.submit` (so each
server gets at most one start call, and a restart resumes where it stopped). A server of a
fleet is never approved, rejected or cancelled on its own; the image's checksum is verified
once for the fleet before any server starts. The servers' requests stay quiet (no card,
no thread of their own); `advance()` posts in the fleet's thread on state changes only:
each server started, done or failed, each wave finished, and the final summary. The card's
table is redrawn in place when something changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress

from . import change_messages, messages, sent
from .authorization import Authorization
from .checks import Check, Severity, blocking
from .deployments.base import (
    APPROVE_REACTIONS,
    CHECKSUM,
    REJECT_REACTIONS,
    SYSTEM,
    Refused,
    checksum_pending,
)
from .fleet import (
    FAILED_STATES,
    RUNNING_STATES,
    Fleet,
    FleetState,
    Rollout,
    fingerprint,
    to_start,
    waves,
)
from .ports import FleetView, ServerBusy
from .posts import Post
from .request import DeploySpec, Request
from .service import Deployments
from .states import IllegalTransition, State
from .text import esc

log = logging.getLogger(__name__)

FLEET_PREFIX = "f-"
ICONS = {"started": "▶️", "done": "✅", "failed": "🔥"}


class Fleets:
    """Fleet requests over the same store, provider and chat as `deployments`."""

    def __init__(
        self, deployments: Deployments, *, limit: int = 50, block_on_refusal: bool = False
    ) -> None:
        self.d = deployments
        self.limit = limit  # most servers one request may take
        self.block_on_refusal = block_on_refusal
        self._verifying: set[str] = set()  # fleets whose checksum this process verifies
        deployments.fleets = self

    # -- asking ---------------------------------------------------------------------

    def request(
        self,
        specs: Sequence[DeploySpec],
        refused: Sequence[tuple[str, str]],
        rollout: Rollout,
        requester: str,
        channel: str,
        *,
        pattern: str | None = None,
        source: dict | None = None,
    ) -> Fleet:
        """Preflight every server, store the fleet and its servers, post one card.

        Refused (`Refused`, naming the servers and why) when any server's policy does not
        let `requester` ask in `channel`. `refused` are servers already left out (e.g.
        outside a catalog image's patterns). Servers whose preflight blocks are left out too,
        or refuse the whole request when the policy setting says so.
        """
        d = self.d
        denied = d.authorization.may_request([s.server for s in specs], requester, channel)
        if denied:
            raise Refused(denied)
        self._check_change_control(specs, requester)
        left_out = list(refused)
        ready: list[tuple[DeploySpec, dict]] = []
        for spec, (why, facts) in zip(specs, self._preflight(specs), strict=True):
            resolved, unsendable = spec, []
            if not why:
                own = d.policies.for_server(spec.server)
                image_facts = facts.get("image", {})
                resolved, unsendable = sent.resolve(
                    spec, own.api, image_facts, facts.get("facts"), own.keep_disks
                )
            if why or unsendable:
                left_out.append((spec.server, why or "; ".join(unsendable)))
            else:
                ready.append((resolved, facts))
        if not ready or (left_out and self.block_on_refusal):
            summary = messages.fleet_summary(len(ready), left_out)
            raise Refused([f"Nothing was requested. {summary}"])
        verify = d.verifier is not None and any(spec.checksum for spec, _ in ready)
        waiting = [Check(CHECKSUM, Severity.WARNING, messages.checksum_progress(0, None))]
        now = d.clock.now()
        fleet_id = FLEET_PREFIX + d.new_id().removeprefix("r-")
        children = []
        for spec, facts in ready:
            policy = d.policies.for_server(spec.server)
            checks = facts["checks"] + (waiting if verify else [])
            image = facts.get("image", {}) | ({"catalog": source} if source else {})
            child = d.pending(
                spec, requester, channel, policy, checks, facts.get("server"), image, fleet_id
            )
            children.append((child, spec.secrets()))
        names = list(dict.fromkeys(c.policy_name for c, _ in children))
        fleet = Fleet(
            id=fleet_id,
            requester=requester,
            channel=channel,
            state=FleetState.PENDING_APPROVAL,
            created_at=now,
            expires_at=max(c.expires_at for c, _ in children),
            policy_name=", ".join(names),
            servers=tuple(c.spec.server for c, _ in children),
            rollout=rollout,
            pattern=pattern,
            refused=tuple(left_out),
            fingerprint=fingerprint([c.fingerprint for c, _ in children], rollout),
        )
        try:
            d.store.create_fleet(fleet, children)
        except ServerBusy as exc:
            raise Refused([messages.busy(exc.server, exc.other)]) from None
        fleet.message_ts = d.post_card(fleet, d.store.fleet)  # core.deployments.cards
        if verify:
            self._start_verifying(fleet.id)
        return fleet

    def _check_change_control(self, specs: Sequence[DeploySpec], requester: str) -> None:
        """Each server's policy's change control, as for a single request (an emergency
        only from its `emergency_requesters`, an `at=` inside its windows); `Refused`
        naming the server otherwise."""
        d = self.d
        for spec in specs:
            policy = d.policies.for_server(spec.server)
            try:
                d.check_change_control(spec, policy, requester, d.authorization.groups(policy))
            except Refused as exc:
                where = f"`{esc(spec.server)}` (policy `{esc(policy.name)}`)"
                raise Refused([f"{where}: {reason}" for reason in exc.reasons]) from None

    def _preflight(self, specs: Sequence[DeploySpec]) -> list[tuple[str | None, dict]]:
        """Per server: why it cannot go (or None) and its facts; the image is read once."""
        d = self.d
        results: list[tuple[str | None, dict]] = []
        readable = []
        for spec in specs:
            busy = d.store.active(spec.server)
            facts, checks = (None, []) if busy else d.server_preflight(spec)
            why = messages.busy(spec.server, busy[0]) if busy else _blocking(checks)
            results.append((why, {"facts": facts, "checks": checks}))
            if not why and facts is not None:
                readable.append(len(results) - 1)
        if d.inspector is not None and readable:
            reports = d.inspector.inspect_many(
                [specs[i] for i in readable], [results[i][1]["facts"] for i in readable]
            )
            for i, report in zip(readable, reports, strict=True):
                found = results[i][1]
                found["checks"] = found["checks"] + list(report.checks)
                found["image"] = dict(report.facts)
                results[i] = (_blocking(found["checks"]), found)
        for _, found in results:
            found["server"] = found["facts"].to_dict() if found.get("facts") else None
        return results

    # -- approving ------------------------------------------------------------------

    def react(self, fleet: Fleet, user: str, reaction: str, added: bool) -> None:
        """✅ approves (removing it withdraws), ❌ rejects (from the requester: cancels)."""
        if reaction in REJECT_REACTIONS and added:
            self.reject(fleet.id, user)
        elif reaction in APPROVE_REACTIONS and added:
            self.approve(fleet.id, user)
        elif reaction in APPROVE_REACTIONS and self._withdraw(fleet, user):
            self._reply(fleet, messages.withdrawn(user))
            self.redraw(fleet)

    def _withdraw(self, fleet: Fleet, user: str) -> bool:
        pending = fleet.state is FleetState.PENDING_APPROVAL
        return pending and self.d.store.remove_fleet_approval(fleet, user)

    def approve(self, fleet_id: str, user: str) -> None:
        """Count `user`'s approval for the servers whose policy lists them; once every
        server's policy is met, approve them all and start."""
        d = self.d
        fleet = self._get(fleet_id)
        if fleet.state is not FleetState.PENDING_APPROVAL:
            return
        members = d.store.fleet_members(fleet)
        if self._expire_if_closed(fleet, members):
            return
        counted, refusal = d.authorization.may_vote_any(members, user)
        if not counted:
            d.chat.tell(user, fleet.channel, messages.cannot_approve(refusal))
            return
        if not d.store.add_fleet_approval(fleet, user, [m.id for m in counted]):
            return
        standings = d.authorization.standings(members)
        if not all(s.met for s in standings):
            self._reply(fleet, messages.fleet_approval(user, standings))
            self.redraw(fleet)
            return
        if d.store.fleet_transition(
            fleet.id,
            FleetState.PENDING_APPROVAL,
            FleetState.RUNNING,
            user,
            "every server's policy met: " + messages.fleet_counted(standings),
            started_at=d.clock.now(),
        ):
            for member in members:
                self._move(member, State.PENDING_APPROVAL, State.APPROVED, user, "fleet approved")
            fleet = self._get(fleet.id)
            self._reply(fleet, messages.fleet_approved(fleet, user, standings))
            self.advance(fleet.id)

    def reject(self, fleet_id: str, user: str) -> None:
        """❌ from an approver of any of its servers rejects the whole fleet; from the
        requester it cancels it."""
        fleet = self._get(fleet_id)
        if fleet.state is not FleetState.PENDING_APPROVAL:
            return
        if user == fleet.requester:
            self._end(fleet, FleetState.CANCELLED, user, "cancelled by the requester")
            return
        members = self.d.store.fleet_members(fleet)
        counted, refusal = self.d.authorization.may_vote_any(members, user)
        if not counted:
            self.d.chat.tell(user, fleet.channel, messages.cannot_reject(refusal))
            return
        self._end(fleet, FleetState.REJECTED, user, "rejected", State.REJECTED)

    def cancel(self, fleet_id: str, user: str) -> str:
        """`/byoi cancel f-…`: no new installation starts. The requester or an approver of
        any of its servers may; running installations are cancelled too, where the API
        allows it, on the servers whose policy lists `user` (not the requester)."""
        fleet = self._get(fleet_id)
        counted, _ = self.d.authorization.may_vote_any(self.d.store.fleet_members(fleet), user)
        if user != fleet.requester and not counted:
            raise Refused([f"Only the requester or an approver may cancel `{fleet.id}`."])
        ended = not fleet.state.is_final and self._end(
            fleet, FleetState.CANCELLED, user, "cancelled"
        )
        mine = {m.id for m in counted}
        running = [m for m in self.d.store.fleet_members(fleet) if m.state in RUNNING_STATES]
        if not ended and not mine & {m.id for m in running}:
            raise Refused([f"`{fleet.id}` is {fleet.state.replace('_', ' ')}: nothing to cancel."])
        stopped, kept = [], []
        for member in (m for m in running if m.id in mine):
            try:
                self.d.cancel_server(member, user)
                stopped.append(member.spec.server)
            except Refused as exc:
                kept.append((member.spec.server, exc.reasons[0]))
        fleet = self._get(fleet.id)
        if stopped:
            for text in self._announce(fleet, self.d.store.fleet_members(fleet)):
                self._reply(fleet, text)
            self.redraw(fleet)
        left = len(running) - len(stopped)
        return messages.fleet_cancelled(fleet, left, stopped, kept)

    def _expire_if_closed(self, fleet: Fleet, members: list[Request]) -> bool:
        """End the fleet as expired when one of its policies' windows closed unmet."""
        standings = self.d.authorization.standings(members)
        closed = Authorization.closed(standings, self.d.clock.now())
        if closed is None:
            return False
        why = messages.fleet_window_closed(closed)
        self._end(fleet, FleetState.EXPIRED, SYSTEM, why, State.EXPIRED)
        return True

    # -- verifying the image --------------------------------------------------------

    def verify_checksum(self, fleet_id: str) -> None:
        """Verify the image's checksum once for the fleet (every server has the same image);
        a mismatch fails every server not started (none is, while it is verified) and stops
        the fleet; a match lets the rollout start."""
        d = self.d
        fleet = self._get(fleet_id)
        waiting = [m for m in d.store.fleet_members(fleet) if checksum_pending(m)]
        if not waiting or fleet.state.is_final:
            return
        result = d.checked_image(waiting[0], lambda check: self._set_checksum(waiting, check))
        self._set_checksum(waiting, result)
        fleet = self._get(fleet_id)
        if result.severity is Severity.OK:
            if fleet.state is FleetState.RUNNING:
                self.advance(fleet.id)
            return
        text = messages.checksum_failed(result.message)
        if fleet.state.is_final or not d.store.fleet_transition(
            fleet.id, fleet.state, FleetState.STOPPED, SYSTEM, text[:500], finished_at=d.clock.now()
        ):
            return
        for member in d.store.fleet_members(fleet):
            if member.state in (State.PENDING_APPROVAL, State.APPROVED):
                self._move(member, member.state, State.FAILED, SYSTEM, text[:500])
        fleet = self._get(fleet.id)
        self._reply(fleet, messages.fleet_checksum_failed(fleet, text))
        self.redraw(fleet)

    def _start_verifying(self, fleet_id: str) -> None:
        """Verify in the background, unless it runs already here or on another replica
        (claimed in the store)."""
        if fleet_id in self._verifying:
            return
        self._verifying.add(fleet_id)

        def run() -> None:
            try:
                with self.d.store.claim_request(f"checksum:{fleet_id}") as mine:
                    if mine:
                        self.verify_checksum(fleet_id)
            finally:
                self._verifying.discard(fleet_id)

        self.d.background(run)

    def _resume_verifying(self, fleet: Fleet) -> None:
        """Verify again a checksum a previous process (or replica) left unfinished."""
        if self.d.verifier is None or fleet.state.is_final:
            return
        if any(checksum_pending(m) for m in self.d.store.fleet_members(fleet)):
            self._start_verifying(fleet.id)

    def _set_checksum(self, members: list[Request], check: Check) -> None:
        """Show the checksum's progress or result on every server, then on the card."""
        for member in members:
            checks = [c for c in member.checks if c["name"] != CHECKSUM] + [check.to_dict()]
            member.checks = checks
            self.d.store.update(member.id, checks=checks)
        fleet = self.d.store.fleet(members[0].fleet_id or "")
        if fleet:
            self.redraw(fleet)

    # -- rolling out ----------------------------------------------------------------

    def advance_all(self) -> None:
        """The rollout job: every fleet waiting or rolling out moves on (a checksum
        verification cut by a restart starts again); a cancelled one still tells how its
        running installations end."""
        states = [FleetState.PENDING_APPROVAL, FleetState.RUNNING, FleetState.CANCELLED]
        for fleet in self.d.store.fleets_in_states(states):
            if fleet.state is FleetState.CANCELLED and len(fleet.announced) == sum(
                1 for kind in fleet.announced.values() if kind in ("done", "failed")
            ):
                continue  # nothing of it is running any more
            try:
                self._resume_verifying(fleet)
                self.advance(fleet.id)
            except Exception:
                log.exception("rollout of %s failed; will retry", fleet.id)

    def advance(self, fleet_id: str) -> None:
        """Start what the plan allows, post what changed, end the fleet when all ended."""
        d = self.d
        fleet = self._get(fleet_id)
        members = d.store.fleet_members(fleet)
        if fleet.state is FleetState.PENDING_APPROVAL:
            self._expire_if_closed(fleet, members)
            return
        verified = not any(checksum_pending(m) for m in members)
        freezes = d.freezes_in_force(d.clock.now())  # read once for every server
        if (
            fleet.state is FleetState.RUNNING
            and verified
            and all(d.is_due(m, freezes) for m in members)
        ):
            for i in to_start([m.state for m in members], fleet.rollout):
                d.submit(members[i].id)
            members = d.store.fleet_members(fleet)
        posts = self._announce(fleet, members)
        if fleet.state is FleetState.RUNNING and self._over(fleet, members):
            stopped = any(m.state in (State.FAILED, State.CANCELLED) for m in members)
            to = (
                FleetState.STOPPED if stopped and fleet.rollout.stop_on_failure else FleetState.DONE
            )
            left = [m for m in members if m.state is State.APPROVED]
            why = self._why_stopped(members)  # before the servers left are cancelled
            if d.store.fleet_transition(
                fleet.id, FleetState.RUNNING, to, SYSTEM, "rollout over", finished_at=d.clock.now()
            ):
                for member in left:
                    self._move(member, State.APPROVED, State.CANCELLED, SYSTEM, "rollout stopped")
                fleet = self._get(fleet.id)
                summary = messages.fleet_finished(fleet, d.store.fleet_members(fleet), why)
                last = posts.pop() + "\n" if posts and posts[-1].startswith("🌊") else ""
                posts.append(last + summary)  # the last wave's line heads the summary
        for text in posts:
            self._reply(fleet, text)
        if posts:
            self.redraw(self._get(fleet.id))

    def _over(self, fleet: Fleet, members: list[Request]) -> bool:
        if all(m.state.is_final for m in members):
            return True
        running = any(m.state in RUNNING_STATES for m in members)
        return not running and not to_start([m.state for m in members], fleet.rollout)

    def _announce(self, fleet: Fleet, members: list[Request]) -> list[str]:
        """The posts for what changed: one line for the servers started since the last
        time, one per server done or failed, one per wave finished."""
        announced = dict(fleet.announced)
        started, ended = [], []
        for member in members:
            kind = _kind(member)
            if not kind or announced.get(member.id) in (kind, "done", "failed"):
                continue
            if member.id not in announced and member.submitted_at:
                started.append(member)
            if kind != "started":
                ended.append(messages.fleet_member(member, kind, self._reason(member)))
            announced[member.id] = kind
        posts = [messages.fleet_started(started)] if started else []
        posts += ended
        done_waves = fleet.waves_announced
        plan = waves(len(members), fleet.rollout)
        while done_waves < len(plan) and all(
            members[i].state.is_final and members[i].submitted_at for i in plan[done_waves]
        ):
            wave = [members[i] for i in plan[done_waves]]
            posts.append(messages.fleet_wave(done_waves + 1, len(plan), wave))
            done_waves += 1
        if posts:
            self.d.store.update_fleet(fleet.id, announced=announced, waves_announced=done_waves)
            fleet.announced, fleet.waves_announced = announced, done_waves
        return posts

    def _why_stopped(self, members: list[Request]) -> str | None:
        """What stopped the rollout: the first server that failed or ended early, and why."""
        ended = next((m for m in members if m.state in FAILED_STATES), None)
        if ended is None:
            return None
        return messages.fleet_stopped_by(ended, self._reason(ended))

    def _reason(self, member: Request) -> str | None:
        if member.state is State.DONE:
            return None
        audit = self.d.store.audit(member.id)
        return audit[-1]["reason"] if audit else None

    # -- showing --------------------------------------------------------------------

    def view(self, fleet: Fleet) -> FleetView:
        members = tuple(self.d.store.fleet_members(fleet))
        return FleetView(
            fleet=fleet,
            members=members,
            standings=tuple(self.d.authorization.standings(members)),
            status_line=messages.fleet_status(fleet, members) + self._waiting(fleet, members),
        )

    def _waiting(self, fleet: Fleet, members: tuple[Request, ...]) -> str:
        """Why the next wave has not started (a window, a freeze, `at=`), and when it will."""
        left = [m for m in members if m.state is State.APPROVED]
        if fleet.state is not FleetState.RUNNING or not left:
            return ""
        freezes = self.d.freezes_in_force(self.d.clock.now())
        decisions = (self.d.start_decision(m, freezes) for m in members)
        latest = max(decisions, key=lambda x: x.start_at)
        if latest.now:
            return ""
        return "\n⏸️ " + change_messages.next_wave(latest, self.d.clock.now())

    def redraw(self, fleet: Fleet) -> None:
        """Queue a redraw of the fleet's card (the outbox draws it when sending)."""
        if fleet.message_ts:
            self.d.store.enqueue([Post.card(fleet)])

    # -- helpers --------------------------------------------------------------------

    def cancel_unposted(self, fleet_id: str) -> None:
        """The fleet's card could not be posted: nobody can vote, it is cancelled."""
        fleet = self.d.store.fleet(fleet_id)
        if fleet is not None and fleet.state is FleetState.PENDING_APPROVAL:
            self._end(fleet, FleetState.CANCELLED, SYSTEM, "card not posted", State.CANCELLED)

    def _end(
        self,
        fleet: Fleet,
        to: FleetState,
        actor: str,
        reason: str,
        members_to: State = State.CANCELLED,
    ) -> bool:
        """End a fleet: its servers not started yet end too (running ones finish)."""
        d = self.d
        if not d.store.fleet_transition(
            fleet.id, fleet.state, to, actor, reason, finished_at=d.clock.now()
        ):
            return False
        for member in d.store.fleet_members(fleet):
            if member.state in (State.PENDING_APPROVAL, State.APPROVED):
                target = members_to if member.state is State.PENDING_APPROVAL else State.CANCELLED
                self._move(member, member.state, target, actor, reason)
        fleet = self._get(fleet.id)
        self._reply(fleet, messages.fleet_ended(fleet, actor, reason))
        self.redraw(fleet)
        return True

    def _move(self, member: Request, expected: State, to: State, actor: str, reason: str) -> None:
        fields = {"finished_at": self.d.clock.now()} if to.is_final else {}
        with suppress(IllegalTransition):  # moved meanwhile (e.g. its own expiry)
            self.d.store.transition(member.id, expected, to, actor, reason, **fields)

    def _get(self, fleet_id: str) -> Fleet:
        fleet = self.d.store.fleet(fleet_id)
        if fleet is None:
            raise Refused([messages.unknown_request(fleet_id)])
        return fleet

    def _reply(self, fleet: Fleet, text: str) -> None:
        """Queue a post in the fleet's thread (the outbox sends it, paced)."""
        self.d.store.enqueue([Post.reply(fleet, text)])


def _blocking(checks: list) -> str | None:
    blockers = blocking(checks)
    return "; ".join(c.message for c in blockers) if blockers else None


def _kind(member: Request) -> str | None:
    """What to post about a server: started, done, failed (a server never started and
    cancelled with the rollout is only in the summary)."""
    if member.state in (State.DEPLOYING, State.BOOTING):
        return "started"
    if member.state is State.DONE:
        return "done"
    if member.state is State.FAILED or (member.state is State.CANCELLED and member.submitted_at):
        return "failed"
    return None


def expand(names: Sequence[str], pattern: str) -> list[str]:
    """The account's servers matching `pattern` (shell-style, case-insensitive), sorted."""
    from fnmatch import fnmatchcase

    return sorted(n for n in names if fnmatchcase(n.lower(), pattern.lower()))
