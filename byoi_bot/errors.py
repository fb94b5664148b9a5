"""Errors every entry point handles, in a module light enough for `byoi-bot --help`."""


class CannotStart(Exception):
    """The bot cannot start for a reason outside its configuration (Slack unreachable, port
    taken); the message says which and what to do."""
