"""Runs, their steps, events and artifacts. The database is the truth.

A Run is claimed by one worker at a time through a lease (`claim`, `renew`, `release`)
carrying a fencing token: every write a worker makes on behalf of a run goes through
`Run.locked(token)`, which fails once another worker has taken the lease, so a worker that
lost its lease stops writing. Every state change writes a RunEvent with the next per-run
`seq` in the same transaction; the event is announced on the channel layer after commit.
"""
import functools
from dataclasses import dataclass
import hashlib
import uuid
import weakref
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.utils import timezone

from accounts.models import OrgQuerySet, Organization, Role
from workflows.models import Workflow, WorkflowVersion

from . import events as events_module


class DecisionError(Exception):
    """A control action (approve, reject, retry) that does not fit the run's state."""


class ApproverRoleRequired(DecisionError):
    """The decider's role is below the human node's approver_role."""


# Field types whose Python values go to the database as they are: their get_db_prep_save
# hands a str, int, bool or float back unchanged.
_PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.FloatField)


def _is_plain(field):
    target = field.target_field if field.is_relation else field
    return isinstance(target, _PLAIN_FIELDS) and not isinstance(target, models.JSONField)


def _column_values(obj, fields):
    # The connection itself, not the thread-local proxy each field would look it up through.
    # Plain values skip Django's preparation, which costs more than SQLite's execution.
    conn = connections[DEFAULT_DB_ALIAS]
    values = []
    for field in fields:
        value = getattr(obj, field.attname)
        plain = _PLAIN_BY_FIELD.get(field)
        if plain is None:
            plain = _PLAIN_BY_FIELD[field] = _is_plain(field)
        values.append(value if plain and value is not None else field.get_db_prep_save(value, conn))
    return values


_PLAIN_BY_FIELD = {}


def _insert_sql(model, objs, fields):
    """(sql, params) of one multi-row INSERT of `objs` into `model`'s table."""
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [value for obj in objs for value in _column_values(obj, fields)]
    return (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * len(objs))}", params)


@functools.lru_cache(maxsize=64)
def _native(sql, vendor):
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


def _execute(sql, params, fetch=False):
    """Run one statement on the connection's own DB-API cursor; returns the first row when
    `fetch`. The engine writes its steps, events and run counters through here: for such
    small statements Django's cursor wrapper costs about as much as SQLite's execution."""
    conn = connections[DEFAULT_DB_ALIAS]
    conn.ensure_connection()
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_native(sql, conn.vendor), params)
        return cursor.fetchone() if fetch else None
    finally:
        cursor.close()


def _source_problems(organization_id, spec):
    """What would stop each source's key from being found: a credential that cannot be
    decrypted or belongs to another provider, an environment variable that is not set or
    may not be read. Never says anything of the key itself."""
    from providers.base import ProviderError
    from providers.credentials import resolve

    problems = []
    for name, source in spec.sources.items():
        try:
            resolve(organization_id, source)
        except ProviderError as exc:
            problems.append({"path": f"$.sources.{name}", "code": "source.key", "message": exc.message})
    return problems


def _started(run, events):
    """After a new run is committed: announce its events and hand it to a worker."""
    from .tasks import enqueue_run

    events_module.publish_all(events)
    if run.mode != Run.Mode.VALIDATE:
        enqueue_run(run.pk)


