"""Validated field types for text people type: names, titles, codes.

Vietnamese text is kept exactly as given (no normalisation, no trimming).
Control characters are refused: a NUL cannot be stored by PostgreSQL and the
others only ever arrive by accident or by attack.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

__all__ = ["AgendaItem", "Code", "Name", "Password", "Title", "Username"]

_CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


def _no_control(value: str, *, allow_newlines: bool) -> str:
    for ch in value:
        if ch in "\n\t" and allow_newlines:
            continue
        # Cc: C0/C1 controls; Cs: lone surrogates (cannot be encoded as UTF-8).
        if unicodedata.category(ch) in {"Cc", "Cs"}:
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _line(value: str) -> str:
    return _no_control(value, allow_newlines=False)


def _text(value: str) -> str:
    return _no_control(value, allow_newlines=True)


Code = Annotated[str, StringConstraints(pattern=_CODE)]
Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{1,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_line)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(_line)]
AgendaItem = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_text)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
