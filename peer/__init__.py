"""Networking: the wire protocol (no I/O), the TCP transport, the session and the live window."""
