"""The Merkle tree, its proofs and their verification against an independent, naive
implementation of RFC 9162 §2.1 written here from the RFC's definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal_verify import merkle


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_mth(leaves: list[bytes]) -> bytes:
    """MTH of RFC 9162 §2.1.1, literally."""
    n = len(leaves)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _sha(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [naive_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return naive_subproof(m, leaves[:k], b) + [naive_mth(leaves[k:])]
    return naive_subproof(m - k, leaves[k:], False) + [naive_mth(leaves[:k])]


def _perfect(leaves):
    def perfect(level: int, index: int) -> bytes:
        return naive_mth(leaves[index << level:(index + 1) << level])
    return perfect


# Distinct leaves: two equal chain hashes would be the same leaf wherever they stand.
LEAVES = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True)


def test_roots_by_hand():
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    la, lb, lc = (hashlib.sha256(b"\x00" + x).digest() for x in (a, b, c))
    # one leaf: the leaf hash itself
    assert merkle.root_of([a]) == la
    # two leaves: H(0x01 || H(0x00||a) || H(0x00||b))
    ab = hashlib.sha256(b"\x01" + la + lb).digest()
    assert merkle.root_of([a, b]) == ab
    # three leaves: split at 2, so H(0x01 || MTH(a,b) || H(0x00||c))
    assert merkle.root_of([a, b, c]) == hashlib.sha256(b"\x01" + ab + lc).digest()
    # no leaves: SHA-256 of the empty string
    assert merkle.root_of([]) == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    # proofs by hand: leaf c in a tree of 3 is proved by MTH(a,b); leaf a by [lb, lc]
    assert merkle.prove(merkle.inclusion_ranges(2, 3), _perfect([a, b, c])) == [ab]
    assert merkle.prove(merkle.inclusion_ranges(0, 3), _perfect([a, b, c])) == [lb, lc]
    assert merkle.verify_inclusion(2, 3, c, [ab], merkle.root_of([a, b, c]))


@settings(max_examples=100, deadline=None)
@given(LEAVES)
def test_root_equals_naive_rfc_implementation(leaves):
    assert merkle.root_of(leaves) == naive_mth(leaves)
    builder = merkle.TreeBuilder()
    for i, leaf in enumerate(leaves):
        builder.append(leaf)
        # resuming from the complete subtrees gives the same tree
        parts = merkle.subtree_ranges(i + 1)
        resumed = merkle.TreeBuilder(i + 1, [_perfect(leaves)(lv, ix) for lv, ix in parts])
        assert resumed.root() == builder.root() == naive_mth(leaves[:i + 1])


@settings(max_examples=100, deadline=None)
@given(LEAVES)
def test_inclusion_proofs_verify_for_every_leaf_and_fail_for_every_other(leaves):
    n = len(leaves)
    root = naive_mth(leaves)
    perfect = _perfect(leaves)
    for m in range(n):
        proof = merkle.prove(merkle.inclusion_ranges(m, n), perfect)
        assert proof == naive_path(m, leaves)
        assert merkle.verify_inclusion(m, n, leaves[m], proof, root)
        for other in range(n):
            if other != m:  # another leaf at this place, or this leaf at another place
                assert not merkle.verify_inclusion(m, n, leaves[other], proof, root)
                assert not merkle.verify_inclusion(other, n, leaves[m], proof, root)
        assert not merkle.verify_inclusion(m, n, _sha(leaves[m]), proof, root)
        if proof:
            flipped = bytearray(proof[0])
            flipped[0] ^= 1
            assert not merkle.verify_inclusion(m, n, leaves[m], [bytes(flipped), *proof[1:]],
                                               root)
            assert not merkle.verify_inclusion(m, n, leaves[m], proof[:-1], root)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_consistency_across_random_append_sequences(appends, rnd):
    leaves: list[bytes] = []
    sizes = []
    for count in appends:
        leaves.extend(rnd.randbytes(32) for _ in range(count))
        sizes.append(len(leaves))
    perfect = _perfect(leaves)
    for i, m in enumerate(sizes):
        for n in sizes[i:]:
            proof = merkle.prove(merkle.consistency_ranges(m, n), perfect)
            if m < n:
                assert proof == naive_subproof(m, leaves[:n], True)
            old, new = naive_mth(leaves[:m]), naive_mth(leaves[:n])
            assert merkle.verify_consistency(m, n, old, new, proof)
            if m < n:
                # a different old tree, or a damaged proof, does not verify
                assert not merkle.verify_consistency(m, n, _sha(old), new, proof)
                assert not merkle.verify_consistency(m, n, old, new, proof[:-1])
                if proof:
                    bad = bytearray(proof[-1])
                    bad[-1] ^= 0x80
                    assert not merkle.verify_consistency(m, n, old, new,
                                                         [*proof[:-1], bytes(bad)])


@settings(max_examples=100, deadline=None)
@given(LEAVES, st.data())
def test_a_run_of_leaves_with_its_context_gives_the_root(leaves, data):
    n = len(leaves)
    first = data.draw(st.integers(0, n - 1))
    last = data.draw(st.integers(first + 1, n))
    context = merkle.prove(merkle.context_ranges(n, first, last), _perfect(leaves))
    assert merkle.range_root(n, first, leaves[first:last], context) == naive_mth(leaves)
    changed = list(leaves[first:last])
    changed[-1] = _sha(changed[-1])
    assert merkle.range_root(n, first, changed, context) != naive_mth(leaves)
    if last < n:  # a truncated run no longer fits its context
        assert merkle.range_root(n, first, leaves[first:last - 1] or [b"x"], context) \
            != naive_mth(leaves)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 700), st.integers(0, 200), st.lists(st.integers(1, 300), max_size=12))
def test_extend_builds_the_same_tree_as_appending_one_by_one(n, start, cuts):
    """``TreeBuilder.extend`` (whole blocks of 64 hashed at once) gives the same size and root
    as ``append`` one leaf at a time, for any size, starting point and split into calls, and
    equals the naive RFC 9162 root."""
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    start = min(start, n)
    one = merkle.TreeBuilder()
    for leaf in leaves:
        one.append(leaf)
    many = merkle.TreeBuilder()
    for leaf in leaves[:start]:
        many.append(leaf)
    i = start
    for cut in cuts + [n]:
        many.extend(leaves[i:i + cut])
        i = min(n, i + cut)
    assert (many.size, many.root()) == (one.size, one.root()) == (n, naive_mth(leaves))
