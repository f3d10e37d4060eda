"""Cached, resumable stages: each writes into its own folder and is skipped when already done.

A stage's *fingerprint* hashes its settings and the fingerprints of the stages it depends on,
so a changed setting re-runs that stage and everything downstream of it, and nothing else.
A stage is done when its folder holds ``done.json`` with the matching fingerprint; that file
is written last and atomically. ``started.json`` records the fingerprint the folder's partial
work belongs to: a restart with the same fingerprint keeps it (the trainer and the soft labeller
resume from their own checkpoints/chunks), a different fingerprint wipes the folder first.
When a stage's settings drop a key that never changed its work, ``former_settings`` lists what
older versions hashed: a folder done under one of those stays done and keeps its old fingerprint
(so the stages after it stay done as well), and half-finished work under one of them is resumed.

Data parallel (``distill run --nproc N``: every process runs this loop): a stage marked
``parallel`` (fine-tuning, soft labels, student training) runs in every process; any other stage
runs on rank 0 alone while the others wait for its ``done.json`` on the shared file system. Rank 0
alone prepares folders and writes ``done.json``; every rank takes stage results from it.

Test hook: ``DISTILL_KILL_AT="KEY:GLOB"`` makes the process SIGKILL itself as soon as a file
matching GLOB appears in the folder of stage KEY while that stage runs (used by the
interrupted-run tests; never set it otherwise).
"""
import glob
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from distill.core.errors import UserError
from distill.core.io import (ensure_owned_dir, fingerprint, is_owned, read_json, remove_owned,
                             write_json)
from distill.train import distributed

# Bump when a stage's outputs change meaning, so old run folders are recomputed.
STAGE_FORMAT = 1
KILL_ENV = "DISTILL_KILL_AT"


@dataclass
class Stage:
    """One unit of cached work. ``fn(ctx)`` does it and returns a JSON-able result."""

    key: str                                   # folder inside the run dir, e.g. "distill/bow/seed0"
    kind: str                                  # what --force matches, e.g. "distill"
    fn: Callable[["StageContext"], dict]
    settings: dict = field(default_factory=dict)
    deps: List[str] = field(default_factory=list)
    title: str = ""
    parallel: bool = False                     # runs in every process of a data-parallel run
    former_settings: List[dict] = field(default_factory=list)  # what older versions hashed


@dataclass
class StageContext:
    """What a running stage sees: its folder, and its dependencies' folders and results."""

    stage: Stage
    dir: Path
    run_dir: Path
    results: Dict[str, dict]                   # key -> result of every finished stage so far
    seconds: Dict[str, float] = field(default_factory=dict)  # key -> how long each one took

    def dep_dir(self, key: str) -> Path:
        return self.run_dir / key

    def result(self, key: str) -> dict:
        return self.results[key]


@dataclass
class StageRecord:
    key: str
    fingerprint: str
    seconds: float                             # time the stage took when it (last) ran
    skipped: bool
    result: dict


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


