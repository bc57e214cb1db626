"""Progress on long commands: a click progress bar on a terminal, plain periodic lines otherwise.

Under nohup, CI or `2> log.txt` a progress bar prints nothing until the end (click hides it when
stderr is not a terminal), so a long run looks dead. `progress` gives every long loop one
interface for both cases:

    with progress(total, "pretrain", unit="steps", describe=show_loss) as bar:
        for ...:
            bar.update(1, record)

On a terminal it is `click.progressbar` (label, bar, percentage, ETA, `describe(item)`); on
anything else it writes one line to stderr on the first update, then at most every `every_s`
seconds, and a last one at the end:

    pretrain: 40/200 steps (20%), 3.1 steps/s, 52 s left | pretrain loss 7.1234 lr 1.00e-03

The total may be unknown when the loop starts (evaluation batches are counted while they are
built): pass `total=` with the first `update` instead.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

import click

EVERY_SECONDS = 10.0


def _seconds(s: float) -> str:
    s = int(round(s))
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60:02d} s"


class Progress:
    """What `progress` yields: `update(n=1, item=None, total=None)`."""

    def __init__(self, length: int | None, label: str, unit: str,
                 describe: Callable[[Any], str] | None, every_s: float, file: IO[str],
                 stack: ExitStack, clock: Callable[[], float] = time.monotonic) -> None:
        self.length, self.label, self.unit, self.describe = length, label, unit, describe
        self.every_s, self.file, self.stack, self.clock = every_s, file, stack, clock
        self.tty = file.isatty()
        self.bar: Any = None              # the click bar, opened at the first update on a tty
        self.done = 0
        self.item: Any = None
        self.first: tuple[float, int] | None = None   # (time, done) at the first update
        self.last_line: float | None = None
        self.printed_at = -1

    def update(self, n: int = 1, item: Any = None, total: int | None = None) -> None:
        if total is not None and self.length is None:
            self.length = total
        self.done += n
        if item is not None:
            self.item = item
        if self.tty and self.length:
            if self.bar is None:
                self.bar = self.stack.enter_context(click.progressbar(
                    length=self.length, label=self.label, file=self.file,
                    item_show_func=self._show))
            self.bar.update(n, item)
            return
        now = self.clock()
        if self.first is None:
            self.first = (now, self.done)  # rates start here: setup time is not a step
        if self.last_line is None or now - self.last_line >= self.every_s:
            self._line(now)

    def _show(self, item: Any) -> str | None:
        return self.describe(item) if self.describe and item is not None else None

    def _line(self, now: float) -> None:
        self.last_line, self.printed_at = now, self.done
        t0, done0 = self.first or (now, self.done)
        rate = (self.done - done0) / (now - t0) if now > t0 and self.done > done0 else None
        if self.length:
            text = f"{self.label}: {self.done}/{self.length} {self.unit} " \
                   f"({100 * self.done / self.length:.0f}%)"
        else:
            text = f"{self.label}: {self.done} {self.unit}"
        if rate:
            text += f", {rate:.3g} {self.unit}/s"
            if self.length and self.done < self.length:
                text += f", {_seconds((self.length - self.done) / rate)} left"
        extra = self._show(self.item)
        click.echo(text + (f" | {extra}" if extra else ""), file=self.file)

    def finish(self) -> None:
        """The last line, unless the last update printed one already (or a bar shows it)."""
        if self.bar is None and self.done and self.printed_at != self.done:
            self._line(self.clock())


@contextmanager
def progress(length: int | None, label: str, *, unit: str = "steps",
             describe: Callable[[Any], str] | None = None, every_s: float = EVERY_SECONDS,
             file: IO[str] | None = None) -> Iterator[Progress]:
    """A progress reporter for a loop of `length` units: a bar on a terminal, lines otherwise.

    `describe(item)` adds text about the latest item (a loss, an op name). The final line is
    written only when the block ends normally, so an error message is the last thing printed.
    """
    file = file if file is not None else sys.stderr
    with ExitStack() as stack:
        reporter = Progress(length, label, unit, describe, every_s, file, stack)
        yield reporter
        reporter.finish()


__all__ = ["EVERY_SECONDS", "Progress", "progress"]
