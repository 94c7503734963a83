"""The ``prunebound`` command line.

Subcommands::

    prunebound demo [--out DIR]                           train a CNN on MNIST-1D and certify it (subspace)
    prunebound compress --arch A --data SPEC --out DIR [--method subspace|occam|zhou2019] [--prior-fraction a]
    prunebound quantize MODEL --bits 4 [--data SPEC] --out MODEL2
    prunebound train --arch mlp:40,64,10 --data SPEC --out MODEL     (--arch resnet20:classes=10,width=16, ...)
    prunebound certify MODEL --data SPEC [--method occam] [--delta 0.05] [--out CERT] [--param k=v ...]
    prunebound verify CERT --model MODEL [--data SPEC]
    prunebound info MODEL [--input-shape 3,32,32]             layers, size, FLOPs (also compacted), latency
    prunebound prune MODEL --method NAME --sparsity S [--data SPEC] --out MODEL2
    prunebound repro list | run NAME [--preset quick|full] [--out DIR] [--backend local|dask] | figures

``prunebound --threads N CMD ...`` (or ``CMD --threads N``) sets torch's thread count (compress: per grid point).

Data specs (see :func:`prunebound.data.resolve`): ``mnist1d:n=4000,seed=0``, ``digits``,
``teacher:d=20,width=64,n=1000,seed=0``, ``mnist:dir=PATH``, ``cifar10:dir=PATH`` (``,part=test`` for the test split).
Specs are limited to ``--max-n`` examples and ``--max-dim`` features (defaults 1,000,000 and 10,000), also when
they come from a certificate; raise the limits for data you trust.

Errors and exit codes: a user error (bad argument, file, spec, certificate, parameter) prints one line
``prunebound: error: ...`` naming the problem and the fix, and exits 2; an internal error prints one line
and exits 1 (``prunebound --debug ...`` shows the traceback); an interrupt exits 130.  ``verify`` exits 0
when the certificate is recomputed exactly, 1 when it differs or its kind cannot be checked.  Output paths
(``--out``) are checked before any work starts (symlinks and unwritable folders are refused) and written
atomically; nothing is written elsewhere.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from pathlib import Path

from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import InvalidParameterError, PruneboundError

__all__ = ["main", "build_parser"]




class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prunebound: error: ...`` (exit 2), no usage dump."""

    def error(self, message: str):  # noqa: D102
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


class _UsageError(Exception):
    pass


def _kv(items: list[str] | None) -> dict:
    out: dict = {}
    for it in items or []:
        if "=" not in it:
            raise InvalidParameterError(f"--param expects key=value (value in JSON), got {it!r}")
        k, v = it.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise InvalidParameterError(f"--param key {k!r} is not a parameter name")
        if k in out:
            raise InvalidParameterError(f"--param {k} is given twice")
        try:
            out[k] = json.loads(v, parse_constant=lambda c: float(c))
        except (json.JSONDecodeError, RecursionError):
            out[k] = v
    return out