class LeaseLost(Exception):
    """Another worker holds this run now; the current one must stop writing."""


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        API = "api", "API"
        CLI = "cli", "Command line"

    class Mode(models.TextChoices):
        VALIDATE = "validate", "Validate"
        TEST = "test", "Test"
        FULL = "full", "Full"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.API)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.FULL)
    inputs = models.JSONField(default=dict)
    outputs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    step_count = models.PositiveIntegerField(default=0)
    # Seconds workers spent driving the run, waits for people excluded: what settings.timeout_s bounds.
    active_s = models.FloatField(default=0)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The lease: who runs it, until when, and the fencing token that grows with every claim.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_token = models.PositiveBigIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The last event's seq; the next event takes seq + 1 under the run's row lock.
    last_seq = models.PositiveBigIntegerField(default=0)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"{self.workflow} run {str(self.id)[:8]}"

    @property
    def is_terminal(self):
        return self.status in self.TERMINAL

    @property
    def duration_s(self):
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()

    @property
    def total_tokens(self):
        return self.input_tokens + self.output_tokens

    # Writing ---------------------------------------------------------------------------

    @contextmanager
    def writing(self, fenced=True, durable=True):
        """A transaction on this run; yields a RunWriter that collects events and run fields.

        Fenced (the worker holding the lease): this in-memory run is the truth for every field
        but `last_seq` and `cancel_requested_at`; the changes end in one UPDATE that checks the
        lease token, takes the event seqs and reads the cancel flag, and raises LeaseLost (the
        whole transaction rolls back) when another worker took the run. Not fenced (API
        actions): the row is read and locked first.
        """
        with transaction.atomic():
            if fenced:
                writer = FencedRunWriter(self, durable)
            else:
                writer = RunWriter(Run.objects.select_for_update().get(pk=self.pk))
                writer.make_durable()
            yield writer
            writer.flush()
        if not fenced:
            self.status, self.last_seq = writer.run.status, writer.run.last_seq

    # Lease ----------------------------------------------------------------------------

    @classmethod
    def claim(cls, pk, owner, ttl):
        """Take the lease of a runnable run whose lease is free or expired.

        Returns the run with its new fencing token (and its workflow's slug as
        `workflow_slug`), or None when another worker holds it or there is nothing to do
        (terminal, waiting with nothing decided).
        """
        now = timezone.now()
        qn = connection.ops.quote_name
        expires = cls._meta.get_field("lease_expires_at")
        # One statement takes the lease and reads the row back (with the new token).
        claimed = list(cls.objects.raw(
            f"UPDATE {qn(cls._meta.db_table)} SET {qn('lease_owner')} = %s, "
            f"{qn('lease_token')} = {qn('lease_token')} + 1, {qn('lease_expires_at')} = %s "
            f"WHERE {qn('id')} = %s AND {qn('status')} IN (%s, %s) "
            f"AND ({qn('lease_expires_at')} IS NULL OR {qn('lease_expires_at')} < %s) RETURNING *, "
            f"(SELECT w.{qn('slug')} FROM {qn(Workflow._meta.db_table)} w "
            f"WHERE w.{qn('id')} = {qn(cls._meta.db_table)}.{qn('workflow_id')}) AS workflow_slug",
            [owner, expires.get_db_prep_value(now + timedelta(seconds=ttl), connection),
             cls._meta.pk.get_db_prep_value(pk, connection), cls.Status.QUEUED, cls.Status.RUNNING,
             expires.get_db_prep_value(now, connection)],
        ))
        return claimed[0] if claimed else None

    def renew(self, ttl):
        """Heartbeat: extend the lease; raises LeaseLost when it is no longer ours."""
        renewed = Run.objects.filter(pk=self.pk, lease_token=self.lease_token, lease_owner=self.lease_owner).update(
            lease_expires_at=timezone.now() + timedelta(seconds=ttl)
        )
        if not renewed:
            raise LeaseLost(f"run {self.pk} was taken over")

    def release(self):
        """Give the lease back (graceful shutdown or waiting); another worker may claim it."""
        Run.objects.filter(pk=self.pk, lease_token=self.lease_token, lease_owner=self.lease_owner).update(
            lease_owner="", lease_expires_at=None
        )

    @classmethod
    def unclaimed_since(cls, seconds):
        """Runnable runs with no lease, created more than `seconds` ago (a lost task)."""
        cutoff = timezone.now() - timedelta(seconds=seconds)
        return cls.objects.filter(status__in=(cls.Status.QUEUED, cls.Status.RUNNING), lease_expires_at__isnull=True,
                                  created_at__lt=cutoff).values_list("pk", flat=True)

    # Lifecycle -----------------------------------------------------------------------------

    @classmethod
    def start(cls, workflow, version, inputs, *, mode=Mode.FULL, trigger=Trigger.API, user=None, user_id=None):
        """Create a run of `version` (by `user`, or the user with id `user_id`) and hand it to
        a worker after commit.

        `inputs` must already be checked (`WorkflowSpec.check_inputs`). A validate-mode run
        executes nothing: it finishes at once with a report.
        """
        run = cls(organization_id=workflow.organization_id, workflow=workflow, version=version, inputs=inputs,
                  mode=mode, trigger=trigger, created_by_id=user_id or getattr(user, "pk", None))
        now = timezone.now()
        events = [NewEvent(run.pk, 1, "run.queued", {
            "workflow": workflow.slug, "version": version.number, "mode": mode, "trigger": trigger}, now)]
        if mode == cls.Mode.VALIDATE:
            report = run.validation_report()
            run.status = cls.Status.SUCCEEDED if report["valid"] else cls.Status.FAILED
            run.outputs = {"report": report}
            run.started_at = run.finished_at = timezone.now()
            run.error = "" if report["valid"] else "The workflow did not validate."
            events.append(NewEvent(run.pk, 2, f"run.{run.status}", {"status": run.status, "outputs": run.outputs},
                                   now))
        run.last_seq = len(events)
        # A new row: nobody else can see it yet, so no lock is needed to number its events.
        run_sql, run_params = _insert_sql(cls, [run], cls._meta.concrete_fields)
        events_sql, events_params = _insert_sql(RunEvent, events, RunEvent.insert_fields())
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            # One statement is one transaction: the run and its first event in a single trip.
            _execute(f"WITH new_run AS ({run_sql}) {events_sql}", run_params + events_params)
            run._state.adding = False
            _started(run, events)
        else:
            with transaction.atomic():
                _execute(run_sql, run_params)
                run._state.adding = False
                _execute(events_sql, events_params)
                transaction.on_commit(partial(_started, run, events))
        return run

    def validation_report(self):
        """What a validate-mode run reports: spec, inputs and the nodes a run would visit."""
        from workflows.models import validate
        from workflows.models import InvalidSpec

        try:
            spec = validate(self.version.spec, self.organization)
        except InvalidSpec as exc:
            return {"valid": False, "errors": [e.as_dict() for e in exc.errors], "nodes": []}
        _, problems = spec.check_inputs(self.inputs)
        problems += _source_problems(self.organization_id, spec)
        return {"valid": not problems, "errors": problems, "inputs": self.inputs,
                "nodes": [{"id": n.id, "type": n.type} for n in spec.nodes],
                "sources": sorted(spec.sources)}

    def request_cancel(self, actor=None):
        """Cancel: at once when queued or waiting; a running run stops at its next check.

        Returns the run's status afterwards. Exactly one terminal state wins a race with
        completion, because both change the status under the run's row lock.
        """
        now = timezone.now()
        with self.writing(fenced=False) as w:
            run = w.run
            if run.is_terminal:
                return run.status
            if run.cancel_requested_at is None:
                w.set(cancel_requested_at=now)
                w.emit("log", {"message": "cancel requested", "by": str(actor or "")})
            if run.status == self.Status.RUNNING and run.lease_expires_at and run.lease_expires_at > now:
                return run.status  # the worker holding the lease finishes the cancel
            open_steps = Step.objects.filter(run=run, status__in=(Step.Status.PENDING, Step.Status.RUNNING,
                                                                  Step.Status.WAITING))
            cancelled = []
            for step in open_steps:
                step.status, step.finished_at = Step.Status.CANCELLED, now
                step.save(update_fields=["status", "finished_at"])
                cancelled.append(step.summary())
            w.set(status=self.Status.CANCELLED, finished_at=now, error="Cancelled.", lease_owner="",
                  lease_expires_at=None)
            # The steps that were still open end with the run; its terminal event lists them.
            w.emit("run.cancelled", {"status": "cancelled", "error": "Cancelled.", "steps_cancelled": cancelled})
        self.refresh_from_db()
        return self.status

    def decide(self, node_id, approved, comment="", actor=None, role=None):
        """Record a human decision on a waiting step; idempotent for the same decision.

        `role` is the decider's role in the organization: a human node names the least role
        that may decide it (`approver_role`). Returns the step. Raises ApproverRoleRequired
        for a lower role, DecisionError when there is nothing to decide or the step was
        already decided the other way.
        """
        from .tasks import enqueue_run

        decision = "approved" if approved else "rejected"
        with self.writing(fenced=False) as w:
            step = Step.objects.filter(run=self, node_id=node_id, map_index__isnull=True).first()
            if step is None or step.node_type != "human":
                raise DecisionError(f"there is no human step '{node_id}' in this run")
            if role is not None and not step.may_be_decided_by(role):
                raise ApproverRoleRequired(f"deciding step '{node_id}' needs the {step.approver_role} role or above")
            if step.status == Step.Status.SUCCEEDED:
                if step.output.get("decision") == decision:
                    return step
                raise DecisionError(f"step '{node_id}' was already {step.output.get('decision')}")
            if step.status != Step.Status.WAITING or w.run.is_terminal:
                raise DecisionError(f"step '{node_id}' is not waiting for a decision")
            step.status = Step.Status.SUCCEEDED
            step.output = {"decision": decision, "comment": comment, "by": str(actor or "")}
            step.finished_at = timezone.now()
            step.save(update_fields=["status", "output", "finished_at"])
            w.emit("step.succeeded", {**step.summary(), "output": step.output})
            if w.run.status == self.Status.WAITING:
                w.set(status=self.Status.RUNNING)
                enqueue_run(self.pk)
        return step

    def step_notes(self, steps):
        """{step pk: the latest log message about it} for the running ones of `steps`
        ("waiting for queue openai (12 s)", a provider retry, a fallback)."""
        running = {step.pk for step in steps if step.status == Step.Status.RUNNING}
        if not running:
            return {}
        notes = {}
        for data in (RunEvent.objects.filter(run=self, type="log").order_by("-seq")
                     .values_list("data", flat=True)[:100]):
            step = data.get("step") if isinstance(data, dict) else None
            if step in running and step not in notes:
                notes[step] = data.get("message", "")
        return notes

    @classmethod
    def wake_if_due(cls, pk):
        """Put a waiting run back to work when one of its human steps has run out of time
        (the engine then fails that step). Returns whether it did."""
        from .engine import spec_of
        from .tasks import enqueue_run

        run = cls.objects.filter(pk=pk, status=cls.Status.WAITING).select_related("version").first()
        if run is None:
            return False
        spec, now = spec_of(run.version), timezone.now()
        timeouts = {node.id: node.timeout_s for node in spec.nodes}
        lefts = [step.wait_left_s(timeouts.get(step.node_id), now)
                 for step in Step.objects.filter(run=run, status=Step.Status.WAITING, map_index__isnull=True)]
        if not any(left is not None and left <= 0 for left in lefts):
            return False
        with run.writing(fenced=False) as w:
            if w.run.status != cls.Status.WAITING:
                return False
            w.set(status=cls.Status.RUNNING)
            w.emit("log", {"message": "a human step ran out of time"})
            enqueue_run(run.pk)
        return True

    def retry(self, actor=None):
        """Run a failed (or cancelled) run again from its failed steps; succeeded ones are kept."""
        from .tasks import enqueue_run

        with self.writing(fenced=False) as w:
            if w.run.status not in (self.Status.FAILED, self.Status.CANCELLED):
                raise DecisionError(f"only failed or cancelled runs can be retried; this one is {w.run.status}")
            Step.objects.filter(run=self).exclude(status__in=(Step.Status.SUCCEEDED, Step.Status.SKIPPED)).update(
                status=Step.Status.PENDING, error="")
            w.set(status=self.Status.QUEUED, error="", finished_at=None, cancel_requested_at=None,
                  lease_owner="", lease_expires_at=None)
            w.emit("run.queued", {"retry": True, "by": str(actor or "")})
            enqueue_run(self.pk)
        self.refresh_from_db()
        return self

    @classmethod
    def expired(cls):
        """Runs whose worker stopped heartbeating: they need another worker."""
        return cls.objects.filter(status__in=(cls.Status.QUEUED, cls.Status.RUNNING),
                                  lease_expires_at__lt=timezone.now())


