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
    free, echo = list(device_slots), len(device_slots) == 1
    share = None if echo else max(1, (os.cpu_count() or 1) // len(device_slots))
    outcomes, running, waiting, started = {}, [], list(steps), time.time()
    try:
        while waiting or running:
            for step in list(waiting):
                blocked = [a for a in step.after if outcomes.get(a, Outcome("")).status in ("failed", "not run")]
                if blocked:
                    outcomes[step.name] = Outcome("not run", why=f"after {blocked[0]}, which did not finish")
                    waiting.remove(step)
                    print(f"not run: {step.description} ({outcomes[step.name].why})", flush=True)
                elif all(a in outcomes for a in step.after) and step.processes <= len(free):
                    waiting.remove(step)
                    held = [free.pop(0) for _ in range(step.processes)]
                    header = f"[{len(steps) - len(waiting)}/{len(steps)} | {(time.time() - started) / 60:.1f} min] " \
                             f"{step.description}"
                    process = _start(step, held, share, log_dir, echo, outcomes, header)
                    if process is None:
                        free.extend(held)
                    else:
                        running.append(process)
            for process in [p for p in running if p.process.poll() is not None]:
                running.remove(process)
                free.extend(process.held)
                outcomes[process.step.name] = _ended(process, echo)
            time.sleep(0.05)
    except KeyboardInterrupt:
        for process in running:  # they had the Ctrl-C too: each saves what it finished and exits
            process.finish()
        raise
    return outcomes


def _start(step, held, share, log_dir, echo, outcomes, header):
    """Start a step on the slots `held` (None if its work is done already)."""
    env, device = _environment(held, share)
    options = step.prepare(device)
    if options is None:
        outcomes[step.name] = Outcome("done already")
        print(f"\n{header}: done already" if echo else f"{header}: done already", flush=True)
        return None
    command = step.command(options)
    shown = {k: env[k] for k in ("CUDA_VISIBLE_DEVICES",) if k in env}
    where = "" if echo else f" on {','.join(held)}, log {log_dir / (step.name + '.log')}"
    print(f"\n{header}{where}\n  {shell_line(command, shown)}" if echo else f"{header}{where}", flush=True)
    return _Running(step, command, env, held, log_dir / f"{step.name}.log", echo)


def _ended(process, echo):
    code, seconds = process.finish(), time.time() - process.started
    if code == 0:
        if not echo:
            print(f"finished: {process.step.description} ({seconds / 60:.1f} min)", flush=True)
        return Outcome("finished", seconds, code, process.log)
    print(f"FAILED: {process.step.description} (exit code {code}): {process.log}", flush=True)
    return Outcome("failed", seconds, code, process.log)
