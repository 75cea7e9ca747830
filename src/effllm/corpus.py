"""A small multi-domain training corpus, generated on the spot from a seed: nothing is downloaded.

Five domains with different statistics, so that a mixture of experts has something to
specialise on:

- ``arithmetic``: additions and their results, ``"482+75=557"``
- ``sorting``: a list of numbers and the same list sorted, ``"sort 7 3 9 -> 3 7 9"``
- ``brackets``: balanced strings over three bracket pairs, ``"([]{()})"``
- ``english``: English-like prose from a small grammar (subject-verb agreement, a tense per
  paragraph, a few hundred words drawn with Zipf-like frequencies), wrapped at 72 columns
- ``code``: Python-like functions and classes from a small grammar (indented blocks, loops,
  conditions, docstrings, variables that are used after they are defined)

Every domain is a pure function of its name and a seed, built only from ``random.Random``'s
integer and float draws, which give the same sequence on every Python version and platform; so
every student trains on the same text (``tests/test_corpus.py`` pins its hash). The text domains
were earlier read from the installed standard library, which made the data, and one lab's
result, depend on the Python version.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from itertools import accumulate

import torch

DOMAINS = ("arithmetic", "sorting", "brackets", "english", "code")


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


class _Zipf:
    """Draws from a word list with probability proportional to 1 / (rank + 2): Zipf-like, the
    first word commonest, but flatter at the head than a pure 1 / rank."""

    def __init__(self, words: str) -> None:
        self.words = tuple(words.split())
        self.cum = tuple(accumulate(1 / (r + 2) for r in range(1, len(self.words) + 1)))

    def __call__(self, rng: random.Random) -> str:
        return self.words[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


# --- english ---------------------------------------------------------------------------------

_NOUN = _Zipf(
    "time year day man woman child people friend family house city river road door window "
    "table book letter story question answer idea reason plan problem village market garden "
    "farmer teacher doctor student king queen soldier sailor painter baker traveller neighbour "
    "ship train horse dog cat bird tree flower field hill mountain forest island bridge wall "
    "morning evening night winter summer storm wind rain fire stone bread cup box basket key "
    "song voice name picture map clock lamp coat boat street shop school church castle tower"
)
_IRREGULAR_PLURAL = {"man": "men", "woman": "women", "child": "children", "people": "people"}
_VERB_T = _Zipf(  # transitive: base form and past tense
    "see:saw take:took find:found give:gave make:made hold:held bring:brought leave:left "
    "open:opened close:closed carry:carried watch:watched follow:followed paint:painted "
    "build:built sell:sold buy:bought read:read write:wrote remember:remembered answer:answered "
    "visit:visited mend:mended clean:cleaned count:counted lose:lost keep:kept push:pushed "
    "pull:pulled need:needed want:wanted call:called meet:met teach:taught"
)
_VERB_I = _Zipf(  # intransitive
    "go:went come:came walk:walked wait:waited sleep:slept sing:sang laugh:laughed run:ran "
    "stay:stayed return:returned work:worked fall:fell rise:rose shine:shone travel:travelled "
    "listen:listened smile:smiled rest:rested speak:spoke"
)
_ADJ = _Zipf(
    "old new small large long short young good little great bright dark quiet heavy light "
    "cold warm empty full green red white black strange careful tired busy narrow wide "
    "ancient gentle proud simple early late distant wooden broken hidden"
)
_ADV = _Zipf(
    "slowly quickly often never always again soon carefully quietly suddenly already "
    "still almost finally gladly rarely"
)
_PREP = _Zipf("in on at with near from to under behind across through over beside into after")
_NAME = _Zipf("Anna Tom Maria John Clara Peter Elena Paul Sara David Lucy Mark Nora Ivan Rosa")
_CONJ = _Zipf("When Because Although After Before If While Once")
_JOIN = ("and", "but", "so", "because", "while")


def _plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURAL:
        return _IRREGULAR_PLURAL[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "x", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


_PRONOUNS = {"he": "him", "she": "her", "it": "it", "they": "them", "we": "us"}


def _noun_phrase(
    rng: random.Random, with_pp: bool = True, subject: bool = False
) -> tuple[str, bool]:
    """A noun phrase and whether it is plural (a pronoun in object case unless ``subject``)."""
    r = rng.random()
    if r < 0.12:
        return _NAME(rng), False
    if r < 0.2:
        pronoun = rng.choice(tuple(_PRONOUNS))
        return pronoun if subject else _PRONOUNS[pronoun], pronoun in ("they", "we")
    plural = rng.random() < 0.35
    noun = _NOUN(rng)
    if noun == "people":
        plural = True
    word = _plural(noun) if plural else noun
    if rng.random() < 0.45:
        word = f"{_ADJ(rng)} {word}"
    if plural:
        det = rng.choice(("the", "the", "some", "many", "these", "those", "their", "our", "two"))
    else:
        det = rng.choice(("the", "the", "the", "a", "a", "this", "that", "every", "her", "his"))
        if det == "a" and word[0] in "aeiou":
            det = "an"
    phrase = f"{det} {word}"
    if with_pp and rng.random() < 0.25:
        phrase += f" {_PREP(rng)} {_noun_phrase(rng, with_pp=False)[0]}"
    return phrase, plural


def _clause(rng: random.Random, past: bool) -> str:
    subject, plural = _noun_phrase(rng, subject=True)
    transitive = rng.random() < 0.65
    base, past_form = (_VERB_T if transitive else _VERB_I)(rng).split(":")
    if past:
        verb = past_form
    elif plural or subject in ("we", "they"):
        verb = base
    else:
        verb = _third_person(base)
    words = [subject]
    if rng.random() < 0.15:
        words.append(_ADV(rng))
    words.append(verb)
    if transitive:
        words.append(_noun_phrase(rng)[0])
    if rng.random() < 0.35:
        words += [_PREP(rng), _noun_phrase(rng, with_pp=False)[0]]
    return " ".join(words)


def _sentence(rng: random.Random, past: bool) -> str:
    r = rng.random()
    if r < 0.45:
        text = _clause(rng, past)
    elif r < 0.75:
        text = f"{_clause(rng, past)}, {rng.choice(_JOIN)} {_clause(rng, past)}"
    else:
        text = f"{_CONJ(rng)} {_clause(rng, past)}, {_clause(rng, past)}"
    return text[0].upper() + text[1:] + ("?" if rng.random() < 0.03 else ".")


def _wrap(words: list[str], width: int = 72) -> str:
    """Greedy line wrapping (kept here so that no library's wrapping rules can change it)."""
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def _english(rng: random.Random, n_chars: int) -> str:
    paragraphs, size = [], 0
    while size < n_chars:
        past = rng.random() < 0.5  # one tense per paragraph
        text = " ".join(_sentence(rng, past) for _ in range(rng.randint(2, 6)))
        paragraph = _wrap(text.split()) + "\n\n"
        paragraphs.append(paragraph)
        size += len(paragraph)
    return "".join(paragraphs)


# --- code ------------------------------------------------------------------------------------

_VAR = _Zipf(
    "value count total result item index name size key data line word node path score "
    "limit offset width height step row column text buffer token price weight start end "
    "left right first last parts items values names lines words rows"
)
_FUNC_VERB = _Zipf(
    "get set load save parse count find update build check merge split read write compute "
    "sort filter scale clip add remove format collect"
)
_CLASS_NOUN = _Zipf("Buffer Table Parser Reader Counter Cache Queue Record Index Graph Node")
_COMMENT = _Zipf(
    "the first value is special skip empty rows keep the order stop at the limit "
    "this is the slow path"
)


class _Code:
    """One generated source file: statements use only the names defined before them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def atom(self, scope: list[str]) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.5:
            return rng.choice(scope)
        if r < 0.75:
            return str(rng.choice((0, 1, 1, 2, 2, 3, 4, 8, 10, 16, 100, rng.randrange(1000))))
        if r < 0.85:
            return f"len({rng.choice(scope)})"
        if r < 0.95:
            return f"{rng.choice(scope)}[{rng.choice(('0', '1', '-1', 'i', 'j'))}]"
        return repr(_VAR(rng))

    def expr(self, scope: list[str]) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.35:
            return self.atom(scope)
        if r < 0.7:
            op = rng.choice(("+", "+", "-", "*", "//", "%"))
            return f"{self.atom(scope)} {op} {self.atom(scope)}"
        if r < 0.8:
            v = rng.choice(("x", "item", "value"))
            op, other = rng.choice(("*", "+", "-")), self.atom(scope)
            return f"[{v} {op} {other} for {v} in {rng.choice(scope)}]"
        if r < 0.9:
            name = f"{_FUNC_VERB(rng)}_{_VAR(rng)}"
            args = rng.sample(scope, min(len(scope), rng.randint(1, 2)))
            return f"{name}({', '.join(args)})"
        return rng.choice(("[]", "{}", "None", "''", "0"))

    def cond(self, scope: list[str]) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.6:
            left, op = self.atom(scope), rng.choice(("<", ">", "==", "!=", "<=", ">="))
            return f"{left} {op} {self.atom(scope)}"
        if r < 0.75:
            return f"{rng.choice(scope)} is {rng.choice(('None', 'not None'))}"
        if r < 0.9:
            return f"not {rng.choice(scope)}"
        return f"{rng.choice(scope)} in {rng.choice(scope)}"

    def block(self, depth: int, scope: list[str], n: int) -> None:
        rng = self.rng
        for _ in range(n):
            r = rng.random()
            if r < 0.35 or depth > 3:
                name = _VAR(rng) if rng.random() < 0.7 else rng.choice(scope)
                self.emit(depth, f"{name} = {self.expr(scope)}")
                if name not in scope:
                    scope = [*scope, name]
            elif r < 0.5:
                self.emit(
                    depth,
                    f"{rng.choice(scope)} {rng.choice(('+=', '-=', '*='))} {self.atom(scope)}",
                )
            elif r < 0.65:
                v = rng.choice(("i", "j", "item", "line", "key"))
                it = rng.choice(
                    (
                        f"range({self.atom(scope)})",
                        rng.choice(scope),
                        f"enumerate({rng.choice(scope)})",
                    )
                )
                if it.startswith("enumerate"):
                    v = f"i, {v}" if v != "i" else "i, item"
                self.emit(depth, f"for {v} in {it}:")
                self.block(depth + 1, [*scope, *v.split(", ")], rng.randint(1, 3))
            elif r < 0.8:
                self.emit(depth, f"if {self.cond(scope)}:")
                self.block(depth + 1, scope, rng.randint(1, 2))
                if rng.random() < 0.3:
                    self.emit(depth, f"elif {self.cond(scope)}:")
                    self.block(depth + 1, scope, 1)
                if rng.random() < 0.4:
                    self.emit(depth, "else:")
                    self.block(depth + 1, scope, 1)
            elif r < 0.87:
                self.emit(depth, f"{rng.choice(scope)}.append({self.expr(scope)})")
            else:  # a print, after a comment more often than not
                if r < 0.93:
                    words = (_COMMENT(rng) for _ in range(rng.randint(2, 6)))
                    self.emit(depth, f"# {' '.join(words)}")
                self.emit(depth, f"print({self.expr(scope)})")

    def function(self, depth: int, attrs: tuple[str, ...] = ()) -> None:
        """A function, or a method of a class with attributes ``attrs`` when there are any."""
        rng = self.rng
        params = list(dict.fromkeys(_VAR(rng) for _ in range(rng.randint(1, 3))))
        name = f"{_FUNC_VERB(rng)}_{_VAR(rng)}"
        self.emit(depth, f"def {name}({', '.join((['self'] if attrs else []) + params)}):")
        self.emit(
            depth + 1, f'"""{name.split("_")[0].capitalize()} the {_VAR(rng)} of {params[0]}."""'
        )
        scope = params + [f"self.{a}" for a in attrs]
        self.block(depth + 1, scope, rng.randint(2, 5))
        self.emit(depth + 1, f"return {self.expr(scope)}")

    def module(self, n_defs: int) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            self.emit(0, f"import {rng.choice(('os', 'sys', 'math', 're', 'json', 'random'))}")
            self.lines.append("")
        for _ in range(n_defs):
            if rng.random() < 0.25:
                self.emit(0, f"class {_CLASS_NOUN(rng)}{rng.choice(('', 'Set', 'Map', 'List'))}:")
                attrs = list(dict.fromkeys(_VAR(rng) for _ in range(rng.randint(1, 3))))
                self.emit(1, f"def __init__(self, {', '.join(attrs)}):")
                for a in attrs:
                    self.emit(2, f"self.{a} = {a}")
                for _ in range(rng.randint(1, 2)):
                    self.lines.append("")
                    self.function(1, tuple(attrs))
            else:
                self.function(0)
            self.lines += ["", ""]
        return "\n".join(self.lines) + "\n"


def _code(rng: random.Random, n_chars: int) -> str:
    files, size = [], 0
    while size < n_chars:
        text = _Code(rng).module(rng.randint(1, 4))
        files.append(text)
        size += len(text)
    return "".join(files)


def domain_text(domain: str, n_chars: int, seed: int = 0) -> str:
    """At least ``n_chars`` characters of ``domain``, a pure function of ``domain`` and ``seed``.

    Whole lines (paragraphs, source files) are generated until ``n_chars`` is reached.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {DOMAINS}")
    if n_chars <= 0:
        raise ValueError(f"n_chars must be positive, got {n_chars}")
    make = {
        "arithmetic": _arithmetic,
        "sorting": _sorting,
        "brackets": _brackets,
        "english": _english,
        "code": _code,
    }[domain]
    return make(random.Random(f"{domain}:{seed}"), n_chars)


@dataclass
class Corpus:
    """Train and validation text for each domain, encoded as bytes, with a batch sampler.

    ``chars_per_domain`` of training text per domain (seed 0 of each generator) and a tenth of
    that, at least 1,000 characters, of validation text (seed 1).
    """

    domains: tuple[str, ...] = DOMAINS
    chars_per_domain: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("a corpus needs at least one domain")
        val_chars = max(1_000, self.chars_per_domain // 10)
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
