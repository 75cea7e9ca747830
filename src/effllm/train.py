"""A plain training loop with a progress bar that returns a tidy history for plotting."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from effllm import runtime
from effllm.validate import positive_int

Batch = tuple[torch.Tensor, torch.Tensor]


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to 10% of ``lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def evaluate(model: nn.Module, get_batch: Callable[[str], Batch], n_batches: int) -> float:
    """Mean loss of ``model`` over ``n_batches`` validation batches."""
    was_training = model.training
    model.eval()
    losses = [model(*get_batch("val"))[1].item() for _ in range(n_batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def train(
    model: nn.Module,
    get_batch: Callable[[str], Batch],
    steps: int,
    lr: float = 3e-3,
    warmup: int = 20,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    eval_every: int = 50,
    eval_batches: int = 4,
    on_step: Callable[[nn.Module], dict | None] | None = None,
    desc: str = "training",
    precision: runtime.Precision | None = None,
) -> pd.DataFrame:
    """Train ``model`` with AdamW; return one row per step.

    Args:
        get_batch: ``get_batch("train")`` / ``get_batch("val")`` return ``(inputs, targets)``;
            the model's forward must return ``(logits, loss)``.
        on_step: called after each optimiser step as ``on_step(model)``; a dict it returns
            is added to that step's row (an MoE's load statistics, say).
        precision: float32 or mixed precision; by default :func:`effllm.runtime.precision` of
            the model's device (mixed on a GPU, float32 on the CPU).

    Returns:
        Columns ``step``, ``train_loss``, ``lr``, ``elapsed_s`` (wall-clock seconds since the
        start, evaluation excluded), ``val_loss`` (every ``eval_every`` steps and at the end,
        NaN elsewhere), plus whatever ``on_step`` returned.
    """
    steps = positive_int("steps", steps)
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=lr,
        betas=(0.9, 0.95),
    )
    if precision is None:
        precision = runtime.precision(next(model.parameters()).device)
    scaler = precision.grad_scaler()
    rows, elapsed = [], 0.0
    model.train()
    bar = tqdm(range(steps), desc=desc)
    for step in bar:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        with precision.autocast():
            _, loss = model(*get_batch("train"))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
        row = {"step": step + 1, "train_loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
        if on_step is not None:
            row.update(on_step(model) or {})
        elapsed += time.perf_counter() - t0
        row["elapsed_s"] = elapsed
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            row["val_loss"] = evaluate(model, get_batch, eval_batches)
            bar.set_postfix(val_loss=f"{row['val_loss']:.3f}")
        rows.append(row)
    return pd.DataFrame(rows)
