"""Stopping a training run on Ctrl-C or SIGTERM without losing its work.

While the training loop runs inside `stop_on_signal()`, the first SIGINT (Ctrl-C) or SIGTERM (a
batch scheduler's preemption, `kill PID`) only asks it to stop: the loop finishes the round it
is in (collection, the round's updates; a periodic evaluation, which can take minutes, is given up
at its next step and done first by the resumed run), writes a checkpoint and raises
`TrainingInterrupted`, which `glamor train` turns into a message naming
`glamor train --resume` and exit status 128 + the signal's number (130 for Ctrl-C, 143 for
SIGTERM). The checkpoint is written where a periodic one would be, between rounds, so a resumed
run goes on exactly as if it had not stopped. The final evaluation, after the training's last
checkpoint, is given up alike at its next step (TrainingInterrupted with `final_evaluation`): the
resumed run, finding the training done, evaluates it. A second signal, a second or more later, stops at
once (KeyboardInterrupt for Ctrl-C, the default action for SIGTERM) and loses the steps since the
last checkpoint. Under torchrun every rank stops after the same round (they agree on it) and rank
0 writes the checkpoint; torchrun kills its ranks 30 s after forwarding a signal, so a round and
a checkpoint must fit in that time (the previous checkpoint stays whole if they do not).

A signal the process was started to ignore (SIGINT of a job started in the background by a
non-interactive shell) stays ignored. Python handles signals between bytecodes, so a process
blocked in a collective (a DDP rank waiting for another) takes the request only when the
collective returns or times out; torchrun and batch schedulers follow up with SIGKILL anyway. Signals reach only the main thread: elsewhere
`stop_on_signal` installs nothing and its request is never set.

Example:
    >>> with stop_on_signal() as request:
    ...     while not request:
    ...         break  # one round of work, then check again
    >>> request.signum is None
    True
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint (a KeyboardInterrupt, so code
    that catches Exception lets it through, as it would a Ctrl-C). `final_evaluation`: the
    training was finished and saved, and the stop gave up its final evaluation, which the resume
    does."""

    def __init__(self, signum: int, env_step: int, run_dir: str | Path, continue_with: str | None = None,
                 final_evaluation: bool = False):
        self.signum, self.env_step, self.run_dir = signum, env_step, Path(run_dir)
        self.final_evaluation = final_evaluation
        how = continue_with or f"glamor train --resume {self.run_dir}"
        name = signal.Signals(signum).name
        if final_evaluation:
            message = (f"{name} received: gave up the final evaluation; the training is finished ({env_step:,} "
                       f"environment steps) and saved in {self.run_dir}, and `{how}` evaluates it")
        else:
            message = (f"{name} received: stopped at environment step {env_step:,} and saved a checkpoint in "
                       f"{self.run_dir}; `{how}` continues the run")
        super().__init__(message)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process a signal stopped: 128 + the signal's number."""
        return 128 + self.signum


class StopRequest:
    """Whether a stop was asked for: falsy until the first signal, whose number `signum` holds."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at = 0.0  # time.monotonic() of the first signal

    def __bool__(self) -> bool:
        return self.signum is not None

    def __repr__(self) -> str:
        return f"StopRequest(signum={self.signum})"


@contextmanager
def stop_on_signal(what: str = "stopping after this round and saving a checkpoint", same_within: float = 1.0,
                   at_once: str = "losing the steps since the last checkpoint"):
    """Within the block, the first SIGINT or SIGTERM sets the yielded StopRequest (and prints
    `what` to stderr) instead of interrupting; one that comes `same_within` seconds or more
    later acts as it would have outside (sooner, it is the first one again: a launcher such as
    torchrun forwards to its ranks the signal that the whole process group received); the
    message says what stopping at once then costs (`at_once`). The previous handlers come back
    when the block ends."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handler(signum, frame):
        if request.signum is None:
            request.signum, request.at = signum, time.monotonic()
            try:  # (raised here, an error would end the loop anywhere, without the checkpoint)
                print(f"\n{signal.Signals(signum).name} received: {what} (send it again to stop at once, "
                      f"{at_once})", file=sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr gone: a closed terminal (EIO), a pipe whose reader left
                pass
            return
        if time.monotonic() - request.at < same_within:
            return  # the same stop, forwarded: torchrun passes the group's signal on to its ranks
        for s in installed:  # a second signal: what it would have done without us
            signal.signal(s, previous[s])
        before = previous[signum]
        if callable(before):
            before(signum, frame)  # Python's own SIGINT handler raises KeyboardInterrupt here
        elif before == signal.SIG_DFL:
            os.kill(os.getpid(), signum)

    installed = [s for s, h in previous.items() if h != signal.SIG_IGN and h is not None]
    for s in installed:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        for s in installed:
            signal.signal(s, previous[s])
