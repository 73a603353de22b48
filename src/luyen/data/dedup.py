"""Exact and near-duplicate detection over a stream of texts, in numpy, in bounded memory.

Exact: two records are duplicates when their `text_key` (keyhash.py) is identical. Near: two records are
duplicates when the Jaccard similarity of their word-bigram sets (word sets for texts under 3
words) reaches `threshold`; MinHash + LSH banding finds the candidate pairs, each is checked
exactly, and clusters are connected components labelled by their first record. At the defaults
(0.8, 64 permutations) banding finds 99% of pairs at Jaccard 0.87 (one word changed in 30).

    d = Deduper(threshold=0.8)
    d.add(["Hà Nội là thủ đô.", "hà nội là thủ đô"])
    d.finish().exact_of.tolist() == [-1, 0]

Exact duplicates are matched by a 64-bit hash of the key rather than the key itself: a false
match among a million records has odds of about 3 in 100 million. Everything hashed here is a
fixed function of the text and `seed` (no Python `hash()`, which is salted per process), so
results do not depend on the process or on how records are batched. The words and their hashes
come from keyhash.word_hashes, a fast path with a plain reference as its test oracle.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from luyen.data.keyhash import word_hashes

_LEFT, _RIGHT = np.uint64(0xD6E8FEB86659FD93), np.uint64(0xA0761D6478BD642F)  # bigram = left*w1 + right*w2
_CHUNK_RECORDS = 512        # 512 x ~30 shingles x 64 permutations x 4 B = 4 MB: stays in cache
_CHUNK_CHARS = 1 << 17      # and long texts make smaller chunks
_VERIFY_SHINGLES = 1 << 20  # shingles compared per step when checking candidates: ~40 MB of temporaries


def key_hashes(texts: list[str]) -> np.ndarray:
    """The 64-bit hash Deduper matches exact duplicates by, per text (int64): equal for equal
    `text_key`s, 2x faster than blake2b of text_key(t) one text at a time (bench questions).

        key_hashes(["Xin chào!", "xin  chào"]).tolist() == key_hashes(["xin chào"]).tolist() * 2
    """
    out = [np.zeros(0, np.uint64)] + [word_hashes(texts[lo:hi])[2] for lo, hi in _chunk_bounds(texts)]
    return np.concatenate(out).view(np.int64)


@dataclass
class DedupResult:
    exact_of: np.ndarray      # int64 per record: index of the first identical record, or -1
    cluster: np.ndarray       # int64 per record: first record of its near-duplicate cluster (itself if alone)
    near_removed: np.ndarray  # bool per record: not exact, in a cluster whose first record is earlier

    @property
    def n_exact(self) -> int:
        return int((self.exact_of >= 0).sum())

    @property
    def n_near(self) -> int:
        return int(self.near_removed.sum())


@functools.lru_cache(maxsize=None)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.1, fn_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive + false-negative area, as datasketch's
    `_optimal_param` does. Misses weigh more than false candidates because every candidate is
    verified afterwards, so a false candidate costs a comparison while a miss is a lost duplicate."""
    s_lo, s_hi = np.linspace(0.0, threshold, 1001), np.linspace(threshold, 1.0, 1001)
    best, best_err = (1, num_perm), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _area(1 - (1 - s_lo ** r) ** b, s_lo)
            fn = _area((1 - s_hi ** r) ** b, s_hi)
            err = fp * fp_weight + fn * fn_weight
            if err < best_err:
                best, best_err = (b, r), err
    return best


def _area(y: np.ndarray, x: np.ndarray) -> float:
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)  # trapezoid rule (np.trapz moved in numpy 2)


