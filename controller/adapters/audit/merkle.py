"""RFC 6962 §2.1 Merkle hash trees: tree heads, audit paths, consistency proofs.

No maintained Python library produces RFC 6962 roots *and* proofs in the shape CT
tooling expects (the PyPI candidates are unmaintained, or use other leaf/node
rules), so this is the small core, tested against the RFC 6962 /
certificate-transparency-go vectors. Verification follows RFC 9162 §2.1.3.2 and
§2.1.4.2, the iterative forms of the RFC 6962 definitions.

Hashes are raw 32-byte `bytes`. Functions taking `leaves` take *leaf hashes*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "subtree_root",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a growing tree: O(log n) subtree roots, enough to append and take the root.

    Appending is amortized O(1) hashes, so the ledger never recomputes the whole
    tree per event; `root()` folds the O(log n) perfect subtrees right to left,
    which is exactly MTH of the prefix.
    """

    __slots__ = ("_stack", "last", "size")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, root of a perfect subtree), left to right
        self.size = 0
        self.last: bytes | None = None  # the newest leaf, so a cache can be checked against the table

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        height, value = 0, leaf
        stack = self._stack
        while stack and stack[-1][0] == height:
            _, left = stack.pop()
            value = node_hash(left, value)
            height += 1
        stack.append((height, value))
        self.size += 1
        self.last = leaf

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of every leaf appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value

    def copy(self) -> Frontier:
        """An independent copy (the ledger advances a copy and keeps it only after commit)."""
        other = Frontier()
        other._stack = list(self._stack)
        other.size = self.size
        other.last = self.last
        return other


def subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) without slicing, in O(end - start) hashes."""
    if end <= start:
        return EMPTY_ROOT
    frontier = Frontier()
    for i in range(start, end):
        frontier.append(leaves[i])
    return frontier.root()


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[0:n])."""
    return subtree_root(leaves, 0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf-side first."""
    n = len(leaves) if size is None else size
    if not 0 <= index < n <= len(leaves):
        raise ValueError(f"no leaf {index} in a tree of size {n}")
    path: list[bytes] = []
    start, end = 0, n
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            path.append(subtree_root(leaves, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(leaves, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """PROOF(m, D[0:n]) of RFC 6962 §2.1.2."""
    n = len(leaves) if new_size is None else new_size
    if not 0 <= old_size <= n <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {n}")
    if old_size in (0, n):
        return []
    return _subproof(leaves, old_size, 0, n, True)


def _subproof(leaves: Sequence[bytes], m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [subtree_root(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, start, start + k, whole), subtree_root(leaves, start + k, end)]
    return [*_subproof(leaves, m - k, start + k, end, False), subtree_root(leaves, start, start + k)]


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root an audit path implies, or None when the path has the wrong shape (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size or any(len(p) != 32 for p in proof) or len(leaf) != 32:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows leaf `index` in the tree of `size` with `root`."""
    return root_from_inclusion(leaf, index, size, proof) == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether `proof` shows the tree of `old_size` is a prefix of the one of `new_size` (RFC 9162 §2.1.4.2)."""
    if not 0 <= old_size <= new_size or any(len(p) != 32 for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
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
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
