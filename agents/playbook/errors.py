"""What a bad playbook or expression raises: load-time refusals that name file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twinops import TwinopsError

__all__ = ["EvaluationError", "ExpressionError", "PlaybookError", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One reason a playbook is refused: where (file, line, column when known, field path) and what."""

    file: str
    line: int | None
    field: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class PlaybookError(TwinopsError, ValueError):
    """A playbook refused at load time; `problems` names each bad field with its file and line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid playbook")


class ExpressionError(TwinopsError, ValueError):
    """An expression outside the playbook language: bad syntax, unknown name or function, wrong arity or type.

    `column` is the 1-based offset in the expression's text where the problem starts.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(message if column is None else f"{message} (at character {column} of the expression)")


class EvaluationError(TwinopsError, ValueError):
    """A valid expression that cannot be evaluated over these beliefs (a missing belief, division by zero)."""
