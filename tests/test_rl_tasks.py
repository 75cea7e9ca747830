import random

import pytest

from effllm.rl_tasks import (
    ACCURACY_REWARD,
    FORMAT_REWARD,
    AdditionTask,
    Problem,
    demonstrations,
    is_correct,
    is_well_formed,
    parse_answer,
    reward,
    split_of,
)
from effllm.tokenizer import BOS, EOS, decode


@pytest.mark.parametrize(
    "text", ["", "<", "<49", "495", "<495", "495>", "<4 95>", "<495>x", "(594)<495>", "\ufffd<1>"]
)
def test_malformed_output_is_none_and_earns_zero(text):
    assert parse_answer(text) is None
    assert reward(text, 495) == 0.0
    assert not is_correct(text, 495)


@pytest.mark.parametrize("text", ["<\u0664\u0669\u0665>", "<\uff14\uff19\uff15>", "<4\u096f5>"])
def test_only_ascii_digits_are_an_answer(text):
    # Arabic-Indic, full-width and Devanagari digits: int() would read them as 495.
    assert parse_answer(text) is None
    assert reward(text, 495) == 0.0
    assert not is_correct(text, 495) and not is_well_formed(text)


def test_reward_weights_are_arguments():
    assert reward("<495>", 495, format_reward=1.0, accuracy_reward=2.0) == 3.0
    assert reward("<496>", 495, format_reward=1.0, accuracy_reward=2.0) == 1.0
    assert reward("495", 495, format_reward=1.0, accuracy_reward=2.0) == 0.0
    assert is_well_formed("<496>") and not is_well_formed("<496>", finished=False)


def test_parser_never_raises_on_non_strings():
    assert parse_answer(None) is None  # type: ignore[arg-type]
    assert parse_answer(495) is None  # type: ignore[arg-type]


def test_format_and_accuracy_rewards():
    assert parse_answer("<495>") == 495
    assert reward("<495>", 495) == pytest.approx(FORMAT_REWARD + ACCURACY_REWARD)
    assert reward("<496>", 495) == pytest.approx(FORMAT_REWARD)  # well-formed but wrong
    assert reward("<495>", 495, finished=False) == 0.0  # cut off before EOS
    assert is_correct("<495>", 495) and not is_correct("<496>", 495)
    assert reward("495", 495) == 0.0  # right number, not in the tag


def test_problem_texts():
    p = Problem(37, 458, 3)
    assert p.prompt == "037+458=" and p.answer == 495
    assert p.tagged == "<495>" and p.untagged == "495"


def test_problems_are_deterministic_and_splits_do_not_overlap():
    task = AdditionTask(2)
    a = task.problems(300, "train", seed=1)
    assert a == task.problems(300, "train", seed=1)
    assert a != task.problems(300, "train", seed=2)
    assert len(set(a)) == 300
    held = task.problems(400, "heldout", seed=1)
    assert not {(p.a, p.b) for p in a} & {(p.a, p.b) for p in held}
    assert all(split_of(p.a, p.b) == "train" for p in a)
    assert all(split_of(p.a, p.b) == "heldout" for p in held)
    share = sum(split_of(x, y) == "heldout" for x in range(100) for y in range(100)) / 10_000
    assert 0.07 < share < 0.13


def test_swapped_operands_fall_on_the_same_side():
    # The split is by the unordered pair: a held-out a+b never has b+a in training.
    assert all(split_of(x, y) == split_of(y, x) for x in range(100) for y in range(100))
    held = AdditionTask(2).problems(400, "heldout", seed=1)
    train = {(p.a, p.b) for p in AdditionTask(2).problems(3000, "train", seed=1)}
    assert not {(p.b, p.a) for p in held} & train


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="n_digits"):
        AdditionTask(0)
    with pytest.raises(ValueError, match="split"):
        AdditionTask(2).problems(5, "test", seed=0)
    with pytest.raises(ValueError, match="n must be"):
        AdditionTask(1).problems(50, "heldout", seed=0)
    with pytest.raises(ValueError, match="tagged_fraction"):
        demonstrations([], 1.5, random.Random(0))


def test_prompts_have_one_length_and_sft_targets_cover_only_the_completion():
    task = AdditionTask(3)
    problems = task.problems(4, "train", seed=0)
    prompts = task.encode_prompts(problems)
    assert prompts.shape == (4, task.prompt_len) and (prompts[:, 0] == BOS).all()
    texts = [p.tagged for p in problems[:2]] + [p.untagged for p in problems[2:]]
    x, y = task.sft_batch(problems, texts)
    assert x.shape == y.shape == (4, task.prompt_len + task.max_completion_len - 1)
    assert (y[:, : task.prompt_len - 1] == -100).all()
    for row, text in zip(y.tolist(), texts, strict=True):
        kept = [t for t in row if t != -100]
        assert kept[-1] == EOS and decode(kept) == text
    with pytest.raises(ValueError, match="longer"):
        task.sft_batch(problems[:1], ["<12345678>"])


def test_demonstrations_tag_about_the_requested_share():
    problems = AdditionTask(2).problems(1000, "train", seed=0)
    demos = demonstrations(problems, 0.3, random.Random(0))
    share = sum(d.startswith("<") for d in demos) / len(demos)
    assert 0.25 < share < 0.35
    assert all(parse_answer(d) in (None, p.answer) for d, p in zip(demos, problems, strict=True))
