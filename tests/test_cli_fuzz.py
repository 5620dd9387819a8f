"""Hostile argv for every command of the CLI: never a traceback, exit 0, 1 or 2, and a refusal of
input (exit 2) always says what to do on a `hint:` line.

The commands come from the argparse tree itself (``cli.build_parser(lazy=False)``), so a new
command is fuzzed without touching this file. Each example runs ``cli.main`` in-process with
``$HPCTOOL_HOME`` and ``$HOME`` in a fresh folder, no Slurm on PATH, and
``hpctool.configs.offline.no_network`` around it: every connection and name lookup fails at once,
so the AWS and SSH commands meet an unreachable service, never a real one, as on a machine offline.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpctool import cli
from hpctool.cluster.queues import DEFAULT_CLUSTER_CONFIG
from hpctool.configs.offline import no_network

# Commands never run here, and why (their own tests drive them).
EXCLUDED = {
    ("local", "up"): "starts the twin (root, namespaces, daemons)",
    ("local", "down"): "stops daemons by PID file and removes the twin's bridge",
    ("local", "ssh"): "an interactive ssh session to the twin's head node",
    ("local", "hub", "up"): "starts JupyterHub on the twin",
    ("local", "hub", "down"): "stops JupyterHub on the twin",
}
# Options left out of one command, and why.
DROPPED = {
    ("config", "validate"): {"--deep": "starts a child process with moto: seconds per example (test_config_validate)"},
    ("run", "germline"): {"--test": "runs the whole workflow", "--snakemake": "arguments for a Snakemake it runs"},
    ("report",): {"--png": "starts headless Chromium once the page is written (test_report)"},
    ("local", "image"): {"--force": "rebuilds the node image with debootstrap"},
}
# Options and positionals whose values are held to what fails before anything long starts.
NOT_A_FILE = ["missing", "folder", "/dev/null"]
PINNED = {
    ("run", "germline"): {"--configfile": NOT_A_FILE},  # a real file would start Snakemake
    ("local", "image"): {"action": ["show"]},  # build: debootstrap of the node image
}
EXIT_CODES = {0, 1, 2}


@dataclass
class Level:
    """One parser on the way to a command: its word and the arguments it takes itself."""

    word: str
    actions: list[argparse.Action]


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...], levels: list[Level]) -> Iterator[tuple]:
    own = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                                            argparse._SubParsersAction))]
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    here = [*levels, Level(path[-1] if path else "", own)]
    if sub is None:
        yield path, here
        return
    for word, child in sub.choices.items():
        yield from _leaves(child, (*path, word), here)


COMMANDS = {path: levels for path, levels in _leaves(cli.build_parser([], lazy=False), (), [])}
FUZZED = sorted(path for path in COMMANDS if path not in EXCLUDED)

# --- values ------------------------------------------------------------------------------------
# Argv from a shell never holds NUL; it may hold undecodable bytes (as surrogate escapes).
words = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12)
hostile = st.sampled_from(["", " ", "-", "--", "ü", "名前", "\udcff\udcfe", "é" * 300, "a=b", "=", "x=1=2",
                           "s3://", "~", "..", "$HOME", "*", "-1", "0", "1e308", "inf", "nan", "-inf",
                           "99999999999999999999999999", "-99999999999999999999", "1" * 5000, "0x10"])
numbers = st.one_of(st.integers(-(10**20), 10**20).map(str), st.sampled_from(["-0", "1.5", "nan", "inf", "-1e309"]))
PATH_KINDS = ["missing", "folder", "binary", "/dev/null", "empty", "unicode", "text", "config", "vcf"]


def _files(root: Path) -> dict[str, str]:
    """The kinds of file a hostile path names, made in ``root``."""
    (root / "folder").mkdir()
    (root / "binary").write_bytes(bytes(range(256)) * 4)
    (root / "empty").write_bytes(b"")
    (root / "ünïcødé 名前.yaml").write_text("Region: eu-west-1\n")
    (root / "text").write_text("hello\nworld\n")
    shutil.copy(DEFAULT_CLUSTER_CONFIG, root / "cluster.yaml")
    (root / "a.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                                "chr1\t5\t.\tA\tG\t50\tPASS\t.\n")
    return {"missing": str(root / "absent" / "file"), "folder": str(root / "folder"),
            "binary": str(root / "binary"), "/dev/null": os.devnull, "empty": str(root / "empty"),
            "unicode": str(root / "ünïcødé 名前.yaml"), "text": str(root / "text"),
            "config": str(root / "cluster.yaml"), "vcf": str(root / "a.vcf")}


paths = st.sampled_from(PATH_KINDS).map(lambda kind: ("path", kind))


def _value(action: argparse.Action, pinned: list[str] | None) -> st.SearchStrategy:
    if pinned is not None:
        return st.sampled_from(pinned).map(lambda v: ("path", v) if v in PATH_KINDS else v)
    kinds = [hostile, words, paths]
    if action.type in (int, float):
        kinds = [numbers, numbers, hostile]
    if action.choices:
        kinds = [st.sampled_from(sorted(map(str, action.choices))), st.sampled_from(sorted(map(str, action.choices))),
                 hostile]
    return st.one_of(kinds)


def _args_of(action: argparse.Action, path: tuple[str, ...]) -> st.SearchStrategy:
    """What to put on the command line for one action: a list of tokens (maybe none)."""
    pinned = PINNED.get(path, {}).get(action.option_strings[0] if action.option_strings else action.dest)
    value = _value(action, pinned)
    if not action.option_strings:  # positional
        if action.nargs == argparse.REMAINDER:
            return st.lists(st.one_of(hostile, words), max_size=3).map(lambda v: ["--", *v] if v else [])
        if action.nargs in ("*", "?"):
            return st.lists(value, max_size=1 if action.nargs == "?" else 3)
        if action.nargs == "+":
            return st.lists(value, min_size=1, max_size=3)
        return st.lists(value, min_size=1, max_size=1)
    flag = st.sampled_from(action.option_strings)
    if action.nargs == 0:  # store_true and friends
        present = st.just(True) if action.required else st.booleans()
        return st.tuples(present, flag).map(lambda t: [t[1]] if t[0] else [])
    chosen = st.booleans() if not action.required else st.sampled_from([True] * 9 + [False])
    return st.tuples(chosen, flag, value).map(lambda t: [t[1], t[2]] if t[0] else [])


def argv_for(path: tuple[str, ...]) -> st.SearchStrategy:
    dropped = DROPPED.get(path, {})
    parts: list[st.SearchStrategy] = []
    for level in COMMANDS[path]:
        if level.word:
            parts.append(st.just([level.word]))
        actions = [a for a in level.actions if not set(a.option_strings) & set(dropped)]
        # Options first, then the positionals in order, a REMAINDER last.
        for action in sorted(actions, key=lambda a: (not a.option_strings, a.nargs == argparse.REMAINDER)):
            parts.append(_args_of(action, path))
    extra = st.sampled_from([[], [], [], [], ["--no-such-option"], ["surplus"]])
    return st.tuples(*parts, extra).map(lambda chunks: [token for chunk in chunks for token in chunk])


def _resolve(argv: list, files: dict[str, str]) -> list[str]:
    return [files[token[1]] if isinstance(token, tuple) else token for token in argv]


@contextmanager
def _streams() -> Iterator[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    """Streams that encode as a UTF-8 terminal does (stdout strict, stderr backslashreplace)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    with redirect_stdout(out), redirect_stderr(err):
        yield out, err


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", "replace")


