"""Regenerate the results table: a thin wrapper over `glamor compare` (same arguments).

    python benchmarks/results_table.py --envs gridworld --seeds 0 1 2 --budget small
    python benchmarks/results_table.py --envs gridworld gridworld_box --seeds 0 1 2 --budget full  # GPU

Finished runs are reused, unfinished ones resumed; see glamor/compare.py.
"""

from __future__ import annotations

import sys

from glamor.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    # the command line's own handling: a bad argument in one line, Ctrl-C naming the command that goes on
    return cli_main(["compare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
