"""Vietnamese text made plain: file-name-safe slugs ("Họp giao ban" -> "hop-giao-ban")
and the folded form searches compare ("Họp GIAO BAN" and "hop giao ban" match)."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ascii_slug", "fold"]

# Đ/đ carry a stroke, not a combining mark, so NFKD leaves them alone.
_SPECIAL = str.maketrans({"Đ": "D", "đ": "d"})


def fold(text: str) -> str:
    """``text`` without case and tone marks, for searching: "Họp GIAO BAN" -> "hop giao ban"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def ascii_slug(text: str, max_length: int = 60) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_length].rstrip("-") or "meeting"
