"""The study's steps and their dependencies, and how long the graph takes on N devices.

A step is one command of one of the repository's scripts (a train.py, extract_features.py,
downstream.py) run as its own process: the command it prints reruns it alone. It names the
steps whose outputs it reads (`after`): a model's extraction for a task reads every one of
that model's runs, its probes read those features. Steps with nothing between them run at
once where there are devices for them.
"""
import heapq
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Step:
    key: tuple                     # (stage, model, training set or task): pretrain, vggish, 5-draw1
    description: str
    script: str                    # relative to the repository
    prepare: Callable              # prepare(device) -> the script's options, None when its work is done
    after: tuple = ()              # the names of the steps whose outputs it reads
    processes: int = 1             # devices it takes: more than one runs it under torchrun

    @property
    def name(self):
        """Unique, and its log's file name: pretrain-vggish-5-draw1."""
        return "-".join(self.key)

    @property
    def stage(self):
        return self.key[0]

    def command(self, options):
        """The command line that runs the step with `options` (prepare's)."""
        launcher = [sys.executable]
        if self.processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={self.processes}"]
        return [*launcher, self.script, *map(str, options)]


def shell_line(command, env=None):
    """A command as one would type it, with the environment it needs in front."""
    words = [f"{k}={v}" for k, v in (env or {}).items()] + \
        [os.path.basename(w) if w == sys.executable else w for w in command]
    return " ".join(w if w and all(c.isalnum() or c in "-_./:=,@+" for c in w) else repr(w) for w in words)


def check(steps):
    """Every dependency names an earlier step: the graph has no cycle and no unknown step."""
    seen = set()
    for step in steps:
        missing = [a for a in step.after if a not in seen]
        if missing:
            raise ValueError(f"step {step.name} comes after {missing[0]}, which is not an earlier step")
        seen.add(step.name)


def critical_path(steps, seconds):
    """The longest chain of dependent steps, in seconds: no number of devices ends sooner."""
    finish = {}
    for step in steps:
        finish[step.name] = seconds[step.name] + max((finish[a] for a in step.after), default=0.0)
    return max(finish.values(), default=0.0)


def wall_clock(steps, seconds, devices):
    """Seconds the graph takes on `devices` devices, each step taking `processes` of them, as
    the local executor runs it: whenever devices are free, the steps whose inputs are ready
    start in the study's order, each that fits in what is free."""
    position = {s.name: i for i, s in enumerate(steps)}
    waiting = {s.name: set(s.after) for s in steps}
    ready = [position[s.name] for s in steps if not s.after]
    running, now, free = [], 0.0, devices  # running: a heap of (end time, position)
    while ready or running:
        for i in sorted(ready):
            need = min(steps[i].processes, devices)
            if need <= free:
                free -= need
                ready.remove(i)
                heapq.heappush(running, (now + seconds[steps[i].name], i))
        now, done = heapq.heappop(running)
        free += min(steps[done].processes, devices)
        for step in steps:
            if steps[done].name in waiting[step.name]:
                waiting[step.name].discard(steps[done].name)
                if not waiting[step.name]:
                    ready.append(position[step.name])
    return now
