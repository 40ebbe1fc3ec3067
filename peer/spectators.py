"""The host's spectators: taken in by the waiting room, fed every confirmed frame by the fan-out,
served a bounded piece each turn of the host's loop (peer/watching.py decides what and when).

A spectator's stream leaves the loop's poller: its bytes never wake the host, which reads them on
its own schedule (every `SERVICE_EVERY_MS`), so whatever a spectator does, the players' loop keeps
its pace and its work per spectator stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lockstep.engine import FrameAdvanced
from lockstep.rules import rules_id
from peer.handshake import Established
from peer.messages import MatchInfo
from peer.transport import Poller, Stream
from peer.waiting_room import Link
from peer.watching import HostWatch, MatchLog

DEFAULT_SPECTATORS = 8
MAX_SPECTATORS = 64  # each costs a descriptor and a little work per turn
SERVICE_EVERY_MS = 33  # how often the host reads and feeds its spectators: every other frame
MAX_PENDING_BYTES = 64 * 1024  # queued toward a spectator beyond what the kernel took: too slow

Log = Callable[[str], None]


class Spectators:
    def __init__(
        self, limit: int, poller: Poller, log: Log, clock: Callable[[], int], silence_ms: int
    ) -> None:
        self.limit = limit
        self.total = 0  # how many were admitted in all (the host's JSON `spectators`)
        self.match: MatchLog | None = None
        self._watching: list[tuple[Stream, HostWatch]] = []
        self._poller = poller
        self._log = log
        self._clock = clock
        self._silence_ms = silence_ms
        self._last_service = -SERVICE_EVERY_MS

    def __len__(self) -> int:
        return len(self._watching)

    def full(self) -> str | None:
        """Why a new spectator is refused (`spectators_full`), or None when one is welcome."""
        if self.limit == 0:
            return "this host takes no spectators"
        if len(self._watching) >= self.limit:
            return f"this host already has as many spectators as it takes ({self.limit})"
        return None

    def admit(self, link: Link) -> str | None:
        """The waiting room's WATCH route: the spectator is in; None (taken) or why not."""
        request = link.peer.watch_request
        refusal = self.full()
        if request is None or refusal is not None:
            return refusal or "not a spectator"
        now = self._clock()
        self._poller.remove(link.stream)
        watch = HostWatch(request.remote_name, now, self._silence_ms, link.peer.connection.take_rest())
        if self.match is not None:
            watch.start(self.match)
        self._watching.append((link.stream, watch))
        self.total += 1
        at = f"at frame {watch.joined_at}" if self.match is not None else "before the match"
        self._log(f"{watch.name} ({link.stream.peer}) came in to watch {at}")
        self._flush(link.stream, watch)
        return None

    def start(self, established: Established) -> None:
        """The match began: its description for every spectator, then its frames."""
        est = established
        info = MatchInfo(est.seed, est.delay_frames, rules_id(est.rules), est.names, est.netcode, 0)
        self.match = MatchLog(info)
        for stream, watch in self._watching:
            watch.start(self.match)
            self._flush(stream, watch)

    def take(self, frames: Sequence[FrameAdvanced]) -> None:
        """A `FrameConsumer`: every confirmed frame, kept for whoever comes later."""
        match = self.match
        if match is not None:
            for frame in frames:
                match.add(frame.frame_input, frame.chain)

    def service(self, now: int) -> list[tuple[str, str]]:
        """Read, feed and check every spectator, at most every `SERVICE_EVERY_MS`; the lines of chat
        they said (relayed among them already) as (name, text)."""
        if now - self._last_service < SERVICE_EVERY_MS or not self._watching:
            return []
        self._last_service = now
        lines: list[tuple[HostWatch, str]] = []
        for stream, watch in self._watching:
            data = stream.pump(0)
            if data:
                watch.receive_data(data, now)
            if stream.closed and watch.open:
                watch.closed(stream.close_reason or "the connection ended")
            watch.service(now)
            lines += [(watch, event.text) for event in watch.events]
            watch.events.clear()
            if watch.open and stream.pending_bytes > MAX_PENDING_BYTES:
                watch.drop("too_slow", f"{stream.pending_bytes} bytes wait for you to read them")
            self._flush(stream, watch)
        for sender, text in lines:
            self.relay(sender.name, text, sender)
        for stream, watch in list(self._watching):
            if not watch.open:
                self._say_gone(stream, watch)
        return [(sender.name, text) for sender, text in lines]

    def relay(self, name: str, text: str, sender: HostWatch | None = None) -> None:
        """A line of chat to every spectator but its sender (sent with the next turn's bytes)."""
        for _, watch in self._watching:
            if watch is not sender:
                watch.relay(name, text)

    def finish(self, reason: str, frame: int, chain: bytes, detail: str) -> None:
        """The match is over: the rest of it and the host's goodbye to everyone, then close."""
        for stream, watch in self._watching:
            watch.finish(reason, frame, chain, detail)
            self._flush(stream, watch)
        self.close()

    def close(self) -> None:
        for stream, _ in self._watching:
            stream.close(linger_ms=0)  # what the kernel took still arrives, then the end
        self._watching.clear()

    # -- internals ------------------------------------------------------------------------------
    def _flush(self, stream: Stream, watch: HostWatch) -> None:
        out = watch.data_to_send()
        if out:
            stream.send(out)
            stream.flush()

    def _say_gone(self, stream: Stream, watch: HostWatch) -> None:
        self._watching.remove((stream, watch))
        stream.close(linger_ms=0)
        ended = watch.ended
        why = f"{ended.reason}: {ended.detail}" if ended is not None else "gone"
        self._log(f"spectator {watch.name} left ({why})")
