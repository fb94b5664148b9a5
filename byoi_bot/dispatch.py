"""Runs a parsed `/byoi` command against the workflow; shared by every chat adapter.

Adapters parse text with `commands.parse`, call `run_command`, and show the answer to the
user alone (ephemeral). The request card and thread posts come from the workflow itself.
Every answer fits one Slack message (`ANSWER_LIMIT`): long lists are paged or summarised.
"""

from __future__ import annotations

import math
from dataclasses import replace

from . import commands
from .core import change_messages, messages
from .core.catalog import CatalogError
from .core.fleet import Rollout
from .core.fleets import FLEET_PREFIX, Fleets, expand
from .core.ports import ProviderError
from .core.service import Deployments, Refused
from .core.states import State
from .core.text import esc, truncate

ANSWER_LIMIT = 3900  # Slack splits messages near 4,000 characters
PAGE = 20
LISTED_UP_TO = 15  # more active deployments than this are counted per state
RUNNING = (State.APPROVED, State.SUBMITTING, State.DEPLOYING, State.BOOTING)


def run_command(
    deployments: Deployments, command: commands.Command, user: str, channel: str
) -> str:
    """Execute `command` for `user` in `channel`; return the answer for the user."""
    try:
        answer = _run(deployments, command, user, channel)
    except Refused as exc:
        answer = "\n".join(exc.reasons)
    except commands.CommandError as exc:
        answer = str(exc)
    except CatalogError as exc:
        answer = esc(str(exc))
    return _fit(answer)


def _run(d: Deployments, command: commands.Command, user: str, channel: str) -> str:
    match command:
        case commands.Help(topic=topic):
            return esc(commands.help_text(topic))  # `<server>` is no Slack link
        case commands.Deploy(fleet=fleet) if fleet is not None:
            return fleet_request(d, command, user, channel)
        case commands.Deploy(spec=spec) if spec is not None:
            return messages.requested(d.request(spec, user, channel))
        case commands.Deploy(catalog=choice) if choice is not None:
            spec, source = catalog_spec(d, choice)
            return messages.requested(d.request(spec, user, channel, source))
        case commands.Images():
            images = messages.catalog(d.catalog.images() if d.catalog else ())
            return images + messages.accounts_line(d.provider.accounts())
        case commands.Status(target=None | "all" as target):
            active = d.store.in_states(RUNNING)
            if target is None:
                active = [r for r in active if r.channel == channel]
            empty = "No deployment is running here. `/byoi status all` looks in every channel."
            return _listed_or_counted("Active deployments", active, empty)
        case commands.Status(target=target) if target.startswith(FLEET_PREFIX):
            fleet = d.store.fleet(target)
            if fleet is None:
                return messages.unknown_request(target)
            members = d.store.fleet_members(fleet)
            lines = [messages.fleet_status(fleet, tuple(members))]
            return "\n".join(lines + [messages.summary_line(m) for m in members[:30]])
        case commands.Status(target=target):
            found = d.find(target)
            if not found and "." in target:  # request ids hold no dots: a server name
                return messages.no_request_for(target)
            if not found:
                return messages.unknown_request(target)
            return "\n".join(messages.summary_line(r) for r in found)
        case commands.List(all=False):
            active = [r for r in d.store.active() if r.channel == channel]
            empty = "Nothing is active here. `/byoi list all` shows every channel's history."
            return _listed_or_counted("Active requests", active, empty)
        case commands.List(all=True, page=page):
            return _history_page(d, page)
        case commands.Cancel(request_id=request_id) if request_id.startswith(FLEET_PREFIX):
            return _fleets(d).cancel(request_id, user)
        case commands.Cancel(request_id=request_id):
            return d.cancel(request_id, user)
        case commands.History(server=server):
            past = d.store.recent(10, server=server)
            return messages.listing(
                f"History of {esc(server)}",
                past,
                f"No deployments of {esc(server)} yet.",
                ANSWER_LIMIT,
            )
        case commands.Freeze(starts=starts, ends=ends, reason=reason, policies=scope):
            return change_messages.freeze_set(d.freeze(user, starts, ends, reason, scope))
        case commands.Unfreeze(freeze_id=freeze_id):
            return change_messages.freeze_lifted(d.unfreeze(user, freeze_id))
        case commands.Freezes():
            return change_messages.freeze_list(d.freezes_in_force(d.clock.now()))
        case commands.Review(request_id=request_id):
            return d.review(request_id, user)
    raise AssertionError(f"unhandled command {command!r}")


def _listed_or_counted(title: str, requests: list, empty: str) -> str:
    """One line per request, or counts per state when there are too many to read."""
    if len(requests) > LISTED_UP_TO:
        return messages.counted(title, requests)
    return messages.listing(title, requests, empty, ANSWER_LIMIT)


