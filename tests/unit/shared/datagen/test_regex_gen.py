"""Strings that match a regular expression: the subset Datagen's schemas use; the rest is refused."""

from __future__ import annotations

import random
import re

import pytest

from shared.datagen.regex_gen import RegexError, parse_regex
from shared.datagen.regex_gen import generate as regex_generate


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-zA-Z]{5,15}",
        r"\w+@\w+\.com",
        r"(a|b|c)+",
        r"[0-9a-f]{8}-[0-9a-f]{4}",
        r"^x.y$",
        r"[-+]?\d*\.?\d+",
        r"a{2,}",
    ],
)
def test_regex_generator_covers_the_subset(pattern: str) -> None:
    rnd = random.Random(4)
    tree = parse_regex(pattern)
    for _ in range(200):
        assert re.fullmatch(pattern, regex_generate(tree, rnd))


@pytest.mark.parametrize("pattern", [r"(?=a)b", r"(a)\1", "(ab", "[z-a]", "*a"])
def test_unsupported_regex_is_refused(pattern: str) -> None:
    with pytest.raises(RegexError):
        parse_regex(pattern)
