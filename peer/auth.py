"""The optional shared key: mutual HMAC-SHA256 challenge-response over both nonces.

Each side proves it knows the key by a MAC over both nonces, labelled by role so a proof can
never be reflected back. The key itself never crosses the wire; proofs are compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac

_HOST_LABEL = b"lockstep-pong host proof"
_JOINER_LABEL = b"lockstep-pong joiner proof"


def _mac(key: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(key, label + first + second, hashlib.sha256).digest()


def host_proof(key: bytes, joiner_nonce: bytes, host_nonce: bytes) -> bytes:
    return _mac(key, _HOST_LABEL, joiner_nonce, host_nonce)


def joiner_proof(key: bytes, joiner_nonce: bytes, host_nonce: bytes) -> bytes:
    return _mac(key, _JOINER_LABEL, host_nonce, joiner_nonce)


def proofs_match(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)
