"""Reads the operating thresholds from the shipped model file's header."""
import struct

from common import ROOT


def thresholds(path=ROOT / "crates" / "moat-intent" / "model" / "intent.bin"):
    b = open(path, "rb").read(8 + 4 + 4 + 12 + 4 + 36)
    heads = struct.unpack("<9f", b[32:68])
    return [heads[2], heads[5], heads[8]]
