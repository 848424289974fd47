"""Calls from a model's driver into a shared kernel through a symbol, not a copy.

Numba links the LLVM module of every njit function a function calls into the
caller's own module, then optimises and emits the whole again. A model's epoch
driver therefore re-optimised and re-emitted every activation, output and bias
kernel it calls: in a 3-layer MLP they were 70 % of the driver's module and
0.7 s of its first compile, paid again by every driver that uses them.

Here a shared kernel is compiled once, for the argument types its own module
declares in ``LINK`` (its on-disk cache serves every later process), its entry
point is registered under a stable symbol with ``llvmlite.binding.add_symbol``
(the way the GEMM helpers reach OpenBLAS), and the driver calls it through an
intrinsic that only declares that symbol. The driver's module holds one call
instruction per use. Its cached machine code stays valid in a new process
because the driver module links its kernels when it is imported, before any of
its functions is compiled or loaded; the symbol names come from the kernel
modules' content-hash names, so a changed kernel is a new symbol.

The text between the markers is written into the GEMM helper module every
driver imports (generated modules import only numpy, numba and llvmlite).
"""

# ---- begin linked calls ----
import llvmlite.binding as _ln_llb
from numba import types as _ln_types
from numba.core import cgutils as _ln_cgutils
from numba.core.errors import TypingError as _ln_TypingError
from numba.extending import intrinsic as _ln_intrinsic


def _ln_argtype(token, dtype):
    """A ``LINK`` token as a Numba type: ``A<n>`` a C-contiguous n-d array of the
    module's dtype, ``F<n>`` / ``I<n>`` of float64 / int64, ``b`` a bool, ``i`` an int64.
    A lower-case array letter (``a2``) marks an array the kernel only reads: there a
    read-only array (a memory-mapped input) is passed as it is."""
    if token == "b":
        return _ln_types.boolean
    if token == "i":
        return _ln_types.int64
    base = {"A": dtype, "F": _ln_types.float64, "I": _ln_types.int64}[token[0].upper()]
    return _ln_types.Array(base, int(token[1:]), "C")


def _ln_passes(got, want, read_only_ok):
    """True if a value of type ``got`` is passed unchanged where ``want`` is declared: the
    same type, or a read-only array where the kernel only reads (same machine value)."""
    if got == want:
        return True
    return (read_only_ok and isinstance(got, _ln_types.Array) and not got.mutable
            and got.copy(readonly=False) == want)


def linked(module, name, dtype, lazy=False):
    """``module.<name>`` compiled for ``module.LINK[name]``, as an njit-callable
    intrinsic that calls it through a registered symbol (``.kernel`` is the dispatcher).

    With ``lazy`` the kernel is compiled (or loaded from its cache) and its symbol
    registered only when a caller is compiled, or when ``.ensure()`` is called: a
    caller loaded from Numba's cache skips typing, so whoever calls it must call
    ``.ensure()`` first (the split epoch's kernels: `_ensure_split`)."""
    kernel = getattr(module, name)
    tokens = module.LINK[name].split()
    argtypes = tuple(_ln_argtype(token, dtype) for token in tokens)
    reads = tuple(token[0].islower() and token not in ("b", "i") for token in tokens)
    symbol = f"{module.__name__}.{name}.{dtype}"   # the image-layer module serves both dtypes
    linked_sig = []

    def ensure():
        """Compile (or load) the kernel and register its symbol, once; its signature."""
        if not linked_sig:
            kernel.compile(argtypes)
            result = kernel.overloads[argtypes]
            _ln_llb.add_symbol(symbol, result.library.get_pointer_to_function(
                result.fndesc.llvm_func_name))
            linked_sig.append(result.signature)
        return linked_sig[0]

    if not lazy:
        ensure()

    @_ln_intrinsic
    def call(typingctx, *args):
        sig = ensure()
        if len(args) != len(sig.args) or any(
                not _ln_passes(got, want, ro) and typingctx.can_convert(got, want) is None
                for got, want, ro in zip(args, sig.args, reads, strict=True)):
            raise _ln_TypingError(f"{symbol} is linked for {sig.args}, called with {args}")

        def codegen(context, builder, signature, values):
            given = _ln_cgutils.unpack_tuple(builder, values[0], len(args))
            cast = [value if _ln_passes(got, want, ro) else
                    context.cast(builder, value, got, want)
                    for value, got, want, ro in zip(given, args, sig.args, reads, strict=True)]
            fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
            fn = _ln_cgutils.get_or_insert_function(builder.module, fnty, symbol)
            status, out = context.call_conv.call_function(
                builder, fn, sig.return_type, sig.args, cast)
            with _ln_cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return out

        return sig.return_type(_ln_types.StarArgTuple.from_types(args)), codegen

    call.kernel = kernel
    call.ensure = ensure
    return call
# ---- end linked calls ----
