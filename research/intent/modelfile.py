"""Writer for the moat-intent model file (format documented on `IntentModel` in
crates/moat-intent/src/lib.rs)."""
import struct

import numpy as np

MAGIC = b"MOATINT\0"


def fnv1a32(b: bytes) -> int:
    h = 0x811C9DC5
    # vectorised enough for ~1 MB: plain loop is fine (runs once per training)
    for x in b:
        h = ((h ^ x) * 0x01000193) & 0xFFFFFFFF
    return h


def write_model(path, *, log2, kinds, sys_bytes, head_bytes, tail_bytes, norm_pow, heads, weights_i8):
    """heads: 3 tuples (scale, bias, threshold); weights_i8: int8 array [2**log2, 3]."""
    n = 1 << log2
    assert weights_i8.shape == (n, 3) and weights_i8.dtype == np.int8
    body = bytearray()
    body += MAGIC
    body += struct.pack("<I", 1)
    body += struct.pack("<BBxx", log2, kinds)
    body += struct.pack("<III", sys_bytes, head_bytes, tail_bytes)
    body += struct.pack("<f", norm_pow)
    for scale, bias, thr in heads:
        body += struct.pack("<fff", scale, bias, thr)
    w4 = np.zeros((n, 4), dtype=np.int8)
    w4[:, :3] = weights_i8
    body += w4.tobytes()
    body += struct.pack("<I", fnv1a32(bytes(body)))
    with open(path, "wb") as f:
        f.write(body)
    return len(body)


if __name__ == "__main__":
    # placeholder: all-zero weights, every score 0.5 and thresholds 1.0 (never flags)
    import sys
    write_model(sys.argv[1], log2=8, kinds=0xFE, sys_bytes=512, head_bytes=1024, tail_bytes=512,
                norm_pow=0.5, heads=[(0.0, 0.0, 1.0)] * 3, weights_i8=np.zeros((256, 3), np.int8))
