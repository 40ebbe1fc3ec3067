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
_SECRET_LABEL = b"lockstep-pong seat secret"
_SEAT_LABEL = b"lockstep-pong seat proof"


def _mac(key: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(key, label + first + second, hashlib.sha256).digest()


def host_proof(key: bytes, joiner_nonce: bytes, host_nonce: bytes) -> bytes:
    return _mac(key, _HOST_LABEL, joiner_nonce, host_nonce)


def joiner_proof(key: bytes, joiner_nonce: bytes, host_nonce: bytes) -> bytes:
    return _mac(key, _JOINER_LABEL, host_nonce, joiner_nonce)


def proofs_match(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)


def seat_secret(key: bytes | None, host_nonce: bytes, joiner_nonce: bytes) -> bytes:
    """The per-match secret both sides derive at the match's handshake; whoever takes a seat back
    must prove it. With a key it is a MAC under the key, so only the key's holders can derive it;
    without one, only who saw that handshake (the two players, or someone reading their traffic)."""
    return _mac(key or b"", _SECRET_LABEL, host_nonce, joiner_nonce)


def seat_proof(secret: bytes, joiner_nonce: bytes, host_nonce: bytes) -> bytes:
    """Proof of the secret over this connection's fresh nonces: a recorded proof cannot be replayed."""
    return _mac(secret, _SEAT_LABEL, joiner_nonce, host_nonce)
