"""Personal data in generated text: find it (kinds only, never values) and redact it.

Used on the way out to the LLM (nothing personal may be sent) and on the way back (a variant that still
carries an email, phone number or NRIC-style id fails a check and is redacted).
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{5,20}\d(?![\w])")
_SG_LOCAL_PHONE = re.compile(r"^[689]\d{3}[ -]?\d{4}$")
_NRIC = re.compile(r"\b[STFGM]\d{7}[A-Z]\b")
REDACTED = "[redacted]"


def _is_phone(candidate: str) -> bool:
    """Tell phone numbers from years, prices and dates: by digit count, '+' prefix or SG shape."""
    digits = sum(ch.isdigit() for ch in candidate)
    if not 8 <= digits <= 15:
        return False
    if candidate.startswith("+"):
        return True
    if digits == 8:
        return bool(_SG_LOCAL_PHONE.match(candidate.strip()))
    return digits in (10, 11)


def find_pii(text: str) -> list[str]:
    """Kinds of personal data present in text ('email', 'phone', 'national_id'), without the values."""
    kinds = []
    if _EMAIL.search(text):
        kinds.append("email")
    if any(_is_phone(m.group()) for m in _PHONE_CANDIDATE.finditer(text)):
        kinds.append("phone")
    if _NRIC.search(text):
        kinds.append("national_id")
    return kinds


def redact_pii(text: str) -> str:
    """Replace emails, phone numbers and NRIC-style IDs with a marker."""
    text = _EMAIL.sub(REDACTED, text)
    text = _PHONE_CANDIDATE.sub(lambda m: REDACTED if _is_phone(m.group()) else m.group(), text)
    return _NRIC.sub(REDACTED, text)
