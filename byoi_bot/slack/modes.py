"""Run modes: Socket Mode (default, no public URL) or HTTP (`/slack/events`, and the
operator's `/healthz`, `/readyz`, `/metrics`; `BYOI_METRICS_PORT` serves those in both modes).

HTTP mode serves through waitress in this process (see `slack.http`). SIGTERM or SIGINT
stops either mode gracefully within BYOI_STOP_TIMEOUT (`lifecycle.Stopper`): no new
connections or envelopes, the requests received are answered and acked, the work handed
over after acks finishes, then the leadership is given up, the outbox's sender ends the post
in flight, the scheduler and the poller stop, and the store closes.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from .. import logs
from ..config import ConfigError, Settings, token_problem
from ..errors import CannotStart
from ..health import SlackToken
from ..lifecycle import Stopper
from ..metrics import Metrics
from ..ops_http import OpsRoutes, bot_routes, serve
from ..phone_home_http import is_phone_home, phone_home_route
from ..store import is_postgres, shown
from ..wiring import Bot, build_bot
from .app import build_app
from .chat import SlackChat, make_web_client
from .errors import TOKEN_ERRORS, failed, token_refused
from .http import BODY_LIMIT, HttpServer

log = logging.getLogger(__name__)

OpsRoutesAnswer = Callable[[dict, Callable], Iterable[bytes] | None]


def build_slack_bot(
    settings: Settings, slack_token: SlackToken | None = None, **overrides
) -> tuple[Bot, App]:
    """The bot wired to Slack's Web API at `SLACK_API_URL`, and its Bolt app; every failed
    Web API call is counted and tells `slack_token` whether Slack still accepts the token."""
    metrics, token = Metrics(), slack_token or SlackToken()

    def failed_call(method: str, error: str) -> None:
        metrics.slack_error(method, error)
        token.seen(method, error)

    client = make_web_client(settings.slack_bot_token, settings.slack_api_url, failed_call)
    bot = build_bot(settings, SlackChat(client), metrics=metrics, **overrides)
    token.bind(bot.courier.health)  # readiness reads the courier's: one place knows
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
    """Run the bot until SIGTERM or SIGINT, then stop within BYOI_STOP_TIMEOUT; 0 when clean."""
    logs.configure(settings.log_level, settings.library_log_level, settings.log_format)
    stopper = Stopper(settings.stop_timeout.total_seconds())
    stopper.install()
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
    identity = slack_accepts_the_token(client, settings.slack_api_url, required=not http)
    token = SlackToken()
    if identity:
        token.accepted(f"accepted by auth.test at start-up (team {identity.get('team_id')})")
    bot, app = build_slack_bot(settings, token)
    log.info(_startup_line(settings, "http" if http else "socket", identity))
    routes = bot_routes(bot, token, serving=stopper.serving)
    ops = _ops_server(routes, settings.metrics_port)
    bot.start()
    try:
        if http:
            phone_home = phone_home_route(bot.deployments)
            _serve_http(app, host, port, routes, settings, stopper, phone_home)
        else:
            _serve_socket_mode(app, settings, stopper)
    finally:
        app.finish_background()
        bot.stop()
        if ops is not None:
            ops.stop(grace=1)
        stopper.done()
    log.info("stopped")
    return 0


def _ops_server(routes: OpsRoutes, port: int) -> HttpServer | None:
    """The health and metrics server on BYOI_METRICS_PORT, serving from a thread; None if 0."""
    if not port:
        return None
    try:
        server = serve(routes, port)
    except OSError as exc:
        message = f"cannot listen on port {port} (BYOI_METRICS_PORT): {exc.strerror}"
        raise CannotStart(message) from None
    serve_in_thread(server)
    log.info("health and metrics on http://0.0.0.0:%s/metrics", server.server_port)
    return server


def _serve_http(
    app: App,
    host: str,
    port: int,
    routes: OpsRoutes,
    settings: Settings,
    stopper: Stopper,
    phone_home: Callable[[dict, Callable], Iterable[bytes]],
) -> None:
    try:
        server = http_server(
            app, host, port, routes.answer, settings.slack_signing_secret, phone_home
        )
    except OSError as exc:
        raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stopper.on_stop(server.stop_in_background)
    log.info("listening on http://%s:%s/slack/events", host, server.server_port)
    stopper.ready()
    server.serve_forever()
    log.info("stopped serving; finishing the work in hand")


def _serve_socket_mode(app: App, settings: Settings, stopper: Stopper) -> None:
    """Connect, wait for a stop, then take no new envelope, let the listeners running send
    their acks, and close the connection (Slack redelivers what was never acked)."""
    handler = SocketModeHandler(app, settings.slack_app_token)
    try:
        handler.connect()
    except SlackApiError as exc:
        raise ConfigError(
            f"SLACK_APP_TOKEN: Slack refused it ({exc.response.get('error')}); "
            "generate an app-level token with connections:write"
        ) from None
    except OSError as exc:  # URLError too
        raise CannotStart(_unreachable(settings.slack_api_url, exc)) from None
    log.info("connected to Slack in Socket Mode")
    stopper.ready()
    stopper.wait()
    # slack_sdk's client has no drain: its `closed` flag ends the loop that hands envelopes
    # to the workers; the workers then finish, acks included, while the connection is still
    # open; `close()` then closes it.
    client = handler.client
    client.closed, client.auto_reconnect_enabled = True, False
    client.message_queue.put(None)  # wakes the loop now (it skips None), not in a second
    client.message_processor.shutdown()
    client.message_workers.shutdown(wait=True)
    handler.close()


def _startup_line(settings: Settings, mode: str, identity: dict | None) -> str:
    team = f"{identity.get('team')} ({identity.get('team_id')})" if identity else "unknown"
    policies = settings.policies.policies
    return logs.startup_line(
        mode=mode,
        store=f"{'postgresql' if is_postgres(settings.db) else 'sqlite'}:{shown(settings.db)}",
        accounts=f"slack_team={team!r} ovhcloud={settings.ovh_endpoint or 'ovh.conf'}",
        policies=len(policies),
        approvers=len(set().union(*(p.approvers for p in policies))),
    )


def slack_accepts_the_token(client: WebClient, api_url: str, *, required: bool) -> dict | None:
    """Call `auth.test` once at start-up and return its answer (the team and the bot user):
    a refused token is a `ConfigError`; an unreachable Slack is `CannotStart` when
    `required` (Socket Mode), else a warning and None (HTTP mode)."""
    try:
        return client.auth_test().data
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in TOKEN_ERRORS:
            raise ConfigError(token_refused(error)) from None
        log.warning("%s; starting anyway", failed(exc))
    except OSError as exc:
        if required:
            raise CannotStart(_unreachable(api_url, exc)) from None
        log.warning("%s; starting anyway", _unreachable(api_url, exc))
    return None


def _unreachable(api_url: str, exc: OSError) -> str:
    reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
    return f"cannot reach Slack at {api_url} (SLACK_API_URL): {reason}"


def http_server(
    app: App,
    host: str,
    port: int,
    routes: OpsRoutesAnswer,
    signing_secret: str,
    phone_home: Callable[[dict, Callable], Iterable[bytes]] | None = None,
    *,
    body_limit: int = BODY_LIMIT,
) -> HttpServer:
    """The HTTP server: Bolt at `/slack/events` (and any other path); `routes` answers the
    rest it knows (`/healthz`, `/readyz`, `/metrics`: `ops_http.OpsRoutes.answer`), and
    `phone_home` the boot gate's phone-home route (`/boot/…`, `phone_home_http`).

    A body over `body_limit` bytes is refused (413) by the server before the app reads it.
    The signature is checked before Bolt parses anything, so an unsigned or forged body,
    however malformed, gets a 401 and never reaches a listener; Slack's `ssl_check` (sent
    unsigned when the request URL is saved) is answered 200 and nothing else happens.
    """
    bolt = SlackRequestHandler(app)
    verifier = SignatureVerifier(signing_secret)

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

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if phone_home and is_phone_home(environ.get("PATH_INFO", "")):
            return phone_home(environ, start_response)
        if (answer := routes(environ, start_response)) is not None:
            return answer
        return slack(environ, start_response)

    return HttpServer(wsgi, host, port, body_limit=body_limit)


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
