"""The run engine: drives one run from its steps in the database to a terminal state.

One thread (the engine's) owns the database writes of a run; node bodies run on a thread
pool and talk back through the engine's inbox. Semantics (../DESIGN): a node is ready when
every incoming edge is decided; an edge is live when its source succeeded and its `when`
holds; a node whose incoming edges are all dead is skipped (dead-path elimination); a join
waits for all live edges; ready nodes run concurrently, at most `settings.parallelism`.

Durability: each step's result is committed before its successors start; succeeded steps
are never executed again; a step that was in flight when a worker died runs again with the
same idempotency key. All writes go through `Run.writing()`, fenced by the lease token.
"""
import functools
import logging
import os
import queue
import random
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from providers import pricing
from providers import calls
from providers.base import ChatRequest, Interrupted, ProviderError
from workflows import templating
from workflows.models import WorkflowVersion
from workflows.spec import WorkflowSpec
from workflows.nodes.base import NodeContext, StepFailed, WaitForHuman

from . import artifacts, events
from .models import LeaseLost, Run, Step

log = logging.getLogger(__name__)

# Set on graceful shutdown: engines stop starting steps and hand their runs back.
shutdown = threading.Event()

OUTPUT_EVENT_LIMIT = 16 * 1024  # larger outputs travel as a preview; the step has them whole


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


_spec_cache = {}


def spec_of(version):
    """The typed spec of a version, parsed once per process (versions never change)."""
    return _cached_spec(version.pk, version.spec_hash, lambda: version.spec)


def _cached_spec(version_id, spec_hash, load):
    key = (version_id, spec_hash)
    spec = _spec_cache.get(key)
    if spec is None:
        if len(_spec_cache) > 256:
            _spec_cache.clear()
        spec = _spec_cache[key] = WorkflowSpec.model_validate(load())
    return spec


@functools.lru_cache(maxsize=1024)
def _version_about(version_id):
    """(number, spec_hash) of a version: versions never change, so each process asks once."""
    return WorkflowVersion.objects.values_list("number", "spec_hash").get(pk=version_id)


def execute(run_id):
    """Claim the run and drive it as far as it can go. Safe to call any number of times."""
    run = Run.claim(run_id, worker_id(), settings.RUN_LEASE_TTL_S)
    if run is None:
        return None
    try:
        return _Engine(run).drive()
    except LeaseLost:
        log.warning("run %s: lease lost, stopping", run_id)
        return "lease_lost"


def _preview(value):
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= OUTPUT_EVENT_LIMIT:
        return {"output": value}
    return {"output_preview": text[:OUTPUT_EVENT_LIMIT], "truncated": True}