def _check_params(fn, params: dict, what: str) -> None:
    """Refuse ``--param`` keys that ``fn`` does not take (instead of a TypeError deep inside)."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = {n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
    allowed -= {"sparsity", "seed", "delta"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidParameterError(f"{what} has no parameter(s) {unknown}; its --param keys are {sorted(allowed)}")


def _arch(spec: str):
    from prunebound.zoo import from_arch

    return from_arch(spec, seed=0)  # grammar and errors: prunebound.zoo.parse_arch


def _data(a, spec: str):
    from prunebound import data as D

    return D.resolve(spec, max_n=getattr(a, "max_n", None), max_dim=getattr(a, "max_dim", None))


def _save_model_atomic(module, out: str | os.PathLike, **save_kw) -> Path:
    """``save_model`` to a temp file in the destination folder, then an atomic rename (symlinks refused)."""
    from prunebound.files import check_output_path
    from prunebound.io import save_model

    p = check_output_path(out, what="--out")
    p.parent.mkdir(parents=True, exist_ok=True)
    save_model(module, p, **save_kw)  # atomic: temp file + rename in p's folder; a symlinked p is refused
    return p


def _check_out(path, *, is_dir: bool = False) -> None:
    from prunebound.files import check_writable

    if path:
        check_writable(path, what="--out", is_dir=is_dir)


def cmd_demo(a) -> int:
    from prunebound.demo import run_demo

    _check_out(a.out, is_dir=True)
    run_demo(Path(a.out), quick=a.quick, seed=a.seed)
    return 0


def cmd_train(a) -> int:
    from prunebound.train import evaluate, fit

    _check_out(a.out)
    m = _arch(a.arch)
    d = _data(a, a.data)
    test = _data(a, a.test) if a.test else None
    r = fit(m, d, epochs=a.epochs, lr=a.lr, seed=a.seed, optimizer=a.optimizer, quiet=False)
    _save_model_atomic(m, a.out)
    print(json.dumps({"train_error": r.train_error, "final_loss": r.final_loss,
                      "model": str(a.out), **({"test_error": evaluate(m, test).error} if test else {})},
                     indent=2))
    return 0


def cmd_certify(a) -> int:
    from prunebound.bounds import certify
    from prunebound.io import load_model

    path = a.model_opt or a.model
    if not path:
        raise InvalidParameterError("certify needs a model file (positional MODEL or --model)")
    if a.model and a.model_opt and a.model != a.model_opt:
        raise InvalidParameterError("give the model once: positional MODEL or --model, not two different files")
    _check_out(a.out)
    params = _kv(a.param)
    m = load_model(path, allow_import=a.allow_import)
    d = _data(a, a.data)
    cert = certify(m, d, method=a.method, delta=a.delta, seed=a.seed, **params)
    if a.out:
        cert.save(a.out)
    print(format_terms(cert))
    if a.out:
        print(f"certificate written to {a.out}")
    return 0


def format_terms(cert) -> str:
    """A short table of a certificate's terms (value, empirical, complexity and every named part)."""
    rows = [("bound", cert.value), ("empirical term", cert.empirical), ("complexity term", cert.complexity),
            ("delta", cert.delta), ("n", cert.n)]
    rows += [(f"  {k}", v) for k, v in sorted(cert.parts.items())]
    w = max(len(k) for k, _ in rows)
    lines = [f"{cert.kind}: with probability >= {1 - cert.delta:g}, risk <= {cert.value:.6f}"]
    if not getattr(cert, "verifiable", True):
        lines.insert(0, "UNVERIFIABLE: this bound rests on a quantity you declared (see the note); "
                        "`prunebound verify` cannot check it")
    for k, v in rows:
        lines.append(f"  {k:<{w}}  {v:.6g}" if isinstance(v, (int, float)) else f"  {k:<{w}}  {v}")
    return "\n".join(lines)


def cmd_verify(a) -> int:
    from prunebound.certificate import Certificate, verify
    from prunebound.io import load_model

    cert = Certificate.load(a.cert)
    spec = a.data or cert.data_spec
    if not spec:
        raise InvalidParameterError("the certificate records no data spec; pass --data SPEC")
    model = load_model(a.model, allow_import=a.allow_import)
    rep = verify(cert, model, _data(a, spec))
    if rep.ok:
        print(f"OK: {cert.summary()} recomputed exactly")
        return 0
    print("NOT CHECKABLE:" if not rep.checkable else "MISMATCH:")
    for s in rep.differences:
        print("  -", s)
    return 1


def cmd_info(a) -> int:
    from prunebound import network as N
    from prunebound.io import load_model

    m = load_model(a.model, allow_import=a.allow_import)
    net = N.Network.from_module(m)
    sp = N.sparsity(m)
    print(f"{a.model}: {len(net.layers)} weighted layers, {N.count_parameters(m)} parameters, "
          f"{N.count_nonzero(m)} nonzero, weight sparsity {sp.total:.4f}")
    for ly in net.layers:
        merged = "".join(f" then {m.rstrip('_0123456789')}>{a or '-'}" for m, a in ly.after_merge)
        print(f"  [{ly.index}] {ly.path:<12} {ly.kind:<7} {tuple(ly.weight.shape)!s:<18} "
              f"act={ly.activation or '-':<5} sparsity={sp.per_layer.get(ly.path, 0.0):.4f}{merged}")
    _print_footprint(m, net, a)
    return 0


def _input_shape(m, net, given: str | None) -> tuple[int, ...]:
    """Per-example input shape: ``--input-shape``, else the model's recorded ``input_shape`` (zoo models),
    else ``(in_features,)`` when the input feeds a Linear layer directly."""
    if given is not None:
        try:
            shape = tuple(int(v) for v in given.replace("x", ",").split(",") if v.strip())
        except ValueError:
            shape = ()
        if not shape or any(v <= 0 or v > 100_000 for v in shape) or len(shape) > 4:
            raise InvalidParameterError(f"--input-shape must be 1 to 4 positive integers like 3,32,32 (one "
                                        f"example, no batch dimension); got {given!r}")
        return shape
    rec = getattr(m, "input_shape", None)
    if rec:
        return tuple(int(v) for v in rec)
    g = net.graph
    first = [n for n in g.nodes if n.inputs == (g.input,)]
    if len(first) == 1 and first[0].kind == "linear":
        return (int(first[0].module.in_features),)
    raise InvalidParameterError("cannot infer the input shape of this model (its first layer is not Linear and "
                                "the checkpoint records no input shape); pass --input-shape, e.g. 3,32,32")


