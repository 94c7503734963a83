"""The ``prunebound`` command line.

Subcommands::

    prunebound demo [--out DIR]                           train a CNN on MNIST-1D and certify it (subspace)
    prunebound compress --arch A --data SPEC --out DIR [--method subspace|occam|zhou2019] [--prior-fraction a]
    prunebound quantize MODEL --bits 4 [--data SPEC] --out MODEL2
    prunebound train --arch mlp:40,64,10 --data SPEC --out MODEL
    prunebound certify MODEL --data SPEC [--method occam] [--delta 0.05] [--out CERT] [--param k=v ...]
    prunebound verify CERT --model MODEL [--data SPEC]
    prunebound info MODEL
    prunebound prune MODEL --method NAME --sparsity S [--data SPEC] --out MODEL2
    prunebound repro list | run NAME [--preset quick|full] [--out DIR] [--backend local|dask] | figures

``prunebound --threads N CMD ...`` (or ``CMD --threads N``) sets torch's thread count (compress: per grid point).

Data specs (see :func:`prunebound.data.resolve`): ``mnist1d:n=4000,seed=0``, ``digits``,
``teacher:d=20,width=64,n=1000,seed=0``, ``mnist:dir=PATH``, ``cifar10:dir=PATH`` (``,part=test`` for the test split).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prunebound.errors import PruneboundError

__all__ = ["main", "build_parser"]


def _kv(items: list[str] | None) -> dict:
    out: dict = {}
    for it in items or []:
        if "=" not in it:
            raise PruneboundError(f"--param expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _arch(spec: str):
    from prunebound import network as N

    name, _, rest = spec.partition(":")
    if name == "mlp":
        dims = [int(s) for s in rest.split(",")]
        if len(dims) < 2:
            raise PruneboundError(f"--arch mlp needs at least d_in,d_out; got {spec!r}")
        return N.mlp(dims[0], dims[1:-1], dims[-1], seed=0)
    if name == "lenet300_100":
        return N.lenet300_100(*(int(s) for s in rest.split(",") if s))
    if name == "lenet5":
        return N.lenet5()
    if name == "conv1d_small":
        return N.conv1d_small()
    raise PruneboundError(f"unknown --arch {spec!r}; use mlp:D_IN,W1,...,D_OUT, lenet300_100, lenet5, conv1d_small")


def cmd_demo(a) -> int:
    from prunebound.demo import run_demo

    run_demo(Path(a.out), quick=a.quick, seed=a.seed)
    return 0


def cmd_train(a) -> int:
    from prunebound import data as D
    from prunebound.io import save_model
    from prunebound.train import evaluate, fit

    d = D.resolve(a.data)
    m = _arch(a.arch)
    r = fit(m, d, epochs=a.epochs, lr=a.lr, seed=a.seed, optimizer=a.optimizer, quiet=False)
    save_model(m, a.out)
    print(json.dumps({"train_error": r.train_error, "final_loss": r.final_loss,
                      "model": str(a.out), **({"test_error": evaluate(m, D.resolve(a.test)).error} if a.test else {})},
                     indent=2))
    return 0


def cmd_certify(a) -> int:
    from prunebound import data as D
    from prunebound.bounds import certify
    from prunebound.io import load_model

    path = a.model_opt or a.model
    if not path:
        raise PruneboundError("certify needs a model file (positional MODEL or --model)")
    m = load_model(path)
    d = D.resolve(a.data)
    cert = certify(m, d, method=a.method, delta=a.delta, seed=a.seed, **_kv(a.param))
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
    for k, v in rows:
        lines.append(f"  {k:<{w}}  {v:.6g}" if isinstance(v, (int, float)) else f"  {k:<{w}}  {v}")
    return "\n".join(lines)


def cmd_verify(a) -> int:
    from prunebound import data as D
    from prunebound.certificate import Certificate, verify
    from prunebound.io import load_model

    cert = Certificate.load(a.cert)
    spec = a.data or cert.data_spec
    if not spec:
        raise PruneboundError("the certificate records no data spec; pass --data")
    rep = verify(cert, load_model(a.model), D.resolve(spec))
    if rep.ok:
        print(f"OK: {cert.summary()} recomputed exactly")
        return 0
    print("MISMATCH:")
    for s in rep.differences:
        print("  -", s)
    return 1


def cmd_info(a) -> int:
    from prunebound import network as N
    from prunebound.io import load_model

    m = load_model(a.model)
    net = N.Network.from_module(m)
    sp = N.sparsity(m)
    print(f"{a.model}: {len(net.layers)} weighted layers, {N.count_parameters(m)} parameters, "
          f"{N.count_nonzero(m)} nonzero, weight sparsity {sp.total:.4f}")
    for ly in net.layers:
        print(f"  [{ly.index}] {ly.path:<12} {ly.kind:<7} {tuple(ly.weight.shape)!s:<18} "
              f"act={ly.activation or '-':<5} sparsity={sp.per_layer.get(ly.path, 0.0):.4f}")
    return 0


def cmd_prune(a) -> int:
    from prunebound import data as D
    from prunebound import network as N
    from prunebound.io import load_model, save_model
    from prunebound.pruning import REGISTRY

    if a.method not in REGISTRY:
        raise PruneboundError(f"unknown pruning method {a.method!r}; known: {sorted(REGISTRY)}")
    m = load_model(a.model)
    d = D.resolve(a.data) if a.data else None
    rep = REGISTRY[a.method](m, d, sparsity=a.sparsity, seed=a.seed, **_kv(a.param))
    save_model(rep.module, a.out)
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
        R.make_figures(Path(a.out or "docs/figures"))
        return 0
    if not a.name:
        raise PruneboundError("repro run needs an experiment NAME (see `prunebound repro list`)")
    res = R.run_experiment(a.name, preset=a.preset, out_dir=Path(a.out or f"out/{a.name}"), backend=a.backend,
                           scheduler=a.scheduler, n_jobs=a.jobs)
    print(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in res.items()}
                     if isinstance(res, dict) else str(res), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunebound", description="Certified bounds, coresets and lottery tickets "
                                "for pruned and quantized neural networks.")
    p.add_argument("--threads", type=int, default=None, help="torch threads (compress: per grid point)")
    sub = p.add_subparsers(dest="cmd", required=True)

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
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("certify", help="compute a certified generalization bound")
    s.add_argument("model", nargs="?")
    s.add_argument("--model", dest="model_opt", default=None, help="model file (alternative to MODEL)")
    s.add_argument("--data", required=True)
    s.add_argument("--method", default="occam")
    s.add_argument("--delta", type=float, default=0.05)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append", help="extra method parameter key=value (JSON value)")
    s.add_argument("--out", default=None)
    s.set_defaults(fn=cmd_certify)

    s = sub.add_parser("verify", help="recompute a certificate and report differences")
    s.add_argument("cert")
    s.add_argument("--model", required=True)
    s.add_argument("--data", default=None, help="data spec (default: the one recorded in the certificate)")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("info", help="describe a saved model")
    s.add_argument("model")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("prune", help="prune a saved model with a classic method")
    s.add_argument("model")
    s.add_argument("--method", required=True)
    s.add_argument("--sparsity", type=float, required=True)
    s.add_argument("--data", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append")
    s.add_argument("--out", required=True)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None and args.cmd != "compress":
            import torch

            from prunebound.errors import check_positive_int

            torch.set_num_threads(check_positive_int("--threads", args.threads))
        return int(args.fn(args) or 0)
    except PruneboundError as e:
        print(f"prunebound: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
