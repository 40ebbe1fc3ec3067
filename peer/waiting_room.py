"""The host's door: it listens, accepts, runs handshakes side by side, refuses with a reason, and
hands every connection whose handshake succeeded to the handler of what it came for.

Several handshakes run at once (up to `MAX_HANDSHAKES`), so one idle or junk connection cannot
block a real player. When the room is full, a newcomer makes room by dropping the handshake that
made the least progress: one that has said nothing at all, or no complete message for
`STALE_HANDSHAKE_MS` (a real player answers within a round trip; a trickle of bytes that never
completes a message is no progress). Only when every handshake is progressing is the newcomer
refused. A refusal is a complete message, sent without any handshake state for it.

Running out of file descriptors is survivable: the connection waits in the kernel's queue, the room
frees a descriptor if it can (a stalled handshake, refused connections still saying goodbye), and it
looks again a little later instead of spinning on a listener that stays readable. It says so at most
once a second.
"""

from __future__ import annotations

from collections.abc import Callable

from peer.handshake import HostHandshake
from peer.match import MatchPeer
from peer.messages import Purpose
from peer.protocol import refusal_bytes
from peer.transport import Listener, Poller, Stream, TransportError

MAX_HANDSHAKES = 32  # concurrent handshakes while the host waits for a real player
STALE_HANDSHAKE_MS = 1000  # no complete message this long: no player mid-handshake (far above an RTT)
HANG_UP_MS = 2000  # how long a refused connection may take to read its refusal and hang up
MAX_CLOSING = 64  # refused connections kept for their goodbye at once; beyond that they are closed at once
ACCEPT_EVERY_MS = 20  # during a match, newcomers are turned away this often (a syscall per frame is waste)
ACCEPT_RETRY_MS = 100  # out of descriptors: look at the listener again after this long
ACCEPT_ERROR_EVERY_MS = 1000  # ... and say so at most this often
SHORT_OF_DESCRIPTORS_MS = 5000  # after running out, refused connections get no time for goodbyes

Log = Callable[[str], None]


class Link:
    """One TCP connection and the match peer speaking over it."""

    def __init__(self, stream: Stream, peer: MatchPeer) -> None:
        self.stream = stream
        self.peer = peer

    def pump(self, now_ms: int) -> None:
        data = self.stream.pump(0)
        if data:
            self.peer.receive_data(data, now_ms)
        if self.stream.closed and not self.peer.finished:
            self.peer.receive_data(b"", now_ms)

    def flush(self) -> None:
        out = self.peer.data_to_send()
        if out:
            self.stream.send(out)
            self.stream.flush()


# Takes a connection whose handshake succeeded; returns None when it took it, else why not (the
# connection is then refused with that detail).
Handler = Callable[[Link], str | None]