def _print_footprint(m, net, a) -> None:
    import torch

    from prunebound.errors import check_positive_int
    from prunebound.footprint import report

    shape = _input_shape(m, net, a.input_shape)
    repeats = check_positive_int("--repeats", a.repeats)
    x = torch.randn((a.batch, *shape), generator=torch.Generator().manual_seed(0))
    try:
        r = report(m, x, repeats=repeats, compact=True)
    except RuntimeError as e:  # a shape mismatch inside the model's forward
        raise InvalidParameterError(f"--input-shape {','.join(map(str, shape))} does not fit the model "
                                    f"({_one_line(e)[:200]})") from None
    enc = f"{r.bytes_encoded} encoded" if r.bytes_encoded is not None else f"not encodable ({r.encode_error})"
    print(f"footprint for input {tuple(shape)} (batch {a.batch}):")
    print(f"  parameters  {r.parameters} ({r.nonzero} non-zero; {r.compact_parameters} after compaction)")
    print(f"  bytes       {r.bytes_dense} dense, {r.bytes_sparse} sparse (COO), {enc}")
    print(f"  FLOPs       {r.flops_dense} dense, {r.flops_effective:.0f} effective (non-zeros), "
          f"{r.compact_flops} compacted (dead units removed)")
    print(f"  latency     {r.latency_ms:.3f} ms dense, {r.compact_latency_ms:.3f} ms compacted "
          f"(CPU, median of {repeats}; machine dependent)")


def cmd_prune(a) -> int:
    from prunebound import network as N
    from prunebound.io import load_model
    from prunebound.pruning import REGISTRY

    if a.method not in REGISTRY:
        raise InvalidParameterError(f"unknown pruning method {a.method!r}; known: {sorted(REGISTRY)}")
    params = _kv(a.param)
    _check_params(REGISTRY[a.method], params, f"pruning method {a.method!r}")
    _check_out(a.out)
    m = load_model(a.model, allow_import=a.allow_import)
    d = _data(a, a.data) if a.data else None
    rep = REGISTRY[a.method](m, d, sparsity=a.sparsity, seed=a.seed, **params)
    from prunebound.io import read_header

    ref = (read_header(a.model) or {}).get("reference", {})  # keep a factory reference for the pruned copy
    _save_model_atomic(rep.module, a.out, **({"factory": ref["target"], "kwargs": ref["kwargs"]}
                                             if ref.get("kind") == "import" else {}))
    print(f"{a.method}: sparsity {N.sparsity(rep.module).total:.4f}; written to {a.out}")
    return 0


def cmd_compress(a) -> int:
    from prunebound.compress import cli_compress

    return cli_compress(a)


def cmd_quantize(a) -> int:
    from prunebound.compress import cli_quantize

    return cli_quantize(a)


def cmd_repro(a) -> int:
    from prunebound import paper_repro as R

    if a.action == "list":
        for name in R.list_experiments():
            print(name)
        return 0
    if a.action == "figures":
        _check_out(a.out or "docs/figures", is_dir=True)
        R.make_figures(Path(a.out or "docs/figures"))
        return 0
    if not a.name:
        raise InvalidParameterError("repro run needs an experiment NAME (see `prunebound repro list`)")
    if a.name not in R.list_experiments():
        raise InvalidParameterError(f"unknown experiment {a.name!r}; known: {R.list_experiments()}")
    _check_out(a.out or f"out/{a.name}", is_dir=True)
    res = R.run_experiment(a.name, preset=a.preset, out_dir=Path(a.out or f"out/{a.name}"), backend=a.backend,
                           scheduler=a.scheduler, n_jobs=a.jobs)
    print(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in res.items()}
                     if isinstance(res, dict) else str(res), indent=2, default=str))
    return 0


