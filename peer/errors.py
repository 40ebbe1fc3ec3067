"""Whose fault: errors of the wire protocol blame one side, then the connection stays failed."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class. `reason` is the goodbye/refusal reason code (`peer.messages.REASONS`)."""

    def __init__(self, message: str, reason: str = "protocol_error") -> None:
        super().__init__(message)
        self.reason = reason


class LocalProtocolError(ProtocolError):
    """We used the protocol wrongly (a bug on this side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not valid protocol, or broke a limit."""
