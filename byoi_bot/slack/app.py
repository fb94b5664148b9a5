"""The Bolt app: small listener functions that ack first and hand the work to the core.

Slack wants an answer within 3 seconds: every listener calls `ack()` before anything slow
(preflight reads an image over HTTP; approvals may call OVHcloud). Retried deliveries of
the same event are recognised by `event_id` in the store and counted once.
"""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from .. import commands
from ..core.service import Deployments, Refused
from ..dispatch import run_command
from ..store import Store
from .cards import APPROVE_ACTION, REJECT_ACTION
from .form import CALLBACK_ID, deploy_modal, spec_from_submission

log = logging.getLogger(__name__)


def build_app(
    client: WebClient, signing_secret: str, deployments: Deployments, store: Store
) -> App:
    """A Bolt app whose listeners drive `deployments`."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        token_verification_enabled=False,
        ignoring_self_events_enabled=True,
    )

    @app.command("/byoi")
    def on_byoi(ack: Ack, command: dict, respond: Respond, client: WebClient) -> None:
        ack()
        user, channel = command["user_id"], command["channel_id"]
        try:
            parsed = commands.parse(command.get("text") or "")
        except commands.CommandError as exc:
            respond(str(exc))
            return
        if isinstance(parsed, commands.Deploy) and parsed.spec is None:
            client.views_open(trigger_id=command["trigger_id"], view=deploy_modal(channel))
            return
        if isinstance(parsed, commands.Deploy):
            respond(f"Checking `{parsed.spec.server}` and the image before posting the request…")
        respond(run_command(deployments, parsed, user, channel))

    @app.view(CALLBACK_ID)
    def on_form(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        try:
            channel, spec = spec_from_submission(view)
        except commands.CommandError as exc:
            block = exc.argument if exc.argument in view["state"]["values"] else "server"
            ack(response_action="errors", errors={block: str(exc)[:150]})
            return
        ack()
        user = body["user"]["id"]
        try:
            deployments.request(spec, user, channel)
        except Refused as exc:
            client.chat_postEphemeral(channel=channel, user=user, text="\n".join(exc.reasons))

    @app.event("reaction_added")
    def on_reaction_added(body: dict, event: dict) -> None:
        _react(body, event, added=True)

    @app.event("reaction_removed")
    def on_reaction_removed(body: dict, event: dict) -> None:
        _react(body, event, added=False)

    def _react(body: dict, event: dict, added: bool) -> None:
        item = event.get("item") or {}
        event_id = body.get("event_id")
        if item.get("type") != "message" or (event_id and not store.first_delivery(event_id)):
            return
        deployments.react(item["channel"], item["ts"], event["user"], event["reaction"], added)

    @app.action(APPROVE_ACTION)
    def on_approve(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        _vote(deployments.approve, action["value"], body["user"]["id"], respond)

    @app.action(REJECT_ACTION)
    def on_reject(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        _vote(deployments.reject, action["value"], body["user"]["id"], respond)

    @app.error
    def on_error(error: Exception, body: dict) -> None:
        log.error("listener failed: %s", type(error).__name__, exc_info=error)

    return app


def _vote(vote, request_id: str, user: str, respond: Respond) -> None:
    try:
        vote(request_id, user)
    except Refused as exc:
        respond(text="\n".join(exc.reasons), replace_original=False)