class RunWriter:
    """Collects the changes of one transaction on a locked run row."""

    def __init__(self, run):
        self.run = run
        self.events = []
        self.fields = set()
        self.steps = {}  # id(step) -> Step to write when the transaction ends
        self.step_events = []  # (event, step): events whose data names a step not yet inserted

    def make_durable(self):
        """Make this transaction's commit wait for the disk, on a session whose commits
        were relaxed for step progress (see FencedRunWriter)."""
        if _relaxed_connections and _raw_connection() in _relaxed_connections:
            _execute("SET LOCAL synchronous_commit TO ON", [])

    def set(self, **fields):
        for name, value in fields.items():
            setattr(self.run, name, value)
        self.fields.update(fields)

    def add_usage(self, step):
        self.set(
            input_tokens=self.run.input_tokens + step.input_tokens,
            output_tokens=self.run.output_tokens + step.output_tokens,
            cost_usd=self.run.cost_usd + step.cost_usd,
        )

    def save_step(self, step):
        """Write `step` when the transaction ends: a step that starts and ends in the same
        transaction (a node that only computes) is one INSERT, not an INSERT and an UPDATE."""
        self.steps[id(step)] = step

    def emit(self, type, data=None, step=None):
        """Add an event; `step`, when given, is the Step whose id goes in data["step"] once
        it has one."""
        self.run.last_seq += 1
        self.fields.add("last_seq")
        event = NewEvent(self.run.pk, self.run.last_seq, type, data or {}, timezone.now())
        self.events.append(event)
        if step is not None:
            self.step_events.append((event, step))
        return event

    def flush_steps(self):
        for step in self.steps.values():
            step.persist()
        for event, step in self.step_events:
            event.data["step"] = step.pk
        self.steps, self.step_events = {}, []

    def flush(self):
        self.flush_steps()
        if self.fields:
            self.run.save(update_fields=sorted(self.fields))
        self.flush_events()

    def flush_events(self):
        if self.events:
            RunEvent.insert_all(self.events)
            transaction.on_commit(partial(events_module.publish_all, self.events))


