"""The `Derivation` document: sections of prose + math, printable as LaTeX,
Markdown or plain text.

Both the scalar engine and the network compiler fill a `Derivation`; this
module only knows how to lay it out. Prose may contain inline math between
``$...$``; everything outside the dollars is escaped for LaTeX.

>>> d = Derivation("Example")
>>> s = d.section("Chain rule")
>>> _ = s.add(text="Start from $L$ itself:", math=r"\\frac{\\partial L}{\\partial L} = 1",
...       plain="dL/dL = 1")
>>> print(d.text())
Example
=======
<BLANKLINE>
Chain rule
----------
Start from L itself:
    dL/dL = 1
<BLANKLINE>
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from symgrad.render.latex_text import latex_to_text
from symgrad.render.line_breaks import break_rows

if TYPE_CHECKING:
    from symgrad.render.worksheet import BlankChoice, Worksheet

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_INLINE_MATH = re.compile(r"(\$[^$]+\$)")


def escape_latex_prose(text: str) -> str:
    """Escape LaTeX specials in prose, leaving ``$...$`` math untouched.

    A `code` span (Markdown's backticks, as the Markdown rendering shows it) is set
    in typewriter type, where a backtick would print as an opening quote.

    >>> escape_latex_prose("p_1 & $p_1$ 50%")
    'p\\\\_1 \\\\& $p_1$ 50\\\\%'
    >>> escape_latex_prose("line `_mm(X, W0)`")
    'line \\\\texttt{\\\\_mm(\\\\allowbreak{}X,\\\\allowbreak{} W0)}'
    """
    parts = _INLINE_MATH.split(text)
    out = []
    for part in parts:
        if part.startswith("$") and part.endswith("$") and len(part) > 1:
            out.append(_breakable_names(part))
        else:
            out.append(_escape_with_code(part))
    return "".join(out)


_TEXT_NAME = re.compile(r"\\text\{([^{}]*\\_[^{}]*)\}")


def _breakable_names(math: str) -> str:
    r"""Inline math where a long ``\text{...}`` name may break after each underscore.

    A name set as ``\text{hidden\_layer\_bias}`` is one box that the paragraph
    cannot break: in prose it runs past the margin. Cut into one ``\text`` per
    piece with ``\allowbreak`` between them it prints the same and may break.

    >>> print(_breakable_names(r"$\text{hidden\_bias} + b$"))
    $\text{hidden\_}\allowbreak{}\text{bias} + b$
    """
    def cut(match: re.Match) -> str:
        *heads, last = match.group(1).split(r"\_")
        boxes = [rf"\text{{{p}\_}}" for p in heads] + ([rf"\text{{{last}}}"] if last else [])
        return r"\allowbreak{}".join(boxes)
    return _TEXT_NAME.sub(cut, math)


# A backtick pair around code; doubled backticks (LaTeX's ``quotes'') are not code.
_CODE_SPAN = re.compile("(?<!`)`([^`\\s][^`]*?)`(?!`)")


def _escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


# Typewriter text does not hyphenate: a long line of code (a kernel call in the
# equation-to-kernel appendix) may break after these characters instead.
_CODE_BREAKS = frozenset("(,[=")


def _escape_code(code: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) + (r"\allowbreak{}" if ch in _CODE_BREAKS else "")
                   for ch in code)


def _escape_with_code(part: str) -> str:
    """Escape prose; its code spans become ``\\texttt``, escaped too."""
    pieces, last = [], 0
    for m in _CODE_SPAN.finditer(part):
        pieces.append(_escape(part[last:m.start()]))
        pieces.append(r"\texttt{" + _escape_code(m.group(1)) + "}")
        last = m.end()
    pieces.append(_escape(part[last:]))
    return "".join(pieces)


def _aligned(math: str) -> str:
    # Multi-line equations use & alignment; wrap them so both LaTeX and MathJax accept them.
    if "&" in math or r"\\" in math:
        return r"\begin{aligned}" + math + r"\end{aligned}"
    return math


# The widest row a displayed equation may have, in `latex_em`'s em: A4 with 2 cm margins
# is 481 pt, and pdflatex sets math at 11 pt at 12.3-12.8 pt per estimated em (fractions
# and cases blocks the widest), so 38.5 em (40 let a row of two cases blocks run 6.5 pt
# off the page). amsmath moves an equation number that does not fit to a row of its own.
DISPLAY_EM = 38.5


#: A display of more rows than this is set as ``align*``, which may break across pages
#: (``\allowdisplaybreaks``); an ``aligned`` block cannot, and a 36-row expansion of a
#: loss's slope ran 983 pt off the bottom of the page.
TALL_ROWS = 16


def _display(math: str, tag: str) -> list[str]:
    """A displayed equation for pdflatex (multi-row math as one ``aligned`` block, or as
    ``align*`` if it has more than `TALL_ROWS` rows); rows wider than the page are
    broken at a top-level + or - (`break_rows`)."""
    broken = break_rows(math, DISPLAY_EM)
    if broken.count(r"\\") >= TALL_ROWS:
        return [r"\begin{align*}", broken + tag, r"\end{align*}"]
    return [r"\begin{equation*}", _aligned(broken) + tag, r"\end{equation*}"]


def equation_tag(step: Step, numbers: dict[int, int]) -> str:
    r"""``\tag{n}`` for a numbered step's display math (MathJax and amsmath read it)."""
    return rf"\tag{{{numbers[id(step)]}}}" if id(step) in numbers else ""


def _strip_inline_math(text: str) -> str:
    """Inline ``$...$`` math as readable plain text.

    >>> _strip_inline_math(r"$\\log p_i = z_i - \\operatorname{lse}(z)$, $e^{z} \\le 1$")
    'log p_i = z_i - lse(z), e^z <= 1'
    """
    return _INLINE_MATH.sub(lambda m: latex_to_text(m.group(1)[1:-1]), text)


@dataclass(frozen=True)
class Step:
    """One line of a derivation: a sentence, a displayed equation, or both.

    ``math`` is LaTeX (no delimiters); ``plain`` is the same statement for the
    plain-text rendering (falls back to ``math`` when empty).
    """

    text: str = ""
    math: str = ""
    plain: str = ""
    # A stable key for the equation (e.g. "dW2"): other stages (the kernel's
    # comments) refer to an equation by it, and `Derivation.equation_numbers` maps
    # it to the number the reader sees.
    tag: str = ""


@dataclass
class Section:
    """A titled group of steps (one node, one layer, one stage).

    An appendix section (``appendix=True``, made by `Derivation.appendix`) is
    rendered after every main section, whatever order they were made in.
    """

    title: str
    steps: list[Step] = field(default_factory=list)
    appendix: bool = False

    @property
    def heading(self) -> str:
        """The title as printed (appendix sections say so)."""
        return f"Appendix: {self.title}" if self.appendix else self.title

    def add(self, text: str = "", math: str = "", plain: str = "", tag: str = "") -> Step:
        """Append a step and return it."""
        step = Step(text=text, math=math, plain=plain, tag=tag)
        self.steps.append(step)
        return step


class Derivation:
    """A printable, step-by-step derivation.

    Renderings: `latex` (a body fragment), `markdown`, `text`, `to_tex` (a
    standalone document that compiles with pdflatex) and, for Jupyter,
    `_repr_html_` / `_repr_markdown_` / `_repr_latex_` (`symgrad.render.notebook`).
    """

    def __init__(self, title: str, intro: str = "", numbered: bool = False) -> None:
        self.title = title
        self.intro = intro
        self.sections: list[Section] = []
        # Numbered documents number every displayed equation (1), (2), ... in
        # reading order, in all renderings.
        self.numbered = numbered

    def section(self, title: str) -> Section:
        """Start a new section and return it."""
        sec = Section(title)
        self.sections.append(sec)
        return sec

    def appendix(self, title: str) -> Section:
        """The appendix section with this title (made on first use), printed last.

        Several parts of a printout can add to one appendix section:

        >>> d = Derivation("T")
        >>> d.appendix("Proofs") is d.appendix("Proofs"), d.appendix("Proofs").heading
        (True, 'Appendix: Proofs')
        """
        for sec in self.sections:
            if sec.appendix and sec.title == title:
                return sec
        sec = Section(title, appendix=True)
        self.sections.append(sec)
        return sec

    def ordered(self) -> list[Section]:
        """Sections in reading order: main sections, then appendices."""
        return ([s for s in self.sections if not s.appendix]
                + [s for s in self.sections if s.appendix])

    def numbers(self) -> dict[int, int]:
        """Equation number of each displayed step, keyed by ``id(step)`` (empty if unnumbered)."""
        if not self.numbered:
            return {}
        steps = [step for sec in self.ordered() for step in sec.steps if step.math]
        return {id(step): k for k, step in enumerate(steps, start=1)}

    def equation_numbers(self) -> dict[str, int]:
        """The number of every tagged equation, keyed by its tag (first occurrence wins).

        >>> d = Derivation("T", numbered=True)
        >>> s = d.section("S")
        >>> _ = s.add(math="a = 1"); _ = s.add(math="b = 2", tag="b")
        >>> d.equation_numbers()
        {'b': 2}
        """
        numbers = self.numbers()
        tagged: dict[str, int] = {}
        for sec in self.ordered():
            for step in sec.steps:
                if step.tag and id(step) in numbers:
                    tagged.setdefault(step.tag, numbers[id(step)])
        return tagged

    def __iter__(self) -> Iterator[Section]:
        return iter(self.sections)

    def __len__(self) -> int:
        return len(self.sections)

    # -- renderings ---------------------------------------------------------
    def latex(self) -> str:
        """The derivation as a LaTeX body fragment (needs amsmath)."""
        numbers = self.numbers()
        lines = [rf"\section*{{{escape_latex_prose(self.title)}}}"]
        if self.intro:
            lines += [escape_latex_prose(self.intro), ""]
        for sec in self.ordered():
            lines.append(rf"\subsection*{{{escape_latex_prose(sec.heading)}}}")
            for step in sec.steps:
                if step.text:
                    lines += [escape_latex_prose(step.text), ""]
                if step.math:
                    lines += _display(step.math, equation_tag(step, numbers))
            lines.append("")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The derivation as Markdown with ``$$`` display math."""
        numbers = self.numbers()
        lines = [f"# {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        for sec in self.ordered():
            lines += [f"## {sec.heading}", ""]
            for step in sec.steps:
                if step.text:
                    lines += [step.text, ""]
                if step.math:
                    lines += ["$$", _aligned(step.math) + equation_tag(step, numbers), "$$", ""]
        return "\n".join(lines)

    def text(self) -> str:
        """The derivation as plain text (for terminals and logs)."""
        numbers = self.numbers()
        title = _strip_inline_math(self.title)
        lines = [title, "=" * len(title), ""]
        if self.intro:
            lines += [_strip_inline_math(self.intro), ""]
        for sec in self.ordered():
            heading = _strip_inline_math(sec.heading)
            lines += [heading, "-" * len(heading)]
            for step in sec.steps:
                if step.text:
                    lines.append(_strip_inline_math(step.text))
                shown = step.plain or latex_to_text(step.math)
                if shown:
                    rows = ["    " + row for row in shown.splitlines()]
                    if id(step) in numbers:   # "(7) " or "(12) ": a space either way
                        label = f"({numbers[id(step)]})"
                        rows[0] = label.ljust(4) + (" " if len(label) >= 4 else "") + rows[0][4:]
                    lines += rows
            lines.append("")
        return "\n".join(lines)

    # Jupyter shows the richest format: HTML in the browser (headings + MathJax),
    # Markdown where HTML is not wanted, true LaTeX for `nbconvert --to pdf`.
    def _repr_html_(self) -> str:
        from symgrad.render.notebook import derivation_html

        return derivation_html(self)

    def _repr_markdown_(self) -> str:
        from symgrad.render.notebook import derivation_markdown

        return derivation_markdown(self)

    def _repr_latex_(self) -> str:
        return self.latex()

    def __repr__(self) -> str:
        return f"<Derivation {self.title!r}: {len(self.sections)} sections>"

    def __str__(self) -> str:
        return self.text()

    def to_tex(self, path: str | Path, compile_pdf: bool = False, strict: bool = False) -> Path:
        """Write a standalone LaTeX document; optionally run pdflatex on it.

        Returns the path of the ``.tex`` file (or of the PDF when compiled).
        Raises `RuntimeError` naming the log when pdflatex fails; with
        ``strict=True`` (implies compiling) also `OverfullBoxError` when
        anything runs off the page.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)   # as draw() does
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(standalone_tex(self.latex()), encoding="utf-8")
        tmp.replace(path)
        if compile_pdf or strict:
            return compile_tex(path, strict=strict)
        return path

    def worksheet(self, blank: BlankChoice = "results", key_title: str = "Answer key"
                  ) -> Worksheet:
        """This document with chosen results blanked for students, and its answer key.

        See `symgrad.render.worksheet.worksheet` for what ``blank`` accepts.
        """
        from symgrad.render.worksheet import worksheet

        return worksheet(self, blank=blank, key_title=key_title)


