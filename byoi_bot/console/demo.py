"""`byoi-bot demo`: a scripted story on the shell, finishing in well under a minute."""

from __future__ import annotations

import argparse
import io
import sys

from .shell import banner, open_session, run_script

SERVER = "ns1001.ip-51-75-1.eu"
SMALL = "ns3003.ip-51-75-3.eu"
OTHER = "ns2002.ip-51-75-2.eu"

STORY = f"""\
# 1. alice asks for a deploy; the bot checks the server and the image (it finds the EFI
#    bootloader in the image's ESP), then posts a card saying exactly what will be sent.
alice: /byoi deploy {SERVER} {{images}}/debian-12.qcow2 hostname=web-1
# 2. alice cannot approve her own request.
alice reacts :white_check_mark:
# 3. dave is not an approver; bob is.
dave reacts :white_check_mark:
bob reacts :white_check_mark:
# 4. the bot calls OVHcloud once and follows the install in the thread.
wait until done
# 5. preflight refuses an image that cannot fit in the server's RAM, before any wipe.
alice: /byoi deploy {SMALL} {{images}}/huge.raw
# 6. a deploy the installer fails: the error comes back in plain words.
alice: /byoi deploy {OTHER} {{images}}/debian-12.raw
carol reacts :white_check_mark:
wait until failed
alice: /byoi list all
"""


def run_demo(args: argparse.Namespace) -> int:
    """Play `STORY` against a fresh simulator; exit non-zero if the story went wrong."""
    out = sys.stdout
    color = out.isatty() and not args.no_color
    session, stack = open_session(
        out, deploy_seconds=min(args.deploy_seconds, 8.0), color=color, inventory=args.inventory
    )
    with stack:
        session.chat.say(banner(session))
        return run_script(session, io.StringIO(STORY))
