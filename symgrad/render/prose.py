"""Make prose that comes from elsewhere (notes, names) safe for pdflatex.

Our own sentences are ASCII; but a stable-form note, an identity name or an
assumption written by another stage may contain Unicode math (sigma, times,
partial, minus). pdflatex with ``inputenc`` rejects most of those, so each
known character becomes ``\\ensuremath`` math (right in text and inside math
alike) and anything else is transliterated.

>>> latex_safe_prose("softplus(z) − y·z, no overflow in σ")
'softplus(z) - y\\\\ensuremath{\\\\cdot}z, no overflow in \\\\ensuremath{\\\\sigma}'
>>> latex_safe_prose("naïve")
'naive'
"""

from __future__ import annotations

import unicodedata

# Unicode that shows up in mathematical prose -> LaTeX (inline math unless
# a plain ASCII stand-in reads as well).
_UNICODE_TO_LATEX = {
    "\u2212": "-", "\u2013": "--", "\u2014": "---", "\u2018": "`", "\u2019": "'",
    "\u201c": "``", "\u201d": "''", "\u2026": "...", "\u00a0": " ",
    "\u00b7": r"$\cdot$", "\u00d7": r"$\times$", "\u2299": r"$\odot$",
    "\u2202": r"$\partial$", "\u2211": r"$\sum$", "\u221e": r"$\infty$",
    "\u2264": r"$\leq$", "\u2265": r"$\geq$", "\u2260": r"$\neq$", "\u2248": r"$\approx$",
    "\u2192": r"$\to$", "\u2190": r"$\leftarrow$", "\u2208": r"$\in$",
    "\u00b1": r"$\pm$", "\u221a": r"$\sqrt{}$", "\u00b2": r"$^2$", "\u00b3": r"$^3$",
    "\u1d40": r"$^T$", "\u2081": r"$_1$", "\u2082": r"$_2$",
}
_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon",
    "η": "eta", "θ": "theta", "λ": "lambda", "μ": "mu", "π": "pi", "ρ": "rho",
    "σ": "sigma", "τ": "tau", "φ": "phi", "ψ": "psi", "ω": "omega",
    "Δ": "Delta", "Σ": "Sigma", "Φ": "Phi", "Ω": "Omega",
}


# Every character TeX treats specially in text mode, '$' included: user text
# (a label) is never math, unlike our own prose.
_TEXT_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "$": r"\$",
}


def escape_latex_text(text: str) -> str:
    r"""User text (a label) as inert LaTeX text: every special escaped, '$' included.

    >>> print(escape_latex_text(r"a$\input{x}$ 50%"))
    a\$\textbackslash{}input\{x\}\$ 50\%
    """
    out = []
    for ch in text:
        if ch in _TEXT_SPECIALS:
            out.append(_TEXT_SPECIALS[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) >= 128 and unicodedata.category(ch)[0] not in "CZ":
            out.append(latex_safe_prose(ch))   # a letter or symbol: transliterated
        else:
            out.append("?")                    # controls, separators, invisible formatting
    return "".join(out)


def _as_ensuremath(latex: str) -> str:
    r"""``$\cdot$`` as ``\ensuremath{\cdot}``: right in text and in math alike.

    A transliterated label also lands inside math (``\text{...}`` in an
    equation), and a ``$`` there would end the math early.
    """
    if len(latex) > 1 and latex.startswith("$") and latex.endswith("$"):
        return rf"\ensuremath{{{latex[1:-1]}}}"
    return latex


def latex_safe_prose(text: str) -> str:
    """Replace non-ASCII characters by LaTeX (``\\ensuremath`` math) or ASCII."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
        elif ch in _UNICODE_TO_LATEX:
            out.append(_as_ensuremath(_UNICODE_TO_LATEX[ch]))
        elif ch in _GREEK:
            out.append(rf"\ensuremath{{\{_GREEK[ch]}}}")
        else:
            # Accented letters keep their base letter; anything else is named.
            ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_form or f"<{unicodedata.name(ch, f'U+{ord(ch):04X}')}>")
    return "".join(out)
