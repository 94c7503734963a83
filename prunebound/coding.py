"""Weight coding: an exact model encoder (and, re-exported, k-means weight sharing and entropy coding).

The module holds the model bitstream; its building blocks live in :mod:`prunebound.quantization` (k-means weight
sharing, centroid fine-tuning) and :mod:`prunebound.entropy_coding` (Elias codes, bit IO, Huffman, range coder),
both re-exported here so ``from prunebound.coding import quantize_module, range_encode`` keeps working.

This is a *real* encoder (not a formula): :func:`encode` turns a pruned, quantized model into bytes,
:func:`decode` rebuilds it bit-identically from the bytes and the architecture spec, and
:func:`code_length_bits` reports the exact number of bits the encoder wrote, split into parts. The code
length is what an Occam / Zhou et al. (2019) compression bound pays for the model (prior ``2^-|code|``).

Pipeline (Deep Compression, Han, Mao & Dally, ICLR 2016, Sec. 3-4):

1. :func:`quantize_module` -- per-layer weight sharing of the surviving (unmasked, nonzero) weights with
   1-D k-means (:func:`kmeans_1d`, *linear* initialisation between min and max, Lloyd steps),
   ``k = 2^bits`` clusters.
2. :func:`finetune_centroids` (optional) -- SGD on the shared centroids; the gradient of a centroid is the
   sum of the gradients of the weights in its cluster (Han et al. 2016, Eq. 3), assignments are kept.
3. :func:`encode` -- per layer: codebook, positions of the surviving weights (relative index gaps or a
   bitmap, whichever is shorter), centroid indices, raw biases. Symbols are entropy coded with canonical
   Huffman codes (code lengths transmitted) or with a range coder (symbol counts transmitted).

Bitstream format (version 2), all integers MSB-first; ``delta(x)`` is the Elias delta code of ``x >= 1``,
``gamma(x)`` the Elias gamma code (Elias 1975)::

    magic "PBC" (24) | version (8) | crc32 of the bytes after the first 8 (32) | coder (1) | dtype (2)
    | delta(n_layers)
    per layer:  pruned (1) | has_bias (1) | delta(numel) | delta(m + 1)       m = number of coded positions
        if m > 0:      delta(K) | K codebook values (raw float32, or float64 for float64 models)
        if 0 < m < numel: mode (1): 0 -> bitmap (numel bits)
                                    1 -> gamma(b) | delta(n_escapes + 1) | symbol stream over 2^b symbols
        if K > 1:      symbol stream of m centroid indices over K symbols
        if has_bias:   half (1) | bias values: raw float16 if half = 1 (every bias is exactly a float16),
                       else raw float32 / float64
    symbol stream (Huffman): gamma(Lmax + 1) | if Lmax == 0: the single symbol (ceil log2 A bits)
                             else A code lengths of bit_length(Lmax) bits each | canonical codes
    symbol stream (range):   A counts as delta(count + 1) | delta(n_bytes + 1) | the range coder bytes

Positions of a *pruned* layer are the mask support (``weight_mask == 1``, so the mask round-trips exactly
even where a kept weight is 0); for an unpruned layer they are the nonzero weights. Gaps follow Han et al.
(2016, Sec. 3) with one deviation: instead of a filler *zero weight* when a gap exceeds ``2^b - 1``, the
symbol ``2^b - 1`` is an escape meaning "skip ``2^b - 1`` positions, no weight" (no fake codebook entry);
``b`` is chosen per layer to minimise the exact code length. Deviation from the brief: codebooks are
float32 for float32 models but float64 for float64 models (exactness needs it).

``code_length_bits(...).total_bits`` is the exact number of bits written *before* padding to whole bytes,
so ``len(encode(m)) == ceil(total_bits / 8)``. Signed zeros are not preserved (``-0.0`` decodes as ``0.0``);
values compare equal. Weights of pruned-away coordinates (``weight_orig`` where the mask is 0) are not
coded (they do not affect the model) and decode as 0.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

# the building blocks (one concept per module), re-exported: the public import paths stay prunebound.coding.*
from prunebound.entropy_coding import (  # noqa: F401
    BitReader,
    BitWriter,
    _bitlen,
    _huffman_decode,
    _pack_varlen,
    _pack_varlen_bytes,
    _segments,
    canonical_huffman,
    elias_delta_bits,
    elias_gamma_bits,
    empirical_entropy_bits,
    huffman_code_lengths,
    range_decode,
    range_encode,
)
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    check_finite_module,
)
from prunebound.network import (
    Network,
    apply_masks,
    build_architecture,
    is_pruned,
)
from prunebound.quantization import (  # noqa: F401
    MAX_CODEBOOK,
    LayerQuantization,
    QuantizeReport,
    _effective,
    _inplace_network,
    _lloyd_assign,
    _write_weights,
    finetune_centroids,
    kmeans_1d,
    quantize_module,
)

__all__ = [
    "kmeans_1d",
    "LayerQuantization",
    "QuantizeReport",
    "quantize_module",
    "finetune_centroids",
    "huffman_code_lengths",
    "canonical_huffman",
    "elias_gamma_bits",
    "elias_delta_bits",
    "BitWriter",
    "BitReader",
    "range_encode",
    "range_decode",
    "empirical_entropy_bits",
    "CodeLength",
    "encode",
    "decode",
    "code_length_bits",
    "MAX_CODEBOOK",
]

_MAGIC = b"PBC"
_VERSION = 2
_CODERS = ("huffman", "arithmetic")
_DTYPES = (torch.float32, torch.float64)
_MAX_GAP_BITS = 12




# ====================================================================== symbol streams
def _huffman_stream_bits(counts: np.ndarray) -> tuple[int, np.ndarray]:
    """Exact bits of a Huffman-coded stream (table + codes) for the given symbol counts."""
    L = huffman_code_lengths(counts)
    lmax = int(L.max()) if L.size else 0
    A = counts.size
    table = elias_gamma_bits(lmax + 1) + (max(1, int(A - 1).bit_length()) if lmax == 0 else
                                          A * int(lmax).bit_length())
    return int(table + int((counts * L).sum())), L


def _write_stream(w: BitWriter, sym: np.ndarray, A: int, coder: str, *, table_part: str) -> None:
    """Write ``sym`` (values in [0, A)) as a Huffman or range-coded stream; the table is booked under
    ``table_part``, the payload under the writer's current part."""
    counts = np.bincount(sym, minlength=A).astype(np.int64)
    payload_part = w.part
    if coder == "huffman":
        L = huffman_code_lengths(counts)
        lmax = int(L.max())
        if lmax > 62:
            raise InvalidParameterError("Huffman code longer than 62 bits; stream too large")
        w.part = table_part
        w.write_gamma(lmax + 1)
        if lmax == 0:
            w.write(int(np.flatnonzero(counts)[0]), max(1, int(A - 1).bit_length()))
            w.part = payload_part
            return
        w.write_array(L, int(lmax).bit_length())
        w.part = payload_part
        codes = canonical_huffman(L)
        w.write_array(codes[sym], L[sym])
    else:
        w.part = table_part
        w.write_delta(counts + 1)
        data = range_encode(sym, counts)
        w.part = payload_part
        w.write_delta(len(data) + 1)
        w.write_bytes(data)


