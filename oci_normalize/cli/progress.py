"""The progress bar ``batch`` draws on stderr when stdout is a terminal (rich, loaded only
then); otherwise a bar that draws nothing."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext


class Bar:
    def advance(self, failed: bool) -> None:  # noqa: ARG002 - the quiet bar ignores it
        return None


class _RichBar(Bar):
    def __init__(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("batch", total=total, failed=0)
        self._failed = 0

    def advance(self, failed: bool) -> None:
        self._failed += failed
        self._progress.update(self._task, advance=1, failed=self._failed)


def progress(total: int | None, *, enabled: bool) -> AbstractContextManager[Bar]:
    """A bar for ``total`` references (None: not known before the end, as in a lazy sweep)."""
    if not enabled:
        return nullcontext(Bar())
    bar = _RichBar(total)

    class _Ctx(AbstractContextManager[Bar]):
        def __enter__(self) -> Bar:
            bar._progress.start()
            return bar

        def __exit__(self, *_: object) -> None:
            bar._progress.stop()

    return _Ctx()
