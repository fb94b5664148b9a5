"""Help generated from the grammar, so it lists exactly the keys the parser accepts."""

from __future__ import annotations

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
    """One line for the Slack manifest's slash-command usage hint."""
    return " | ".join(f"{c.name} {c.args}".rstrip() for c in SUBCOMMANDS)