class Pipeline:
    """Runs stages in order, skipping those already done with a matching fingerprint."""

    def __init__(self, run_dir, stages: Iterable[Stage], force: Optional[List[str]] = None,
                 log: Callable[[str], None] = None):
        self.run_dir = Path(run_dir)
        self.stages = list(stages)
        self.by_key = {s.key: s for s in self.stages}
        if len(self.by_key) != len(self.stages):
            raise ValueError("duplicate stage keys")
        for s in self.stages:
            for d in s.deps:
                if d not in self.by_key or self.stages.index(self.by_key[d]) >= self.stages.index(s):
                    raise ValueError(f"stage {s.key} depends on {d}, which does not run before it")
        self.forced = self._forced(force or [])
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.fingerprints: Dict[str, str] = {}
        self.records: Dict[str, StageRecord] = {}

    def _forced(self, names: List[str]) -> set:
        kinds = {s.kind for s in self.stages}
        chosen = set()
        for name in names:
            if name == "all":
                return {s.key for s in self.stages}
            hits = [s.key for s in self.stages
                    if name in (s.kind, s.key) or s.key.startswith(name.rstrip("/") + "/")]
            if not hits:
                raise UserError(f"--force {name}: no such stage; stages: {', '.join(sorted(kinds))} "
                                f"(or a stage folder such as {self.stages[-1].key}, or 'all')")
            chosen.update(hits)
        for s in self.stages:  # everything downstream of a forced stage re-runs too
            if any(d in chosen for d in s.deps):
                chosen.add(s.key)
        return chosen

    def fingerprint_of(self, stage: Stage, settings: Optional[dict] = None) -> str:
        upstream = {d: self.fingerprints[d] for d in stage.deps}
        return fingerprint(STAGE_FORMAT, stage.kind,
                           stage.settings if settings is None else settings, upstream)

    def _done_before(self, stage: Stage, done: Path) -> Tuple[str, List[str], Optional[dict]]:
        """The stage's fingerprint, those of its ``former_settings``, and its ``done.json`` when
        it is done under the first or (which then stays its fingerprint) one of the others."""
        fp = self.fingerprint_of(stage)
        formers = [self.fingerprint_of(stage, settings) for settings in stage.former_settings]
        info = _done_info(done, fp, self.log)
        for former in formers if info is None else ():
            info = _done_info(done, former)
            if info is not None:
                return former, formers, info
        return fp, formers, info

    def discard_forced(self) -> None:
        """Delete the forced stages' folders (up front: a killed forced run still redoes them)."""
        for key in self.forced:
            remove_owned(self.run_dir / key)  # only folders the tool made (marker inside)

    def run(self) -> Dict[str, StageRecord]:
        total = len(self.stages)
        results: Dict[str, dict] = {}
        me = distributed.init()
        if me.main:
            self.discard_forced()
        distributed.barrier()
        for i, stage in enumerate(self.stages, 1):
            folder = self.run_dir / stage.key
            done = folder / "done.json"
            fp, formers, info = self._done_before(stage, done)
            self.fingerprints[stage.key] = fp
            label = f"[{i}/{total}] {stage.title or stage.key}"
            if info is not None:
                rec = StageRecord(stage.key, fp, info.get("seconds", 0.0), True, info.get("result", {}))
                self.records[stage.key], results[stage.key] = rec, rec.result
                self.log(f"{label}: done before (took {_fmt_seconds(rec.seconds)}), skipped")
                continue
            if me.main:
                self._prepare(folder, fp, formers)
            if stage.parallel:
                distributed.barrier()  # rank 0 has prepared the folder
            if me.main or stage.parallel:
                self.log(f"{label}: running ...")
                start = time.perf_counter()
                with _kill_hook(stage.key, folder):
                    seconds = {k: r.seconds for k, r in self.records.items()}
                    result = stage.fn(StageContext(stage, folder, self.run_dir, results, seconds)) or {}
                seconds = time.perf_counter() - start
            if me.main:
                write_json(done, {"stage": stage.key, "fingerprint": fp, "seconds": round(seconds, 3),
                                  "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "result": result})
            else:  # rank 0's result, for every rank
                distributed.wait_for(lambda: _done_info(done, fp) is not None, f"{done}")
                info = _done_info(done, fp)
                seconds, result = info.get("seconds", 0.0), info.get("result", {})
            rec = StageRecord(stage.key, fp, seconds, False, result)
            self.records[stage.key], results[stage.key] = rec, result
            self.log(f"{label}: finished in {_fmt_seconds(seconds)}")
        return self.records

    @staticmethod
    def _prepare(folder: Path, fp: str, formers: Iterable[str] = ()) -> None:
        """Keep a half-finished folder of the same (or a former) fingerprint, to resume; wipe
        anything else (only if the tool made it: a folder without the ownership marker is an
        error naming it)."""
        started = folder / "started.json"
        try:
            keep = is_owned(folder) and read_json(started).get("fingerprint") in {fp, *formers}
        except (UserError, AttributeError, TypeError):  # missing, truncated, malformed: afresh
            keep = False
        if folder.exists() and not keep:
            remove_owned(folder)
        ensure_owned_dir(folder, "stage folder")
        (folder / "done.json").unlink(missing_ok=True)
        if not keep:
            write_json(started, {"fingerprint": fp, "started": time.strftime("%Y-%m-%d %H:%M:%S")})


def _done_info(done: Path, fp: str, log: Optional[Callable[[str], None]] = None) -> Optional[dict]:
    """The stage's ``done.json`` when it exists with fingerprint ``fp``, else None. An unreadable
    or truncated one counts as "not done" (with a warning through ``log``): the stage reruns."""
    if not done.exists():
        return None
    try:
        info = read_json(done)
        if not isinstance(info, dict):
            raise UserError(f"{done}: not a JSON object")
    except UserError as err:
        if log is not None:
            log(f"warning: {err}; the stage runs again")
        return None
    return info if info.get("fingerprint") == fp else None


class _kill_hook:
    """Test hook (see module docstring): SIGKILL this process when GLOB appears in the folder."""

    def __init__(self, key: str, folder: Path):
        spec = os.environ.get(KILL_ENV, "")
        target, _, pattern = spec.partition(":")
        self.active = bool(spec) and target == key
        self.pattern, self.folder = pattern or "*", folder
        self.stop = threading.Event()

    def _check(self):
        if glob.glob(str(self.folder / "**" / self.pattern), recursive=True):
            os.kill(os.getpid(), signal.SIGKILL)

    def _watch(self):
        while not self.stop.is_set():
            self._check()
            time.sleep(0.002)

    def __enter__(self):
        if self.active:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.active:  # the file appeared just before the stage ended: still die before done.json
            self._check()
        return False
