"""Print the method × model conformance table (Markdown) for the README.

Every method (registered certifiers, classic pruning, coresets, quantization, the Pensia strong-LTH construction)
runs on class-based reference models (prunebound.conformance.reference_models): each cell works ("ok") or refuses
with a documented PruneboundError ("no", reason listed below the table); "BUG" marks a raw error.

    python examples/method_matrix.py            # all methods (Zhou 2019 takes ~20 s per model)
    python examples/method_matrix.py --fast     # skip the slow certifiers (zhou2019, subspace)
"""

import argparse

from prunebound.conformance import format_matrix, method_matrix, method_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="skip certify:zhou2019 and certify:subspace")
    args = ap.parse_args()
    methods = method_names()
    if args.fast:
        methods = [m for m in methods if m not in ("certify:zhou2019", "certify:subspace")]
    print(format_matrix(method_matrix(methods=methods)))


if __name__ == "__main__":
    main()
