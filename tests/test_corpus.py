import re

import pytest
import torch

from effllm.corpus import DOMAINS, Corpus, domain_text


def test_synthetic_domains_are_correct_and_deterministic():
    for line in domain_text("arithmetic", 2000).splitlines():
        a, b, c = map(int, re.fullmatch(r"(\d+)\+(\d+)=(\d+)", line).groups())
        assert a + b == c
    for line in domain_text("sorting", 2000).splitlines():
        xs, ys = line.removeprefix("sort ").split(" -> ")
        assert sorted(map(int, xs.split())) == list(map(int, ys.split()))
    for line in domain_text("brackets", 2000).splitlines():
        while any(p in line for p in ("()", "[]", "{}")):
            line = line.replace("()", "").replace("[]", "").replace("{}", "")
        assert line == ""
    assert domain_text("sorting", 500, seed=3) == domain_text("sorting", 500, seed=3)
    assert domain_text("sorting", 500, seed=3) != domain_text("sorting", 500, seed=4)


def test_text_domains_come_from_python_itself():
    assert "def " in domain_text("code", 5000)
    english = domain_text("english", 5000)
    assert english.isascii() and " the " in english


def test_sample_shapes_targets_and_domains():
    corpus = Corpus(chars_per_domain=20_000)
    g = torch.Generator().manual_seed(0)
    x, y, d = corpus.sample("train", 8, 32, g)
    assert x.shape == y.shape == (8, 32) and d.shape == (8,)
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    assert x.dtype == torch.long and int(x.max()) < 256 and int(d.max()) < len(DOMAINS)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown domain"):
        domain_text("poetry", 10)
    with pytest.raises(ValueError, match="split"):
        Corpus(chars_per_domain=5_000).sample("test", 1, 8)
    with pytest.raises(ValueError, match="overlap"):
        Corpus(domains=("english",), chars_per_domain=10_000_000)
    with pytest.raises(ValueError, match="at least one domain"):
        Corpus(domains=())