# The preamble of every standalone document. Why each line beyond amsmath:
# - \emergencystretch lets a paragraph with a long unbreakable token (a 20-digit
#   double, a parameter name) stretch its spaces instead of running off (microtype
#   would too, but its font expansion fails on the bitmap T1 fonts of a bare texlive);
# - \_ allows a line break after it, so long user names (cnn_test_swish) can break;
# - \allowdisplaybreaks lets multi-line displays break across pages.
PREAMBLE = "\n".join([
    r"\documentclass[11pt]{article}",
    r"\usepackage[utf8]{inputenc}",
    r"\usepackage[T1]{fontenc}",
    r"\usepackage{amsmath,amssymb}",
    r"\usepackage[margin=2cm]{geometry}",
    r"\setlength{\emergencystretch}{3em}",
    r"\let\symgradunderscore\_",
    r"\renewcommand{\_}{\symgradunderscore\allowbreak{}}",
    r"\allowdisplaybreaks",
])


def standalone_tex(body: str) -> str:
    """A LaTeX body fragment (as `Derivation.latex` gives) as a complete document."""
    return "\n".join([PREAMBLE, r"\begin{document}", body, r"\end{document}", ""])


class OverfullBoxError(RuntimeError):
    """pdflatex compiled the document, but something in it runs off the page."""

    def __init__(self, tex_path: Path, boxes: list[str]) -> None:
        self.tex_path, self.boxes = tex_path, boxes
        super().__init__(f"{len(boxes)} overfull box(es) in {tex_path}:\n" + "\n".join(boxes))


