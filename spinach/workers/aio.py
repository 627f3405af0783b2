"""Workers running coroutine tasks concurrently on one asyncio event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

from .. import signals
from ..context import _current_job
from ..job import Job
from .base import Workers


class AsyncioWorkers(Workers):
    """Up to ``number`` jobs at once as coroutines on one event loop, in its own thread.

    Coroutine tasks are awaited on the loop; a plain function task runs in the loop's
    default thread pool so it cannot block the other jobs.
    """

    def __init__(self, number: int, namespace: str, **kwargs: Any):
        super().__init__(number, namespace, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name=f"{namespace}-asyncio-worker")
        self._thread.start()
        self._ready.wait()

    def _start_job(self, job: Job) -> None:
        asyncio.run_coroutine_threadsafe(self._run(job), self._loop)

    def stop(self) -> list[Job]:
        """Wait for every submitted job (all start at once) then close the loop."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        return []

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        signals.worker_started.send(self.namespace, worker_name="asyncio-worker")
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()
            signals.worker_terminated.send(self.namespace, worker_name="asyncio-worker")

    async def _drain(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        started = self._job_starting(job)
        err = None
        _current_job.set(job)  # each job runs in an asyncio task of its own context
        try:
            func = job.task_func
            if inspect.iscoroutinefunction(func):
                await func(*job.task_args, **job.task_kwargs)
            else:
                result: Any = await asyncio.to_thread(func, *job.task_args, **job.task_kwargs)
                if inspect.iscoroutine(result):  # a plain function returning a coroutine
                    await result
        except BaseException as exc:  # a task's failure is the job's, never the loop's
            err = exc
        self._count_in_flight(-1)
        self._job_ended(job, started, err)
