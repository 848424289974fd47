r"""Break a displayed equation that is wider than the page: between terms, factors, equations.

A user's activation can make a derivative of a dozen terms, one row of 230 pt more than
the page holds. `break_rows` estimates each row's printed width from its LaTeX source
(`symgrad.simplify.limit.latex_em`, the estimate the limit tables break their lines by,
in em) and, where a row is too wide, breaks it before a binary + or - that is outside
every brace group, continuing on a new row aligned after the ``=``. A sum inside
``\left( ... \right)`` pairs breaks too, each piece closed by the invisible ``\right.``
and reopened by ``\left.``, one for each pair open at the cut. Equations set side by side
(``f'(z) = ..., \qquad f'(Z) = ...``) go one per row first. A product breaks between
factors in parentheses (the next row starts with ``\cdot``), and a fraction too wide for
the page is written ``\frac{c}{D} (...) (...)`` or ``\frac{1}{D} (...)`` first, so that
its numerator can break; a function's argument breaks like any sum in parentheses, and a
value too wide for its column of a cases block becomes a nested ``aligned[t]`` block.
Rows after the first are measured with the left side's column before them. What is left
(one factor wider than the page, with nothing outside braces to cut) stays as it is.

>>> rows = break_rows(r"f'(z) = " + " + ".join([r"\frac{z^{2}}{z + 1}"] * 14), 40.0)
>>> rows.count(r"\\"), rows.startswith(r"f'(z) &= ")
(1, True)
"""

from __future__ import annotations

import re
from typing import NamedTuple

from symgrad.simplify.limit import latex_em

_COMMAND = re.compile(r"\\([A-Za-z]+|.)")
_LHS_EM = 20.0               # a left side wider than this may be broken too
_LHS_SOFT_EM = 8.0           # ... and one wider than this may end its row at the =
_SHORT = 0.4                 # a row cut between whole terms is at least this full


class Cut(NamedTuple):
    r"""A place where a row may break: before a binary + or -, between two factors of a
    product, or at the first =."""

    depth: int              # \left ... \right pairs open there: closed by \right., reopened
    factor: bool = False    # between two factors (the next row goes on with \cdot)
    forced: bool = False    # the = after a left side too wide to share its row


def _ends_a_factor(text: str) -> bool:
    r"""Whether ``text`` ends with a factor (a closing \right), brace or a letter/digit), so
    that a \left( after it multiplies. Not after a function's name (\log\left(x\right)
    is a call: `_unbrace_calls` writes SymPy's \log{\left(x\right)} so) or an operator."""
    tail = _POWER_AT_END.sub("", text.rstrip())
    if not tail or _NAME_AT_END.search(tail):
        return False
    return tail.endswith((r"\right)", "}")) or tail[-1].isalnum()


def _ends_a_term(text: str) -> bool:
    r"""Whether a + or - after ``text`` is binary: not after an operator or a relation
    (dA \odot - \frac{...}: that minus is the fraction's sign, not a place to cut).

    >>> _ends_a_term(r"a + b"), _ends_a_term(r"dA \odot"), _ends_a_term("f = ")
    (True, False, False)
    """
    return not _OPERATOR_AT_END.search(text.rstrip()) and bool(text.strip())


_OPERATOR_AT_END = re.compile(r"(?:\\(?:odot|cdot|times|otimes|circ|pm|mp|to|leq|geq|le|ge"
                              r"|neq|ne|approx|equiv|quad|qquad|left[(\[.]?)|[=&(,<>+\-*/])$")
_POWER_AT_END = re.compile(r"\^\{[^{}]*\}$")
_NAME_AT_END = re.compile(r"\\(?:[A-Za-z]+|operatorname\{[^{}]*\})$")


