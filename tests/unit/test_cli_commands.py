"""Each command declares its own arguments next to its code, and is imported only when it runs;
the Runtime a command works with is closed by a ``with`` block, also when the command fails."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from certmgr.cli import COMMANDS

CLI = Path(__file__).resolve().parents[2] / "certmgr" / "cli"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_module_declares_its_arguments(name: str) -> None:
    module = importlib.import_module(f"certmgr.cli.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(prog=f"certmgr {name}")
    module.add_arguments(parser, name)
    assert callable(module.run)


def test_dispatcher_holds_no_command_arguments() -> None:
    tree = ast.parse((CLI / "__init__.py").read_text())
    compared = [c for c in ast.walk(tree) if isinstance(c, ast.Compare)
                for s in ast.walk(c) if isinstance(s, ast.Constant) and s.value in COMMANDS]
    assert not compared, "no `if name == \"renew\"` in the dispatcher: the command module declares its arguments"


def test_command_arguments_reach_the_command() -> None:
    from certmgr.cli import parse_args

    args = parse_args(["-c", "x.toml", "renew", "--dry-run", "mx1.example.com"])
    assert args.command == "renew" and args.dry_run and args.hosts == ["mx1.example.com"]
    args = parse_args(["revoke", "mx1.example.com", "--reason", "superseded"])
    assert args.reason == "superseded"
    args = parse_args(["report", "--since", "24h", "--json"])
    assert args.since == "24h" and args.json and args.html is None
    args = parse_args(["collect", "--json"])
    assert args.command == "collect" and args.json


def test_help_imports_no_command_module() -> None:
    code = ("import sys\nfrom certmgr.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('certmgr.cli.cmd_')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "renew" in r.stdout and r.stdout.strip().splitlines()[-1] == "[]", r.stdout


def test_command_help_shows_its_arguments() -> None:
    r = subprocess.run([sys.executable, "-m", "certmgr", "renew", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--dry-run" in r.stdout and "HOST" in r.stdout, r.stderr


def test_no_command_repeats_try_finally_close() -> None:
    offenders = [p.name for p in CLI.glob("cmd_*.py") if ".close()" in p.read_text()]
    assert not offenders, f"use `with runtime(args) as rt:` instead of try/finally rt.close(): {offenders}"


def test_runtime_is_a_context_manager(tmp_path: Path) -> None:
    from certmgr.cli.common import config
    from certmgr.runtime import Runtime

    path = tmp_path / "certmgr.toml"
    path.write_text(f'[certmgr]\nstate_dir = "{tmp_path / "state"}"\n\n[issuer.corp]\ntype = "manual"\n\n'
                    '[[mta]]\nhostname = "mx1.example.com"\nissuer = "corp"\n')
    closed: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        with Runtime(config(argparse.Namespace(config=str(path)))) as rt:
            rt.store.close = lambda: closed.append("store")  # type: ignore[method-assign]
            rt.providers.close = lambda: closed.append("providers")  # type: ignore[method-assign]
            raise RuntimeError("boom")
    assert closed == ["providers", "store"], "leaving the block closes the providers and the store"
