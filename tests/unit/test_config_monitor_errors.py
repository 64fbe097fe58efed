"""Every mistake inside [monitor] comes out in one `validate` run, with the config's other
errors, each naming the file, its line and the key."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_config_include import errors, setup, validate

MONITOR = """
[daemon]
collect_interval = -1

[monitor]
logs = [
  { type = "postfix", path = "/var/log/mail.log" },
  { type = "sendmail", path = "/var/log/x.log" },
  { type = "exim", path = "relative.log" },
]
tlsrpt = { maildir = "inbox", listen = "127.0.0.1:99999", cert = "/c.pem", key = "/k.pem" }
report = { notify = "mailops", every = "hourly" }
alerts = { tls_share = 90, min_sessions = -1 }
colour = "blue"
"""


def test_every_monitor_mistake_at_once_with_file_line_and_key(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr="concurrency = 0\n", rest=MONITOR)
    lines = main.read_text().splitlines()

    def at(text: str) -> str:
        return f"{main}:{next(i for i, ln in enumerate(lines, 1) if text in ln)}"

    errs = errors(validate(main))
    assert errs[0].startswith(f"{main}:3 [certmgr] concurrency"), errs
    assert errs[1].startswith(f"{at('collect_interval')} [daemon] collect_interval"), errs
    monitor = sorted(errs[2:])
    assert monitor == sorted([
        f"{at('[monitor]')} [monitor]: unknown key(s) colour; allowed: alerts, logs, report, tlsrpt",
        f"{at('sendmail')} [monitor] logs[1].type: type must be one of postfix, exim, got 'sendmail'",
        f"{at('relative.log')} [monitor] logs[2].path: path must be an absolute file name, got 'relative.log'",
        f"{at('tlsrpt =')} [monitor] tlsrpt.maildir: maildir must be an absolute directory, got 'inbox'",
        f"{at('tlsrpt =')} [monitor] tlsrpt.listen: listen must be address:port (like 127.0.0.1:9421 or "
        "[::]:9421), got '127.0.0.1:99999'",
        f"{at('report =')} [monitor] report.notify: notify must be a list of notifier names, got 'mailops'",
        f"{at('report =')} [monitor] report.every: every must be one of daily, weekly, off, got 'hourly'",
        f"{at('alerts =')} [monitor] alerts.tls_share: tls_share must be a number from 0 to 1, got 90",
        f"{at('alerts =')} [monitor] alerts.min_sessions: min_sessions must be a whole number >= 0, got -1",
    ]), errs
