"""The wire codec: every message round-trips, limits and malformed messages are refused clearly.

That any split of a stream decodes the same and that junk only ever raises RemoteProtocolError
are the `decoder_any_split` and `decoder_junk` properties of tools/fuzz_properties.py, which
tests/test_fuzz_properties.py runs with the suite.
"""

import pytest
from hypothesis import given

from lockstep.rules import Rules, rules_id
from peer.errors import RemoteProtocolError
from peer.messages import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    ChainCheck,
    Decoder,
    Hello,
    Input,
    encode,
)
from tools.fuzz_properties import messages


def decode_all(data: bytes):
    decoder = Decoder()
    decoder.feed(data)
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    assert decoder.buffered == 0
    return out


@given(messages)
def test_every_message_round_trips(message):
    assert decode_all(encode(message)) == [message]


def test_a_header_announcing_an_oversized_payload_is_refused_before_the_payload_arrives():
    decoder = Decoder()
    decoder.feed(bytes([0x80 | 6]) + (MAX_PAYLOAD + 1).to_bytes(2, "little"))  # the header alone
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        decoder.next_message()


def test_input_is_three_bytes_and_a_chain_check_is_small():
    assert len(encode(Input(3, 0xFFFF, 30))) == 3
    assert len(encode(ChainCheck(10**9, b"12345678"))) == 19


@pytest.mark.parametrize(
    "blob, needle",
    [
        (bytes([0x80 | 77, 0, 0]), "unknown message tag"),
        (bytes([0x80 | 1, 3, 0]) + b"abc", "truncated"),
        (bytes([0x80 | 1, 10, 0]) + b"GET / HTTP", "magic"),
        (bytes([0x80 | 5, 1, 0, 99]), "reason code"),
        (bytes([0x80 | 7, 5, 0]) + b"12345", "stray"),
    ],
)
def test_malformed_messages_say_what_is_wrong(blob, needle):
    decoder = Decoder()
    decoder.feed(blob)
    with pytest.raises(RemoteProtocolError, match=needle):
        decoder.next_message()


def test_hello_of_another_version_decodes_its_version_only():
    other = encode(Hello(PROTOCOL_VERSION, rules_id(Rules()), b"n" * 16, "x"))
    # Same magic, version 99, and a payload layout this version does not know.
    payload = other[3:11] + (99).to_bytes(2, "little") + b"whatever a future version sends"
    decoder = Decoder()
    decoder.feed(bytes([0x81]) + len(payload).to_bytes(2, "little") + payload)
    message = decoder.next_message()
    assert isinstance(message, Hello) and message.protocol_version == 99
