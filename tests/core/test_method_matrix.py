"""Method × model conformance: every cell works or refuses with a documented PruneboundError — never a raw error.

Also pins the cells the theorems decide: parameter-only methods work on every reference model they can code;
chain / bias-free / non-negativity methods refuse models that break their assumption, naming it.
"""

import pytest
import torch

from prunebound.conformance import (
    format_matrix,
    format_zoo_table,
    method_matrix,
    method_names,
    reference_models,
    zoo_models,
)
from prunebound.errors import AssumptionError

MODELS = {r.name: r for r in reference_models()}
FAST = [m for m in method_names() if m not in ("certify:zhou2019", "certify:subspace")]
#: models without parameters outside weighted layers and without BatchNorm (quantize works in place)
PARAM_ONLY = ["certify:occam", "certify:pac_bayes_gaussian", "pruning:random", "pruning:magnitude",
              "pruning:lottery", "pruning:snip", "pruning:rigl", "coresets:magnitude", "coresets:magnitude_global",
              "quantize"]


@pytest.fixture(scope="module")
def matrix():
    names = ["functional_mlp", "residual_mlp", "resblock_cnn", "dense_cat", "depthwise_ln_gelu", "prepruned_mlp",
             "tied_mlp", "float64_mlp", "sequential_subclass_residual", "bias_free_mlp"]
    return {(c.method, c.model): c for c in method_matrix([MODELS[n] for n in names], FAST, n=32)}


@pytest.mark.slow
def test_no_cell_raises_a_raw_error(matrix):
    bugs = [f"{c.method} on {c.model}: {c.reason}" for c in matrix.values() if c.status == "BUG"]
    assert not bugs, "\n".join(bugs)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["functional_mlp", "residual_mlp", "dense_cat", "prepruned_mlp", "tied_mlp",
                                   "float64_mlp", "sequential_subclass_residual"])
def test_parameter_only_methods_accept_every_traceable_model(matrix, model):
    refused = [f"{m}: {matrix[(m, model)].reason}" for m in PARAM_ONLY if matrix[(m, model)].status != "works"]
    assert not refused, "\n".join(refused)


@pytest.mark.slow
@pytest.mark.parametrize("method, model, needle", [
    ("certify:arora2018", "residual_mlp", "add"),
    ("certify:arora2018", "tied_mlp", "weight tying"),
    ("certify:arora2018", "sequential_subclass_residual", "add"),
    ("certify:spectral_bartlett2017", "dense_cat", "cat"),
    ("strong_lth:pensia", "functional_mlp", "bias"),
    ("strong_lth:pensia", "residual_mlp", "add"),
    ("pruning:apoz", "residual_mlp", "add"),
    ("pruning:neuron_merging", "dense_cat", "cat"),
    ("certify:occam", "depthwise_ln_gelu", "norm.weight"),
])
def test_structural_methods_refuse_naming_the_assumption(matrix, method, model, needle):
    c = matrix[(method, model)]
    assert c.status == "refuses" and c.error == "AssumptionError", c
    assert "assumes" in c.reason and needle in c.reason


@pytest.mark.slow
def test_chain_methods_work_where_the_assumption_holds(matrix):
    for model in ("functional_mlp", "float64_mlp", "prepruned_mlp", "bias_free_mlp"):
        for method in ("certify:arora2018", "certify:spectral_bartlett2017", "pruning:apoz"):
            assert matrix[(method, model)].status == "works", (method, model, matrix[(method, model)].reason)
    assert matrix[("strong_lth:pensia", "bias_free_mlp")].status == "works"


@pytest.mark.slow
def test_edge_coresets_work_on_conv_residual_models_and_refuse_depthwise(matrix):
    """CoreNet / SiPP / PFP treat a convolution as a linear map on its input patches (also inside a residual
    block); a depthwise (grouped) convolution is not one such map and is refused naming the groups."""
    for method in ("coresets:corenet", "coresets:sipp", "coresets:sipp_abs", "coresets:pfp", "certify:coreset"):
        assert matrix[(method, "resblock_cnn")].status == "works", (method, matrix[(method, "resblock_cnn")].reason)
    for method in ("coresets:corenet", "coresets:sipp", "coresets:sipp_abs", "coresets:pfp"):
        c = matrix[(method, "depthwise_ln_gelu")]
        assert c.status == "refuses" and "groups=4" in c.reason, c


@pytest.mark.slow
def test_format_matrix_is_markdown(matrix):
    text = format_matrix(list(matrix.values()))
    assert text.startswith("| method |") and "M1 = functional_mlp" in text


def test_pruned_class_model_keeps_computing_the_masked_function():
    """Magnitude pruning of a residual class model: the returned module is the user's class, masks included."""
    from prunebound.network import Network, masks_of
    from prunebound.pruning import REGISTRY

    rm = MODELS["residual_mlp"]
    m = rm.make()
    rep = REGISTRY["magnitude"](m, sparsity=0.5, epochs=0)
    out = rep.module
    assert type(out).__name__ == "ResidualMLP"
    x = rm.inputs(10)
    masks = masks_of(out)
    assert set(masks) == {ly.path for ly in Network.from_module(m).layers}
    # recompute by hand: weights * masks in the user's forward
    ref = rm.make()
    with torch.no_grad():
        for p, mk in masks.items():
            ref.get_submodule(p).weight.mul_(mk)
    torch.testing.assert_close(out(x), ref(x))
    n_w = sum(mk.numel() for mk in masks.values())
    assert sum(int((mk == 0).sum()) for mk in masks.values()) / n_w == pytest.approx(0.5, abs=1 / n_w * 6)


