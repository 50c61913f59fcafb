"""README.md's command lines are ones the command line takes: every `glamor ...` line of its bash
blocks parses, names config fields, presets and registered environments that exist, and passes a
benchmark only options that benchmark has (docs that match the code; nothing runs)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from glamor import envs
from glamor.cli import build_parser
from glamor.config import PRESETS, Config

README = Path(__file__).resolve().parent.parent / "README.md"
BASH = "\n".join(re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S))


def _command_lines() -> list[str]:
    lines = []
    for line in BASH.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()  # a comment after the command
        line = re.sub(r"\[[^\]]*\]", "", line)  # [--videos N]: optional parts
        match = re.search(r"(?:^|\s)(?:-m |\.venv/bin/)?glamor (.*)$", line)
        if match and not line.startswith("#"):
            lines.append(match.group(1).strip())
    return lines


COMMANDS = _command_lines()


def test_the_readme_shows_every_subcommand():
    assert {shlex.split(c)[0] for c in COMMANDS} >= {"train", "eval", "plan", "envs", "compare", "bench"}


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_line_parses_and_names_what_exists(command):
    argv = shlex.split(command)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"README: `glamor {command}` does not parse")
    fields = set(Config.__dataclass_fields__)
    named = [pair.split("=", 1)[0] for pair in getattr(args, "set", [])]
    assert set(named) <= fields, f"README: `glamor {command}` sets unknown config fields {set(named) - fields}"
    if getattr(args, "env", None) and ":" not in args.env:  # module:id names an environment of your own
        assert args.env in envs.registered(), f"README: `glamor {command}`: no environment {args.env}"
    if args.command == "compare":
        assert set(args.envs) <= set(PRESETS), f"README: `glamor {command}`: --envs takes presets"
    if args.command == "bench":
        usage = subprocess.run([sys.executable, "-m", "glamor", "bench", args.what, "--help"], capture_output=True,
                               text=True, timeout=120).stdout
        for option in (a.split("=")[0] for a in args.rest if a.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", usage), f"README: `glamor {command}`: bench {args.what} " \
                                                                 f"has no {option}"