def _split_points(row: str) -> dict[int, Cut]:
    r"""Every place the row may break, outside braces and environments (inside any number
    of \left ... \right pairs), after the row's first top-level = (or &) if it has one:
    each binary + or -, each \left( or \left[ that follows a factor (a product), each
    later = of a chain, and the first = where the left side is wide."""
    points: list[tuple[int, Cut, bool]] = []
    equals: list[int] = []
    brace = left = env = 0
    seen_equals = False
    i = 0
    while i < len(row):
        ch = row[i]
        if ch == "\\":
            if brace == 0 and env == 0 and row.startswith((r"\left(", r"\left["), i) \
                    and _ends_a_factor(row[:i]):
                points.append((i, Cut(left, factor=True), seen_equals))
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
                elif ch == "=":   # a chain a = b = c: the next row may start at its =
                    points.append((i, Cut(0), True))
                seen_equals = True
            elif ch in "+-" and row[i - 1:i] == " " and row[i + 1:i + 2] == " " \
                    and _ends_a_term(row[:i]):
                points.append((i, Cut(left), seen_equals))   # binary: a term before it
        i += 1
    cuts = {i: cut for i, cut, behind in points if behind or not seen_equals}
    lhs_em = latex_em(row[:equals[0]]) if equals else 0.0
    if lhs_em > _LHS_EM:
        # a left side too wide for a row of its own (an identity raw = simplified):
        # its terms may break too, and the = does (the row after it starts with it)
        cuts.update({i: cut for i, cut, behind in points if not behind})
        cuts[equals[0]] = Cut(0, forced=True)
    elif lhs_em > _LHS_SOFT_EM:
        # the = itself, where nothing after it fits beside a left side of some width (raw
        # = cases); a short one (f(z)) would gain nothing from a row of its own
        cuts[equals[0]] = Cut(0)
    return dict(sorted(cuts.items()))


def _break_row(row: str, limit: float) -> list[str]:
    """``row`` as one or more rows of at most ``limit`` em where split points allow.

    Greedy: each row takes as many terms as fit, and ends at the shallowest cut that
    leaves it at least `_SHORT` full. A cut inside ``\\left( ... \\right)`` pairs closes
    the row with a ``\\right.`` for each and opens the next with as many ``\\left.``.
    """
    if latex_em(row) <= limit:
        return [row]
    row = _break_cases(row, limit)
    if latex_em(row) <= limit:
        return [row]
    row = _unfold_fractions(_unbrace_calls(row), limit)
    cuts = _split_points(row)
    if not cuts:
        return [row]

    def piece(a: int, b: int) -> str:
        text = row[a:b].strip()
        if a in cuts:
            text = r"\left. " * cuts[a].depth + (r"\cdot " if cuts[a].factor else "") + text
        return text + r" \right." * (cuts[b].depth if b in cuts else 0)

    # Rows after the first sit right of the left side's column (and a \quad); a row that
    # starts at that = gives the left side a row of its own, and there is no column.
    align = next((i for i, token in _top_level(row) if token in ("=", "&")), None)
    column = latex_em(row[:align]) + 1.0 if align else 0.0

    rows, start, fitted = [], 0, []

    def new_row(at: int) -> None:
        nonlocal start, column, fitted
        rows.append(piece(start, at))
        start, fitted = at, [c for c in fitted if c > at]
        if at == align:
            column = 0.0

    def best_end() -> int:
        # the shallowest cut that leaves the row at least _SHORT full (the latest of them)
        # rather than the deepest last one: between whole terms or factors, not inside
        # parentheses, where that costs little
        for depth in sorted({cuts[c].depth for c in fitted}):
            full = [c for c in fitted if cuts[c].depth <= depth
                    and latex_em(piece(start, c)) >= _SHORT * limit]
            if full:
                return full[-1]
        return fitted[-1]

    for cut in [*cuts, len(row)]:
        # a row ended at a shallow cut far back can leave the rest still too wide for
        # its new row: end rows until it fits or no cut is left before this one
        while latex_em(piece(start, cut)) + (column if start else 0.0) > limit and fitted:
            new_row(best_end())
        if cut in cuts and cuts[cut].forced and cut > start:
            new_row(cut)   # a wide left side ends its rows here
        if cut < len(row):
            fitted.append(cut)
    rows.append(piece(start, len(row)))
    if len(rows) == 1:
        return [row]
    # an & inside cases does not align the row: only a top-level one does
    return [_aligned_at_equals(rows[0])] + [("&" if r.startswith("=") else r"&\quad ") + r
                                            for r in rows[1:]]


