"""Progress for long work: tqdm.auto when it is installed (a widget in Jupyter, a bar in a
terminal), plain lines every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional


class Progress:
    """A bar over ``total`` steps; ``update`` moves it, ``close`` ends it."""

    def __init__(self, total: int, desc: str, disable: bool = False, every: float = 10.0):
        self.total, self.desc, self.n = total, desc, 0
        self._bar: Any = None
        self._plain = False
        self._last = time.monotonic()
        self._start = self._last
        self._every = every
        if disable:
            return
        try:
            from tqdm.auto import tqdm  # type: ignore[import-not-found]

            self._bar = tqdm(total=total, desc=desc, leave=True)
        except ImportError:
            self._plain = True

    def update(self, n: int = 1, loss: Optional[float] = None) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if loss is not None:
                self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif self._plain and (time.monotonic() - self._last >= self._every or self.n == self.total):
            self._last = time.monotonic()
            tail = f", loss {loss:.4f}" if loss is not None else ""
            secs = self._last - self._start
            print(f"{self.desc}: {self.n}/{self.total} ({secs:.0f} s{tail})", file=sys.stderr, flush=True)

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
