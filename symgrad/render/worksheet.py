r"""Worksheets: a derivation with chosen results blanked, and its answer key.

A teacher hands out the printout with the results left for the student to
fill in. ``Derivation.worksheet(blank=...)`` keeps every section, sentence and
equation, but replaces the *final right-hand side* of each chosen equation (the
part after its last top-level ``=``; in a chain ``a &= b \\ &= c`` only ``c``)
by a numbered blank: ``\underline{\hspace{3em}}_{(1)}`` in LaTeX and the
notebook's MathJax, ``____(1)`` in plain text. The answer key is a second
`Derivation` that lists each blank's number, where it is (section, and the
equation number in a numbered document), and its answer in all renderings.

What to blank (``blank``):

- ``"results"``: every displayed equation's derived result (a given input or a
  definition, ``x_1 = 2`` or ``Z_1 = X W_1 + b_1``, stays: the student starts there);
- ``"numbers"``: only results that are a number (the gradient values, the
  updated weights);
- ``"symbolic"``: only results that are a formula (the derived derivatives);
- a set of strings: the equations whose ``Step.tag`` or section title is in it;
- a function ``(section, step) -> bool``: the equations it chooses.

>>> from symgrad.render.document import Derivation
>>> d = Derivation("T")
>>> _ = d.section("S").add(math=r"\frac{\partial L}{\partial w} = 2 \cdot 3 = 6",
...                         plain="dL/dw = 2 * 3 = 6")
>>> ws = d.worksheet("numbers")
>>> print(ws.sheet.text().splitlines()[-1])
    dL/dw = 2 * 3 = ____(1)
>>> print(ws.key.text().splitlines()[-1])
    (1) 6
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from symgrad.render.document import Derivation, Section, Step
from symgrad.render.latex_text import latex_to_text

__all__ = ["Blank", "BlankChoice", "Worksheet", "worksheet"]

BlankChoice = str | Callable[[Section, Step], bool] | Iterable[str]

# Where a right-hand side stops: an annotation column, a spacer before a note, a tag.
_RHS_END = re.compile(r"&|\\qquad(?![A-Za-z])|\\quad(?![A-Za-z])|\\tag(?![A-Za-z])")
_NUMBER = re.compile(r"^\(?[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\)?$")
_SENTINEL = "QQBLANK{}QQ"
# A name on its own (x_{1}, W_2, \text{bias}, l(p, y)): an equation of it with one
# relation gives or defines it.
_BARE_NAME = re.compile(r"([A-Za-z]+|\\text\{[^{}]*\})(_\{[^{}]*\}|_[A-Za-z0-9])?"
                        r"(\(\s*\w+(\s*,\s*\w+)*\s*\))?")


@dataclass(frozen=True)
class Blank:
    """One blank: its number, where it is, and its answer (LaTeX and plain text)."""

    number: int
    section: str
    equation: int | None     # the equation's number in a numbered document
    latex: str
    plain: str


@dataclass(frozen=True)
class Worksheet:
    """The blanked document (``sheet``), its answer key (``key``) and the blanks."""

    sheet: Derivation
    key: Derivation
    blanks: tuple[Blank, ...]


def _top_level(math: str) -> list[int]:
    """Depth (braces, ``\\left``/``\\right``, environments) before each character."""
    depths, depth, i = [], 0, 0
    while i < len(math):
        ch = math[i]
        step, width = 0, 1
        if ch == "\\":
            m = re.match(r"\\(left|right|begin|end)(?![A-Za-z])|\\.", math[i:])
            width = m.end() if m else 1
            if m and m.group(1) in ("left", "begin"):
                step = 1
            elif m and m.group(1) in ("right", "end"):
                step = -1
        elif ch == "{":
            step = 1
        elif ch == "}":
            step = -1
        depths += [depth] * width
        depth += step
        i += width
    return depths[:len(math)]


def _rows(math: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level row of a display.

    A ``\\qquad`` followed by another equation (``L = ..., \\qquad l(p, y) = ...``)
    starts a row of its own; one followed by a note (``\\qquad (n \\times 3)``) does not.
    """
    depth = _top_level(math)
    rows, start = [], 0
    for m in re.finditer(r"\\\\", math):
        if depth[m.start()] == 0 and m.start() >= start:
            rows.append((start, m.start()))
            start = m.end()
    rows.append((start, len(math)))
    split = []
    for r_start, r_end in rows:
        cuts = [m for m in re.finditer(r"\\qquad(?![A-Za-z])", math[:r_end])
                if m.start() >= r_start and depth[m.start()] == 0]
        for m in cuts:
            rest = range(m.end(), r_end)
            if any(math[i] == "=" and depth[i] == 0 for i in rest):
                split.append((r_start, m.start()))
                r_start = m.end()
        split.append((r_start, r_end))
    return split


