"""The bench's harmony replay rule (``bench/harmony_replay.py``), which makes a dummy-weight
gpt-oss under vLLM write a canned transcript: which turn a request plays and which token it is
forced to write next. The GPU run that uses it is in ``bench/results/hardware_h200.md``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.harmony_replay import HarmonyReplay, replay_token

CALL, END = 9, 8
SEGMENTS = [[1, 2, CALL], [3, CALL], [4, 5, END]]


def test_the_turn_is_the_number_of_calls_already_in_the_prompt() -> None:
    assert [replay_token(SEGMENTS, CALL, [0, 0], k) for k in range(3)] == [1, 2, CALL]
    assert [replay_token(SEGMENTS, CALL, [0, 1, 2, CALL, 7], k) for k in range(2)] == [3, CALL]
    two_calls = [1, 2, CALL, 7, 3, CALL, 7]
    assert [replay_token(SEGMENTS, CALL, two_calls, k) for k in range(3)] == [4, 5, END]
    # past the last turn the last turn repeats; past a turn's end its end token is forced
    assert replay_token(SEGMENTS, CALL, [CALL] * 5, 0) == 4
    assert replay_token(SEGMENTS, CALL, [], 7, END) == END
    assert replay_token(SEGMENTS, CALL, [], 7) == CALL


def test_the_processor_forces_one_token_and_ignores_other_requests() -> None:
    torch = pytest.importorskip("torch")
    proc = HarmonyReplay.__new__(HarmonyReplay)
    assert proc.new_req_logits_processor(SimpleNamespace(extra_args=None)) is None
    assert proc.new_req_logits_processor(SimpleNamespace(extra_args={"x": 1})) is None
    force = proc.new_req_logits_processor(SimpleNamespace(
        extra_args={"harmony_replay": SEGMENTS, "call_id": CALL, "end_id": END}))
    prompt, out = [0, 1, 2, CALL, 7], []
    for want in (3, CALL, END):
        row = force(prompt, out, torch.randn(12))
        assert int(row.argmax()) == want and torch.isinf(row).sum() == 11
        out.append(want)
    assert not proc.is_argmax_invariant()
