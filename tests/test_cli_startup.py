"""CLI start-up: only the group of the command being run is imported, and the table of commands
that stands in for the other groups says exactly what the groups register."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hpctool import cli


def _commands(parser: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in action._choices_actions}


def test_the_command_table_matches_what_the_groups_register():
    real = _commands(cli.build_parser([], lazy=False))
    lazy = _commands(cli.build_parser([]))
    assert list(lazy.items()) == list(real.items())  # same commands, same help, same order
    assert {group for group, _ in cli.COMMANDS.values()} <= set(cli.GROUPS)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


@pytest.mark.parametrize(
    ("argv", "absent"),
    [
        (["--help"], ["submitit", "hpctool.twin", "hpctool.jobs", "yaml"]),
        (["jobs", "--help"], ["submitit", "hpctool.twin", "hpctool.jobs"]),
        (["local", "status", "--help"], ["submitit", "hpctool.jobs"]),
        (["submit", "--help"], ["hpctool.twin"]),
    ],
)
def test_a_command_imports_only_what_it_uses(argv, absent):
    code = ("import sys\nfrom hpctool.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {absent!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_an_unknown_command_is_still_a_usage_error_listing_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "submit" in err


def test_an_atomic_write_never_replaces_a_device_or_a_folder(tmp_path):
    import os
    from pathlib import Path

    from hpctool.atomic import write_atomic
    from hpctool.errors import UsageError

    for target in (Path(os.devnull), tmp_path):
        with pytest.raises(UsageError, match="not a regular file|a folder"):
            write_atomic(target, "text")
    assert not Path(os.devnull).is_file() and Path(os.devnull).is_char_device()
    write_atomic(tmp_path / "a.txt", "one")
    write_atomic(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
