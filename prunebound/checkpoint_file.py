"""The checkpoint file format of :mod:`prunebound.io`, and reading untrusted files without running code.

:func:`read_checkpoint` sniffs a file before any parser sees it and returns its tensors and validated JSON header:

* a ``torch.save`` zip archive must hold only the members ``torch.save`` writes, stored uncompressed, with sizes
  inside the file -- so nothing larger than the file is ever allocated -- and is then read with
  ``torch.load(weights_only=True)``; a pickle that needs anything but tensors and containers is refused with
  :class:`~prunebound.errors.UnsafeCheckpointError`, without passing on PyTorch's advice to use
  ``weights_only=False``;
* a ``.safetensors`` file has its header checked against the file size (offsets, shapes) before it is opened;
* anything else is named for what it is (empty, text, gzip, PNG, random bytes, a raw or legacy pickle stream)
  and refused: :class:`~prunebound.errors.DataError`, or ``UnsafeCheckpointError`` for pickle streams, whose
  declared sizes cannot be checked before allocation.

The header (``prunebound-model-v2``) is validated for types and sizes; the tensors for names, dtypes and count.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from prunebound.errors import DataError, UnsafeCheckpointError

__all__ = ["read_checkpoint", "FORMAT", "FORMAT_V1", "IMPORT_PATH"]

FORMAT = "prunebound-model-v2"
FORMAT_V1 = "prunebound-model-v1"
MAX_HEADER = 1 << 20  # bytes of JSON header
MAX_TENSORS = 100_000
FINGERPRINT_N = 4
FINGERPRINT_SEED = 0
_MAX_FP_INPUT = 1 << 20  # elements of one fingerprint input
_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64,
                               torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}
IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
                         r"(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TORCH_MEMBERS = re.compile(r"^[^/]+/(data\.pkl|byteorder|version|\.data/version|\.data/serialization_id|"
                            r"data/\d+|\.format_version|\.storage_alignment)$")


def _describe(head: bytes) -> str:
    if not head:
        return "an empty file"
    if head[:2] == b"\x1f\x8b":
        return "a gzip archive"
    if head[:4] == b"\x89HDF":
        return "an HDF5 file"
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy array"
    if head[:5] == b"%PDF-":
        return "a PDF document"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "a PNG image"
    try:
        text = head.decode("utf-8")
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return "a text file" + (" (JSON)" if text.lstrip()[:1] in "{[" else "")
    except UnicodeDecodeError:
        pass
    return f"unrecognised binary data (first bytes {head[:8].hex()})"


def _sanitize(e: BaseException) -> str:
    """PyTorch's unpickling error without its advice to pass ``weights_only=False`` (unsafe to pass on)."""
    msg = str(e)
    m = re.search(r"WeightsUnpickler error:\s*(.*)", msg)
    if m:
        return m.group(1).splitlines()[0][:200]
    line = next((s for s in msg.splitlines() if s.strip() and "weights_only" not in s), "")
    return line[:200]


def _check_zip(p: Path, size: int) -> None:
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{p}: a damaged or truncated zip archive, not a readable checkpoint ({e})") from None
    names = [i.filename for i in infos]
    if not any(n.endswith("/data.pkl") for n in names) or len({n.split("/", 1)[0] for n in names}) != 1:
        raise DataError(f"{p}: a zip archive but not a PyTorch checkpoint (members: {', '.join(names[:5])}"
                        f"{' ...' if len(names) > 5 else ''}); expected the members torch.save writes")
    bad = [n for n in names if not _TORCH_MEMBERS.match(n)]
    if bad:
        raise DataError(f"{p}: zip member {bad[0]!r} is not one torch.save writes; refusing the file")
    total = 0
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED:
            raise DataError(f"{p}: zip member {i.filename!r} is compressed; torch.save never compresses, "
                            "refusing a file whose unpacked size is not bounded by its own size")
        if i.header_offset + i.file_size > size:
            raise DataError(f"{p}: zip member {i.filename!r} declares {i.file_size:,} bytes beyond the end of "
                            f"the {size:,}-byte file (truncated or forged)")
        total += i.file_size
    if total > size:
        raise DataError(f"{p}: zip members declare {total:,} bytes in a {size:,}-byte file (forged sizes)")


def _read_safetensors(p: Path, size: int, head: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER or 8 + n > size:
        raise DataError(f"{p}: safetensors header of {n:,} bytes does not fit the {size:,}-byte file")
    with open(p, "rb") as f:
        f.seek(8)
        raw = f.read(n)
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: safetensors header is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{p}: safetensors header is not a JSON object")
    data_len = size - 8 - n
    for k, v in meta.items():
        if k == "__metadata__":
            continue
        if (not isinstance(v, dict) or not isinstance(v.get("shape"), list) or not isinstance(v.get("data_offsets"),
                                                                                                list)):
            raise DataError(f"{p}: safetensors entry {k!r:.80} is malformed")
        shape, (a, b) = v["shape"], v["data_offsets"]
        if (not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40 for s in shape)
                or not all(isinstance(o, int) for o in (a, b)) or not 0 <= a <= b <= data_len):
            raise DataError(f"{p}: safetensors entry {k!r:.80} declares shape {shape!r:.80} / offsets {[a, b]} "
                            f"outside the file's {data_len:,} data bytes")
        if math.prod(shape) > b - a:  # at least one byte per element for every dtype
            raise DataError(f"{p}: safetensors entry {k!r:.80} declares shape {shape} but holds {b - a} bytes")
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types; report without a traceback
        raise DataError(f"{p}: not a valid safetensors file ({str(e).splitlines()[0][:200]})") from None
    return sd, dict(md)


