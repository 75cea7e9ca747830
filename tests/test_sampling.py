import pytest
import torch
from torch import nn

from effllm.model import Transformer
from effllm.rl_tasks import AdditionTask
from effllm.sampling import Rollout, sample_group, sample_next
from effllm.tokenizer import BOS, EOS, PAD, encode


def _uncached_sample(model, prompts, group_size, new, temperature, top_k, generator):
    """The same sampling loop as sample_group, re-running the whole prefix at every step."""
    rows = prompts.repeat_interleave(group_size, dim=0)
    done = torch.zeros(rows.shape[0], dtype=torch.bool)
    for _ in range(new):
        logits, _ = model(rows)
        nxt = sample_next(logits[:, -1], temperature, top_k, generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        rows = torch.cat([rows, nxt[:, None]], dim=1)
        done = done | (nxt == EOS)
        if done.all():
            break
    return rows


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (0.0, None)])
def test_cached_sampling_matches_uncached(temperature, top_k, tiny_config):
    torch.manual_seed(0)
    model = Transformer(tiny_config).eval()
    task = AdditionTask(2)
    prompts = task.encode_prompts(task.problems(3, "train", seed=0))
    a = sample_group(model, prompts, 4, 10, temperature, top_k, torch.Generator().manual_seed(3))
    b = _uncached_sample(
        model, prompts, 4, 10, temperature, top_k, torch.Generator().manual_seed(3)
    )
    assert torch.equal(a.tokens, b)
    assert a.tokens.shape[0] == 12 and torch.equal(a.tokens[:4, :7], prompts[:1].expand(4, -1))


def test_mask_finished_and_texts():
    # Rows built by hand: "<12>" EOS | "7" BOS "3" EOS | cut off at the length limit.
    prompt = encode("1+2=", bos=True)
    comps = [
        encode("<12>") + [EOS, PAD],
        encode("7") + [BOS] + encode("3") + [EOS, PAD],
        encode("999999"),
    ]
    width = max(len(c) for c in comps)
    comps = [c + [PAD] * (width - len(c)) for c in comps]
    tokens = torch.tensor([prompt + c for c in comps])
    mask = torch.tensor([[t != PAD for t in c] for c in comps])
    mask[:, 0] = True
    finished = torch.tensor([True, True, False])
    roll = Rollout(tokens, len(prompt), mask, finished)
    assert roll.texts() == ["<12>", "7\ufffd3", "999999"]  # a stray BOS is garbage, not skipped
    assert roll.lengths.tolist() == [5, 4, 6]


def test_sampling_stops_at_eos_and_masks_after_it(tiny_config):
    torch.manual_seed(1)
    model = Transformer(tiny_config).eval()
    head = nn.Linear(
        tiny_config.d_model, tiny_config.vocab_size
    )  # a bias that makes EOS likely (~10%)
    with torch.no_grad():
        head.weight.copy_(model.head.weight)
        head.bias.zero_()
        head.bias[EOS] = 3.4
    model.head = head
    prompts = torch.tensor([encode("12+34=", bos=True)])
    roll = sample_group(model, prompts, 16, 12, 1.0, None, torch.Generator().manual_seed(0))
    comp = roll.completions
    assert 0 < int(roll.finished.sum()) < 16  # some rows ended early, some ran to the limit
    for row, keep, fin in zip(comp, roll.mask, roll.finished, strict=True):
        n = int(keep.sum())
        assert keep[:n].all() and not keep[n:].any()
        assert (row[n:] == PAD).all()
        assert bool(fin) == (row[n - 1] == EOS)


def test_sample_next_greedy_top_k_and_errors():
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0], [3.0, 0.0, 0.0, 0.0]])
    assert sample_next(logits, 0.0).tolist() == [[1], [0]]
    g = torch.Generator().manual_seed(0)
    draws = {
        tuple(sample_next(logits, 1.0, top_k=2, generator=g)[:, 0].tolist()) for _ in range(50)
    }
    assert {d[0] for d in draws} == {1, 2}  # both of the top two are drawn, nothing else
    with pytest.raises(ValueError, match="temperature cannot be negative, got -1.0"):
        sample_next(logits, -1.0)


def test_bad_sampling_arguments(tiny_config):
    model = Transformer(tiny_config)
    with pytest.raises(ValueError, match="prompts must be"):
        sample_group(model, torch.zeros(5, dtype=torch.long), 2, 4)
    with pytest.raises(ValueError, match="group_size"):
        sample_group(model, torch.zeros(1, 5, dtype=torch.long), 0, 4)
    with pytest.raises(ValueError, match="exceed max_len"):
        sample_group(model, torch.zeros(1, tiny_config.max_len - 4, dtype=torch.long), 2, 5)