def test_assumption_error_attributes():
    from prunebound.network import Network

    with pytest.raises(AssumptionError) as ei:
        Network.from_module(MODELS["dense_cat"].make()).require_chain(method="lasso_channel")
    assert ei.value.method == "lasso_channel" and "cat" in str(ei.value)


# ------------------------------------------------------------------ the zoo architectures × every method
ZOO_MODELS = {r.name: r for r in zoo_models()}
#: methods whose mathematics needs only the parameters: they must work on every zoo architecture
ZOO_PARAM_ONLY = ["certify:pac_bayes_gaussian", "pruning:random", "pruning:magnitude", "pruning:lottery",
                  "pruning:snip", "pruning:rigl", "pruning:obd", "save_load"]
_README_BEGIN, _README_END = "<!-- zoo-matrix:begin -->", "<!-- zoo-matrix:end -->"


#: methods whose refusal on residual / concatenating / depthwise nets the fast test checks
ZOO_STRUCTURAL = ["certify:arora2018", "pruning:apoz", "strong_lth:pensia"]


@pytest.fixture(scope="module")
def zoo_matrix():
    """Every method on every zoo architecture: about 20 CPU-minutes (CoreNet / SiPP on convolutions), so the
    tests reading it are ``heavy`` (``make test-all``); the fast ones below read :func:`zoo_matrix_fast`."""
    torch.set_num_threads(1)
    return method_matrix(list(ZOO_MODELS.values()), method_names(), n=32)


@pytest.fixture(scope="module")
def zoo_matrix_fast():
    """The parameter-only and the chain-structural methods on every zoo architecture (the default suite)."""
    torch.set_num_threads(1)
    return method_matrix(list(ZOO_MODELS.values()), ZOO_PARAM_ONLY + ZOO_STRUCTURAL, n=32)


@pytest.mark.heavy
def test_zoo_cells_work_or_refuse_with_a_documented_error(zoo_matrix):
    from prunebound import conformance, errors

    named = {n for _, n in conformance._ASSUMPTION_NAMES + conformance._MESSAGE_NAMES}
    bugs = [f"{c.method} on {c.model}: {c.reason}" for c in zoo_matrix if c.status == "BUG"]
    assert not bugs, "\n".join(bugs)
    for c in zoo_matrix:
        if c.status == "refuses":
            cls = getattr(errors, c.error)
            assert issubclass(cls, errors.PruneboundError), c
            assert c.assumption in named, c  # a named assumption, not an unrecognised message


@pytest.mark.slow
def test_zoo_parameter_only_methods_accept_every_architecture(zoo_matrix_fast):
    by = {(c.method, c.model): c for c in zoo_matrix_fast}
    refused = [f"{m} on {mo}: {by[(m, mo)].reason}" for m in ZOO_PARAM_ONLY for mo in ZOO_MODELS
               if by[(m, mo)].status != "works"]
    assert not refused, "\n".join(refused)


@pytest.mark.slow
def test_zoo_structural_refusals_name_the_assumption(zoo_matrix_fast):
    by = {(c.method, c.model): c for c in zoo_matrix_fast}
    for model in ("resnet20", "resnet56", "densenet", "mobilenet"):  # residual add / cat / depthwise
        for method, label in (("certify:arora2018", "a ReLU chain"), ("pruning:apoz", "a chain"),
                              ("strong_lth:pensia", "a fully-connected ReLU chain")):
            c = by[(method, model)]
            assert c.status == "refuses" and c.error == "AssumptionError", c
            assert c.assumption.startswith(label) and "assumes" in c.reason
    for model in ("vgg11_bn", "vgg16_bn", "lenet5", "mlp"):  # plain chains: the chain methods accept them
        assert by[("certify:arora2018", model)].status == "works", by[("certify:arora2018", model)]


@pytest.mark.heavy
def test_readme_zoo_table_is_regenerated_output(zoo_matrix):
    """The README's zoo table is exactly what ``python examples/method_matrix.py --zoo`` prints."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert _README_BEGIN in text and _README_END in text
    block = text[text.index(_README_BEGIN) + len(_README_BEGIN): text.index(_README_END)].strip()
    assert block == format_zoo_table(zoo_matrix).strip()


def test_short_reason_names_the_assumption():
    from prunebound.assumptions import NONNEG_INPUTS, RELU_CHAIN
    from prunebound.conformance import short_reason
    from prunebound.errors import UnsupportedLayerError

    assert short_reason(AssumptionError("m", RELU_CHAIN, "node 'add'")) == "a ReLU chain"
    assert short_reason(AssumptionError("m", NONNEG_INPUTS, "node 'x'")) == "non-negative layer inputs"
    assert short_reason(AssumptionError("m", "a thing (details)", "n")) == "a thing"
    msg = "coresets: layer 'dw' is a grouped convolution (groups=4); the sensitivity sampling assumes groups=1"
    assert short_reason(UnsupportedLayerError(msg)) == "ungrouped convolutions (groups = 1)"
    assert short_reason(UnsupportedLayerError("something new")) == "something new"
