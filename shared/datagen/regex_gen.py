"""Strings that match a regular expression: the subset Datagen's schemas use.

Supported: literals; the escapes ``\\d \\D \\w \\W \\s \\S \\n \\t \\r \\f \\v``, ``\\xhh``, ``\\x{h..h}`` and
``\\uhhhh``, and a backslash before punctuation (``\\.``: the character itself); ``.``; classes ``[a-z0-9_]``
and negated classes (over printable ASCII); groups ``( )`` and ``(?: )`` with ``|``, nested at most
:data:`MAX_GROUP_DEPTH` deep; and the quantifiers ``* + ? {n} {n,} {n,m}`` (open ends stop at ``n + 8``).
Anchors ``^ $`` are accepted and ignored. Anything else (look-arounds, back-references, ``\\Q..\\E``, any other
backslash before a letter or digit) is refused when the schema is read, and so is a regex whose repeats take
more than :data:`MAX_REGEX_WORK` steps to generate (even repeating nothing). A repeat of what can only match
empty text (``(){5}``, ``(?:a{0})*``) generates nothing, and is dropped when the regex is parsed.
"""

from __future__ import annotations

import bisect
import random
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.errors import StreamingPocError

# A class of characters is a tuple of code-point ranges ``(first, last)``, both inclusive: ``[\x{0}-\x{10FFFF}]``
# is one range, not 1.1 million strings, so what a class holds costs nothing however wide it is.
_Ranges = tuple[tuple[int, int], ...]
PRINTABLE: _Ranges = ((32, 126),)


def _ranges_of(chars: str) -> _Ranges:
    """``chars`` (in this order, none twice) as ranges of consecutive code points."""
    ranges: list[tuple[int, int]] = []
    for code in map(ord, chars):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return tuple(ranges)


def _printable_except(ranges: Iterable[tuple[int, int]]) -> _Ranges:
    """The printable ASCII characters outside ``ranges``, in order."""
    kept: list[tuple[int, int]] = []
    low, high = PRINTABLE[0]
    for first, last in sorted(ranges):
        if first > low:
            kept.append((low, min(first - 1, high)))
        low = max(low, last + 1)
        if low > high:
            break
    if low <= high:
        kept.append((low, high))
    return tuple(kept)


_CLASSES: dict[str, _Ranges] = {
    "d": _ranges_of(string.digits),
    "w": _ranges_of(string.ascii_letters + string.digits + "_"),
    "s": _ranges_of(" \t"),
}
_CLASSES |= {name.upper(): _printable_except(_CLASSES[name]) for name in "dws"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}
_HEX_DIGITS = frozenset(string.hexdigits)
_DIGITS = re.compile(r"[0-9]+")
OPEN_END_EXTRA = 8
# How deep groups may nest: the parser, the generator and every check of a parsed regex recurse per group
# (three calls a level), inside the schema's own recursion, all under Python's limit of 1,000 calls.
MAX_GROUP_DEPTH = 50
# The most steps generating one value may take: each repeat's upper bound times the steps of what it repeats
# (at least one, even for what matches only empty text), nested repeats multiplying, a sequence adding up
# its parts, an alternation its largest option. More is refused whatever the value's length: ``(){10**12}``
# makes an empty string, but only after looping 10**12 times. Above the longest value a record holds
# (983,040 characters), so a regex that makes long values still meets the record-size bound first.
MAX_REGEX_WORK = 1_000_000
# The most members (characters, ranges, class escapes) one character class may list. Each is merged into the
# class's sorted ranges as it is read, in the order written (first appearance decides the order generated from):
# 520,000 single characters took 100 s to index; ranges say the same in a few members.
MAX_CLASS_MEMBERS = 10_000
_WORK_CAP = 10**18  # steps are counted up to here, past which the product's exact size no longer matters


class RegexError(StreamingPocError):
    pass


@dataclass(frozen=True)
class _Chars:
    """One character from ``ranges``, each character equally likely: the ``n``-th of them in the ranges' order
    (a class's characters as written, each where it first appears)."""

    ranges: _Ranges
    offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)  # how many come before each range

    def __post_init__(self) -> None:
        offsets, count = [], 0
        for first, last in self.ranges:
            offsets.append(count)
            count += last - first + 1
        object.__setattr__(self, "offsets", tuple(offsets))

    @property
    def size(self) -> int:
        first, last = self.ranges[-1]
        return self.offsets[-1] + last - first + 1

    def nth(self, index: int) -> str:
        at = bisect.bisect_right(self.offsets, index) - 1
        return chr(self.ranges[at][0] + index - self.offsets[at])


