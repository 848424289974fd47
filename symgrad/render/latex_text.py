r"""Read LaTeX math as plain text, for the text rendering of a `Derivation`.

Prose carries inline ``$...$`` math, and a displayed step without a ``plain``
form carries only LaTeX; a terminal shows neither well. This is a small
brace-aware reader (not a regex list): it knows the commands SymPy's LaTeX
printer and our printouts emit -- fractions, roots, ``\left``/``\right``,
font and operator names, accents, arrows, relations, Greek letters, sums and
limits with their scripts, ``cases`` and matrices, ``\tag`` -- and drops the
backslash of any other command, so no ``\command`` reaches the text.

>>> latex_to_text(r"\log{\left(\cosh{\left(p - y \right)} \right)}")
'log(cosh(p - y))'
>>> latex_to_text(r"\frac{\partial L}{\partial W_{2}} = A_{1}^{T} \cdot dZ_{2}")
'dL/dW_2 = A_1^T * dZ_2'
>>> latex_to_text(r"\sqrt{\frac{2}{\pi}} \left(x + 1\right)^{2}")
'sqrt(2/pi) (x + 1)^2'
>>> latex_to_text(r"\begin{cases} 1 & \text{for}\: z > 0 \\ 0 & \text{otherwise} \end{cases}")
'{ 1 for z > 0; 0 otherwise }'
"""

from __future__ import annotations

import re

__all__ = ["latex_to_text"]

_SYMBOLS = {
    "cdot": " * ", "times": " x ", "odot": " (*) ", "otimes": " (x) ", "circ": " o ",
    "div": " / ", "pm": " +- ", "mp": " -+ ", "ast": "*", "star": "*",
    "le": " <= ", "leq": " <= ", "ge": " >= ", "geq": " >= ", "ne": " != ", "neq": " != ",
    "lt": " < ", "gt": " > ", "approx": " ~ ", "sim": " ~ ", "simeq": " ~ ", "equiv": " == ",
    "in": " in ", "notin": " not in ", "subset": " subset ", "subseteq": " subset ",
    "to": " -> ", "rightarrow": " -> ", "longrightarrow": " -> ", "mapsto": " |-> ",
    "Rightarrow": " => ", "Longrightarrow": " => ", "implies": " => ", "iff": " <=> ",
    "leftarrow": " <- ", "longleftarrow": " <- ", "Leftarrow": " <= ", "gets": " <- ",
    "leftrightarrow": " <-> ", "Leftrightarrow": " <=> ",
    "infty": "inf", "nabla": "grad", "prime": "'", "top": "T",
    "intercal": "T", "dagger": "+", "emptyset": "{}", "forall": "for all ", "exists": "exists ",
    "ldots": "...", "cdots": "...", "dots": "...", "dotsc": "...", "dotsb": "...",
    "vdots": "...", "ddots": "...", "colon": ":", "mid": " | ", "vert": "|", "lvert": "|",
    "rvert": "|", "Vert": "||", "lVert": "||", "rVert": "||", "langle": "<", "rangle": ">",
    "lfloor": "floor(", "rfloor": ")", "lceil": "ceil(", "rceil": ")",
    "quad": "  ", "qquad": "    ", "enspace": " ", "thinspace": " ", "hfill": " ",
    "displaystyle": "", "textstyle": "", "scriptstyle": "", "scriptscriptstyle": "",
    "limits": "", "nolimits": "", "nonumber": "", "notag": "", "allowbreak": "",
    "centerdot": " * ", "bullet": " * ", "lbrace": "{", "rbrace": "}", "ell": "l",
}
# Commands whose one argument is shown as it is: fonts, operator names, boxes.
_KEEP_ARGUMENT = {
    "operatorname", "mathrm", "mathit", "mathbf", "mathsf", "mathtt", "mathcal", "mathbb",
    "mathfrak", "boldsymbol", "bm", "text", "textrm", "textit", "textbf", "texttt", "textsf",
    "mbox", "hbox", "emph", "overline", "underline", "widehat", "widetilde", "vec",
    "mathring", "boxed", "phantom", "hphantom", "vphantom", "smash", "operatornamewithlimits",
}
# Accents read as a suffix: \hat{y} -> yhat.
_ACCENT_SUFFIX = {"hat": "hat", "bar": "bar", "tilde": "tilde", "dot": "dot", "ddot": "ddot"}
# Commands that take arguments the text does not show (sizes, colours).
_DROP_ARGUMENTS = {"hspace": 1, "vspace": 1, "color": 1, "label": 1, "textcolor": 1,
                   "rule": 2}
