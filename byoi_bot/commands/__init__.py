"""The `/byoi` command language: one grammar, read by the parser and by the help.

`parse` turns the text typed after ``/byoi`` into a typed command, or raises
`CommandError` naming the argument, the problem, what was expected and a correct example.
Time comes from the caller's clock (the bot's), never from the wall clock:

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
>>> parse("list all", now=now)
List(all=True)
>>> parse("cancel r-7kq2mx", now=now)
Cancel(request_id='r-7kq2mx')
>>> url = "https://images.example.net/debian-12.qcow2"
>>> parse(f"deploy ns1.example.net {url}", now=now).spec.image_type
'qcow2'
>>> parse("deploy ns1.example.net https://images.example.net/debian.tar", now=now).spec
Traceback (most recent call last):
  ...
byoi_bot.commands.CommandError: `type`: cannot tell the image type from ...

The grammar is data (`SUBCOMMANDS`, `OPTIONS`); `help_text` and `usage_hint` are generated
from it, so the help lists exactly the keys the parser accepts.

Modules: `model` (the commands, `CommandError`), `grammar` (sub-commands and options as
data), `tokenizer`, `markup` (Slack links and entities undone), `converters` (one per
option), `errors` (wording), `simple` and `deploy` (the sub-command parsers), `parser`
(`parse`) and `help`.
"""

from .converters import CONVERTERS, is_hostname, option_value
from .deploy import catalog_spec
from .grammar import BY_KEY, OPTIONS, SSH_KEY_TYPES, SUBCOMMANDS, Option, SubCommand
from .help import help_text, reference_markdown, usage_hint
from .model import (
    Cancel,
    CatalogChoice,
    Command,
    CommandError,
    Deploy,
    Fleet,
    Freeze,
    Freezes,
    Help,
    History,
    Images,
    List,
    Review,
    Status,
    Unfreeze,
)
from .parser import parse

__all__ = [
    "BY_KEY",
    "CONVERTERS",
    "OPTIONS",
    "SSH_KEY_TYPES",
    "SUBCOMMANDS",
    "Cancel",
    "CatalogChoice",
    "Command",
    "CommandError",
    "Deploy",
    "Fleet",
    "Freeze",
    "Freezes",
    "Help",
    "History",
    "Images",
    "List",
    "Option",
    "Review",
    "Status",
    "SubCommand",
    "Unfreeze",
    "catalog_spec",
    "help_text",
    "is_hostname",
    "option_value",
    "parse",
    "reference_markdown",
    "usage_hint",
]
