"""Displayed equations wider than the page are broken at a top-level + or - (issue 10's
"nothing runs off the page", for a user's formulas too). The pdflatex side is in
tests/test_document.py; here the cuts themselves."""

from __future__ import annotations

import re

from symgrad.render.line_breaks import break_rows
from symgrad.simplify.limit import latex_em

TERM = r"\frac{z^{2}}{z + 1}"
LONG = " + ".join([TERM] * 14)


def _balanced(row: str) -> bool:
    return len(re.findall(r"\\left\b", row)) == len(re.findall(r"\\right\b", row)) \
        and row.count("{") == row.count("}")


def test_a_short_row_is_left_alone():
    assert break_rows(r"f'(z) = 1 - a^{2}", 40.0) == r"f'(z) = 1 - a^{2}"


def test_a_long_sum_breaks_after_the_equals_sign_into_rows_that_fit():
    out = break_rows("f'(z) = " + LONG, 40.0)
    rows = out.split(r" \\ ")
    assert rows[0].startswith(r"f'(z) &= ") and all(r.startswith(r"&\quad + ") for r in rows[1:])
    assert all(latex_em(r) <= 40.0 for r in rows) and all(_balanced(r) for r in rows)
    assert out.replace(r" \\ &\quad", "").replace("&=", "=").count(TERM) == 14


def test_a_sum_inside_left_right_breaks_with_invisible_delimiters():
    rows = break_rows(r"dZ = dA \odot \left(" + LONG + r"\right)", 40.0).split(r" \\ ")
    assert len(rows) >= 2 and rows[0].endswith(r"\right.") and r"\left. " in rows[1]
    assert all(_balanced(r) for r in rows)


def test_unary_signs_and_brace_groups_are_not_cut():
    out = break_rows("f(z) = - {" + LONG + "}", 40.0)
    assert out == "f(z) = - {" + LONG + "}"   # nothing outside the group to break at


def test_a_wide_left_side_breaks_too_and_the_equals_starts_a_row():
    out = break_rows(LONG + " = " + LONG, 40.0)
    rows = out.split(r" \\ ")
    assert rows[0].startswith("&") and any(r.startswith("&= ") for r in rows)
    assert all(latex_em(r) <= 40.0 for r in rows)


def test_rows_of_an_environment_stay_inside_it():
    """The cases block's own rows stay its rows: a wide value breaks inside its cell."""
    cases = r"f(z) = \begin{cases} " + LONG + r" & z > 0 \\ 0 & \text{otherwise} \end{cases}"
    out = break_rows(cases, 40.0)
    assert out.startswith(r"f(z) = \begin{cases} \begin{aligned}[t]&")
    assert out.endswith(r"\end{aligned} & z > 0 \\ 0 & \text{otherwise} \end{cases}")


def test_equations_side_by_side_are_set_one_per_row_when_too_wide():
    """f'(z) = ..., \\qquad f'(Z) = ... (a CNN activation's printout, found by
    tools/fuzz_formulas.py --cnn --latex): two fractions that each fit, not side by side."""
    frac = r"\frac{" + " ".join([r"\tan{\left(z \right)}"] * 8) + "}{3}"
    out = break_rows(rf"f'(z) = {frac}, \qquad f'(Z_{{1}}) = {frac}", 40.0)
    rows = out.split(r" \\ ")
    assert rows == [rf"f'(z) &= {frac},", rf"f'(Z_{{1}}) &= {frac}"]
    assert all(latex_em(r) <= 40.0 for r in rows)
    narrow = r"a = 1, \qquad b = 2"
    assert break_rows(narrow, 40.0) == narrow   # what fits stays side by side
    inner = r"g = \left(" + LONG + r" \qquad " + LONG + r"\right)"
    assert r"\qquad" in break_rows(inner, 40.0)   # inside \left( ... \right): not a gap


def test_a_row_broken_at_its_equals_is_aligned_even_with_cases_in_it():
    """An & inside a cases environment is not the row's alignment point: the first row of
    'raw = simplified', broken at the =, got none and sat in the right-aligned column, so
    the block was as wide as both sides (154 pt over; fuzz_formulas --latex, seed 249)."""
    side = " + ".join([r"Z^{3} \left(\begin{cases} 1 & \text{for}\: Z > 0 \\ e^{Z} & "
                       r"\text{otherwise} \end{cases}\right)"] * 3)
    rows = break_rows(f"{side} = {side}", 40.0).split(r" \\ &")
    assert rows[0].startswith("&") and all(not r.startswith(" ") for r in rows)


