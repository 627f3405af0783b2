"""Celery's public surface: every name of the fixture is in the facade or refused, truthfully.

The fixture ``celery_5_7.json`` is written by ``scripts/celery_inventory.py`` from the real
Celery; ``spinach_compat.surface.REFUSED`` lists what the facade refuses. A name missing
from both fails here, and so does a refusal the facade does not act on, or one for a name
the facade now has (stale: remove it from REFUSED).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import spinach_compat
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.surface import REFUSED, refused_attribute

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location(
    "celery_inventory", ROOT / "scripts" / "celery_inventory.py"
)
inventory = sys.modules["celery_inventory"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inventory)

FIXTURE = inventory.load_fixture()


@pytest.fixture(scope="module")
def statuses() -> dict:
    return inventory.statuses(FIXTURE)


def _with(statuses: dict, state: str) -> list[str]:
    return sorted(s.name for found in statuses.values() for s in found if s.state == state)


def test_the_fixture_lists_the_modules_and_classes_of_the_script() -> None:
    assert sorted(FIXTURE["modules"]) == sorted(inventory.MODULES)
    assert sorted(FIXTURE["classes"]) == sorted(inventory.CLASSES)
    assert FIXTURE["celery"].startswith("5.7")
    assert all(names == sorted(names) for names in FIXTURE["modules"].values())


def test_every_celery_name_is_in_the_facade_or_refused(statuses) -> None:
    assert _with(statuses, inventory.MISSING) == []


def test_no_refusal_is_stale(statuses) -> None:
    """A name the facade now implements is no longer refused: remove it from REFUSED."""
    assert _with(statuses, inventory.STALE) == []


def test_every_refusal_has_a_reason_and_a_way_out() -> None:
    for name, reason in REFUSED.items():
        assert name.startswith("celery."), name
        assert len(reason) > 20 and reason[-1] not in ".,;", (name, reason)


def test_every_refusal_names_a_celery_name_of_the_inventory() -> None:
    known = set(FIXTURE["modules"]) | set(FIXTURE["classes"])
    known |= {f"{m}.{n}" for m, names in FIXTURE["modules"].items() for n in names}
    known |= {f"{c}.{n}" for c, names in FIXTURE["classes"].items() for n in names}
    known |= {m.rpartition(".")[0] for m in FIXTURE["modules"]}  # a package refused whole
    assert sorted(set(REFUSED) - known) == []


@pytest.mark.parametrize(
    "key", sorted(k for k in REFUSED if k.rpartition(".")[0] in FIXTURE["modules"])
)
def test_a_refused_module_name_raises_unsupported_feature(key: str) -> None:
    module, _, name = key.rpartition(".")
    if inventory.module_status(module).state != inventory.IMPLEMENTED:
        pytest.skip(f"{module} itself is refused")
    facade = inventory.facade_module(module)
    with pytest.raises(UnsupportedFeature, match=key.replace(".", r"\.")):
        value = getattr(facade, name)
        value()  # a class present for subclassing refuses when instantiated


def test_a_refused_module_name_is_absent_to_feature_detection_and_loud_on_import() -> None:
    """``hasattr``/``getattr(m, name, default)`` see it absent (an AttributeError carrying
    the reason); ``from m import name`` raises the reason itself, not an ImportError."""
    import spinach_compat

    assert "celery.bugreport" in REFUSED
    assert getattr(spinach_compat, "bugreport", None) is None
    assert not hasattr(spinach_compat, "bugreport")
    with pytest.raises(AttributeError, match=r"celery\.bugreport is not supported"):
        _ = spinach_compat.bugreport
    with pytest.raises(UnsupportedFeature, match=r"celery\.bugreport") as raised:
        from spinach_compat import bugreport  # noqa: F401
    assert not isinstance(raised.value, (AttributeError, ImportError))


@pytest.mark.parametrize("key", sorted(k for k in REFUSED if k in FIXTURE["modules"]))
def test_a_refused_module_raises_when_imported(key: str) -> None:
    with pytest.raises(UnsupportedFeature, match=key.replace(".", r"\.")):
        inventory.facade_module(key)
    with pytest.raises(UnsupportedFeature):
        __import__("spinach_compat" + key[len("celery") :])


def test_a_missing_facade_module_celery_lacks_is_a_plain_import_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        __import__("spinach_compat.no_such_module")


def test_refused_attribute_raises_on_read() -> None:
    key = next(k for k in REFUSED if k.rpartition(".")[0] in FIXTURE["classes"])

    class Holder:
        attr = refused_attribute(key)

    with pytest.raises(UnsupportedFeature, match=key.replace(".", r"\.")):
        Holder().attr  # noqa: B018


def test_the_guide_table_is_up_to_date() -> None:
    text = inventory.GUIDE.read_text()
    assert inventory.guide_with_table(text, FIXTURE) == text, (
        "run: python scripts/celery_inventory.py --table"
    )


def test_every_name_the_facade_exports_exists() -> None:
    for name in spinach_compat.__all__:
        assert getattr(spinach_compat, name) is not None, name


def test_the_fixture_is_the_inventory_of_the_installed_celery() -> None:
    celery = pytest.importorskip("celery")
    if celery.__version__ != FIXTURE["celery"]:
        pytest.skip(f"Celery {celery.__version__} installed, fixture of {FIXTURE['celery']}")
    assert json.loads(json.dumps(inventory.inventory())) == FIXTURE