def _history_page(d: Deployments, page: int) -> str:
    """Page `page` of every request, newest first: `PAGE` requests a page, each request on
    exactly one page, each page one message (long URLs shortened, no request dropped)."""
    pages = max(1, math.ceil(d.store.count() / PAGE))
    if page > pages:
        return f"No requests on page {page}: the last is `/byoi list all page {pages}`."
    shown = d.store.recent(PAGE, offset=PAGE * (page - 1))
    title = f"Recent requests, page {page} of {pages}"
    if page < pages:
        title += f" (older: `/byoi list all page {page + 1}`)"
    return messages.listing(title, shown, "No requests yet.", ANSWER_LIMIT)


def _fit(answer: str) -> str:
    """`answer` cut at a line break to fit one message, saying that it was cut."""
    if len(answer) <= ANSWER_LIMIT:
        return answer
    note = "\n… cut to fit one message: the App Home and `/byoi list all` show more."
    lines, size = [], len(note)
    for line in answer.splitlines():
        line = truncate(line, ANSWER_LIMIT - len(note) - 1)
        if size + len(line) + 1 > ANSWER_LIMIT:
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + note


def fleet_request(d: Deployments, command: commands.Deploy, user: str, channel: str) -> str:
    """A deploy to many: expand the servers, build each one's spec, post one card."""
    fleets, plan = _fleets(d), command.fleet
    assert plan is not None
    servers = _fleet_servers(d, plan, fleets.limit)
    refused: list[tuple[str, str]] = []
    if command.catalog is not None:
        image, checksum, source = _catalog_image(d, command.catalog)
        specs = []
        for server in servers:
            if image.allows(server):
                choice = replace(command.catalog, server=server)
                specs.append(commands.catalog_spec(choice, image, checksum))
            else:
                refused.append((server, f"outside the image's servers {list(image.servers)}"))
    else:
        assert command.spec is not None
        source = None
        specs = [replace(command.spec, server=server) for server in servers]
    if not specs:
        raise Refused([f"Nothing was requested. {messages.fleet_summary(0, refused)}"])
    rollout = Rollout(plan.parallel, plan.canary, plan.stop_on_failure)
    made = fleets.request(
        specs, refused, rollout, user, channel, pattern=plan.pattern, source=source
    )
    summary = messages.fleet_summary(len(made.servers), list(made.refused))
    said = "is posted" if made.message_ts else "is stored (its card appears as Slack takes it)"
    return (
        f"Fleet request `{made.id}` {said}: {summary} Each server's policy must approve it "
        "before anything happens."
    )


def _fleet_servers(d: Deployments, plan: commands.Fleet, limit: int) -> list[str]:
    """The listed servers, or the account's servers matching the pattern; within the limit."""
    servers = list(plan.servers)
    if plan.pattern:
        try:
            servers = expand(d.provider.list_servers(), plan.pattern)
        except ProviderError as exc:
            raise Refused([messages.explanation(exc.explanation)]) from None
        if not servers:
            raise Refused([f"No server of the account matches `{esc(plan.pattern)}`."])
    if len(servers) > limit:
        raise Refused(
            [
                f"{len(servers)} servers: more than the {limit} one request may take "
                "(BYOI_FLEET_LIMIT). Narrow the pattern or split the list."
            ]
        )
    if plan.canary >= len(servers):
        raise Refused([f"`canary={plan.canary}` leaves no server for after the canaries."])
    return servers


def _fleets(d: Deployments) -> Fleets:
    if d.fleets is None:
        raise Refused(["This bot takes no deploys to many servers."])
    return d.fleets


def _catalog_image(d: Deployments, choice: commands.CatalogChoice) -> tuple:
    """The catalog image `choice` names, its checksum (typed, or resolved) and its source."""
    if d.catalog is None:
        raise CatalogError("This bot has no image catalog; give an image URL instead.")
    image = d.catalog.image(choice.image)
    typed = dict(choice.options).get("checksum")
    checksum, origin = (typed, "typed in the request") if typed else d.catalog.checksum(image)
    return image, checksum, {"image": image.name, "checksum": origin} | image.boot()


def catalog_spec(d: Deployments, choice: commands.CatalogChoice) -> tuple:
    """The spec of a deploy naming a catalog image, and where its image and checksum come
    from; raises `CatalogError` (unknown image, server not allowed, checksum file problems)."""
    if d.catalog is not None:
        d.catalog.image(choice.image).refuse_server(choice.server)  # before any fetch
    image, checksum, source = _catalog_image(d, choice)
    return commands.catalog_spec(choice, image, checksum), source
