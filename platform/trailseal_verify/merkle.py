"""The Merkle tree of RFC 9162 §2.1 over a tenant's chain hashes, its inclusion and
consistency proofs (§2.1.3, §2.1.4) and their verification.

Leaf ``i`` is the chain hash (32 bytes) of the event with ``seq = i + 1``. Subtree hashes
come from a caller's ``perfect(level, index)``: the hash of the complete subtree of
``2**level`` leaves starting at leaf ``index * 2**level`` (the server keeps the large ones
in the database, a test or an auditor computes them from leaves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``): where RFC 9162 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --- building ---------------------------------------------------------------------------

EXTEND_LEVEL = 6
EXTEND_BLOCK = 1 << EXTEND_LEVEL


def perfect_root(leaves: Sequence[bytes]) -> bytes:
    """The hash of the complete tree over ``leaves`` (a power of two of them), computed
    level by level."""
    level = [_sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        level = [_sha256(b"\x01" + left + right).digest()
                 for left, right in zip(level[0::2], level[1::2], strict=True)]
    return level[0]



class TreeBuilder:
    """The tree over leaves appended one at a time, kept as its complete subtrees (one per
    set bit of the size, largest first): O(log n) memory, the root at any size."""

    def __init__(self, size: int = 0, subtrees: Sequence[bytes] = ()):
        """Resume at ``size`` leaves from the hashes of its complete subtrees, largest
        first (``subtree_ranges(size)``)."""
        if len(subtrees) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} "
                             f"complete subtrees, not {len(subtrees)}")
        self.size = size
        levels = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        self._stack: list[tuple[int, bytes]] = list(zip(levels, subtrees, strict=True))

    def append(self, leaf: bytes, on_node: Callable[[int, int, bytes], None] | None = None
               ) -> None:
        """Append a leaf (a chain hash); ``on_node(level, index, hash)`` is told of every
        complete subtree this completes (the leaf's own at level 0 included)."""
        self.append_hash(leaf_hash(leaf), on_node)

    def append_hash(self, h: bytes, on_node=None) -> None:
        """Append a leaf already hashed (``leaf_hash``)."""
        index = self.size
        level = 0
        stack = self._stack
        if on_node is not None:
            on_node(0, index, h)
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
            index >>= 1
            if on_node is not None:
                on_node(level, index, h)
        stack.append((level, h))
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append many leaves (chain hashes): the same tree as ``append`` one by one, with
        each run of ``EXTEND_BLOCK`` leaves starting at a multiple of it hashed as one
        complete subtree, level by level (no per-leaf bookkeeping)."""
        i, n, block = 0, len(leaves), EXTEND_BLOCK
        while i < n:
            if self.size % block == 0 and n - i >= block:
                self._push(EXTEND_LEVEL, perfect_root(leaves[i:i + block]))
                i += block
            else:
                self.append_hash(leaf_hash(leaves[i]))
                i += 1

    def _push(self, level: int, h: bytes) -> None:
        """Append the complete subtree of ``2**level`` leaves with hash ``h`` (the size must
        be a multiple of ``2**level``)."""
        stack = self._stack
        self.size += 1 << level
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))

    def root(self) -> bytes:
        """The tree head (``MTH``) over the leaves so far."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def subtree_ranges(size: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, index) a tree of ``size`` leaves is made of, largest
    first."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def root_of(leaves: Iterable[bytes]) -> bytes:
    """``MTH`` of the leaves (chain hashes)."""
    builder = TreeBuilder()
    for leaf in leaves:
        builder.append(leaf)
    return builder.root()


# --- subtree hashes from complete subtrees ---------------------------------------------------


def perfect_parts(lo: int, hi: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, index) ``MTH(D[lo:hi])`` is computed from, for a range
    as RFC 9162 cuts a tree (``lo`` a multiple of the power of two above ``hi - lo``)."""
    out = []
    while hi - lo > 0:
        n = hi - lo
        if _is_power_of_two(n):
            level = n.bit_length() - 1
            out.append((level, lo >> level))
            break
        k = split_point(n)
        level = k.bit_length() - 1
        out.append((level, lo >> level))
        lo += k
    return out


def range_hash(lo: int, hi: int, perfect: Callable[[int, int], bytes]) -> bytes:
    """``MTH(D[lo:hi])`` from the complete subtrees of ``perfect_parts``."""
    parts = [perfect(level, index) for level, index in perfect_parts(lo, hi)]
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


# --- proofs: which subtrees --------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose ``MTH`` make up ``PATH(index, D[0:size])`` (RFC 9162 §2.1.3.1),
    in proof order (from the leaf up)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose ``MTH`` make up ``PROOF(first, D[0:second])`` (RFC 9162
    §2.1.4.1), in proof order; empty when ``first`` is 0 or equals ``second``."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first == 0 or first == second:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                out.append((lo, hi))
            break
        k = split_point(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    out.reverse()
    return out


def prove(ranges: list[tuple[int, int]], perfect: Callable[[int, int], bytes]) -> list[bytes]:
    """The proof's hashes for ``ranges`` (from ``inclusion_ranges``/``consistency_ranges``)."""
    return [range_hash(lo, hi, perfect) for lo, hi in ranges]


def needed_subtrees(ranges: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Every complete subtree (level, index) ``prove(ranges, …)`` asks ``perfect`` for."""
    return {part for lo, hi in ranges for part in perfect_parts(lo, hi)}


# --- proofs: verification (RFC 9162 §2.1.3.2, §2.1.4.2) -------------------------------


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """Whether ``proof`` shows the leaf (a chain hash) at ``index`` in the tree of ``size``
    leaves with head ``root``."""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree of ``first`` leaves (head ``first_root``) is a
    prefix of the tree of ``second`` leaves (head ``second_root``)."""
    if not 0 <= first <= second or any(len(p) != HASH_SIZE for p in proof):
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if _is_power_of_two(first):
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# --- a contiguous run of leaves against a tree head --------------------------------------


def context_ranges(size: int, first: int, last: int) -> list[tuple[int, int]]:
    """The subtrees outside leaves ``first..last-1`` whose hashes, with those leaves,
    give the head of the tree of ``size`` leaves (in the order ``range_root`` takes them)."""
    if not 0 <= first < last <= size:
        raise ValueError(f"leaves {first}..{last - 1} are not in a tree of {size}")
    out: list[tuple[int, int]] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= first or lo >= last:
            out.append((lo, hi))
        elif hi - lo > 1:
            k = split_point(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, size)
    return out


def range_root(size: int, first: int, leaves: Sequence[bytes], context: Sequence[bytes]
               ) -> bytes | None:
    """The head of the tree of ``size`` leaves from the leaves (chain hashes) at
    ``first..first+len(leaves)-1`` and the hashes of ``context_ranges``; None when the
    context has the wrong number of hashes."""
    last = first + len(leaves)
    if not 0 <= first < last <= size:
        return None
    ctx: Iterator[bytes] = iter(context)
    hashed = [leaf_hash(leaf) for leaf in leaves]
    missing = object()

    def walk(lo: int, hi: int):
        if hi <= first or lo >= last:
            return next(ctx, missing)
        if hi - lo == 1:
            return hashed[lo - first]
        k = split_point(hi - lo)
        left = walk(lo, lo + k)
        right = walk(lo + k, hi)
        if left is missing or right is missing:
            return missing
        return node_hash(left, right)

    root = walk(0, size)
    if root is missing or next(ctx, missing) is not missing:
        return None
    return root