def test_a_wide_fraction_breaks_between_the_factors_of_its_numerator():
    """A derivative that SymPy returns over one denominator: \\frac{2 z (...) (...)}{D}
    cannot break, \\frac{2 z}{D} (...) (...) can, at its products (\\cdot) and inside each
    factor's sum (fuzz_formulas --latex, seed 285: 92 pt off the page)."""
    factor = r"\left(" + " + ".join([r"\tanh{\left(z \right)}"] * 6) + r"\right)"
    row = rf"f'(z) = \frac{{2 z {factor} {factor} {factor}}}{{4 - z^{{2}}}}"
    rows = break_rows(row, 40.0).split(r" \\ ")
    assert rows[0].startswith(r"f'(z) &= \frac{2 z}{4 - z^{2}} \left(")
    assert all(r.startswith(r"&\quad \cdot \left(") for r in rows[1:]) and len(rows) == 3
    assert all(latex_em(r) <= 40.0 for r in rows) and all(_balanced(r) for r in rows)
    # every factor is still there, once
    assert break_rows(row, 40.0).count(r"\tanh") == 18


def test_a_row_with_nothing_to_cut_after_its_equals_breaks_at_the_equals():
    """raw = \\begin{cases} ... \\end{cases}: the cases cannot break, the = can (a logcosh
    loss on a sigmoid output ran 1.9 pt off the page; fuzz_formulas --losses --latex)."""
    lhs = r"\log{\left(\cosh{\left(y - \frac{1}{1 + e^{- Z_{2}}} \right)} \right)}"
    cases = (r"\begin{cases} " + " + ".join([r"\sinh{\left(\frac{y}{2} \right)}"] * 5)
             + r" & \text{for}\: y < 16 \\ y & \text{otherwise} \end{cases}")
    rows = break_rows(f"{lhs} = {cases}", 40.0).split(r" \\ ")
    # (the calls' braces dropped: \log\left(...\right) prints the same and can break)
    assert rows[0] == "&" + lhs.replace(r"\log{", r"\log", 1)[:-1].replace(
        r"\cosh{", r"\cosh", 1).replace(r"\right)}", r"\right)", 1)
    assert rows[1].startswith("&= \\begin{cases}")
    short = r"f(z) = " + cases   # a left side as short as f(z) keeps its row
    assert break_rows(short, 40.0) == short


def test_rows_after_the_first_leave_room_for_the_left_side():
    """A continuation row sits right of the left side's column: a loss's long log argument
    ran 84 pt off the page though the row alone fit (fuzz_formulas --losses --latex)."""
    lhs = r"\log{\left(\frac{\left(- y + \frac{1}{1 + e^{- Z_{2}}}\right)^{2}}{4} + 1 \right)}"
    arg = " + ".join([r"y^{2} e^{2 Z_{2}}"] * 9)
    out = break_rows(rf"{lhs} = - 2 \log{{\left(1 + e^{{- Z_{{2}}}} \right)}} + "
                     rf"\log{{\left({arg} \right)}} - 2 \log{{\left(2 \right)}}", 40.0)
    rows = out.split(r" \\ ")
    column = latex_em(rows[0].split("&=")[0]) + 1.0
    assert len(rows) >= 3 and all(latex_em(r) + column <= 40.0 for r in rows[1:])
    assert r"\right." in out   # the log's argument itself is broken


def test_a_product_breaks_before_an_iverson_bracket():
    """(...) [u > 0]: a kinked activation's slope times its mask (fuzz_formulas --cnn
    --latex, seed 86: 8 and 41 pt off the page)."""
    factor = r"\left(" + " + ".join([r"\tanh{\left(z \right)}"] * 6) + r"\right)"
    mask = r"\left[" + " + ".join([r"\log{\left(z \right)}"] * 5) + r" > 0\right]"
    rows = break_rows(f"f'(z) = {factor} {mask}", 40.0).split(r" \\ ")
    assert rows[1].startswith(r"&\quad \cdot \left[")
    assert all(latex_em(r) <= 40.0 for r in rows)