def _chars(*chars: str) -> _Chars:
    return _Chars(tuple((ord(c), ord(c)) for c in chars))


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
        self.depth = 0  # groups open at ``at``

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
            self.depth += 1
            if self.depth > MAX_GROUP_DEPTH:
                raise RegexError(f"groups nest more than {MAX_GROUP_DEPTH} deep (at {self.at - 1})")
            inner = self.alternation()
            self.depth -= 1
            if self.peek() != ")":
                raise RegexError("unbalanced parenthesis")
            self.take()
            return inner
        if char == "[":
            return self.char_class()
        if char == ".":
            return _Chars(PRINTABLE)
        if char == "\\":
            escaped = self.escape()
            return _chars(escaped) if isinstance(escaped, str) else _Chars(escaped)
        if char in "*+?{":
            raise RegexError(f"nothing to repeat at {self.at - 1}")
        if char == ")":
            raise RegexError("unbalanced parenthesis")
        return _chars(char)

    def escape(self) -> str | _Ranges:
        """What a backslash (just taken) and what follows it stand for: one character, or a class's (ranges)."""
        if self.peek() is None:
            raise RegexError("pattern ends with a backslash")
        at = self.at - 1
        char = self.take()
        if char in _CLASSES:
            return _CLASSES[char]
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char == "x" and self.peek() == "{":  # \x{h..h}: a code point
            end = self.text.find("}", self.at)
            digits = self.text[self.at + 1 : end] if end > 0 else ""
            if not 0 < len(digits) <= 8 or not set(digits) <= _HEX_DIGITS or int(digits, 16) > 0x10FFFF:
                raise RegexError(f"\\x{{...}} at {at} needs the hex digits of a code point up to 10FFFF")
            self.at = end + 1
            return chr(int(digits, 16))
        if char in "xu":  # \xhh, \uhhhh
            count = 2 if char == "x" else 4
            digits = self.text[self.at : self.at + count]
            if len(digits) < count or not set(digits) <= _HEX_DIGITS:
                raise RegexError(f"\\{char} at {at} needs {count} hex digits")
            self.at += count
            return chr(int(digits, 16))
        if char.isascii() and char.isalnum():  # \b \Q \p \1 \0...: anchors, quoting, properties, references
            raise RegexError(f"\\{char} at {at} is not supported")
        return char  # a backslash before punctuation (or a non-ASCII character): the character itself

    def class_member(self) -> str | _Ranges:
        """One character of a class, or a class escape's characters (ranges)."""
        char = self.take()
        return self.escape() if char == "\\" else char

    def char_class(self) -> _Chars:
        negate = self.peek() == "^"
        if negate:
            self.take()
        chosen: list[tuple[int, int]] = []  # in the order written; may overlap
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise RegexError("unterminated character class")
            if char == "]" and not first:
                self.take()
                break
            first = False
            start = self.class_member()
            # a range from one character; after a class (\d-z) the - is itself a member, as in Java
            if (
                isinstance(start, str)
                and self.peek() == "-"
                and self.at + 1 < len(self.text)
                and self.text[self.at + 1] != "]"
            ):
                self.take()
                end = self.class_member()
                if not isinstance(end, str):
                    raise RegexError(f"bad range {start}- ending at a class escape")
                if ord(end) < ord(start):
                    raise RegexError(f"bad range {start}-{end}")
                chosen.append((ord(start), ord(end)))
            else:
                chosen.extend(_ranges_of(start) if isinstance(start, str) else start)
            if len(chosen) > MAX_CLASS_MEMBERS:
                example = r"a-z, \x{4E00}-\x{9FFF}"
                raise RegexError(
                    f"a character class of more than {MAX_CLASS_MEMBERS:,} members: write ranges ({example})"
                )
        ranges = _printable_except(chosen) if negate else _first_seen(chosen)
        if not ranges:
            raise RegexError("empty character class")
        return _Chars(ranges)

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
        return bool(_DIGITS.fullmatch(low) and (high == "" or _DIGITS.fullmatch(high)))

    def counted(self, atom: _Node) -> _Repeat:
        end = self.text.index("}", self.at)
        body = self.text[self.at + 1 : end]
        self.at = end + 1
        low_text, comma, high_text = body.partition(",")
        low = _count(low_text)
        high = _count(high_text) if high_text else (low + OPEN_END_EXTRA if comma else low)
        if high < low:
            raise RegexError(f"bad repetition {{{body}}}")
        return _Repeat(atom, low, high)


