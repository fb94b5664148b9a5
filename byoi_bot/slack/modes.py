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
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from ..config import ConfigError, Settings, token_problem
from ..errors import CannotStart
from ..phone_home_http import is_phone_home, phone_home_route
from ..wiring import Bot, build_bot
from .app import build_app
from .chat import SlackChat, make_web_client
from .errors import TOKEN_ERRORS, failed, token_refused
from .http import BODY_LIMIT, HttpServer

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
        chat_health=bot.courier.health,
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
    if settings.public_url and not http:
        log.warning("BYOI_PUBLIC_URL is for HTTP mode (--http): no phone-home in Socket Mode")
        settings = settings.with_values(public_url="")
    # Slack first: nothing (not even the store's file) is created for a token Slack refuses.
    client = make_web_client(settings.slack_bot_token, settings.slack_api_url)
    slack_accepts_the_token(client, settings.slack_api_url, required=not http)
    bot, app = build_slack_bot(settings)
    bot.start()
    try:
        if http:
            try:
                server = http_server(
                    app, host, port, healthy(bot), settings.slack_signing_secret,
                    phone_home=phone_home_route(bot.deployments),
                )  # fmt: skip
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


def slack_accepts_the_token(client: WebClient, api_url: str, *, required: bool) -> None:
    """Call `auth.test` once at start-up: a refused token is a `ConfigError`; an unreachable
    Slack is `CannotStart` when `required` (Socket Mode), else a warning (HTTP mode)."""
    try:
        client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in TOKEN_ERRORS:
            raise ConfigError(token_refused(error)) from None
        log.warning("%s; starting anyway", failed(exc))
    except OSError as exc:
        if required:
            raise CannotStart(_unreachable(api_url, exc)) from None
        log.warning("%s; starting anyway", _unreachable(api_url, exc))


def _unreachable(api_url: str, exc: OSError) -> str:
    reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
    return f"cannot reach Slack at {api_url} (SLACK_API_URL): {reason}"


def http_server(
    app: App,
    host: str,
    port: int,
    health: Callable[[], bool],
    signing_secret: str,
    phone_home: Callable[[dict, Callable], Iterable[bytes]] | None = None,
    *,
    body_limit: int = BODY_LIMIT,
) -> HttpServer:
    """The HTTP server: Bolt at `/slack/events` (and any other path), a health check at
    `/healthz`, and with `phone_home` the boot gate's phone-home route (`/boot/…`,
    `phone_home_http`). Routes are WSGI callables in `routes`; add one there.

    A body over `body_limit` bytes is refused (413) by the server before the app reads it.
    The signature is checked before Bolt parses anything, so an unsigned or forged body,
    however malformed, gets a 401 and never reaches a listener; Slack's `ssl_check` (sent
    unsigned when the request URL is saved) is answered 200 and nothing else happens.
    """
    bolt = SlackRequestHandler(app)
    verifier = SignatureVerifier(signing_secret)

    def healthz(environ: dict, start_response: Callable) -> Iterable[bytes]:
        ok = health()
        return _answer(start_response, 200 if ok else 503, {"ok": ok})

    def slack(environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if _is_ssl_check(body):
            return _answer(start_response, 200, {})
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

    routes: dict[str, Callable] = {"/healthz": healthz}

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if phone_home and is_phone_home(path):
            return phone_home(environ, start_response)
        return routes.get(path, slack)(environ, start_response)

    return HttpServer(wsgi, host, port, body_limit=body_limit)


def healthy(bot: Bot) -> Callable[[], bool]:
    """`/healthz`: the jobs (polls, expiry) run and Slack accepts the bot's token."""
    return lambda: bot.jobs.scheduler.running and bot.courier.health.ok


def _is_ssl_check(body: bytes) -> bool:
    """Slack's certificate check: a form body with `ssl_check=1`, and no signature."""
    try:
        return parse_qs(body.decode("ascii")).get("ssl_check") == ["1"]
    except UnicodeDecodeError:
        return False


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
