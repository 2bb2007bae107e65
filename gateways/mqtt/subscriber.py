"""The gateway's MQTT connection: one paho-mqtt client driven by the asyncio event loop, handing
the received messages over in batches.

paho-mqtt's external event loop interface (``on_socket_open``/``on_socket_close`` and
``on_socket_register_write``/``..._unregister_write`` to register the socket, ``loop_read`` /
``loop_write`` when it is ready, ``loop_misc`` every second for the keepalive; as paho's
``examples/loop_asyncio.py`` and aiomqtt do) runs paho in the gateway's thread: no second
thread fighting for the GIL. A readable socket is read packet after packet until it has no
complete PUBLISH left (``loop_read`` reads one packet per call); `on_message` only appends
``(topic, payload)`` to a list, which `batches()` hands to the gateway at once. aiomqtt, the
same paho underneath, reads one packet per readable event and passes every message through an
asyncio queue: about half the rate (README "Benchmarks").

QoS 1 messages are acknowledged by the gateway (`ack`, paho's ``manual_ack``), after Kafka has
confirmed what it made of them; paho sends the PUBACKs in the order given, which is the order
of arrival. No automatic reconnect: a lost connection ends `batches()` with `MqttUnavailable`
and the gateway connects again with backoff (a new client: the broker's persistent session
delivers the unacknowledged messages again).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from infra.logging import get_logger
from infra.mqtt import broker_address, tls_context
from infra.settings import Settings

log = get_logger("gateways.mqtt.subscriber")

Batch = list[tuple[str, bytes]]
"""(topic, payload) in arrival order."""


class MqttUnavailable(Exception):
    """The broker could not be reached, refused us or went away."""


class Subscriber:
    """One connection to the broker, subscribed to `topics` at `qos` with a persistent session
    (unless `clean_session`); see the module doc.

    `batches()` yields what arrived since the last batch (waiting `gather_s` for at least
    `min_batch`, in chunks of at most `max_batch`) with the packet ids of its QoS 1 messages;
    at `max_buffered` unhandled messages the socket is not read (the broker queues) until the
    gateway caught up. One readable event reads at most `read_burst` packets.
    """

    def __init__(self, settings: Settings, *, identifier: str, topics: Sequence[str],
                 qos: int = 1, clean_session: bool = False, keepalive_s: int = 30,
                 max_buffered: int = 100_000, min_batch: int = 100, max_batch: int = 5000,
                 gather_s: float = 0.002, read_burst: int = 500):
        self.settings = settings
        self.topics = list(topics)
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.max_buffered, self.read_burst = max_buffered, read_burst
        self.min_batch, self.max_batch, self.gather_s = min_batch, max_batch, gather_s
        self.connected = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._messages: Batch = []
        self._mids: list[int] = []  # packet ids of the QoS 1 messages in `_messages`
        self._wakeup = asyncio.Event()
        self._waiting: dict[int, asyncio.Future[Any]] = {}  # our packet id -> paho's answer
        self._connack: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._sock: Any = None  # registered for reading (None: not, or paused)
        self._writing = False
        self._paused = False
        self._closing = False
        self._error: MqttUnavailable | None = None
        self._keepalive: asyncio.Task[None] | None = None

        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=identifier,
                        clean_session=clean_session, protocol=MQTTProtocolVersion.MQTTv311,
                        manual_ack=True)
        if settings.mqtt_username is not None:
            c.username_pw_set(settings.mqtt_username, settings.mqtt_password.get_secret_value()
                              if settings.mqtt_password is not None else None)
        context = tls_context(settings)
        if context is not None:
            c.tls_set_context(context)
            c.tls_insecure_set(settings.mqtt_tls_insecure)
        c.max_queued_messages_set(1000)  # setpoints beyond paho's 20 in flight
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = c.on_unsubscribe = self._on_answer
        c.on_publish = self._on_published
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        self._client = c

    # --- the gateway's side ---

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe. Raises MqttUnavailable."""
        host, port = broker_address(self.settings)
        try:
            async with asyncio.timeout(timeout_s):
                # paho's connect blocks for the TCP connection and the TLS handshake
                await asyncio.to_thread(self._client.connect, host, port, self.keepalive_s)
                code = await self._connack
                if code.is_failure:
                    raise MqttUnavailable(f"{host}:{port} refused the connection: {code}")
                self._keepalive = asyncio.create_task(self._misc())
                codes = await self._request(self._client.subscribe(
                    [(t, self.qos) for t in self.topics]))
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            self._close()
            raise MqttUnavailable(f"connect {host}:{port}: {exc or type(exc).__name__}") \
                from exc
        except MqttUnavailable:
            self._close()
            raise
        refused = [t for t, code in zip(self.topics, codes, strict=False) if code.is_failure]
        if refused:
            log.error("mqtt subscription refused", topics=refused)
        self.connected.set()

    async def batches(self) -> AsyncIterator[tuple[Batch, list[int]]]:
        """What arrived, batch by batch, until `finish()` (then what is left), each with the
        packet ids to `ack` once it is handled (with the last chunk of a big batch). Raises
        MqttUnavailable when the connection is lost."""
        while True:
            await self._wakeup.wait()
            if len(self._messages) < self.min_batch and not self._closing \
                    and self._error is None:
                await asyncio.sleep(self.gather_s)  # a few more per batch at low rates
            batch, self._messages = self._messages, []
            mids, self._mids = self._mids, []
            self._wakeup.clear()
            if self._paused and not self._closing:
                self._paused = False
                self._read(self._client.socket())
                self._loop.call_soon(self._readable)  # TLS may hold bytes the selector missed
            if len(batch) <= self.max_batch:
                yield batch, mids
            else:
                for start in range(0, len(batch), self.max_batch):
                    if start:
                        await asyncio.sleep(0)  # let the other tasks run between chunks
                    last = start + self.max_batch >= len(batch)
                    yield batch[start:start + self.max_batch], mids if last else []
            if self._error is not None:
                raise self._error
            if self._closing:
                return

    def ack(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages (their packet ids from `batches()`, in that order)."""
        if self.connected.is_set():
            ack = self._client.ack
            for mid in mids:
                ack(mid, 1)

    async def publish(self, topic: str, payload: bytes, qos: int = 1,
                      timeout_s: float = 10.0) -> None:
        """Publish; at QoS 1 wait for the broker's PUBACK. Raises MqttUnavailable."""
        if not self.connected.is_set():
            raise MqttUnavailable("not connected")
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttUnavailable(f"publish {topic}: {paho.error_string(info.rc)}")
        if qos:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._request((info.rc, info.mid))
            except TimeoutError:
                raise MqttUnavailable(
                    f"publish {topic}: no PUBACK within {timeout_s:g} s") from None

    async def unsubscribe(self, topics: Sequence[str], timeout_s: float = 5.0) -> None:
        """Unsubscribe (topics the persistent session should forget); best effort."""
        if topics and self.connected.is_set():
            with contextlib.suppress(MqttUnavailable, TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._request(self._client.unsubscribe(list(topics)))

    def finish(self) -> None:
        """Stop reading: `batches()` ends after what is buffered (the connection stays up for
        the acknowledgements; then `disconnect`)."""
        self._closing = True
        self._pause()
        self._wakeup.set()

    async def disconnect(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (acknowledgements) and DISCONNECT; close."""
        self._closing = True
        if self.connected.is_set() and self._client.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self._closed)
        self._close()

    # --- paho callbacks (in the event loop's thread, except while `connect` runs) ---

    def _on_message(self, _client: paho.Client, _userdata: Any,
                    message: paho.MQTTMessage) -> None:
        self._messages.append((message.topic, message.payload))  # type: ignore[arg-type]
        if message.qos:
            self._mids.append(message.mid)

    def _on_connect(self, _client: paho.Client, _userdata: Any, _flags: Any,
                    code: ReasonCode, _properties: Any) -> None:
        if not self._connack.done():
            self._connack.set_result(code)

    def _on_answer(self, _client: paho.Client, _userdata: Any, mid: int, codes: Any,
                   _properties: Any) -> None:
        future = self._waiting.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(codes)

    def _on_published(self, client: paho.Client, userdata: Any, mid: int, code: Any,
                      properties: Any) -> None:
        self._on_answer(client, userdata, mid, code, properties)

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any,
                       code: ReasonCode, _properties: Any) -> None:
        self._lost(f"connection lost: {code}")

    def _on_socket_open(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._call(self._read, sock)

    def _on_socket_close(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._call(self._unread)
        if not self._closed.done():
            self._call(self._closed.set_result, None)

    def _on_register_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if not self._writing:  # paho asks for every packet it queues
            self._writing = True
            self._call(self._loop.add_writer, sock, self._writable)

    def _on_unregister_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if self._writing:
            self._writing = False
            self._call(self._loop.remove_writer, sock)

    # --- internals ---

    def _call(self, function: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._thread:
            function(*args)
        else:
            self._loop.call_soon_threadsafe(function, *args)

    def _read(self, sock: Any) -> None:
        if sock is not None and self._sock is None and not self._paused and not self._closing:
            self._sock = sock
            self._loop.add_reader(sock, self._readable)

    def _unread(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._sock = None

    def _pause(self) -> None:
        self._paused = True
        self._unread()

    def _readable(self) -> None:
        if self._sock is None:
            return  # paused or closed since this call was scheduled
        client = self._client
        before = len(self._messages)
        for _ in range(self.read_burst):
            n = len(self._messages)
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or len(self._messages) == n:
                break  # lost, no complete packet left, or a control packet (read again)
        else:
            self._loop.call_soon(self._readable)  # more there: after the other callbacks
        if len(self._messages) > before:
            self._wakeup.set()
            if len(self._messages) >= self.max_buffered and not self._paused:
                self._pause()
        sock = client.socket()
        if isinstance(sock, ssl.SSLSocket) and sock.pending() and not self._paused:
            self._loop.call_soon(self._readable)  # decrypted bytes the selector cannot see

    def _writable(self) -> None:
        self._client.loop_write()

    async def _misc(self) -> None:
        """paho's keepalive: PINGREQ when due, a lost connection without PINGRESP."""
        while True:
            await asyncio.sleep(1)
            self._client.loop_misc()

    async def _request(self, sent: tuple[MQTTErrorCode, int | None]) -> Any:
        """Wait for the broker's answer to a SUBSCRIBE/UNSUBSCRIBE/PUBLISH paho just queued."""
        rc, mid = sent
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttUnavailable(paho.error_string(rc))
        future = self._waiting[mid] = self._loop.create_future()
        if self._error is not None:
            raise self._error
        try:
            return await future
        finally:
            self._waiting.pop(mid, None)

    def _lost(self, reason: str) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if not self._closing and self._error is None:
            self._error = MqttUnavailable(reason)
            if was_connected:
                log.warning("mqtt connection lost", error=reason)
        error = self._error or MqttUnavailable("disconnected")
        for future in [*self._waiting.values(), self._connack]:
            if not future.done():
                future.set_exception(error)
        self._wakeup.set()

    def _close(self) -> None:
        self._closing = True
        self.connected.clear()
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._unread()
        sock = self._client.socket()
        if sock is not None:
            if self._writing:
                self._writing = False
                self._loop.remove_writer(sock)
            with contextlib.suppress(OSError):
                sock.close()
        self._wakeup.set()
