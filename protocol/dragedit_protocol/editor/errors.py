"""User-facing error sentences: what went wrong and what to do, never a traceback."""
from __future__ import annotations

# Daemon error codes whose own message is too technical for an artist: a better sentence + hint.
_FRIENDLY = {
    "out_of_memory": ("The daemon ran out of memory for this edit.",
                      "Select a smaller region, lower the number of steps, or close other GPU programs, then drag again."),
    "version_mismatch": ("The DragEdit plug-in and the daemon are from different releases.",
                         "Run python3 install.py again to update both, then restart the editor."),
    "too_large": ("The region is too large for the daemon.",
                  "Select a smaller region or scale the image down."),
    "no_points": ("There are no drag points.",
                  "Add at least one handle -> target pair."),
    "model_error": ("The daemon could not load the model.",
                    "Check the model setting (a diffusers folder, a .safetensors file or a hub id) and the daemon log."),
}


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def join_message(message: str, hint: str = "") -> str:
    """'Message. Hint.' as one readable line."""
    return " ".join(part for part in (sentence(message), sentence(hint)) if part)


def error_text(code: str, message: str, hint: str = "") -> str:
    """The sentence shown for a daemon ``error`` message (code, message, hint)."""
    if code in _FRIENDLY:
        friendly, friendly_hint = _FRIENDLY[code]
        detail = sentence(message) if message and code == "model_error" else ""
        return " ".join(p for p in (friendly, detail, sentence(hint) or friendly_hint) if p)
    return join_message(message or f"The daemon reported an error ({code})", hint)


class UserError(Exception):
    """A problem the artist can fix; ``str()`` is the full sentence with its hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(join_message(message, hint))
        self.message = message
        self.hint = hint
