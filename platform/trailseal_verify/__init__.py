"""Independent verification of a Trailseal trail: the hash-chain record format, the RFC 9162
Merkle tree over a tenant's chain hashes, C2SP signed checkpoints, and ``trailseal-verify``.

This package imports only the standard library and ``cryptography``: nothing here needs a
server or a database, so an auditor can run it on a bundle without trusting the operator.
The server imports the same functions (``trailseal.services.chain`` and ``checkpoints``),
so the two cannot compute a hash differently.
"""

from __future__ import annotations
