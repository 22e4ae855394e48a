"""The dynamic batcher: batches fill up to max_batch within max_wait_ms, a failing item fails alone, the
queue is bounded; and a request body is counted as it arrives."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from quickfit.serve.batcher import Busy, DynamicBatcher
from quickfit.serve.inputs import BadInput, read_body


def test_items_arriving_together_share_batches_of_at_most_max_batch():
    sizes = []

    def double(items):
        sizes.append(len(items))
        return [2 * i for i in items]

    b = DynamicBatcher(double, max_batch=4, max_wait_ms=200)
    futures = [b.submit_future(i) for i in range(10)]
    assert [f.result(timeout=5) for f in futures] == [2 * i for i in range(10)]
    b.close()
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) == 3 and b.batches == 3 and b.items == 10


def test_a_lone_item_waits_at_most_max_wait_ms():
    b = DynamicBatcher(lambda items: items, max_batch=16, max_wait_ms=30)
    start = time.perf_counter()
    assert b.submit_future("x").result(timeout=5) == "x"
    assert time.perf_counter() - start < 1.0  # 30 ms of waiting, plus a loaded machine's slack
    b.close()


def test_max_batch_1_runs_each_item_alone_in_order():
    seen = []
    b = DynamicBatcher(lambda items: seen.append(list(items)) or items, max_batch=1, max_wait_ms=50)
    assert [f.result(timeout=5) for f in [b.submit_future(i) for i in range(5)]] == list(range(5))
    b.close()
    assert seen == [[0], [1], [2], [3], [4]]


def test_a_failing_item_fails_only_its_own_request():
    def picky(items):
        if "bad" in items:
            raise ValueError("bad item")
        return [i.upper() for i in items]

    b = DynamicBatcher(picky, max_batch=8, max_wait_ms=100)
    futures = [b.submit_future(i) for i in ["a", "bad", "c"]]
    assert futures[0].result(timeout=5) == "A" and futures[2].result(timeout=5) == "C"
    with pytest.raises(ValueError, match="bad item"):
        futures[1].result(timeout=5)
    b.close()


def test_the_queue_is_bounded_and_a_full_one_answers_busy_at_once():
    gate = threading.Event()
    b = DynamicBatcher(lambda items: gate.wait(5) and items, max_batch=1, max_wait_ms=0, max_queue=2)
    first = b.submit_future(0)
    time.sleep(0.2)  # the worker holds item 0
    b.submit_future(1), b.submit_future(2)
    with pytest.raises(Busy, match="2 requests are waiting"):
        b.submit_future(3)
    gate.set()
    assert first.result(timeout=5) == 0
    b.close()


def test_an_item_that_waited_too_long_is_answered_busy_not_served():
    gate, served = threading.Event(), []
    b = DynamicBatcher(lambda items: gate.wait(5) and served.extend(items) or items, max_batch=1, max_queue_s=0.2)
    first, late = b.submit_future("first"), b.submit_future("late")
    time.sleep(0.4)  # "late" waits behind "first" past its 0.2 s
    gate.set()
    assert first.result(timeout=5) == "first"
    with pytest.raises(Busy, match="waited 0 s for the model .the limit is 0.2 s.: the server is overloaded"):
        late.result(timeout=5)
    b.close()
    assert served == ["first"]


def test_a_closed_batcher_refuses_and_starts_again():
    b = DynamicBatcher(lambda items: items)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.submit_future(1)
    b.start()
    assert asyncio.run(b.submit(7)) == 7
    b.close()


class _Chunked:
    """A request streaming its body in chunks, without a Content-Length."""

    headers: dict = {}

    def __init__(self, chunks):
        self.chunks, self.read = chunks, 0

    async def stream(self):
        for c in self.chunks:
            self.read += 1
            yield c


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit():
    req = _Chunked([b"x" * 400] * 100)
    with pytest.raises(BadInput, match="over the limit of 1,000 bytes") as e:
        asyncio.run(read_body(req, limit=1000))
    assert e.value.status == 413 and req.read == 3  # stopped reading at the third chunk
    assert asyncio.run(read_body(_Chunked([b"ab", b"cd"]), limit=1000)) == b"abcd"