_relaxed_connections = weakref.WeakSet()


def _raw_connection():
    conn = connections[DEFAULT_DB_ALIAS]
    conn.ensure_connection()
    return conn.connection


def _relax_commits():
    """Let this PostgreSQL session commit without waiting for the disk; True when it does."""
    if connection.vendor != "postgresql" or settings.RUN_DURABLE_STEP_COMMITS:
        return False
    raw = _raw_connection()
    if raw not in _relaxed_connections:
        _execute("SET synchronous_commit TO OFF", [])
        _relaxed_connections.add(raw)
    return True


class FencedRunWriter(RunWriter):
    """RunWriter of the lease holder: no read up front, one fenced UPDATE … RETURNING at the end."""

    def __init__(self, run, durable=True):
        super().__init__(run)
        self.fence = (run.lease_token, run.lease_owner)  # the turn may give the lease up
        # On PostgreSQL a step's progress may commit without waiting for the disk flush:
        # other sessions see it at once (a worker crash loses nothing), and a database crash
        # loses at most the last fraction of a second, whose steps then run again with their
        # idempotency keys. The engine's connection is switched once per session; terminal
        # changes call make_durable(), and WAL order makes everything before them durable too.
        if not durable:
            _relax_commits()

    def emit(self, type, data=None, step=None):
        event = NewEvent(self.run.pk, 0, type, data or {}, timezone.now())
        self.events.append(event)
        if step is not None:
            self.step_events.append((event, step))
        return event

    def flush(self):
        self.flush_steps()
        run = self.run
        qn = connection.ops.quote_name
        assignments, params = [f"{qn('last_seq')} = {qn('last_seq')} + %s"], [len(self.events)]
        for name in sorted(self.fields - {"last_seq"}):
            field = Run._meta.get_field(name)
            assignments.append(f"{qn(field.column)} = %s")
            params.append(field.get_db_prep_save(getattr(run, name), connection))
        params += [Run._meta.pk.get_db_prep_value(run.pk, connection), *self.fence]
        row = _execute(
            f"UPDATE {qn(Run._meta.db_table)} SET {', '.join(assignments)} "
            f"WHERE {qn('id')} = %s AND {qn('lease_token')} = %s AND {qn('lease_owner')} = %s "
            f"RETURNING {qn('last_seq')}, {qn('cancel_requested_at')}",
            params, fetch=True,
        )
        if row is None:
            raise LeaseLost(f"run {run.pk} was taken over")
        run.last_seq = row[0]
        if row[1] is not None and run.cancel_requested_at is None:
            run.cancel_requested_at = timezone.now()  # only "was it asked for" matters here
        first = run.last_seq - len(self.events) + 1
        for offset, event in enumerate(self.events):
            event.seq = first + offset
        super().flush_events()