# Delimiter sizes: the delimiter that follows stays ("." means none).
_SIZES = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
          "biggl", "biggr", "Biggl", "Biggr", "middle"}
_ENV_ROWS = {"cases": ("; ", " if "), "matrix": ("; ", ", "), "pmatrix": ("; ", ", "),
             "bmatrix": ("; ", ", "), "vmatrix": ("; ", ", "), "Bmatrix": ("; ", ", "),
             "smallmatrix": ("; ", ", "), "array": ("; ", ", ")}
_ENV_BRACKETS = {"cases": ("{ ", " }"), "pmatrix": ("(", ")"), "bmatrix": ("[", "]"),
                 "vmatrix": ("|", "|"), "Bmatrix": ("{", "}")}
_ESCAPED = {",": " ", ";": " ", ":": " ", "!": "", " ": " ", ">": " ", "{": "{", "}": "}",
            "%": "%", "_": "_", "&": "&", "#": "#", "$": "$", "|": "||"}
_NAME_AHEAD = re.compile(r"\\([A-Za-z]+)")
_SIMPLE = re.compile(r"[\w.']+|\([^()]*\)|\[[^\[\]]*\]")


class _Reader:
    """A cursor over LaTeX source that converts it to text as it goes."""

    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def command(self) -> str:
        """The name after a backslash (letters, or one other character)."""
        start = self.i
        while self.i < len(self.s) and self.s[self.i].isalpha():
            self.i += 1
        if self.i == start and self.i < len(self.s):
            self.i += 1
        return self.s[start:self.i]

    def skip_spaces(self) -> None:
        while self.peek().isspace():
            self.i += 1

    def group(self) -> str:
        """The raw source of the next argument: a ``{...}`` group, a command or a character."""
        self.skip_spaces()
        ch = self.peek()
        if ch == "{":
            depth, start = 0, self.i
            while self.i < len(self.s):
                c = self.s[self.i]
                if c == "\\":
                    self.i += 2
                    continue
                depth += (c == "{") - (c == "}")
                self.i += 1
                if depth == 0:
                    return self.s[start + 1:self.i - 1]
            return self.s[start + 1:]
        if ch == "\\":
            self.i += 1
            return "\\" + self.command()
        self.i += 1
        return ch

    def optional(self) -> str | None:
        """An optional ``[...]`` argument's source, if one follows."""
        self.skip_spaces()
        if self.peek() != "[":
            return None
        end = self.s.find("]", self.i)
        end = len(self.s) if end < 0 else end
        arg, self.i = self.s[self.i + 1:end], end + 1
        return arg


def _wrap(text: str) -> str:
    """Parenthesise a fraction's part or a script unless it is one token."""
    text = text.strip()
    return text if _SIMPLE.fullmatch(text) else f"({text})"


def _environment(name: str, body: str) -> str:
    if name == "array":   # drop the column specification
        body = re.sub(r"^\s*\{[^{}]*\}", "", body)
    row_sep, cell_sep = _ENV_ROWS.get(name, ("\n", ""))
    rows = [r for r in re.split(r"\\\\", body) if r.strip()]
    cells = [cell_sep.join(_convert(c).strip() for c in row.split("&")) for row in rows]
    if name == "cases":   # value if condition ("for z > 0" and "otherwise" say it already)
        cells = [re.sub(r"^(.*?) if (for |if |otherwise|else)", r"\1 \2", c) for c in cells]
    opening, closing = _ENV_BRACKETS.get(name, ("", ""))
    return opening + row_sep.join(cells) + closing


def _end_of_environment(source: str, start: int, name: str) -> tuple[str, int]:
    """The body of ``\\begin{name}`` from ``start`` and the index after its ``\\end``."""
    depth, i = 1, start
    pattern = re.compile(r"\\(begin|end)\{" + re.escape(name) + r"\}")
    while True:
        m = pattern.search(source, i)
        if m is None:
            return source[start:], len(source)
        depth += 1 if m.group(1) == "begin" else -1
        if depth == 0:
            return source[start:m.start()], m.end()
        i = m.end()


