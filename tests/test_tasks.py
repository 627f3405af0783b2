"""The task registry: declaring, validating and finding tasks."""

import inspect
from datetime import timedelta

import pytest

from spinach import Batch, Engine, MemoryBroker, Task, Tasks
from spinach.exc import InvalidJobSignatureError, UnknownTask


def compute(a, b=1):
    return a + b


def test_decorator_without_arguments_names_the_task_after_the_function():
    tasks = Tasks()
    assert tasks.task(compute) is compute
    task = tasks.get(compute)
    assert task.name == "tests.test_tasks.compute"
    assert task.queue == "spinach" and task.max_retries == 0
    assert compute(1) == 2  # the function is left as it was


def test_decorator_with_arguments():
    tasks = Tasks()

    @tasks.task(name="sum", queue="math", max_retries=3, max_concurrency=2)
    def add(a, b):
        return a + b

    task = tasks.get("sum")
    assert (task.queue, task.max_retries, task.max_concurrency) == ("math", 3, 2)
    assert tasks.get(add) is task
    assert tasks.names == ["sum"] and list(tasks.tasks) == ["sum"]


def test_registry_defaults_apply_to_its_tasks():
    tasks = Tasks(queue="low", max_retries=2, max_concurrency=4)
    task = tasks.add(compute, name="c")
    assert (task.queue, task.max_retries, task.max_concurrency) == ("low", 2, 4)
    override = tasks.add(compute, name="d", queue="high", max_retries=0)
    assert (override.queue, override.max_retries) == ("high", 0)


def test_unknown_task_names_the_registered_ones():
    tasks = Tasks()
    tasks.add(compute, name="c")
    with pytest.raises(UnknownTask, match=r"unknown task 'nope' .*registered tasks: c"):
        tasks.get("nope")
    assert "c" in tasks and "nope" not in tasks


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "task name must be a non-empty string"),
        ({"name": "x", "queue": "_internal"}, "reserved"),
        ({"name": "x", "queue": ""}, "queue name must be a non-empty string"),
        ({"name": "x", "max_retries": -1}, "max_retries of task 'x'"),
        ({"name": "x", "max_concurrency": 0}, "max_concurrency of task 'x'"),
        ({"name": "x", "max_concurrency": True}, "max_concurrency of task 'x'"),
        ({"name": "x", "periodicity": 5}, "periodicity of task 'x'"),
        ({"name": "x", "periodicity": timedelta(0)}, "periodicity of task 'x'"),
    ],
)
def test_invalid_options_are_refused_with_a_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        Tasks().add(compute, **options)


def test_lambda_needs_a_name():
    with pytest.raises(ValueError, match="no usable name"):
        Tasks().add(lambda: None)


def test_duplicate_name_is_refused():
    tasks = Tasks()
    tasks.add(compute, name="c")
    tasks.add(compute, name="c")  # the same task again is harmless
    with pytest.raises(ValueError, match="a task named 'c' is already registered"):
        tasks.add(lambda: None, name="c")


def test_periodic_task_must_not_need_arguments():
    with pytest.raises(ValueError, match="periodic task 'p'"):
        Tasks().add(compute, name="p", periodicity=timedelta(seconds=1))


def test_check_arguments():
    task = Task(compute, "c", "q", 0)
    task.check_arguments((1,), {"b": 2})
    with pytest.raises(InvalidJobSignatureError, match="task 'c'"):
        task.check_arguments((), {})


def _plain(a, b=1): ...
def _star(a, *rest): ...
def _keyword_only(a, *, b): ...
def _keyword_default(a, *, b=2): ...
def _positional_only(a, /, b=1): ...
def _everything(a, /, b, *rest, c=3, **more): ...


@pytest.mark.parametrize(
    "func", [_plain, _star, _keyword_only, _keyword_default, _positional_only, _everything]
)
@pytest.mark.parametrize(
    "args, kwargs",
    [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((1,), {"b": 2}), ((), {"a": 1})],
)
def test_check_arguments_agrees_with_signature_bind(func, args, kwargs):
    fits = True
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        fits = False
    task = Task(func, "f", "q", 0)

    if fits:
        task.check_arguments(args, kwargs)
    else:
        with pytest.raises(InvalidJobSignatureError):
            task.check_arguments(args, kwargs)


def test_scheduling_through_a_registry_needs_an_engine():
    tasks = Tasks()
    tasks.add(compute, name="c")
    with pytest.raises(RuntimeError, match="not attached to an engine"):
        tasks.schedule("c", 1)
    with pytest.raises(RuntimeError, match="attach_tasks"):
        tasks.schedule_batch(Batch())


def test_scheduling_through_an_attached_registry():
    tasks = Tasks()
    tasks.add(compute, name="c")
    broker = MemoryBroker()
    engine = Engine(broker, namespace="registry")
    engine.attach_tasks(tasks)
    job = tasks.schedule("c", 1)
    batch = Batch()
    batch.schedule("c", 2)
    tasks.schedule_batch(batch)
    assert job.task_name == "c"
    assert broker.queue_lengths() == {"spinach": 2}


def test_tasks_added_after_attaching_reach_the_engine():
    tasks = Tasks()
    engine = Engine(MemoryBroker())
    engine.attach_tasks(tasks)
    tasks.add(compute, name="late")
    assert "late" in engine.tasks


def test_a_registry_attached_to_a_second_engine_warns_naming_both(caplog):
    tasks = Tasks()
    first, second = Engine(MemoryBroker(), "first"), Engine(MemoryBroker(), "second")
    first.attach_tasks(tasks)
    second.attach_tasks(tasks)
    tasks.add(compute, name="late")
    [record] = [r for r in caplog.records if r.name == "spinach.task"]
    assert record.levelname == "WARNING"
    assert "Tasks already attached to a different Engine" in record.getMessage()
    assert "'first'" in record.getMessage() and "'second'" in record.getMessage()
    assert "late" in first.tasks and "late" in second.tasks
    assert tasks.schedule("late", 1).task_name == "late"
    assert second.broker.queue_lengths() == {"spinach": 1}
    assert first.broker.queue_lengths() == {}


def test_decorated_functions_carry_their_task_name():
    tasks = Tasks()

    @tasks.task(name="named")
    def named() -> None: ...

    @tasks.task
    def unnamed() -> None: ...

    assert named.task_name == "named"
    assert unnamed.task_name == unnamed.__module__ + "." + unnamed.__qualname__
    assert tasks.get("named").task_name == "named"
    engine = Engine(MemoryBroker())
    engine.attach_tasks(tasks)
    assert engine.schedule(named).task_name == "named"


def test_task_declares_the_types_of_exactly_the_task_options():
    from spinach.task import OPTION_NAMES

    declared = [name for name in Task.__annotations__ if not name.startswith("_")]
    assert declared == list(OPTION_NAMES)
