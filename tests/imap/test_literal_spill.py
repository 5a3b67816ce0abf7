"""The parser hands a large literal to the injected sink piece by piece (pure; a list stands in
for the shell's temporary file)."""

from __future__ import annotations

from mailpipe.access.imap.grammar import Spooled
from mailpipe.access.imap.parser import CONTINUE, NEED_DATA, Command, CommandParser


class ListSink:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.discarded = False

    def write(self, data: bytes) -> None:
        self.pieces.append(data)

    def finish(self) -> Spooled:
        return Spooled("/spooled", sum(map(len, self.pieces)))

    def discard(self) -> None:
        self.discarded = True


def test_a_large_append_literal_goes_to_the_sink_in_pieces():
    sinks: list[ListSink] = []

    def spill(size: int, head: bytes):
        sinks.append(ListSink())
        return sinks[-1] if b"APPEND" in head else None

    parser = CommandParser(max_literal=1 << 30, spill_over=10, spill=spill)
    parser.receive_data(b"a APPEND INBOX {25}\r\n")
    assert parser.next_event() is CONTINUE
    for piece in (b"0123456789", b"0123456789", b"01234"):
        parser.receive_data(piece)
        assert parser.next_event() is NEED_DATA or piece == b"01234"
    parser.receive_data(b"\r\n")
    event = parser.next_event()
    assert isinstance(event, Command) and event.args[-1] == Spooled("/spooled", 25)
    assert sinks[0].pieces == [b"0123456789", b"0123456789", b"01234"]
    assert len(parser._buf) == 0


def test_small_literals_and_other_commands_stay_in_memory():
    parser = CommandParser(spill_over=10, spill=lambda size, head: None)
    parser.receive_data(b"a LOGIN {20+}\r\n" + b"x" * 20 + b" pw\r\n")
    event = parser.next_event()
    assert isinstance(event, Command) and event.args[0] == b"x" * 20


def test_a_broken_connection_discards_the_partial_literal():
    sink = ListSink()
    parser = CommandParser(spill_over=1, spill=lambda size, head: sink)
    parser.receive_data(b"a APPEND INBOX {100+}\r\npartial")
    assert parser.next_event() is NEED_DATA
    parser.abandon()
    assert sink.discarded
