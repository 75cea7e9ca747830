import pytest
import torch

from effllm import tokenizer
from effllm.attention import AttentionConfig
from effllm.kv_cache import KVCache
from effllm.layers import RotaryEmbedding
from effllm.model import ModelConfig, Transformer
from effllm.train import lr_at, train


def test_tokenizer_round_trip_and_specials():
    ids = tokenizer.encode("héllo", bos=True, eos=True)
    assert ids[0] == tokenizer.BOS and ids[-1] == tokenizer.EOS
    assert tokenizer.decode(ids) == "héllo"
    assert tokenizer.decode([104, tokenizer.EOS, 105]) == "h"
    assert tokenizer.decode([0xFF, 0xFE]) == "\ufffd\ufffd"  # invalid UTF-8 never raises


def test_forward_shapes_and_loss(tiny_config):
    torch.manual_seed(0)
    model = Transformer(tiny_config)
    idx = torch.randint(0, 256, (3, 10))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 10, tokenizer.VOCAB_SIZE)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(259.0)).item(), rel=0.1)


def test_cached_decoding_matches_full_forward(tiny_config):
    torch.manual_seed(0)
    model = Transformer(tiny_config).eval()
    idx = torch.randint(0, 256, (2, 12))
    full, _ = model(idx)
    cache = KVCache(tiny_config.n_layer, tiny_config.max_len)
    pieces = [model(idx[:, :5], cache=cache)[0]]  # prefill 5, then 3 at once, then one by one
    pieces.append(model(idx[:, 5:8], cache=cache)[0])
    pieces += [model(idx[:, i : i + 1], cache=cache)[0] for i in range(8, 12)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-4, atol=1e-5)
    assert cache.seq_len == 12
    k = cache.layers[0].tensors()["k"]
    assert cache.nbytes_filled() == 2 * tiny_config.n_layer * k.numel() * k.element_size()


def test_generate_with_and_without_cache_agree_greedily(tiny_config):
    torch.manual_seed(0)
    model = Transformer(tiny_config).eval()
    idx = torch.randint(0, 256, (2, 4))
    a = model.generate(idx, 8, temperature=0, use_cache=True)
    b = model.generate(idx, 8, temperature=0, use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 12)
    with pytest.raises(ValueError, match="exceed max_len"):
        model.generate(idx, 40)


def test_bad_shapes_are_value_errors():
    with pytest.raises(ValueError, match="divisible by n_head"):
        Transformer(ModelConfig(d_model=30, attention=AttentionConfig(n_head=4)))
    with pytest.raises(ValueError, match="unknown attention kind"):
        Transformer(ModelConfig(attention=AttentionConfig(kind="fancy")))
    with pytest.raises(ValueError, match="unknown ffn kind"):
        Transformer(ModelConfig(ffn="sparse"))
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7, 8)


def test_rope_preserves_norm_and_depends_on_offset():
    rope = RotaryEmbedding(8, 16)
    x = torch.randn(1, 3, 2, 8)
    y = rope(x, start_pos=2)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    assert not torch.allclose(rope(x, 0), y)
    with pytest.raises(ValueError, match="exceed"):
        rope(x, start_pos=14)


def test_lr_schedule():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)


def test_train_lowers_loss_on_a_learnable_sequence(tiny_config):
    torch.manual_seed(0)
    model = Transformer(tiny_config)
    seq = torch.arange(17) % 7 + 97  # "abcdefgabcd..."

    def get_batch(split):
        return seq[:-1].repeat(4, 1), seq[1:].repeat(4, 1)

    seen = []

    def on_step(m):
        seen.append(m)
        return {"calls": len(seen)}

    hist = train(
        model, get_batch, 60, lr=1e-2, warmup=5, eval_every=30, eval_batches=1, on_step=on_step
    )
    assert list(hist.columns[:3]) == ["step", "train_loss", "lr"]
    assert seen == [model] * 60 and hist["calls"].tolist() == list(range(1, 61))
    assert hist["val_loss"].dropna().iloc[-1] < 0.5 * hist["train_loss"].iloc[0]
    assert hist["elapsed_s"].is_monotonic_increasing