class _Engine:
    def __init__(self, run):
        self.run = run
        number, spec_hash = _version_about(run.version_id)
        # The workflow's slug may change; claim() read it with the run.
        slug = getattr(run, "workflow_slug", None) or run.workflow.slug
        self.about = {"workflow": slug, "version": number, "spec_hash": spec_hash}
        self.spec = _cached_spec(run.version_id, spec_hash,
                                 lambda: WorkflowVersion.objects.values_list("spec", flat=True).get(pk=run.version_id))
        self.settings = self.spec.settings
        self.inbox = queue.Queue()
        self.state = {}  # node id -> Step.Status of the node's own step
        self.outputs = {}  # node id -> output, succeeded nodes only
        self.steps = {}  # (node id, map index) -> Step
        self.in_flight = 0
        # Never ran before (its only event is run.queued): no steps or artifacts to look for.
        self.fresh = run.status == Run.Status.QUEUED and run.last_seq == 1
        self.steps_taken = 0  # steps that started at least once, for settings.max_steps
        self.reserved = Decimal("0")  # cost estimates of provider calls in flight
        self.futures = []  # of the node bodies submitted to the pool
        self.closed = False  # the engine thread no longer answers call()
        # The transaction of the current loop turn (see _turn) and what waits for its commit.
        self._stack = None
        self._writer = None
        self._deferred = []  # (future, result) answered after commit
        self._to_submit = []  # (node, step) started this turn, submitted after commit
        self.failure = None
        self.stop_reason = None  # "cancel", "shutdown", "lease", "timeout"
        self.stop = threading.Event()  # tells running node bodies and providers to stop
        self.thread = threading.current_thread()
        self.is_test = run.mode == Run.Mode.TEST
        self.deadline = None
        self.incoming = {node.id: self.spec.incoming(node.id) for node in self.spec.nodes}
        self.successors = {node.id: self.spec.successors(node.id) for node in self.spec.nodes}

    # The engine thread --------------------------------------------------------------

    def drive(self):
        self._load_steps()
        heartbeat = _Heartbeat(self)
        heartbeat.start()
        pool = ThreadPoolExecutor(max_workers=self.settings.parallelism, thread_name_prefix=f"run-{str(self.run.pk)[:8]}")
        try:
            return self._loop(pool)
        finally:
            self.stop.set()
            heartbeat.stop()
            self._drain(pool)

    def _begin(self):
        with self._tx() as w:
            if w.run.status == Run.Status.QUEUED:
                w.set(status=Run.Status.RUNNING, started_at=w.run.started_at or timezone.now())
                w.emit("run.started", {"worker": self.run.lease_owner, "mode": w.run.mode})
            else:
                w.emit("log", {"message": f"resumed by {self.run.lease_owner}"})
            self.run.started_at = w.run.started_at
        timeout = self.settings.timeout_s
        if self.is_test:
            timeout = min(timeout, settings.TEST_MODE_MAX_SECONDS)
        # The run's time limit counts the time workers drive it, not its waits for people.
        self.drive_started = time.time()
        self.deadline = self.drive_started + timeout - self.run.active_s

    def _drain(self, pool):
        """Wait for the node bodies to return. When the loop ended early (lease lost, an
        unexpected error), they may be blocked in `call()` waiting for this thread: answer
        those with Interrupted rather than leaving them (and this thread) waiting forever."""
        self.closed = True
        pool.shutdown(wait=False)
        while any(not future.done() for future in self.futures):
            try:
                message = self.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            if message[0] == "call":
                message[3].set_exception(Interrupted("the run stopped"))
        for message in _drained(self.inbox):
            if message[0] == "call":
                message[3].set_exception(Interrupted("the run stopped"))

    def _loop(self, pool):
        """Each turn handles the messages that arrived, starts what became ready and, when
        nothing is left to do, ends the run, all in one transaction; node bodies started
        in a turn are submitted only after it commits."""
        messages = []
        first = True
        while True:
            with self._turn():
                if first:
                    self._begin()
                    first = False
                for message in messages:
                    self._handle(message)
                if shutdown.is_set():
                    self._halt("shutdown")
                self._check_time()
                if self.failure is None and not self.stop.is_set():
                    self._schedule()
                if not self.in_flight and not self._to_submit and self._finished():
                    return self._finish()
            if self.run.cancel_requested_at is not None:
                self._halt("cancel")  # seen as this turn committed: what it started must not run
            if self._runs_alone():
                # The only thing that can happen next is this node's result: run it on this
                # thread (outside any transaction), sparing two thread hand-offs per step.
                node, step = self._to_submit.pop()
                self.inbox.put(("done", node, step, *self._attempts(node, step, {})))
            for node, step in self._to_submit:
                if self.stop.is_set():
                    self.in_flight -= 1
                    self.state.pop(node.id, None)
                else:
                    self.futures.append(pool.submit(self._run_node, node, step))
            self._to_submit = []
            messages = self._next_messages(block=self.in_flight > 0)

    def _runs_alone(self):
        """One node started and nothing else runs or waits for a decision, so no other
        message can need this thread meanwhile; a node running nested nodes (a map) calls
        back into this thread and never runs here."""
        if len(self._to_submit) != 1 or self.in_flight != 1 or self.stop.is_set() or self._waiting():
            return False
        node = self._to_submit[0][0]
        return not any(True for _ in node.inline_nodes())

    def _finished(self):
        """Nothing runs: is the run over (or waiting), rather than having decisions to take in?"""
        if self.stop_reason or self.failure or not self._waiting():
            return True
        return not self._collect_decisions()

    def _next_messages(self, block):
        """Wait for the next message (up to 0.5 s) when nodes run, then take every one queued."""
        try:
            messages = [self.inbox.get(timeout=0.5 if block else 0)]
        except queue.Empty:
            return []
        messages.extend(_drained(self.inbox))
        return messages

    @contextmanager
    def _turn(self):
        self._stack = ExitStack()
        self._deferred = []
        try:
            with self._stack:
                yield
        except BaseException:
            for future, _ in self._deferred:
                future.set_exception(Interrupted("the run stopped"))
            raise
        finally:
            self._stack = self._writer = None
            deferred, self._deferred = self._deferred, []
        for future, result in deferred:
            future.set_result(result)

    @contextmanager
    def _tx(self):
        """The run's write transaction: the current turn's when there is one (opened on
        first use, so turns that write nothing lock nothing), else a transaction of its own."""
        if self._stack is None:
            with self.run.writing() as writer:
                yield writer
            return
        if self._writer is None:
            self._writer = self._stack.enter_context(self.run.writing(durable=False))
        yield self._writer

    def cancel_requested(self):
        if Run.objects.filter(pk=self.run.pk, cancel_requested_at__isnull=False).exists():
            self._halt("cancel")
        return self.stop_reason == "cancel"

    def _check_time(self):
        if self.stop_reason is None and time.time() > self.deadline:
            self._halt("timeout")

    def _halt(self, reason):
        """Stop starting steps and interrupt running ones; callable from any thread."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop.set()
        self.inbox.put(("wake",))

    def _handle(self, message):
        kind = message[0]
        if kind == "call":
            _, fn, args, future = message
            try:
                result = fn(*args)
            except BaseException as exc:  # handed back to the calling thread
                future.set_exception(exc)
            else:
                # Answered once the turn commits, so the caller sees its writes durable.
                self._deferred.append((future, result))
        elif kind == "done":
            self.in_flight -= 1
            self._node_done(*message[1:])
        elif kind == "decided":
            self._collect_decisions()

    def call(self, fn, *args):
        """Run `fn` on the engine thread (where the database writes happen) and return its result."""
        if threading.current_thread() is self.thread:
            return fn(*args)
        if self.closed:
            raise Interrupted("the run stopped")
        future = Future()
        self.inbox.put(("call", fn, args, future))
        return future.result()

    # Steps on disk ------------------------------------------------------------------------

    def _load_steps(self):
        # A run that never started a step has none to load (skips happen only after a start).
        existing = () if self.fresh else Step.objects.filter(run=self.run)
        for step in existing:
            if step.attempt:
                self.steps_taken += 1
            self.steps[(step.node_id, step.map_index)] = step
            if step.map_index is not None:
                continue
            if step.status == Step.Status.SUCCEEDED:
                self.state[step.node_id] = Step.Status.SUCCEEDED
                self.outputs[step.node_id] = step.output
            elif step.status in (Step.Status.SKIPPED, Step.Status.WAITING):
                self.state[step.node_id] = step.status
            # running (the worker died), pending, failed (a retry) and cancelled run again
        self.unstarted = {node.id: node for node in self.spec.nodes if node.id not in self.state}
        self.order = [node.id for node in self.spec.nodes]
        self.candidates = set(self.unstarted)

    def _waiting(self):
        return [node_id for node_id, status in self.state.items() if status == Step.Status.WAITING]

    def _collect_decisions(self):
        """Take in human decisions recorded since the steps started waiting."""
        waiting = self._waiting()
        if not waiting:
            return False
        decided = Step.objects.filter(run=self.run, node_id__in=waiting, map_index__isnull=True,
                                      status=Step.Status.SUCCEEDED)
        found = False
        for step in decided:
            self.steps[(step.node_id, None)] = step
            self.state[step.node_id] = Step.Status.SUCCEEDED
            self.candidates.update(self.successors[step.node_id])
            self.outputs[step.node_id] = step.output
            found = True
        return self._expire_waits() or found

    def _expire_waits(self):
        """Fail the human steps whose `timeout_s` passed without a decision."""
        now = timezone.now()
        expired = False
        for node_id in self._waiting():
            node, step = self.spec.node(node_id), self.steps.get((node_id, None))
            left = step.wait_left_s(node.timeout_s, now) if step is not None else None
            if left is None or left > 0:
                continue
            message = f"no decision within {node.timeout_s:g} s"
            # Deciding writes the step under the run's lock: only a step still waiting expires.
            if not Step.objects.filter(pk=step.pk, status=Step.Status.WAITING).update(
                    status=Step.Status.FAILED, error=message, finished_at=now):
                continue
            self._node_done(node, step, "failed", message, None)
            expired = True
        return expired

    def _wake_after(self):
        """Seconds until the first waiting human step times out, or None."""
        now = timezone.now()
        lefts = [step.wait_left_s(self.spec.node(node_id).timeout_s, now) for node_id in self._waiting()
                 if (step := self.steps.get((node_id, None))) is not None]
        lefts = [left for left in lefts if left is not None]
        return max(0.0, min(lefts)) if lefts else None

    def _start_step(self, node_id, node_type, map_index=None):
        """Record that a step starts (attempt + 1); returns the Step, or None when a cancel
        was recorded meanwhile (seen under the run's row lock, so no step starts after it)."""
        step = self.steps.get((node_id, map_index))
        now = timezone.now()
        with self._tx() as w:
            if w.run.cancel_requested_at is not None:
                self._halt("cancel")
                return None
            if step is None:
                step = Step(organization_id=self.run.organization_id, run=self.run, node_id=node_id,
                            node_type=node_type, map_index=map_index,
                            idempotency_key=Step.make_idempotency_key(self.run.pk, node_id, map_index))
            step.status = Step.Status.RUNNING
            if not step.attempt:
                self.steps_taken += 1
            step.attempt += 1
            step.started_at, step.finished_at, step.error = now, None, ""
            w.save_step(step)
            w.set(step_count=w.run.step_count + 1)
            w.emit("step.started", step.summary(), step=step)
        self.steps[(node_id, map_index)] = step
        return step

    def _end_step(self, step, status, *, output=None, error="", event=None, usage=None, record=None):
        with self._tx() as w:
            step.status = status
            step.finished_at = timezone.now()
            step.error = error
            if status == Step.Status.SUCCEEDED:
                step.output = output
            if record is not None:
                record.apply(step)
            w.save_step(step)
            w.add_usage(step)
            data = step.summary()
            if status == Step.Status.SUCCEEDED:
                data.update(_preview(output))
            if error:
                data["error"] = error
            w.emit(event or f"step.{status}", data, step=step)
        return step

    def _skip(self, node):
        step = self.steps.get((node.id, None)) or Step(
            organization_id=self.run.organization_id, run=self.run, node_id=node.id, node_type=node.type,
            idempotency_key=Step.make_idempotency_key(self.run.pk, node.id, None))
        with self._tx() as w:
            step.status = Step.Status.SKIPPED
            step.finished_at = timezone.now()
            w.save_step(step)
            w.emit("step.skipped", step.summary(), step=step)
        self.steps[(node.id, None)] = step
        self.state[node.id] = Step.Status.SKIPPED
        self.candidates.update(self.successors[node.id])

    # Scheduling ------------------------------------------------------------------------

    def _context(self, extra=None):
        ctx = {
            "inputs": self.run.inputs,
            "nodes": {node_id: {"output": output} for node_id, output in self.outputs.items()},
            "run": {"id": str(self.run.pk), "mode": self.run.mode, "trigger": self.run.trigger},
        }
        if extra:
            ctx.update(extra)
        return ctx

    def _edge_live(self, edge):
        if self.state.get(edge.from_) != Step.Status.SUCCEEDED:
            return False
        if edge.when is None:
            return True
        label = f"edges[{edge.from_}->{edge.to}].when"
        return bool(templating.evaluate(edge.when, self._context(), label))

    def _schedule(self):
        """Start every ready node, skipping those whose incoming edges are all dead."""
        decided = (Step.Status.SUCCEEDED, Step.Status.SKIPPED, Step.Status.FAILED)
        progressed = True
        while progressed and self.failure is None:
            progressed = False
            # Only nodes whose predecessors changed since the last look can have become ready.
            candidates = [self.unstarted[n] for n in self.order if n in self.candidates and n in self.unstarted]
            self.candidates.clear()
            for index, node in enumerate(candidates):
                if self.in_flight >= self.settings.parallelism:
                    self.candidates.update(n.id for n in candidates[index:])
                    return
                incoming = self.incoming[node.id]
                if any(self.state.get(e.from_) not in decided for e in incoming):
                    continue
                try:
                    live = [e for e in incoming if self._edge_live(e)]
                except templating.TemplateError as exc:
                    self.failure = f"{exc}"
                    return
                if incoming and not live:
                    self._skip(node)
                    del self.unstarted[node.id]
                    progressed = True
                    continue
                if not self._within_limits(node):
                    return
                step = self._start_step(node.id, node.type)
                if step is None:
                    return
                del self.unstarted[node.id]
                progressed = True
                if node.runs_instantly():
                    # Computation only: run it here, within this turn's transaction.
                    self._node_done(node, step, *self._attempts(node, step, {}))
                    continue
                self.state[node.id] = Step.Status.RUNNING
                self.in_flight += 1
                self._to_submit.append((node, step))

    def _within_limits(self, node):
        max_steps = self.settings.max_steps
        if self.steps_taken >= max_steps:
            self.failure = f"the run reached its limit of {max_steps} steps before node '{node.id}'"
            return False
        cap = self.max_cost()
        if cap is not None and self.cost() >= cap:
            self.failure = f"the run reached its cost limit of ${cap} before node '{node.id}'"
            return False
        return True

    def cost(self):
        return sum((s.cost_usd for s in self.steps.values()), Decimal("0"))

    def admit_call(self, source, estimate):
        """On the engine thread, before a provider call: raise Interrupted after a cancel,
        StepFailed when the call could take the run over its token or cost limit. The
        estimate of an admitted call is reserved until `settle_call`, so calls running in
        parallel cannot overshoot the limit together."""
        if self.cancel_requested() or self.stop.is_set():
            raise Interrupted()
        cap_tokens = self.max_tokens()
        if cap_tokens is not None and self.tokens() >= cap_tokens:
            raise StepFailed(f"the run reached its token limit ({cap_tokens})")
        cap = self.max_cost()
        if estimate is not None and cap is not None:
            spent = self.cost() + self.reserved
            if spent + estimate > cap:
                raise StepFailed(f"calling {source} (about ${estimate:.4f}, with ${spent:.4f} spent or reserved) "
                                 f"would exceed the run's cost limit of ${cap}")
            self.reserved += estimate

    def settle_call(self, estimate):
        self.reserved -= estimate

    def tokens(self):
        return sum(s.input_tokens + s.output_tokens for s in self.steps.values())

    def max_cost(self):
        cap = self.settings.max_cost_usd
        return Decimal(str(cap)) if cap is not None else None

    def max_tokens(self):
        caps = [c for c in (self.settings.max_tokens, settings.TEST_MODE_MAX_TOKENS if self.is_test else None) if c]
        return min(caps) if caps else None

    def _node_done(self, node, step, outcome, value, record):
        if outcome == "succeeded":
            self._end_step(step, Step.Status.SUCCEEDED, output=value, record=record)
            self.state[node.id] = Step.Status.SUCCEEDED
            self.candidates.update(self.successors[node.id])
            self.outputs[node.id] = value
        elif outcome == "waiting":
            self._end_waiting(step, value, record)
            self.state[node.id] = Step.Status.WAITING
        elif outcome == "interrupted":
            # Cancel, shutdown or timeout: the step is not a success and not a failure. It
            # stays running here; the end of the run marks it cancelled, or the next worker
            # runs it again after a shutdown.
            self.state.pop(node.id, None)
        else:
            self._end_step(step, Step.Status.FAILED, error=value, record=record)
            self.state[node.id] = Step.Status.FAILED
            self.candidates.update(self.successors[node.id])
            self.failure = self.failure or f"node '{node.id}' failed: {value}"
            self.stop.set()  # running siblings stop their provider calls

    def _end_waiting(self, step, prompt, record):
        with self._tx() as w:
            step.status = Step.Status.WAITING
            if record is not None:
                record.apply(step)
            w.save_step(step)
            w.emit("step.waiting", {**step.summary(), "prompt": prompt}, step=step)

    # Node bodies, on pool threads ------------------------------------------------------

    def _run_node(self, node, step):
        try:
            outcome, value, record = self._attempts(node, step, {})
            self.inbox.put(("done", node, step, outcome, value, record))
        finally:
            connection.close()

    def _attempts(self, node, step, scope):
        """Execute `node` with its retry policy; returns (outcome, value, StepRecord)."""
        policy = node.retry
        attempts = policy.max_attempts if policy else 1
        tries = 0
        while True:
            tries += 1
            ctx = _Context(self, node, step, scope)
            try:
                if self.stop.is_set():
                    raise Interrupted()
                return "succeeded", node.execute(ctx), ctx.record
            except WaitForHuman as wait:
                return "waiting", wait.prompt, ctx.record
            except Interrupted:
                if self.stop.is_set() or not ctx.timed_out():
                    return "interrupted", "interrupted", ctx.record
                # The node's own timeout interrupted the call: a failure, retried by policy.
                retryable, message, retry_after = True, ctx.timeout_message(), None
            except (StepFailed, ProviderError) as exc:
                retryable, message, retry_after = exc.retryable, str(exc), getattr(exc, "retry_after", None)
                if isinstance(exc, ProviderError) and ctx.timed_out():
                    message = ctx.timeout_message()
            except templating.TemplateError as exc:
                retryable, message, retry_after = False, str(exc), None
            except Exception as exc:
                log.exception("run %s node %s crashed", self.run.pk, node.id)
                retryable, message, retry_after = False, f"internal error: {exc.__class__.__name__}: {exc}", None
            if not retryable or tries >= attempts or self.stop.is_set():
                return "failed", message, ctx.record
            delay = min(policy.max_backoff_s, policy.backoff_s * 2 ** (tries - 1))
            if policy.jitter:
                delay = random.uniform(delay / 2, delay)
            delay = max(delay, retry_after or 0)
            try:
                self.call(self._retrying, step, message, delay)
                if self.stop.wait(delay):
                    return "interrupted", "interrupted", ctx.record
                self.call(self._next_attempt, step)
            except Interrupted:
                return "interrupted", "interrupted", ctx.record

    def store_artifact(self, name, content_type, data):
        with self._tx() as w:
            artifacts.store(self.run, name, content_type, data)
            w.emit("log", {"message": f"saved artifact {name}", "artifacts": [name]})

    def log_step(self, step, message, data=None):
        """A `log` event about a step (queue waits, provider retries, fallbacks)."""
        with self._tx() as w:
            w.emit("log", {"step": step.pk, "node": step.node_id, "map_index": step.map_index,
                           "message": message, **(data or {})})

    def _retrying(self, step, message, delay):
        with self._tx() as w:
            w.emit("step.retrying", {**step.summary(), "error": message, "delay_s": round(delay, 3)})

    def _next_attempt(self, step):
        with self._tx() as w:
            if w.run.cancel_requested_at is not None:
                self._halt("cancel")
                raise Interrupted()
            step.attempt += 1
            step.save(update_fields=["attempt"])
            w.emit("step.started", step.summary())

    def run_items(self, map_node, inline, items, max_concurrency):
        """The map node's items, each its own step (map_index), `max_concurrency` at a time."""
        results = [None] * len(items)
        errors = []

        def one(index):
            existing = self.steps.get((map_node.id, index))
            if existing is not None and existing.status == Step.Status.SUCCEEDED:
                results[index] = existing.output
                return
            if errors or self.stop.is_set():
                return
            step = self.call(self._start_step, map_node.id, inline.type, index)
            if step is None:
                errors.append(Interrupted())
                return
            try:
                outcome, value, record = self._attempts(inline, step, {"item": items[index], "index": index})
            finally:
                connection.close()
            if outcome == "succeeded":
                self.call(self._end_item, step, Step.Status.SUCCEEDED, value, "", record)
                results[index] = value
            elif outcome == "interrupted":
                errors.append(Interrupted())
            else:
                self.call(self._end_item, step, Step.Status.FAILED, None, value, record)
                errors.append(StepFailed(f"item {index} failed: {value}"))

        with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix=f"map-{map_node.id}") as pool:
            list(pool.map(one, range(len(items))))
        if errors:
            raise next((e for e in errors if isinstance(e, StepFailed)), errors[0])
        return results

    def _end_item(self, step, status, output, error, record):
        self._end_step(step, status, output=output, error=error, record=record)

    # The end ----------------------------------------------------------------------------

    def _finish(self):
        reason = self.stop_reason
        if reason == "lease":
            return "lease_lost"
        if reason == "shutdown" and self.failure is None:
            self._hand_back()
            return "handed_back"
        if reason == "cancel":
            return self._end_run(Run.Status.CANCELLED, error="Cancelled.")
        if reason == "timeout":
            return self._end_run(Run.Status.FAILED, error=f"The run timed out after {self.settings.timeout_s:g} s.")
        if self.failure is not None:
            return self._end_run(Run.Status.FAILED, error=self.failure)
        if self._waiting():
            return self._wait()
        try:
            outputs = self._render_outputs()
        except templating.TemplateError as exc:
            return self._end_run(Run.Status.FAILED, error=f"outputs: {exc}")
        return self._end_run(Run.Status.SUCCEEDED, outputs=outputs)

    def _render_outputs(self):
        if self.spec.outputs:
            ctx = self._context()
            return {name: templating.render(src, ctx, f"outputs.{name}") for name, src in self.spec.outputs.items()}
        return {node.id: self.outputs[node.id] for node in self.spec.nodes
                if node.type == "output" and node.id in self.outputs}

    def _end_run(self, status, *, outputs=None, error=""):
        with self._tx() as w:
            w.make_durable()
            if w.run.cancel_requested_at and status == Run.Status.SUCCEEDED:
                status, error = Run.Status.CANCELLED, "Cancelled."
            w.set(status=status, error=error, outputs=outputs or {}, finished_at=timezone.now(),
                  lease_owner="", lease_expires_at=None, active_s=self._active_s())
            # Steps still open end with the run; its terminal event lists them.
            open_steps = [step for step in self.steps.values()
                          if step.status in (Step.Status.RUNNING, Step.Status.PENDING, Step.Status.WAITING)]
            for step in open_steps:
                step.status, step.finished_at = Step.Status.CANCELLED, timezone.now()
                w.save_step(step)
            w.flush_steps()  # the trace and the terminal event name steps by id
            cancelled = [step.summary() for step in open_steps]
            try:
                with transaction.atomic():
                    files = artifacts.prepare(self.run, self.about, self.steps.values(), outputs or {})
                    artifacts.save(self.run, files, w, replace=not self.fresh)
            except Exception as exc:  # files are a by-product: the run still ends
                log.exception("run %s: artifacts not saved", self.run.pk)
                w.emit("log", {"message": f"artifacts could not be saved: {exc.__class__.__name__}"})
            w.emit(f"run.{status}", {"status": status, "error": error, "outputs": _preview(outputs or {}),
                                     "input_tokens": w.run.input_tokens, "output_tokens": w.run.output_tokens,
                                     "cost_usd": str(w.run.cost_usd), "steps_cancelled": cancelled})
        return status

    def _active_s(self):
        return self.run.active_s + (time.time() - self.drive_started)

    def _wait(self):
        from .tasks import enqueue_run, wake_run_at

        waiting = self._waiting()
        with self._tx() as w:
            w.make_durable()
            # A decision that came in since the last look would otherwise wait forever:
            # deciding locks this row too, so it lands either before this check or after
            # the run is marked waiting (and then re-enqueues the run itself).
            decided = Step.objects.filter(run=self.run, node_id__in=waiting, map_index__isnull=True,
                                          status=Step.Status.SUCCEEDED).exists()
            w.set(lease_owner="", lease_expires_at=None)
            if decided:
                enqueue_run(self.run.pk)
                return Run.Status.RUNNING
            w.set(status=Run.Status.WAITING, active_s=self._active_s())
            w.emit("run.waiting", {"waiting_for": waiting})
            wake_after = self._wake_after()
            if wake_after is not None:
                wake_run_at(self.run.pk, wake_after)
        return Run.Status.WAITING

    def _hand_back(self):
        from .tasks import enqueue_run

        with self._tx() as w:
            w.make_durable()
            w.set(lease_owner="", lease_expires_at=None, active_s=self._active_s())
            w.emit("log", {"message": "worker shutting down; run handed back"})
            enqueue_run(self.run.pk)