def _read_stream(r: BitReader, n: int, A: int, coder: str) -> np.ndarray:
    if coder == "huffman":
        lmax = r.read_gamma() - 1
        if lmax > 62:
            raise DataError(f"corrupt Huffman table (max length {lmax})")
        if lmax == 0:
            s = r.read(max(1, int(A - 1).bit_length()))
            if s >= A:
                raise DataError("corrupt Huffman table (symbol out of range)")
            return np.full(n, s, dtype=np.int64)
        L = r.read_array(A, int(lmax).bit_length())
        if L.max() != lmax or np.sum(np.ldexp(1.0, -L[L > 0])) > 1.0:
            raise DataError("corrupt Huffman table (lengths violate the Kraft inequality)")
        return _huffman_decode(r, L, n)
    counts = np.array([r.read_delta() - 1 for _ in range(A)], dtype=np.int64)
    if int(counts.sum()) != n:
        raise DataError(f"corrupt range-coder table: counts sum to {int(counts.sum())}, expected {n}")
    nbytes = r.read_delta() - 1
    data = r.read_bytes(nbytes)
    return range_decode(data, counts, n)


def _gap_symbols(pos: np.ndarray, b: int) -> tuple[np.ndarray, int]:
    """Gap symbols over alphabet 2^b for sorted flat positions: skip s (< 2^b - 1) then a weight, or the
    escape 2^b - 1 = skip 2^b - 1 positions without a weight. Returns (symbols, n_escapes)."""
    esc = (1 << b) - 1
    skip = np.diff(np.concatenate([[-1], pos])) - 1
    n_esc = skip // esc
    rest = skip - n_esc * esc
    total_esc = int(n_esc.sum())
    m = pos.size
    sym = np.full(m + total_esc, esc, dtype=np.int64)
    final_idx = np.cumsum(n_esc + 1) - 1  # each weight's symbol comes after its escapes
    sym[final_idx] = rest
    return sym, total_esc


