"""Validation of values a reader or a file gives: BI-RADS categories, ids, notes.

Each checker returns the normalised value or raises ``ValueError`` with a message that
names the value and the problem, ready to be shown as is.
"""

from __future__ import annotations

__all__ = [
    "BIRADS_CATEGORIES",
    "MAX_DB_ID",
    "MAX_ID_LENGTH",
    "MAX_NOTE_LENGTH",
    "check_birads",
    "check_db_id",
    "check_identifier",
    "check_note",
]

#: ACR BI-RADS assessment categories (ultrasound lexicon), upper-case.
BIRADS_CATEGORIES: tuple[str, ...] = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")
#: Patient / study / series keys are stored in 128-character columns.
MAX_ID_LENGTH = 128
MAX_NOTE_LENGTH = 4000
#: Database row ids are signed 64-bit integers.
MAX_DB_ID = 2**63 - 1


def _shown(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def check_birads(value: str | None) -> str | None:
    """``"4a"`` -> ``"4A"``; None and "" stay None; anything else is a ValueError."""
    if value is None:
        return None
    text = str(value).strip().upper()
    if not text:
        return None
    if text.startswith("BI-RADS"):
        text = text[len("BI-RADS") :].strip()
    if text not in BIRADS_CATEGORIES:
        raise ValueError(f"BI-RADS category {_shown(str(value))} is not one of {', '.join(BIRADS_CATEGORIES)}")
    return text


def check_identifier(value: str, what: str = "patient id") -> str:
    """A non-empty id of at most :data:`MAX_ID_LENGTH` printable characters (stripped)."""
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} is empty")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"{what} {_shown(text)} is {len(text)} characters long (at most {MAX_ID_LENGTH})")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{what} {_shown(text)} contains control characters")
    return text


def check_note(value: str | None) -> str | None:
    """A free note of at most :data:`MAX_NOTE_LENGTH` characters ("" clears it: None)."""
    if value is None:
        return None
    if len(value) > MAX_NOTE_LENGTH:
        raise ValueError(f"note is {len(value)} characters long (at most {MAX_NOTE_LENGTH})")
    return value or None


def check_db_id(value: int, what: str = "id") -> int:
    """A positive id that fits the database's 64-bit integer."""
    if not 1 <= value <= MAX_DB_ID:
        raise ValueError(f"{what} {value} is out of range (1 to {MAX_DB_ID})")
    return value