_OVERFULL = re.compile(r"^Overfull \\[hv]box .*$", re.MULTILINE)
_SOURCE_LINES = re.compile(r"at lines? (\d+)(?:--(\d+))?")


def overfull_boxes(log_path: str | Path) -> list[str]:
    r"""Every ``Overfull \hbox`` / ``\vbox`` line of a pdflatex log, with the source it came from.

    Each entry is the log's line followed by `` | `` and the start of the
    ``.tex`` lines it names (when the ``.tex`` file lies beside the log), so a
    failure says which equation or sentence is too wide.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "d.tex").write_text("a\nwide = equation\n")
    >>> _ = (folder / "d.log").write_text("Overfull \\hbox (12.5pt too wide) at lines 2--2\n")
    >>> overfull_boxes(folder / "d.log")
    ['Overfull \\hbox (12.5pt too wide) at lines 2--2 | wide = equation']
    """
    log_path = Path(log_path)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    tex = log_path.with_suffix(".tex")
    source = tex.read_text(encoding="utf-8", errors="replace").splitlines() if tex.exists() else []
    found = []
    for line in _OVERFULL.findall(log):
        where = _SOURCE_LINES.search(line)
        if where and source:
            first = int(where.group(1))
            last = int(where.group(2) or first)
            # A display is reported at its \end line: show it from its \begin.
            while first > 1 and source[first - 1].lstrip().startswith("\\end{"):
                first -= 1
                while first > 1 and not source[first - 1].lstrip().startswith("\\begin{"):
                    first -= 1
            rows = [r for r in source[first - 1:last] if not r.lstrip().startswith(
                ("\\begin{equation", "\\end{equation"))]
            line = f"{line} | {' '.join(rows)[:160]}"
        found.append(line)
    return found


def compile_tex(tex_path: str | Path, strict: bool = False) -> Path:
    """Run pdflatex on a .tex file and return the PDF path.

    Raises `RuntimeError` if pdflatex is missing or reports an error; with
    ``strict=True``, `OverfullBoxError` if the log reports an overfull box
    (`overfull_boxes` reads them).
    """
    tex_path = Path(tex_path)
    exe = shutil.which("pdflatex")
    if exe is None:
        raise RuntimeError("pdflatex is not installed; install texlive to compile LaTeX")
    proc = subprocess.run(
        [exe, "-interaction=nonstopmode", "-halt-on-error", tex_path.name],
        cwd=tex_path.parent, capture_output=True, text=True, timeout=120,
    )
    pdf = tex_path.with_suffix(".pdf")
    if proc.returncode != 0 or not pdf.exists():
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise RuntimeError(f"pdflatex failed on {tex_path}:\n{tail}")
    if strict:
        boxes = overfull_boxes(tex_path.with_suffix(".log"))
        if boxes:
            raise OverfullBoxError(tex_path, boxes)
    return pdf
