"""A mixture-of-experts feed-forward layer in the style of DeepSeekMoE and DeepSeek-V3.

Notation of the DeepSeek-V3 report (§2.1.2). For the input ``u_t`` of token t, the layer returns

    sum_{i <= N_s} FFN_i^(s)(u_t)  +  sum_{i <= N_r} g_{i,t} FFN_i^(r)(u_t)

(the block adds the residual ``u_t``). Every expert is a small SwiGLU feed-forward network. The
``N_s`` shared experts see every token; each token goes to only ``K_r`` of the ``N_r`` routed
experts, chosen by the gate:

    s_{i,t} = sigmoid(u_t . e_i)                 affinity of token t to expert i (or a softmax)
    selected = TopK_i(s_{i,t} + b_i, K_r)        the bias b_i steers selection only
    g_{i,t} = s_{i,t} / sum_{j selected} s_{j,t}  for selected i, else 0   (times a route scale)

Balancing the load over the routed experts is one of three methods: ``none``; ``aux_loss``, an
extra loss ``alpha * sum_i f_i P_i`` that is smallest when tokens spread evenly; or ``bias``,
DeepSeek-V3's auxiliary-loss-free method, which after every optimiser step moves each b_i by a
fixed step gamma: down for overloaded experts, up for underloaded ones.

Only the selected experts run on a token. The layer sorts the (token, expert) pairs by expert once;
each routed expert gathers the rows of its tokens, multiplies them by its weights and adds its
gate-weighted output back into its tokens' rows (a grouped matrix multiply); shared experts run on
the tokens where they are. The work is that of the active parameters plus the gathers, the
scatters and the router itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ROUTERS = ("sigmoid", "softmax")
BALANCING = ("none", "aux_loss", "bias")
# Labels of the layer's steps in a torch.profiler trace (tools/benchmarks/moe.py reads them).
PHASES = ("routing", "dispatch", "experts")


@dataclass(frozen=True)
class MoEConfig:
    """Shape and routing of an MoE layer (names follow the DeepSeek-V3 report).

    ``n_routed`` experts N_r of hidden size ``d_expert``, of which each token uses ``top_k``
    (K_r); ``n_shared`` experts N_s of the same size that every token uses. ``router``: sigmoid
    affinities normalised over the selected experts (V3) or a softmax over all experts (earlier
    MoEs, DeepSeekMoE and V2). ``balancing``: ``"none"``, ``"aux_loss"`` (weight
    ``aux_loss_alpha``, alpha) or ``"bias"`` (step ``bias_update_speed``, gamma).
    """

    n_routed: int = 16
    n_shared: int = 1
    top_k: int = 2
    d_expert: int = 32
    router: str = "sigmoid"
    route_scale: float = 1.0
    balancing: str = "bias"
    bias_update_speed: float = 1e-3
    aux_loss_alpha: float = 1e-2

    def __post_init__(self) -> None:
        if self.n_routed <= 0:
            raise ValueError(f"an MoE needs at least one routed expert; n_routed={self.n_routed}")
        if not 1 <= self.top_k <= self.n_routed:
            raise ValueError(f"top_k={self.top_k} must be between 1 and n_routed={self.n_routed}")
        if self.n_shared < 0 or self.d_expert <= 0:
            raise ValueError(
                f"n_shared={self.n_shared} must be >= 0 and d_expert={self.d_expert} positive"
            )
        if self.router not in ROUTERS:
            raise ValueError(f"unknown router {self.router!r}; choose one of {ROUTERS}")
        if self.balancing not in BALANCING:
            raise ValueError(f"unknown balancing {self.balancing!r}; choose one of {BALANCING}")
        if self.bias_update_speed < 0 or self.aux_loss_alpha < 0 or self.route_scale <= 0:
            raise ValueError(
                "bias_update_speed and aux_loss_alpha must be >= 0 and route_scale positive: "
                f"{self.bias_update_speed}, {self.aux_loss_alpha}, {self.route_scale}"
            )

    @property
    def active_hidden(self) -> int:
        """Hidden units each token passes through: (K_r + N_s) * d_expert."""
        return (self.top_k + self.n_shared) * self.d_expert

    @property
    def total_hidden(self) -> int:
        """Hidden units of all experts together: (N_r + N_s) * d_expert."""
        return (self.n_routed + self.n_shared) * self.d_expert


class Gate(nn.Module):
    """The router: affinities s_{i,t}, top-k selection with the bias b_i, gate weights g_{i,t}.

    ``weight`` holds the expert centroids e_i, ``bias`` the selection bias b_i (a buffer: it is
    set by the balancing rule, never by gradients).

    Not implemented: V3's group-limited (node-limited) routing. V3 splits its 256 routed
    experts into 8 groups, first keeps the 4 groups whose best experts score highest and then
    takes the top 8 experts inside those 4 groups only, so that a token's experts sit on at most
    4 nodes and its traffic between nodes stays bounded. Here every token takes its top ``K_r``
    among all ``N_r`` experts: the choice V3 restricts, with nothing to save on one device.
    """

    def __init__(self, d_model: int, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Unit-variance logits for unit-variance inputs: the router prefers some experts from the
        # first step, instead of choosing almost at random while its weights grow.
        self.weight = nn.Parameter(torch.randn(cfg.n_routed, d_model) * d_model**-0.5)
        self.register_buffer("bias", torch.zeros(cfg.n_routed))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (tokens, d_model) -> s (tokens, N_r), g (tokens, K_r), experts chosen (tokens, K_r)"""
        # Experts as rows: (N_r, tokens) logits come from a wide matrix multiply, faster than
        # (tokens, N_r) with only N_r columns. The gate weights are gathered in the same layout,
        # so that their gradient reaches the scores in it too.
        logits = self.weight @ x.t()
        if self.cfg.router == "sigmoid":
            scores = torch.sigmoid(logits)
        else:
            scores = torch.softmax(logits, dim=0)
        # The bias decides which experts are chosen, not how much they count.
        indices = top_k((scores.detach().t() + self.bias).contiguous(), self.cfg.top_k)
        weights = scores.gather(0, indices.t()).t()
        if self.cfg.router == "sigmoid":
            weights = weights / weights.sum(dim=-1, keepdim=True)
        scores = scores.t()
        return scores, weights * self.cfg.route_scale, indices


