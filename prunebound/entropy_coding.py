"""Entropy coding primitives: universal integer codes, bit IO, canonical Huffman codes and a range coder.

* Elias gamma / delta codes (Elias 1975): :func:`elias_gamma_bits`, :func:`elias_delta_bits`, written by
  :class:`BitWriter` and read by :class:`BitReader` (MSB-first, vectorised packing of variable-length codes);
* :func:`huffman_code_lengths` (Huffman 1952, optimal prefix code lengths) and :func:`canonical_huffman`
  (canonical codewords from the lengths alone, so only the lengths are transmitted);
* :func:`range_encode` / :func:`range_decode`: a static-model range coder (an arithmetic coder with integer
  renormalisation, Martin 1979) whose output is within a few bytes of :func:`empirical_entropy_bits`.

Used by the exact model encoder (:mod:`prunebound.coding`, which re-exports everything here) and by the subspace
bound's message (:mod:`prunebound.bounds.subspace`).
"""

from __future__ import annotations

import bisect
import heapq

import numpy as np

from prunebound.errors import DataError, InvalidParameterError, check_positive_int

__all__ = ["elias_gamma_bits", "elias_delta_bits", "BitWriter", "BitReader", "huffman_code_lengths",
           "canonical_huffman", "range_encode", "range_decode", "empirical_entropy_bits"]


# ====================================================================== universal codes and bit IO
def elias_gamma_bits(n) -> int | np.ndarray:
    """Length of the Elias gamma code of ``n >= 1``: ``2 floor(log2 n) + 1`` bits (Elias 1975)."""
    a = np.asarray(n, dtype=np.int64)
    if (a < 1).any():
        raise InvalidParameterError(f"Elias codes need integers >= 1; got {n!r}")
    out = 2 * (_bitlen(a) - 1) + 1
    return int(out) if out.ndim == 0 else out


def elias_delta_bits(n) -> int | np.ndarray:
    """Length of the Elias delta code of ``n >= 1``: ``L - 1 + 2 floor(log2 L) + 1`` with
    ``L = floor(log2 n) + 1`` (Elias 1975)."""
    a = np.asarray(n, dtype=np.int64)
    if (a < 1).any():
        raise InvalidParameterError(f"Elias codes need integers >= 1; got {n!r}")
    L = _bitlen(a)
    out = L - 1 + 2 * (_bitlen(L) - 1) + 1
    return int(out) if out.ndim == 0 else out


def _bitlen(a: np.ndarray) -> np.ndarray:
    """Vectorised ``int.bit_length`` for nonnegative int64 arrays."""
    a = np.asarray(a, dtype=np.int64)
    out = np.zeros(a.shape, dtype=np.int64)
    x = a.copy()
    for sh in (32, 16, 8, 4, 2, 1):
        big = x >= (np.int64(1) << sh)
        out[big] += sh
        x[big] >>= sh
    out[x > 0] += 1
    return out


def _segments(w: np.ndarray) -> np.ndarray:
    """Start indices of the runs of equal values in the non-decreasing array ``w``."""
    d = np.empty(w.size, dtype=bool)
    d[0] = True
    np.not_equal(w[1:], w[:-1], out=d[1:])
    return np.flatnonzero(d)


def _pack_varlen_bytes(values: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Pack each ``values[i]`` MSB-first in ``lengths[i]`` (<= 64) bits, concatenated, into bytes.

    Vectorised word packing: every code lands in 64-bit word ``start // 64`` (spilling into the next word
    when it crosses a boundary); the disjoint pieces are OR-ed per word with ``np.bitwise_or.reduceat``
    (starts are increasing, so each word's pieces are contiguous). No Python loop over symbols or bits.
    Returns ``(packed uint8 array zero-padded to whole bytes, number of bits)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint8), 0
    keep = lengths > 0
    if not keep.all():
        lengths, values = lengths[keep], values[keep]
    start = np.cumsum(lengths) - lengths
    w = start >> 6
    e = (start & 63) + lengths  # end bit (exclusive) inside word w, in 1..128
    fits = e <= 64
    hi = np.where(fits, values << np.where(fits, 64 - e, 0).astype(np.uint64),
                  values >> np.where(fits, 0, e - 64).astype(np.uint64))
    nw = (total + 63) >> 6
    words = np.zeros(nw + 1, dtype=np.uint64)
    seg = _segments(w)
    words[w[seg]] = np.bitwise_or.reduceat(hi, seg)
    if not fits.all():
        sp = ~fits
        ws = w[sp] + 1
        lo = values[sp] << (128 - e[sp]).astype(np.uint64)
        seg2 = _segments(ws)
        words[ws[seg2]] |= np.bitwise_or.reduceat(lo, seg2)
    return words[:nw].astype(">u8").view(np.uint8)[: (total + 7) >> 3], total


