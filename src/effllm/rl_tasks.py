"""A task with a verifiable answer, and the rule-based reward that grades it (R1-Zero style).

DeepSeek-R1-Zero was trained on problems whose answers a program can check: a math answer is
compared with the known result, code is run against tests. No learned reward model is involved.
Here the problems are additions of two zero-padded n-digit numbers, and the answer must be
given between angle brackets, the course's answer tag (R1-Zero asked for ``<answer>`` tags)::

    prompt      "037+458="
    completion  "<495>"    well-formed: graded
    completion  "495"      the right number, but not in the tag: earns nothing

The reward has the two parts R1-Zero uses: a *format* reward for a well-formed completion (one
number in angle brackets, then the end of the sequence) and an *accuracy* reward for the right
number. Anything else (empty, cut off, untagged, garbage) earns 0; the grader never raises.

Operands are zero-padded so that every prompt of a task has the same length: the course's
attention has no padding mask, so a batch of prompts must not need padding.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass

import torch

from effllm.tokenizer import PAD, encode

# Default reward weights; a run sets its own in GRPOConfig (format_reward, accuracy_reward).
FORMAT_REWARD = 0.1
ACCURACY_REWARD = 1.0
SPLITS = ("train", "heldout")
# The answer "<digits>", and nothing else. ASCII digits only: ``\d`` would also accept
# Arabic-Indic or full-width digits, which int() reads but the task never asks for.
_COMPLETION = re.compile(r"<([0-9]{1,12})>")


@dataclass(frozen=True)
class Problem:
    """One addition ``a + b``; ``prompt`` is the text the policy sees, ``answer`` the truth."""

    a: int
    b: int
    n_digits: int

    @property
    def prompt(self) -> str:
        return f"{self.a:0{self.n_digits}d}+{self.b:0{self.n_digits}d}="

    @property
    def answer(self) -> int:
        return self.a + self.b

    @property
    def tagged(self) -> str:
        """The correct, well-formed completion (EOS not included)."""
        return f"<{self.answer}>"

    @property
    def untagged(self) -> str:
        """The correct number without the answer tag: right, but the grader cannot read it."""
        return str(self.answer)


def split_of(a: int, b: int) -> str:
    """``"heldout"`` for about one pair of operands in ten, chosen by a hash, else ``"train"``.

    The hash is of the unordered pair {a, b}, so ``a+b`` and ``b+a`` always fall on the same
    side: a held-out problem's swapped twin is never trained on either. A fixed hash (CRC-32)
    rather than Python's salted ``hash`` keeps the split the same on every machine and run.
    """
    low, high = min(a, b), max(a, b)
    return "heldout" if zlib.crc32(f"{low}+{high}".encode()) % 10 == 0 else "train"


@dataclass(frozen=True)
class AdditionTask:
    """Additions of two ``n_digits``-digit numbers, split into train and held-out problems."""

    n_digits: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.n_digits <= 9:
            raise ValueError(f"n_digits must be between 1 and 9, got {self.n_digits}")

    @property
    def prompt_len(self) -> int:
        """Tokens in every prompt: BOS, two operands, '+' and '='."""
        return 2 * self.n_digits + 3

    @property
    def max_completion_len(self) -> int:
        """Tokens in the longest well-formed completion: '<', n+1 digits, '>', EOS."""
        return self.n_digits + 4

    def problems(self, n: int, split: str, seed: int) -> list[Problem]:
        """``n`` distinct problems of ``split``, drawn deterministically from ``seed``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        top = 10**self.n_digits
        # At most half of the split's problems, so that drawing distinct ones stays quick.
        limit = top * top * (9 if split == "train" else 1) // 20
        if not 1 <= n <= limit:
            raise ValueError(f"n must be between 1 and {limit} for {split!r}, got {n}")
        rng = random.Random(f"{self.n_digits}:{split}:{seed}")
        seen: set[tuple[int, int]] = set()
        out = []
        while len(out) < n:
            a, b = rng.randrange(top), rng.randrange(top)
            if (a, b) not in seen and split_of(a, b) == split:
                seen.add((a, b))
                out.append(Problem(a, b, self.n_digits))
        return out

    def encode_prompts(self, problems: list[Problem]) -> torch.Tensor:
        """Token ids of the prompts, (batch, prompt_len), all of the same length (no padding)."""
        return torch.tensor([encode(p.prompt, bos=True) for p in problems], dtype=torch.long)

    def sft_batch(
        self, problems: list[Problem], completions: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets for supervised training on given completions.

        Both (batch, prompt_len + max_completion_len - 1). Targets are -100 on the prompt (the
        operands are random; only the completion is learned) and on the padding after EOS.
        """
        width = self.prompt_len + self.max_completion_len
        rows, targets = [], []
        for p, text in zip(problems, completions, strict=True):
            ids = encode(p.prompt, bos=True) + encode(text, eos=True)
            if len(ids) > width:
                raise ValueError(f"completion {text!r} is longer than {self.max_completion_len}")
            seq = ids + [PAD] * (width - len(ids))
            tgt = [-100] * (self.prompt_len - 1) + ids[self.prompt_len :]
            rows.append(seq[:-1])
            targets.append(tgt + [-100] * (width - 1 - len(tgt)))
        return torch.tensor(rows), torch.tensor(targets)


def demonstrations(
    problems: list[Problem], tagged_fraction: float, rng: random.Random
) -> list[str]:
    """Correct completions for supervised warm-up, tagged with probability ``tagged_fraction``.

    Every number is right; only the form varies. This is the starting point R1-Zero had: a
    base model that knows something about the task but follows the requested answer format
    only now and then, so the rule-based reward is earned sometimes, not often.
    """
    if not 0 <= tagged_fraction <= 1:
        raise ValueError(f"tagged_fraction must be in [0, 1], got {tagged_fraction}")
    return [p.tagged if rng.random() < tagged_fraction else p.untagged for p in problems]


def parse_answer(completion: str) -> int | None:
    """The answer of a well-formed completion (``"<495>"``), else None.

    Never raises: anything that is not a string or not well-formed gives None.
    """
    if not isinstance(completion, str):
        return None
    match = _COMPLETION.fullmatch(completion)
    return int(match.group(1)) if match else None


def reward(
    completion: str,
    answer: int,
    finished: bool = True,
    format_reward: float = FORMAT_REWARD,
    accuracy_reward: float = ACCURACY_REWARD,
) -> float:
    """R1-Zero-style rule-based reward: ``format_reward`` + ``accuracy_reward``.

    ``completion`` is the decoded text up to (not including) the end-of-sequence token;
    ``finished`` says whether that token was produced. A completion that was cut off at the
    length limit is not well-formed and earns 0, whatever it contains. A well-formed answer
    earns ``format_reward``, and ``accuracy_reward`` more if its number is right.
    """
    value = parse_answer(completion) if finished else None
    if value is None:
        return 0.0
    return format_reward + (accuracy_reward if value == answer else 0.0)


def is_well_formed(completion: str, finished: bool = True) -> bool:
    """Whether the completion earns the format reward: one tagged number, then EOS."""
    return finished and parse_answer(completion) is not None


def is_correct(completion: str, answer: int, finished: bool = True) -> bool:
    """Whether the completion is well-formed and right (what "accuracy" counts)."""
    return finished and parse_answer(completion) == answer
