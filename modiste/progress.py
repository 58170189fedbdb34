"""Progress bars for long jobs (rich), silent when disabled or when output is not a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress

T = TypeVar("T")


class Progress:
    """One live display for a job made of several stages.

    >>> with Progress() as bar:
    ...     for x in bar.track(range(10), "stage one"): ...
    ...     bar.step("stage two, no bar")
    """

    def __init__(self, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._rich = _RichProgress(
            TextColumn("[bold]{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console, disable=not enabled,
        )

    def __enter__(self) -> Progress:
        self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._rich.__exit__(*exc)

    def track(self, iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        task = self._rich.add_task(description, total=total, info="")
        for x in iterable:
            yield x
            self._rich.advance(task)

    def step(self, description: str) -> None:
        """A stage without a count: shown as one line."""
        task = self._rich.add_task(description, total=1, info="")
        self._rich.update(task, completed=1)

    def info(self, text: str) -> None:
        """Set the text at the end of the latest bar (e.g. the loss)."""
        if self._rich.tasks:
            self._rich.update(self._rich.tasks[-1].id, info=text)
