"""A byte-level tokenizer: every UTF-8 byte is a token, plus three special tokens.

The labs train from scratch on small generated corpora, so a learned vocabulary would add
nothing but a download. Bytes cover any text; the special tokens mark sequence boundaries.
"""

from __future__ import annotations

import torch

BOS, EOS, PAD = 256, 257, 258
VOCAB_SIZE = 259


def encode(text: str, bos: bool = False, eos: bool = False) -> list[int]:
    """Token ids of ``text``: its UTF-8 bytes, optionally wrapped in BOS/EOS."""
    ids = list(text.encode("utf-8"))
    return ([BOS] if bos else []) + ids + ([EOS] if eos else [])


def decode(ids: list[int] | torch.Tensor, stop_at_eos: bool = True) -> str:
    """Text of token ids. Special tokens are dropped; decoding stops at the first EOS if asked.

    Invalid UTF-8 (a model can emit any byte sequence) is replaced, never raised.
    """
    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    out = bytearray()
    for i in ids:
        if i == EOS and stop_at_eos:
            break
        if 0 <= i < 256:
            out.append(i)
    return out.decode("utf-8", errors="replace")
