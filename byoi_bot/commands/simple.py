"""The sub-commands other than deploy: status, list, cancel, history, help, images."""

from __future__ import annotations

import re
from collections.abc import Callable

from .converters import hostname_value, whole_number
from .errors import did_you_mean, fail, show
from .grammar import BY_KEY, BY_NAME
from .markup import as_name
from .model import (
    Cancel,
    Command,
    Freezes,
    Help,
    History,
    Images,
    List,
    Review,
    Status,
    Unfreeze,
)


def _status(args: list[str]) -> Status:
    _at_most("status", args, 1)
    if not args:
        return Status(None)
    target = as_name(args[0])
    if _ID.fullmatch(target):  # ids hold no dots; a name with dots is lower-cased below
        return Status(target)
    return Status(hostname_value("server", target, BY_NAME["status"].example))


def _list(args: list[str]) -> List:
    _at_most("list", args, 3)
    if not args:
        return List(False)
    words = [a.lower() for a in args]
    if words[0] != "all" or (len(words) > 1 and (words[1:2] != ["page"] or len(words) != 3)):
        fail(
            "all",
            f"`list` takes `all` and `page <n>`, not `{show(' '.join(args), 40)}`.",
            "`/byoi list`, `/byoi list all` or `/byoi list all page 2`",
            "/byoi list all page 2",
        )
    if len(words) == 1:
        return List(True)
    page = whole_number(words[2])
    if page is None or not 1 <= page <= 1000:
        fail(
            "page",
            f"`{show(args[2], 20)}` is not a page number.",
            "a page number from 1 to 1000",
            "/byoi list all page 2",
        )
    return List(True, page)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{2,40}")


def _cancel(args: list[str]) -> Cancel:
    _exactly("cancel", "id", args)
    request_id = as_name(args[0])
    if not _ID.fullmatch(request_id):
        fail(
            "id",
            f"`{show(request_id, 40)}` is not a request id.",
            "the id shown on the request card, like `r-7kq2mx`",
            BY_NAME["cancel"].example,
        )
    return Cancel(request_id)


def _history(args: list[str]) -> History:
    _exactly("history", "server", args)
    return History(hostname_value("server", as_name(args[0]), BY_NAME["history"].example))


def _help(args: list[str]) -> Help:
    _at_most("help", args, 1)
    if not args:
        return Help(None)
    topic = args[0].lower()
    if topic in BY_NAME:
        return Help(topic)
    if topic.rstrip("=") in BY_KEY:
        return Help(BY_KEY[topic.rstrip("=")].name)
    topics = list(BY_NAME) + list(BY_KEY)
    fail(
        "topic",
        f"there is no help on `{show(args[0], 40)}`.{did_you_mean(topic, topics)}",
        "a command (" + ", ".join(BY_NAME) + ") or a deploy option",
        "/byoi help deploy",
    )


def _images(args: list[str]) -> Images:
    if args:
        fail(
            "arguments",
            f"`images` takes no argument; unexpected `{show(args[0], 40)}`.",
            "`/byoi images`",
            "/byoi images",
        )
    return Images()


def _at_most(name: str, args: list[str], limit: int) -> None:
    if len(args) > limit:
        command = BY_NAME[name]
        fail(
            "arguments",
            f"`{name}` takes at most {limit} argument; unexpected `{show(args[limit], 40)}`.",
            f"`{command.usage}`",
            command.example,
        )


def _exactly(name: str, argument: str, args: list[str]) -> None:
    command = BY_NAME[name]
    if not args:
        fail(argument, f"`{name}` needs a {argument}.", f"`{command.usage}`", command.example)
    _at_most(name, args, 1)


SIMPLE_PARSERS: dict[str, Callable[[list[str]], Command]] = {
    "status": _status,
    "list": _list,
    "cancel": _cancel,
    "history": _history,
    "help": _help,
    "images": _images,
    "unfreeze": lambda args: Unfreeze(_one_id("unfreeze", "freeze-id", args, _FREEZE_ID)),
    "freezes": lambda args: _no_arguments("freezes", args, Freezes()),
    "review": lambda args: Review(_one_id("review", "id", args, _ID)),
}


def _no_arguments(name: str, args: list[str], command: Command) -> Command:
    _at_most(name, args, 0)
    return command


_FREEZE_ID = re.compile(r"fz-[a-z0-9]{4,16}")


def _one_id(name: str, argument: str, args: list[str], pattern: re.Pattern) -> str:
    _exactly(name, argument, args)
    value = as_name(args[0]).lower()
    if not pattern.fullmatch(value):
        command = BY_NAME[name]
        fail(
            argument,
            f"`{show(args[0], 40)}` is not a {argument}.",
            f"`{command.usage}`",
            command.example,
        )
    return value
