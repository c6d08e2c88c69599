"""Bad command lines get one clear line naming what is wrong and exit 2, never a traceback."""

from __future__ import annotations

import sys

import pytest

from cashmatch.entrypoints.cli.main import main

pytestmark = pytest.mark.integration

CASES = [
    (["publish", "month.closed", "--month", "2025-03\n"], "month must look like YYYY-MM"),
    (["publish", "month.closed", "--month", "２０２５-03"], "month must look like YYYY-MM"),
    (["publish", "month.closed", "--data", "{bad"], "--data: not JSON"),
    (["publish", "month.closed", "--data", "[1]"], "--data: must be a JSON object"),
    (["publish", "month.closed", "--raw", "/nonexistent/event.json"], "does not exist"),
    (["publish", "month.closed", "--month", "2025-03", "--source", ""], "Envelope source"),
    (["quarantine", "--month", "../../../etc"], "month must look like YYYY-MM"),
    (["synth", "--start", "2025-13", "--out", "x.duckdb"], "month must look like YYYY-MM"),
    (["synth", "--profile", "bogus", "--out", "x.duckdb"], "profile must be one of"),
    (["run", "--service", "bogus"], "the services are collector"),
    (["events", "--limit", "-1"], "--limit"),
    (["redrive", "0123abcd"], "no event with id '0123abcd'"),
    (["redrive", "0123abcd", "--subscriber", "nosuch"], "the subscribers are collector"),
    (["publish", "bogus.topic", "--raw", "/etc/hostname"], "no service takes 'bogus.topic'"),
    (["republish", "01"], "no event with id '01'"),
    (["match", "--month", "2025-04", "--out", "/nonexistent/dir/p.csv"], "is not a folder"),
    (["match", "--month", "2025-04", "--out", "p.csv"], "does not exist"),
]


@pytest.mark.parametrize(("args", "said"), CASES, ids=[" ".join(a[:2]) for a, _ in CASES])
def test_a_bad_command_line_is_one_clear_line(args, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CASHMATCH_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("CASHMATCH_WAREHOUSE", str(tmp_path / "missing.duckdb"))
    monkeypatch.setenv("COLUMNS", "80")  # off a terminal, no width wraps a message
    monkeypatch.setattr(sys, "argv", ["cashmatch", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    printed = capsys.readouterr()
    assert ended.value.code == 2, printed
    assert said in printed.err, printed.err
    assert "Traceback" not in printed.err + printed.out
    assert not (tmp_path / "x.duckdb").exists()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ([], "is not empty and has no .cashmatch-demo"),
        (["--profile", "bogus"], "profile must be one of"),
        (["--serving", "bogus"], "CASHMATCH_SERVING"),
    ],
    ids=["someone's folder", "bad profile", "bad serving"],
)
def test_the_demo_checks_everything_before_it_deletes_or_writes(
    options, said, tmp_path, monkeypatch, capsys
):
    # A path as long as pytest's may be on another machine: the message is never wrapped.
    precious = tmp_path / ("a-long-folder-name-" * 8) / "precious"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("keep me")
    monkeypatch.setattr(
        sys, "argv", ["cashmatch", "demo", "--workspace", str(precious), "--serving", "none"]
    )
    sys.argv += options
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    assert said in capsys.readouterr().err
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]


def test_the_gcp_stack_without_credentials_is_one_line(tmp_path, monkeypatch, capsys):
    from google.auth.exceptions import DefaultCredentialsError

    from cashmatch.entrypoints.cli import session

    def no_credentials():
        # What bootstrap meets on a machine without Application Default Credentials (raised
        # here: the real lookup would ask the metadata server, off this machine).
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(session, "ports", no_credentials)
    monkeypatch.setattr(sys, "argv", ["cashmatch", "status"])
    with pytest.raises(SystemExit) as ended:
        main()
    printed = capsys.readouterr()
    assert ended.value.code == 2
    assert "default credentials were not found" in printed.err
    assert "Traceback" not in printed.err + printed.out


def test_the_demo_never_deletes_a_folder_it_did_not_make(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "mine"
    (mine / "workspace" / "registry").mkdir(parents=True)
    (mine / "warehouse.duckdb").write_text("the real warehouse")  # the README's file name
    monkeypatch.setattr(
        sys, "argv", ["cashmatch", "demo", "--workspace", str(mine), "--serving", "none"]
    )
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    assert "has no .cashmatch-demo" in capsys.readouterr().err
    assert (mine / "warehouse.duckdb").read_text() == "the real warehouse"


def test_a_bug_is_not_passed_off_as_a_usage_error(tmp_path, monkeypatch, capsys):
    from cashmatch.entrypoints.cli import session

    def broken():
        return {}["amount"]  # a programming error somewhere below a command

    monkeypatch.setenv("CASHMATCH_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setattr(session, "ports", broken)
    monkeypatch.setattr(sys, "argv", ["cashmatch", "status"])
    with pytest.raises(KeyError):  # keeps its traceback (and exit 1), not "error: ..." exit 2
        main()
