"""Multi-token prediction (effllm.mtp), the cache's rollback and greedy self-speculative decoding
(effllm.speculative)."""

import functools

import pytest
import torch
import torch.nn.functional as F

from effllm import presets, runtime
from effllm.attention import AttentionConfig
from effllm.model import ModelConfig, Transformer
from effllm.mtp import MTPConfig, MTPTransformer, combine, mtp_accuracy
from effllm.speculative import speculative_generate
from effllm.train import train

CFG = ModelConfig(max_len=48, n_layer=2, d_model=32, d_ff=64, attention=AttentionConfig(n_head=4))


def model(depth=1, lam=0.3, seed=0):
    torch.manual_seed(seed)
    return MTPTransformer(CFG, MTPConfig(depth=depth, lam=lam))


def test_shapes_of_every_depth():
    m = model(depth=3)
    x, y = torch.randint(0, 256, (2, 10)), torch.randint(0, 256, (2, 10))
    logits, loss = m.eval()(x, y)
    assert logits.shape == (2, 10, CFG.vocab_size) and loss.shape == ()
    per_depth = m.mtp_logits(m.main.hidden(x), y)
    assert [t.shape for t in per_depth] == [(2, 10 - k, CFG.vocab_size) for k in (1, 2, 3)]
    assert m.main.hidden(x).shape == (2, 10, CFG.d_model)


def test_combine_is_the_projection_of_the_two_normalised_parts():
    g = torch.Generator().manual_seed(0)
    h, e = 5 * torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    M, g_h, g_e = torch.randn(4, 8, generator=g), torch.rand(4, generator=g), torch.rand(4)
    rms = lambda x: x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()  # noqa: E731
    want = rms(h) * g_h @ M[:, :4].T + rms(e) * g_e @ M[:, 4:].T  # M_k's columns: h first
    assert torch.allclose(combine(h, e, M, g_h, g_e), want, atol=1e-5)
    assert torch.allclose(combine(10 * h, e, M, g_h, g_e), want, atol=1e-5)  # scale-free in h


@pytest.mark.parametrize("j", [3, 6, 9])
def test_no_position_sees_its_own_target(j):
    """Changing token s_j changes nothing that depth k computes at positions i < j - k (which
    predict s_{i+k+1} from s_0..s_{i+k}), and does change position j - k."""
    m = model(depth=2).eval()
    s = torch.randint(0, 256, (2, 13))
    s2 = s.clone()
    s2[:, j] = (s[:, j] + 1) % 256

    def outputs(seq):
        x, y = seq[:, :-1], seq[:, 1:]
        h0 = m.main.hidden(x)
        return [m.main.head(h0), *m.mtp_logits(h0, y)]

    with torch.no_grad():
        before, after = outputs(s), outputs(s2)
    for k, (a, b) in enumerate(zip(before, after, strict=True)):
        assert torch.allclose(a[:, : j - k], b[:, : j - k], atol=1e-6), (k, j)
        assert not torch.allclose(a[:, j - k], b[:, j - k], atol=1e-4), (k, j)


def test_per_position_losses_of_earlier_positions_do_not_move_with_a_later_target():
    m = model(depth=1).eval()
    s = torch.randint(0, 256, (1, 12))
    s2 = s.clone()
    s2[:, 8] = (s[:, 8] + 7) % 256  # the target of depth 1 at position 6

    def losses(seq):
        x, y = seq[:, :-1], seq[:, 1:]
        (l1,) = m.mtp_logits(m.main.hidden(x), y)
        return F.cross_entropy(l1[0], y[0, 1:], reduction="none")

    with torch.no_grad():
        a, b = losses(s), losses(s2)
    assert torch.allclose(a[:6], b[:6]) and not torch.isclose(a[6], b[6])


def test_embedding_and_head_are_shared_and_get_the_mtp_gradient():
    m = model(depth=2)
    params = list(m.parameters())
    assert sum(p is m.main.embed.weight for p in params) == 1
    assert sum(p is m.main.head.weight for p in params) == 1
    own = {id(p) for p in m.mtp.parameters()}
    assert id(m.main.embed.weight) not in own and id(m.main.head.weight) not in own
    assert all(p.shape[0] != CFG.vocab_size for p in m.mtp.parameters())
    x, y = torch.randint(0, 256, (2, 9)), torch.randint(0, 256, (2, 9))
    sum(m.mtp_losses(m.main.hidden(x), y)).backward()  # the MTP loss alone
    assert m.main.head.weight.grad.abs().sum() > 0
    assert m.main.embed.weight.grad[y[:, :-1].flatten()].abs().sum() > 0  # embedded t_{i+k}
    assert m.main.blocks[0].attn_norm.weight.grad.abs().sum() > 0  # and the main model's trunk


