"""One executor for the grids' training runs (chapter 7's experiments): a local process pool, or submitit.

    ex = make_executor("local", jobs=2)                   # a fresh process per run, 2 at a time
    future = ex.submit(train_job, argv, "run.log", 1)     # `python -m qt_helpers <argv>`, in that process
    future.result()                                       # its exit code: 0 ok, 2 user error, 130 interrupted
    ex.stop()                                             # Ctrl-C: pending runs cancelled, running ones stopped

Kinds: `local` (the standard library's `ProcessPoolExecutor`, spawn, one run per process), `submitit-local`
(submitit's `LocalExecutor`, one process per job: what CI tests of a cluster run) and `slurm` (submitit on a
SLURM cluster: one job per run, one task with `threads` CPUs; a preempted or timed-out job is requeued by
submitit and continues from the run's checkpoint with `--resume`, see `TrainJob.checkpoint`).
"""
import contextlib
import os
import shlex
import signal
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

KINDS = ("local", "submitit-local", "slurm")
PROG = ("python", "-m", "qt_helpers")  # the recorded command of every run: what reproduces it on its own


class _Worker:
    """This process's state as a worker, shared by `TrainJob` and the SIGTERM handler."""
    stopped = False  # in a local pool's worker: SIGTERM came (the pool's processes are being stopped)
    running = False  # in a worker: a run is in progress (SIGTERM stops it like Ctrl-C, with its checkpoint kept)


@contextlib.contextmanager
def _output_to(log):
    """Send this process's output to `log`: Python's (sys.stdout, sys.stderr, line by line, so the log shows each
    epoch as it ends) and the file descriptors 1 and 2 beneath them (C libraries', a child process's)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with Path(log).open("a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class TrainJob:
    """`python -m qt_helpers <argv>` run in this process (`qt_helpers.cli.main`), its output appended to `log`
    after a `=== <date> (pid N): <command>` line, with `threads` torch threads: returns the exit code (0 ok,
    2 user error, 130 interrupted, 1 otherwise)."""

    def __call__(self, argv, log, threads=1):
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for anything this run starts; torch is told below
        import torch

        from qt_helpers.cli import main

        torch.set_num_threads(threads)
        log = Path(log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"=== {datetime.now(timezone.utc).isoformat(timespec='seconds')} (pid {os.getpid()}): "
                    f"{shlex.join([*PROG, *argv])}\n")
        old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        with _output_to(log):
            _Worker.running = True
            try:
                rc = main(list(argv), prog=PROG)
            except SystemExit as e:  # argparse's (0 for --help, 2 for a mistake); others (submitit's requeue) go on
                if e.code not in (0, 2):
                    raise
                rc = e.code
            except KeyboardInterrupt:  # before cli.main could say so
                print("interrupted", file=sys.stderr)
                rc = 130
            except Exception:  # a bug in one run: its traceback in its log, the grid goes on
                traceback.print_exc()
                rc = 1
            finally:
                _Worker.running = False
                signal.signal(signal.SIGINT, old_int)
        if _Worker.stopped:  # a local pool's worker stopped by SIGTERM: gone at once, so the pool starts no other run
            os._exit(rc)
        return rc

    def checkpoint(self, argv, log, threads=1):  # the name submitit looks for (hasattr(fn, "checkpoint"))
        """submitit's hook when SLURM preempts or times out the job: requeue the same run, resuming from its
        `--checkpoint` (every finished epoch is saved there) once it exists."""
        import submitit

        argv = list(argv)
        if "--checkpoint" in argv and Path(argv[argv.index("--checkpoint") + 1]).exists() and "--resume" not in argv:
            argv.append("--resume")
        return submitit.helpers.DelayedSubmission(self, argv, log, threads)


train_job = TrainJob()


def _worker_init():
    """In a local pool's worker: die with the grid (SIGTERM when it dies, even by kill -9, on Linux); ignore the
    terminal's Ctrl-C while idle (a run takes it as KeyboardInterrupt); SIGTERM stops a run like Ctrl-C."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: a killed grid may leave its runs behind
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # one run per process: no multiprocessing lock, none left behind at SIGTERM


