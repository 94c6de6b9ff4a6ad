"""The one device gate: no more inferences overlap than the device has slots (one on a GPU), waits
are measured, every error path releases it."""

import threading
import time

import pytest

from fakes import FakeEngine, fake_pipeline
from tts_core import GateBusyError, GateTimeoutError, SpeechRequest, SynthesisError
from tts_core import Settings
from tts_core.gate import DeviceGate
from waiting import wait_until


def run_concurrently(fn, n):
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # collected and asserted on by the caller
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


# (slots, seconds a turn): 16 turns of 8 requests; whoever went last waited for several
# rounds of the others (5 rounds with one slot, 3 with two).
@pytest.mark.parametrize("slots, infer_s, rounds_waited", [(1, 0.03, 5), (2, 0.05, 3)])
def test_cpu_slots_bound_the_inferences_at_once_and_waits_are_measured(slots, infer_s,
                                                                        rounds_waited):
    engine = FakeEngine(infer_s=infer_s)
    pipeline = fake_pipeline(engine, cpu_slots=slots)
    assert pipeline.gate.slots == slots
    results, errors = run_concurrently(
        lambda i: pipeline.synthesize(SpeechRequest(f"Request {i}. Second sentence {i}.")), 8)
    assert not errors
    assert engine.max_active == slots and engine.calls == 16
    waits = sorted(r.record.queue_ms for r in results)
    assert waits[-1] >= rounds_waited * infer_s * 1000
    assert waits[0] < waits[-1]
    assert pipeline.snapshot()["slots_in_use"] == 0 and not pipeline.gate.busy


def test_an_exception_inside_releases_the_gate():
    engine = FakeEngine(fail_on="boom")
    pipeline = fake_pipeline(engine)
    with pytest.raises(SynthesisError, match="simulated device fault"):
        pipeline.synthesize(SpeechRequest("This will boom."))
    assert not pipeline.gate.busy and pipeline.gate.queue_depth == 0
    assert pipeline.synthesize(SpeechRequest("This works.")).duration_s > 0
    assert pipeline.stats.failed == 1 and pipeline.stats.served == 1


def test_a_stream_closed_early_frees_its_place():
    pipeline = fake_pipeline(FakeEngine())
    synthesis = pipeline.stream(SpeechRequest("One. Two. Three. Four."))
    next(iter(synthesis))
    assert pipeline.gate.queue_depth == 1
    synthesis.close()
    assert pipeline.gate.queue_depth == 0 and not pipeline.gate.busy


def test_full_waiting_room_answers_busy_at_once():
    gate = DeviceGate(max_requests=2)
    with gate.admit(), gate.admit():
        start = time.perf_counter()
        with pytest.raises(GateBusyError, match="busy") as err:
            with gate.admit():
                pass
        assert time.perf_counter() - start < 0.5
        assert err.value.retry_after_s >= 1
    with gate.admit():  # places come back
        assert gate.queue_depth == 1


def test_waiting_past_the_timeout_gives_up_without_holding_the_gate():
    gate = DeviceGate(max_requests=4, timeout_s=0.1)
    release = threading.Event()
    holder = threading.Thread(target=lambda: gate.run(release.wait))
    holder.start()
    wait_until(lambda: gate.slots_in_use == 1, what="the holder took the device")
    with pytest.raises(GateTimeoutError, match="TTS_GATE_TIMEOUT"):
        gate.run(lambda: None)
    release.set()
    holder.join(10)
    assert gate.run(lambda: 42)[0] == 42


def test_turns_are_first_come_first_served():
    gate = DeviceGate(max_requests=10)
    order, release = [], threading.Event()
    holder = threading.Thread(target=lambda: gate.run(release.wait))
    holder.start()
    wait_until(lambda: gate.slots_in_use == 1, what="the holder took the device")
    waiters = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: gate.run(lambda: order.append(i)))
        t.start()
        waiters.append(t)
        # each asks after the one before is in line
        wait_until(lambda: len(gate._turns) == len(waiters), what=f"waiter {i} in line")
    release.set()
    for t in [holder, *waiters]:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]


