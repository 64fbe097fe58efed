"""Config at provider scale, through the real CLI (`certmgr validate`):

- ``include = ["conf.d/*.toml"]`` in [certmgr]: files read in sorted order, relative to the
  main file; they may hold [[mta]] and provider tables, nothing else; a glob matching nothing
  is fine, a missing named file is an error; an error names the included file and its line;
- a [defaults] table for MTA fields;
- every error of a run is reported, sorted by file and line;
- a misspelt key or table gets "did you mean" with the closest allowed name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

MAIN = """\
[certmgr]
state_dir = "state"
{certmgr}
[issuer.le]
type = "acme"
directory = "https://127.0.0.1:14000/dir"
challenge = {{ type = "http-01", mode = "standalone", port = 5002 }}
{rest}"""


def mta(host: str, extra: str = "", issuer: str | None = "le") -> str:
    return f'\n[[mta]]\nhostname = "{host}"\n' + (f'issuer = "{issuer}"\n' if issuer else "") + extra


def setup(tmp_path: Path, *, certmgr: str = 'include = ["conf.d/*.toml"]\n', rest: str = "",
          files: dict[str, str] | None = None) -> Path:
    main = tmp_path / "certmgr.toml"
    main.write_text(MAIN.format(certmgr=certmgr, rest=rest))
    for name, text in (files or {}).items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return main


def validate(main: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CERTMGR_CONFIG"}
    return subprocess.run([sys.executable, "-m", "certmgr", "-c", str(main), "validate"],
                          capture_output=True, text=True, timeout=60, env=env, cwd="/")


def errors(r: subprocess.CompletedProcess[str]) -> list[str]:
    """The error lines of a refused config (each starts with the file that holds the mistake)."""
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr and r.stdout == ""
    return [m.group(1) for m in re.finditer(r"^certmgr validate: error: (/.*)$", r.stderr, re.M)]


# -- include ----------------------------------------------------------------------


def test_include_reads_every_matching_file(tmp_path: Path) -> None:
    main = setup(tmp_path, files={
        "conf.d/b.toml": mta("mx2.example.com") + mta("mx3.example.com"),
        "conf.d/a.toml": mta("mx1.example.com", 'key = ["rsa-2048", "ecdsa-p256"]\n'),
        "conf.d/notes.txt": "not toml, not matched",
    })
    r = validate(main)
    assert r.returncode == 0, r.stderr
    assert "OK (3 MTAs, 4 certificates" in r.stdout


def test_include_is_sorted_and_relative_to_the_main_file(tmp_path: Path) -> None:
    # the same hostname twice: the one in the file that sorts later is the duplicate
    main = setup(tmp_path, files={
        "conf.d/20-b.toml": mta("mx1.example.com"),
        "conf.d/10-a.toml": "# first\n" + mta("mx1.example.com"),
    })
    (errs,) = errors(validate(main))  # cwd is /: the glob is taken relative to the main file
    assert errs.startswith(f"{tmp_path}/conf.d/20-b.toml:3 [mta #1] hostname: duplicate hostname mx1.example.com")
    assert f"{tmp_path}/conf.d/10-a.toml:4" in errs, "the duplicate names where the first one is"


def test_error_in_included_file_names_that_file_and_line(tmp_path: Path) -> None:
    main = setup(tmp_path, files={
        "conf.d/a.toml": mta("mx1.example.com"),
        "conf.d/b.toml": mta("mx2.example.com") + mta("mx3.example.com", 'key = "rsa-1024"\n'),
    })
    (err,) = errors(validate(main))
    assert err.startswith(f"{tmp_path}/conf.d/b.toml:9 [mta #2] key: 'rsa-1024' is weaker"), err


def test_toml_syntax_error_in_included_file(tmp_path: Path) -> None:
    main = setup(tmp_path, files={"conf.d/a.toml": '\n[[mta]]\nhostname = "mx1.example.com\n'})
    (err,) = errors(validate(main))
    assert err.startswith(f"{tmp_path}/conf.d/a.toml:3") and "not valid TOML" in err, err


def test_glob_matching_nothing_is_fine(tmp_path: Path) -> None:
    main = setup(tmp_path, rest=mta("mx1.example.com"))
    r = validate(main)
    assert r.returncode == 0 and "OK (1 MTAs" in r.stdout, r.stderr


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr='include = ["conf.d/*.toml", "extra/mx.toml"]\n', rest=mta("mx1.example.com"))
    (err,) = errors(validate(main))
    assert err.startswith(f"{main}:3 [certmgr] include:") and f"{tmp_path}/extra/mx.toml" in err, err
    assert "not found" in err


def test_include_must_be_a_list_of_strings(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr='include = "conf.d/*.toml"\n', rest=mta("mx1.example.com"))
    (err,) = errors(validate(main))
    assert err.startswith(f"{main}:3 [certmgr] include: must be a list"), err


def test_included_file_may_hold_provider_tables(tmp_path: Path) -> None:
    main = setup(tmp_path, files={
        "conf.d/00-issuers.toml": '[issuer.corp]\ntype = "manual"\n',
        "conf.d/mx.toml": mta("mx1.example.com", issuer="corp"),
    })
    r = validate(main)
    assert r.returncode == 0 and "2 issuers" in r.stdout, r.stderr


def test_provider_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    main = setup(tmp_path, files={
        "conf.d/00-issuers.toml": '# CA\n[issuer.other]\ntype = "acme"\ndirectory = "https://ca.example/dir"\n'
                                  'challenge = { type = "http-01", mode = "standalone", port = 5003 }\n'
                                  'colour = "blue"\n',
    }, rest=mta("mx1.example.com"))
    (err,) = errors(validate(main))
    assert err.startswith(f"{tmp_path}/conf.d/00-issuers.toml:6 [issuer.other] colour: unknown key"), err


def test_provider_defined_twice_across_files(tmp_path: Path) -> None:
    main = setup(tmp_path, files={"conf.d/x.toml": '[issuer.le]\ntype = "manual"\n'},
                 rest=mta("mx1.example.com"))
    (err,) = errors(validate(main))
    assert err.startswith(f"{tmp_path}/conf.d/x.toml:1 [issuer.le]") and "already defined" in err, err
    assert f"{main}:5" in err, "and where the first one is"


def test_included_file_may_not_set_core_tables_or_include(tmp_path: Path) -> None:
    main = setup(tmp_path, files={
        "conf.d/a.toml": '[certmgr]\ninclude = ["more/*.toml"]\n',
        "conf.d/b.toml": '[defaults]\nissuer = "le"\n',
    }, rest=mta("mx1.example.com"))
    errs = errors(validate(main))
    assert len(errs) == 2, errs
    assert errs[0].startswith(f"{tmp_path}/conf.d/a.toml:1 [certmgr]") and "only in the main config file" in errs[0]
    assert errs[1].startswith(f"{tmp_path}/conf.d/b.toml:1 [defaults]") and "only in the main config file" in errs[1]


def test_include_of_the_main_file_is_refused(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr='include = ["*.toml"]\n', rest=mta("mx1.example.com"))
    (err,) = errors(validate(main))
    assert err.startswith(f"{main}:3 [certmgr] include:") and "the main config file itself" in err, err


# -- [defaults] --------------------------------------------------------------------


def test_defaults_fill_mta_fields(tmp_path: Path) -> None:
    main = setup(tmp_path, rest='\n[defaults]\nissuer = "le"\nkey = ["rsa-2048", "ecdsa-p256"]\n', files={
        "conf.d/a.toml": mta("mx1.example.com", issuer=None) + mta("mx2.example.com", 'key = "rsa-3072"\n', None),
    })
    r = validate(main)
    assert r.returncode == 0, r.stderr
    assert "OK (2 MTAs, 3 certificates" in r.stdout, "mx1 takes both default keys, mx2 overrides them"


def test_bad_default_is_reported_once_at_the_defaults_table(tmp_path: Path) -> None:
    main = setup(tmp_path, rest='\n[defaults]\nissuer = "le"\nkey = "rsa-1024"\n', files={
        "conf.d/a.toml": mta("mx1.example.com", issuer=None) + mta("mx2.example.com", issuer=None),
    })
    (err,) = errors(validate(main))
    assert err.startswith(f"{main}:12 [defaults] key: 'rsa-1024' is weaker"), err


def test_defaults_refuse_per_mta_keys(tmp_path: Path) -> None:
    main = setup(tmp_path, rest='\n[defaults]\nhostname = "mx.example.com"\n', files={
        "conf.d/a.toml": mta("mx1.example.com"),
    })
    (err,) = errors(validate(main))
    assert err.startswith(f"{main}:11 [defaults] hostname:") and "not a default" in err, err


# -- every error, sorted; did you mean ---------------------------------------------


def test_every_error_is_reported_sorted_by_file_and_line(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr='include = ["conf.d/*.toml"]\nconcurrency = 0\n', files={
        "conf.d/b.toml": mta("mx3.example.com", 'smtp = "mx3.example.com:99999"\n'),
        "conf.d/a.toml": mta("mx1.example.com", 'reuse_key = "yes"\n') + mta("mx2.example.com", issuer="nope"),
    }, rest=mta("mx0.example.com", 'renew_before = 400\n'))
    errs = errors(validate(main))
    where = [e.split(" ", 1)[0] for e in errs]
    assert where == [f"{main}:4", f"{main}:14", f"{tmp_path}/conf.d/a.toml:5",
                     f"{tmp_path}/conf.d/a.toml:9", f"{tmp_path}/conf.d/b.toml:5"], errs
    assert "[certmgr] concurrency: must be between 1 and 256" in errs[0]
    assert "[mta #1] renew_before" in errs[1]
    assert "[mta #2] issuer: refers to [issuer.nope]" in errs[3]
    assert "5 errors" in validate(main).stderr


def test_several_errors_in_one_table(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr="", rest=mta("mx1.example.com", 'colour = "red"\nkey = "rsa-1024"\nsize = 3\n'))
    errs = errors(validate(main))
    assert len(errs) == 3, errs
    assert [re.search(r"\] (\w+): ", e).group(1) for e in errs] == ["colour", "key", "size"], errs  # type: ignore[union-attr]


def test_misspelt_mta_key_gets_did_you_mean(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr="", rest=mta("mx1.example.com", 'reuse_keys = true\n'))
    (err,) = errors(validate(main))
    assert "[mta #1] reuse_keys: unknown key" in err and "did you mean reuse_key?" in err, err


def test_misspelt_key_in_core_table_and_unknown_table(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr='statedir = "x"\n',
                 rest="\n[deamon]\nrenew_interval = 60\n" + mta("mx1.example.com"))
    errs = errors(validate(main))
    assert "[certmgr] statedir: unknown key" in errs[0] and "did you mean state_dir?" in errs[0], errs
    assert "[deamon]" in errs[1] and "did you mean daemon?" in errs[1], errs


def test_misspelt_provider_option_gets_did_you_mean(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr="", rest=mta("mx1.example.com"))
    main.write_text(main.read_text().replace("directory =", "directroy ="))
    (err,) = errors(validate(main))
    assert "[issuer.le] directroy: unknown key" in err and "did you mean directory?" in err, err


def test_errors_of_several_providers_are_all_reported(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr="", rest='\n[issuer.corp]\ntype = "manual"\ncolor = 1\n'
                                '\n[notify.ops]\ntype = "webhook"\nurl = "https://hooks.example/x"\ntimout = 5\n'
                 + mta("mx1.example.com"))
    errs = errors(validate(main))
    assert len(errs) == 2, errs
    assert "[issuer.corp] color" in errs[0] and "[notify.ops] timout" in errs[1]
    assert "did you mean timeout?" in errs[1], errs


# -- [monitor] -----------------------------------------------------------------------


def test_monitor_errors_come_out_with_the_others(tmp_path: Path) -> None:
    main = setup(tmp_path, certmgr="concurrency = 0\n",
                 rest='\n[daemon]\ncollect_interval = -1\n\n[monitor]\nreport = { notify = ["mailop"] }\n')
    errs = errors(validate(main))
    assert len(errs) == 3, errs
    assert "[certmgr] concurrency" in errs[0]
    assert "[daemon] collect_interval: must be a number of seconds between 0" in errs[1], errs
    assert "[monitor] report.notify: 'mailop' is not a [notify.*] table" in errs[2], errs


def test_monitor_table_only_in_the_main_file(tmp_path: Path) -> None:
    main = setup(tmp_path, files={"conf.d/a.toml": '[monitor]\nlogs = []\n'})
    (err,) = errors(validate(main))
    assert err.startswith(f"{tmp_path}/conf.d/a.toml:1 ") and "only in the main config file" in err, err
