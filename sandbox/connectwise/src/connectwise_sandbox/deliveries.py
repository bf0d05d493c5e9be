"""Sending callback deliveries: HTTP POSTs from a background event loop of their own,
so the request (or admin call) that changed a record never waits for a receiver.

Each delivery gets `attempts` tries (ConnectWise: the first plus two retries), each
with a `timeout`, `retry_delay` apart; a 2xx ends it. Redirects are not followed. The
outcome of every delivery is logged for the admin API. While paused, deliveries are
held and sent on resume.

httpx is imported on the first delivery: the package does not declare it yet (it comes
with the workspace's dev group), and a sandbox without it must still start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from connectwise_sandbox.records import JsonObject

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("connectwise_sandbox")

SIGNATURE_HEADER: Final = "x-content-signature"
USER_AGENT: Final = "ConnectWise-Sandbox-Callbacks/1.0"
LOG_LIMIT: Final = 10_000
_SHUTDOWN_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Delivery:
    callback_id: int
    url: str
    body: bytes
    signature: str
    action: str
    entity_type: str
    record_id: int


class Deliverer:
    def __init__(self, *, timeout: float, attempts: int, retry_delay: float) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self._lock = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._paused = False
        self._closed = False
        self._held: list[Delivery] = []
        self._in_flight = 0
        self._sequence = 0
        self._log: deque[JsonObject] = deque(maxlen=LOG_LIMIT)

    # --- called from any thread --------------------------------------------------------

    def submit(self, delivery: Delivery) -> None:
        """Queue `delivery`; returns at once. Dropped once the deliverer is closed."""
        with self._lock:
            if self._closed:
                return
            if self._paused:
                self._held.append(delivery)
                return
            self._in_flight += 1
            self._sequence += 1
            number = self._sequence
            loop = self._running_loop()
        queued = _now()
        asyncio.run_coroutine_threadsafe(self._deliver(number, delivery, queued), loop)

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            held, self._held = self._held, []
        for delivery in held:
            self.submit(delivery)

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused

    def pending(self) -> int:
        """Deliveries not finished yet: held while paused, or being tried."""
        with self._lock:
            return self._in_flight + len(self._held)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in flight (held deliveries do not count)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    def log(self) -> list[JsonObject]:
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        """Forget the log and any held deliveries."""
        with self._lock:
            self._log.clear()
            self._held.clear()

    def close(self) -> None:
        """Stop the background loop; deliveries still being tried are abandoned."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._closed = True
        if loop is None or thread is None:
            return
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(_SHUTDOWN_SECONDS)
        except Exception:  # still stop the loop below
            log.exception("callback deliverer did not shut down cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_SHUTDOWN_SECONDS)
        loop.close()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The background loop, started on first use. Caller holds the lock."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="cw-sandbox-callbacks", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    # --- on the background loop ---------------------------------------------------------

    async def _deliver(self, number: int, delivery: Delivery, queued: str) -> None:
        attempts: int = 0
        status: int | None = None
        error: str | None = None
        try:
            client = self._http()
        except ImportError as missing:
            self._finish(number, delivery, queued, 0, None, f"httpx is not installed: {missing}")
            return
        try:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: delivery.signature,
                "User-Agent": USER_AGENT,
            }
            for attempt in range(1, self.attempts + 1):
                attempts = attempt
                try:
                    response = await client.post(
                        delivery.url, content=delivery.body, headers=headers
                    )
                    status, error = response.status_code, None
                    if 200 <= status < 300:
                        break
                except Exception as failure:  # any failure is a failed attempt
                    status, error = None, f"{type(failure).__name__}: {failure}".strip()
                if attempt < self.attempts:
                    await asyncio.sleep(self.retry_delay)
        finally:
            self._finish(number, delivery, queued, attempts, status, error)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx  # see the module docstring

            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    def _finish(
        self,
        number: int,
        delivery: Delivery,
        queued: str,
        attempts: int,
        status: int | None,
        error: str | None,
    ) -> None:
        entry: dict[str, Any] = {
            "delivery_id": number,
            "callback_id": delivery.callback_id,
            "url": delivery.url,
            "action": delivery.action,
            "type": delivery.entity_type,
            "id": delivery.record_id,
            "attempts": attempts,
            "status_code": status,
            "error": error,
            "delivered": status is not None and 200 <= status < 300,
            "queued_at": queued,
            "finished_at": _now(),
        }
        with self._lock:
            self._log.append(entry)
            self._in_flight -= 1
            self._lock.notify_all()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
