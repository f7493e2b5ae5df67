"""Secrets: read the Notion token safely, and keep secret values out of error text.

Two rules live here and nowhere else:

* :func:`notion_token` reads ``NOTION_TOKEN`` (or another variable) and checks
  it before any HTTP library sees it: printable ASCII, no whitespace, not
  empty. A token with a newline would otherwise end in an httpx
  ``LocalProtocolError`` whose message quotes the whole header, and a
  non-ASCII one in a ``UnicodeEncodeError`` that names neither the variable
  nor the fix. The error names the variable, never its value.
* :func:`scrub` is the one filter every error text passes before it reaches a
  terminal, Dagster's event log or run metadata. It removes the values of the
  secrets this process knows (the token variables in the environment and any
  value given to :func:`register_secret`), ``Authorization:`` / ``Bearer`` /
  ``Basic`` header values, and strings shaped like Notion integration secrets
  (``secret_…``, ``ntn_…``).

Neither function imports Dagster or an HTTP library; both are safe to call
from anywhere, including an exception handler.
"""

from __future__ import annotations

import os
import re

from lofi_pipeline.core.errors import ConfigError

#: What a removed secret becomes. No square brackets: the text may be printed
#: through Rich, where ``[…]`` is markup.
REDACTED = "***"

# Environment variables whose values are secrets whatever this process does
# with them. Names are matched case-insensitively at the end of the name.
_SECRET_ENV_NAME = re.compile(r"(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY)$", re.IGNORECASE)
# Values shorter than this are not scrubbed by value (a 3-letter "token" would
# blank out ordinary words); they are refused by validate_token anyway.
_MIN_SECRET_LENGTH = 6

_registered: set[str] = set()

# Header values. Inside a quoted repr (b'Bearer …' in an httpx message) the
# value runs to the closing quote, escaped newlines included. A credential's
# first word has a digit or an underscore in it (and in free text is one word): "Bearer" and
# "Basic" are also ordinary words in page titles ("Torch Bearer Nights",
# "Basic Lo-Fi Mix") that errors quote.
_QUOTED_AUTH = re.compile(r"(?P<open>['\"])(?P<scheme>Bearer)\s+(?=[^\s'\"]*[\d_*])[^'\"]*(?P=open)")
_AUTH_HEADER = re.compile(r"(?P<name>\b(?:Proxy-)?Authorization\b['\"]?\s*[:=,]\s*['\"]?)[^'\"\r\n,}]*",
                          re.IGNORECASE)
_SCHEME_WORD = re.compile(r"\b(?:(?P<scheme>Bearer)\s+(?=[^\s'\"]*[\d_])[^\s'\"]{6,}"
                          r"|(?P<basic>Basic)\s+[A-Za-z0-9+/]{8,}={0,2}(?![\w-]))")
# Notion integration secrets: "secret_" + 43 characters (older), "ntn_" + ~46 (newer).
_TOKEN_SHAPE = re.compile(r"\b(?P<kind>secret|ntn)_[A-Za-z0-9_\-]{10,}")


def validate_token(value: str | None, *, name: str = "NOTION_TOKEN") -> str:
    """Check a token's characters and return it with surrounding whitespace removed.

    Parameters
    ----------
    value
        The token as read from the environment (or given by a caller).
    name
        What to call it in an error: the environment variable's name.

    Raises
    ------
    ConfigError
        When the token is missing or empty, contains whitespace inside it, or a
        character that is not printable ASCII. The message names ``name`` and
        the kind of problem (and the character's position), never the value.
    """
    if value is None or not value.strip():
        raise ConfigError(f"{name} is not set: set it to your Notion integration's secret "
                          "(Notion → Settings → Connections → Develop or manage integrations)")
    token = value.strip()
    for position, char in enumerate(token, start=1):
        if char.isspace():
            raise ConfigError(f"{name} contains whitespace (a space, tab or line break at character "
                              f"{position}); a Notion token is one word: copy it again without "
                              "line breaks")
        if not (0x21 <= ord(char) <= 0x7E):
            kind = "a control character" if ord(char) < 0x20 or ord(char) == 0x7F else "a non-ASCII character"
            raise ConfigError(f"{name} contains {kind} at character {position}; a Notion token is "
                              "printable ASCII only: copy it again from the integration's page")
    return token


def notion_token(env_name: str = "NOTION_TOKEN") -> str:
    """The Notion integration token from the environment, checked.

    The value is registered with :func:`scrub`, so it is removed from any
    error text later even if the variable changes in between.

    Raises
    ------
    ConfigError
        See :func:`validate_token`; the message names ``env_name`` only.
    """
    token = validate_token(os.environ.get(env_name), name=env_name)
    register_secret(token)
    return token


def register_secret(value: str | None) -> None:
    """Make :func:`scrub` remove ``value`` (and its pieces) from now on."""
    if value and len(value.strip()) >= _MIN_SECRET_LENGTH:
        _registered.add(value)


def _known_values() -> list[str]:
    values = set(_registered)
    for key, value in os.environ.items():
        if value and _SECRET_ENV_NAME.search(key) and len(value.strip()) >= _MIN_SECRET_LENGTH:
            values.add(value)
    forms: set[str] = set()
    for value in values:
        for candidate in (value, value.strip()):
            forms.add(candidate)
            # How the value looks inside a repr(): b'…\n…' or '…\\n…'.
            forms.add(repr(candidate)[1:-1])
            forms.add(repr(candidate.encode("utf-8", "backslashreplace"))[2:-1])
            # A value with a line break may reach a message one line at a time.
            forms.update(p for p in re.split(r"\s+|\\[nrt]", candidate)
                         if len(p) >= _MIN_SECRET_LENGTH)
    # Longest first, so a value is removed whole before any of its pieces.
    return sorted((f for f in forms if len(f) >= _MIN_SECRET_LENGTH), key=len, reverse=True)


def scrub(text: object) -> str:
    """``text`` (anything; ``str()`` is taken) with every secret value removed.

    Removes, in this order: quoted ``'Bearer …'`` header values (to the closing
    quote), ``Authorization: …`` values, a ``Bearer``/``Basic`` word's
    credential, the values of known secrets (token variables in the
    environment, values given to :func:`register_secret`, and their forms
    inside a Python repr), and words shaped like Notion secrets (``secret_…``,
    ``ntn_…``). Each becomes
    ``***``. Safe on any input; never raises.
    """
    try:
        out = text if isinstance(text, str) else str(text)
    except Exception:  # an exception whose __str__ fails: say so, reveal nothing
        return f"<{type(text).__name__} without a printable message>"
    # Header values first: a quoted header is removed whole, with whatever an
    # injected line break carried after the token.
    out = _QUOTED_AUTH.sub(lambda m: f"{m['open']}{m['scheme']} {REDACTED}{m['open']}", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m['name']}{REDACTED}", out)
    out = _SCHEME_WORD.sub(lambda m: f"{m['scheme'] or m['basic']} {REDACTED}", out)
    for value in _known_values():
        out = out.replace(value, REDACTED)
    out = _TOKEN_SHAPE.sub(lambda m: f"{m['kind']}_{REDACTED}", out)
    return out


def scrub_exception(error: BaseException) -> str:
    """``"TypeName: message"`` of an exception, scrubbed (for one-line error output)."""
    return scrub(f"{type(error).__name__}: {error}")
