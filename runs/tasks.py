"""Huey tasks: thin and repeatable. They pass run ids, are enqueued on commit, and claim
their run with a conditional UPDATE, so a duplicate or late delivery does nothing."""
import logging

from django.conf import settings
from django.db import transaction
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, on_startup

from . import engine
from .models import Run

log = logging.getLogger(__name__)


@db_task()
def execute_run(run_id):
    # Nothing is returned: the run's state is in the database, and a result would cost a
    # write to the result store for every run.
    engine.execute(run_id)


def enqueue_run(run_id):
    """Start (or continue) a run on a worker once the current transaction commits."""
    transaction.on_commit(lambda: execute_run(str(run_id)))


@db_task()
def wake_run(run_id):
    Run.wake_if_due(run_id)


def wake_run_at(run_id, seconds):
    """Once the current transaction commits, have a worker look at a waiting run again in
    `seconds` (when a human step's time is up). Huey keeps the schedule across restarts."""
    transaction.on_commit(lambda: wake_run.schedule((str(run_id),), delay=seconds + 0.05))


def reap_expired_runs():
    """Re-enqueue runs whose worker stopped heartbeating, and queued runs nobody picked up
    (a task lost with a crashed worker). Returns how many were re-enqueued."""
    stale = Run.expired().values_list("pk", flat=True)
    cutoff = Run.unclaimed_since(settings.RUN_REQUEUE_AFTER_S)
    count = 0
    for run_id in {*stale, *cutoff}:
        execute_run(str(run_id))
        count += 1
    if count:
        log.info("re-enqueued %d run(s)", count)
    return count


@db_periodic_task(crontab(minute="*"))
def reaper():
    reap_expired_runs()


@on_startup()
def _reap_on_start():
    # A worker that starts after a crash picks up the runs its predecessor left behind.
    try:
        reap_expired_runs()
    except Exception:
        log.warning("reaping on start failed", exc_info=True)
