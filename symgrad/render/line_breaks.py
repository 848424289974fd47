r"""Break a displayed equation that is wider than the page at its top-level + and -.

A user's activation can make a derivative of a dozen terms, one row of 230 pt more than
the page holds. `break_rows` estimates each row's printed width from its LaTeX source
(`math_width`, in em of the document's font) and, where a row is too wide, breaks it
before a binary + or - that is outside every brace group, continuing on a new row
aligned after the ``=``. A sum inside one ``\left( ... \right)`` breaks too, each piece
closed by the invisible ``\right.`` / ``\left.``. A single term wider than the page
stays as it is (a fraction or a product of factors is not broken).

>>> rows = break_rows(r"f'(z) = " + " + ".join([r"\frac{z^{2}}{z + 1}"] * 14), 40.0)
>>> rows.count(r"\\"), rows.startswith(r"f'(z) &= ")
(1, True)
"""

from __future__ import annotations

import re

# Printed width in em (11 pt Computer Modern, display style), rough but on the safe side.
_CHAR_EM = 0.55
_BINARY_EM = 1.6              # + - = with their spacing
_COMMAND_EM = {r"\quad": 1.0, r"\qquad": 2.0, r"\,": 0.17, r"\;": 0.28, r"\:": 0.22,
               r"\left": 0.0, r"\right": 0.0, r"\cdot": 0.8, r"\odot": 1.2, r"\circ": 0.8}
_WORD_COMMANDS = ("operatorname", "text", "mathrm", "mathbf", "mathit", "texttt")
_COMMAND = re.compile(r"\\([A-Za-z]+|.)")
_LHS_EM = 20.0               # a left side wider than this may be broken too


def _group(tex: str, start: int) -> int:
    """Index just past the brace group opening at ``start`` (``tex[start] == "{"``)."""
    depth = 0
    for i in range(start, len(tex)):
        if tex[i] == "\\":
            continue
        if tex[i] == "{" and (i == 0 or tex[i - 1] != "\\"):
            depth += 1
        elif tex[i] == "}" and tex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(tex)


def math_width(tex: str) -> float:
    r"""Estimated printed width of display math ``tex``, in em.

    A fraction is as wide as its wider part, a script 0.7 of its content, a word
    command (``\operatorname{atan}``) its letters, a symbol command about one letter.

    >>> round(math_width(r"\frac{a + b}{c}"), 2), round(math_width(r"x^{2} + 1"), 2)
    (2.9, 3.08)
    """
    width, i = 0.0, 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            m = _COMMAND.match(tex, i)
            name = m.group(0)
            i = m.end()
            if m.group(1) == "frac" and i < len(tex) and tex[i] == "{":
                end_num = _group(tex, i)
                end_den = _group(tex, end_num)
                width += max(math_width(tex[i + 1:end_num - 1]),
                             math_width(tex[end_num + 1:end_den - 1])) + 0.2
                i = end_den
            elif m.group(1) in _WORD_COMMANDS and i < len(tex) and tex[i] == "{":
                end = _group(tex, i)
                width += _CHAR_EM * len(re.sub(r"\\.", "x", tex[i + 1:end - 1]))
                i = end
            elif m.group(1) in ("left", "right", "big", "Big", "bigl", "bigr"):
                width += 0.0 if tex[i:i + 1] == "." else _CHAR_EM * 0.8
                i += 1 if i < len(tex) and tex[i] != "\\" else 0
            else:
                width += _COMMAND_EM.get(name, _CHAR_EM * min(len(m.group(1)), 3))
        elif ch in "^_":
            i += 1
            if i < len(tex) and tex[i] == "{":
                end = _group(tex, i)
                width += 0.7 * math_width(tex[i + 1:end - 1])
                i = end
            else:
                width += 0.7 * _CHAR_EM
                i += 1
        elif ch in "+-=<>":
            width += _BINARY_EM
            i += 1
        elif ch in "{} &":
            i += 1
        else:
            width += _CHAR_EM * (0.6 if ch in "(),.|[]" else 1.0)
            i += 1
    return width


