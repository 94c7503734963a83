"""Coverage of the Arora et al. (2018) compression bound with the harness on a teacher task.

* ``test_arora_bound_covers``: the certified bound on the compressed network g (Algorithm 2 + Occam/binomial
  inversion over the prefix code) must violate at a rate consistent with <= δ; the student is small so that
  the
  bound is non-vacuous and coverage is a real test.
* The compression-guarantee part of Theorem 2.1 / 4.1 is checked in every repetition: whenever the compressed
  network stays within γ/sqrt(2) of f on the training set, its training error is at most the γ-margin loss of
  f.
* ``test_bound_without_complexity_is_caught``: the same pipeline with the complexity term dropped (bound =
  training error of g) must be rejected by the binomial test.
"""

import math
import os

import pytest
import torch

from prunebound.bounds.noise_stability import arora2018_bound, compress
from prunebound.data import teacher_task
from prunebound.network import mlp
from prunebound.testing import coverage
from prunebound.train import fit, margins

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
DELTA = 0.05
HELPER_SEED = 2018  # the helper string is fixed before any data is drawn


def _make(record: list, broken: bool = False):
    def make_bound(train, seed):
        torch.set_num_threads(1)
        f = mlp(5, [8], 2, seed=seed)
        fit(f, train, epochs=15, lr=0.1, seed=seed)
        terms, cn = arora2018_bound(f, train, delta=DELTA, seed=HELPER_SEED, bits_grid=(3, 4, 6, 8))
        # compression-guarantee part: at high precision the compressed net must stay within γ/sqrt(2) of f and
        # then classify every γ-margin training point correctly (L̂_0(g) <= L̂_γ(f)).
        gamma = terms.parts["gamma"]
        hi = compress(f, train, gamma=gamma, delta=DELTA, seed=HELPER_SEED, bits=16)
        err_hi = float((margins(hi.model, train) <= 0).double().mean())
        record.append((terms, hi.max_abs_error <= gamma / math.sqrt(2), err_hi, terms.parts["margin_loss_f"]))
        return cn.model, (terms.empirical if broken else terms.value)
    return make_bound


@pytest.mark.statistical
@pytest.mark.slow
def test_arora_bound_covers():
    task = teacher_task(5, 8, 2, 0.1, seed=0)
    reps = 100 if FULL else 8
    rec: list = []
    r = coverage(_make(rec), task, n=1500, reps=reps, delta=DELTA, seed=0, n_test=100_000 if FULL else 30_000)
    assert r.holds(0.01), r.to_dict()
    assert max(r.bounds) < 1.0  # non-vacuous, so coverage is not trivial
    assert len(rec) == reps
    for terms, within, err_hi, margin_loss in rec:
        assert within
        assert err_hi <= margin_loss + 1e-12
        if terms.parts["guarantee_holds"]:
            assert terms.empirical <= margin_loss + 1e-12


@pytest.mark.statistical
@pytest.mark.slow
def test_bound_without_complexity_is_caught():
    task = teacher_task(5, 8, 2, 0.1, seed=0)
    reps = 40 if FULL else 8
    r = coverage(_make([], broken=True), task, n=300, reps=reps, delta=DELTA, seed=50,
                 n_test=100_000 if FULL else 30_000)
    assert not r.holds(0.01), r.to_dict()