def _positions_from_gaps(sym: np.ndarray, b: int, numel: int, m: int) -> np.ndarray:
    esc = (1 << b) - 1
    is_w = sym != esc
    if int(is_w.sum()) != m:
        raise DataError("corrupt position stream (wrong number of weights)")
    adv = np.where(is_w, sym + 1, esc)
    pos = np.cumsum(adv)[is_w] - 1
    if pos.size and (pos[-1] >= numel):
        raise DataError("corrupt position stream (position beyond the layer)")
    return pos


def _entropy_cost(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    return float(-(c * np.log2(c / n)).sum()) + float(np.sum(elias_delta_bits(counts + 1)))


# ====================================================================== model encoder
@dataclass(frozen=True)
class CodeLength:
    """Exact length of :func:`encode`'s output.

    ``total_bits`` is the number of bits written *before* zero padding to whole bytes (so
    ``len(encode(m)) == ceil(total_bits / 8)``); it includes everything needed to decode given the
    architecture: header, codebooks, code tables, sizes, positions, indices, biases and a CRC-32.
    ``per_layer`` maps layer path to its bits (global header excluded); ``parts`` splits the total into
    ``header``, ``codebook``, ``positions``, ``indices``, ``tables``, ``bias``.
    """

    total_bits: int
    per_layer: dict[str, int] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)
    coder: str = "huffman"

    @property
    def total_bytes(self) -> int:
        return (self.total_bits + 7) // 8

    def to_dict(self) -> dict:
        return {"total_bits": self.total_bits, "per_layer": dict(self.per_layer), "parts": dict(self.parts),
                "coder": self.coder}


def _check_coder(coder: str) -> str:
    if coder not in _CODERS:
        raise InvalidParameterError(f"coder must be one of {_CODERS}; got {coder!r}")
    return coder


def _encode(module: nn.Module | Network, coder: str) -> BitWriter:
    coder = _check_coder(coder)
    net = Network.from_module(module)
    net.require_parameters_in_layers(method="encode / code length (Occam, Zhou 2019 bounds)")
    check_finite_module(net.module)
    dtypes = {ly.weight.dtype for ly in net.layers}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise InvalidParameterError(f"encode supports models whose weights are all float32 or all float64; "
                                    f"got {sorted(str(d) for d in dtypes)}")
    dtype = next(iter(dtypes))
    np_dt = np.dtype(">f4") if dtype == torch.float32 else np.dtype(">f8")
    w = BitWriter()
    w.write_bytes(_MAGIC)
    w.write(_VERSION, 8)
    w.write(0, 32)  # CRC placeholder, patched in encode()
    w.write(_CODERS.index(coder), 1)
    w.write(_DTYPES.index(dtype), 2)
    w.write_delta(len(net.layers))
    for ly in net.layers:
        w.layer = ly.path
        w.part = "header"
        m_ = ly.module
        pruned = is_pruned(m_)
        eff = _effective(ly).reshape(-1)
        if pruned:
            mk = m_.weight_mask.detach().reshape(-1)
            if not bool(((mk == 0) | (mk == 1)).all()):
                raise InvalidParameterError(f"mask of layer {ly.path!r} must contain only 0 and 1")
            pos_t = torch.nonzero(mk != 0).reshape(-1)
        else:
            pos_t = torch.nonzero(eff != 0).reshape(-1)
        numel = int(eff.numel())
        pos = pos_t.cpu().numpy().astype(np.int64)
        m = int(pos.size)
        vals = eff[pos_t].cpu().numpy()
        has_bias = ly.bias is not None
        w.write(int(pruned), 1)
        w.write(int(has_bias), 1)
        w.write_delta(numel)
        w.write_delta(m + 1)
        if m > 0:
            book, idx = np.unique(vals, return_inverse=True)
            K = int(book.size)
            if K > MAX_CODEBOOK:
                raise InvalidParameterError(
                    f"layer {ly.path!r} has {K} distinct weight values (> {MAX_CODEBOOK}); the model is not "
                    "quantized: call prunebound.coding.quantize_module(module, bits=...) before encoding")
            w.write_delta(K)
            w.part = "codebook"
            w.write_bytes(book.astype(np_dt).tobytes())
            if m < numel:
                _write_positions(w, pos, numel, coder)
            if K > 1:
                w.part = "indices"
                _write_stream(w, idx.reshape(-1).astype(np.int64), K, coder, table_part="tables")
        if has_bias:
            w.part = "bias"
            b = ly.bias.detach().cpu().numpy()
            half = bool(np.array_equal(b.astype(np.float16).astype(b.dtype), b))
            w.write(int(half), 1)
            w.write_bytes(b.astype(">f2" if half else np_dt).tobytes())
    w.layer = None
    w.part = "header"
    return w


