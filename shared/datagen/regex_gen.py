"""Strings that match a regular expression: the subset Datagen's schemas use.

Supported: literals and escapes (``\\d \\w \\s \\.``), ``.``, classes ``[a-z0-9_]`` and negated
classes (over printable ASCII), groups ``( )`` and ``(?: )`` with ``|``, and the quantifiers
``* + ? {n} {n,} {n,m}`` (open ends stop at ``n + 8``). Anchors ``^ $`` are accepted and ignored.
Anything else (look-arounds, back-references) is refused when the schema is read.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from shared.errors import StreamingPocError

PRINTABLE = [chr(c) for c in range(32, 127)]
_CLASSES = {
    "d": list(string.digits),
    "w": list(string.ascii_letters + string.digits + "_"),
    "s": [" ", "\t"],
    "D": [c for c in PRINTABLE if c not in string.digits],
    "W": [c for c in PRINTABLE if c not in string.ascii_letters + string.digits + "_"],
    "S": [c for c in PRINTABLE if c not in " \t"],
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}
OPEN_END_EXTRA = 8


class RegexError(StreamingPocError):
    pass


@dataclass(frozen=True)
class _Chars:
    choices: tuple[str, ...]


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    options: tuple[_Seq, ...]


@dataclass(frozen=True)
class _Repeat:
    item: _Node
    low: int
    high: int


_Node = _Chars | _Seq | _Alt | _Repeat


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def peek(self) -> str | None:
        return self.text[self.at] if self.at < len(self.text) else None

    def take(self) -> str:
        char = self.text[self.at]
        self.at += 1
        return char

    def alternation(self) -> _Alt:
        options = [self.sequence()]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence())
        return _Alt(tuple(options))

    def sequence(self) -> _Seq:
        items: list[_Node] = []
        while (char := self.peek()) is not None and char not in "|)":
            atom = self.atom()
            if atom is not None:
                items.append(self.quantified(atom))
        return _Seq(tuple(items))

    def atom(self) -> _Node | None:
        char = self.take()
        if char in "^$":
            return None
        if char == "(":
            if self.text.startswith("?:", self.at):
                self.at += 2
            elif self.peek() == "?":
                raise RegexError(f"group construct at {self.at} is not supported")
            inner = self.alternation()
            if self.peek() != ")":
                raise RegexError("unbalanced parenthesis")
            self.take()
            return inner
        if char == "[":
            return self.char_class()
        if char == ".":
            return _Chars(tuple(PRINTABLE))
        if char == "\\":
            return _Chars(tuple(self.escape()))
        if char in "*+?{":
            raise RegexError(f"nothing to repeat at {self.at - 1}")
        if char == ")":
            raise RegexError("unbalanced parenthesis")
        return _Chars((char,))

    def escape(self) -> list[str]:
        if self.peek() is None:
            raise RegexError("pattern ends with a backslash")
        char = self.take()
        if char in _CLASSES:
            return _CLASSES[char]
        if char in _ESCAPES:
            return [_ESCAPES[char]]
        if char.isdigit() or char in "bBAZzk":
            raise RegexError(f"\\{char} is not supported")
        return [char]

    def char_class(self) -> _Chars:
        negate = self.peek() == "^"
        if negate:
            self.take()
        chosen: list[str] = []
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise RegexError("unterminated character class")
            if char == "]" and not first:
                self.take()
                break
            first = False
            self.take()
            if char == "\\":
                members = self.escape()
                chosen.extend(members)
                continue
            if self.peek() == "-" and self.at + 1 < len(self.text) and self.text[self.at + 1] != "]":
                self.take()
                end = self.take()
                if end == "\\":
                    end = self.escape()[0]
                if ord(end) < ord(char):
                    raise RegexError(f"bad range {char}-{end}")
                chosen.extend(chr(c) for c in range(ord(char), ord(end) + 1))
            else:
                chosen.append(char)
        if negate:
            chosen = [c for c in PRINTABLE if c not in set(chosen)]
        if not chosen:
            raise RegexError("empty character class")
        return _Chars(tuple(dict.fromkeys(chosen)))

    def quantified(self, atom: _Node) -> _Node:
        char = self.peek()
        if char == "*":
            self.take()
            node: _Node = _Repeat(atom, 0, OPEN_END_EXTRA)
        elif char == "+":
            self.take()
            node = _Repeat(atom, 1, 1 + OPEN_END_EXTRA)
        elif char == "?":
            self.take()
            node = _Repeat(atom, 0, 1)
        elif char == "{" and self._counted():
            node = self.counted(atom)
        else:
            return atom
        if self.peek() in ("?", "+"):  # lazy / possessive markers change nothing for generation
            self.take()
        return node

    def _counted(self) -> bool:
        end = self.text.find("}", self.at)
        body = self.text[self.at + 1 : end] if end > 0 else ""
        low, _, high = body.partition(",")
        return bool(low.isdigit() and (high == "" or high.isdigit()))

    def counted(self, atom: _Node) -> _Repeat:
        end = self.text.index("}", self.at)
        body = self.text[self.at + 1 : end]
        self.at = end + 1
        low_text, comma, high_text = body.partition(",")
        low = int(low_text)
        high = int(high_text) if high_text else (low + OPEN_END_EXTRA if comma else low)
        if high < low:
            raise RegexError(f"bad repetition {{{body}}}")
        return _Repeat(atom, low, high)


def parse_regex(pattern: str) -> _Alt:
    parser = _Parser(pattern)
    tree = parser.alternation()
    if parser.peek() is not None:
        raise RegexError("unbalanced parenthesis")
    return tree


def generate(tree: _Node, rnd: random.Random) -> str:
    """One string the pattern matches."""
    if isinstance(tree, _Chars):
        return tree.choices[0] if len(tree.choices) == 1 else rnd.choice(tree.choices)
    if isinstance(tree, _Seq):
        return "".join(generate(item, rnd) for item in tree.items)
    if isinstance(tree, _Alt):
        return generate(tree.options[0] if len(tree.options) == 1 else rnd.choice(tree.options), rnd)
    return "".join(generate(tree.item, rnd) for _ in range(rnd.randint(tree.low, tree.high)))