def _first_seen(ranges: list[tuple[int, int]]) -> _Ranges:
    """``ranges`` without what an earlier one already holds: each character once, where it first appears."""
    seen: list[tuple[int, int]] = []  # sorted, disjoint
    kept: list[tuple[int, int]] = []
    for first, last in ranges:
        low = first
        at = bisect.bisect_left(seen, (first, first))
        if at and seen[at - 1][1] >= first:
            at -= 1
        while low <= last:
            if at < len(seen) and seen[at][0] <= low:  # ``low`` is seen: skip past that range
                low = seen[at][1] + 1
                at += 1
                continue
            end = min(last, seen[at][0] - 1) if at < len(seen) else last
            kept.append((low, end))
            low = end + 1
        _merge(seen, (first, last))
    return tuple(kept)


def _merge(seen: list[tuple[int, int]], new: tuple[int, int]) -> None:
    """Add ``new`` to ``seen`` (sorted, disjoint ranges), merging what it overlaps or touches."""
    first, last = new
    at = bisect.bisect_left(seen, (first, first))
    if at and seen[at - 1][1] >= first - 1:
        at -= 1
    end = at
    while end < len(seen) and seen[end][0] <= last + 1:
        first, last = min(first, seen[end][0]), max(last, seen[end][1])
        end += 1
    seen[at:end] = [(first, last)]


def _count(digits: str) -> int:
    """A repeat's bound: past :data:`_WORK_CAP` it is over any limit anyway (and ``int`` takes 4,300 digits)."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else _WORK_CAP


def parse_regex(pattern: str) -> _Alt:
    """The parsed regex, refused (:class:`RegexError`) outside the subset or over :data:`MAX_REGEX_WORK`."""
    parser = _Parser(pattern)
    tree = parser.alternation()
    if parser.peek() is not None:
        raise RegexError("unbalanced parenthesis")
    work = _work(tree)
    if work > MAX_REGEX_WORK:
        steps = f"{work:,}" if work < _WORK_CAP else f"over {_WORK_CAP:,}"
        raise RegexError(
            f"its repeats take {steps} steps to generate a value (upper bounds of nested repeats multiply, "
            f"even repeating nothing), over {MAX_REGEX_WORK:,}: lower them"
        )
    return _Alt(tuple(_without_empty_repeats(option) for option in tree.options))


def _work(tree: _Node) -> int:
    """The most steps generating from ``tree`` takes (at most :data:`_WORK_CAP`): see :data:`MAX_REGEX_WORK`."""
    if isinstance(tree, _Chars):
        return 1
    if isinstance(tree, _Seq):
        return min(_WORK_CAP, sum(_work(item) for item in tree.items))
    if isinstance(tree, _Alt):
        return max(_work(option) for option in tree.options)
    return min(_WORK_CAP, tree.high * max(1, _work(tree.item)))


def _only_empty(tree: _Node) -> bool:
    """Whether ``tree`` can match only the empty string."""
    if isinstance(tree, _Chars):
        return False
    if isinstance(tree, _Seq):
        return all(_only_empty(item) for item in tree.items)
    if isinstance(tree, _Alt):
        return all(_only_empty(option) for option in tree.options)
    return tree.high == 0 or _only_empty(tree.item)


def _without_empty_repeats(sequence: _Seq) -> _Seq:
    """``sequence`` without the repeats (innermost first) that can only generate nothing: the same strings."""
    items: list[_Node] = []
    for item in sequence.items:
        if isinstance(item, _Alt):
            item = _Alt(tuple(_without_empty_repeats(option) for option in item.options))
        elif isinstance(item, _Repeat):
            inner = item.item
            if isinstance(inner, _Alt):
                inner = _Alt(tuple(_without_empty_repeats(option) for option in inner.options))
            item = _Repeat(inner, item.low, item.high)
            if _only_empty(item):
                continue
        items.append(item)
    return _Seq(tuple(items))


def generate(tree: _Node, rnd: random.Random) -> str:
    """One string the pattern matches."""
    if isinstance(tree, _Chars):  # as ``rnd.choice`` of its characters, without listing them
        size = tree.size
        return tree.nth(0) if size == 1 else tree.nth(rnd.randrange(size))
    if isinstance(tree, _Seq):
        return "".join(generate(item, rnd) for item in tree.items)
    if isinstance(tree, _Alt):
        return generate(tree.options[0] if len(tree.options) == 1 else rnd.choice(tree.options), rnd)
    return "".join(generate(tree.item, rnd) for _ in range(rnd.randint(tree.low, tree.high)))