def _convert(source: str) -> str:
    r = _Reader(source)
    out: list[str] = []
    while r.i < len(r.s):
        ch = r.peek()
        if ch == "\\":
            r.i += 1
            out.append(_command(r, r.command()))
        elif ch in "^_":
            r.i += 1
            arg = _convert(r.group())
            out.append(ch + _wrap(arg))
        elif ch == "{":
            out.append(_convert(r.group()))
        elif ch == "}":
            r.i += 1
        elif ch in "&$":   # alignment, and the dollars of math inside \text{...}
            r.i += 1
        elif ch == "~":
            r.i += 1
            out.append(" ")
        else:
            r.i += 1
            out.append(ch)
    return "".join(out)


def _command(r: _Reader, name: str) -> str:   # noqa: PLR0911 (one return per kind of command)
    if name == "\\":
        r.optional()
        return "\n"
    if name in _ESCAPED:
        return _ESCAPED[name]
    if name in ("frac", "dfrac", "tfrac", "cfrac"):
        top, bottom = _convert(r.group()), _convert(r.group())
        if top.strip() in ("d", "") and bottom.strip().startswith("d"):
            return f"{top.strip()}/{_wrap(bottom)}"   # an operator d/dx
        return f"{_wrap(top)}/{_wrap(bottom)}"
    if name == "sqrt":
        index = r.optional()
        inner = _convert(r.group()).strip()
        return f"root({inner}, {_convert(index)})" if index else f"sqrt({inner})"
    if name == "binom":
        return f"C({_convert(r.group())}, {_convert(r.group())})"
    if name in _KEEP_ARGUMENT:
        return _convert(r.group())
    if name in _ACCENT_SUFFIX:
        return _convert(r.group()).strip() + _ACCENT_SUFFIX[name]
    if name in ("underbrace", "overbrace"):
        body = _convert(r.group()).strip()
        r.skip_spaces()
        if r.peek() in "_^" and r.peek():   # the brace's label: said after the term
            r.i += 1
            return f"{body} [{_convert(r.group()).strip()}]"
        return body
    if name in ("xrightarrow", "xleftarrow"):
        below = r.optional()
        above = _convert(r.group()).strip()
        arrow = " -> " if name == "xrightarrow" else " <- "
        label = ", ".join(p for p in (above, _convert(below or "").strip()) if p)
        return f"{arrow.rstrip()}[{label}] " if label else arrow
    if name in ("tag", "tag*"):
        return f"    ({_convert(r.group()).strip()})"
    if name in _DROP_ARGUMENTS:
        r.optional()
        for _ in range(_DROP_ARGUMENTS[name]):
            r.group()
        return " " if name == "hspace" else ""
    if name in _SIZES:
        r.skip_spaces()
        delim = r.group()
        if delim == ".":
            return ""
        return _convert(delim)
    if name == "begin":
        env = r.group().strip()
        body, r.i = _end_of_environment(r.s, r.i, env)
        return _environment(env.rstrip("*"), body)
    if name == "end":   # an \end without its \begin: nothing to show
        r.group()
        return ""
    if name == "partial":
        r.skip_spaces()   # \partial L -> dL
        return "d"
    if name in _SYMBOLS:
        return _SYMBOLS[name]
    # Function names (\cosh, \log, \max), Greek letters and any other command:
    # the name itself, kept apart from a following letter or name (\log\cosh u).
    follows = _NAME_AHEAD.match(r.s, r.i)
    apart = r.peek().isalpha() or (follows is not None and follows.group(1) not in _SIZES)
    return name + (" " if apart else "")


def latex_to_text(math: str) -> str:
    """Plain text for LaTeX math: no backslash command survives.

    >>> latex_to_text(r"\\alpha \\in \\mathbb{R}^{n \\times 3}, \\quad p \\leftarrow 0.5")
    'alpha in R^(n x 3), p <- 0.5'
    """
    text = _convert(math)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\( ", "(", text)
    text = re.sub(r" \)", ")", text)
    text = re.sub(r" ,", ",", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()
