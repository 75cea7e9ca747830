import hashlib
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


def test_text_domains_look_like_prose_and_code():
    english = domain_text("english", 5000)
    assert english.isascii() and " the " in english and max(map(len, english.splitlines())) <= 72
    code = domain_text("code", 5000)
    assert "def " in code and "    return " in code and '"""' in code


# sha256 of domain_text(d, 100_000, seed=0) + domain_text(d, 10_000, seed=1): the text every
# student trains on. Measured identical under CPython 3.10, 3.11, 3.12 and 3.13. A change here
# changes every lab that trains on the corpus: re-check their checkpoints before updating it.
CORPUS_SHA256 = {
    "arithmetic": "e3ab3ea65cbfbec1d1cb51d44946a05b9dc71066f945632af9fe361b2e93026d",
    "sorting": "54dd37f3aec4e0125f833105364e04ca777fdc9ad1162cc2fa6e235659573cf1",
    "brackets": "0101090c45318b30f1fe6c0768efc32ab853775a01dc6f50dd328387ffc90300",
    "english": "7d42a0a53069f5e941180c4dcb9679e038054ea5a19b5a379337906f5a05a288",
    "code": "bdd45764cfa2424665f6980d07fcee2f2a0147a214c1043ede935637a96b33de",
}


def test_corpus_is_pinned():
    assert tuple(CORPUS_SHA256) == DOMAINS
    for domain, digest in CORPUS_SHA256.items():
        text = domain_text(domain, 100_000, seed=0) + domain_text(domain, 10_000, seed=1)
        assert hashlib.sha256(text.encode()).hexdigest() == digest, domain


def test_longer_text_extends_shorter_text():
    for domain in DOMAINS:
        assert domain_text(domain, 30_000).startswith(domain_text(domain, 10_000))


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
    with pytest.raises(ValueError, match="at least one domain"):
        Corpus(domains=())
