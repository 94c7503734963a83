"""The message of the subspace bound (Lotfi et al. 2022, Sec. 4, step 3; see :mod:`prunebound.bounds.subspace`).

A quantised subspace vector ``c[a]`` (``d`` symbols over an ``L``-entry codebook) is written as: the codebook as
``L`` IEEE half floats (``16 L`` bits), the first ``L-1`` symbol counts Elias-delta coded (``count + 1``), then the
symbols range-coded with the static model given by the counts (:func:`prunebound.entropy_coding.range_encode`),
within a few bits of the empirical entropy.  :func:`decode_quantized` inverts :func:`encode_quantized` given the
grid point ``(d, L)``; the certifier checks that a message is the canonical encoding of what it decodes to.
Re-exported by :mod:`prunebound.bounds.subspace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from prunebound.entropy_coding import (
    BitReader,
    BitWriter,
    empirical_entropy_bits,
    range_decode,
    range_encode,
)
from prunebound.errors import DataError, InvalidParameterError, check_positive_int

__all__ = ["SubspaceCode", "encode_quantized", "decode_quantized"]


# ---------------------------------------------------------------------------------------------- the code
@dataclass(frozen=True)
class SubspaceCode:
    """The message describing a quantised ``w``: ``message`` bytes holding ``n_bits`` bits, of which
    ``codebook_bits`` (fp16 codebook), ``count_bits`` (Elias-delta counts) and ``body_bits`` (range-coded
    symbols); ``entropy_bits`` is the empirical entropy ``d H(p_hat)`` of the symbols for comparison."""

    d: int
    levels: int
    message: bytes = field(repr=False)
    n_bits: int
    codebook_bits: int
    count_bits: int
    body_bits: int
    entropy_bits: float

    def to_dict(self) -> dict:
        return {"d": self.d, "levels": self.levels, "message": self.message.hex(), "n_bits": self.n_bits,
                "codebook_bits": self.codebook_bits, "count_bits": self.count_bits,
                "body_bits": self.body_bits, "entropy_bits": self.entropy_bits}


def encode_quantized(symbols: torch.Tensor | np.ndarray, codebook: torch.Tensor) -> SubspaceCode:
    """Encode a quantised vector ``codebook[symbols]`` (``codebook`` rounded to fp16) as described above."""
    sym = np.asarray(torch.as_tensor(symbols).detach().cpu().numpy(), dtype=np.int64).reshape(-1)
    c16 = torch.as_tensor(codebook).detach().reshape(-1).to(torch.float16)
    L = int(c16.numel())
    if L < 1 or sym.size < 1:
        raise InvalidParameterError(f"need a codebook (got {L} entries) and symbols (got {sym.size})")
    if not bool(torch.isfinite(c16).all()):
        raise DataError("codebook has values that are not finite in fp16 (|c| > 65504 or NaN)")
    if sym.min() < 0 or sym.max() >= L:
        raise InvalidParameterError(f"symbols must lie in [0, {L}), got range [{sym.min()}, {sym.max()}]")
    counts = np.bincount(sym, minlength=L)
    w = BitWriter()
    w.write_array(c16.view(torch.int16).numpy().astype(np.uint16), 16)
    cb = w.bit_length
    if L > 1:
        w.write_delta(counts[:-1] + 1)
    cnt = w.bit_length - cb
    body = range_encode(sym, counts)
    w.write_bytes(body)
    return SubspaceCode(int(sym.size), L, w.getvalue(), int(w.bit_length), cb, cnt, 8 * len(body),
                        empirical_entropy_bits(sym))


def decode_quantized(message: bytes, n_bits: int, *, d: int, levels: int
                     ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Inverse of :func:`encode_quantized` given the grid point ``(d, levels)``: ``(w_q float32, symbols,
    codebook fp16)``."""
    d = check_positive_int("d", d)
    L = check_positive_int("levels", levels)
    r = BitReader(bytes(message), n_bits=int(n_bits))
    raw = r.read_array(L, 16).astype(np.uint16)
    c16 = torch.from_numpy(raw.view(np.int16).copy()).view(torch.float16)
    if L > 1:
        head = np.array([r.read_delta() - 1 for _ in range(L - 1)], dtype=np.int64)
        last = d - int(head.sum())
        if last < 0:
            raise DataError(f"corrupt subspace code: counts {head.tolist()} exceed d={d}")
        counts = np.append(head, last)
    else:
        counts = np.array([d], dtype=np.int64)
    if r.remaining % 8:
        raise DataError(f"corrupt subspace code: {r.remaining} body bits is not a whole number of bytes")
    body = r.read_bytes(r.remaining // 8)
    sym = range_decode(body, counts, d)
    if not np.array_equal(np.bincount(sym, minlength=L), counts):
        raise DataError("corrupt subspace code: decoded symbols do not match the coded counts")
    return c16.float()[torch.from_numpy(sym)], sym, c16