def served_order(gate: DeviceGate, turns: list[tuple[str, bool]]) -> list[str]:
    """Hold the device, line `turns` up in order (name, first), release: the order they ran."""
    order, holding, release = [], threading.Event(), threading.Event()

    def hold(_):
        holding.set()
        release.wait(10)
        return [None]

    holder = threading.Thread(target=gate.run_item, args=(None, "holder", hold))
    holder.start()
    assert holding.wait(10)
    threads = []
    for name, first in turns:
        t = threading.Thread(target=gate.run_item,
                             args=(None, name, lambda items: (order.append(items[0]), [None])[1]),
                             kwargs={"first": first})
        t.start()
        threads.append(t)
        wait_until(lambda: len(gate._turns) == len(threads), what=f"{name} in line")
    release.set()
    for t in [holder, *threads]:
        t.join(10)
    assert not gate.busy
    return order


def test_a_request_with_no_audio_yet_goes_before_those_being_heard():
    """A waiting request's first turn is taken before older turns of requests whose audio
    is already playing; among each kind, first come first served."""
    order = served_order(DeviceGate(max_requests=8), [("later-1", False), ("later-2", False),
                                                   ("first-1", True), ("first-2", True)])
    assert order == ["first-1", "first-2", "later-1", "later-2"]


def test_a_gpu_keeps_one_inference_at_a_time_whatever_the_cpu_slots():
    engine = FakeEngine(infer_s=0.03)
    engine.device = "cuda"
    pipeline = fake_pipeline(engine, cpu_slots=4)
    assert pipeline.gate.slots == 1
    _, errors = run_concurrently(
        lambda i: pipeline.synthesize(SpeechRequest(f"Request {i}. Again {i}.")), 6)
    assert not errors
    assert engine.max_active == 1 and engine.calls == 12


def test_a_failure_in_one_slot_releases_it_while_the_other_keeps_running():
    gate = DeviceGate(max_requests=4, slots=2)
    release = threading.Event()
    holder = threading.Thread(target=lambda: gate.run(release.wait))
    holder.start()
    wait_until(lambda: gate.slots_in_use == 1, what="the holder took a slot")

    def boom():
        raise RuntimeError("simulated device fault")

    with pytest.raises(RuntimeError, match="simulated"):
        gate.run(boom)  # took the free slot at once, and gave it back
    assert gate.slots_in_use == 1
    assert gate.run(lambda: 7)[0] == 7
    release.set()
    holder.join(10)
    assert gate.slots_in_use == 0 and not gate.busy and gate.busy_s > 0


def test_threads_are_divided_among_the_cpu_slots():
    assert Settings(cpu_threads=8, cpu_slots=2).slot_threads() == 4
    assert Settings(cpu_threads=2, cpu_slots=4).slot_threads() == 1
    assert Settings(cpu_threads=None, cpu_slots=1).slot_threads() is None  # the runtime's default
    assert Settings.from_env({"TTS_CPU_SLOTS": "3"}).cpu_slots == 3


def test_going_down_to_one_slot_lets_running_turns_finish_and_then_serializes():
    gate = DeviceGate(max_requests=8, slots=2)
    release, active, seen, lock = threading.Event(), [0], [], threading.Lock()

    def work():
        with lock:
            active[0] += 1
            seen.append(active[0])  # how many were on the device as this one started
        release.wait(5)
        time.sleep(0.02)  # the inference itself: two turns that overlap would see each other
        with lock:
            active[0] -= 1

    first = [threading.Thread(target=lambda: gate.run(work)) for _ in range(2)]
    for t in first:
        t.start()
    wait_until(lambda: len(seen) == 2, what="both slots running")
    assert gate.slots_in_use == 2 and seen == [1, 2]
    gate.one_slot()  # a GPU model arrived
    later = [threading.Thread(target=lambda: gate.run(work)) for _ in range(3)]
    for t in later:
        t.start()
    wait_until(lambda: len(gate._turns) == 3, what="the three later turns in line")
    assert gate.slots_in_use == 2 and len(seen) == 2  # nobody was stopped, nobody new started
    release.set()
    for t in [*first, *later]:
        t.join(10)
    assert seen[2:] == [1, 1, 1] and gate.slots_in_use == 0  # one at a time from then on


def test_a_steady_flow_of_new_requests_cannot_starve_one_being_heard():
    """A turn of a request already being heard is passed over at most MAX_OVERTAKES times."""
    from tts_core.gate import MAX_OVERTAKES

    order = served_order(DeviceGate(max_requests=16),
                         [("heard", False)] + [(f"new-{i}", True) for i in range(5)])
    assert order.index("heard") == MAX_OVERTAKES
    assert [n for n in order if n != "heard"] == [f"new-{i}" for i in range(5)]