def test_a_later_row_of_an_aligned_display_leaves_room_for_the_first_left_side():
    """f'(Z) &= ... \\\\ &= (39 em): the second row sits right of f'(Z), 8 pt over the
    page although it alone fit (fuzz_formulas --cnn --latex, seed 86)."""
    terms = r"\frac{z^{2}}{z + 1}"
    second = " + ".join([terms] * 10)
    assert 36.0 < latex_em(second) <= 40.0
    out = break_rows(rf"f'(Z_{{\mathrm{{conv0}}}}) &= z \\ &= {second}", 40.0)
    assert out.count(r" \\ ") == 2


def test_a_wide_value_inside_cases_breaks_inside_its_own_column():
    r"""A cases block cannot break between its rows, so a value too wide for its column
    is set as a nested aligned[t] block; the condition stays beside its first row. Before,
    nothing broke inside an environment (376 pt off the page, fuzz_formulas seed 13)."""
    condition = r"z + \frac{4}{3} > 0"
    row = r"f'(z) = \begin{cases} 0 & z < 0 \\ " + LONG + " & " + condition + r" \end{cases}"
    out = break_rows(row, 40.0)
    assert out.startswith(r"f'(z) = \begin{cases} 0 & z < 0 \\ \begin{aligned}[t]&")
    inner = out[out.index(r"\begin{aligned}[t]"):out.index(r"\end{aligned}")]
    rows = inner.removeprefix(r"\begin{aligned}[t]").split(r" \\ ")
    assert len(rows) >= 2 and all(r.startswith(r"&\quad + ") for r in rows[1:])
    assert out.endswith(r"\end{aligned} & " + condition + r" \end{cases}")
    assert latex_em(out) <= 40.0 and all(_balanced(r) for r in rows)
    assert out.count(TERM) == 14


def test_an_environment_is_as_wide_as_its_widest_row():
    cases = r"\begin{cases} a & z < 0 \\ " + LONG + r" & z > 0 \end{cases}"
    assert latex_em(cases) < latex_em(LONG) + latex_em("z > 0") + 2.5
    assert latex_em(cases) > latex_em(LONG) + latex_em("z > 0")
    two_rows = r"\begin{aligned}&" + LONG + r" \\ &\quad " + LONG + r"\end{aligned}"
    assert abs(latex_em(two_rows) - latex_em(r"\quad " + LONG)) < 1e-9


def test_a_product_inside_parentheses_breaks_between_its_factors():
    r"""dA \odot (u (v + w) + s (t + r)) with wide factors: the sum inside the outer
    parentheses broke at its +, and then each product was one row too wide (123 pt in a
    CNN printout, fuzz_formulas --cnn --latex seed 132). The factors break too: the row
    closes with \right. and the next goes on with \left. \cdot."""
    half = " + ".join([TERM] * 7)
    factor = r"\left(" + half + r"\right)"
    row = r"dZ = dA \odot \left(" + factor + " " + factor + " + " + factor + " " + factor \
        + r"\right)"
    rows = break_rows(row, 40.0).split(r" \\ ")
    assert any(r.startswith(r"&\quad \left. \cdot \left(") for r in rows), rows
    assert all(latex_em(r) <= 40.0 for r in rows) and all(_balanced(r) for r in rows)
    assert sum(r.count(TERM) for r in rows) == 28


def test_a_wide_fraction_over_a_sum_breaks_between_the_terms_of_its_numerator():
    r"""\frac{a + b + ...}{D} wider than the page: written \frac{1}{D} \left(a + b + ...\right),
    whose terms break like any sum in parentheses (a loss's expanded slope ran 175 pt off
    the page, fuzz_formulas --random-losses --latex seed 3)."""
    row = r"\frac{\partial l}{\partial p} = \frac{" + LONG + r"}{2 \left(p^{2} + 1\right)^{2}}"
    rows = break_rows(row, 40.0).split(r" \\ ")
    assert rows[0].startswith(r"\frac{\partial l}{\partial p} &= \frac{1}{2 \left(p^{2} + 1")
    assert len(rows) >= 2 and all(latex_em(r) <= 40.0 for r in rows)
    assert all(_balanced(r) for r in rows) and sum(r.count(TERM) for r in rows) == 14


