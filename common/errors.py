"""The one base of the errors our packages raise on purpose.

Each carries a stable ``code`` (the API's JSON ``error.code``, the CLI's message) and keeps the
built-in base that describes it (``ValueError``, ``LookupError``, ``RuntimeError``), so callers may
catch either. api/errors.py maps codes to HTTP statuses in one table.
"""

from __future__ import annotations

from typing import ClassVar


class AnswerDeskError(Exception):
    code: ClassVar[str] = "error"
