"""Progress with a rate and an ETA, for every long step (DAMSM pre-training, GAN training,
judging, evaluation): a live bar on a terminal, plain lines otherwise (a log file, CI),
one every `every_s` seconds and one at the end."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """`update(n)` as work is done; `close()` at the end.

    total: the amount of work, when known. budget_s: a time budget (training for
    --minutes): the ETA is then the sooner of the work's and the budget's end, and while the
    budget ends first, progress is shown against it ("elapsed 5:00 of 15:00 (33%)"), not as
    a share of a step cap the run will not reach. live: a bar (None: when stderr is a
    terminal; with a budget it counts the work without a total and shows the budget's share).
    """

    def __init__(self, total: int | None, desc: str, *, unit: str = "it",
                 budget_s: float | None = None, live: bool | None = None, every_s: float = 10.0,
                 start: int = 0, stream=None):
        self.total, self.desc, self.unit, self.budget_s = total, desc, unit, budget_s
        self.stream = stream or sys.stderr
        self.every_s, self.n, self.start_n = every_s, start, start
        self.t0 = self.last = time.monotonic()
        self.postfix = ""
        live = self.stream.isatty() if live is None else live
        self._bar = None
        if live:
            from tqdm import tqdm

            self._bar = tqdm(total=None if budget_s is not None else total, desc=desc,
                             unit=unit, initial=start,
                             dynamic_ncols=True, file=self.stream)

    def rate(self) -> float:
        return (self.n - self.start_n) / max(time.monotonic() - self.t0, 1e-9)

    def eta(self) -> float | None:
        """Seconds left, or None when neither the work nor a budget bounds it."""
        elapsed = time.monotonic() - self.t0
        left = []
        if self.total is not None and self.rate() > 0:
            left.append((self.total - self.n) / self.rate())
        if self.budget_s is not None:
            left.append(self.budget_s - elapsed)
        return max(0.0, min(left)) if left else None

    def budget_ends_first(self) -> bool:
        """A budget that, at the rate so far, ends before the work does."""
        if self.budget_s is None:
            return False
        if self.total is None or self.rate() <= 0:
            return True
        elapsed = time.monotonic() - self.t0
        return (self.total - self.n) / self.rate() > self.budget_s - elapsed

    def budget_text(self) -> str:
        elapsed = time.monotonic() - self.t0
        return (f"elapsed {_clock(elapsed)} of {_clock(self.budget_s)} "
                f"({min(elapsed / max(self.budget_s, 1e-9), 1.0):.0%})")

    def line(self) -> str:
        by_budget = self.budget_ends_first()
        done = f"{self.n}" + (f"/{self.total} ({self.n / max(self.total, 1):.0%})"
                              if self.total and not by_budget else "")
        eta = self.eta()
        text = f"{self.desc}: {done} {self.unit}, {self.rate():.1f} {self.unit}/s"
        text += (f", {self.budget_text()}" if by_budget
                 else f", elapsed {_clock(time.monotonic() - self.t0)}")
        if eta is not None:
            text += f", ETA {_clock(eta)}"
        return text + (f" ({self.postfix})" if self.postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if self.budget_s is not None and time.monotonic() - self.last >= 1.0:
                self.last = time.monotonic()
                self._bar.set_postfix_str(", ".join(filter(None, [self.budget_text(),
                                                                  self.postfix])))
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def write(self, text: str) -> None:
        """A message line that does not break a live bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def set_postfix(self, text: str) -> None:
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.n > self.start_n:
            print(self.line(), file=self.stream, flush=True)