@contextmanager
def _offline() -> Iterator[None]:
    """no_network's fence (no connection, throw-away AWS credentials), with name lookups failing
    as they do on a machine without DNS: a ``socket.gaierror``."""
    def lookup(host: object, *args: object, **kwargs: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host!r} (offline test)")

    with no_network():
        saved, socket.getaddrinfo = socket.getaddrinfo, lookup
        try:
            yield
        finally:
            socket.getaddrinfo = saved


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``cli.main`` as the console script runs it: its return value or SystemExit's code is the exit code."""
    with _streams() as (out, err), _offline():
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse: --help, usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        return code, _text(out), _text(err)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of its own, the current folder in it, and no Slurm (nor the twin's clients) on PATH."""
    for name in ("home", "hpctool", "jobs", "cwd"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HPCTOOL_HOME", str(tmp_path / "hpctool"))
    monkeypatch.setenv("HPCTOOL_JOBS_DIR", str(tmp_path / "jobs"))
    for name in ("HPCTOOL_CLUSTER_CONFIG", "HPCTOOL_SSH_CONFIG", "HPCTOOL_KNOWN_HOSTS", "SLURM_CONF", "SSH_AUTH_SOCK"):
        monkeypatch.delenv(name, raising=False)
    clean = [d for d in os.environ["PATH"].split(":")
             if d and not any(os.path.exists(os.path.join(d, p)) for p in ("sbatch", "sacct", "srun", "scontrol"))]
    monkeypatch.setenv("PATH", ":".join(clean))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def check_outcome(argv: list[str], code: int, out: str, err: str) -> None:
    shown = f"argv={argv!r}\nexit {code}\nstdout: {out[-2000:]}\nstderr: {err[-4000:]}"
    assert "Traceback (most recent call last)" not in out + err, shown
    assert code in EXIT_CODES, shown
    if code == 2:
        assert any(line.startswith("hint: ") and len(line) > 6 for line in err.splitlines()), shown


SETTINGS = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("path", FUZZED, ids=" ".join)
def test_hostile_argv_never_gives_a_traceback(path: tuple[str, ...], sandbox: Path) -> None:
    @SETTINGS
    @given(argv_for(path))
    def fuzz(raw: list) -> None:
        root = Path(os.environ["HPCTOOL_HOME"]).parent / f"files-{os.urandom(4).hex()}"
        root.mkdir()
        argv = _resolve(raw, _files(root))
        check_outcome(argv, *run_cli(argv))

    fuzz()


def test_every_command_is_fuzzed_or_excluded_for_a_reason() -> None:
    assert len(FUZZED) >= 30 and ("config", "render") in FUZZED and ("remote", "nodes", "exec") in FUZZED
    assert set(EXCLUDED) <= set(COMMANDS) and set(DROPPED) <= set(COMMANDS) and set(PINNED) <= set(COMMANDS)
    for path, options in DROPPED.items():
        flags = {f for level in COMMANDS[path] for a in level.actions for f in a.option_strings}
        assert set(options) <= flags, path


@pytest.mark.parametrize("argv", [
    ["nope"], ["config"], ["config", "render"], ["cost", "plan", "--samples", "x"], ["report", "--no-such"],
    ["remote"], ["concordance", "a"],
])
def test_a_usage_error_names_the_help(argv: list[str], sandbox: Path) -> None:
    code, _, err = run_cli(argv)
    assert code == 2 and "usage:" in err
    assert err.splitlines()[-1].startswith("hint: ") and "--help" in err.splitlines()[-1]