class StepRecord:
    """What a node body reports about its step besides the output (kept until saved)."""

    def __init__(self):
        self.input = None
        self.input_tokens = self.output_tokens = 0
        self.tokens_estimated = False
        self.cost = Decimal("0")
        self.source = self.provider = self.model = ""
        self.queue_wait_ms = 0

    def apply(self, step):
        if self.input is not None:
            step.input = self.input
        step.input_tokens, step.output_tokens = self.input_tokens, self.output_tokens
        step.tokens_estimated = self.tokens_estimated
        step.cost_usd = self.cost
        step.source, step.provider, step.model = self.source, self.provider, self.model
        step.queue_wait_ms = self.queue_wait_ms


class _Context(NodeContext):
    def __init__(self, engine, node, step, scope):
        self.engine = engine
        self.node = node
        self.node_id = step.node_id
        self.step = step
        self.scope = scope
        self.spec = engine.spec
        self.inputs = engine.run.inputs
        self.record = StepRecord()
        self.started = time.monotonic()

    def _label(self, field):
        suffix = f"[{self.step.map_index}]" if self.step.map_index is not None else ""
        return f"nodes.{self.step.node_id}{suffix}.{field}"

    def render(self, source, field):
        return templating.render(source, self.engine._context(self.scope), self._label(field))

    def evaluate(self, expression, field):
        return templating.evaluate(expression, self.engine._context(self.scope), self._label(field))

    def record_input(self, data):
        self.record.input = data

    def save_artifact(self, name, content_type, data):
        try:
            self.engine.call(self.engine.store_artifact, name, content_type, data)
        except ValueError as exc:
            raise StepFailed(str(exc))

    def predecessors(self):
        return self.spec.predecessors(self.node.id)

    def outputs_of(self, node_ids):
        return {node_id: self.engine.outputs[node_id] for node_id in node_ids if node_id in self.engine.outputs}

    def decision(self):
        return None  # decisions are recorded on the step by Run.decide(); see _collect_decisions

    def map(self, node, items, max_concurrency):
        return self.engine.run_items(self.node, node, items, max_concurrency)

    def timed_out(self):
        timeout = self.node.timeout_s
        return timeout is not None and time.monotonic() - self.started >= timeout

    def timeout_message(self):
        return f"node '{self.node_id}' timed out after {self.node.timeout_s:g} s"

    def _should_stop(self):
        engine = self.engine
        if engine.deadline is not None and time.time() > engine.deadline:
            engine._halt("timeout")  # the run's own time is up
        return engine.stop.is_set() or self.timed_out()

    def call_llm(self, source, *, prompt, system="", temperature=None, max_tokens=None, json_schema=None,
                 stream=False):
        engine = self.engine
        config = self.spec.sources[source]
        request = ChatRequest(
            model=config.model, prompt=prompt, system=system, temperature=temperature, max_tokens=max_tokens,
            json_schema=json_schema, stream=stream, idempotency_key=self.step.idempotency_key,
            timeout_s=self.node.timeout_s,
        )
        on_delta = None
        if stream:
            run_id, step_id, node_id = engine.run.pk, self.step.pk, self.step.node_id

            def on_delta(text):
                events.publish_delta(run_id, step_id, node_id, text)

        return self._through_sources(source, config, prompt + system, max_tokens or config.options.get("max_tokens"),
                                     lambda: calls.complete(
                                         engine.run.organization_id, self.spec.sources, self.spec.queues, source,
                                         request, queue=self.node.queue, lane=self.node.lane, on_delta=on_delta,
                                         **self._call_hooks()))

    def generate_image(self, source, *, prompt, size=None):
        engine = self.engine
        config = self.spec.sources[source]
        return self._through_sources(source, config, prompt, None, lambda: calls.generate_image(
            engine.run.organization_id, self.spec.sources, self.spec.queues, source, prompt, size=size,
            queue=self.node.queue, lane=self.node.lane, timeout_s=self.node.timeout_s, **self._call_hooks()))

    def _call_hooks(self):
        return {"should_stop": self._should_stop, "on_queue_wait": self._queue_wait, "on_retry": self._provider_retry}

    def _through_sources(self, source, config, prompt, max_tokens, call):
        """Admit the call against the run's limits, make it, and record who served it."""
        engine = self.engine
        estimate = None
        if engine.max_cost() is not None:
            estimate = pricing.estimate(config.provider, config.model, config.options, prompt, max_tokens)
        # Limits are checked on the engine thread, which owns the tally of tokens and cost.
        # A cancel recorded before the step started was seen under the run's row lock when
        # it started; one recorded since has set `stop` (heartbeat), checked here.
        if estimate is not None or engine.max_tokens() is not None:
            engine.call(engine.admit_call, source, estimate)
        elif engine.stop.is_set():
            raise Interrupted()
        try:
            served = call()
        finally:
            if estimate is not None and not engine.closed:
                engine.call(engine.settle_call, estimate)
        result = served.result
        record = self.record
        record.source, record.provider, record.model = served.source, served.provider, served.model
        record.queue_wait_ms += int(served.queue_wait_s * 1000)
        record.input_tokens += result.usage.input_tokens
        record.output_tokens += result.usage.output_tokens
        record.tokens_estimated = record.tokens_estimated or result.usage.estimated
        record.cost += pricing.cost(served.provider, served.model, served.options, result.usage)
        if served.failures:
            engine.call(engine.log_step, self.step, f"served by {served.source} after: " + "; ".join(served.failures))
        return result

    def _queue_wait(self, queue_name, seconds):
        # Called about once a second while waiting; the page shows the latest.
        if int(seconds) in (1, 5) or int(seconds) % 15 == 0:
            self.engine.call(self.engine.log_step, self.step, f"waiting for queue {queue_name} ({seconds:.0f} s)",
                             {"queue": queue_name, "waited_s": round(seconds, 1)})

    def _provider_retry(self, source, error, delay):
        self.engine.call(self.engine.log_step, self.step, f"{source}: {error}; trying again in {delay:.1f} s")


