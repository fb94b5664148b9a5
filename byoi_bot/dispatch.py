"""Runs a parsed `/byoi` command against the workflow; shared by every chat adapter.

Adapters parse text with `commands.parse`, call `run_command`, and show the answer to the
user alone (ephemeral). The request card and thread posts come from the workflow itself.
"""

from __future__ import annotations

from . import commands
from .core import messages
from .core.service import Deployments, Refused
from .core.states import State
from .core.text import esc


def run_command(
    deployments: Deployments, command: commands.Command, user: str, channel: str
) -> str:
    """Execute `command` for `user` in `channel`; return the answer for the user."""
    try:
        return _run(deployments, command, user, channel)
    except Refused as exc:
        return "\n".join(exc.reasons)


def _run(d: Deployments, command: commands.Command, user: str, channel: str) -> str:
    match command:
        case commands.Help(topic=topic):
            return esc(commands.help_text(topic))  # `<server>` is no Slack link
        case commands.Deploy(spec=spec) if spec is not None:
            request = d.request(spec, user, channel)
            return f"Request `{request.id}` is posted; it needs approval before anything happens."
        case commands.Status(target=None):
            active = d.store.in_states([State.APPROVED, State.SUBMITTING, State.DEPLOYING])
            return messages.listing("Active deployments", active, "No deployment is running.")
        case commands.Status(target=target):
            found = d.find(target)
            if not found:
                return messages.unknown_request(target)
            return "\n".join(messages.summary_line(r) for r in found)
        case commands.List(all=show_all):
            requests = d.store.recent(20) if show_all else d.store.active()
            title = "Recent requests" if show_all else "Active requests"
            return messages.listing(
                title, requests, "Nothing is active. `/byoi list all` shows history."
            )
        case commands.Cancel(request_id=request_id):
            return d.cancel(request_id, user)
        case commands.History(server=server):
            past = d.store.recent(10, server=server)
            return messages.listing(
                f"History of {esc(server)}", past, f"No deployments of {esc(server)} yet."
            )
    raise AssertionError(f"unhandled command {command!r}")