def _final_rhs(math: str, start: int, end: int) -> tuple[int, int] | None:
    """Span of the row's final right-hand side (after its last top-level ``=``)."""
    depth = _top_level(math)
    equals = [i for i in range(start, end) if math[i] == "=" and depth[i] == 0
              and math[i - 1:i] not in ("<", ">", "!", "\\")]
    if not equals:
        return None
    rhs_start = equals[-1] + 1
    stop = end
    for m in _RHS_END.finditer(math, rhs_start, end):
        if depth[m.start()] == 0:
            stop = m.start()
            break
    text = math[rhs_start:stop]
    stripped = text.rstrip().rstrip(",").rstrip()
    lead = len(text) - len(text.lstrip())
    if not stripped.strip():
        return None
    return rhs_start + lead, rhs_start + len(stripped)


def _continues(row: str) -> bool:
    """A row that starts with its relation (``&= ...``) continues the equation above."""
    return re.match(r"^\s*&?\s*(=|\\xrightarrow|\\to|\\approx|\\le|\\ge)", row) is not None


def _result_spans(math: str) -> list[tuple[tuple[int, int], bool]]:
    """The final right-hand side of each equation of a display (one per row group), and
    whether it is *derived*: reached through two or more relations (``a = b = c``), or
    stated of something other than a bare name (``dL/da = -3``), unlike a given value
    or a definition (``x_1 = 2``, ``Z_1 = X W_1 + b_1``)."""
    rows = _rows(math)
    groups: list[tuple[int, int]] = []
    for start, end in rows:
        if groups and _continues(math[start:end]):
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    spans = []
    for g_start, g_end in groups:
        last_row = [r for r in rows if g_start <= r[0] and r[1] <= g_end][-1]
        span = _final_rhs(math, *last_row)
        if span:
            depth = _top_level(math)
            relations = sum(1 for i in range(g_start, g_end) if math[i] == "=" and depth[i] == 0)
            relations += math.count(r"\xrightarrow", g_start, g_end)
            first = next(i for i in range(g_start, g_end) if math[i] == "=" and depth[i] == 0)
            lhs = math[g_start:first].replace("&", "").strip()
            spans.append((span, relations >= 2 or not _BARE_NAME.fullmatch(lhs)))
    return spans


def _plain_results(plain: str) -> list[tuple[int, int]]:
    """The same for a plain rendering: the text after the last `` = `` of each equation."""
    spans, offset = [], 0
    lines = plain.split("\n")
    groups: list[list[tuple[int, str]]] = []
    for line in lines:
        if groups and re.match(r"^\s*(=|->)", line):
            groups[-1].append((offset, line))
        else:
            groups.append([(offset, line)])
        offset += len(line) + 1
    for group in groups:
        at, line = group[-1]
        lead = len(line) - len(line.lstrip())
        # Notes after the result: "    [label]", "    (cancelled)", "; error ...".
        body = re.split(r"\s{3,}|;\s", line[lead:])[0]
        cut = body.rfind(" = ")
        if cut < 0:
            continue
        answer = body[cut + 3:].rstrip().rstrip(",").rstrip()
        if answer.strip():
            start = at + lead + cut + 3
            spans.append((start, start + len(answer)))
    return spans


def _same(text: str, plain: str) -> bool:
    """Whether two renderings of a result say the same, up to spacing, ``*``, brackets and
    subscript marks (``(A_1 > 0)`` and ``(A1 > 0)``; ``p (1 - p)`` and ``p*(1 - p)``)."""
    def norm(s: str) -> str:
        return re.sub(r"[\s*(){}\[\]_]", "", s.replace("**", "^"))
    return norm(text) == norm(plain)


def _chooser(blank: BlankChoice) -> Callable[[Section, Step, str, bool], bool]:
    """(section, step, plain answer, derived) -> whether this result becomes a blank.

    The named choices blank derived results only: a given input (``x_1 = 2``) stays,
    or the student could not start.
    """
    if blank == "results":
        return lambda sec, step, answer, derived: derived
    if blank == "numbers":
        return lambda sec, step, answer, derived: derived and bool(_NUMBER.match(answer))
    if blank == "symbolic":
        return lambda sec, step, answer, derived: derived and not _NUMBER.match(answer)
    if isinstance(blank, str):
        raise ValueError(f"worksheet: blank must be 'results', 'numbers', 'symbolic', a set of "
                         f"tags or section titles, or a function (section, step) -> bool; got "
                         f"{blank!r}")
    if callable(blank):
        return lambda sec, step, answer, derived: bool(blank(sec, step))
    names = set(blank)
    return lambda sec, step, answer, derived: step.tag in names or sec.title in names