def _pack_varlen(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Bits (uint8 0/1) of each ``values[i]`` written MSB-first in ``lengths[i]`` bits, concatenated."""
    packed, total = _pack_varlen_bytes(values, lengths)
    return np.unpackbits(packed)[:total]


class BitWriter:
    """Append-only bit buffer (MSB-first), vectorised; tracks how many bits each named part used.

    ``part`` is the current accounting label (``"header"``, ``"codebook"``, ...); ``layer`` the current
    layer path (``None`` for global fields). :meth:`getvalue` packs with ``np.packbits`` (zero padding).
    """

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.bit_length = 0
        self.part = "header"
        self.layer: str | None = None
        self.parts: dict[str, int] = {}
        self.per_layer: dict[str, int] = {}

    def _add(self, bits: np.ndarray) -> None:
        n = int(bits.size)
        if n == 0:
            return
        self._chunks.append(bits)
        self.bit_length += n
        self.parts[self.part] = self.parts.get(self.part, 0) + n
        if self.layer is not None:
            self.per_layer[self.layer] = self.per_layer.get(self.layer, 0) + n

    def write_bits(self, bits: np.ndarray) -> None:
        """Append an array of 0/1 values."""
        self._add(np.asarray(bits, dtype=np.uint8).reshape(-1))

    def write(self, value: int, nbits: int) -> None:
        """Append ``value`` (0 <= value < 2^nbits) in ``nbits`` bits."""
        value, nbits = int(value), int(nbits)
        if nbits < 0 or value < 0 or (nbits < 64 and value >> nbits):
            raise InvalidParameterError(f"value {value} does not fit in {nbits} bits")
        if nbits > 64:
            self.write(value >> 64, nbits - 64)
            self.write(value & ((1 << 64) - 1), 64)
            return
        self._add(_pack_varlen(np.array([value], dtype=np.uint64), np.array([nbits])))

    def write_array(self, values: np.ndarray, nbits: int | np.ndarray) -> None:
        """Append each value in its own width (scalar or per-value array of widths <= 64)."""
        values = np.asarray(values).astype(np.uint64).reshape(-1)
        widths = np.broadcast_to(np.asarray(nbits, dtype=np.int64), values.shape)
        self._add(_pack_varlen(values, widths))

    def write_gamma(self, n) -> None:
        """Elias gamma code(s) of integer(s) ``n >= 1``."""
        a = np.atleast_1d(np.asarray(n, dtype=np.int64))
        self.write_array(a, elias_gamma_bits(a))

    def write_delta(self, n) -> None:
        """Elias delta code(s) of integer(s) ``n >= 1``: gamma(L) then the low ``L-1`` bits of ``n``."""
        a = np.atleast_1d(np.asarray(n, dtype=np.int64))
        if (a < 1).any():
            raise InvalidParameterError(f"Elias codes need integers >= 1; got {n!r}")
        L = _bitlen(a)
        if (L > 48).any():
            raise InvalidParameterError("Elias delta here supports integers < 2^48")
        gl = 2 * (_bitlen(L) - 1) + 1
        val = (L.astype(np.uint64) << (L - 1).astype(np.uint64)) | (
            a.astype(np.uint64) - (np.uint64(1) << (L - 1).astype(np.uint64)))
        self.write_array(val, gl + L - 1)

    def write_bytes(self, data: bytes) -> None:
        self._add(np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8)))

    def bits(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.uint8)

    def getvalue(self) -> bytes:
        return np.packbits(self.bits()).tobytes()


class BitReader:
    """Reads what :class:`BitWriter` wrote; reading past the end raises :class:`DataError`."""

    def __init__(self, data: bytes, *, n_bits: int | None = None) -> None:
        self.bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
        if n_bits is not None:
            self.bits = self.bits[: max(0, int(n_bits))]
        self.pos = 0

    @property
    def remaining(self) -> int:
        return int(self.bits.size - self.pos)

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.bits.size:
            raise DataError(f"truncated or corrupt code: need {n} more bits at bit {self.pos}, "
                            f"only {self.remaining} left")

    def read_bits(self, n: int) -> np.ndarray:
        n = int(n)
        self._need(n)
        out = self.bits[self.pos:self.pos + n]
        self.pos += n
        return out

    def read(self, nbits: int) -> int:
        b = self.read_bits(nbits)
        v = 0
        for chunk in range(0, b.size, 64):
            part = b[chunk:chunk + 64]
            v = (v << part.size) | int(part.astype(np.uint64) @ (np.uint64(1) << np.arange(
                part.size - 1, -1, -1, dtype=np.uint64)) if part.size else 0)
        return v

    def read_array(self, n: int, nbits: int) -> np.ndarray:
        """``n`` unsigned values of ``nbits`` (<= 63) bits each, as int64."""
        if nbits == 0:
            return np.zeros(n, dtype=np.int64)
        b = self.read_bits(n * nbits).reshape(n, nbits).astype(np.int64)
        return b @ (np.int64(1) << np.arange(nbits - 1, -1, -1, dtype=np.int64))

    def read_gamma(self) -> int:
        look = self.bits[self.pos:self.pos + 64]
        ones = np.flatnonzero(look)
        if ones.size == 0:
            raise DataError(f"truncated or corrupt Elias code at bit {self.pos}")
        z = int(ones[0])
        self.pos += z
        return self.read(z + 1)

    def read_delta(self) -> int:
        L = self.read_gamma()
        if L > 63:
            raise DataError(f"corrupt Elias delta code at bit {self.pos} (length {L})")
        return (1 << (L - 1)) | self.read(L - 1)

    def read_bytes(self, n: int) -> bytes:
        return np.packbits(self.read_bits(8 * n)).tobytes()


# ====================================================================== Huffman
def huffman_code_lengths(freqs) -> np.ndarray:
    """Optimal (Huffman 1952) prefix-code lengths for nonnegative frequencies; unused symbols get 0.

    Built with a heap over the used symbols (ties broken by symbol order, deterministic). A single used
    symbol gets length 0: its count is known to the decoder, so it costs no bits (Kraft sum 2^0 = 1).
    Guarantees for >= 2 used symbols: Kraft equality ``sum 2^-l = 1`` and
    ``H <= sum p_i l_i < H + 1`` (Cover & Thomas, Thm 5.8.1).
    """
    f = np.asarray(freqs, dtype=np.float64).reshape(-1)
    if not np.isfinite(f).all() or (f < 0).any():
        raise InvalidParameterError("freqs must be finite and >= 0")
    lengths = np.zeros(f.size, dtype=np.int64)
    used = np.flatnonzero(f > 0)
    if used.size <= 1:
        return lengths
    # heap items: (weight, tie, node id); leaves 0..u-1, internal nodes after
    heap = [(float(f[s]), i, i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    parent: list[int] = [-1] * used.size
    nid = used.size
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)
        w2, _, b = heapq.heappop(heap)
        parent.append(-1)
        parent[a] = nid
        parent[b] = nid
        heapq.heappush(heap, (w1 + w2, nid, nid))
        nid += 1
    depth = np.zeros(nid, dtype=np.int64)
    for node in range(nid - 2, -1, -1):  # parents have larger ids: fill from the root down
        depth[node] = depth[parent[node]] + 1
    lengths[used] = depth[:used.size]
    return lengths


def canonical_huffman(lengths) -> np.ndarray:
    """Canonical prefix codes (Schwartz & Kallick 1964; DEFLATE, RFC 1951 Sec. 3.2.2) for code lengths.

    Symbols are ordered by (length, symbol); each code is the previous one plus one, shifted left when
    the length grows. Returns uint64 code values (read MSB-first in ``lengths[i]`` bits); 0 for unused.
    """
    L = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (L < 0).any() or (L > 62).any():
        raise InvalidParameterError("code lengths must lie in [0, 62]")
    codes = np.zeros(L.size, dtype=np.uint64)
    used = np.flatnonzero(L > 0)
    if used.size == 0:
        return codes
    if float(np.sum(np.ldexp(1.0, -L[used]))) > 1.0 + 1e-12:
        raise InvalidParameterError("code lengths violate the Kraft inequality; no prefix code exists")
    order = used[np.lexsort((used, L[used]))]
    code = 0
    prev = int(L[order[0]])
    for s in order:  # alphabet-sized loop (<= 2^16), not per coded symbol
        ls = int(L[s])
        code <<= ls - prev
        prev = ls
        codes[s] = code
        code += 1
    return codes


def _huffman_decode(reader: BitReader, lengths: np.ndarray, n: int) -> np.ndarray:
    """Decode ``n`` canonical-Huffman symbols from ``reader`` (vectorised window lookup + pointer chase).

    For every bit position p in the candidate region, the ``Lmax``-bit window starting at p determines the
    code length (searchsorted over left-aligned canonical limits) and the symbol; the actual code starts are
    then followed with one cheap Python step per symbol.
    """
    L = np.asarray(lengths, dtype=np.int64)
    lmax = int(L.max())
    used = np.flatnonzero(L > 0)
    order = used[np.lexsort((used, L[used]))]
    lens_sorted = L[order]
    codes = canonical_huffman(L)
    # left-aligned first code of each length and cumulative limit
    region = min(reader.remaining, n * lmax)
    bits = reader.bits[reader.pos:reader.pos + region]
    padded = np.concatenate([bits, np.zeros(lmax, dtype=np.uint8)]).astype(np.int64)
    win = np.lib.stride_tricks.sliding_window_view(padded, lmax)[:region]
    w = win @ (np.int64(1) << np.arange(lmax - 1, -1, -1, dtype=np.int64))
    left = codes[order].astype(np.int64) << (lmax - lens_sorted)  # left-aligned codes, increasing
    rank = np.searchsorted(left, w, side="right") - 1  # last code whose left-aligned value <= window
    rank = np.clip(rank, 0, order.size - 1)
    step = lens_sorted[rank]
    sym_at = order[rank]
    steps = step.tolist()
    starts = [0] * n
    p = 0
    for i in range(n):
        if p >= region:
            raise DataError(f"truncated or corrupt Huffman stream at bit {reader.pos + p}")
        starts[i] = p
        p += steps[p]
    if p > region:
        raise DataError(f"truncated or corrupt Huffman stream at bit {reader.pos + region}")
    st = np.asarray(starts, dtype=np.int64)
    # a window whose value does not match the chosen code (possible only with padding past the end)
    if st.size and (w[st] >> (lmax - step[st])).astype(np.uint64).tolist() != codes[sym_at[st]].tolist():
        raise DataError("corrupt Huffman stream: invalid code word")
    reader.pos += p
    return sym_at[st]


# ====================================================================== range coder
_RC_BITS = 64
_RC_MASK = (1 << _RC_BITS) - 1
_RC_TOP = 1 << (_RC_BITS - 8)
_RC_MAX_TOTAL = 1 << 32


def _rc_freqs(counts) -> list[int]:
    """Integer frequencies used by the range coder: the counts, rescaled deterministically (keeping every
    used symbol >= 1) only if their total exceeds 2^32."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    if (c < 0).any():
        raise InvalidParameterError("counts must be >= 0")
    tot = int(c.sum())
    if tot > _RC_MAX_TOTAL:
        sc = np.floor(c.astype(np.float64) * (_RC_MAX_TOTAL // 2) / tot).astype(np.int64)
        sc[(c > 0) & (sc == 0)] = 1
        c = sc
    return c.tolist()


def range_encode(symbols, counts) -> bytes:
    """Range coder (Martin 1979; LZMA-style carry propagation) with a static model given by ``counts``.

    64-bit range, renormalisation bytewise when the range drops below 2^56; the counts' total must be
    <= 2^32 (else rescaled), so the per-symbol loss from integer division is below ``2^-24`` relative.
    The final flush emits the shortest byte string pinning a value in the last interval; trailing zero
    bytes are dropped (the decoder pads with zeros). Output length <= ``n H_counts + ~10`` bits.
    """
    f = _rc_freqs(counts)
    cum = [0]
    for x in f:
        cum.append(cum[-1] + x)
    total = cum[-1]
    sym = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if sym.size and (sym.min() < 0 or sym.max() >= len(f)):
        raise InvalidParameterError(f"symbols must lie in [0, {len(f)})")
    if sym.size and min(f[s] for s in set(sym.tolist())) == 0:
        raise InvalidParameterError("a coded symbol has count 0")
    if sym.size == 0:
        return b""
    out = bytearray()
    low, rng, cache, pending, first = 0, _RC_MASK, 0, 0, True
    top, mask, hi = _RC_TOP, _RC_MASK, 0xFF << (_RC_BITS - 8)

    def shift_low(low, cache, pending, first):
        if low < hi or low > mask:
            carry = low >> _RC_BITS
            if first:
                first = False
            else:
                out.append((cache + carry) & 0xFF)
            out.extend([(0xFF + carry) & 0xFF] * pending)
            pending = 0
            cache = (low >> (_RC_BITS - 8)) & 0xFF
        else:
            pending += 1
        return (low << 8) & mask, cache, pending, first

    for s in sym.tolist():
        r = rng // total
        low += r * cum[s]
        rng = r * f[s]
        while rng < top:
            rng <<= 8
            low, cache, pending, first = shift_low(low, cache, pending, first)
    # flush: the value in [low, low + rng) with the most trailing zero bytes
    for nb in range(0, _RC_BITS // 8 + 1):
        unit = 1 << (_RC_BITS - 8 * nb)
        v = -(-low // unit) * unit
        if v < low + rng:
            break
    low = v
    for _ in range(nb):
        low, cache, pending, first = shift_low(low, cache, pending, first)
    carry = low >> _RC_BITS
    if not first:
        out.append((cache + carry) & 0xFF)
    out.extend([(0xFF + carry) & 0xFF] * pending)
    while out and out[-1] == 0:
        out.pop()
    return bytes(out)


def range_decode(blob: bytes, counts, n: int) -> np.ndarray:
    """Inverse of :func:`range_encode`: ``n`` symbols from ``blob`` with the same ``counts``."""
    f = _rc_freqs(counts)
    cum = [0]
    for x in f:
        cum.append(cum[-1] + x)
    total = cum[-1]
    n = check_positive_int("n", n, minimum=0)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if total == 0:
        raise DataError("range_decode: all counts are zero but n > 0")
    data = bytes(blob)
    nbytes = len(data)
    pos = _RC_BITS // 8
    code = int.from_bytes(data[:pos].ljust(pos, b"\0"), "big")
    rng = _RC_MASK
    top = _RC_TOP
    out = [0] * n
    br = bisect.bisect_right
    for i in range(n):
        r = rng // total
        v = code // r
        if v >= total:
            raise DataError("corrupt range-coded stream")
        s = br(cum, v) - 1
        out[i] = s
        code -= r * cum[s]
        rng = r * f[s]
        while rng < top:
            code = ((code << 8) | (data[pos] if pos < nbytes else 0)) & _RC_MASK
            pos += 1
            rng <<= 8
    return np.asarray(out, dtype=np.int64)


def empirical_entropy_bits(symbols) -> float:
    """``n * H(p_hat)`` in bits: the ideal static code length of the sequence given its own counts."""
    s = np.asarray(symbols).reshape(-1)
    if s.size == 0:
        return 0.0
    _, c = np.unique(s, return_counts=True)
    p = c / s.size
    return float(-(c * np.log2(p)).sum())
