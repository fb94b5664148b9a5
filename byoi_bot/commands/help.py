"""Help generated from the grammar, so it lists exactly the keys the parser accepts."""

from __future__ import annotations

import html

from .grammar import BY_KEY, BY_NAME, DEPLOY, OPTIONS, SUBCOMMANDS, Option


def help_text(topic: str | None = None) -> str:
    """Help generated from the grammar: everything, or one sub-command or deploy option.

    >>> print(help_text("list"))
    `/byoi list [all [page <n>]]`: active requests here (all: every channel's history, by pages)
    Example: `/byoi list`
    """
    topic = (topic or "").lower().rstrip("=")
    if topic == "deploy":
        return "\n".join(_deploy_help())
    if topic in BY_NAME:
        command = BY_NAME[topic]
        return f"`{command.usage}`: {command.help}\nExample: `{command.example}`"
    if topic in BY_KEY:
        option = BY_KEY[topic]
        return f"{_option_line(option)}\nExample: `{option.example_command()}`"
    lines = ["*/byoi commands*"]
    lines += [f"• `{c.usage}`: {c.help}" for c in SUBCOMMANDS]
    return "\n".join([*lines, "", *_deploy_help()])


def _deploy_help() -> list[str]:
    lines = [f"*`{DEPLOY.usage}`*: {DEPLOY.help}."]
    lines.append("Options, in any order (keys ignore case; quote values with spaces):")
    lines += [f"• {_option_line(o)}" for o in OPTIONS]
    example = " ".join(
        [DEPLOY.example, "sha256=…", "hostname=web-1", 'header="Authorization: Bearer …"']
    )
    lines.append(f"Example: `{example}`")
    return lines


def _option_line(option: Option) -> str:
    keys = " or ".join(f"`{key}={option.value_syntax}`" for key in option.keys)
    more = " Repeatable." if option.repeatable else ""
    return f"{keys}: {option.help}.{more}"


def usage_hint() -> str:
    """One line for the Slack manifest's slash-command usage hint: deploy's arguments, then
    every other sub-command by name (`/byoi help` has the rest)."""
    deploy, *others = SUBCOMMANDS
    return " | ".join([f"{deploy.name} {deploy.args}", *(c.name for c in others)])


def reference_markdown() -> str:
    """The command reference of docs/commands-reference.md, generated from the grammar: the
    sub-commands, then every deploy option with its keys, values and an example."""
    lines = ["| command | what it does | example |", "|---|---|---|"]
    lines += [f"| {_code(c.usage)} | {_cell(c.help)} | {_code(c.example)} |" for c in SUBCOMMANDS]
    lines += [
        "",
        "## `/byoi deploy` options",
        "",
        f"{DEPLOY.help[:1].upper()}{DEPLOY.help[1:]}. Options, in any order (keys ignore case; "
        "quote values with spaces):",
        "",
        "| option | meaning | example |",
        "|---|---|---|",
    ]
    for option in OPTIONS:
        keys = "<br>".join(_code(f"{key}={option.value_syntax}") for key in option.keys)
        more = " Repeatable." if option.repeatable else ""
        lines.append(f"| {keys} | {_cell(option.help)}.{more} | {_code(option.example)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """`text` inside a Markdown table cell: a `|` would end the cell."""
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    """`text` as code in a table cell. HTML, because GitHub ends a cell at a `|` even in a
    code span while MkDocs would show the `\\|` that prevents it."""
    return f"<code>{html.escape(text, quote=False).replace('|', '&#124;')}</code>"
