"""The Bolt app: small listener functions that ack first and hand the work to the core.

Slack wants an answer within 3 seconds: every listener calls `ack()` before anything slow
(preflight reads an image over HTTP; approvals may call OVHcloud). Retried deliveries of
the same event are recognised by `event_id` in the store and counted once.

Everything in a payload is treated as hostile: a missing or oddly typed field is ignored
(events, buttons) or answered in plain words (commands, the form), never a stack trace and
never a 5xx that makes Slack retry. A vote button counts only on the card it belongs to (or
on the App Home, whose buttons name their request).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import Ack, App, BoltRequest, BoltResponse, Respond
from slack_sdk import WebClient

from .. import commands
from ..core import messages
from ..core.home import home_of
from ..core.outbox import ChatHealth
from ..core.service import Deployments, Refused
from ..core.text import esc, truncate
from ..dispatch import run_command
from ..store import Store
from .cards import APPROVE_ACTION, REJECT_ACTION
from .errors import failed
from .form import CALLBACK_ID, deploy_modal, spec_from_submission
from .home import REVIEW_ACTION, home_view
from .manifest import (
    APP_HOME_OPENED,
    APP_UNINSTALLED,
    COMMAND,
    REACTION_ADDED,
    REACTION_REMOVED,
    TOKENS_REVOKED,
)
from .work import BUSY, Work

log = logging.getLogger(__name__)

ANY = re.compile(r".*", re.DOTALL)
INTERNAL_ERROR = (
    "Sorry, byoi-bot could not handle that because of an internal error; nothing was "
    "changed. Try again, or ask the bot's operators to look at its log."
)
NOT_THIS_CARD = (
    "This button does not belong to that request's card, so nothing was counted. "
    "Use the buttons or the ✅/❌ reactions on the request's own card."
)
FORM_NOT_OPENED = (
    "byoi-bot could not open the form (Slack gives it 3 seconds). Try again, or type the "
    "request: `/byoi deploy <server> <image URL>`."
)
FORM_ERROR_LIMIT = 150
LISTENER_THREADS = 16  # they only ack and hand over: enough for bursts of Slack requests


def build_app(
    client: WebClient,
    signing_secret: str,
    deployments: Deployments,
    store: Store,
    *,
    preflights: Work | None = None,
    work: Work | None = None,
    scheduler_running: Callable[[], bool] = lambda: True,
    chat_health: ChatHealth | None = None,
) -> App:
    """A Bolt app whose listeners ack, then drive `deployments` on the bot's own threads.

    New requests (a preflight reads the image over HTTP, for seconds) run on `preflights`;
    everything else (answers, votes, reactions) on `work`, so a burst of slow preflights
    delays neither an ack nor a `help`. `chat_health` (the outbox's) turns red when Slack
    says the token is gone, and the App Home shows it.
    """
    chat_health = chat_health or ChatHealth()
    preflights = preflights or Work(workers=16, queue=48)
    work = work or Work(workers=4, queue=64)
    app = _GuardedApp(
        client=client,
        signing_secret=signing_secret,
        token_verification_enabled=False,
        ignoring_self_events_enabled=True,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS),
    )
    app.background = (preflights, work)

    @app.command(COMMAND)
    def on_byoi(ack: Ack, command: dict, respond: Respond, client: WebClient) -> None:
        user, channel = _text(command, "user_id"), _text(command, "channel_id")
        text = command.get("text")
        try:
            parsed = commands.parse(
                text if isinstance(text, str) else "", now=deployments.clock.now()
            )
        except commands.CommandError as exc:
            ack(str(exc))  # answers that need no I/O go in the ack itself
            return
        if isinstance(parsed, commands.Help):
            ack(run_command(deployments, parsed, user, channel))
            return
        if isinstance(parsed, commands.Deploy) and parsed.spec is parsed.catalog is None:
            ack()
            _open_form(client, _text(command, "trigger_id"), channel, respond)
            return
        if isinstance(parsed, commands.Deploy):
            server = f"`{esc((parsed.spec or parsed.catalog).server)}`"
            if parsed.fleet:
                server = "the servers"
            ack(f"Checking {server} and the image before posting the request…")
        else:
            ack()
        if not user or not channel:
            respond("byoi-bot could not tell who ran the command, or where; nothing was done.")
        elif not (preflights if isinstance(parsed, commands.Deploy) else work).submit(
            _answer_command, parsed, user, channel, respond
        ):
            respond(BUSY)

    def _answer_command(
        parsed: commands.Command, user: str, channel: str, respond: Respond
    ) -> None:
        try:
            respond(run_command(deployments, parsed, user, channel))
        except Exception as exc:
            log.error("/byoi failed: %s", type(exc).__name__, exc_info=exc)
            respond(INTERNAL_ERROR)

    @app.view(CALLBACK_ID)
    def on_form(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        blocks = _form_blocks(view)
        try:
            channel, spec = spec_from_submission(view, now=deployments.clock.now())
        except commands.CommandError as exc:
            block = exc.argument if exc.argument in blocks else _first_block(blocks)
            ack(response_action="errors", errors={block: truncate(str(exc), FORM_ERROR_LIMIT)})
            return
        except Exception as exc:  # a payload that is not a form this bot opened
            log.warning("unreadable form submission: %s", type(exc).__name__)
            ack(
                response_action="errors",
                errors={_first_block(blocks): "This form could not be read; open it again."},
            )
            return
        user = _text(body.get("user"), "id")
        if not user or not channel or not isinstance(channel, str):
            ack(
                response_action="errors",
                errors={_first_block(blocks): "This form lost its channel; open it again."},
            )
            return
        ack()
        if not preflights.submit(_request_from_form, spec, user, channel, client):
            _tell(client, channel, user, BUSY)

    def _request_from_form(spec, user: str, channel: str, client: WebClient) -> None:
        try:
            deployments.request(spec, user, channel)
        except Refused as exc:
            _tell(client, channel, user, "\n".join(exc.reasons))
        except Exception as exc:
            log.error("form submission failed: %s", type(exc).__name__, exc_info=exc)
            _tell(client, channel, user, INTERNAL_ERROR)

    @app.event(REACTION_ADDED)
    def on_reaction_added(body: dict, event: dict) -> None:
        _react(body, event, added=True)

    @app.event(REACTION_REMOVED)
    def on_reaction_removed(body: dict, event: dict) -> None:
        _react(body, event, added=False)

    def _react(body: dict, event: dict, added: bool) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "message":
            return
        channel, ts = _text(item, "channel"), _text(item, "ts")
        user, reaction = _text(event, "user"), _text(event, "reaction")
        if not (channel and ts and user and reaction):
            log.info("ignored a %s event with missing fields", event.get("type"))
            return
        event_id = body.get("event_id")
        if event_id is not None and not isinstance(event_id, str):
            return
        if event_id and not store.first_delivery(event_id):
            return
        if not work.submit(deployments.react, channel, ts, user, reaction, added):
            _tell(app.client, channel, user, BUSY)

    @app.event(TOKENS_REVOKED)
    @app.event(APP_UNINSTALLED)
    def on_token_gone(event: dict) -> None:
        kind = _text(event, "type") or TOKENS_REVOKED
        reason = f"Slack sent {kind}: reinstall the app and set SLACK_BOT_TOKEN"
        if not chat_health.refused(reason):  # red already: the event gets its own line
            log.error(reason)

    @app.event(APP_HOME_OPENED)
    def on_home_opened(event: dict, client: WebClient) -> None:
        user = _text(event, "user")
        if user and event.get("tab", "home") == "home":
            work.submit(_publish_home, client, user)

    def _publish_home(client: WebClient, user: str) -> None:
        try:
            home = home_of(deployments, user, scheduler_running, chat_health.state())
            client.views_publish(user_id=user, view=home_view(home))
        except Exception as exc:
            log.warning("could not publish the App Home of %s: %s", user, failed(exc))

    def _vote_and_redraw(vote, body: dict, action: dict, respond: Respond, client) -> None:
        _vote(vote, store, body, action, respond)
        if _text(body.get("container"), "type") == "view":  # pressed on the App Home
            _publish_home(client, _text(body.get("user"), "id"))

    @app.action(APPROVE_ACTION)
    def on_approve(ack: Ack, body: dict, action: dict, respond: Respond, client) -> None:
        ack()
        if not work.submit(_vote_and_redraw, deployments.approve, body, action, respond, client):
            _answer(respond, BUSY)

    @app.action(REJECT_ACTION)
    def on_reject(ack: Ack, body: dict, action: dict, respond: Respond, client) -> None:
        ack()
        if not work.submit(_vote_and_redraw, deployments.reject, body, action, respond, client):
            _answer(respond, BUSY)

    @app.action(REVIEW_ACTION)
    def on_review(ack: Ack, body: dict, action: dict, respond: Respond, client) -> None:
        ack()
        if not work.submit(_vote_and_redraw, deployments.review, body, action, respond, client):
            _answer(respond, BUSY)

    # Registered last: Bolt runs the first listener that matches. Anything else Slack may
    # deliver is acknowledged (a 404 would make Slack retry it, then flag the app).
    @app.event(ANY)
    def on_other_event(event: dict) -> None:
        log.debug("ignored event %s", event.get("type"))

    @app.action(ANY)
    def on_other_action(ack: Ack, action: dict) -> None:
        ack()
        log.info("ignored unknown action %s", _text(action, "action_id"))

    @app.view(ANY)
    def on_other_view(ack: Ack) -> None:
        ack()

    @app.view_closed(ANY)
    def on_view_closed(ack: Ack) -> None:
        ack()

    @app.options(ANY)
    def on_block_suggestion(ack: Ack) -> None:
        ack(options=[])  # no menu of this bot loads its options from Slack

    @app.command(ANY)
    def on_other_command(ack: Ack, respond: Respond) -> None:
        ack()
        respond("byoi-bot only knows `/byoi`; try `/byoi help`.")

    @app.shortcut(ANY)
    def on_shortcut(ack: Ack) -> None:
        ack()

    @app.error
    def on_error(
        error: Exception, body: dict, response: BoltResponse | None, respond: Respond | None
    ) -> BoltResponse | None:
        """Every listener's last resort: logged once with its traceback, answered in plain
        words with a 200 (Bolt's default is a 500, which Slack retries)."""
        log.error("listener failed: %s", type(error).__name__, exc_info=error)
        if response is not None:  # not acknowledged yet: the answer goes in the ack
            return _internal_error_ack(body)
        if respond is not None:  # acknowledged, then failed: tell whoever waits
            _answer(respond, INTERNAL_ERROR)
        return None

    return app


class _GuardedApp(App):
    """An App whose own plumbing cannot turn an odd payload into a 500.

    Slack's `app_rate_limited` notice has no event and would get a 404 from Bolt: it is
    answered 200 and logged. Bolt's built-in middleware reads fields like ``event.type``
    without checking their type; a payload where the event is null or a string would
    otherwise end in an exception (HTTP 500, and Slack retries). Such a request is answered
    400 and logged, nothing else happens. (In HTTP mode the signature, timestamp included,
    is checked before Bolt runs: see `modes.http_server`.)
    """

    background: tuple[Work, ...] = ()  # the bot's executors, see `build_app`

    def finish_background(self) -> None:
        """Let the work handed over after acks finish (before the store closes)."""
        for work in self.background:
            work.shutdown(wait=True)

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("event", {}), dict):
            log.warning("refused a request whose body or event is not an object")
            return BoltResponse(status=400, body="")
        if body.get("type") == "app_rate_limited":  # no `event`: Bolt would answer 404
            log.warning(
                "Slack is rate-limiting this app's events (minute %s)",
                body.get("minute_rate_limited"),
            )
            return BoltResponse(status=200, body="")
        try:
            return super().dispatch(req)
        except Exception as exc:
            log.warning("refused an unreadable request: %s", type(exc).__name__)
            return BoltResponse(status=400, body="")


def _open_form(client: WebClient, trigger_id: str, channel: str, respond: Respond) -> None:
    """Open the deploy form now: its trigger id lives 3 seconds."""
    try:
        client.views_open(trigger_id=trigger_id, view=deploy_modal(channel))
    except Exception as exc:
        log.warning("could not open the form: %s", failed(exc))
        respond(FORM_NOT_OPENED)


def _internal_error_ack(body: object) -> BoltResponse:
    """The ack of a request whose listener failed: the plain answer where Slack shows one."""
    if _text(body, "command"):
        return BoltResponse(status=200, body=INTERNAL_ERROR)  # as Bolt sends ack(text)
    if _text(body, "type") == "view_submission":
        block = _first_block(_form_blocks(body.get("view")))
        errors = {block: truncate(INTERNAL_ERROR, FORM_ERROR_LIMIT)}
        return BoltResponse(status=200, body={"response_action": "errors", "errors": errors})
    return BoltResponse(status=200, body="")


def _text(data: object, key: str) -> str:
    """`data[key]` when `data` is a dict and the value a non-empty string, else ``""``."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def _form_blocks(view: object) -> dict:
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    return values if isinstance(values, dict) else {}


def _first_block(blocks: dict) -> str:
    return "server" if "server" in blocks or not blocks else next(iter(blocks))


def _tell(client: WebClient, channel: str, user: str, text: str) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except Exception as exc:
        log.warning("could not tell %s: %s", user, failed(exc))


def _vote(vote, store: Store, body: dict, action: dict, respond: Respond) -> None:
    """Count a button press on the request whose card holds the button.

    The button's value must name the request of the card it was clicked on: a value that
    names another request (a forged or replayed payload) counts for neither.
    """
    user, request_id = _text(body.get("user"), "id"), _text(action, "value")
    if not user or not request_id:
        log.info("ignored a vote without a user or a request id")
        return
    container = body.get("container")
    channel = _text(container, "channel_id") or _text(body.get("channel"), "id")
    ts = _text(container, "message_ts") or _text(body.get("message"), "ts")
    from_home = _text(container, "type") == "view"  # the App Home lists the request by id
    try:
        card = store.get(request_id) if from_home else None
        if not from_home and channel and ts:
            card = store.by_message(channel, ts)
        if card is None or card.id != request_id:
            if store.get(request_id) is None:
                raise Refused([messages.unknown_request(request_id)])
            raise Refused([NOT_THIS_CARD])
        vote(request_id, user)
    except Refused as exc:
        _answer(respond, "\n".join(exc.reasons))
    except Exception as exc:
        log.error("vote failed: %s", type(exc).__name__, exc_info=exc)
        _answer(respond, INTERNAL_ERROR)


def _answer(respond: Respond, text: str) -> None:
    try:
        respond(text=text, replace_original=False)
    except Exception as exc:  # no usable response_url in the payload
        log.warning("could not answer a button press: %s", failed(exc))
