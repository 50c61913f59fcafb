"""Regenerate the results table: a thin wrapper over `glamor compare` (same arguments).

    python benchmarks/results_table.py --envs gridworld --seeds 0 1 2 --budget small
    python benchmarks/results_table.py --envs gridworld gridworld_box --seeds 0 1 2 --budget full  # GPU

Finished runs are reused, unfinished ones resumed; see glamor/compare.py.
"""

from __future__ import annotations

import argparse
import sys

from glamor.compare import add_arguments
from glamor.compare import main as compare_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return compare_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