def read_checkpoint(p: Path) -> tuple[dict[str, torch.Tensor], dict | None, str | None]:
    """Tensors and the (parsed) header of a checkpoint; the header is None for a bare state_dict."""
    if not p.exists():
        raise DataError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise DataError(f"{p} is not a regular file (a directory or device), not a checkpoint")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(64)
    if head[:4] == b"PK\x03\x04":
        _check_zip(p, size)
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError (refused globals) or a damaged pickle
            detail = _sanitize(e)
            if "Unsupported" in detail or "global" in detail.lower() or "persistent" in detail.lower():
                raise UnsafeCheckpointError(
                    f"{p}: refused to load -- the checkpoint's pickle needs more than plain tensors and containers "
                    f"({detail}); loading it could execute code. Re-save the state_dict with "
                    "prunebound.io.save_model or torch.save(state_dict)") from None
            raise DataError(f"{p}: a PyTorch zip archive whose contents are damaged ({detail})") from None
        if isinstance(obj, Mapping) and obj.get("format") in (FORMAT, FORMAT_V1):
            sd, fmt = obj.get("state_dict"), obj["format"]
            htext = obj.get("header") if fmt == FORMAT else obj.get("architecture")
            if not isinstance(sd, Mapping) or not isinstance(htext, str):
                raise DataError(f"{p}: prunebound checkpoint without a state_dict mapping and a JSON header string")
            return _tensors(p, sd), _parse_header(p, htext, fmt), fmt
        if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj):
            if all(isinstance(v, torch.Tensor) for v in obj.values()):
                return _tensors(p, obj), None, None
        raise DataError(f"{p}: a PyTorch checkpoint but not a state_dict (expected a mapping of names to tensors "
                        f"or a prunebound model file, got {type(obj).__name__})")
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if n <= size - 8:
            sd, md = _read_safetensors(p, size, head)
            sd = _tensors(p, sd)
            fmt = md.get("format")
            if fmt == FORMAT and isinstance(md.get("header"), str):
                return sd, _parse_header(p, md["header"], fmt), fmt
            if fmt == FORMAT_V1 and isinstance(md.get("architecture"), str):
                return sd, _parse_header(p, md["architecture"], fmt), fmt
            return sd, None, None
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise UnsafeCheckpointError(
            f"{p}: refused to load -- a raw pickle stream (pickle.dump or the legacy torch.save format), whose "
            "declared sizes cannot be checked before allocation and which could execute code. Re-save it with "
            "torch.save (zip format) or prunebound.io.save_model")
    raise DataError(f"{p}: not a model checkpoint -- it is {_describe(head)}, not a torch.save zip archive or a "
                    ".safetensors file")


def _tensors(p: Path, sd: Mapping) -> dict[str, torch.Tensor]:
    if len(sd) > MAX_TENSORS:
        raise DataError(f"{p}: {len(sd):,} tensors, more than the {MAX_TENSORS:,} allowed")
    out = {}
    seen: set[int] = set()
    for k, v in sd.items():
        if not isinstance(k, str) or not k or len(k) > 1000 or ".." in k or k.startswith(".") or k.endswith("."):
            raise DataError(f"{p}: invalid tensor name {k!r:.80}")
        if not isinstance(v, torch.Tensor):
            raise DataError(f"{p}: entry {k!r} is a {type(v).__name__}, not a tensor")
        if str(v.dtype) not in _DTYPES or v.is_sparse or v.is_quantized:
            raise DataError(f"{p}: tensor {k!r} has unsupported dtype/layout {v.dtype}/{v.layout}")
        ptr = v.untyped_storage().data_ptr()
        if ptr and ptr in seen:  # storage shared with another entry without a declared tie: give it its own
            v = v.clone()
        seen.add(ptr)
        out[k] = v
    return out


def _parse_header(p: Path, text: str, fmt: str) -> dict:
    if len(text) > MAX_HEADER:
        raise DataError(f"{p}: header of {len(text):,} characters exceeds {MAX_HEADER:,}")
    try:
        h = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: header is not valid JSON ({e.msg})") from None
    if fmt == FORMAT_V1:  # v1 stored only the architecture spec
        return {"format": FORMAT_V1, "reference": {"kind": "spec", "spec": h}, "tied": [], "pruned": None,
                "fingerprint": None, "dtypes": None}
    if not isinstance(h, dict):
        raise DataError(f"{p}: header must be a JSON object")
    for key, typ in (("reference", dict), ("tied", list), ("pruned", list), ("dtypes", dict)):
        if not isinstance(h.get(key), typ):
            raise DataError(f"{p}: header field {key!r} must be a {typ.__name__}; got {h.get(key)!r:.80}")
    fp = h.get("fingerprint")
    if fp is not None:
        ok = (isinstance(fp, dict) and isinstance(fp.get("input_shape"), list)
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in fp["input_shape"])
              and 1 <= len(fp["input_shape"]) <= 8 and isinstance(fp.get("outputs"), list)
              and isinstance(fp.get("output_shape"), list) and fp.get("n") == FINGERPRINT_N
              and fp.get("seed") == FINGERPRINT_SEED
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in fp["outputs"]))
        if not ok:
            raise DataError(f"{p}: header field 'fingerprint' is malformed")
        if math.prod(fp["input_shape"]) > _MAX_FP_INPUT or len(fp["outputs"]) > _MAX_FP_INPUT:
            raise DataError(f"{p}: fingerprint input shape {fp['input_shape']} exceeds {_MAX_FP_INPUT:,} elements")
    return h