def _break_cases(row: str, limit: float) -> str:
    r"""``row`` with each value of its top-level cases environments that is too wide for
    its column broken into rows of a nested ``\begin{aligned}[t]`` (`_break_row`); the
    condition stays beside the value's first row. A cases block cannot break between
    its own rows and the next row, so its values are what must fit.

    >>> wide = " + ".join([r"\frac{z^{2}}{z + 1}"] * 12)
    >>> out = _break_cases(r"f = \begin{cases} 0 & z < 0 \\ " + wide + r" & z > 0 \end{cases}", 40)
    >>> out.count(r"\begin{aligned}[t]"), out.count(r"\quad")
    (1, 1)
    """
    out, last, begin = [], 0, None
    for i, token in list(_top_level(row)):
        if token == "begin" and row.startswith(r"\begin{cases}", i):
            begin = i
        elif token == "end" and begin is not None:
            start = begin + len(r"\begin{cases}")
            body = _break_case_values(row[start:i], limit - _lead_em(row, begin), limit)
            out += [row[last:start], body]
            last, begin = i, None
    return "".join(out) + row[last:] if out else row


def _lead_em(row: str, at: int) -> float:
    """The width in front of ``row[at]`` once `_break_row` has broken the row before it:
    from the row's last top-level + or - before ``at`` (where a continuation row can
    start, right of the left side's column), or from its = where the left side may get a
    row of its own (not one aligned already), else from the row's start."""
    before = row[:at]
    tokens = list(_top_level(before))
    equals = next((j for j, t in tokens if t in ("=", "&")), None)
    column = latex_em(before[:equals]) + 1.0 if equals is not None else 0.0
    term = [j for j, t in tokens if t in "+-" and before[j - 1:j] == " "
            and before[j + 1:j + 2] == " " and (equals is None or j > equals)
            and _ends_a_term(before[:j])]
    if term:
        return column + latex_em(before[term[-1]:])
    aligned = any(t == "&" for _, t in tokens)   # set in a column already: it stays
    if equals is not None and not aligned and latex_em(before[:equals]) > _LHS_SOFT_EM:
        return latex_em(before[equals:])
    return latex_em(before)


def _break_case_values(body: str, room: float, limit: float) -> str:
    """The rows of a cases body with every value wider than its column broken; ``room``
    is the page left of the cases brace, ``limit`` a whole row."""
    rows = [[cell.strip() for cell in _top_level_cut(text, "&")]
            for text in _top_level_cut(body, "\\")]
    condition = max((latex_em(" & ".join(cells[1:])) for cells in rows), default=0.0)
    # the brace, the column gap and the widest condition; a value keeps at least 40 % of
    # a row (a narrower one would cut it into pieces of a few symbols)
    column = max(room - condition - 2.0, _SHORT * limit)
    for cells in rows:
        pieces = _break_row(cells[0], column) if latex_em(cells[0]) > column else [cells[0]]
        if len(pieces) > 1:
            cells[0] = r"\begin{aligned}[t]" + r" \\ ".join(pieces) + r"\end{aligned}"
    return " " + r" \\ ".join(" & ".join(cells) for cells in rows) + " "


def _top_level_cut(text: str, token: str) -> list[str]:
    """``text`` cut at each top-level ``token`` (`_top_level`: outside braces,
    ``\\left ... \\right`` and environments), the token dropped."""
    cuts = [i for i, t in _top_level(text) if t == token]
    width = 2 if token == "\\" else 1
    return [text[a + (width if k else 0):b]
            for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(text)], strict=True))]