class _Heartbeat(threading.Thread):
    """Renews the lease and watches for cancel requests, decisions and shutdown."""

    def __init__(self, engine):
        super().__init__(name=f"heartbeat-{str(engine.run.pk)[:8]}", daemon=True)
        self.engine = engine
        self.done = threading.Event()

    def stop(self):
        self.done.set()
        self.join()

    def run(self):
        engine = self.engine
        ttl = settings.RUN_LEASE_TTL_S
        interval = min(ttl / 3, settings.RUN_POLL_S)
        last_renew = time.monotonic()
        try:
            while not self.done.wait(interval):
                if shutdown.is_set():
                    engine._halt("shutdown")
                if engine.deadline is not None and time.time() > engine.deadline:
                    engine._halt("timeout")  # also while a node runs on the engine thread
                try:
                    if time.monotonic() - last_renew >= ttl / 3:
                        engine.run.renew(ttl)
                        last_renew = time.monotonic()
                    if Run.objects.filter(pk=engine.run.pk, cancel_requested_at__isnull=False).exists():
                        engine._halt("cancel")
                    # The engine thread looks for decisions when it has waiting steps.
                    engine.inbox.put(("decided",))
                except LeaseLost:
                    engine._halt("lease")
                    return
                except Exception:
                    log.warning("heartbeat of run %s failed", engine.run.pk, exc_info=True)
        finally:
            connection.close()


def _drained(inbox):
    while True:
        try:
            yield inbox.get_nowait()
        except queue.Empty:
            return
