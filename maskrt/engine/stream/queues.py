"""Hand-over between pipeline threads: a bounded FIFO (offline) and a newest-items slot (real time).

Both have the same interface: put(item, abort) -> bool, close(abort), get(abort) -> item | END |
ABORT. `abort` is a threading.Event; while it is set, blocked calls return promptly (put returns
False, get returns ABORT), so no thread stays stuck when another has failed. END is delivered
once, after every item put before close().
"""

from __future__ import annotations

import collections
import queue
import threading

END = object()    # end of stream: no more items
ABORT = object()  # the run is being torn down: stop now
_POLL_S = 0.05


class BoundedQueue:
    """FIFO of at most `maxsize` items; put() waits while it is full (back-pressure)."""

    dropped = 0  # never drops

    def __init__(self, maxsize: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))

    def put(self, item, abort: threading.Event) -> bool:
        while not abort.is_set():
            try:
                self._q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def close(self, abort: threading.Event) -> None:
        self.put(END, abort)

    def get(self, abort: threading.Event):
        while not abort.is_set():
            try:
                return self._q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return ABORT


class LatestSlot:
    """Holds the newest `capacity` items (default 1: the newest only): put() on a full slot drops
    the oldest item nobody has taken yet and counts it in `dropped`, so a slow consumer gets the
    most recent frames and latency stays bounded; get() returns the oldest item held."""

    def __init__(self, capacity: int = 1):
        self._cond = threading.Condition()
        self._items: collections.deque = collections.deque()
        self._capacity = max(1, int(capacity))
        self._closed = False
        self.dropped = 0

    def put(self, item, abort: threading.Event) -> bool:
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
        return not abort.is_set()

    def close(self, abort: threading.Event) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, abort: threading.Event):
        with self._cond:
            while not abort.is_set():
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    return END
                self._cond.wait(_POLL_S)
        return ABORT