def _allow_import(s) -> None:
    s.add_argument("--allow-import", action="store_true",
                   help="let a checkpoint that names a factory 'package.module:function' import it (runs code)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="prunebound", description="Certified bounds, coresets and lottery tickets "
                "for pruned and quantized neural networks.",
                epilog="--debug (anywhere on the line) shows the traceback of an internal error.")
    p.add_argument("--threads", type=int, default=None, help="torch threads (compress: per grid point)")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("demo", help="train a CNN on MNIST-1D and certify it with the tightest method")
    s.add_argument("--out", default="demo_out")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (tests)")
    s.add_argument("--threads", type=int, default=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_demo)

    from prunebound.compress import add_compress_arguments, add_quantize_arguments

    s = sub.add_parser("compress", help="grid of compressions -> one certificate (union over the grid paid)")
    add_compress_arguments(s)
    s.add_argument("--threads", type=int, default=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_compress)

    s = sub.add_parser("quantize", help="k-means weight sharing of a saved model (fp16 biases)")
    add_quantize_arguments(s)
    s.set_defaults(fn=cmd_quantize)

    s = sub.add_parser("train", help="train a zoo model on a data spec")
    s.add_argument("--arch", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--test", default=None, help="data spec to report test error on")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--optimizer", default="adam")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    _limits(s)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("certify", help="compute a certified generalization bound")
    s.add_argument("model", nargs="?")
    s.add_argument("--model", dest="model_opt", default=None, help="model file (alternative to MODEL)")
    s.add_argument("--data", required=True)
    s.add_argument("--method", default="occam")
    s.add_argument("--delta", type=float, default=DEFAULT_DELTA)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append", help="extra method parameter key=value (JSON value)")
    s.add_argument("--out", default=None)
    _limits(s)
    _allow_import(s)
    s.set_defaults(fn=cmd_certify)

    s = sub.add_parser("verify", help="recompute a certificate and report differences")
    s.add_argument("cert")
    s.add_argument("--model", required=True)
    s.add_argument("--data", default=None, help="data spec (default: the one recorded in the certificate)")
    _limits(s)
    _allow_import(s)
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("info", help="describe a saved model: layers, sizes, FLOPs (dense/effective/compacted), "
                                    "latency")
    s.add_argument("model")
    s.add_argument("--input-shape", dest="input_shape", default=None,
                   help="one example's shape, e.g. 3,32,32 (default: recorded in the checkpoint, or the first "
                        "Linear layer's in_features)")
    s.add_argument("--batch", type=int, default=1, help="batch size for the latency measurement (default 1)")
    s.add_argument("--repeats", type=int, default=10, help="timed forward passes (default 10)")
    _allow_import(s)
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("prune", help="prune a saved model with a classic method")
    s.add_argument("model")
    s.add_argument("--method", required=True)
    s.add_argument("--sparsity", type=float, required=True)
    s.add_argument("--data", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append")
    s.add_argument("--out", required=True)
    _limits(s)
    _allow_import(s)
    s.set_defaults(fn=cmd_prune)

    s = sub.add_parser("repro", help="reproducible paper experiments")
    s.add_argument("action", choices=["list", "run", "figures"])
    s.add_argument("name", nargs="?")
    s.add_argument("--preset", default="quick", choices=["quick", "full"])
    s.add_argument("--out", default=None)
    s.add_argument("--backend", default="local", choices=["local", "dask"])
    s.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    s.add_argument("--jobs", type=int, default=1)
    s.set_defaults(fn=cmd_repro)
    return p


def _limits(s: argparse.ArgumentParser) -> None:
    s.add_argument("--max-n", dest="max_n", type=int, default=None,
                   help="largest number of examples a data spec may ask for (default 1000000)")
    s.add_argument("--max-dim", dest="max_dim", type=int, default=None,
                   help="largest input dimension / width / classes a data spec may ask for (default 10000)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _user_oserror(e: OSError) -> str:
    name = f" {e.filename}" if getattr(e, "filename", None) else ""
    return f"cannot access{name}: {e.strerror or e}; check the path and its permissions"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 verification failed or internal error, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [x for x in argv if x != "--debug"]
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(f"prunebound: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help / --version
        return int(e.code or 0) if isinstance(e.code, int) else 0
    try:
        if args.threads is not None and args.cmd != "compress":
            import torch

            from prunebound.errors import check_positive_int

            torch.set_num_threads(check_positive_int("--threads", args.threads))
        return int(args.fn(args) or 0)
    except PruneboundError as e:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"prunebound: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        print(f"prunebound: error: {_one_line(_user_oserror(e))}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:  # a malformed JSON field inside a user's file
        print(f"prunebound: error: malformed JSON in an input file ({_one_line(e)}); re-create the file",
              file=sys.stderr)
        return 2
    except MemoryError:
        print("prunebound: error: out of memory; use smaller data (n, d) or a smaller model", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunebound: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 -- an internal error: one line, the traceback with --debug
        if debug:
            import traceback

            traceback.print_exc()
        print(f"prunebound: internal error: {type(e).__name__}: {_one_line(e)[:500]}"
              f"{'' if debug else ' (rerun with --debug for the traceback, and please report it)'}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
