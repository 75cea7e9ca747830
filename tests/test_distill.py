"""effllm.distill: the rejection filter, the masked losses, the FLOP arithmetic."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from effllm import distill, grpo
from effllm.grpo import GRPOConfig
from effllm.model import ModelConfig, Transformer
from effllm.rl_tasks import AdditionTask

TASK = AdditionTask(2)
TINY = ModelConfig(max_len=16, n_layer=1, d_model=16, d_ff=32)


def test_the_filter_keeps_graded_correct_completions_only():
    texts = ["<12>", "<13>", "12", "<12>", "<12> ", ""]
    finished = [True, True, True, False, True, True]
    assert distill.keep_correct(texts, [12] * 6, finished) == [True] + [False] * 5


def test_rejection_sampling_counts_what_it_drew_and_keeps_only_correct_ones():
    torch.manual_seed(0)
    teacher = Transformer(TINY)
    problems = TASK.problems(5, "train", seed=0)
    everything = distill.rejection_sample(
        teacher, TASK, problems, 3, keep=lambda t, a, f: [True] * len(t)
    )
    assert everything.drawn == everything.kept == 15
    assert [p.prompt for p in everything.problems[:3]] == [problems[0].prompt] * 3
    some = distill.rejection_sample(
        teacher, TASK, problems, 3, keep=lambda t, a, f: [True, False, False] * 5
    )
    assert some.kept == 5 and some.yield_rate == pytest.approx(1 / 3)


def logits(seed, shape=(3, 4, 7)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2


def test_the_kl_is_zero_when_student_and_teacher_agree_and_positive_otherwise():
    z, mask = logits(0), torch.ones(3, 4, dtype=torch.bool)
    assert distill.distillation_loss(z, z.clone(), mask, 2.0).item() == pytest.approx(0, abs=1e-6)
    assert distill.distillation_loss(logits(1), z, mask, 2.0).item() > 0.01


def test_the_kl_is_the_teachers_cross_entropy_minus_its_entropy_scaled_by_tau_squared():
    s, t, mask, tau = logits(0), logits(1), torch.ones(3, 4, dtype=torch.bool), 3.0
    p = F.softmax(t / tau, dim=-1)
    cross = -(p * F.log_softmax(s / tau, dim=-1)).sum(-1).mean()
    entropy = -(p * p.log()).sum(-1).mean()
    want = tau**2 * (cross - entropy)
    assert distill.distillation_loss(s, t, mask, tau).item() == pytest.approx(want.item(), rel=1e-5)


def test_the_kl_runs_teacher_first():
    s, t, mask = logits(0), logits(1), torch.ones(3, 4, dtype=torch.bool)
    p, q = F.log_softmax(t, -1), F.log_softmax(s, -1)
    forward = (p.exp() * (p - q)).sum(-1).mean()
    backward = (q.exp() * (q - p)).sum(-1).mean()
    got = distill.distillation_loss(s, t, mask, 1.0).item()
    assert got == pytest.approx(forward.item(), rel=1e-5)
    assert abs(got - backward.item()) > 1e-3


def test_masked_positions_do_not_count():
    s, t = logits(0), logits(1)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    s2 = s.clone()
    s2[~mask] = 100.0  # whatever the student says on padding
    base = distill.distillation_loss(s, t, mask, 2.0)
    torch.testing.assert_close(distill.distillation_loss(s2, t, mask, 2.0), base)
    # the mean is over the 6 real positions, not over all 12
    per = [
        distill.distillation_loss(s[i : i + 1], t[i : i + 1], mask[i : i + 1], 2.0)
        for i in range(3)
    ]
    counts = mask.sum(1).float()
    assert base.item() == pytest.approx((torch.stack(per) * counts).sum().item() / 6, rel=1e-5)


def test_sft_batches_mask_the_prompt_and_padding():
    problems = TASK.problems(2, "train", seed=0)
    x, y = TASK.sft_batch(problems, ["<1>", problems[1].tagged])
    assert (y[:, : TASK.prompt_len - 1] == -100).all()
    assert (y[0] != -100).sum().item() == 4  # '<', '1', '>', EOS
    assert x.shape[1] == distill.positions(TASK)


@pytest.mark.parametrize("soft", [False, True])
def test_sft_lowers_the_students_loss_on_the_kept_completions(soft):
    torch.manual_seed(0)
    problems = TASK.problems(32, "train", seed=1)
    data = distill.TeacherSamples(problems, [p.tagged for p in problems], drawn=40)
    student, teacher = Transformer(TINY), Transformer(TINY)
    hist = distill.sft(student, TASK, data, 20, 8, 1e-2, teacher=teacher if soft else None)
    assert hist["train_loss"].iloc[-5:].mean() < hist["train_loss"].iloc[:5].mean()


def test_the_distillation_prompts_are_the_grpo_runs_prompts():
    cfg = GRPOConfig(steps=3, prompts_per_step=4, G=2, seed=7)
    prompts = distill.grpo_prompts(TASK, cfg)
    assert len(prompts) == 12
    assert prompts[4:8] == grpo.training_problems(TASK, cfg, 2)
    assert distill.grpo_prompts(TASK, dataclasses.replace(cfg, seed=8)) != prompts


def test_flop_parameters_leave_out_the_embedding_table_only():
    model = Transformer(TINY)
    assert distill.flop_params(model) == model.num_params() - TINY.vocab_size * TINY.d_model


def test_flop_arithmetic():
    N, P = 1000, distill.positions(TASK)  # 7 prompt + 6 completion - 1 = 12
    assert P == 12
    assert distill.forward_flops(N, 10, TASK) == 2 * N * 10 * 12
    assert distill.sft_flops(N, 10, TASK) == 6 * N * 10 * 12
    assert distill.rl_flops(N, 100.0, mu=1) == 10 * N * 100
    assert distill.rl_flops(N, 100.0, mu=3) == 22 * N * 100
    cfg = GRPOConfig(steps=5, prompts_per_step=4, G=8, mu=2)
    assert distill.grpo_flops(N, cfg, TASK) == (4 + 12) * N * 5 * 4 * 8 * 12
    # the preset's comment: 10 N D per GRPO completion equals 6 N D per SFT sequence at 5 to 3
    assert distill.grpo_flops(N, GRPOConfig(steps=3, prompts_per_step=1, G=2), TASK) == (
        distill.sft_flops(N, 10, TASK)
    )
