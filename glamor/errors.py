"""Errors glamor raises for conditions of the machine rather than of the caller's arguments.

The command line prints them as one line (`glamor train: error: ...`), as it does ValueError
and OSError; they are RuntimeErrors, so `except RuntimeError` still catches them (OtherProcessFailed: a
torchrun process whose collective broke when another failed). Also
`did_you_mean`, which a caller's error about a mistyped name (a config field, a preset, an
environment id) ends with.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


class EnvironmentUnavailable(RuntimeError):
    """An environment cannot be made or kept running here: headless rendering that does not
    work (DeepMind Control needs EGL or OSMesa), or an environment worker that failed every
    restart. The message names the cause (for rendering, also the packages that fix it)."""


class OtherProcessFailed(RuntimeError):
    """Under torchrun: this process's collective broke because another process failed first and
    left (glamor/distributed.py's `teardown`). The message names that process's rank and its
    error, whose traceback is in that process's output; the broken collective's error is the cause."""


# The attribute that marks an error already printed with its traceback (`printed`)
_PRINTED = "_glamor_printed"


def mark_printed(error: BaseException) -> None:
    """Note that `error` was printed with its traceback (glamor/distributed.py's `teardown`
    prints a failing process's error before it waits for the others to leave)."""
    setattr(error, _PRINTED, True)


def printed(error: BaseException) -> bool:
    """Whether `error` was printed with its traceback already (`mark_printed`): the command line
    then ends with its one line alone."""
    return bool(getattr(error, _PRINTED, False))


def did_you_mean(name: str, options: Iterable[str], key: Callable[[str], str] = str.lower) -> str:
    """' (did you mean X?)' naming the options closest to a mistyped `name`, or '' when none is
    close. Names are compared by `key` (default: case ignored); an option whose key is the
    name's, or begins with it and a dash (reacher for reacher-hard), comes first."""
    keyed: dict[str, list[str]] = {}
    for option in sorted(set(options)):
        keyed.setdefault(key(option), []).append(option)
    wanted = key(name)
    if not wanted:
        return ""
    close = [k for k in keyed if k == wanted] + [k for k in keyed if k.startswith(wanted + "-")]
    close += [k for k in difflib.get_close_matches(wanted, list(keyed), n=3, cutoff=0.75) if k not in close]
    found = [option for k in close for option in keyed[k] if option != name][:3]
    return f" (did you mean {' or '.join(found)}?)" if found else ""
