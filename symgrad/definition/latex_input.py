"""Validation of LaTeX a user writes on purpose (``latex=`` of an activation, loss or op).

A ``latex=`` string *is* LaTeX, so it cannot be escaped; but it lands in a
document the user may compile with pdflatex, so it must not be able to read or
write files, run the shell, redefine anything or unbalance the document. It is
tokenised the way TeX reads it and refused, with the offending piece named, if:

- braces do not balance (``\\{`` and ``\\}`` are literal braces and do not count);
- it uses a control sequence that touches files, the shell, category codes,
  definitions or expansion (``\\input``, ``\\write18``, ``\\catcode``, ``\\def``,
  ``\\csname``, ...), or any environment (``\\begin``/``\\end``);
- it has a raw ``%`` (comments out the rest of the line), ``#``, ``$`` (leaves
  math mode), ``&`` or ``\\\\`` (break an aligned equation), ``^^`` (TeX's
  hex notation, which spells any character), non-ASCII or control characters.

>>> check_latex(r"\\operatorname{Mish}", "activation 'mish'")
'\\\\operatorname{Mish}'
>>> check_latex(r"\\input{/etc/passwd}", "activation 'a'")
Traceback (most recent call last):
...
symgrad.definition.errors.DefinitionError: activation 'a': latex '\\\\input{/etc/passwd}' uses \
\\input, which is not allowed in a formula name (it can read or write files, run commands or \
redefine TeX); use math commands such as \\operatorname{...}, \\mathrm{...}, \\sigma
"""

from __future__ import annotations

import re

from symgrad.definition.errors import DefinitionError
from symgrad.definition.names import check_label, describe_char

MAX_LATEX_LENGTH = 500

# TeX/LaTeX commands that do I/O, run code, change how TeX reads input, define or
# expand macros, or end the run. Exact names (TeX is case-sensitive).
_FORBIDDEN = frozenset("""
input include includeonly import subimport inputfrom includefrom subinputfrom subincludefrom
InputIfFileExists IfFileExists includegraphics includepdf lstinputlisting verbatiminput
VerbatimInput openin openout read readline write immediate closein closeout message
special directlua latelua luaexec luadirect ShellEscape catcode lccode uccode sfcode
mathcode delcode def edef gdef xdef let futurelet global long outer protected
chardef mathchardef countdef dimendef skipdef toksdef muskipdef
newcommand renewcommand providecommand DeclareRobustCommand DeclareMathOperator
newenvironment renewenvironment csname endcsname expandafter noexpand scantokens
detokenize unexpanded string uppercase lowercase begin end endinput usepackage
RequirePackage documentclass makeatletter makeatother loop repeat jobname output shipout
dump batchmode nonstopmode scrollmode errorstopmode errmessage errhelp stop bye
afterassignment aftergroup url href hyperref
""".split())
# Whole families: primitives of pdfTeX/LuaTeX, token lists run later, allocators.
_FORBIDDEN_PREFIXES = ("pdf", "lua", "every", "new", "renew", "provide", "Declare", "open",
                       "close", "input", "include", "write", "read", "char")
_ALLOWED_ANYWAY = frozenset({"newline"})  # harmless members of a forbidden family
_CONTROL_WORD = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_RAW_SPECIALS = {"%": "starts a TeX comment", "#": "is a macro parameter",
                 "$": "leaves math mode", "&": "breaks an aligned equation"}


def _forbidden(word: str) -> bool:
    if word in _ALLOWED_ANYWAY:
        return False
    return word in _FORBIDDEN or word.startswith(_FORBIDDEN_PREFIXES)


def check_latex(text: object, what: str) -> str:
    """``text`` if it is safe, balanced LaTeX for a formula name; else DefinitionError."""
    if not isinstance(text, str):
        raise DefinitionError(f"{what}: latex must be a str, got {text!r}")
    shown = text if len(text) <= 60 else text[:60] + "..."
    if len(text) > MAX_LATEX_LENGTH:
        raise DefinitionError(f"{what}: latex {shown!r} is {len(text)} characters long; at most "
                              f"{MAX_LATEX_LENGTH} are allowed")
    for ch in text:
        if not (" " <= ch <= "~"):
            raise DefinitionError(
                f"{what}: latex {shown!r}: character {describe_char(ch)} is not allowed; LaTeX "
                "names are printable ASCII (write \\sigma rather than the Unicode letter)")
    if "^^" in text:
        raise DefinitionError(f"{what}: latex {shown!r} uses '^^' (TeX's hex notation for "
                              "arbitrary characters), which is not allowed")
    depth, pos = 0, 0
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            m = _CONTROL_WORD.match(text, pos)
            if m is None:
                raise DefinitionError(f"{what}: latex {shown!r} ends with a lone backslash")
            word = m.group(1)
            if word == "\\":
                raise DefinitionError(f"{what}: latex {shown!r} uses \\\\ (a line break), which "
                                      "breaks an aligned equation")
            if word.isalpha() and _forbidden(word):
                raise DefinitionError(
                    f"{what}: latex {shown!r} uses \\{word}, which is not allowed in a formula "
                    "name (it can read or write files, run commands or redefine TeX); use math "
                    "commands such as \\operatorname{...}, \\mathrm{...}, \\sigma")
            pos = m.end()
            continue
        if ch in _RAW_SPECIALS:
            raise DefinitionError(f"{what}: latex {shown!r} has a raw {ch!r}, which "
                                  f"{_RAW_SPECIALS[ch]}; write \\{ch} for the character")
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise DefinitionError(f"{what}: latex {shown!r} has a '}}' at position {pos} "
                                      "with no matching '{'")
        pos += 1
    if depth:
        raise DefinitionError(f"{what}: latex {shown!r} has {depth} unclosed '{{'")
    return text


def check_value_label(label: object, what: str = "Value label") -> str:
    """A `symgrad.Value` label: free text, or LaTeX when it starts with a backslash.

    Plain labels are escaped by the renderers, but they also appear in prose
    where ``$...$`` means math, so ``$`` is refused; a label such as ``\\theta``
    is LaTeX by intent and must pass `check_latex`.
    """
    check_label(label, what)
    assert isinstance(label, str)
    if label.startswith("\\"):
        return check_latex(label, f"{what} {label!r}")
    if "$" in label:
        raise DefinitionError(f"{what} {label!r}: character '$' is not allowed (it would start "
                              "inline math in the printed derivation); start the label with a "
                              "backslash to write LaTeX, e.g. '\\theta'")
    return label


__all__ = ["MAX_LATEX_LENGTH", "check_latex", "check_value_label"]
