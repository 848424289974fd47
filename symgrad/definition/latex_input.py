"""Validation of LaTeX a user writes on purpose (``latex=`` of an activation, loss or op).

A ``latex=`` string *is* LaTeX, so it cannot be escaped; but it lands in a
document the user may compile with pdflatex, so it must not be able to read or
write files, run the shell, redefine anything or unbalance the document. It is
tokenised the way TeX reads it and refused, with the offending piece named, if:

- braces or ``\\left``/``\\right`` do not balance and nest (``\\{`` and ``\\}`` are
  literal braces and do not count);
- it uses a control sequence that is not one of the math commands in
  `ALLOWED_COMMANDS` (Greek letters, fonts, accents, fractions, delimiters, function
  names, relations) or a spacing/escaped-character symbol: an allow-list, because
  files, the shell, category codes, definitions, expansion and conditionals are
  reachable through too many names (``\\input``, ``\\write18``, ``\\catcode``,
  expl3's ``\\ExplSyntaxOn``, ``\\iffalse``, ...) for any list of them to be complete;
- it has a raw ``%`` (comments out the rest of the line), ``#``, ``$`` (leaves
  math mode), ``&`` or ``\\\\`` (break an aligned equation), ``^^`` (TeX's
  hex notation, which spells any character), non-ASCII or control characters.

>>> check_latex(r"\\operatorname{Mish}", "activation 'mish'")
'\\\\operatorname{Mish}'
>>> check_latex(r"\\input{/etc/passwd}", "activation 'a'")
Traceback (most recent call last):
...
symgrad.definition.errors.DefinitionError: activation 'a': latex '\\\\input{/etc/passwd}' uses \
\\input, which is not among the math commands a formula name may use (nothing that reads or \
writes files, runs commands, defines or expands macros, or opens a conditional); use math \
commands such as \\operatorname{...}, \\mathrm{...}, \\sigma (the list: \
symgrad.definition.latex_input.ALLOWED_COMMANDS)
"""

from __future__ import annotations

import re

from symgrad.definition.errors import DefinitionError
from symgrad.definition.names import check_label, describe_char

MAX_LATEX_LENGTH = 500

# The math commands a formula name may use: an allow-list, since no list of dangerous
# commands is complete (expl3's \ExplSyntaxOn then \file_input:n reads any file, and
# \iffalse or \fi unbalance the document). None of these does I/O, defines, expands or
# changes how TeX reads input; all work in the document's math mode (amsmath, amssymb).
ALLOWED_COMMANDS = frozenset("""
alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa varkappa
lambda mu nu xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega
Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega varGamma varDelta varTheta
varLambda varXi varPi varSigma varUpsilon varPhi varPsi varOmega digamma
operatorname mathrm mathit mathbf mathsf mathtt mathcal mathbb mathfrak boldsymbol
text textrm textit textbf textsf texttt textnormal mbox
displaystyle textstyle scriptstyle scriptscriptstyle
hat widehat tilde widetilde bar overline underline vec dot ddot breve check acute grave
mathring overrightarrow overleftarrow underbrace overbrace
frac tfrac dfrac sqrt binom tbinom dbinom left right big Big bigg Bigg bigl bigr Bigl
Bigr biggl biggr Biggl Biggr
sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh coth log ln lg exp max min
sup inf lim det arg deg dim gcd hom ker Pr
cdot times div pm mp ast star circ bullet prime infty partial nabla ell hbar imath jmath
Re Im wp aleph leq geq le ge neq ne approx sim simeq equiv propto to mapsto rightarrow
leftarrow Rightarrow Leftarrow langle rangle lfloor rfloor lceil rceil vert Vert lvert
rvert lVert rVert mid sum prod int oint cdots ldots dots vdots ddots quad qquad odot
oplus otimes dagger top perp emptyset in notin subset subseteq cup cap wedge vee neg
forall exists lbrace rbrace backslash colon limits nolimits
""".split())
# Control symbols (a backslash and one non-letter) that are spacing or a literal character.
ALLOWED_SYMBOLS = frozenset(",;:! {}_%#&$|")
_CONTROL_WORD = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_RAW_SPECIALS = {"%": "starts a TeX comment", "#": "is a macro parameter",
                 "$": "leaves math mode", "&": "breaks an aligned equation"}
_NOT_ALLOWED = ("which is not among the math commands a formula name may use (nothing that "
                "reads or writes files, runs commands, defines or expands macros, or opens "
                "a conditional); use math commands such as \\operatorname{...}, \\mathrm{...}, "
                "\\sigma (the list: symgrad.definition.latex_input.ALLOWED_COMMANDS)")


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
    groups: list[str] = []   # open "{" and "left", innermost last
    pos = 0
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
            allowed = ALLOWED_COMMANDS if word.isalpha() else ALLOWED_SYMBOLS
            if word not in allowed:
                raise DefinitionError(f"{what}: latex {shown!r} uses \\{word}, {_NOT_ALLOWED}")
            if word == "left":
                groups.append("left")
            elif word == "right":
                if not groups or groups[-1] != "left":
                    raise DefinitionError(f"{what}: latex {shown!r} has a \\right at position "
                                          f"{pos} with no \\left before it in its brace group")
                groups.pop()
            pos = m.end()
            continue
        if ch in _RAW_SPECIALS:
            raise DefinitionError(f"{what}: latex {shown!r} has a raw {ch!r}, which "
                                  f"{_RAW_SPECIALS[ch]}; write \\{ch} for the character")
        if ch == "{":
            groups.append("{")
        elif ch == "}":
            if not groups or groups[-1] != "{":
                inside = " (inside a \\left ... \\right)" if groups else ""
                raise DefinitionError(f"{what}: latex {shown!r} has a '}}' at position {pos} "
                                      f"with no matching '{{'{inside}")
            groups.pop()
        pos += 1
    if "left" in groups:
        raise DefinitionError(f"{what}: latex {shown!r} has a \\left with no \\right")
    if groups:
        raise DefinitionError(f"{what}: latex {shown!r} has {len(groups)} unclosed '{{'")
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