def _blank_latex(number: int, answer: str) -> str:
    # Sized roughly to the answer so the line gives room to write, within the page.
    width = min(10.0, max(2.5, round(0.5 * len(answer)) / 2 + 1.5))
    return rf"\underline{{\hspace{{{width:g}em}}}}_{{({number})}}"


def _blank_plain(number: int) -> str:
    return f"____({number})"


def worksheet(doc: Derivation, blank: BlankChoice = "results",
              key_title: str = "Answer key") -> Worksheet:
    """Blank the chosen results of ``doc`` (see the module doc) and make the answer key."""
    choose = _chooser(blank)
    numbers = doc.numbers()
    sheet = Derivation(f"{doc.title} (worksheet)",
                       intro=(doc.intro + " " if doc.intro else "")
                       + "Fill in each numbered blank; the answer key gives each by its number.",
                       numbered=doc.numbered)
    blanks: list[Blank] = []
    # Reading order (appendices last), so blanks are numbered as the reader meets them.
    for sec in doc.ordered():
        new_sec = Section(sec.title, appendix=sec.appendix)
        sheet.sections.append(new_sec)
        for step in sec.steps:
            new_sec.steps.append(_blank_step(sec, step, choose, blanks,
                                             numbers.get(id(step))))
    key = _answer_key(doc, sheet, blanks, key_title)
    return Worksheet(sheet, key, tuple(blanks))


def _blank_step(sec: Section, step: Step, choose, blanks: list[Blank],
                equation: int | None) -> Step:
    if not step.math:
        return step
    spans = _result_spans(step.math)
    plain_spans = _plain_results(step.plain) if step.plain else []
    # The plain form pairs with the display when it has the same results, written alike
    # (a plain line may hold fewer equations, or only the first row of a case split).
    paired = len(plain_spans) == len(spans) and all(
        _same(latex_to_text(step.math[a:b]), step.plain[pa:pb])
        for ((a, b), _), (pa, pb) in zip(spans, plain_spans, strict=True))
    chosen = []
    for k, ((a, b), derived) in enumerate(spans):
        answer_tex = step.math[a:b].strip()
        answer_txt = (step.plain[slice(*plain_spans[k])].strip() if paired
                      else latex_to_text(answer_tex))
        if choose(sec, step, answer_txt, derived):
            chosen.append((k, answer_tex, answer_txt))
    if not chosen:
        return step
    first = len(blanks) + 1
    numbered = [(first + j, k, answer_tex, answer_txt)
                for j, (k, answer_tex, answer_txt) in enumerate(chosen)]
    math, plain = step.math, step.plain
    for number, k, _, answer_txt in reversed(numbered):   # from the end: spans stay valid
        a, b = spans[k][0]
        math = math[:a] + _blank_latex(number, answer_txt) + math[b:]
        if paired:
            pa, pb = plain_spans[k]
            plain = plain[:pa] + _blank_plain(number) + plain[pb:]
    if not paired:
        # No plain form that pairs with the display: read the blanked LaTeX as text,
        # so no answer survives in the plain rendering.
        marked = step.math
        for number, k, _, _ in reversed(numbered):
            a, b = spans[k][0]
            marked = marked[:a] + rf"\text{{{_SENTINEL.format(number)}}}" + marked[b:]
        plain = latex_to_text(marked)
        for number, *_ in numbered:
            plain = plain.replace(_SENTINEL.format(number), _blank_plain(number))
    for number, _, answer_tex, answer_txt in numbered:
        blanks.append(Blank(number, sec.heading, equation, answer_tex, answer_txt))
    return dataclasses.replace(step, math=math, plain=plain)


def _answer_key(doc: Derivation, sheet: Derivation, blanks: list[Blank],
                key_title: str) -> Derivation:
    key = Derivation(f"{doc.title}: {key_title}",
                     intro=f"The answers to the {len(blanks)} blanks of the worksheet, by number.")
    current = None
    for b in blanks:
        if current is None or current.title != b.section:
            current = key.section(b.section)
        where = f" (equation {b.equation})" if b.equation is not None else ""
        current.add(text=f"Blank {b.number}{where}:" if where else "",
                    math=rf"\text{{({b.number})}}\quad {b.latex}",
                    plain=f"({b.number}) {b.plain}")
    if not blanks:
        key.section("Answers").add(text="This worksheet has no blanks.")
    return key