def _unfold_fractions(row: str, limit: float) -> str:
    r"""Each top-level ``\frac{c N}{D}`` too wide for its row as ``\frac{c}{D} N``, N being
    its factors in parentheses, so that they (and their terms) can go on rows of their
    own: a fraction cannot be broken.

    >>> _unfold_fractions(r"f = \frac{2 a \left(x\right) \left(y\right)}{b}", 1.0)
    'f = \\frac{2 a}{b} \\left(x\\right) \\left(y\\right)'
    >>> _unfold_fractions(r"f = \frac{\left(x\right)^{2}}{b}", 1.0)
    'f = \\frac{1}{b} \\left(x\\right)^{2}'
    """
    out, last = [], 0
    for i, token in list(_outside_braces(row, 1)):   # inside one \left( too (cut at depth 1)
        if token != "frac" or i < last:
            continue
        num_end = _group_end(row, i + len(r"\frac"))
        den_end = _group_end(row, num_end)
        if num_end < 0 or den_end < 0:
            continue
        whole = row[i:den_end]
        # too wide for what is left of its row once the row breaks before it (dA \odot -
        # \frac{...}{...}: the fraction alone fit, not after its prefix)
        if latex_em(whole) <= limit - _lead_em(row, i):
            continue
        numerator = row[i + len(r"\frac") + 1:num_end - 1]
        # the factors in parentheses go out; what stands before them stays on top
        first = next((j for j, token in _top_level(numerator) if token == "left"), None)
        if _is_sum(numerator):   # a sum goes out whole, in parentheses its terms can break
            top, rest = "1", r"\left(" + numerator.strip() + r"\right)"
        elif not first:   # None (nothing to break at) or 0 (the numerator is one group)
            top, rest = ("1", numerator) if first == 0 else (None, None)
        elif _NAME_AT_END.search(_POWER_AT_END.sub("", numerator[:first].rstrip())):
            top, rest = "1", numerator   # one call, \log\left(...\right): kept whole
        else:
            top, rest = numerator[:first].strip(), numerator[first:]
        if top in ("-", "+"):
            top += "1"
        if top is None:
            continue
        out += [row[last:i], r"\frac{" + top + "}" + row[num_end:den_end] + " " + rest]
        last = den_end
    return "".join(out) + row[last:] if out else row


def _is_sum(text: str) -> bool:
    """Whether ``text`` has a binary + or - outside braces and parentheses.

    >>> _is_sum("- 5 p^{2} + 10 p y"), _is_sum(r"2 \\left(a + b\\right)"), _is_sum("-a")
    (True, False, False)
    """
    return any(token in "+-" and _ends_a_term(text[:i]) for i, token in _top_level(text))


# A function call as SymPy prints it, \log{\left(x \right)} or \operatorname{erf}^{2}{\left(
# ...: the name, an optional power, then the argument's brace group (not \frac, \sqrt, ...).
_CALL = re.compile(r"\\(?:log|exp|sinh|cosh|tanh|sin|cos|tan|operatorname\{[A-Za-z0-9]+\})"
                   r"(?:\^\{[^{}]*\})?\{(?=\\left\()")


def _unbrace_calls(row: str) -> str:
    r"""``row`` with the braces around each top-level function argument dropped:
    ``\log{\left(a + b\right)}`` as ``\log\left(a + b\right)``, the same print, but now
    its sum can break like any sum in parentheses (a row cannot break inside braces).

    >>> _unbrace_calls(r"\log{\left(a + b \right)} + \frac{\left(c\right)}{2}")
    '\\log\\left(a + b \\right) + \\frac{\\left(c\\right)}{2}'
    """
    out, pos = [], 0
    for m in _CALL.finditer(row):
        if m.start() < pos:   # inside a call already copied
            continue
        open_ = m.end() - 1
        close = _group_end(row, open_) - 1
        if close < 0 or not row[:close].rstrip().endswith(r"\right)"):
            continue
        out += [row[pos:open_], _unbrace_calls(row[open_ + 1:close])]   # nested calls too
        pos = close + 1
    return "".join(out) + row[pos:] if out else row