class Deduper:
    """Feed batches in order with `add`, then call `finish` once.

    Candidates from the bands are checked with the exact Jaccard of the two records' stored
    32-bit shingle hashes, so `threshold` is a sharp line. 8-bit MinHash values would take 64 B
    per record instead of 4 B per word, but their estimate is too loose for a sharp line: with a
    standard error of 0.04-0.06 at 64 permutations, a cut at the threshold drops 7% of one-word
    edits (J = 0.87) and still merged one pair of the 150 "Tin nhắn số {i}..." records (J <= 0.69)
    of the stratification stage test; a cut one error lower merged nine.

    Memory per record: 8 B exact hash, 8 B shingle offset, 8 B per band and 4 B per word: 212 MB
    for 1M 31-word records at the defaults, about 280 MB at the peak of finish().
    """

    def __init__(self, near: bool = True, threshold: float = 0.8, num_perm: int = 64, seed: int = 0):
        self.near, self.threshold, self.num_perm = near, threshold, num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm)
        used = self.bands * self.rows  # permutations beyond bands x rows would feed no band
        rng = np.random.default_rng([seed, num_perm])
        self._a = rng.integers(0, 1 << 32, used, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
        self._b = rng.integers(0, 1 << 32, used, dtype=np.uint64).astype(np.uint32)
        self._band_mult = rng.integers(0, 1 << 64, used, dtype=np.uint64) | np.uint64(1)
        # Per record: exact hash, then (near only) position of its first shingle and one hash per band.
        self._hashes = _Blocks(2 + self.bands if near else 1, np.uint64)
        self._shingles = _Blocks(1, np.uint32, 1 << 20)
        self._scratch = np.empty((used if near else 0, _CHUNK_RECORDS * 64), np.uint32)  # a typical chunk's shingles

    def add(self, texts: list[str]) -> None:
        """Add a batch of cleaned texts; batches must come in record order."""
        self.extend(*self.signatures(texts))

    def signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """What `add` stores for a batch of texts, without storing it: per-record hash rows (the
        shingle positions counted from the batch's start) and the batch's shingles. A pure function
        of the texts, so worker processes can compute it and the owner `extend`s in record order."""
        rows, shingles = [np.zeros((0, self._hashes.width), np.uint64)], [np.zeros(0, np.uint32)]
        done = 0
        for lo, hi in _chunk_bounds(texts):
            hashes, sh = self._chunk_rows(*word_hashes(texts[lo:hi]))
            if self.near:
                hashes[:, 1] += np.uint64(done)
                done += len(sh)
                shingles.append(sh)
            rows.append(hashes)
        return np.concatenate(rows), np.concatenate(shingles)

    def extend(self, hashes: np.ndarray, shingles: np.ndarray) -> None:
        """Store the output of `signatures` for the next records."""
        if self.near:
            hashes = hashes.copy()
            hashes[:, 1] += np.uint64(self._shingles.n)
            self._shingles.extend(shingles[:, None])
        self._hashes.extend(hashes)

    def _chunk_rows(self, words: np.ndarray, bounds: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        hashes = np.zeros((len(bounds) - 1, self._hashes.width), np.uint64)
        hashes[:, 0] = exact
        if not self.near:
            return hashes, None
        shingles, count = _shingles(words, bounds)
        sig, has = _minhash(shingles, count, self._a, self._b, self._scratch)
        hashes[:, 1] = np.cumsum(count) - count
        hashes[:, 2:] = self._band_hashes(sig) * has[:, None]  # 0 marks "no words": never a candidate
        return hashes, shingles

    def _band_hashes(self, sig: np.ndarray) -> np.ndarray:
        terms = sig.astype(np.uint64) * self._band_mult  # a random linear map of each band's rows, mod 2**64
        return terms.reshape(len(sig), self.bands, self.rows).sum(axis=2, dtype=np.uint64) | np.uint64(1)

    def finish(self) -> DedupResult:
        n = self._hashes.n
        first = _first_index(self._hashes.column(0))
        exact_of = np.where(first < np.arange(n), first, -1)
        if not self.near:
            return DedupResult(exact_of, first, np.zeros(n, bool))
        src, dst = self._candidates(exact_of < 0)
        keep = self._jaccard(src, dst) >= self.threshold
        cluster = _components(n, src[keep], dst[keep])[first]  # exact duplicates follow their original
        return DedupResult(exact_of, cluster, (cluster != np.arange(n)) & (exact_of < 0))

    def _candidates(self, unique: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (first record in a bucket, another record in it) over all bands, each pair once."""
        pairs, n = [], self._hashes.n
        for j in range(self.bands):
            col = self._hashes.column(2 + j)
            idx = np.flatnonzero(unique & (col != 0))
            pairs.append(_bucket_pairs(col[idx], idx, n))
        code = np.unique(np.concatenate(pairs))
        return code // n, code % n

    def _jaccard(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Jaccard of the shingle sets of each pair, a bounded slice of pairs at a time."""
        start = self._hashes.column(1).astype(np.int64)
        count = np.diff(start, append=self._shingles.n)
        size = np.cumsum(count[src] + count[dst])
        out = np.zeros(len(src))
        lo = 0
        while lo < len(src):
            hi = max(lo + 1, int(np.searchsorted(size, size[lo] + _VERIFY_SHINGLES)))
            a = self._sets(start[src[lo:hi]], count[src[lo:hi]])
            b = self._sets(start[dst[lo:hi]], count[dst[lo:hi]])
            out[lo:hi] = _set_jaccard(a, b, hi - lo)
            lo = hi
        return out

    def _sets(self, start: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Each record's distinct shingles as sorted codes (position in the slice << 32 | shingle)."""
        owner = np.repeat(np.arange(len(count), dtype=np.uint64), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        codes = owner << np.uint64(32) | self._shingles.take(np.repeat(start, count) + offset)[:, 0]
        codes.sort()  # np.unique would hash first: 3x slower here
        return codes[np.append(True, codes[1:] != codes[:-1])]


def _set_jaccard(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Jaccard per owner of two sorted code arrays from Deduper._sets."""
    both = np.concatenate([a, b])
    both.sort(kind="stable")  # two sorted runs: a merge
    common = both[1:][both[1:] == both[:-1]] >> np.uint64(32)
    inter = np.bincount(common.astype(np.int64), minlength=n)
    union = np.bincount((a >> np.uint64(32)).astype(np.int64), minlength=n) + \
        np.bincount((b >> np.uint64(32)).astype(np.int64), minlength=n) - inter
    return inter / np.maximum(union, 1)


def _chunk_bounds(texts: list[str]) -> list[tuple[int, int]]:
    """Split a batch into chunks of at most _CHUNK_RECORDS texts and about _CHUNK_CHARS
    characters, so numpy temporaries stay small whatever the batch size."""
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))
    total = int(ends[-1]) if len(texts) else 0
    by_chars = np.searchsorted(ends, np.arange(_CHUNK_CHARS, total, _CHUNK_CHARS)).tolist()
    edges = sorted({0, len(texts), *range(_CHUNK_RECORDS, len(texts), _CHUNK_RECORDS), *by_chars})
    return [(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo]


def _shingles(words: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """32-bit shingle hashes (word bigrams; single words for texts under 3 words) and the
    number of shingles of each record; shingles stay in record order."""
    rid = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))  # record of each word
    short = np.diff(bounds) < 3
    nxt = np.append(words[1:], np.uint64(0))
    value = words * _LEFT + nxt * _RIGHT
    keep = np.append(rid[1:], -1) == rid  # a bigram needs the next word in the same record
    if short.any():
        alone = short[rid]
        value[alone] = words[alone] * _LEFT
        keep |= alone
    count = np.diff(bounds) - 1 + short  # bigrams: words - 1; short texts: words
    return (value[keep] >> np.uint64(32)).astype(np.uint32), count


def _minhash(shingles: np.ndarray, count: np.ndarray, a: np.ndarray, b: np.ndarray,
             scratch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (records x num_perm, uint32) with h_i(x) = a_i * x + b_i mod 2**32
    (a_i odd, so each h_i is a bijection), and whether each record had any shingle.

    All permutations at once as a (num_perm, shingles) array in a reused buffer (a fresh one costs
    page faults every chunk); the min over each record's columns is one reduceat along contiguous
    rows, 3x faster than the (shingles, num_perm) layout."""
    has = count > 0
    sig = np.zeros((len(count), len(a)), np.uint32)
    if has.any():
        h = scratch[:, :len(shingles)] if scratch.shape[1] >= len(shingles) else np.empty((len(a), len(shingles)), np.uint32)
        np.multiply(a[:, None], shingles, out=h)
        h += b[:, None]
        sig[has] = np.minimum.reduceat(h, (np.cumsum(count) - count)[has], axis=1).T
    return sig, has


def _first_index(keys: np.ndarray) -> np.ndarray:
    """For each record, the first record with the same key (a function, so the 24 MB of
    np.unique's outputs per million records are freed before the band sorts)."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse]


def _bucket_pairs(values: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """Pairs (first record, other record) of records sharing a value, encoded as first * n + other.

    One plain sort of (value's top bits | record index) puts each bucket together in index order,
    2x faster than an argsort. With 1M records 44 bits of the value are left, so a false
    bucket-mate turns up about once in 30 sorts; verification throws it out. A star to the
    bucket's first record links the bucket as all its pairs would, in linear size."""
    bits = max(1, (n - 1).bit_length())
    key = (values >> np.uint64(bits)) << np.uint64(bits) | idx.astype(np.uint64)
    key.sort()
    top = key >> np.uint64(bits)
    member = np.flatnonzero(top[1:] == top[:-1]) + 1  # not the first of its bucket
    run = np.ones(len(member), bool)
    run[1:] = np.diff(member) != 1
    head = np.maximum.accumulate(np.where(run, member - 1, 0))
    low = np.uint64((1 << bits) - 1)
    return (key[head] & low).astype(np.int64) * n + (key[member] & low).astype(np.int64)


def _components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Label of each record's connected component: its smallest index (hook roots under the
    smaller root, then jump pointers until every record points at a root)."""
    parent = np.arange(n)
    while True:
        ra, rb = parent[src], parent[dst]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        differ = lo != hi
        if not differ.any():
            return parent
        np.minimum.at(parent, hi[differ], lo[differ])
        while not np.array_equal(grand := parent[parent], parent):
            parent = grand


class _Blocks:
    """Append-only 2-D store in fixed blocks: growing never copies, so peak memory is the data."""

    def __init__(self, width: int, dtype, rows_per_block: int = 1 << 16):
        self.width, self.dtype, self.rows = width, dtype, rows_per_block
        self.blocks: list[np.ndarray] = []
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        done = 0
        while done < len(rows):
            at = self.n % self.rows
            if at == 0:
                self.blocks.append(np.empty((self.rows, self.width), self.dtype))
            take = min(self.rows - at, len(rows) - done)
            self.blocks[-1][at:at + take] = rows[done:done + take]
            done += take
            self.n += take

    def column(self, j: int) -> np.ndarray:
        return np.concatenate([b[:, j] for b in self.blocks] or [np.zeros(0, self.dtype)])[:self.n]

    def take(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), self.width), self.dtype)
        block = idx // self.rows
        for k in np.flatnonzero(np.bincount(block, minlength=len(self.blocks))):
            sel = block == k
            out[sel] = self.blocks[k][idx[sel] % self.rows]
        return out