def _on_sigterm(signum, _frame):
    if _Worker.running and not _Worker.stopped:
        _Worker.stopped = True
        raise KeyboardInterrupt  # cli.main writes the run's "interrupted: ... continue with" line, then it exits
    if not _Worker.running:
        os._exit(128 + signum)


class LocalExecutor:
    """`jobs` runs at a time, each in a fresh process of a standard-library pool (spawn, one task per child)."""

    kind = "local"

    def __init__(self, jobs):
        self.pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                        max_tasks_per_child=1)
        self.futures = []

    def submit(self, fn, *args):
        """A `concurrent.futures.Future` of `fn(*args)` in a worker process."""
        future = self.pool.submit(fn, *args)
        self.futures.append(future)
        return future

    def stop(self):
        """Cancel the runs not started and stop the running ones: SIGTERM, which a run takes like Ctrl-C (its
        log says how to continue it) before its process exits at once; the pool, broken, starts nothing more."""
        for f in self.futures:
            f.cancel()
        processes = list((getattr(self.pool, "_processes", None) or {}).values())  # no public handle before 3.14
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in processes:
            p.join(30)

    def shutdown(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class SubmititFuture:
    """A submitit job with a future's `.result()`, `.done()` and `.cancel()`; `.job` is submitit's."""

    def __init__(self, job):
        self.job = job

    def done(self):
        return self.job.done()

    def result(self):
        return self.job.result()

    def cancel(self):
        with contextlib.suppress(Exception):
            self.job.cancel(check=False)

    def __repr__(self):
        return f"<submitit job {self.job.job_id}: {self.job.paths.stdout}>"


class SubmititExecutor:
    """submitit's executor (local or SLURM), its jobs wrapped as futures; `stop` cancels them."""

    def __init__(self, kind, executor):
        self.kind, self.executor, self.futures = kind, executor, []

    def submit(self, fn, *args):
        future = SubmititFuture(self.executor.submit(fn, *args))
        self.futures.append(future)
        return future

    def stop(self):
        for f in self.futures:
            if not f.job.done():
                f.cancel()

    def shutdown(self):
        pass


def _importable_here():
    """The jobs of submitit import qtbook and qt_helpers from where this process does (sbatch and the local
    executor pass the environment on)."""
    import qt_helpers

    roots = [str(Path(__file__).resolve().parents[1]), str(Path(qt_helpers.__file__).resolve().parents[1])]
    have = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(roots + have))


def check_executor(kind, partition=None):
    """Why `kind` cannot run here, as one line (ValueError), before any work."""
    if kind not in KINDS:
        msg = f"unknown executor {kind!r}; choose one of {', '.join(KINDS)}"
        raise ValueError(msg)
    if kind == "local":
        return
    try:
        import submitit  # noqa: F401
    except ImportError:
        msg = f"--executor {kind} needs submitit: pip install submitit"
        raise ValueError(msg) from None
    if kind == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            msg = ("--executor slurm needs a SLURM cluster (no sbatch on this machine); run the grid "
                   "on a login node, or use --executor local")
            raise ValueError(msg)
        if not partition:
            msg = "--executor slurm needs --slurm-partition (see `sinfo` for your cluster's)"
            raise ValueError(msg)


def make_executor(kind, jobs, folder=None, threads=1, partition=None, time_min=None, mem_gb=None, name="qt-train"):
    """The executor of `kind` (one of KINDS) for `jobs` runs at a time with `threads` CPUs each; submitit keeps
    its jobs' files and logs in `folder`; SLURM's `partition`, `time_min` (minutes per run) and `mem_gb`."""
    check_executor(kind, partition)
    if kind == "local":
        return LocalExecutor(jobs)
    import submitit

    _importable_here()
    timeout = time_min or 24 * 60  # submitit-local stops a job after timeout_min (default: 2 minutes)
    if kind == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=timeout)
    else:
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        ex.update_parameters(name=name, timeout_min=timeout, slurm_partition=partition, nodes=1, tasks_per_node=1,
                             cpus_per_task=threads, **({"mem_gb": mem_gb} if mem_gb else {}))
    return SubmititExecutor(kind, ex)
