"""Progress bars for the library's long pipelines (``qsplit.demo.Progress``), drawn by rich."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qsplit.cli._app import console


class RichProgress:
    """One rich progress bar per pipeline step."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def task(self, description: str, total: int) -> Callable[[int], None]:
        task = self._progress.add_task(description, total=total)
        return lambda steps=1: self._progress.advance(task, steps)


@contextmanager
def progress_bars() -> Iterator[RichProgress]:
    """Bars with the step's name, its count of done/total and the time it has taken."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield RichProgress(progress)
