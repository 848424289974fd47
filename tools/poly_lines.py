"""The kernel file's way of writing a polynomial: one Horner chain, or two for long ones.

A single Horner chain is a chain of dependent FMAs: a fused loop around a long one is
bound by its latency (AVX2, 16 registers). From 10 coefficients on, the kernels evaluate
c1.. and the high half as two independent chains and add c0 last, by one FMA, so the
result is rounded much as Horner's own (an even/odd split was as fast but lost 0.7 ulp on
erf, whose series alternates).

>>> print("\\n".join(two_chain_lines("p", "z", ["1.0", "2.0", "3.0"])))
p = 3.0
p = p * z + 2.0
p = p * z + 1.0
"""

from __future__ import annotations

TWO_CHAINS_FROM = 10


def _power_lines(x: str, k: int) -> tuple[list[str], str]:
    """Lines computing x^k by squaring, and the name holding it."""
    lines, have, p = [], {1: x}, 1
    while 2 * p <= k:
        lines.append(f"{x}{2 * p} = {have[p]} * {have[p]}")
        have[2 * p] = f"{x}{2 * p}"
        p *= 2
    rest, factors = k - p, [have[p]]
    for b in sorted(have, reverse=True):
        if b <= rest:
            factors.append(have[b])
            rest -= b
    if len(factors) == 1:
        return lines, factors[0]
    lines.append(f"{x}{k} = {' * '.join(factors)}")
    return lines, f"{x}{k}"


def two_chain_lines(var: str, x: str, coefs: list[str]) -> list[str]:
    """Source lines that leave sum(coefs[i] * x**i) in ``var`` (coefs lowest degree first)."""
    if len(coefs) < TWO_CHAINS_FROM:
        return [f"{var} = {coefs[-1]}"] + [f"{var} = {var} * {x} + {c}" for c in coefs[-2::-1]]
    k = (len(coefs) + 1) // 2
    lines = [f"# two Horner chains (c1.. and c{k}..): half the latency of one; c0 is added",
             "# last, by one FMA, so the result is rounded much as Horner's own"]
    for name, part in ((f"{var}_high", coefs[k:]), (f"{var}_low", coefs[1:k])):
        lines.append(f"{name} = {part[-1]}")
        lines += [f"{name} = {name} * {x} + {c}" for c in part[-2::-1]]
    power, xk = _power_lines(x, k - 1)
    return lines + power + [f"{var} = ({var}_high * {xk} + {var}_low) * {x} + {coefs[0]}"]
