"""The key-value cache: what a model keeps per token so that generation need not recompute it.

Each attention layer decides *what* it caches (full keys and values for multi-head attention,
one latent vector for multi-head latent attention); the cache only stores and counts it. Buffers
are preallocated for the model's context length, so appending a token is a copy, not a
reallocation of everything cached so far. That makes two byte counts: the bytes *filled* (what
the tokens so far occupy, what a per-token formula predicts) and the bytes *allocated* (the
whole buffers, ``max_len`` positions, held from the first token on). Positions not yet written
hold NaN, so reading past the filled part cannot go unnoticed.
"""

from __future__ import annotations

import torch


class LayerCache:
    """One layer's cached tensors, each (batch, seq, ...), filled up to ``length`` positions."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.length = 0
        self.buffers: dict[str, torch.Tensor] = {}

    def update(self, **new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Append ``new[name]``: (batch, t, ...) for each name; return the full cached tensors.

        All tensors of a layer are appended together, for the same t new positions, and come
        back in the order given.
        """
        t = next(iter(new.values())).shape[1]
        end = self.length + t
        if end > self.max_len:
            raise ValueError(f"cache holds {self.max_len} positions; {end} requested")
        out = []
        for name, x in new.items():
            if x.shape[1] != t:
                raise ValueError(f"{name} has {x.shape[1]} new positions, expected {t}")
            buf = self.buffers.get(name)
            if buf is None:
                buf = x.new_full((x.shape[0], self.max_len, *x.shape[2:]), float("nan"))
                self.buffers[name] = buf
            buf[:, self.length : end] = x
            out.append(buf[:, :end])
        self.length = end
        return tuple(out)

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on (to rewind after a trial step, say)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"can truncate to 0..{self.length} positions, not {length}")
        self.length = length

    def tensors(self) -> dict[str, torch.Tensor]:
        """The filled part of each buffer."""
        return {name: buf[:, : self.length] for name, buf in self.buffers.items()}

    def nbytes_filled(self) -> int:
        """Bytes of the filled part of every cached tensor: ``length`` positions."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def nbytes_allocated(self) -> int:
        """Bytes of every buffer as allocated: ``max_len`` positions, filled or not."""
        return sum(buf.numel() * buf.element_size() for buf in self.buffers.values())


class KVCache:
    """A cache for every layer of a model with context length ``max_len``."""

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.layers = [LayerCache(max_len) for _ in range(n_layer)]

    @property
    def seq_len(self) -> int:
        """Positions cached so far (the position of the next token)."""
        return self.layers[0].length

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on, in every layer: rewind the whole model's
        cache, as speculative decoding does after a rejected draft."""
        for layer in self.layers:
            layer.truncate(length)

    def nbytes_filled(self) -> int:
        """Bytes of all layers' cached tensors, filled part only (``seq_len`` positions)."""
        return sum(layer.nbytes_filled() for layer in self.layers)

    def nbytes_allocated(self) -> int:
        """Bytes of all layers' buffers as allocated (``max_len`` positions each)."""
        return sum(layer.nbytes_allocated() for layer in self.layers)
