"""A small multi-domain training corpus, generated on the spot: nothing is downloaded.

Five domains with different statistics, so that a mixture of experts has something to
specialise on:

- ``arithmetic``: additions and their results, ``"482+75=557"``
- ``sorting``: a list of numbers and the same list sorted, ``"sort 7 3 9 -> 3 7 9"``
- ``brackets``: balanced strings over three bracket pairs, ``"([]{()})"``
- ``english``: the docstrings of Python's standard library
- ``code``: the source code of Python's standard library

The synthetic domains are generated from a seed; the two text domains are read from the Python
installation itself, so they differ slightly between Python versions but need no download.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import random
import warnings
from dataclasses import dataclass

import torch

DOMAINS = ("arithmetic", "sorting", "brackets", "english", "code")

# Pure-Python standard-library modules present in every CPython 3.11+ (Colab included).
_STDLIB = (
    "argparse",
    "ast",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "configparser",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.message",
    "enum",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "gzip",
    "heapq",
    "html.parser",
    "http.client",
    "inspect",
    "ipaddress",
    "json.decoder",
    "json.encoder",
    "logging",
    "mailbox",
    "pathlib",
    "pickle",
    "pprint",
    "queue",
    "random",
    "shlex",
    "shutil",
    "smtplib",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "tokenize",
    "typing",
    "unittest.case",
    "urllib.parse",
    "uuid",
    "wave",
    "zipfile",
)


def _arithmetic(rng: random.Random, n_chars: int) -> str:
    lines, size = [], 0
    while size < n_chars:
        a, b = rng.randrange(1000), rng.randrange(1000)
        line = f"{a}+{b}={a + b}\n"
        lines.append(line)
        size += len(line)
    return "".join(lines)


def _sorting(rng: random.Random, n_chars: int) -> str:
    lines, size = [], 0
    while size < n_chars:
        xs = [rng.randrange(100) for _ in range(rng.randint(3, 8))]
        line = f"sort {' '.join(map(str, xs))} -> {' '.join(map(str, sorted(xs)))}\n"
        lines.append(line)
        size += len(line)
    return "".join(lines)


def _balanced(rng: random.Random, n_pairs: int) -> str:
    """A random balanced string of n_pairs pairs over (), [] and {}."""
    out, stack, opened = [], [], 0
    while opened < n_pairs or stack:
        if opened < n_pairs and (not stack or rng.random() < 0.55):
            o, c = rng.choice(("()", "[]", "{}"))
            out.append(o)
            stack.append(c)
            opened += 1
        else:
            out.append(stack.pop())
    return "".join(out)


def _brackets(rng: random.Random, n_chars: int) -> str:
    lines, size = [], 0
    while size < n_chars:
        line = _balanced(rng, rng.randint(2, 12)) + "\n"
        lines.append(line)
        size += len(line)
    return "".join(lines)


@functools.cache
def _stdlib_text(kind: str) -> str:
    """Docstrings (``kind="english"``) or source code (``kind="code"``) of the stdlib list."""
    parts = []
    for name in _STDLIB:
        module = importlib.import_module(name)
        if kind == "code":
            parts.append(inspect.getsource(module))
            continue
        docs = [inspect.getdoc(module)]
        with warnings.catch_warnings():  # typing.io / typing.re warn when touched
            warnings.simplefilter("ignore", DeprecationWarning)
            for _, obj in sorted(vars(module).items()):
                if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == name:
                    docs.append(inspect.getdoc(obj))
        parts += [d for d in docs if d and d.isascii()]
    return "\n\n".join(parts) + "\n"


def domain_text(domain: str, n_chars: int, seed: int = 0) -> str:
    """About ``n_chars`` characters of ``domain`` (synthetic ones depend on ``seed``).

    The text domains return a slice of the standard library's text starting at an offset
    chosen by ``seed``, so train and validation text can come from different parts.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {DOMAINS}")
    if n_chars <= 0:
        raise ValueError(f"n_chars must be positive, got {n_chars}")
    rng = random.Random(f"{domain}:{seed}")
    if domain == "arithmetic":
        return _arithmetic(rng, n_chars)
    if domain == "sorting":
        return _sorting(rng, n_chars)
    if domain == "brackets":
        return _brackets(rng, n_chars)
    return _stdlib_text(domain)[:n_chars] if seed == 0 else _stdlib_text(domain)[-n_chars:]


@dataclass
class Corpus:
    """Train and validation text for each domain, encoded as bytes, with a batch sampler.

    ``chars_per_domain`` of training text per domain, a tenth of that for validation. The text
    domains take training text from the start of the standard library's text and validation text
    from its end; asking for more than fits without overlap is an error.
    """

    domains: tuple[str, ...] = DOMAINS
    chars_per_domain: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("a corpus needs at least one domain")
        val_chars = max(1_000, self.chars_per_domain // 10)
        for d in self.domains:
            if d in ("english", "code") and self.chars_per_domain + val_chars > len(
                _stdlib_text(d)
            ):
                raise ValueError(
                    f"domain {d!r} has {len(_stdlib_text(d)):,} characters; "
                    f"{self.chars_per_domain:,} + {val_chars:,} would overlap train and validation"
                )
        self.data = {
            "train": [_bytes(domain_text(d, self.chars_per_domain, 0)) for d in self.domains],
            "val": [_bytes(domain_text(d, val_chars, 1)) for d in self.domains],
        }

    def sample(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random windows: inputs and next-byte targets (batch, seq_len), domain ids (batch,).

        Each row comes from one domain, drawn uniformly.
        """
        if split not in self.data:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        texts = self.data[split]
        dom = torch.randint(len(texts), (batch_size,), generator=generator)
        rows = []
        for d in dom.tolist():
            text = texts[d]
            if len(text) <= seq_len + 1:
                raise ValueError(f"domain {self.domains[d]!r} has too little text for {seq_len=}")
            start = int(torch.randint(len(text) - seq_len - 1, (1,), generator=generator))
            rows.append(text[start : start + seq_len + 1])
        block = torch.stack(rows).long()
        return block[:, :-1], block[:, 1:], dom


def _bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)
