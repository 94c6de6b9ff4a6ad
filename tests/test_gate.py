"""The one device gate: no more inferences overlap than the device has slots (one on a GPU), waits
are measured, every error path releases it."""

import threading
import time

import numpy as np
import pytest

from fakes import FakeEngine, fake_pipeline, lined_up
from tts_core import GateBusyError, GateTimeoutError, SpeechRequest, SynthesisError
from tts_core import Settings
from tts_core.gate import DeviceGate, last_turn_threads, thread_shares, turn_threads
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
    assert pipeline.gate.threads_in_use == 0  # the failed turn's threads are given back
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
    return lined_up(gate, [(name, {"first": first}) for name, first in turns])


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
    results, errors = run_concurrently(
        lambda i: pipeline.synthesize(SpeechRequest(f"Request {i}. Again {i}.")), 6)
    assert not errors
    assert engine.max_active == 1 and engine.calls == 12
    assert pipeline.gate.threads is None  # a GPU's calls are not given CPU threads
    assert all(r.record.threads == 0 for r in results)


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


class ThreadsRecordingEngine(FakeEngine):
    """Records the CPU threads the gate gave each of its calls (`use_threads` before each)."""

    def __init__(self, infer_s: float = 0.02):
        super().__init__(infer_s=infer_s)
        self.given: list[int | None] = []

    def use_threads(self, threads):
        with self._lock:
            self.given.append(threads)


def test_a_lone_cpu_request_gets_every_configured_thread():
    engine = ThreadsRecordingEngine()
    pipeline = fake_pipeline(engine, cpu_threads=4, cpu_slots=2)
    result = pipeline.synthesize(SpeechRequest("One sentence here. And a second one."))
    assert engine.given == [4, 4]  # both turns, each alone on the device
    assert result.record.threads == 4
    metrics = pipeline.prometheus_text().decode()
    assert "tts_device_threads 4.0" in metrics and "tts_device_threads_in_use 0.0" in metrics
    assert 'tts_turn_threads_bucket{le="2.0"} 0.0' in metrics
    assert 'tts_turn_threads_bucket{le="4.0"} 2.0' in metrics
    assert pipeline.snapshot()["mean_threads"] == 4


def test_two_calls_at_once_share_the_threads():
    """Two requests waiting when the device frees up run side by side, on half the threads
    each; once they are done, a request alone gets every thread again."""
    engine = ThreadsRecordingEngine(infer_s=0.1)
    pipeline = fake_pipeline(engine, cpu_threads=4, cpu_slots=2)
    gate, release = pipeline.gate, threading.Event()
    with gate._cond:
        gate.slots = 1  # one turn holds the device while both requests line up behind it
    holder = threading.Thread(target=gate.run, args=(lambda: release.wait(10),))
    holder.start()
    wait_until(lambda: gate.slots_in_use == 1)
    results, errors = [], []
    requests = [threading.Thread(target=lambda i=i: results.append(
        pipeline.synthesize(SpeechRequest(f"Request number {i}.")))) for i in range(2)]
    for t in requests:
        t.start()
    wait_until(lambda: len(gate._turns) == 2)
    with gate._cond:
        gate.slots = 2
    release.set()
    for t in [holder, *requests]:
        t.join(10)
    assert not errors and len(results) == 2
    assert engine.max_active == 2  # they did run at once
    assert engine.given == [2, 2]
    assert [r.record.threads for r in results] == [2, 2]
    assert gate.threads_in_use == 0
    pipeline.synthesize(SpeechRequest("Alone again."))
    assert engine.given[-1] == 4


def test_a_turn_starting_beside_a_running_one_gets_the_free_threads():
    gate = DeviceGate(max_requests=4, slots=2, threads=4)
    release, seen = threading.Event(), []
    holder = threading.Thread(target=gate.run, args=(lambda: (seen.append(turn_threads()),
                                                               release.wait(10)),))
    holder.start()
    wait_until(lambda: seen == [4])  # alone: every thread
    assert gate.threads_in_use == 4
    assert gate.run(turn_threads)[0] == 1  # none free: at least one, and no more
    assert last_turn_threads() == 1
    release.set()
    holder.join(10)
    assert gate.run(turn_threads)[0] == 4 and gate.threads_in_use == 0
    assert turn_threads() is None  # outside a turn


def test_the_turns_share_goes_with_a_call_run_under_the_inference_timeout():
    gate = DeviceGate(max_requests=4, slots=2, threads=8, infer_timeout_s=5)
    assert gate.run(turn_threads)[0] == 8


def test_the_shares_a_turn_may_get():
    assert thread_shares(8) == (8, 4, 2, 1)
    assert thread_shares(6) == (6, 3, 1)
    assert thread_shares(1) == (1,)
    assert Settings(cpu_threads=8).device_threads() == 8
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


def test_piper_runs_each_turn_on_the_session_made_for_its_share(monkeypatch):
    """The real Piper voice keeps a session per share of the threads, and a turn runs on the
    one for the share it was given: the same samples, on that many threads. A call past
    the large-call bound shrinks ONNX Runtime's arena after it; an ordinary one does not."""
    from conftest import QUIET_JOE
    from tts_core.engines import SynthesisParams, load_engine
    from tts_core.engines import piper

    engine = load_engine(Settings().parse_spec(QUIET_JOE), "cpu", 2)
    assert sorted(engine._by_threads) == [1, 2]
    params = SynthesisParams(voice=engine.default_voice)
    prepared = engine.prepare("Threads follow the load.", params)
    audio = {}
    for share in (2, 1, None):
        if share is None:  # every call counts as large
            monkeypatch.setattr(piper, "LARGE_CALL_IDS", 0)
            monkeypatch.setattr(piper, "LARGE_CALL_FRAMES", 0)
        engine.use_threads(share)
        first, decoder = engine._pair()
        assert first.get_session_options().intra_op_num_threads == (share or 2)
        assert decoder.get_session_options().intra_op_num_threads == (share or 2)
        shrinks = []  # whether each call's run options shrink the arena after it
        for session in (first, decoder):
            session.run = _recording_run(session.run, shrinks)
        audio[share] = engine.infer(prepared, params)
        assert shrinks == [share is None] * 2  # the first stage, then the decoder
    assert audio[2].size > engine.sample_rate // 2  # over half a second of speech
    np.testing.assert_allclose(audio[1], audio[2], atol=1e-4)


def test_a_torch_family_sets_the_turns_threads_for_its_own_thread_only():
    import torch

    engine = FakeEngine()
    engine.family = "vits"  # a torch family: `use_threads` sets torch's threads
    before, seen = torch.get_num_threads(), []
    share = 2 if before == 1 else 1  # not what a new thread starts with

    def turn():
        engine.use_threads(share)
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=turn)
    worker.start()
    worker.join(30)
    assert seen == [share]
    assert torch.get_num_threads() == before  # the other threads' calls keep theirs


def _recording_run(run, shrinks: list):
    def recorded(names, feed, options=None):
        try:
            shrinks.append(options.get_run_config_entry("memory.enable_memory_arena_shrinkage")
                           == "cpu:0")
        except (AttributeError, RuntimeError):  # no options, or none about the arena
            shrinks.append(False)
        return run(names, feed, options)
    return recorded