# What a step's progress changes; the rest (run, node, index, key) is fixed at insert.
_STEP_PROGRESS = ("attempt", "status", "input", "output", "error", "started_at", "finished_at", "input_tokens",
                  "output_tokens", "tokens_estimated", "cost_usd", "source", "provider", "model", "queue_wait_ms")


@functools.cache
def _step_sql(kind):
    """(statement, fields) writing a Step: "insert" every column, "update" its progress."""
    qn = connection.ops.quote_name
    table = qn(Step._meta.db_table)
    if kind == "insert":
        fields = [f for f in Step._meta.concrete_fields if not f.primary_key]
        return (f"INSERT INTO {table} ({', '.join(qn(f.column) for f in fields)}) "
                f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {qn('id')}"), fields
    fields = [Step._meta.get_field(name) for name in _STEP_PROGRESS]
    return f"UPDATE {table} SET {', '.join(f'{qn(f.column)} = %s' for f in fields)} WHERE {qn('id')} = %s", fields


class Step(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    DONE = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.CANCELLED)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # No index of its own: the unique (run, node_id, map_index) constraint leads with run.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps", db_index=False)
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=32)
    # Steps of a map's inline node carry the item index; the map's own step has none.
    map_index = models.IntegerField(null=True, blank=True)
    attempt = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    source = models.CharField(max_length=64, blank=True)  # the spec source that served it (primary or fallback)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    queue_wait_ms = models.PositiveIntegerField(default=0)
    # Stable across re-executions of the same step, so providers can deduplicate.
    idempotency_key = models.CharField(max_length=64, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["id"]  # the order the engine recorded them: starts, then skips
        constraints = [
            models.UniqueConstraint(fields=["run", "node_id", "map_index"], name="unique_step"),
            models.UniqueConstraint(fields=["run", "node_id"], condition=models.Q(map_index__isnull=True),
                                    name="unique_step_without_index"),
        ]

    def __str__(self):
        suffix = f"[{self.map_index}]" if self.map_index is not None else ""
        return f"{self.node_id}{suffix} ({self.status})"

    def persist(self):
        """save() for the engine's hot path: one plain INSERT … RETURNING, or an UPDATE of the
        columns a step's progress changes, without the ORM's per-call query building."""
        if self.pk is None:
            insert, fields = _step_sql("insert")
            self.pk = _execute(insert, _column_values(self, fields), fetch=True)[0]
            self._state.adding = False
        else:
            update, fields = _step_sql("update")
            _execute(update, [*_column_values(self, fields), self.pk])

    def wait_left_s(self, timeout_s, now):
        """Seconds a waiting step has left before its `timeout_s` runs out (0 or less when
        it has), or None when it has no time limit."""
        if timeout_s is None or self.started_at is None:
            return None
        return timeout_s - (now - self.started_at).total_seconds()

    @property
    def approver_role(self):
        """The least role that may decide this human step (recorded as its input when it
        started waiting)."""
        info = self.input if isinstance(self.input, dict) else {}
        role = info.get("approver_role")
        return role if role in Role.values else Role.EDITOR

    def may_be_decided_by(self, role):
        return role in Role.values and Role.at_least(role, self.approver_role)

    @staticmethod
    def make_idempotency_key(run_id, node_id, map_index):
        return hashlib.sha256(f"{run_id}:{node_id}:{map_index}".encode()).hexdigest()[:32]

    @property
    def duration_ms(self):
        if not (self.started_at and self.finished_at):
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def summary(self):
        """The fields events carry about a step."""
        return {
            "step": self.pk,
            "node": self.node_id,
            "type": self.node_type,
            "map_index": self.map_index,
            "status": self.status,
            "attempt": self.attempt,
            "duration_ms": self.duration_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
        }


@dataclass(slots=True)
class NewEvent:
    """An event about to be written: RunEvent's columns without a model instance, since the
    engine writes two or more per step and never reads them back."""

    run_id: object
    seq: int
    type: str
    data: dict
    created_at: object

    def as_message(self):
        return RunEvent.as_message(self)


class RunEvent(models.Model):
    # No index of its own: the unique (run, seq) constraint leads with run.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_event_seq")]

    def __str__(self):
        return f"{self.seq} {self.type}"

    @classmethod
    def insert_fields(cls):
        return [f for f in cls._meta.concrete_fields if not f.primary_key]

    @classmethod
    def insert_all(cls, events):
        """One multi-row INSERT (events are never read back by id where they are written)."""
        _execute(*_insert_sql(cls, events, cls.insert_fields()))

    def as_message(self):
        return {
            "run": str(self.run_id),
            "seq": self.seq,
            "type": self.type,
            "data": self.data,
            "at": self.created_at.isoformat(),
        }


def artifact_path(artifact, filename):
    return f"artifacts/{artifact.organization_id}/{artifact.run_id}/{filename}"


class Artifact(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=artifact_path, max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["run", "name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="unique_artifact_name")]

    @classmethod
    def insert_all(cls, artifacts):
        """One multi-row INSERT, in the caller's transaction (no savepoint of its own)."""
        if artifacts:
            _execute(*_insert_sql(cls, artifacts, [f for f in cls._meta.concrete_fields if not f.primary_key]))

    def __str__(self):
        return self.name
