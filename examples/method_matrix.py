"""Print the method × model conformance tables (Markdown) for the README.

Every method (registered certifiers, classic pruning, coresets, quantization, the Pensia strong-LTH construction,
save/load) runs on class-based reference models (prunebound.conformance.reference_models) or, with --zoo, on the
model zoo's architectures at small widths (prunebound.conformance.zoo_models): each cell works or refuses with a
documented PruneboundError naming what the method assumes; "BUG" marks a raw error or a changed function.

    python examples/method_matrix.py              # all methods (Zhou 2019 takes ~20 s per model)
    python examples/method_matrix.py --fast       # skip the slow certifiers (zhou2019, subspace)
    python examples/method_matrix.py --zoo --fast # the zoo table of the README (works / refuses: <assumption>)
"""

import argparse

from prunebound.conformance import (
    SLOW_METHODS,
    format_matrix,
    format_zoo_table,
    method_matrix,
    method_names,
    zoo_models,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="skip " + " and ".join(SLOW_METHODS))
    ap.add_argument("--zoo", action="store_true", help="the zoo architectures instead of the class-based models")
    args = ap.parse_args()
    methods = method_names()
    if args.fast:
        methods = [m for m in methods if m not in SLOW_METHODS]
    if args.zoo:
        print(format_zoo_table(method_matrix(zoo_models(), methods=methods, n=32)))
    else:
        print(format_matrix(method_matrix(methods=methods)))


if __name__ == "__main__":
    main()
