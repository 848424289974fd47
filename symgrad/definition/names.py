"""What a user-given name or label may contain: checked once, when it is defined.

symgrad pastes activation, loss and op names into generated Python source
(comments, docstrings), into LaTeX and into plain-text printouts. Rather than
escaping a name differently at every place it lands, names are restricted at
definition time to a charset that is inert in all of them:

- *names* (activation, loss, scalar op) and *parameter names* are ASCII
  identifiers: letters, digits and ``_``, not starting with a digit;
- *labels* (`symgrad.Value` labels, an op's ``text``/``symbol``) are free
  text without control, format (RTL overrides, zero-width) or separator
  characters; the renderers escape them for LaTeX.

Generated source additionally passes every interpolated name through
`source_comment_text`, so even an entry built around these checks cannot end a
comment or docstring.

>>> check_name("leaky_relu", "activation")
'leaky_relu'
>>> check_name('l"x', "loss")
Traceback (most recent call last):
...
symgrad.definition.errors.DefinitionError: loss name 'l"x': character '"' (U+0022 QUOTATION \
MARK) is not allowed; names are ASCII identifiers (letters, digits and '_', not starting with a \
digit), e.g. 'my_loss'
>>> source_comment_text('a"; import os\\n#')
'a?; import os??'
"""

from __future__ import annotations

import keyword
import re
import unicodedata

from symgrad.definition.errors import DefinitionError

MAX_NAME_LENGTH = 64
MAX_LABEL_LENGTH = 200
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters a generated comment or docstring may carry verbatim: no quote, no
# backslash, no newline, nothing outside printable ASCII.
_COMMENT_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " _.,:;()[]+-*/=<>^|&~!?@"
)
# Unicode categories that make text lie about itself or break lines: controls,
# format characters (bidi overrides, zero-width joiners), surrogates, private
# use, unassigned, line/paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


_CONTROL_NAMES = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\0": "NULL",
                  "\x0b": "LINE TABULATION", "\x0c": "FORM FEED", "\x1b": "ESCAPE"}


def describe_char(ch: str) -> str:
    """A character as error messages show it: ``'"' (U+0022 QUOTATION MARK)``.

    >>> describe_char("\\u202e")
    "'\\\\u202e' (U+202E RIGHT-TO-LEFT OVERRIDE)"
    """
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ch, "control character")
    return f"{ascii(ch)} (U+{ord(ch):04X} {name})"


def _rule(what: str) -> str:
    example = {"activation": "my_relu", "loss": "my_loss", "scalar op": "my_op"}.get(what, "alpha")
    return ("names are ASCII identifiers (letters, digits and '_', not starting with a digit), "
            f"e.g. {example!r}")


def check_name(name: object, what: str) -> str:
    """``name`` if it is a valid name for ``what`` (an ASCII identifier); else DefinitionError."""
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{what} name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise DefinitionError(f"{what} name {name[:20]!r}... is {len(name)} characters long; "
                              f"at most {MAX_NAME_LENGTH} are allowed")
    if not _IDENTIFIER.match(name):
        bad = next((ch for ch in name if not (ch.isascii() and (ch.isalnum() or ch == "_"))),
                   name[0])
        raise DefinitionError(f"{what} name {name!r}: character {describe_char(bad)} is not "
                              f"allowed; {_rule(what)}")
    return name


def check_param_name(name: object, what: str) -> str:
    """A parameter name: an ASCII identifier that is not a Python keyword."""
    if not isinstance(name, str):
        raise DefinitionError(f"{what}: parameter names must be strings, got {name!r}")
    try:
        check_name(name, "parameter")
    except DefinitionError as exc:
        raise DefinitionError(f"{what}: {exc}") from None
    if keyword.iskeyword(name):
        raise DefinitionError(f"{what}: parameter name {name!r} is a Python keyword; it could "
                              "not be passed as a keyword argument, choose another name")
    return name


def check_label(text: object, what: str, max_length: int = MAX_LABEL_LENGTH) -> str:
    """Free text (a label, a printing template) without invisible or line-breaking characters."""
    if not isinstance(text, str):
        raise DefinitionError(f"{what} must be a str, got {text!r}")
    if len(text) > max_length:
        raise DefinitionError(f"{what} {text[:20]!r}... is {len(text)} characters long; at most "
                              f"{max_length} are allowed")
    for ch in text:
        if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            raise DefinitionError(
                f"{what} {text!r}: character {describe_char(ch)} is not allowed; labels may not "
                "contain control characters, line breaks, or invisible/direction-changing "
                "format characters")
    return text


def source_comment_text(text: object) -> str:
    """``text`` reduced to characters that are inert in a generated comment or docstring.

    Anything else (quotes, backslashes, newlines, non-ASCII) becomes ``?``: the
    text is for a human reading the kernel, never parsed back.
    """
    return "".join(ch if ch in _COMMENT_SAFE else "?" for ch in str(text))


__all__ = ["MAX_NAME_LENGTH", "check_label", "check_name", "check_param_name",
           "describe_char", "source_comment_text"]
