"""Text shown on a terminal: control and invisible formatting characters made visible.

Case ids come from file names and CSV cells a user (or an attacker) chose; written raw to a
terminal, an ESC sequence can rewrite earlier lines, change the title or hide text, and a
right-to-left override can make ``P1_ct`` read as another id. :func:`printable` writes every
such character as a Python escape (``\\x1b``, ``\\u202e``); ordinary text, accents and other
scripts are left alone.

Example:
    >>> printable("P1\\x1b[2J: ok"), printable("Müller-α")
    ('P1\\\\x1b[2J: ok', 'Müller-α')
"""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """``text`` with control (Cc), format (Cf), surrogate, private-use and unassigned characters
    and line/paragraph separators escaped; tab kept, newlines escaped (one message, one line)."""
    out = []
    for ch in text:
        if ch == "\t" or (ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Co", "Cn", "Cs")):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)
