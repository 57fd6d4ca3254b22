"""File-name-safe slugs of Vietnamese text ("Họp giao ban" -> "hop-giao-ban")."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ascii_slug"]

# Đ/đ carry a stroke, not a combining mark, so NFKD leaves them alone.
_SPECIAL = str.maketrans({"Đ": "D", "đ": "d"})


def ascii_slug(text: str, max_length: int = 60) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_length].rstrip("-") or "meeting"
