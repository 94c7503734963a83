"""Property tests (hypothesis) of the certificate schema: JSON round trips are exact, and arbitrary JSON is
either a valid certificate or refused with CertificateError -- never another exception."""

from __future__ import annotations

import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from prunebound.certificate import Certificate
from prunebound.errors import CertificateError

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
hexdigest = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, st.text(max_size=20))
json_tree = st.recursive(scalar, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                         max_leaves=20)

certificates = st.builds(
    Certificate,
    kind=st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=30),
    value=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    delta=st.floats(min_value=1e-300, max_value=1.0, exclude_max=True, allow_nan=False),
    empirical=unit,
    complexity=finite,
    n=st.integers(1, 10**12),
    parts=st.dictionaries(st.text(max_size=20), st.one_of(finite, st.text(max_size=10), st.none()), max_size=8),
    model_sha256=hexdigest,
    data_sha256=hexdigest,
    seed=st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1)),
    params=st.dictionaries(st.text(max_size=10), json_tree, max_size=5),
    data_spec=st.one_of(st.none(), st.text(max_size=50)),
    note=st.text(max_size=50),
    verifiable=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(certificates)
def test_json_round_trip_is_exact(cert):
    text = cert.to_json()
    back = Certificate.from_dict(json.loads(text))
    assert back == cert
    assert back.to_json() == text


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["kind", "value", "delta", "empirical", "complexity", "n", "parts",
                                        "params", "seed", "model_sha256", "schema_version", "junk"]),
                       json_tree, max_size=12))
def test_arbitrary_json_is_valid_or_certificate_error(d):
    try:
        c = Certificate.from_dict(d)
    except CertificateError:
        return
    # accepted: then it satisfies the schema's ranges
    assert 0 < c.delta < 1 and 0 <= c.empirical <= 1 and c.value >= 0 and c.n >= 1


@settings(max_examples=100, deadline=None)
@given(certificates, st.sampled_from(["value", "delta", "empirical", "n"]), json_tree)
def test_one_mutated_field_is_valid_or_certificate_error(cert, key, v):
    d = {**cert.to_dict(), key: v}
    try:
        Certificate.from_dict(d)
    except CertificateError:
        pass