def test_training_loss_is_main_plus_lambda_over_depth_times_the_mtp_losses():
    m = model(depth=2, lam=0.4)
    x, y = torch.randint(0, 256, (3, 8)), torch.randint(0, 256, (3, 8))
    h0 = m.main.hidden(x)
    main = F.cross_entropy(m.main.head(h0).flatten(0, 1), y.flatten())
    terms = []
    for k, lk in enumerate(m.mtp_logits(h0, y), start=1):  # -(1/T) Σ over the T - k positions
        terms.append(F.cross_entropy(lk.flatten(0, 1), y[:, k:].flatten()) * (8 - k) / 8)
    _, loss = m.train()(x, y)
    assert torch.allclose(loss, main + 0.4 / 2 * sum(terms), atol=1e-5)
    _, eval_loss = m.eval()(x, y)
    assert torch.allclose(eval_loss, main, atol=1e-5)  # evaluation: the next-token loss alone


def test_main_model_starts_as_a_plain_transformer_of_the_same_seed():
    torch.manual_seed(0)
    plain = Transformer(CFG)
    for (n, a), b in zip(
        plain.state_dict().items(), model().main.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), n


def test_cache_truncate_rewinds_every_layer():
    torch.manual_seed(0)
    t = Transformer(CFG).eval()
    a, b, c = (
        torch.randint(0, 256, (1, 5)),
        torch.randint(0, 256, (1, 2)),
        torch.randint(0, 256, (1, 3)),
    )
    cache = t.new_cache()
    with torch.no_grad():
        t(a, cache=cache)
        t(b, cache=cache)
        cache.truncate(5)
        assert [layer.length for layer in cache.layers] == [5] * CFG.n_layer
        rolled = t(c, cache=cache)[0]
        fresh = t(torch.cat([a, c], 1))[0][:, 5:]
    assert torch.allclose(rolled, fresh, atol=1e-5)
    with pytest.raises(ValueError, match="truncate to 0..8"):
        cache.truncate(9)


@functools.cache
def _trained(steps=40):
    """A tiny MTP model trained for a few steps on a repeating pattern with noise: enough for
    its drafts to be kept often but not always."""
    m = model()
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([ord(ch) for ch in "abcdefgh"])

    def batch(split):
        start = torch.randint(0, 8, (16, 1), generator=g)
        s = base[(start + torch.arange(33)) % 8]
        noise = torch.rand(s.shape, generator=g) < 0.1
        s = torch.where(noise, torch.randint(0, 256, s.shape, generator=g), s)
        return s[:, :-1], s[:, 1:]

    train(m, batch, steps, lr=1e-2, warmup=5, eval_every=steps, eval_batches=1, desc="tiny")
    return m.eval(), batch


def test_greedy_speculative_decoding_is_plain_greedy_decoding_token_for_token():
    """On a trained model (drafts mostly kept) and an untrained one (drafts rejected, so the
    cache is rolled back at every step)."""
    g = torch.Generator().manual_seed(1)
    kept = rejected = 0
    for m in (_trained()[0], model(seed=1).eval()):
        for _ in range(3):
            prompt = torch.randint(97, 105, (1, 6), generator=g)
            plain = m.main.generate(prompt, 30, temperature=0)
            spec, stats = speculative_generate(m, prompt, 30)
            assert torch.equal(spec, plain)
            assert stats.tokens == 30 and stats.drafts == stats.main_passes - 1
            assert stats.tokens_per_pass == pytest.approx(30 / stats.main_passes)
            kept, rejected = kept + stats.accepted, rejected + stats.drafts - stats.accepted
    assert kept > 0 and rejected > 0  # both paths, and the cache's rollback, were taken


def test_mtp_accuracy_rises_with_training_and_speculation_checks_its_input():
    untrained = model().eval()
    m, batch = _trained()
    x, y = batch("val")
    assert mtp_accuracy(m, x, y)[0] > 0.5 > mtp_accuracy(untrained, x, y)[0]
    with pytest.raises(ValueError, match="one prompt at a time"):
        speculative_generate(m, x[:2, :4], 4)
    with pytest.raises(ValueError, match="at most max_len"):
        speculative_generate(m, x[:1, :4], CFG.max_len)


def test_mtp_presets_build_and_the_gpu_one_trains_a_step_on_cpu():
    cpu, gpu = (presets.PRESETS["mtp"][n] for n in ("cpu", "gpu"))
    assert gpu.prompt_len + gpu.new_tokens <= gpu.model().max_len
    assert cpu.prompt_len + cpu.new_tokens <= cpu.model().max_len
    small, big = MTPTransformer(cpu.model(), cpu.mtp), MTPTransformer(gpu.model(), gpu.mtp)
    assert sum(p.numel() for p in big.parameters()) > 3 * sum(p.numel() for p in small.parameters())
    runtime.seed_everything(0)
    idx = torch.randint(0, 256, (2, 33))
    before = big.mtp[0].proj.weight.detach().clone()
    hist = train(big, lambda s: (idx[:, :-1], idx[:, 1:]), steps=1, eval_every=1, eval_batches=1)
    assert hist["train_loss"].notna().all()
    assert not torch.equal(before, big.mtp[0].proj.weight)
