"""`byoi-bot init`: the commented `byoi.env` and `byoi.toml` a new installation starts from.

The files are the package's `examples/` (shipped in the wheel, copied to `docs/examples/`);
a variable already set in the environment is written with its value instead of the
placeholder, and the OVHcloud keys are left out when an `ovh.conf` file already holds them,
so nothing the user has already found is asked again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

STARTER_FILES = ("byoi.env", "byoi.toml")
# Where the `ovh` client looks for its configuration file, as it does (lowest first).
OVH_CONF_PLACES = ("/etc/ovh.conf", "~/.ovh.conf", "ovh.conf")
OVH_KEYS = ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY")
PLACEHOLDER = "REPLACE-ME"

NEXT_STEPS = """\
Next steps (the README's quick start):
  1. Create the Slack app: `byoi-bot manifest`, paste it at https://api.slack.com/apps
     (Create New App → From an app manifest), then copy its tokens into byoi.env.
  2. Create an OVHcloud token (docs: OVHcloud API and credentials) and fill in byoi.env.
  3. Set BYOI_APPROVERS in byoi.env to your approvers' Slack IDs.
  4. Load it:  set -a; . ./byoi.env; set +a
  5. byoi-bot check      (lists whatever is still wrong, with the setting to change)
  6. byoi-bot run"""


class Exists(Exception):
    """A starter file is already there and --force was not given."""


def example(name: str) -> str:
    """The shipped example file `name` (`byoi.env` or `byoi.toml`)."""
    return files("byoi_bot").joinpath("examples", name).read_text(encoding="utf-8")


def filled(text: str, environ: Mapping[str, str], ovh_conf: Path | None = None) -> str:
    """`text` with each active `VAR=value` line set from `environ` where VAR is set there;
    with an `ovh_conf` file, its OVHcloud keys are commented out (the environment would
    override the file)."""

    def line(match: re.Match) -> str:
        name, value = match["var"], environ.get(match["var"])
        if value and "\n" not in value:
            return f"{name}={value}"
        if ovh_conf and name in OVH_KEYS:
            return f"# {match[0]}  (read from {ovh_conf})"
        return match[0]

    return re.sub(r"^(?P<var>[A-Z][A-Z0-9_]*)=.*$", line, text, flags=re.MULTILINE)


def find_ovh_conf(folder: Path) -> Path | None:
    """The `ovh.conf` the `ovh` client would read from `folder`, if there is one."""
    for place in reversed(OVH_CONF_PLACES):
        path = (folder / Path(place).expanduser()).resolve()
        if path.is_file():
            return path
    return None


def write_starter_files(
    folder: Path, environ: Mapping[str, str], *, force: bool = False
) -> list[Path]:
    """Write the starter files in `folder`; refuse (writing nothing) if one exists."""
    paths = [folder / name for name in STARTER_FILES]
    present = [p for p in paths if p.exists()]
    if present and not force:
        raise Exists(
            f"{', '.join(str(p) for p in present)} already exist(s); nothing was written. "
            "Edit them, or run `byoi-bot init --force` to replace them with fresh copies"
        )
    for path in paths:
        text = example(path.name)
        if path.suffix == ".env":  # it will hold the tokens: readable by its owner only
            text = filled(text, environ, find_ovh_conf(folder))
            if path.exists():
                path.chmod(0o600)
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if path.suffix == ".env" else 0o644
        )
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    return paths
