"""`python manage.py run_worker`: the Huey consumer, with a shutdown that hands runs back.

Huey's own consumer stops gracefully only on SIGINT; on SIGTERM (what systemd, Docker and
Kubernetes send) it exits with its thread workers still inside their tasks, so a run would
stay leased until its lease expired. Here SIGTERM and SIGINT both stop the worker the same
way: `runs.engine.shutdown` is set first, so every running engine stops starting steps,
interrupts its provider calls and hands its run back (lease released, run enqueued again),
then the worker threads finish their tasks and the consumer exits. A second signal stops
at once.
"""
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import autodiscover_modules
from huey.consumer import Consumer

from runs import engine

log = logging.getLogger(__name__)


class GracefulConsumer(Consumer):
    """A thread consumer for which SIGTERM and SIGINT both mean "hand the runs back, then stop"."""

    def __init__(self, huey, **options):
        super().__init__(huey, graceful_signal="TERM", **options)
        self._signal_actions[signal.SIGINT] = (False, True)

    def stop(self, graceful=False):
        # Before the join: engines notice within RUN_POLL_S and return their tasks quickly.
        engine.shutdown.set()
        super().stop(graceful=True)


class Command(BaseCommand):
    help = "Run the task worker; SIGTERM or SIGINT hand running runs back to the queue before it exits."

    def add_arguments(self, parser):
        parser.add_argument("--workers", "-w", type=int, default=settings.HUEY_WORKERS,
                            help="worker threads, each driving one run at a time")
        parser.add_argument("--shutdown-timeout", type=float, default=30.0,
                            help="seconds to wait for runs to be handed back before exiting anyway")
        parser.add_argument("--max-delay", type=float, default=1.0,
                            help="longest pause between polls of an idle queue (SQLite queue only)")
        parser.add_argument("--no-periodic", action="store_true", help="do not run periodic tasks (the reaper)")

    def handle(self, workers, shutdown_timeout, max_delay, no_periodic=False, **options):
        from huey.contrib.djhuey import HUEY

        autodiscover_modules("tasks")
        engine.shutdown.clear()
        consumer = GracefulConsumer(
            HUEY, workers=workers, worker_type="thread", periodic=not no_periodic,
            initial_delay=0.05, max_delay=max_delay, shutdown_timeout=shutdown_timeout,
        )
        log.info("worker started with %d thread(s)", workers)
        consumer.run()
        log.info("worker stopped")
