"""The ``symgrad`` command line (also ``python -m symgrad``).

Subcommands: ``derive`` (the derivation as text, Markdown, LaTeX or PDF),
``check`` (proofs and gradient checks; exit status 1 on failure), ``train``
(a CSV or .npz file -> weights, history plot, metrics), ``export`` (a
standalone numpy + numba trainer) and ``demo`` (the lecture examples).
Bad input (SPEC, loss, data, weights, output path) ends with a one-line
message naming the problem, exit status 1, and no file written.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]

_SPEC_HELP = ('network: a one-line description such as "Dense(2,16) ReLU Dense(16,1) Sigmoid" '
              "(Dense(in,out) and any registered activation, parsed without eval), or a .py "
              "file that defines `net` (and optionally `loss`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help=_SPEC_HELP)
    p.add_argument("--loss", default=None,
                   help="registered loss name: mse, mae, bce, cross_entropy, huber, ... "
                        "(default: the SPEC file's `loss`)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="symgrad", description="symgrad: SymPy derives, LaTeX explains, Numba trains.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("derive", help="print or write the step-by-step derivation",
                       description="Derive the network's gradients and print the derivation.")
    _model_args(p)
    p.add_argument("--format", choices=("txt", "md", "tex", "pdf"), default=None,
                   help="output format (default: from -o's suffix, else txt)")
    p.add_argument("-o", "--output", default=None, help="write to FILE instead of stdout")

    p = sub.add_parser("check", help="prove every identity and check the gradients",
                       description="Proof report; exit status 1 if any check fails.")
    _model_args(p)

    p = sub.add_parser("train", help="train on a CSV or .npz file and save the weights",
                       description="Train SPEC on a data file; write weights (.npz), a "
                                   "history plot (<output>_history.png) and print metrics.")
    _model_args(p)
    p.add_argument("--data", required=True,
                   help="a .csv (header row; numbers; images flattened in C order) or .npz "
                        "(arrays X and y; X as rows, or images (n, C, H, W)) file")
    p.add_argument("--target", default=None,
                   help="target column of the CSV (default: the last) or array of the .npz "
                        "(default: y)")
    p.add_argument("--epochs", type=_positive_int, default=20)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--lr", type=_positive_float, default=0.01, help="learning rate")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam")
    p.add_argument("--val-split", type=float, default=0.0,
                   help="fraction of rows held out for validation metrics (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("-o", "--output", required=True, help="weights file to write (.npz)")

    p = sub.add_parser("export", help="write a standalone numpy + numba trainer module",
                       description="Write SPEC's kernels as a module that needs only numpy "
                                   "and numba; the weights are checked against SPEC.")
    _model_args(p)
    p.add_argument("--weights", required=True, help="weights file from `symgrad train` (.npz)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam")
    p.add_argument("--lr", type=_positive_float, default=0.01,
                   help="learning rate baked in as HYPER_DEFAULT")
    p.add_argument("-o", "--output", required=True, help="module file to write (.py)")

    p = sub.add_parser("demo", help="derive, print, prove and train the lecture examples",
                       description="The lecture examples: a neuron and a small network.")
    from symgrad.cli.demo import add_arguments  # the demo owns its options

    add_arguments(p, epochs_type=_positive_int)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m symgrad`` and the ``symgrad`` script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from symgrad.cli.demo import run_demo

            run_demo(args.out, args.epochs)
            return 0
        from symgrad.cli import commands

        return getattr(commands, args.command)(args)
    except (ValueError, OSError, KeyError, RuntimeError, ArithmeticError) as err:
        # User input problems (every symgrad error names what is wrong): one line, status 1.
        message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
        message = message.removeprefix(f"symgrad {args.command}: ")
        print(f"symgrad {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":   # pragma: no cover
    sys.exit(main())
