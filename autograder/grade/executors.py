"""Where submissions are graded: in this process, in N local worker processes, or on a Ray cluster.

Every executor takes the same :class:`GraderSpec` and yields the same
:class:`~autograder.grade.results.SubmissionResult` objects, in completion
order. Results always come back to the caller, which is the gradebook's one
writer. Each worker process holds one :class:`~autograder.grade.runner.Grader`
(reference, hidden tests, fixtures, warm worker) for the whole batch. On a CPU
the local workers are forked from one template that built it
(:class:`ForkedExecutor`); on GPUs each starts its own (:class:`ProcessExecutor`).

Only trusted data moves between the caller and its workers (the bundle,
submission bytes, results); student code runs inside each worker's sandbox as
always.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from autograder.build.tree import read_tree, write_tree
from autograder.grade.bundle import load_bundle
from autograder.grade.docker_settings import DockerSettings
from autograder.grade.gpu_slots import GpuSlot
from autograder.grade.results import SubmissionResult
from autograder.grade.sandbox import SandboxUnavailable, make_sandbox
from autograder.grade.limits import Limits
from autograder.grade.warm_boot import WarmBoot

if TYPE_CHECKING:  # the runner needs torch: a batch's parent process never imports it, only its workers
    from autograder.grade.runner import Grader


@dataclass(frozen=True)
class GraderSpec:
    """Everything a worker needs to build its Grader, as plain data."""

    bundle_dir: Path
    profile: str = "lite"
    device: str = "cpu"
    limits: Limits | None = None
    only: tuple[str, ...] | None = None
    sandbox: str = "bwrap"
    submission_timeout_s: float | None = None
    docker: DockerSettings | None = None
    cohort_seed: int | None = None  # varies the hidden tests' random inputs per cohort (see runner.run_seed)
    # True where the caller has just checked, on this machine, that the sandbox starts (make_executor).
    sandbox_checked: bool = False
    # Filled in for remote workers, which may not share this machine's disk.
    bundle_files: dict[str, bytes] = field(default_factory=dict, repr=False)

    def make_grader(self, torch_threads: int | None = None) -> "Grader":
        """This spec's Grader, with its warm worker booting from the start.

        The warm worker (bubblewrap) is started before this process imports torch,
        so its boot and ours (torch, the reference, the hidden tests) overlap.
        ``torch_threads`` caps this process's torch threads before torch does any work.
        """
        bundle_dir = self.bundle_dir
        if self.bundle_files:
            bundle_dir = Path(tempfile.mkdtemp(prefix="autograder-bundle-")) / "bundle"
            write_tree(bundle_dir, self.bundle_files)
        bundle = load_bundle(bundle_dir)  # checks every file against the manifest's hashes, on the worker too
        sandbox = make_sandbox(self.sandbox, probe="none" if self.sandbox_checked else "full")
        boot = None
        if sandbox.kind == "bwrap":
            boot = WarmBoot.for_bundle(bundle, self.limits or bundle.limits, self.profile, self.device, sandbox)
        try:
            with collector_paused():
                import torch

                if torch_threads:
                    torch.set_num_threads(torch_threads)
                from autograder.grade.runner import Grader

                return Grader(
                    bundle, profile=self.profile, device=self.device, limits=self.limits,
                    only=list(self.only) if self.only else None, sandbox=self.sandbox,
                    submission_timeout_s=self.submission_timeout_s, docker=self.docker,
                    cohort_seed=self.cohort_seed, warm_boot=boot, sandbox_probe="none",  # checked just above
                )
        except BaseException:
            if boot is not None:  # Grader closes a boot it took over; this one it may never have seen
                boot.close()
                shutil.rmtree(boot.support.parent, ignore_errors=True)
            raise

    def portable(self) -> "GraderSpec":
        files = {k: v for k, v in read_tree(self.bundle_dir).items() if "__pycache__" not in k}
        return replace(self, bundle_files=files)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic collector off while a grader loads (as in the student-side worker).

    Importing torch, and the reference and hidden tests with what they import, runs
    full collections over and over, each over a larger heap: most of a second.
    Whatever garbage the loading left is collected later, as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _grade_bytes(grader: "Grader", name: str, suffix: str, data: bytes) -> SubmissionResult:
    """Grade a submission sent as bytes, under its own name."""
    with tempfile.TemporaryDirectory(prefix="autograder-submission-") as tmp:
        path = Path(tmp) / f"{name}{suffix}"
        path.write_bytes(data)
        return grader.grade_path(path)


class SerialExecutor:
    """One Grader in this process: the default, and what the others are checked against."""

    def __init__(self, spec: GraderSpec):
        # The whole load with the collector off (the fixtures load models too, and import what they need), and
        # what loading prints kept off the caller's output (see _quiet_stdout).
        with collector_paused(), contextlib.redirect_stdout(io.StringIO()):
            self.grader = spec.make_grader()
            self.grader.warm_up()

    def grade(self, paths: list[Path]) -> Iterator[SubmissionResult]:
        for path in paths:
            yield self.grader.grade_path(path)

    def cancel(self) -> None:
        """Nothing to do: Ctrl-C reached this process, and unwinding stopped the program in flight."""

    def close(self) -> None:
        self.grader.close()


# ---------------------------------------------------------------------- local processes

_worker_grader: "Grader | None" = None
_worker_busy = False


class Abandoned(BaseException):
    """Raised in a worker told to stop mid-submission (the batch was interrupted).

    A BaseException, so that no ``except Exception`` of the grading path takes it for
    the student's failure; unwinding runs the grading's cleanup, which stops the
    submission's program and removes its files.
    """


def _abandon_on_sigterm(signum, frame) -> None:
    if _worker_busy:
        raise Abandoned()
    os._exit(0)  # idle: nothing of a submission to clean up


def _stop_on_sigterm() -> None:
    """A worker process ends its submission in flight cleanly when its executor is cancelled (SIGTERM)."""
    signal.signal(signal.SIGTERM, _abandon_on_sigterm)


# Workers share the machine's cores: one torch thread each, or they fight over them.
ONE_THREAD = 1
# After a cancel, how long the workers get to stop their programs before they are killed.
CANCEL_GRACE_S = 30.0


def _quiet_stdout() -> None:
    """A worker's standard output goes nowhere: the command's progress and summary are the caller's to print,
    and loading models prints lines of its own ("Moving model to device: cpu", once per model). Errors and
    warnings go to standard error, as before; results come back through the executor."""
    sys.stdout.flush()
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def _init_worker(spec: GraderSpec, gpu_slots=None) -> None:
    global _worker_grader
    _quiet_stdout()
    if gpu_slots is not None:
        # This worker's GPU and memory cap, taken before anything touches CUDA; its
        # student processes inherit them (numerics.environment_for).
        os.environ.update(gpu_slots.get_nowait().environment())
    _worker_grader = spec.make_grader(torch_threads=ONE_THREAD)
    _stop_on_sigterm()


def _grade_in_worker(name: str, suffix: str, data: bytes) -> SubmissionResult:
    global _worker_busy
    assert _worker_grader is not None
    _worker_busy = True
    try:
        return _grade_bytes(_worker_grader, name, suffix, data)
    finally:
        _worker_busy = False


class ProcessExecutor:
    """``jobs`` fresh local worker processes, each building its own warm Grader (GPU grading).

    With ``gpu_slots`` (:mod:`.gpu_slots`), one worker per slot: each sees only
    its slot's GPU, capped at its share of that GPU's memory.
    """

    def __init__(self, spec: GraderSpec, jobs: int, gpu_slots: "list[GpuSlot] | None" = None):
        # "spawn": a fresh interpreter per worker, never a fork of a process holding torch threads.
        context = multiprocessing.get_context("spawn")
        slot_queue = None
        if gpu_slots:
            jobs = len(gpu_slots)
            slot_queue = context.Queue()
            for slot in gpu_slots:  # each worker takes one as it starts
                slot_queue.put(slot)
        self.pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(spec, slot_queue),
        )
        self.jobs = jobs

    def grade(self, paths: list[Path]) -> Iterator[SubmissionResult]:
        pending = set()
        queue = list(paths)
        # Keep a bounded number in flight, so an interruption abandons little work.
        while queue or pending:
            while queue and len(pending) < 2 * self.jobs:
                path = queue.pop(0)
                pending.add(self.pool.submit(_grade_in_worker, path.stem, path.suffix, path.read_bytes()))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def cancel(self) -> None:
        """Abandon the submissions in flight (Ctrl-C): each worker stops its program and exits."""
        # The pool has no public way to stop a running task; its processes are ours to signal
        # (taken first: shutdown forgets them).
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class WorkerFailed(RuntimeError):
    """A local grading worker could not start, or stopped mid-batch; the message says which and why."""


class ForkedExecutor:
    """``jobs`` local workers forked from one warmed-up template process (CPU only).

    The template is a fresh interpreter (the caller never imports torch). It loads
    the reference and the hidden tests, computes the fixtures every case shares
    and starts one warm worker meanwhile (``Grader.warm_up``), then forks the
    workers: each inherits all of that instead of paying for it again, and they
    spawn their submissions' programs from the one warm worker, one spawn at a
    time (each program still gets its own namespaces and process cap).

    Each worker grades one submission at a time, sent over its own pipe. A
    process pool cannot do this: its workers start from nothing, or fork the
    caller. On a GPU use :class:`ProcessExecutor`: a process that has touched
    CUDA cannot fork one that uses it.
    """

    def __init__(self, spec: GraderSpec, jobs: int):
        context = multiprocessing.get_context("spawn")
        pipes = [context.Pipe() for _ in range(jobs)]
        self._conns = [ours for ours, _ in pipes]
        self._template = context.Process(target=_template_main, args=(spec, [theirs for _, theirs in pipes]),
                                         name="autograder-template")
        self._template.start()
        for _, theirs in pipes:
            theirs.close()
        self.jobs = jobs
        self._cancelled = False

    def grade(self, paths: list[Path]) -> Iterator[SubmissionResult]:
        from multiprocessing.connection import wait as wait_for

        queue, idle, busy = list(paths), list(self._conns), {}
        while queue or busy:
            while queue and idle:
                conn, path = idle.pop(), queue.pop(0)
                try:
                    conn.send((path.stem, path.suffix, path.read_bytes()))
                except OSError:
                    pass  # the worker is gone: reading its pipe below says why
                busy[conn] = path
            for conn in wait_for(list(busy)):
                path = busy.pop(conn)
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):
                    raise WorkerFailed(
                        f"a grading worker stopped while grading {path.name} (killed, or out of memory?); "
                        "what was graded before is saved: run the same command again to grade the rest"
                    ) from None
                if kind == "failed":
                    raise WorkerFailed(value)
                if kind != "result":
                    raise WorkerFailed(f"a grading worker failed while grading {path.name}:\n{value}")
                idle.append(conn)
                yield value

    def cancel(self) -> None:
        """Abandon the submissions in flight (Ctrl-C): the template tells each worker to stop its program and exit."""
        self._cancelled = True
        if self._template.is_alive():
            self._template.terminate()

    def close(self) -> None:
        # Idle workers see the pipe close and exit; a busy one finishes its submission first (unless cancelled).
        for conn in self._conns:
            conn.close()
        self._template.join(CANCEL_GRACE_S if self._cancelled else None)
        if self._template.is_alive():  # a worker that would not stop: its sandboxes die with it (bwrap)
            self._template.kill()
            self._template.join()


def _template_main(spec: GraderSpec, conns: list) -> None:
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it stops us
    _quiet_stdout()
    # The collector stays off until the workers are forked (see collector_paused): loading the
    # hidden tests' fixtures imports transformer_lens here, on the batch's critical path.
    gc.disable()
    try:
        grader = spec.make_grader(torch_threads=ONE_THREAD)
        grader.warm_up()
        fork = multiprocessing.get_context("fork")
        grader.share_warm_worker(fork.Lock())
    except BaseException as exc:  # noqa: BLE001 - every worker's caller hears why
        # A sandbox that cannot run is the grading machine's problem, and its message names the fix.
        failure = str(exc) if isinstance(exc, SandboxUnavailable) else traceback.format_exc()
        for conn in conns:
            conn.send(("failed", f"the grader could not start:\n{failure}"))
        return
    global _worker_grader
    _worker_grader = grader
    # What the workers inherit stays out of their garbage collectors' reach: a full
    # collection would walk (and copy, page by page) the whole shared heap in each.
    # The one collection here clears what loading left (measured: without it, the
    # workers grade about 1% slower); it usually overlaps the warm worker's last step.
    gc.collect()
    gc.freeze()
    workers = [fork.Process(target=_forked_worker_main, args=(conns, i), name=f"autograder-worker-{i}")
               for i in range(len(conns))]

    def stop_workers(signum, frame) -> None:  # ForkedExecutor.cancel: each worker abandons its submission
        for worker in workers:
            if worker.pid is not None:
                try:
                    os.kill(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, stop_workers)
    for worker in workers:
        worker.start()
    for conn in conns:
        conn.close()
    for worker in workers:
        worker.join()
    grader.close()


def _forked_worker_main(conns: list, index: int) -> None:
    import traceback

    gc.enable()  # off in the template since it started (_template_main)
    _stop_on_sigterm()
    # Only our own pipe stays open here: the caller must see another worker's pipe close when it dies.
    for i, other in enumerate(conns):
        if i != index:
            other.close()
    conn = conns[index]
    while True:
        try:
            name, suffix, data = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("result", _grade_in_worker(name, suffix, data))
        except Abandoned:
            return  # the batch was interrupted; the program in flight is stopped, its files removed
        except Exception:  # noqa: BLE001 - the caller stops the batch and says why
            reply = ("error", traceback.format_exc())
        try:
            conn.send(reply)
        except OSError:  # the caller is gone (interrupted)
            return


# ---------------------------------------------------------------------- Ray


def gpu_fraction(memory_estimate_mb: float, gpu_memory_mb: float) -> float:
    """The share of one GPU a grading task asks Ray for: its memory estimate over the GPU's memory."""
    if gpu_memory_mb <= 0:
        raise ValueError("gpu_memory_mb must be positive")
    return round(min(1.0, max(0.01, memory_estimate_mb / gpu_memory_mb)), 2)


