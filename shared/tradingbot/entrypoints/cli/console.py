"""Rich consoles that import rich on first use.

Every CLI module keeps a module-level ``out`` / ``err`` console, and every module is imported to
build ``tradingbot --help``; importing ``rich.console`` costs about 70 ms of that 0.3 s budget, so the
console is created the first time a command prints, not when the module loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes this proxy lacks, i.e. every Console method
        return getattr(self._real(), name)

    # special methods bypass __getattr__; rich's Live (under Progress) uses the console as a context manager
    def __enter__(self) -> Console:
        return self._real().__enter__()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._real().__exit__(exc_type, exc, tb)


def lazy_console(**options: Any) -> Console:
    """A ``rich.console.Console(**options)`` built on first attribute access (typed as the real thing)."""
    return cast("Console", _LazyConsole(options))
