"""The gateway's MQTT client at the byte level (a fake transport; the integration tests run it
against Mosquitto): packets split anywhere across reads, long remaining lengths, QoS 1
acknowledgements in one write per read, control packets, protocol errors, back-pressure."""

from __future__ import annotations

import asyncio
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.mqtt.client import (
    PUBACK,
    PUBLISH,
    SUBACK,
    MqttUnavailable,
    Subscriber,
    _packet,
    _Protocol,
    _string,
)
from infra.settings import Settings


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    header = _string(topic) + (struct.pack(">H", packet_id) if qos else b"")
    return _packet(PUBLISH | (qos << 1), header + payload)


def connected(**kw: object) -> tuple[Subscriber, _Protocol, FakeTransport]:
    client = Subscriber(Settings(_env_file=None), identifier="t",  # type: ignore[call-arg]
                        topics=["a/#"], **kw)  # type: ignore[arg-type]
    protocol = _Protocol(client)
    transport = FakeTransport()
    protocol.connection_made(transport)
    client._protocol = protocol
    client.connected.set()
    return client, protocol, transport


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.sampled_from([0, 1, 5, 126, 127, 128, 300, 16383, 16384, 70_000]),
                      min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=1, max_value=200_000), max_size=8),
       qos=st.sampled_from([0, 1]))
def test_messages_survive_any_split_of_the_stream(sizes: list[int], cuts: list[int],
                                                  qos: int) -> None:
    client, protocol, transport = connected()
    sent = [(f"a/{i}/telemetry", bytes([i % 256]) * n) for i, n in enumerate(sizes)]
    stream = b"".join(publish(t, p, qos, i + 1) for i, (t, p) in enumerate(sent))
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(points):
        protocol.data_received(stream[a:b])
    assert client._messages == sent
    assert protocol.buffer == bytearray()
    acks = b"".join(transport.written)
    expected = b"".join(bytes((PUBACK, 2)) + struct.pack(">H", i + 1) for i in range(len(sent)))
    assert acks == (expected if qos else b"")


def test_remaining_length_encoding() -> None:
    assert _packet(0x30, b"x" * 127)[:2] == b"\x30\x7f"
    assert _packet(0x30, b"x" * 128)[:3] == b"\x30\x80\x01"
    assert _packet(0x30, b"x" * 16384)[:4] == b"\x30\x80\x80\x01"


def test_one_write_of_acknowledgements_per_read() -> None:
    client, protocol, transport = connected()
    protocol.data_received(b"".join(publish("a/b", b"{}", 1, i) for i in range(1, 51)))
    assert len(transport.written) == 1 and len(client._messages) == 50


async def test_acknowledgements_resolve_requests_and_pings() -> None:
    client, protocol, transport = connected()
    request = asyncio.create_task(client._request(0x82, b"", _string("a/#") + b"\x01"))
    await asyncio.sleep(0)
    packet_id = struct.unpack(">H", transport.written[-1][2:4])[0]
    protocol.data_received(bytes((SUBACK, 3)) + struct.pack(">H", packet_id) + b"\x01")
    assert await request == b"\x01"
    client._last_pong = 0.0
    protocol.data_received(b"\xd0\x00")  # PINGRESP
    assert client._last_pong > 0


async def test_qos2_is_a_protocol_error_that_ends_the_batches() -> None:
    client, protocol, transport = connected()
    protocol.data_received(publish("a/b", b"1", 0) + publish("a/b", b"2", 2, 7))
    assert transport.closed and not client.connected.is_set()
    batches = client.batches()
    assert await anext(batches) == [("a/b", b"1")]
    with pytest.raises(MqttUnavailable, match="QoS 2"):
        await anext(batches)


async def test_too_many_waiting_messages_pause_the_socket() -> None:
    client, protocol, transport = connected(max_buffered=10, min_batch=1)
    protocol.data_received(b"".join(publish("a/b", b"x") for _ in range(12)))
    assert transport.paused
    batches = client.batches()
    assert len(await anext(batches)) == 12
    assert not transport.paused


async def test_stop_ends_the_batches_after_what_arrived() -> None:
    client, protocol, transport = connected(min_batch=1)
    protocol.data_received(publish("a/b", b"1"))
    await client.stop()
    assert transport.written[-1] == b"\xe0\x00" and transport.closed  # DISCONNECT
    assert [b async for b in client.batches()] == [[("a/b", b"1")]]


def test_connect_packet_carries_the_credentials() -> None:
    from pydantic import SecretStr

    s = Settings(_env_file=None, mqtt_username="gw", mqtt_password=SecretStr("pw"))  # type: ignore[call-arg]
    body = Subscriber(s, identifier="id-1", topics=[], keepalive_s=30)._connect_body()
    assert body == _string("MQTT") + bytes((4, 0xC0)) + b"\x00\x1e" + _string("id-1") + \
        _string("gw") + _string("pw")
    clean = Subscriber(Settings(_env_file=None), identifier="x", topics=[],  # type: ignore[call-arg]
                       clean_session=True)._connect_body()
    assert clean[7] == 0x02


async def test_big_backlogs_come_in_chunks() -> None:
    client, protocol, _ = connected(max_batch=5, min_batch=1)
    protocol.data_received(b"".join(publish("a/b", bytes([i])) for i in range(12)))
    await client.stop()
    chunks = [b async for b in client.batches()]
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert [p for c in chunks for _, p in c] == [bytes([i]) for i in range(12)]
