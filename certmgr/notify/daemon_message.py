"""The message of a daemon that stopped because its database was removed or replaced."""

from __future__ import annotations

import html
import shlex
from datetime import datetime

from certmgr.interfaces import Message
from certmgr.notify.message_text import html_page, signature_html, signature_text


def database_lost_message(node: str, what: str, state_dir: str, config_path: str, now: datetime) -> Message:
    """The daemon's database file was removed or replaced under it: it stopped."""
    cfg = shlex.quote(config_path)
    subject = f"[certmgr] DAEMON STOPPED on {node}: its database was removed or replaced"
    commands = [f"certmgr -c {cfg} recover", f"certmgr -c {cfg} status", "systemctl restart certmgr"]
    intro = [f"{what} while certmgr was running on {node}.",
             "The daemon stopped so that it does not order every certificate again on an empty inventory "
             "(new keys, broken DANE records). Until the inventory is rebuilt, every command that writes "
             "refuses to run.",
             f"The keys and certificates are still in {state_dir}; rebuild the inventory from them:"]
    text = [*intro, "", *(f"    {c}" for c in commands), "", signature_text(now)]
    esc = html.escape
    page = html_page(subject, "\n".join(f"<p>{esc(p)}</p>" for p in intro)
                     + f"\n<pre>{esc(chr(10).join(commands))}</pre>\n" + signature_html(now))
    return Message(subject=subject, text="\n".join(text) + "\n", html=page, severity="critical", hostname=None,
                   facts={"kind": "database_lost", "node": node, "what": what, "fix_commands": commands})
