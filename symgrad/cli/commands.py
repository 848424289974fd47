"""The subcommands of ``symgrad``: derive, check, train, export (and demo, in `demo`).

Each command validates all of its input (SPEC, loss, data, weights) before it
writes anything, and every output file appears whole or not at all (written
to a temporary file in the same folder, then renamed).
"""

from __future__ import annotations

import argparse
import keyword
import sys
import tempfile
from pathlib import Path

import numpy as np

from symgrad.cli.spec import SpecError, load_spec
from symgrad.codegen.atomic import write_user_file

__all__ = ["derive", "check", "train", "export"]


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with the umask's mode (as ``Model.save``)."""
    write_user_file(path, lambda handle: handle.write(data), "cli")


def _output_path(path: str, suffixes: tuple[str, ...], what: str) -> Path:
    """A writable output path with one of ``suffixes``, checked before any work."""
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise SpecError(f"{what} {path!r} must end in {' or '.join(suffixes)}")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise SpecError(f"{what} {path!r}: folder {str(folder)!r} does not exist")
    return out


def compile_spec(args: argparse.Namespace):
    """The compiled `Model` for ``args.spec`` and ``args.loss`` (the file's loss if unset)."""
    import symgrad as sg
    from symgrad.definition.losses import resolve_loss
    from symgrad.runtime.optimizers import get_optimizer

    net, file_loss = load_spec(args.spec)
    loss = args.loss if args.loss is not None else file_loss
    if loss is None:
        raise SpecError("no loss: pass --loss NAME (e.g. bce, cross_entropy, mse) or define "
                        "`loss` in the SPEC file")
    entry = resolve_loss(loss)
    optimizer = None
    if getattr(args, "optimizer", None) is not None:
        optimizer = type(get_optimizer(args.optimizer))(lr=args.lr)
    return sg.compile(net, loss=entry, optimizer=optimizer, dtype=args.dtype,
                      seed=getattr(args, "seed", 0))


def derive(args: argparse.Namespace) -> int:
    """Print or write the step-by-step derivation."""
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = suffix if suffix in ("tex", "pdf", "md", "txt") else "txt"
    if fmt == "pdf" and not args.output:
        raise SpecError("--format pdf needs -o FILE.pdf")
    out = _output_path(args.output, (), "-o") if args.output else None
    doc = compile_spec(args).derivation
    if fmt == "pdf":
        with tempfile.TemporaryDirectory() as tmp:   # pdflatex's aux/log files stay out
            pdf = doc.to_tex(Path(tmp) / "derivation.tex", compile_pdf=True)
            _write_bytes(out, pdf.read_bytes())
        print(f"derivation written to {out}")
        return 0
    text = {"tex": doc.latex, "md": doc.markdown, "txt": doc.text}[fmt]()
    if fmt == "tex" and out is not None:
        doc.to_tex(out)
    elif out is not None:
        _write_bytes(out, (text + "\n").encode("utf-8"))
    else:
        print(text)
        return 0
    print(f"derivation written to {out}")
    return 0


def check(args: argparse.Namespace) -> int:
    """Prove every identity and check the gradients; exit status 1 on any failure."""
    from symgrad.prove.check import check as run_check
    from symgrad.prove.identity import ProofError

    model = compile_spec(args)
    try:
        report = run_check(model, seed=args.seed)
    except ProofError as err:
        print(f"symgrad check: FAILED: {err}", file=sys.stderr)
        return 1
    print(report)
    print(f"all {len(report)} checks passed")
    return 0


def train(args: argparse.Namespace) -> int:
    """Train on a data file; write the weights, a history plot and print the final metrics."""
    from symgrad.cli.data import load_data
    from symgrad.codegen.layout import is_classification

    out = _output_path(args.output, (".npz",), "-o")
    plot = out.with_name(out.stem + "_history.png")
    X, y, _ = load_data(args.data, args.target)
    model = compile_spec(args)
    if X.ndim == 4:   # images from an .npz, NCHW as the Python API takes them
        if not model.plan.features or X.shape[1:] != tuple(model.plan.input_shape):
            want = (f"images {tuple(model.plan.input_shape)} (C, H, W)" if model.plan.features
                    else f"rows of {model.plan.input_dim} features (no Input(C, H, W) layer)")
            raise SpecError(f"{args.data}: the data holds images {X.shape[1:]} (C, H, W) but "
                            f"the network's first layer {model.plan.first_layer} reads {want}")
        X = X.reshape(X.shape[0], -1)
    if X.shape[1] != model.plan.input_dim:
        what = (f"first layer {model.plan.first_layer} reads images {model.plan.input_shape} "
                f"(C, H, W), i.e. {model.plan.input_dim} columns in C order"
                if model.plan.features else
                f"first Dense layer expects {model.plan.input_dim}")
        raise SpecError(f"{args.data}: the data has {X.shape[1]} feature columns but the "
                        f"network's {what}")
    if model.plan.features:   # CSV rows hold each image flattened in C order (NCHW)
        X = X.reshape(X.shape[0], *model.plan.input_shape)
    if model.plan.output.reduction == "rows" and np.all(y == np.round(y)):
        y = y.astype(np.int64)   # class labels read from a CSV arrive as floats
    if not 0.0 <= args.val_split < 1.0:
        raise SpecError(f"--val-split must be in [0, 1), got {args.val_split}")
    n_val = int(round(len(X) * args.val_split))
    if n_val and len(X) - n_val < 1:
        raise SpecError(f"--val-split {args.val_split} leaves no training rows")
    rng = np.random.default_rng(args.seed)
    rows = rng.permutation(len(X))
    val, fit_rows = rows[:n_val], rows[n_val:]
    validation = (X[val], y[val]) if n_val else None
    verbose = 0 if args.quiet else (1 if sys.stderr.isatty() else 2)
    history = model.fit(X[fit_rows], y[fit_rows], epochs=args.epochs,
                        batch_size=args.batch_size, seed=args.seed, verbose=verbose,
                        validation_data=validation)
    model.save(out)
    history.plot(plot)
    scores = model.evaluate(X[fit_rows], y[fit_rows])
    parts = [f"{k} {v:.4f}" for k, v in scores.items()]
    if validation is not None:
        parts += [f"val_{k} {v:.4f}" for k, v in model.evaluate(*validation).items()]
    kind = "classification" if is_classification(model.plan) else "regression"
    print(f"trained {len(history.epochs)} epochs ({kind}, {history.stop_reason}): "
          + ", ".join(parts))
    print(f"weights written to {out}\nhistory plot written to {plot}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write the standalone trainer module for SPEC (weights checked against it)."""
    out = _output_path(args.output, (".py",), "-o")
    model = compile_spec(args)
    model.load(args.weights)   # names and shapes must fit before anything is written
    model.export(str(out))
    name = out.stem
    if name.isidentifier() and not keyword.iskeyword(name):
        load = f"    import {name}\n"
    else:   # 'bad-name' or 'class' cannot follow `import`: load the file by its path
        name = "trainer"
        load = ("    import importlib.util\n"
                f"    spec = importlib.util.spec_from_file_location('trainer', {str(out)!r})\n"
                "    trainer = importlib.util.module_from_spec(spec)\n"
                "    spec.loader.exec_module(trainer)\n")
    print(f"trainer written to {out}; use it with:\n{load}"
          f"    {name}.load_weights({str(args.weights)!r})\n    P = {name}.predict(X)")
    return 0
