"""Run modes: Socket Mode (default, no public URL) or HTTP (`/slack/events`, `/healthz`).

HTTP mode serves through waitress in this process (see `slack.http`); SIGTERM stops it
gracefully: no new connections, the requests received are answered, the work handed over
after acks finishes, then the scheduler and the outbox's sender stop.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from ..config import ConfigError, Settings, token_problem
from ..errors import CannotStart
from ..wiring import Bot, build_bot
from .app import build_app
from .chat import SlackChat, make_web_client
from .http import HttpServer

log = logging.getLogger(__name__)


def build_slack_bot(settings: Settings, **overrides) -> tuple[Bot, App]:
    """The bot wired to Slack's Web API at `SLACK_API_URL`, and its Bolt app."""
    client = make_web_client(settings.slack_bot_token, settings.slack_api_url)
    bot = build_bot(settings, SlackChat(client), **overrides)
    app = build_app(
        client,
        settings.slack_signing_secret,
        bot.deployments,
        bot.store,
        scheduler_running=lambda: bot.jobs.scheduler.running,
    )
    return bot, app


def run(settings: Settings, *, http: bool, host: str, port: int) -> int:
    """Run the bot until interrupted."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for warning in settings.warnings:  # e.g. a misspelt variable, with its likely name
        log.warning("%s", warning)
    for env in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET" if http else "SLACK_APP_TOKEN"):
        problem = token_problem(env, getattr(settings, env.lower()))
        if problem:
            raise ConfigError(f"{env}: {problem}; see README, section 'Quick start'")
    # Slack first: nothing (not even the store's file) is created for a token Slack refuses.
    client = make_web_client(settings.slack_bot_token, settings.slack_api_url)
    slack_accepts_the_token(client, settings.slack_api_url, required=not http)
    bot, app = build_slack_bot(settings)
    bot.start()
    try:
        if http:

            def healthy() -> bool:  # polls and expiry are running
                return bot.jobs.scheduler.running

            try:
                server = http_server(app, host, port, healthy, settings.slack_signing_secret)
            except OSError as exc:
                raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from None
            signal.signal(signal.SIGTERM, lambda *_: server.stop_in_background())
            log.info("listening on http://%s:%s/slack/events", host, server.server_port)
            server.serve_forever()
            log.info("stopped serving; finishing the work in hand")
        else:
            try:
                SocketModeHandler(app, settings.slack_app_token).start()
            except SlackApiError as exc:
                raise ConfigError(
                    f"SLACK_APP_TOKEN: Slack refused it ({exc.response.get('error')}); "
                    "generate an app-level token with connections:write"
                ) from None
            except OSError as exc:  # URLError too
                raise CannotStart(_unreachable(settings.slack_api_url, exc)) from None
    finally:
        app.finish_background()
        bot.stop()
    return 0


_REFUSED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


def slack_accepts_the_token(client: WebClient, api_url: str, *, required: bool) -> None:
    """Call `auth.test` once at start-up: a refused token is a `ConfigError`; an unreachable
    Slack is `CannotStart` when `required` (Socket Mode), else a warning (HTTP mode)."""
    try:
        client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in _REFUSED:
            raise ConfigError(
                f"SLACK_BOT_TOKEN: Slack refused it ({error}); copy the Bot User OAuth Token "
                "from the app's OAuth & Permissions page"
            ) from None
        log.warning("auth.test answered %s; starting anyway", error)
    except OSError as exc:
        if required:
            raise CannotStart(_unreachable(api_url, exc)) from None
        log.warning("%s; starting anyway", _unreachable(api_url, exc))


def _unreachable(api_url: str, exc: OSError) -> str:
    reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
    return f"cannot reach Slack at {api_url} (SLACK_API_URL): {reason}"


def http_server(
    app: App, host: str, port: int, health: Callable[[], bool], signing_secret: str
) -> HttpServer:
    """The HTTP server: Bolt at `/slack/events`, a health check at `/healthz`.

    The signature is checked before Bolt parses anything, so an unsigned or forged body,
    however malformed, gets a 401 and never reaches a listener.
    """
    bolt = SlackRequestHandler(app)
    verifier = SignatureVerifier(signing_secret)

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok = health()
            return _answer(start_response, 200 if ok else 503, {"ok": ok})
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not _signed(verifier, body, timestamp, signature):
            return _answer(start_response, 401, {"error": "invalid request signature"})
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            return bolt(environ, start_response)
        except Exception:
            log.warning("signed request Bolt could not read: answered 400", exc_info=True)
            return _answer(start_response, 400, {"error": "malformed request"})

    return HttpServer(wsgi, host, port)


def _signed(verifier: SignatureVerifier, body: bytes, timestamp: str, signature: str) -> bool:
    try:
        return verifier.is_valid(body, timestamp, signature)
    except (ValueError, TypeError):  # a timestamp that is not a number
        return False


def _answer(start_response: Callable, status: int, body: dict) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 503: "Service Unavailable"}
    start_response(f"{status} {reason[status]}", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def serve_in_thread(server: HttpServer) -> threading.Thread:
    """Serve `server` from a daemon thread (tests, benchmarks)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
