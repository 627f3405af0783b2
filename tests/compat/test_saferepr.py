"""``spinach_compat.utils.saferepr`` against real Celery 5.7's ``celery.utils.saferepr``:
the default ``argsrepr``/``kwargsrepr`` a Celery producer sends, which the facade's
messages, publish headers and worker requests carry."""

from __future__ import annotations

import collections
import decimal
import random
import string
from typing import Any

import pytest

from spinach_compat.app.context import JobContext
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.utils.saferepr import ARGS_REPR_MAXSIZE, args_reprs, saferepr

celery_saferepr = pytest.importorskip("celery.utils.saferepr")

Point = collections.namedtuple("Point", "x y")


class Shown:
    def __repr__(self) -> str:
        return "Shown(" + "a b " * 40 + ")"


class Unshowable:
    def __repr__(self) -> str:
        raise ValueError("no repr")


def _recursive() -> list:
    loop: list[Any] = [1, {"a": "b"}]
    loop.append(loop)
    return loop


CASES = [
    (list(range(2000)),),
    ("word " * 400,),
    ("x" * 3000,),
    {"key": "it's " * 300, "other": list(range(50))},
    ({"a": [[[1, 2], [3]]]}, [[[[["deep"]]]]], (1,), ((),)),
    (b"bytes" * 400, b"\xff\xfe" * 10, bytearray(b"ab")),
    ({1, 2, 3}, frozenset({4}), set(), frozenset(), Point(1, [2])),
    (decimal.Decimal("1.10"), 2.5, True, None, range(4), Shown()),
    collections.OrderedDict((f"k{i}", "v" * i) for i in range(100)),
    (_recursive(),),
    ("line\nbreak\\slash\"quote'",),
    ({(1, 2): "tuple key", 3: "int key", "k" * 2000: 1},),
]


@pytest.mark.parametrize("value", CASES, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize("maxlen", [None, ARGS_REPR_MAXSIZE, 100, 7, 1, 0])
@pytest.mark.parametrize("maxlevels", [3, 1, 0])
def test_saferepr_is_celery_s(value: Any, maxlen: int | None, maxlevels: int) -> None:
    expected = celery_saferepr.saferepr(value, maxlen, maxlevels)
    assert saferepr(value, maxlen, maxlevels) == expected


def test_saferepr_is_celery_s_on_random_values() -> None:
    """A few thousand random nestings of the types above, cut at random lengths."""
    draw = random.Random(20261207)

    def value(depth: int = 0) -> Any:
        if depth > 4 or draw.random() < 0.35:
            text = "".join(draw.choices(string.ascii_letters + " '\n", k=draw.randrange(40)))
            return draw.choice([draw.randrange(-999, 999), 0.25, None, text, b"b y", Shown()])
        members = [value(depth + 1) for _ in range(draw.randrange(6))]
        shape = draw.choice(["list", "tuple", "dict", "single"])
        if shape == "dict":
            return {str(index): member for index, member in enumerate(members)}
        return {"list": list, "tuple": tuple, "single": lambda ms: tuple(ms[:1])}[shape](members)

    for _ in range(3000):
        sample, maxlen = value(), draw.choice([None, 0, 3, 20, 64, 300])
        assert saferepr(sample, maxlen) == celery_saferepr.saferepr(sample, maxlen)


def test_an_unshowable_value_is_named_not_raised() -> None:
    assert saferepr([Unshowable()]).startswith("[<Unrepresentable <class ")


def test_a_worker_request_shows_the_reprs_celery_s_producer_sends() -> None:
    args, kwargs = (list(range(1000)), "x"), {"blob": "y" * 5000}
    request = JobContext(args=list(args), kwargs=kwargs)

    assert (request.argsrepr, request.kwargsrepr) == args_reprs(args, kwargs)
    assert request.argsrepr == celery_saferepr.saferepr(args, 1024, 3)
    assert len(request.kwargsrepr) < 1100


def test_celery_s_default_depth_is_accepted_another_refused(make_app) -> None:
    """Refused when the app's engine is made, as every refused setting."""
    assert make_app(task_repr_maxlevels=3).engine is not None
    with pytest.raises(UnsupportedFeature, match=r"task_repr_maxlevels=5.*3 nesting levels"):
        make_app(task_repr_maxlevels=5).engine  # noqa: B018
