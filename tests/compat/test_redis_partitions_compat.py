"""The facade on a partitioned Redis namespace: ``broker_url='redis://...?partitions=3'`` or
``broker_transport_options={'partitions': 3}`` (see spinach.brokers.redis_partitions)."""

from __future__ import annotations

import pytest

from spinach.brokers.redis_partitions import PartitionedRedisBroker
from spinach_compat import chord, group

from .conftest import WAIT


@pytest.fixture(params=["url", "transport-options"])
def partitioned_app(request, make_app, redis_url):
    if request.param == "url":
        url = f"{redis_url}?partitions=3"
        return make_app(broker=url, backend=url)
    app = make_app(broker=redis_url, backend=redis_url)
    app.conf.broker_transport_options = {"partitions": 3}
    return app


def test_the_engine_runs_on_a_partitioned_broker(partitioned_app) -> None:
    broker = partitioned_app.engine.broker
    assert isinstance(broker, PartitionedRedisBroker)
    assert broker.partition_count == 3


def test_results_and_chords_work_over_partitions(partitioned_app, run_worker) -> None:
    app = partitioned_app

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    run_worker(concurrency=4, target=app)
    assert group(add.s(n, n) for n in range(9)).apply_async().get(timeout=WAIT) == [
        2 * n for n in range(9)
    ]
    assert chord([add.s(n, 1) for n in range(6)], total.s()).apply_async().get(timeout=WAIT) == 21
    assert add.delay(2, 3).get(timeout=WAIT) == 5


def test_kombu_and_purge_see_the_partitioned_broker(partitioned_app) -> None:
    app = partitioned_app

    @app.task
    def job() -> None:
        pass

    for _ in range(6):
        job.delay()
    with app.connection() as connection:  # kombu refuses the native ?partitions=N itself
        connection.ensure_connection(max_retries=1)
    assert sum(app.engine.broker.queue_lengths().values()) == 6
    assert app.control.purge() == 6


def test_the_celery_bridge_feeds_a_partitioned_namespace(make_app, redis_url) -> None:
    celery = pytest.importorskip("celery")
    from spinach_compat.interop.bridge import CeleryBridge

    from .interop_proj.tasks import register

    url = f"{redis_url}?partitions=3"
    facade = make_app("interop", broker=url, backend=url)
    register(facade)
    facade.start_worker(concurrency=2, queues=["celery"], block=False)
    bridge = CeleryBridge(facade, ["celery"], poll_interval=0.02).start()
    client = celery.Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        sent = [client.send_task("interop.add", args=(n, 1)) for n in range(3)]
        assert [result.get(timeout=WAIT) for result in sent] == [1, 2, 3]
    finally:
        client.close()
        bridge.stop()


def test_a_globally_limited_task_keeps_its_jobs_on_one_partition(make_app, redis_url) -> None:
    from spinach.brokers.redis_layout import partition_of

    url = f"{redis_url}?partitions=3"
    app = make_app(broker=url, backend=url, spinach_global_rate_limits=True)

    @app.task(rate_limit="10/s")
    def limited() -> None: ...

    for _ in range(6):
        limited.delay()
    broker = app.engine.broker
    home = broker.partitions[partition_of(limited.name, 3)]
    assert sum(home.queue_lengths().values()) == 6
