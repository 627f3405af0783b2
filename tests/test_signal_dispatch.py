"""``SafeNamedSignal`` keeps the receivers of a namespace between sends: connecting,
disconnecting or a weak receiver's end must show at the next send."""

from __future__ import annotations

import gc
from typing import Any

from spinach.signals import SafeNamedSignal


def _recorder(calls: list[str], name: str) -> Any:
    def receiver(sender: Any, **kwargs: Any) -> str:
        calls.append(f"{name}:{sender}:{kwargs.get('job')}")
        return name

    return receiver


def test_receivers_connected_or_disconnected_after_a_send_are_seen_at_the_next():
    signal = SafeNamedSignal("test_cache")
    calls: list[str] = []
    first, second = _recorder(calls, "first"), _recorder(calls, "second")
    signal.connect(first, sender="ns", weak=False)
    signal.send("ns", job=1)
    signal.connect(second, weak=False)  # every sender
    signal.send("ns", job=2)
    signal.send("other", job=3)
    signal.disconnect(first)
    signal.send("ns", job=4)
    assert sorted(calls[:1]) == ["first:ns:1"]
    assert sorted(calls[1:3]) == ["first:ns:2", "second:ns:2"]
    assert calls[3:] == ["second:other:3", "second:ns:4"]


def test_a_weak_receiver_that_is_gone_is_not_called():
    signal = SafeNamedSignal("test_weak")
    calls: list[str] = []
    receiver = _recorder(calls, "weak")
    signal.connect(receiver, sender="ns")
    assert [name for _, name in signal.send("ns", job=1)] == ["weak"]
    del receiver
    gc.collect()
    assert signal.send("ns", job=2) == []
    assert calls == ["weak:ns:1"]


def test_a_sender_other_than_a_namespace_gets_its_own_receivers():
    signal = SafeNamedSignal("test_object_sender")
    calls: list[str] = []
    sender = object()
    signal.connect(_recorder(calls, "own"), sender=sender, weak=False)
    signal.send(sender, job=1)
    signal.send("ns", job=2)
    assert calls == [f"own:{sender}:1"]


def test_a_failing_receiver_is_logged_and_the_others_still_run(caplog):
    signal = SafeNamedSignal("test_failing")
    calls: list[str] = []

    def failing(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    signal.connect(failing, weak=False)
    signal.connect(_recorder(calls, "ok"), weak=False)
    results = signal.send("ns", job=1)
    assert calls == ["ok:ns:1"] and [value for _, value in results] == ["ok"]
    assert "boom" in caplog.text
