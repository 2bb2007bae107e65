"""The gateway's MQTT 3.1.1 client: an asyncio protocol that parses every complete packet of a
socket read at once and hands the PUBLISHes to the gateway in batches.

Why not aiomqtt or paho-mqtt: both parse in paho, which reads each packet with three or four
``recv`` calls and builds a message object per packet (about 18 us of CPU per message on the
development machine); aiomqtt adds one event-loop iteration and a queue hop per message and
reached half a bare paho subscriber's rate before any work was done. This client costs about
2 us per message (README "Benchmarks"). It does what the gateway needs and no more: CONNECT
(client id, clean session or not, username/password, keepalive), TLS through asyncio,
SUBSCRIBE/UNSUBSCRIBE, PUBLISH in at QoS 0 and 1 (acknowledged on receipt, as paho does),
PUBLISH out at QoS 0 and 1 (setpoints), PINGREQ keepalive, DISCONNECT. No QoS 2, no MQTT 5,
no automatic reconnect: a lost connection ends `batches()` with `MqttUnavailable` and the
gateway connects again with backoff. The simulator and the API's probe use aiomqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Sequence

from infra.logging import get_logger
from infra.mqtt import broker_address, tls_context
from infra.settings import Settings

log = get_logger("gateways.mqtt.client")

Batch = list[tuple[str, bytes]]
"""(topic, payload) in arrival order."""

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x82, 0x90, 0xA2, 0xB0
PINGREQ, PINGRESP, DISCONNECT = 0xC0, 0xD0, 0xE0
CONNACK_CODES = {1: "unacceptable protocol version", 2: "identifier rejected",
                 3: "server unavailable", 4: "bad user name or password", 5: "not authorised"}


class MqttUnavailable(Exception):
    """The broker could not be reached, refused us or went away; `retriable` is False for a
    refusal that the same settings cannot overcome (bad credentials, not authorised)."""

    def __init__(self, message: str, retriable: bool = True):
        super().__init__(message)
        self.retriable = retriable


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    """Fixed header (type and flags, remaining length) + `body`."""
    length, n = bytearray(), len(body)
    while True:
        n, digit = divmod(n, 128)
        length.append(digit | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(length) + body


class _Protocol(asyncio.Protocol):
    """Splits the byte stream into packets: PUBLISHes go to the subscriber's message list
    (QoS 1 ones acknowledged, all acknowledgements of a read in one write), the other packets
    to `Subscriber._control`."""

    def __init__(self, client: Subscriber):
        self.client = client
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        messages = self.client._messages
        before = len(messages)
        acks = bytearray()
        while end - pos >= 2:
            first, i, length, shift, complete = buf[pos], pos + 1, 0, 0, False
            while i < end:  # remaining length: 1 to 4 bytes of 7 bits, least significant first
                digit = buf[i]
                i += 1
                length |= (digit & 0x7F) << shift
                shift += 7
                if not digit & 0x80:
                    complete = True
                    break
                if shift >= 28:
                    self.client._protocol_error("remaining length longer than 4 bytes")
                    return
            if not complete or i + length > end:
                break  # the rest of the packet is still on its way
            packet_end = i + length
            if first & 0xF0 == PUBLISH:
                n = (buf[i] << 8) | buf[i + 1]
                topic = buf[i + 2:i + 2 + n].decode(errors="replace")
                j = i + 2 + n
                qos = (first >> 1) & 3
                if qos:
                    if qos == 2:
                        self.client._protocol_error("QoS 2 PUBLISH (we subscribe at most QoS 1)")
                        return
                    acks += bytes((PUBACK, 2))
                    acks += buf[j:j + 2]
                    j += 2
                messages.append((topic, bytes(buf[j:packet_end])))
            else:
                self.client._control(first, bytes(buf[i:packet_end]))
            pos = packet_end
        del buf[:pos]
        if acks and self.transport is not None:
            self.transport.write(acks)
        if len(messages) > before:
            self.client._received(before == 0)


class Subscriber:
    """One connection to the broker, subscribed to `topics` at `qos`; see the module doc.

    `batches()` yields what arrived since the last batch (waiting `gather_s` for at least
    `min_batch`, in chunks of at most `max_batch`); at `max_buffered` unhandled messages the
    socket is not read (the broker queues) until the gateway caught up.
    """

    def __init__(self, settings: Settings, *, identifier: str, topics: Sequence[str],
                 qos: int = 1, clean_session: bool = False, keepalive_s: int = 30,
                 max_buffered: int = 100_000, min_batch: int = 100, max_batch: int = 5000,
                 gather_s: float = 0.002):
        self.settings = settings
        self.identifier = identifier
        self.topics = list(topics)
        self.qos = qos
        self.clean_session = clean_session
        self.keepalive_s = keepalive_s
        self.max_buffered = max_buffered
        self.min_batch, self.max_batch, self.gather_s = min_batch, max_batch, gather_s
        self.connected = asyncio.Event()
        self._messages: Batch = []
        self._wakeup = asyncio.Event()
        self._protocol: _Protocol | None = None
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # packet id -> ack body
        self._connack: asyncio.Future[bytes] | None = None
        self._next_id = 0
        self._paused = False
        self._closing = False
        self._error: MqttUnavailable | None = None
        self._last_pong = 0.0
        self._keepalive: asyncio.Task[None] | None = None

    # --- the gateway's side ---

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe. Raises MqttUnavailable."""
        host, port = broker_address(self.settings)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self), host, port, ssl=tls_context(self.settings))
                self._protocol = protocol
                self._connack = loop.create_future()
                self._write(_packet(CONNECT, self._connect_body()))
                ack = await self._connack
                if ack[1] != 0:
                    code = CONNACK_CODES.get(ack[1], f"return code {ack[1]}")
                    raise MqttUnavailable(f"{host}:{port} refused the connection: {code}",
                                          retriable=ack[1] == 3)
                self._last_pong = loop.time()
                self._keepalive = asyncio.create_task(self._ping())
                granted = await self._request(SUBSCRIBE, b"", b"".join(
                    _string(t) + bytes((self.qos,)) for t in self.topics))
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            self._abort()
            raise MqttUnavailable(f"connect {host}:{port}: {exc or type(exc).__name__}") \
                from exc
        except MqttUnavailable:
            self._abort()
            raise
        refused = [t for t, code in zip(self.topics, granted, strict=False) if code == 0x80]
        if refused:
            log.error("mqtt subscription refused", topics=refused)
        if self._error is not None:
            raise self._error
        self.connected.set()

    async def batches(self) -> AsyncIterator[Batch]:
        """What arrived, batch by batch, until `stop()` (then what is left). Raises
        MqttUnavailable when the connection is lost."""
        while True:
            await self._wakeup.wait()
            if len(self._messages) < self.min_batch and not self._closing \
                    and self._error is None:
                await asyncio.sleep(self.gather_s)  # a few more per batch at low rates
            batch, self._messages = self._messages, []
            self._wakeup.clear()
            if self._paused and self._protocol is not None and self._protocol.transport:
                self._paused = False
                self._protocol.transport.resume_reading()
            for start in range(0, len(batch), self.max_batch):
                if start:
                    await asyncio.sleep(0)  # let the other tasks run between big chunks
                yield batch[start:start + self.max_batch] if len(batch) > self.max_batch \
                    else batch
            if self._error is not None:
                raise self._error
            if self._closing:
                return

    async def publish(self, topic: str, payload: bytes, qos: int = 1,
                      timeout_s: float = 10.0) -> None:
        """Publish; at QoS 1 wait for the broker's PUBACK. Raises MqttUnavailable."""
        if not self.connected.is_set():
            raise MqttUnavailable("not connected")
        if qos == 0:
            self._write(_packet(PUBLISH, _string(topic) + payload))
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._request(PUBLISH | 0x02, _string(topic), payload)
        except TimeoutError:
            raise MqttUnavailable(f"publish {topic}: no PUBACK within {timeout_s:g} s") from None

    async def stop(self, unsubscribe: Sequence[str] = ()) -> None:
        """Unsubscribe `unsubscribe` (topics the persistent session should forget), disconnect;
        `batches()` then ends after what is left."""
        if self._closing:
            return
        if unsubscribe and self.connected.is_set():
            with contextlib.suppress(MqttUnavailable, TimeoutError):
                async with asyncio.timeout(5):
                    await self._request(UNSUBSCRIBE, b"",
                                        b"".join(_string(t) for t in unsubscribe))
        self._closing = True
        if self.connected.is_set():
            self._write(bytes((DISCONNECT, 0)))
        self._close()

    async def __aenter__(self) -> Subscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ---

    def _connect_body(self) -> bytes:
        s = self.settings
        flags = 0x00 if not self.clean_session else 0x02
        payload = _string(self.identifier)
        if s.mqtt_username is not None:
            flags |= 0x80
            payload += _string(s.mqtt_username)
            if s.mqtt_password is not None:
                flags |= 0x40
                payload += _string(s.mqtt_password.get_secret_value())
        return _string("MQTT") + bytes((4, flags)) + struct.pack(">H", self.keepalive_s) + \
            payload

    async def _request(self, first: int, header: bytes, payload: bytes) -> bytes:
        """Send `header`, a fresh packet id, `payload`; wait for the acknowledgement's body
        (after its packet id)."""
        self._next_id = self._next_id % 0xFFFF + 1
        packet_id = self._next_id
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = future
        try:
            self._write(_packet(first, header + struct.pack(">H", packet_id) + payload))
            return await future
        finally:
            self._waiting.pop(packet_id, None)

    def _write(self, data: bytes) -> None:
        if self._protocol is None or self._protocol.transport is None \
                or self._protocol.transport.is_closing():
            raise MqttUnavailable("not connected")
        self._protocol.transport.write(data)

    async def _ping(self) -> None:
        loop = asyncio.get_running_loop()
        every = max(1.0, self.keepalive_s / 2)
        while True:
            await asyncio.sleep(every)
            if loop.time() - self._last_pong > self.keepalive_s + every:
                self._lost(MqttUnavailable(f"no PINGRESP for {self.keepalive_s} s"))
                return
            with contextlib.suppress(MqttUnavailable):
                self._write(bytes((PINGREQ, 0)))

    def _received(self, first_of_batch: bool) -> None:
        if first_of_batch:
            self._wakeup.set()
        if len(self._messages) >= self.max_buffered and not self._paused \
                and self._protocol is not None and self._protocol.transport is not None:
            self._paused = True
            self._protocol.transport.pause_reading()

    def _control(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == CONNACK:
            if self._connack is not None and not self._connack.done():
                self._connack.set_result(body)
        elif kind in (PUBACK, SUBACK, UNSUBACK):
            future = self._waiting.get(struct.unpack(">H", body[:2])[0])
            if future is not None and not future.done():
                future.set_result(body[2:])
        elif kind == PINGRESP:
            self._last_pong = asyncio.get_running_loop().time()

    def _protocol_error(self, reason: str) -> None:
        self._lost(MqttUnavailable(f"protocol error: {reason}"))

    def _lost(self, exc: Exception | None) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if not self._closing and self._error is None:
            self._error = exc if isinstance(exc, MqttUnavailable) else \
                MqttUnavailable(f"connection lost: {exc or 'closed by the broker'}")
            if was_connected:
                log.warning("mqtt connection lost", error=str(self._error))
        for future in [*self._waiting.values(), self._connack]:
            if future is not None and not future.done():
                future.set_exception(self._error or MqttUnavailable("disconnected"))
        self._wakeup.set()
        self._close()

    def _abort(self) -> None:
        self._closing = True
        self._close()

    def _close(self) -> None:
        self.connected.clear()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._wakeup.set()