def _group_end(text: str, start: int) -> int:
    """The index after the brace group that opens at ``text[start]``; -1 if none does."""
    if text[start:start + 1] != "{":
        return -1
    depth = 0
    for j in range(start, len(text)):
        depth += (text[j] == "{") - (text[j] == "}")
        if depth == 0:
            return j + 1
    return -1


def _top_level(row: str):
    r"""(index, token) of each command or character of ``row`` outside braces,
    ``\left ... \right`` and environments (a command's token is its name)."""
    depth, i = 0, 0
    while i < len(row):
        if row[i] == "\\":
            m = _COMMAND.match(row, i)
            word = m.group(1)
            depth -= word in ("right", "end")
            if depth == 0:
                yield i, word
            depth += word in ("left", "begin")
            i = m.end()
            continue
        depth -= row[i] == "}"
        if depth == 0:
            yield i, row[i]
        depth += row[i] == "{"
        i += 1


def _outside_braces(row: str, left_depth: int):
    r"""(index, token) of each command or character of ``row`` outside braces and
    environments and inside at most ``left_depth`` ``\left ... \right`` pairs (a
    command's token is its name): `_top_level` with ``left_depth`` 0."""
    brace = env = left = 0
    i = 0
    while i < len(row):
        if row[i] == "\\":
            m = _COMMAND.match(row, i)
            word = m.group(1)
            env -= word == "end"
            left -= word == "right"
            if brace == env == 0 and left <= left_depth:
                yield i, word
            env += word == "begin"
            left += word == "left"
            i = m.end()
            continue
        brace -= row[i] == "}"
        if brace == env == 0 and left <= left_depth:
            yield i, row[i]
        brace += row[i] == "{"
        i += 1


def _qquad_pieces(row: str) -> list[str]:
    r"""``row`` cut at each top-level ``\qquad`` (`_top_level`): the gap between two
    equations set side by side (``f'(z) = ..., \qquad f'(Z) = ...``).

    >>> _qquad_pieces(r"a = 1, \qquad b = \left(x \qquad y\right)")
    ['a = 1,', 'b = \\left(x \\qquad y\\right)']
    """
    cuts = [i for i, token in _top_level(row) if token == "qquad"]
    pieces = [row[a:b].removeprefix(r"\qquad").strip()
              for a, b in zip([0, *cuts], [*cuts, len(row)], strict=True)]
    return [piece for piece in pieces if piece]


def _aligned_at_equals(row: str) -> str:
    """``row`` with its first top-level `` = `` as the alignment point (``&=``), unless it
    has one (an ``&`` inside cases or a matrix does not count)."""
    tokens = dict(_top_level(row))
    if "&" in tokens.values():
        return row
    equals = [i for i, token in tokens.items() if token == "="]
    return row[:equals[0]] + "&" + row[equals[0]:] if equals else "&" + row


def break_rows(math: str, limit: float) -> str:
    """``math`` with every row wider than ``limit`` em broken (see module doc).

    A row of equations set side by side (``\\qquad`` between them) that is too wide is
    first set one equation per row; each is then broken like any other row.
    """
    rows = _top_level_cut(math, "\\")   # the rows, cut at \\ outside environments
    # A row that starts at its alignment point (&= ...) sits right of the first row's left
    # side: its room is the page less that column.
    first_align = next((i for i, token in _top_level(rows[0]) if token == "&"), None)
    lead = latex_em(rows[0][:first_align]) if first_align else 0.0
    broken = []
    for k, row in enumerate(rows):
        room = limit - lead if k and row.lstrip().startswith("&") else limit
        pieces = _qquad_pieces(row.strip()) if latex_em(row) > room else [row.strip()]
        if len(pieces) > 1:
            broken += [_aligned_at_equals(r) for piece in pieces
                       for r in _break_row(piece, room)]
        else:
            broken += _break_row(row.strip(), room)
    if broken == [row.strip() for row in rows]:
        return math
    return r" \\ ".join(broken)
