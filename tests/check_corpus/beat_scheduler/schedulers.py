from celery.beat import Scheduler


class DatabaseScheduler(Scheduler):
    def tick(self, *args, **kwargs):
        for entry in self.schedule.values():
            self.apply_async(entry, producer=None, advance=False)
        return 5.0