class WaitingRoom:
    """Owns the listener and every connection that has not been handed over yet.

    `routes` maps what a connection is for to the handler that takes it once its handshake succeeds
    (the session routes players, players taking their seat back, and spectators). A purpose without
    a handler is refused.
    """

    def __init__(
        self,
        listener: Listener,
        poller: Poller,
        new_peer: Callable[[], MatchPeer],
        log: Log,
        clock: Callable[[], int],
    ) -> None:
        self.listener = listener
        self.routes: dict[Purpose, Handler] = {}
        self._poller = poller
        self._new_peer = new_peer
        self._log = log
        self._clock = clock
        self._handshakes: list[Link] = []
        self._closing: list[tuple[Stream, int]] = []  # refused connections waiting to hang up
        self._accept_paused_until: int | None = None
        self._accept_error_logged: int | None = None
        self._short_of_descriptors_until = 0
        self._last_accept: int | None = None
        poller.add(listener)

    # -- the two ways of answering the door ----------------------------------------------------------
    def admit(self, now: int, accept_every_ms: int = 0) -> None:
        """Accept, move every handshake along, route the finished ones. During a match, accepting
        at most every `accept_every_ms` spares the game loop a system call per frame."""
        if self._accept_due(now, accept_every_ms):
            while (stream := self._accept_one(now)) is not None:
                self._welcome(stream, now)
        for link in list(self._handshakes):
            link.pump(now)
            link.peer.update(now, None)
            link.flush()
            # A new player's handshake makes its match; one that takes a seat back waits for the
            # match's own peer to take it over (`resume_request`).
            established = link.peer.established or link.peer.resume_request or link.peer.watch_request
            if established is not None:  # (if it ended at once, the handler's loop will say so)
                self._handshakes.remove(link)
                self._route(link, established.purpose)
            elif link.peer.outcome is not None:
                self._handshakes.remove(link)
                outcome = link.peer.outcome
                # The detail of a goodbye is the other side's own words; say whose they are.
                said = f"it says: {outcome.detail}" if outcome.by_remote else outcome.detail
                how = "left the handshake" if outcome.by_remote else "refused"
                self._log(f"{how}: {link.stream.peer}: {outcome.result} ({said})")
                self._hang_up(link.stream, now)
        self._service_closing(now)

    def turn_away(self, now: int, detail: str) -> None:
        """While no seat is free (a match is on): refuse every newcomer with `session_full`."""
        if not self._accept_due(now, ACCEPT_EVERY_MS):
            return
        while (stream := self._accept_one(now)) is not None:
            self._refuse(stream, detail, now)
        self._service_closing(now)

    def refuse_handshakes(self, detail: str) -> None:
        """Turn away every player still mid-handshake (the seat was taken); spectators go on."""
        now = self._clock()
        for link in list(self._handshakes):
            handshake = link.peer.connection.handshake
            if isinstance(handshake, HostHandshake) and handshake.purpose is Purpose.WATCH:
                continue
            self._refuse(link.stream, detail, now)
            self._handshakes.remove(link)

    def close(self) -> None:
        """Close everything the room still holds, at once."""
        for link in self._handshakes:
            link.stream.close(linger_ms=0)
        self._handshakes.clear()
        for stream, _ in self._closing:
            stream.close(linger_ms=0)
        self._closing.clear()
        self.listener.close()

    # -- internals --------------------------------------------------------------------------------
    def _accept_due(self, now: int, every_ms: int) -> bool:
        if self._last_accept is not None and now - self._last_accept < every_ms:
            return False
        self._last_accept = now
        return True

    def _welcome(self, stream: Stream, now: int) -> None:
        if len(self._handshakes) >= MAX_HANDSHAKES:
            victim = self._least_progress(now)
            if victim is None:
                self._refuse(stream, "too many players are connecting at once", now)
                return
            self._drop(victim, "too many connections at once, and this one was the most silent", now)
        link = Link(stream, self._new_peer())
        self._handshakes.append(link)
        self._poller.add(stream)
        # Read what came with the connection: a real player's hello is on its way at once, and so it
        # counts as progress before the next newcomer of this batch looks for someone to drop.
        link.pump(now)

    def _least_progress(self, now: int) -> Link | None:
        """The handshake to drop for a newcomer: one that said nothing at all, or no complete message
        for `STALE_HANDSHAKE_MS`, the longest without progress first; None when all progress."""
        stale = [
            link
            for link in self._handshakes
            if link.peer.connection.bytes_received == 0
            or now - link.peer.connection.last_progress_ms >= STALE_HANDSHAKE_MS
        ]
        if not stale:
            return None
        return min(stale, key=lambda link: link.peer.connection.last_progress_ms)

    def _drop(self, link: Link, detail: str, now: int) -> None:
        self._handshakes.remove(link)
        self._log(f"refused: {link.stream.peer}: session_full ({detail})")
        self._refuse(link.stream, detail, now)

    def _route(self, link: Link, purpose: Purpose) -> None:
        handler = self.routes.get(purpose)
        refusal = handler(link) if handler is not None else "this host cannot take that connection now"
        if refusal is not None:
            self._refuse(link.stream, refusal, self._clock())

    def _accept_one(self, now: int) -> Stream | None:
        paused = self._accept_paused_until
        if paused is not None:
            if now < paused:
                return None
            self._accept_paused_until = None
            self._poller.add(self.listener)
        try:
            return self.listener.accept()
        except TransportError as exc:  # out of descriptors (or memory): wait, free some, retry
            if self._accept_error_logged is None or now - self._accept_error_logged >= ACCEPT_ERROR_EVERY_MS:
                self._accept_error_logged = now
                self._log(f"{exc}; still waiting")
            self._accept_paused_until = now + ACCEPT_RETRY_MS
            self._short_of_descriptors_until = now + SHORT_OF_DESCRIPTORS_MS
            self._poller.remove(self.listener)  # it stays readable: do not wake for it meanwhile
            self._free_descriptors(now)
            return None

    def _free_descriptors(self, now: int) -> None:
        """Out of descriptors: close refused connections now rather than after their goodbye, and drop
        the handshake that made the least progress, if one is stalled."""
        for stream, _ in self._closing:
            stream.close(linger_ms=0)
        self._closing.clear()
        victim = self._least_progress(now)
        if victim is not None:
            self._drop(victim, "out of connections, and this one was the most silent", now)

    def _refuse(self, stream: Stream, detail: str, now: int) -> None:
        stream.send(refusal_bytes("session_full", detail))
        self._hang_up(stream, now)

    def _hang_up(self, stream: Stream, now: int) -> None:
        """Close once the other side has read our last words and hung up (or after a moment).

        Closing at once would make our kernel answer their next bytes (a hello in flight) with a
        reset, and a reset can destroy the refusal before they read it.
        """
        stream.flush()
        if now < self._short_of_descriptors_until or len(self._closing) >= MAX_CLOSING:
            # Short of descriptors (the match about to start needs one for its replay), or flooded:
            # what the kernel took is all they will get.
            stream.close(linger_ms=0)
            return
        self._closing.append((stream, now + HANG_UP_MS))

    def _service_closing(self, now: int) -> None:
        for item in list(self._closing):
            stream, deadline = item
            stream.pump(0)  # whatever they still say is of no interest; EOF is
            if stream.closed or now >= deadline:
                stream.close(linger_ms=0)
                self._closing.remove(item)
