"""Word hashes of text keys, the fast path under duplicate detection, behind one function.

`word_hashes(texts)` gives the 64-bit hash of every word of each `text_key(t)`, where each text's
words start, and a 64-bit hash of each text's whole word sequence (its exact-duplicate key).
`reference_word_hashes` is the definition: Python's casefold, regex and str.split, then the hash
formulas in plain integers. It is slow and serves as the test oracle; `word_hashes` computes the same
values in numpy over the chunk's UTF-8 bytes, without a Python string per word.

    words, bounds, exact = word_hashes(["Xin chào!", "xin  chào"])
    bounds.tolist() == [0, 2, 4] and exact[0] == exact[1]

Why a fast path: measured in one process on the bench's generator, 200k records, each variant
twice, alternating, in two runs (Intel Xeon, 2 cores, flags avx512_bf16, amx_bf16, amx_tile
present; other jobs sharing the cores, load average 0.6 in the first run and 3 in the second):

    python bench/data_throughput.py --records 200000 --word-hashes

Deduper.signatures + key_hashes, as the data stage calls them, ran at 105-111k records/s with this
path (72-81k in the loaded run); the plain version (text_key + str.split + hashlib.blake2b per
distinct word from a dict cache, blake2b of each key) at 55k (33-35k): 1.9-2.4x slower, and
4.2-5.7x without the cache. The bench's 100-word vocabulary is the cache's best case. The plain
version costs 9-15 us more per record in each of `data check` and `data prepare`, which both hash
every record: 9-15 s of CPU per command at 1M records, where the target is 60 s and the AVX2
machines already take 85-90 s. Not measured on those machines: rerun the command there.
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np

# What text_key turns into spaces: punctuation (Unicode category P) in the Basic Multilingual Plane
# and the non-ASCII characters str.split() treats as whitespace. Staying below U+10000 lets `re`
# compile the class to a bitmap (2 us per record instead of 15) and lets the fast path look code
# points up in a 64K table; punctuation beyond U+FFFF belongs to historic scripts.
_NOISE_CHARS = [c for c in range(0x10000)
                if unicodedata.category(chr(c))[0] == "P" or (c >= 0x80 and chr(c).isspace())]
_NOISE = re.compile("[" + "".join(re.escape(chr(c)) for c in _NOISE_CHARS) + "]+")
_NOISE_CP = np.zeros(0x10000, bool)
_NOISE_CP[_NOISE_CHARS] = True
# ASCII bytes that end a word: str.split()'s whitespace and ASCII punctuation. In a chunk of several
# texts NUL also ends one, because it separates the texts.
_BREAK_BYTE = np.zeros(256, bool)
_BREAK_BYTE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32] + [c for c in _NOISE_CHARS if c < 0x80]] = True
_BREAK_BYTE_NUL = _BREAK_BYTE.copy()
_BREAK_BYTE_NUL[0] = True

_MASK = (1 << 64) - 1
_BASE = 0x9E3779B97F4A7C15  # odd, so it has an inverse mod 2**64 for the prefix-sum word hash
_LENGTH_MIX, _POSITION_MIX = 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9  # xxHash primes
_FMIX = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)  # MurmurHash3's finaliser constants
_KEEP_POWERS = 1 << 20  # power tables kept between calls up to this many bytes (16 MB)


def text_key(text: str) -> str:
    """The normalisation used for comparison: casefold, punctuation to spaces, whitespace folded.

    Diacritics are kept: 'hòa' and 'hoa' are different words. Punctuation becomes a space rather
    than nothing, so 'end.Next' and 'end. Next' match (and 'don't' is 'don t'); symbols such as
    + = $ are kept.

        text_key("  Hòa-bình,  THẾ GIỚI! ") == "hòa bình thế giới"
    """
    return " ".join(_NOISE.sub(" ", text.casefold()).split())


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint64 hash of each word of each text_key, int64 start of each text's words + the end,
    uint64 hash of each text's word sequence); equal to reference_word_hashes(texts).

    Memory is about 100 B per character of the texts: callers pass chunks."""
    if not texts:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros(0, np.uint64)
    if len(texts) > 1 and "\x00" in "".join(texts):  # NUL separates texts in a chunk: these go alone
        return _concatenate([word_hashes([t]) for t in texts])
    utf8 = "\x00".join(texts).casefold().encode("utf-8", "surrogatepass")
    b = np.full(len(utf8) + 3, 32, np.uint8)  # a space before, so words start after a break; 2 after: _breaks
    b[1:-2] = np.frombuffer(utf8, np.uint8)
    brk = _breaks(b, _BREAK_BYTE_NUL if len(texts) > 1 else _BREAK_BYTE)  # a lone text keeps its NULs
    change = np.flatnonzero(brk[1:] != brk[:-1]) + 1  # word starts and ends, alternating
    start, end = change[0::2], change[1::2]
    words = _fmix64(_polynomials(b, start, end) + (end - start).astype(np.uint64) * np.uint64(_LENGTH_MIX))
    seps = np.searchsorted(start, np.flatnonzero(b == 0)) if len(texts) > 1 else []
    bounds = np.concatenate([[0], seps, [len(words)]]).astype(np.int64)
    return words, bounds, _sequence_hashes(words, bounds)


def reference_word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What word_hashes returns, by the definition: each word's UTF-8 bytes b as a polynomial
    sum(b[j] * BASE**j) plus its length times a constant, mixed; a text's hash is the mix of the sum
    of its words' mixed (hash + position * constant). All arithmetic mod 2**64."""
    words, bounds, exact = [], [0], []
    for text in texts:
        own = []
        for word in text_key(text).split():
            data, poly = word.encode("utf-8", "surrogatepass"), 0
            for byte in reversed(data):
                poly = (poly * _BASE + byte) & _MASK
            own.append(_fmix_int(poly + len(data) * _LENGTH_MIX))
        words += own
        bounds.append(len(words))
        exact.append(_fmix_int(sum(_fmix_int(w + i * _POSITION_MIX) for i, w in enumerate(own))))
    return np.array(words, np.uint64), np.array(bounds, np.int64), np.array(exact, np.uint64)


def _fmix_int(x: int) -> int:
    x &= _MASK
    for mult in _FMIX:
        x = ((x ^ (x >> 33)) * mult) & _MASK
    return x ^ (x >> 33)


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser (as _fmix_int): spreads every input bit over the whole word."""
    for mult in _FMIX:
        x = x ^ (x >> np.uint64(33))
        x *= np.uint64(mult)
    return x ^ (x >> np.uint64(33))


def _breaks(b: np.ndarray, ascii_breaks: np.ndarray) -> np.ndarray:
    """True on every byte of whitespace or punctuation in UTF-8 text `b` (ending in 2 spaces).

    The same characters as the regex in text_key, found 2x faster than `re.sub` finds them: ASCII
    by a byte table, the rest by decoding the code point at each multi-byte lead."""
    brk = np.take(ascii_breaks, b)
    lead = np.flatnonzero(b >= 0xC2)
    top, c1, c2 = b[lead].astype(np.uint16), b[lead + 1] & np.uint16(0x3F), b[lead + 2] & np.uint16(0x3F)
    three = top >= 0xE0
    cp = np.where(three, (top & 0x0F) << 12 | c1 << 6 | c2, (top & 0x1F) << 6 | c1)
    hit = _NOISE_CP[cp] & (top < 0xF0)  # 4-byte characters lie beyond U+FFFF: never noise
    for k, at in ((0, lead[hit]), (1, lead[hit]), (2, lead[hit & three])):
        brk[at + k] = True
    return brk


def _polynomials(b: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """sum(b[j] * BASE**(j - start)) over each word [start, end), from one prefix sum over the
    chunk times BASE**-start (mod 2**64): no Python string per word."""
    power, inverse = _powers(len(b))
    prefix = np.zeros(len(b) + 1, np.uint64)
    np.cumsum(b * power[:len(b)], out=prefix[1:])
    return (prefix[end] - prefix[start]) * inverse[start]


_POWERS = (np.ones(1, np.uint64), np.ones(1, np.uint64))


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**j and BASE**-j for j < n (at least), kept for the next chunk: building them costs
    about 1 us per record, an eighth of the whole fast path."""
    global _POWERS
    if len(_POWERS[0]) >= n:
        return _POWERS
    n = max(n, 2 * len(_POWERS[0]))
    step = np.full(n, _BASE, np.uint64)
    step[0] = 1
    power = np.cumprod(step, dtype=np.uint64)
    step[1:] = pow(_BASE, -1, 1 << 64)
    tables = (power, np.cumprod(step, dtype=np.uint64))
    if n <= _KEEP_POWERS:  # a single huge text should not pin its tables for the process's life
        _POWERS = tables
    return tables


def _sequence_hashes(words: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """One 64-bit hash per text of its word sequence: a sum of mixed (word, position) values.

    Mixing each term breaks the algebra that makes plain polynomial hashes mod 2**64 collide on
    crafted inputs; two different keys then collide with probability about 2**-64, so a false
    exact match among a million records has odds of about 3 in 100 million.
    """
    starts = np.repeat(bounds[:-1], np.diff(bounds)).astype(np.uint64)
    terms = _fmix64(words + (np.arange(len(words), dtype=np.uint64) - starts) * np.uint64(_POSITION_MIX))
    total = np.zeros(len(words) + 1, np.uint64)
    np.cumsum(terms, out=total[1:])
    return _fmix64(total[bounds[1:]] - total[bounds[:-1]])


def _concatenate(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.cumsum([0] + [len(words) for words, _, _ in parts])
    bounds = [np.zeros(1, np.int64)] + [b[1:] + off for (_, b, _), off in zip(parts, offsets)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate(bounds),
            np.concatenate([p[2] for p in parts]))
