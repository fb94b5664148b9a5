"""Errors every entry point handles, in a module light enough for `byoi-bot --help`."""


class CannotStart(Exception):
    """The bot cannot start for a reason outside its configuration (Slack unreachable, port
    taken); the message says which and what to do."""


class ConfigError(Exception):
    """The configuration is invalid; the message says which setting and what is expected."""