class _GraderActor:
    def __init__(self, spec: GraderSpec):
        self.grader = spec.make_grader(torch_threads=ONE_THREAD)  # each actor asks Ray for one CPU

    def grade(self, name: str, suffix: str, data: bytes) -> SubmissionResult:
        return _grade_bytes(self.grader, name, suffix, data)

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """Grading tasks on a Ray cluster: one actor (warm Grader) per slot, one task per submission.

    ``address=None`` starts a local Ray instance with ``jobs`` CPUs; otherwise it
    connects to an existing cluster (``ray://head:10001`` or ``auto``). On a GPU
    device each actor asks for the share of a GPU its assignment's memory
    estimate needs, so several graders share one GPU.
    """

    def __init__(self, spec: GraderSpec, jobs: int, address: str | None = None, gpu_memory_mb: float = 16384):
        import ray  # optional dependency: pip install "autograder[cluster]"
        from ray.util import ActorPool

        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
        self._ray = ray
        manifest = load_bundle(spec.bundle_dir).manifest
        options: dict = {"num_cpus": 1}
        if spec.device != "cpu":
            options["num_gpus"] = gpu_fraction(float(manifest.get("memory_estimate_mb", 2000)), gpu_memory_mb)
        actor_class = ray.remote(**options)(_GraderActor)
        portable = ray.put(spec.portable())
        self.actors = [actor_class.remote(portable) for _ in range(jobs)]
        self.pool = ActorPool(self.actors)

    def grade(self, paths: list[Path]) -> Iterator[SubmissionResult]:
        items = [(p.stem, p.suffix, p.read_bytes()) for p in paths]
        yield from self.pool.map_unordered(lambda actor, item: actor.grade.remote(*item), items)

    def cancel(self) -> None:
        """Abandon the tasks in flight (Ctrl-C): killing an actor ends its sandboxes with it (bwrap dies with its
        parent); what they were grading is graded again by the next run."""
        self.close()

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []


def make_executor(spec: GraderSpec, executor: str = "local", jobs: int = 1, address: str | None = None,
                  gpu_memory_mb: float = 16384, gpu_slots: "list[GpuSlot] | None" = None):
    if executor == "ray":
        return RayExecutor(spec, jobs, address, gpu_memory_mb)
    if executor != "local":
        raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
    # Refuse here, with the fix named, rather than in every worker. The quick probe (does bubblewrap start
    # Python here?) costs milliseconds, not the second of a torch import on the batch's critical path; the
    # workers' warm worker proves the rest, and a full probe runs if it cannot start (Grader.disable_warm).
    make_sandbox(spec.sandbox, probe="quick")
    spec = replace(spec, sandbox_checked=True)  # the local workers run on this machine: no second probe
    if gpu_slots:
        return ProcessExecutor(spec, len(gpu_slots), gpu_slots)  # even one slot: its worker must own its GPU
    if jobs <= 1:
        return SerialExecutor(spec)
    return ForkedExecutor(spec, jobs) if spec.device == "cpu" else ProcessExecutor(spec, jobs)