def _split_points(row: str) -> list[tuple[int, int]]:
    r"""(index, \left depth) of every binary + or - outside braces and environments,
    after the row's first top-level = (or &) if it has one."""
    points: list[tuple[int, int, bool]] = []
    equals: list[int] = []
    brace = left = env = 0
    seen_equals = False
    i = 0
    while i < len(row):
        ch = row[i]
        if ch == "\\":
            m = _COMMAND.match(row, i)
            word = m.group(1)
            left += (word == "left") - (word == "right")
            env += (word == "begin") - (word == "end")
            i = m.end()
            continue
        if ch == "{":
            brace += 1
        elif ch == "}":
            brace -= 1
        elif brace == 0 and env == 0:
            if ch in "=&" and left == 0:
                if ch == "=" and not seen_equals:
                    equals.append(i)
                seen_equals = True
            elif ch in "+-" and row[i - 1:i] == " " and row[i + 1:i + 2] == " " \
                    and row[:i].rstrip()[-1:] not in ("", "=", "&", "(", ","):
                points.append((i, left, seen_equals))   # binary: a term stands before it
        i += 1
    after = [(i, d) for i, d, behind in points if behind or not seen_equals]
    if equals and math_width(row[:equals[0]]) > _LHS_EM:
        # a left side too wide for a row of its own (an identity raw = simplified):
        # its terms may break too, and so may the = (the row after it starts with it)
        return sorted([(i, d) for i, d, behind in points if not behind]
                      + [(equals[0], 0)] + after)
    return after


def _break_row(row: str, limit: float) -> list[str]:
    """``row`` as one or more rows of at most ``limit`` em where split points allow.

    Greedy: each row takes as many terms as fit. A cut inside a ``\\left( ... \\right)``
    pair (depth 1) closes the row with ``\\right.`` and opens the next with ``\\left.``.
    """
    if math_width(row) <= limit:
        return [row]
    cuts = {i: d for i, d in _split_points(row) if d <= 1}
    if not cuts:
        return [row]

    def piece(a: int, b: int) -> str:
        text = (r"\left. " if cuts.get(a) == 1 else "") + row[a:b].strip()
        return text + (r" \right." if cuts.get(b) == 1 else "")

    rows, start, previous = [], 0, None
    for cut in [*sorted(cuts), len(row)]:
        if math_width(piece(start, cut)) > limit and previous is not None and previous > start:
            rows.append(piece(start, previous))
            start = previous
        if row[cut:cut + 1] == "=" and cut > start:   # a wide left side ends its rows here
            rows.append(piece(start, cut))
            start = cut
        previous = cut
    rows.append(piece(start, len(row)))
    if len(rows) == 1:
        return [row]
    first = rows[0]
    if "&" not in first:
        first = first.replace(" = ", " &= ", 1) if " = " in first else "&" + first
    return [first] + [("&" if r.startswith("=") else r"&\quad ") + r for r in rows[1:]]


def _top_level_rows(math: str) -> list[str]:
    r"""``math`` cut at its row breaks ``\\`` outside environments (cases, matrices)."""
    rows, env, start, i = [], 0, 0, 0
    while i < len(math):
        if math.startswith(r"\begin", i):
            env += 1
        elif math.startswith(r"\end", i):
            env -= 1
        elif math.startswith(r"\\", i) and env == 0:
            rows.append(math[start:i])
            start = i + 2
            i += 2
            continue
        i += 2 if math[i] == "\\" else 1
    rows.append(math[start:])
    return rows


def break_rows(math: str, limit: float) -> str:
    """``math`` with every row wider than ``limit`` em broken (see module doc)."""
    rows = _top_level_rows(math)
    broken = [r for row in rows for r in _break_row(row.strip(), limit)]
    if len(broken) == len(rows):
        return math
    return r" \\ ".join(broken)