def test_a_sum_deep_inside_calls_and_a_fraction_breaks():
    r"""tan(atan(long sum)/2): the sum sat inside a fraction inside two calls, where no cut
    was allowed (56 pt off the page, fuzz_formulas --random-losses seed 10). The fraction
    is written \frac{1}{2} atan(...), the calls lose their braces, and the cut closes both
    open parentheses with \right. (reopened on the next row with \left.)."""
    row = r"l = - \tan\left(\frac{\operatorname{atan}{\left(" + LONG + r" \right)}}{2} \right)"
    rows = break_rows(row, 40.0).split(r" \\ ")
    assert rows[0].startswith(r"l &= - \tan\left(\frac{1}{2} \operatorname{atan}\left(")
    assert rows[0].endswith(r"\right. \right.") and rows[1].startswith(r"&\quad \left. \left. + ")
    assert all(latex_em(r) <= 40.0 for r in rows) and all(_balanced(r) for r in rows)
    assert sum(r.count(TERM) for r in rows) == 14


def test_a_sign_after_an_operator_is_not_a_cut():
    r"""dA \odot - \frac{...}{...}: the minus is the fraction's sign. Taken for a cut, it left
    "dA \odot" alone on a row and the fraction 3.5 pt too wide on the next
    (fuzz_formulas --cnn --latex seed 166)."""
    from symgrad.render.line_breaks import _split_points

    for operator in (r"\odot", r"\cdot", r"\times", "=", "(", ","):
        row = rf"dZ = dA {operator} - \frac{{a}}{{3}} + b"
        cuts = _split_points(row)
        assert row.index(" - ") + 1 not in cuts, operator
        assert row.index(" + ") + 1 in cuts          # a binary + still is one


def test_a_fraction_that_fits_alone_but_not_after_its_prefix_unfolds():
    r"""dA \odot - \frac{(A)(B)}{D}: the fraction alone fit the page, so it was not unfolded,
    and with the prefix in front the row ran 46 pt off (fuzz_formulas --cnn --latex seed
    166). It is measured against what is left of its row."""
    a = r"\left(" + " + ".join([TERM] * 5) + r"\right)"
    b = r"\left(" + " + ".join([TERM] * 4) + r"\right)"
    fraction = r"\frac{" + a + " " + b + r"}{z^{2} + 1}"
    assert latex_em(fraction) < 38.5 < latex_em(r"dZ = dA \odot - " + fraction)
    rows = break_rows(r"dZ = dA \odot - " + fraction, 38.5).split(r" \\ ")
    assert rows[0].startswith(r"dZ &= dA \odot - \frac{1}{z^{2} + 1}")
    assert all(latex_em(r) <= 38.5 for r in rows) and all(_balanced(r) for r in rows)


def test_a_row_ended_far_back_leaves_no_overwide_rest():
    """A row ends at its shallowest cut, which can lie far back; the rest up to the cut
    being placed was then set as one row however wide (a focal loss's delta ran 1.4 pt off
    the page): rows are ended until the rest fits."""
    def log_sum(sign: str) -> str:
        return (r"\left(- \operatorname{log1p}\left(e^{- \left|{Z_2}\right|} \right) - "
                rf"\max\left(0, {sign}Z_2\right)\right)")
    math = (r"\text{simplified: } \frac{\partial l}{\partial Z_2} = p^{3} \left(1 - y\right) - "
            r"\frac{2 p \left(- p \left(y - 1\right) " + log_sum("") + r" - \frac{y "
            + log_sum("- ") + r"}{e^{Z_2} + 1}\right)}{e^{Z_2} + 1} - "
            r"\frac{y}{\left(e^{Z_2} + 1\right)^{3}}")
    rows = break_rows(math, 38.5).split(r" \\ ")
    column = latex_em(r"\text{simplified: } \frac{\partial l}{\partial Z_2} ") + 1.0
    assert len(rows) >= 3
    assert all(latex_em(r) + (column if k else 0.0) <= 38.5 for k, r in enumerate(rows))
    assert all(_balanced(r) for r in rows)