def _write_positions(w: BitWriter, pos: np.ndarray, numel: int, coder: str) -> None:
    """Choose the shorter of a bitmap and Huffman/range-coded gaps (best ``b``), exactly counted."""
    best_b, best_cost = None, None
    for b in range(1, min(_MAX_GAP_BITS, max(1, int(numel).bit_length())) + 1):
        sym, n_esc = _gap_symbols(pos, b)
        counts = np.bincount(sym, minlength=1 << b)
        if coder == "huffman":
            cost = _huffman_stream_bits(counts)[0]
        else:
            cost = _entropy_cost(counts) + 8
        cost += elias_gamma_bits(b) + elias_delta_bits(n_esc + 1)
        if best_cost is None or cost < best_cost:
            best_b, best_cost = b, cost
    trial = _TaggingWriter()
    trial.part = "positions"
    sym, n_esc = _gap_symbols(pos, best_b)
    trial.write_gamma(best_b)
    trial.write_delta(n_esc + 1)
    _write_stream(trial, sym, 1 << best_b, coder, table_part="tables")
    w.part = "header"
    if trial.bit_length < numel:
        w.write(1, 1)
        # replay the trial chunks with their accounting
        for chunk_part, chunk in _replay(trial):
            w.part = chunk_part
            w.write_bits(chunk)
    else:
        w.write(0, 1)
        w.part = "positions"
        bm = np.zeros(numel, dtype=np.uint8)
        bm[pos] = 1
        w.write_bits(bm)


