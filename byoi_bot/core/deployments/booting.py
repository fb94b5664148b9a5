"""Following the boot: after OVHcloud's done, the server must answer before `done`.

`installed()` opens the gate (`deploying → booting`) and probes at once; `follow_boot()`
(each poll cycle, paced by `Timing.probe`) probes again until the server answers
(`booting → done`) or the policy's time is up (`booting → failed`, with the runbook).
`phone_home()` is the server's own call (cloud-init), which passes the gate too. The gate is
stored with the request, so a restarted bot resumes it; it is never passed by default.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from .. import messages
from ..boot_gate import BootTarget, Gate, ProbeResult, token_matches
from ..policy import Policy
from ..posts import Post
from ..progress import Progress
from ..request import Request
from ..runbook import runbook
from ..states import IllegalTransition, State
from .base import SYSTEM, Workflow

log = logging.getLogger(__name__)

# Host key fields cloud-init's phone_home posts, as the thread names them.
HOST_KEYS = {"pub_key_ed25519": "ed25519", "pub_key_ecdsa": "ecdsa", "pub_key_rsa": "rsa"}
# A public key's type and base64 body (its comment, server-chosen text, is dropped).
HOST_KEY = re.compile(
    r"(ssh-[a-z0-9-]{1,40}|ecdsa-sha2-nistp[0-9]{3}) [A-Za-z0-9+/]{16,4096}={0,2}"
)


class Booting(Workflow):
    """The boot gate of one request: open it, probe, pass or fail it."""

    def installed(self, request: Request, progress: Progress) -> None:
        """OVHcloud reports done: open the gate and probe at once (or finish, gate off)."""
        now = self.clock.now()
        request = self._get(request.id)  # with a phone-home that came meanwhile
        record = progress.to_dict() | {"signature": progress.signature()}
        policy = self.policies.for_server(request.spec.server)
        if self.probe is None or not policy.boot_gate:
            self._end(request, State.DONE, "OVHcloud reports done; boot not checked",
                      messages.done_unchecked, progress=record)  # fmt: skip
            return
        gate = replace(
            Gate.from_dict(request.boot or {}),
            opened_at=now,
            deadline=now + policy.boot_timeout,
            **self._where(request, policy),
        )
        try:
            request, _ = self.store.transition(
                request.id,
                State.DEPLOYING,
                State.BOOTING,
                SYSTEM,
                "OVHcloud reports done; waiting for the server to answer",
                progress=record,
                boot=gate.to_dict(),
                last_status=messages.boot_status(gate),
            )  # no post yet: the first probe, right now, says what the card and thread show
        except IllegalTransition:
            return  # moved meanwhile (cancelled, or another poll got there)
        self.follow_boot(request)

    def follow_boot(self, request: Request) -> None:
        """Probe once if due; pass, fail at the deadline, or tell the thread it waits.

        The server's IP is the one its preflight read (a server keeps its IP through a
        reinstall), or read from OVHcloud when preflight had none. Raises `ProviderError`
        when it could not be read (the poller tries again later)."""
        gate = Gate.from_dict(request.boot or {})
        now = self.clock.now()
        if gate.phoned_home:
            self._pass(request, "it phoned home (cloud-init)", gate)
            return
        if not gate.due(now) or self.probe is None:
            return
        if gate.ip is None:  # the address preflight read, else OVHcloud's answer now
            known = (request.server_facts or {}).get("ip")
            ip = known or self.provider.server_facts(request.spec.server).ip
            gate = replace(gate, ip=ip or None)
        result = ProbeResult(False, "OVHcloud gives no IP address for this server")
        if gate.ip:
            target = BootTarget(request.spec.server, gate.ip, gate.ssh_port, gate.health_url)
            result = self.probe.probe(target)
        gate = gate.probed(now, result, self.timing.probe)
        if result.passed:
            self._pass(request, result.detail, gate)
        elif gate.deadline is None or now >= gate.deadline:
            self._fail_boot(request, gate)
        else:
            status = messages.boot_status(gate)
            posts = [Post.card(request)] if status != request.last_status else []
            if not gate.waiting_told:
                gate = replace(gate, waiting_told=True)
                posts.insert(0, Post.reply(request, messages.boot_waiting(request, gate)))
            self.store.update(request.id, posts, boot=gate.to_dict(), last_status=status)

    def phone_home(self, request_id: str, token: str, form: dict[str, str]) -> bool:
        """The server's cloud-init called its one-time URL: True when the token was this
        request's (the gate passes, or will as soon as OVHcloud says done); used once."""
        request = self.store.get(request_id)
        if request is None or request.state not in (State.DEPLOYING, State.BOOTING):
            return False
        gate = Gate.from_dict(request.boot or {})
        if gate.phoned_home or not token_matches(gate, token):
            return False
        keys = tuple(
            (name, found.group(0))
            for field, name in HOST_KEYS.items()
            if (found := HOST_KEY.match(form.get(field, "").strip()))
        )
        gate = replace(gate, phoned_home=True, host_keys=keys, token_hash=None)
        self.store.update(request.id, boot=gate.to_dict())
        self.store.note(request.id, SYSTEM, "phone_home", f"{len(keys)} host key(s) reported")
        if request.state is State.BOOTING:
            self._pass(request, "it phoned home (cloud-init)", gate)
        return True

    def _where(self, request: Request, policy: Policy) -> dict:
        """Where to probe: the catalog image's SSH port, else the policy's; the health URL
        of the request (or of its catalog image)."""
        image = (request.image_facts or {}).get("catalog") or {}
        return {
            "ssh_port": int(image.get("ssh_port") or policy.boot_ssh_port),
            "health_url": request.spec.health_url,
        }

    def _pass(self, request: Request, proof: str, gate: Gate) -> None:
        def say(r: Request, now) -> str:
            text = messages.booted(r, proof, now)
            return text + ("\n" + messages.host_keys(gate.host_keys) if gate.host_keys else "")

        self._end(request, State.DONE, f"the server answered: {proof[:200]}", say,
                  boot=gate.to_dict())  # fmt: skip

    def _fail_boot(self, request: Request, gate: Gate) -> None:
        waited = (gate.deadline or self.clock.now()) - (gate.opened_at or self.clock.now())

        def say(r: Request, now) -> str:
            return messages.boot_failed(r, gate, waited) + "\n" + runbook(r, gate)

        self._end(request, State.FAILED, "the install finished but the server did not come "
                  f"back: {gate.last[:200]}", say, boot=gate.to_dict())  # fmt: skip

    def _end(self, request: Request, to: State, reason: str, say, **fields: object) -> None:
        now = self.clock.now()
        try:
            ended, _ = self.store.transition(
                request.id,
                request.state,
                to,
                SYSTEM,
                reason,
                finished_at=now,
                posts=lambda r: [Post.reply(r, say(r, now)), Post.card(r)],
                **fields,
            )
        except IllegalTransition:
            log.info("%s moved meanwhile; its gate's end is left to that change", request.id)
            return
        self.on_finished(ended)  # the deploy's whole duration, the gate included