def top_k(key: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest entries of each row, largest first, ties to the lower index.

    key: (tokens, N_r), overwritten. The same choice as ``torch.topk(key, k).indices`` (up to
    ties), by k passes of ``max``: on a CPU, ``topk`` over a last dimension of a few dozen
    experts costs about ten times as much.
    """
    picks = []
    for j in range(k):
        picks.append(key.max(dim=-1, keepdim=True).indices)
        if j < k - 1:
            key.scatter_(-1, picks[-1], float("-inf"))
    return torch.cat(picks, dim=-1)


class _GroupedMM(torch.autograd.Function):
    """One matrix multiply per expert on the rows of its tokens, gathered or scattered.

    ``pairs[e]`` lists the tokens of expert e's (token, expert) pairs, ``counts[e]`` of them;
    the pairs are sorted by expert. The first ``n_shared`` experts take every token in order,
    and use x or y in place instead of gathering or scattering.

    Without ``gates`` (gather): x is (tokens, k) and the result (pairs, n) holds
    ``x[token] @ w[e]`` for each pair, column-major (a transposed view of an (n, pairs)
    tensor), so that slices of its columns, the halves of the fused w1/w3 output, are
    contiguous. With ``gates`` (combine): x is (pairs, k), gates (routed pairs,) the weights
    g of the routed pairs, and the result (tokens, n) sums each pair's ``g x[pair] @ w[e]``
    into its token's row (g = 1 for shared experts). Each expert gathers and scatters its own
    rows; a gather keeps them for the weights' gradient. Autograd records one node for all
    experts.
    """

    @staticmethod
    def forward(ctx, x, w, pairs, counts, n_shared, gates, tokens):
        if gates is None:
            y = x.new_empty(w.shape[2], sum(counts)).t()
            # Each expert's rows of x, gathered once: the weights' gradient needs them again.
            ctx.x_e = [x if e < n_shared else x.index_select(0, r_e) for e, r_e in enumerate(pairs)]
            for x_e, w_e, y_e in zip(ctx.x_e, w, y.split(counts), strict=True):
                torch.mm(x_e, w_e, out=y_e)
        else:
            y = x.new_zeros(tokens, w.shape[2])
            g = [None] * n_shared + list(gates[:, None].split(counts[n_shared:]))
            for x_e, w_e, r_e, g_e in zip(x.split(counts), w, pairs, g, strict=True):
                if g_e is None:
                    y.addmm_(x_e, w_e)
                else:
                    y.index_add_(0, r_e, (x_e @ w_e).mul_(g_e))
        ctx.save_for_backward(x, w, gates)
        ctx.pairs, ctx.counts, ctx.n_shared = pairs, counts, n_shared
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w, gates = ctx.saved_tensors
        pairs, counts, ns = ctx.pairs, ctx.counts, ctx.n_shared
        w_t, dw = w.transpose(1, 2), torch.empty_like(w)
        if gates is None:
            dx = torch.zeros_like(x)
            for e, (dy_e, w_e, r_e, dw_e) in enumerate(
                zip(dy.split(counts), w_t, pairs, dw, strict=True)
            ):
                if e < ns:
                    dx.addmm_(dy_e, w_e)
                else:
                    dx.index_add_(0, r_e, dy_e @ w_e)
                torch.mm(ctx.x_e[e].t(), dy_e, out=dw_e)
            return dx, dw, None, None, None, None, None
        # For z = g x w: dx = g dz w^T, dg = dz . z = (dz w^T) . x and dw = x^T g dz.
        dx, d_gates = torch.empty_like(x), torch.empty_like(gates)
        routed = zip(gates[:, None].split(counts[ns:]), d_gates.split(counts[ns:]), strict=True)
        g = [None] * ns + list(routed)
        for x_e, w_e, r_e, dx_e, dw_e, g_e in zip(
            x.split(counts), w_t, pairs, dx.split(counts), dw, g, strict=True
        ):
            if g_e is None:
                torch.mm(dy, w_e, out=dx_e)
                torch.mm(x_e.t(), dy, out=dw_e)
                continue
            (g_e, dg_e), dy_e = g_e, dy.index_select(0, r_e)
            torch.mm(dy_e, w_e, out=dx_e)
            torch.linalg.vecdot(dx_e, x_e, out=dg_e)
            torch.mm(x_e.t(), dy_e.mul_(g_e), out=dw_e)
        shared = sum(counts[:ns])
        dx[shared:] *= gates[:, None]
        return dx, dw, None, None, None, d_gates, None


class _SwiGLU(torch.autograd.Function):
    """silu(h1) * h3 for h = [h1; h3], the halves of dim 0; its gradient fills one tensor like h.

    Autograd through ``h.chunk(2)`` would build the gradient of each half and then copy both
    into a new tensor for h; here they are written into it directly.
    """

    @staticmethod
    def forward(ctx, h):
        h1, h3 = h.chunk(2)
        s = F.silu(h1)
        ctx.save_for_backward(h, s)
        return s * h3

    @staticmethod
    def backward(ctx, da):
        h, s = ctx.saved_tensors
        h1, h3 = h.chunk(2)
        dh = torch.empty_like(h)
        dh1, dh3 = dh.chunk(2)
        torch.mul(da, s, out=dh3)
        torch.ops.aten.silu_backward(da * h3, h1, grad_input=dh1)
        return dh


def grouped_swiglu(
    x: torch.Tensor,
    gates: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    rows: torch.Tensor,
    counts: list[int],
    n_shared: int = 0,
) -> torch.Tensor:
    """Sum over each token's experts of ``g * w2[e](silu(x w1[e]) * x w3[e])``.

    x: (tokens, d_model); rows: (pairs,) the token of each (token, expert) pair, sorted so that
    the first ``counts[0]`` pairs go to expert 0, and so on; the first ``n_shared`` experts take
    every token in order, with g = 1; gates: (pairs - n_shared * tokens,) the weight g of each
    routed pair; w13: (experts, d_model, 2 * d_expert) with ``w13[e] = [w1[e] | w3[e]]``; w2:
    (experts, d_expert, d_model). Returns (tokens, d_model).
    """
    if sum(counts) != rows.shape[0] or len(counts) != w13.shape[0]:
        raise ValueError(f"counts {counts} do not split {rows.shape[0]} rows over {w13.shape[0]}")
    # Under autocast (mixed precision on a GPU), the hand-made node runs in autocast's type:
    # its in-place products need one type throughout, and autocast does not look inside it.
    device = x.device.type
    if torch.is_autocast_enabled(device):
        low = torch.get_autocast_dtype(device)
        x, gates, w13, w2 = (t.to(low) for t in (x, gates, w13, w2))
    with torch.autocast(device, enabled=False):
        # Hidden units as rows, pairs as columns: h1 and h3 are contiguous, so the elementwise
        # operations run along long contiguous rows instead of short strided ones.
        pairs = rows.split(counts)
        h = _GroupedMM.apply(x, w13, pairs, counts, n_shared, None, 0)
        a = _SwiGLU.apply(h.t())
        return _GroupedMM.apply(a.t(), w2, pairs, counts, n_shared, gates, x.shape[0])


def run_experts(
    x: torch.Tensor,
    weights: torch.Tensor,
    indices: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    n_shared: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The experts' part of an MoE layer, for routing already decided by the gate.

    x: (tokens, d_model); weights, indices: (tokens, K_r) gate weights g_{i,t} and chosen routed
    experts (numbered from 0 among the routed ones); w13: (N_s + N_r, d_model, 2 * d_expert) and
    w2: (N_s + N_r, d_expert, d_model), shared experts first, as :class:`MoE` stacks them.
    Returns the output sum_i FFN_i^(s)(x) + sum_i g_i FFN_i^(r)(x), (tokens, d_model), and
    counts (N_r,), the tokens routed to each expert.
    """
    T, ns = x.shape[0], n_shared
    n_routed = w13.shape[0] - ns
    with torch.profiler.record_function("dispatch"):
        with torch.no_grad():
            # Sort the (token, expert) pairs by expert, once; within an expert, tokens keep
            # their order. Each shared expert takes every token.
            flat = indices.t().flatten()  # pair k * T + t: token t's k-th choice
            order = flat.argsort(stable=True)
            counts = torch.bincount(flat, minlength=n_routed)
            rows = torch.cat([torch.arange(T, device=x.device).repeat(ns), order % T])
        gates = weights.t().flatten()[order]
    with torch.profiler.record_function("experts"):
        out = grouped_swiglu(x, gates, w13, w2, rows, [T] * ns + counts.tolist(), ns)
    return out, counts


class MoE(nn.Module):
    """Shared plus routed SwiGLU experts behind a :class:`Gate`.

    The experts' weights are stacked, shared experts first: ``w13`` (N_s + N_r, d_model,
    2 * d_expert) holds each expert's fused w1 and w3, ``w2`` (N_s + N_r, d_expert, d_model).
    After each forward the layer keeps, for plots and for the balancing rule, ``counts`` (N_r,)
    routed tokens per expert and ``indices`` (tokens, K_r) the experts each token chose; with
    ``aux_loss`` balancing in training mode, ``aux_loss`` holds the balance loss (else None).
    """

    def __init__(self, d_model: int, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(d_model, cfg)
        n, h = cfg.n_shared + cfg.n_routed, cfg.d_expert
        self.w13 = nn.Parameter(torch.randn(n, d_model, 2 * h) * 0.02)
        self.w2 = nn.Parameter(torch.randn(n, h, d_model) * 0.02)
        self.counts = torch.zeros(cfg.n_routed)
        self.indices = torch.zeros(0, cfg.top_k, dtype=torch.long)
        self.aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)"""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        with torch.profiler.record_function("routing"):
            scores, weights, indices = self.gate(x)
        out, counts = run_experts(x, weights, indices, self.w13, self.w2, self.cfg.n_shared)
        self.counts, self.indices = counts.detach(), indices.detach()
        self.aux_loss = None
        if self.training and self.cfg.balancing == "aux_loss":
            self.aux_loss = balance_loss(scores, counts, self.cfg)
        return out.view(shape)

    @torch.no_grad()
    def update_bias(self) -> None:
        """b_i -= gamma * sign(load_i - mean load), from the last forward's routed tokens."""
        load = self.counts.float()
        self.gate.bias -= self.cfg.bias_update_speed * torch.sign(load - load.mean())

    def num_idle_params(self) -> int:
        """Parameters a token does not use: those of the N_r - K_r routed experts it skips."""
        per_expert = self.w13[0].numel() + self.w2[0].numel()
        return (self.cfg.n_routed - self.cfg.top_k) * per_expert


def balance_loss(scores: torch.Tensor, counts: torch.Tensor, cfg: MoEConfig) -> torch.Tensor:
    """alpha * sum_i f_i P_i: the expert-level balance loss of DeepSeekMoE over one batch.

    scores: (tokens, N_r) affinities s_{i,t}; counts: (N_r,) tokens routed to each expert.
    f_i = N_r / (K_r T) * counts_i is 1 for every expert when the load is even; P_i is the mean
    of the affinities normalised per token. The loss is alpha when balanced, larger otherwise,
    and its gradient pushes down the affinity of the busiest experts.
    """
    T = scores.shape[0]
    f = counts.float() * cfg.n_routed / (cfg.top_k * T)
    P = (scores / scores.sum(dim=-1, keepdim=True)).mean(dim=0)
    return cfg.aux_loss_alpha * (f * P).sum()


def moe_layers(model: nn.Module) -> list[MoE]:
    """The MoE layers of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, MoE)]


def load_fractions(counts: torch.Tensor) -> torch.Tensor:
    """Share of the routed tokens each expert received: counts (N_r,) -> (N_r,), sums to 1."""
    counts = counts.float()
    return counts / counts.sum().clamp(min=1)


def load_entropy(counts: torch.Tensor) -> float:
    """Entropy of the load, as a fraction of its maximum log(N_r): 1 = even, 0 = one expert."""
    p = load_fractions(counts)
    if p.numel() == 1:
        return 1.0
    return float(-(p * p.clamp(min=1e-12).log()).sum() / math.log(p.numel()))


def max_violation(counts: torch.Tensor) -> float:
    """MaxVio = max load / mean load - 1: 0 when even; N_r - 1 when one expert takes all."""
    counts = counts.float()
    return float(counts.max() / counts.mean().clamp(min=1e-12) - 1)


def balance_step(model: nn.Module) -> dict[str, float]:
    """``on_step`` hook for :func:`effllm.train.train`: update biases, return load statistics.

    Layers with ``bias`` balancing get their b_i update. The returned row holds
    ``load_entropy`` and ``max_vio`` (means over the layers) and ``load_l{l}_e{i}``, the share of
    routed tokens of expert i in layer l, for this step's batch.
    """
    row: dict[str, float] = {}
    layers = moe_layers(model)
    for n, layer in enumerate(layers):
        if layer.cfg.balancing == "bias":
            layer.update_bias()
        for i, share in enumerate(load_fractions(layer.counts).tolist()):
            row[f"load_l{n}_e{i}"] = share
    if layers:
        row["load_entropy"] = sum(load_entropy(m.counts) for m in layers) / len(layers)
        row["max_vio"] = sum(max_violation(m.counts) for m in layers) / len(layers)
    return row


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, active) parameters of ``model``; active ones exclude the routed experts skipped."""
    total = sum(p.numel() for p in model.parameters())
    return total, total - sum(m.num_idle_params() for m in moe_layers(model))


def expert_share_by_group(layer: MoE, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Share of each group's routed tokens that went to each expert, from the last forward.

    groups: (tokens,) a group id per token (its data domain, say), in the order the layer saw the
    tokens. Returns (n_groups, N_r); each row sums to 1.
    """
    if groups.numel() != layer.indices.shape[0]:
        raise ValueError(f"{groups.numel()} group ids for {layer.indices.shape[0]} tokens")
    idx = layer.indices.to(groups.device)
    pair_group = groups.repeat_interleave(idx.shape[1])
    table = torch.zeros(n_groups, layer.cfg.n_routed, device=groups.device)
    ones = torch.ones(idx.numel(), device=groups.device)
    table.index_put_((pair_group, idx.flatten()), ones, accumulate=True)
    return table / table.sum(dim=1, keepdim=True).clamp(min=1)