class _TaggingWriter(BitWriter):
    """A BitWriter that also remembers the part of every chunk (for replaying a trial encoding)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def _add(self, bits: np.ndarray) -> None:
        if bits.size:
            self.tags.append(self.part)
        super()._add(bits)


def _replay(trial: BitWriter):
    return list(zip(trial.tags, trial._chunks))


def encode(module: nn.Module | Network, *, coder: str = "huffman") -> bytes:
    """Encode a (pruned, quantized) model's weighted layers to bytes; see the module docstring's format.

    Needs at most ``2^16`` distinct values per layer (call :func:`quantize_module` first); raises
    :class:`InvalidParameterError` otherwise and :class:`DataError` for NaN/inf parameters. ``coder`` is
    ``"huffman"`` (canonical Huffman codes) or ``"arithmetic"`` (range coder with transmitted counts).
    The result, with ``prunebound.network.architecture(module)``, is all :func:`decode` needs.
    """
    w = _encode(module, coder)
    data = bytearray(w.getvalue())
    crc = zlib.crc32(bytes(data[8:]))
    data[4:8] = crc.to_bytes(4, "big")
    return bytes(data)


def code_length_bits(module: nn.Module | Network, *, coder: str = "huffman") -> CodeLength:
    """Exact bit count of :func:`encode` (before byte padding), per layer and per part.

    Runs the encoder itself, so ``8 * len(encode(m)) - 7 <= total_bits <= 8 * len(encode(m))``.
    """
    w = _encode(module, coder)
    return CodeLength(int(w.bit_length), dict(w.per_layer), dict(w.parts), coder)


def decode(blob: bytes, architecture: dict) -> nn.Module:
    """Rebuild the model encoded by :func:`encode` from ``blob`` and ``architecture``
    (``prunebound.network.architecture(module)``).

    Effective weights, biases and masks equal the encoded model's exactly (pruned layers come back pruned
    with the same mask). If the architecture contains BatchNorm, the returned module is its folded form
    (as :class:`Network` sees it). Raises :class:`DataError` for a corrupt, truncated or mismatching blob.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise DataError(f"blob must be bytes; got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 8 or blob[:3] != _MAGIC:
        raise DataError("not a prunebound weight code (bad magic or too short)")
    if blob[3] != _VERSION:
        raise DataError(f"unsupported code version {blob[3]}; this prunebound reads version {_VERSION}")
    if zlib.crc32(blob[8:]) != int.from_bytes(blob[4:8], "big"):
        raise DataError("corrupt or truncated weight code (CRC-32 mismatch)")
    module = build_architecture(architecture)
    net = Network.from_module(module)
    try:
        return _decode_into(net, blob)
    except DataError:
        raise
    except (ValueError, IndexError, OverflowError, RuntimeError) as e:  # defensive: never crash
        raise DataError(f"corrupt weight code: {e}") from e


def _decode_into(net: Network, blob: bytes) -> nn.Module:
    r = BitReader(blob)
    r.pos = 64
    coder = _CODERS[r.read(1)]
    dcode = r.read(2)
    if dcode >= len(_DTYPES):
        raise DataError(f"corrupt header: dtype code {dcode}")
    dtype = _DTYPES[dcode]
    np_dt = np.dtype(">f4") if dtype == torch.float32 else np.dtype(">f8")
    nb = np_dt.itemsize
    n_layers = r.read_delta()
    if n_layers != len(net.layers):
        raise DataError(f"code holds {n_layers} weighted layers; the architecture has {len(net.layers)}")
    module = net.module.to(dtype)
    masks = {}
    for ly in net.layers:
        pruned = r.read(1)
        has_bias = r.read(1)
        numel = r.read_delta()
        if numel != ly.n_weights or bool(has_bias) != (ly.bias is not None):
            raise DataError(f"layer {ly.path!r}: code has {numel} weights (bias={bool(has_bias)}); the "
                            f"architecture has {ly.n_weights} (bias={ly.bias is not None})")
        m = r.read_delta() - 1
        if m > numel:
            raise DataError(f"layer {ly.path!r}: {m} coded positions > {numel} weights")
        flat = np.zeros(numel, dtype=np.float64 if dtype == torch.float64 else np.float32)
        pos = np.zeros(0, dtype=np.int64)
        if m > 0:
            K = r.read_delta()
            if K > min(m, MAX_CODEBOOK):
                raise DataError(f"layer {ly.path!r}: codebook size {K} impossible for {m} weights")
            book = np.frombuffer(r.read_bytes(K * nb), dtype=np_dt).astype(flat.dtype)
            if m == numel:
                pos = np.arange(numel, dtype=np.int64)
            elif r.read(1) == 0:
                pos = np.flatnonzero(r.read_bits(numel))
                if pos.size != m:
                    raise DataError(f"layer {ly.path!r}: bitmap has {pos.size} ones, expected {m}")
            else:
                b = r.read_gamma()
                if b > _MAX_GAP_BITS:
                    raise DataError(f"layer {ly.path!r}: corrupt gap width {b}")
                n_esc = r.read_delta() - 1
                if n_esc > numel:
                    raise DataError(f"layer {ly.path!r}: corrupt escape count {n_esc}")
                sym = _read_stream(r, m + n_esc, 1 << b, coder)
                pos = _positions_from_gaps(sym, b, numel, m)
            idx = _read_stream(r, m, K, coder) if K > 1 else np.zeros(m, dtype=np.int64)
            flat[pos] = book[idx]
        bias = None
        if has_bias:
            bdt = np.dtype(">f2") if r.read(1) else np_dt
            bias = np.frombuffer(r.read_bytes(ly.bias.numel() * bdt.itemsize), dtype=bdt).astype(flat.dtype)
        with torch.no_grad():
            ly.module.weight.copy_(torch.from_numpy(flat).reshape(ly.module.weight.shape))
            if bias is not None:
                ly.module.bias.copy_(torch.from_numpy(bias.copy()))
        if pruned:
            mk = np.zeros(numel, dtype=flat.dtype)
            mk[pos] = 1
            masks[ly.path] = torch.from_numpy(mk).reshape(ly.module.weight.shape)
        elif m > 0 and bool((flat[pos] == 0).any()):
            raise DataError(f"layer {ly.path!r}: corrupt code (zero value at a nonzero position)")
    if masks:
        apply_masks(module, masks)
    return module
