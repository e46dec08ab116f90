"""Running the study's steps on this machine: each its own process, as many at once as there
are device slots, in the order of their dependencies.

A slot is one device: `--devices cuda:0,cuda:1` gives a step to each GPU (it sees that GPU
alone, as cuda), `--jobs N` runs N steps at once on the CPU (each with its share of the
cores), and otherwise the one `--device` runs one step after another. A step under torchrun
takes as many slots as it has processes. With one slot a step's output goes to the terminal
as it comes; with several, each step writes to its log and the terminal gets a line as a step
starts and ends. Every log is kept, under the runs folder's _jobs/.

A step that fails (an exit code other than 0) is named with its log and its exit code; the
steps that read its outputs do not run, and every other step goes on. Running the same
command again reruns what failed or did not run, and skips what finished.
"""
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..cli import REPO_ROOT, UserError
from .graph import check, shell_line


@dataclass
class Outcome:
    status: str                 # finished, failed, done already, not run
    seconds: float = 0.0
    code: int | None = None
    log: Path | None = None
    why: str = ""


def not_run_after_failure(step, outcomes):
    """The "not run" Outcome of a step after one that failed or did not run, else None."""
    blocked = [a for a in step.after if a in outcomes and outcomes[a].status in ("failed", "not run")]
    return Outcome("not run", why=f"after {blocked[0]}, which did not finish") if blocked else None


def slots(devices, jobs, device):
    """The device slots steps run on: --devices (a list), --jobs N on the CPU, else --device."""
    if devices and jobs:
        raise UserError("--devices names the devices steps run on, --jobs a number of CPU slots: give one of them")
    if devices:
        return list(devices)
    return ["cpu"] * jobs if jobs else [device]


def _environment(held, share):
    """(the environment, the --device) of a step on the slots `held`: a GPU step sees its
    GPUs alone, as cuda (torchrun gives each process its own); where several steps share the
    CPU, each gets `share` threads unless OMP_NUM_THREADS says otherwise."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if held[0].startswith("cuda"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # cuda:K is the K-th of these where it is set
        numbers = visible.split(",") if visible else None
        indices = [int(d.split(":")[1]) if ":" in d else 0 for d in held]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(numbers[k] if numbers else str(k) for k in indices)
        return env, "cuda"
    if share:
        env.setdefault("OMP_NUM_THREADS", str(share))
    return env, held[0]


class _Running:
    """A step's process, its slots, and the thread that copies its output where it goes."""

    def __init__(self, step, command, env, held, log, echo):
        self.step, self.held, self.log, self.started = step, held, log, time.time()
        log.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(log, "wb")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.copier = threading.Thread(target=self._copy, args=(echo,), daemon=True)
        self.copier.start()

    def _copy(self, echo):
        while chunk := os.read(self.process.stdout.fileno(), 65536):
            self.file.write(chunk)
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()

    def finish(self):
        code = self.process.wait()
        self.copier.join()
        self.file.close()
        return code


def run(steps, device_slots, log_dir):
    """Run the steps on the slots; their Outcomes by name. A step takes as many slots as it
    has processes, and there must be that many."""
    check(steps)
    if wide := [s for s in steps if s.processes > len(device_slots)]:
        raise UserError(f"{wide[0].description} runs {wide[0].processes} processes, one per device, and there are "
                        f"{len(device_slots)} device slot(s): give as many --devices")
    executor = _Executor(steps, device_slots, log_dir)
    try:
        while executor.waiting or executor.running:
            executor.start_ready()
            executor.collect_ended()
            time.sleep(0.05)
    except KeyboardInterrupt:
        for process in executor.running:  # they had the Ctrl-C too: each saves what it finished and exits
            process.finish()
        raise
    return executor.outcomes


class _Executor:
    """The steps waiting, running and ended, and the slots free."""

    def __init__(self, steps, device_slots, log_dir):
        self.total, self.waiting, self.running, self.outcomes = len(steps), list(steps), [], {}
        self.free, self.log_dir, self.echo = list(device_slots), log_dir, len(device_slots) == 1
        self.share = None if self.echo else max(1, (os.cpu_count() or 1) // len(device_slots))
        self.started = time.time()

    def start_ready(self):
        """In the study's order, every step whose inputs are ready and that fits in the free
        slots starts; a step after one that failed or did not run is not run."""
        for step in list(self.waiting):
            if blocked := not_run_after_failure(step, self.outcomes):
                self.waiting.remove(step)
                self.outcomes[step.name] = blocked
                print(f"not run: {step.description} ({self.outcomes[step.name].why})", flush=True)
            elif all(a in self.outcomes for a in step.after) and step.processes <= len(self.free):
                self.waiting.remove(step)
                self._start(step, [self.free.pop(0) for _ in range(step.processes)])

    def _start(self, step, held):
        env, device = _environment(held, self.share)
        options = step.prepare(device)
        header = f"[{self.total - len(self.waiting)}/{self.total} | {(time.time() - self.started) / 60:.1f} min] " \
                 f"{step.description}"
        if options is None:
            self.free.extend(held)
            self.outcomes[step.name] = Outcome("done already")
            print(("\n" if self.echo else "") + f"{header}: done already", flush=True)
            return
        command, log = step.command(options), self.log_dir / f"{step.name}.log"
        if self.echo:  # the command that reruns it alone, then its output as it comes
            shown = {k: env[k] for k in ("CUDA_VISIBLE_DEVICES",) if k in env}
            print(f"\n{header}\n  {shell_line(command, shown)}", flush=True)
        else:
            print(f"{header} on {','.join(held)}, log {log}", flush=True)
        self.running.append(_Running(step, command, env, held, log, self.echo))

    def collect_ended(self):
        for process in [p for p in self.running if p.process.poll() is not None]:
            self.running.remove(process)
            self.free.extend(process.held)
            code, seconds = process.finish(), time.time() - process.started
            name = process.step.description
            if code == 0:
                self.outcomes[process.step.name] = Outcome("finished", seconds, code, process.log)
                if not self.echo:
                    print(f"finished: {name} ({seconds / 60:.1f} min)", flush=True)
            else:
                self.outcomes[process.step.name] = Outcome("failed", seconds, code, process.log)
                print(f"FAILED: {name} (exit code {code}): {process.log}", flush=True)
