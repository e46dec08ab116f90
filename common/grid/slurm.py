"""Running the study's steps as Slurm jobs, through submitit.

Each step is a job that runs the step's command; steps alike (the same stage, the same
dependencies, the same number of processes) are submitted together as one job array. A job
starts once the jobs of the steps whose outputs it reads have ended well (afterok); when one
of them fails, Slurm cancels it (kill-on-invalid-dep) and it is reported as not run.

A job that Slurm is about to stop (its time limit, or a preemption) gets SIGUSR2 ahead of
the kill (submitit's signal_delay_s): it hands its step a Ctrl-C, the step saves what it
finished (a training run its last.pt), and submitit requeues the job. The step's options are
made when the job starts, so the requeued job continues: a training run with --resume.

What the submitting process knows of the jobs lives in the runs folder's _jobs/:
slurm.json (each step's job id, from the latest submission that ran it), <step>.log (its
output, every attempt appended) and <step>.exit (its exit code and options, written by the
job as its command ends: Slurm's accounting, sacct, is not needed). A job that left the
queue without an exit code was cancelled or killed by Slurm itself (memory, time).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime

import submitit

from ..atomic import write_json
from ..cli import REPO_ROOT, UserError, non_negative_int, positive_int
from .graph import check, shell_line
from .local import Outcome, not_run_after_failure

POLL_SECONDS = 5
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED", "SPECIAL_EXIT"}


def _matching(pattern, requirement):
    """An argparse type: the text where `pattern` matches all of it, else one line naming it."""
    def parse(text):
        if not re.fullmatch(pattern, text):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be {requirement}")
        return text
    return parse


OPTIONS = ("status", "slurm_partition", "slurm_account", "slurm_time", "slurm_gpus", "slurm_cpus", "slurm_mem",
           "sbatch")  # add_options' destinations: of --executor slurm only


def add_options(parser):
    group = parser.add_argument_group("with --executor slurm")
    group.add_argument("--status", action="store_true",
                       help="submit nothing: show each step's job, queued, running, done or failed")
    name = _matching(r"[\w.-]+(,[\w.-]+)*", "a Slurm name, or names separated by commas")
    group.add_argument("--slurm-partition", type=name, metavar="NAME",
                       help="the partition (or partitions, separated by commas) the jobs go to (default: the "
                            "cluster's)")
    group.add_argument("--slurm-account", type=name, metavar="NAME", help="the account the jobs are charged to")
    group.add_argument("--slurm-time", type=positive_int, default=24 * 60, metavar="MINUTES",
                       help="each job's time limit; a job stopped by it is requeued and continues (default 1440)")
    group.add_argument("--slurm-gpus", type=non_negative_int, metavar="N",
                       help="GPUs per job (default 1; 0 with --device cpu)")
    group.add_argument("--slurm-cpus", type=positive_int, default=4, metavar="N",
                       help="CPUs per job, and the threads its step computes with (default 4)")
    group.add_argument("--slurm-mem", type=_matching(r"\d+[KMGT]?", "a size as sbatch --mem takes it: 32G, 500M"),
                       metavar="SIZE", help="memory per job: 32G (default: the cluster's share per CPU)")
    group.add_argument("--sbatch", nargs="+", default=[], metavar="KEY=VALUE",
                       type=_matching(r"[a-z][a-z-]*(=\S+)?", "an sbatch option without its dashes: qos=high"),
                       help="more sbatch options for every job, without their dashes: qos=high constraint=a100 "
                            "exclusive")


@dataclass
class Resources:
    """What each job asks Slurm for (a step under torchrun: that many times the GPUs and CPUs)."""
    time: int                            # minutes
    gpus: int
    cpus: int
    partition: str | None = None
    account: str | None = None
    mem: str | None = None               # per job, as sbatch writes it: 32G
    sbatch: list = field(default_factory=list)  # more #SBATCH lines, KEY=VALUE or KEY


class StepJob(submitit.helpers.Checkpointable):
    """A step as the job runs it: its command in a process of its own, output appended to its log."""

    def __init__(self, step, device, log, record):
        self.step, self.device, self.log, self.record = step, device, log, record
        self.process = None

    def __call__(self):
        started = time.time()
        options = self.step.prepare(self.device)  # now, so that a requeued run finds its last.pt
        if options is None:
            write_json(self.record, {"code": 0, "options": None, "seconds": 0.0})
            return
        command = self.step.command(options)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("OMP_NUM_THREADS", os.environ.get("SLURM_CPUS_PER_TASK", "1"))
        with open(self.log, "ab") as log:
            log.write(f"--- {datetime.now():%Y-%m-%d %H:%M:%S} job {_job_id()} on {socket.gethostname()}: "
                      f"{shell_line(command)}\n".encode())
            log.flush()
            # SIGUSR2 is Slurm's warning for this process; the step hears of it as a Ctrl-C
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN))
            while (code := self.process.poll()) is None:  # not wait(): the signal handler must be free to
                time.sleep(0.5)                           # wait for the process itself
        write_json(self.record, {"code": code, "options": list(map(str, options)),
                                 "seconds": time.time() - started, "job": _job_id()})
        if code:
            raise RuntimeError(f"{self.step.description} ended with exit code {code}: {self.log}")

    def checkpoint(self, *args, **kwargs):
        """Slurm stops the job soon: the step saves what it finished, and the job is requeued."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return submitit.helpers.DelayedSubmission(StepJob(self.step, self.device, self.log, self.record))


def _job_id():
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ.get("SLURM_JOB_ID", "")


class Jobs:
    """The study's steps and their Slurm jobs, as recorded in the runs folder's _jobs/."""

    def __init__(self, steps, jobs_dir):
        check(steps)
        self.steps, self.dir = steps, jobs_dir
        self.state_file = jobs_dir / "slurm.json"
        self.ids = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def log(self, step):
        return self.dir / f"{step.name}.log"

    def exit_file(self, step):
        return self.dir / f"{step.name}.exit"

    def record(self, step):
        """The exit code and options its job wrote as its command ended, or None."""
        path = self.exit_file(step)
        return json.loads(path.read_text()) if path.exists() else None

    def queue(self):
        """{job id: Slurm's state} of this study's jobs Slurm still knows of."""
        ids = set(self.ids.values())
        if not ids:
            return {}
        try:
            out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i %T"], capture_output=True, text=True,
                                 timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise UserError(f"squeue did not answer ({error}): is this a Slurm cluster's login node?") from None
        if out.returncode:
            raise UserError(f"squeue failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}")
        states = dict(line.split()[:2] for line in out.stdout.splitlines() if line.strip())
        return {job: state for job, state in states.items() if job in ids}

    def waiting(self, queue):
        """The steps whose jobs are queued or running now."""
        return [s for s in self.steps if self.ids.get(s.name) in queue and queue[self.ids[s.name]] not in ENDED]

    def submit(self, resources, device):
        """Submit every step whose work is not done and whose job is not queued already: (the
        steps submitted, those done already)."""
        if shutil.which("sbatch") is None:
            raise UserError("sbatch is not here: --executor slurm submits from a machine of a Slurm cluster, its "
                            "login node")
        active = {s.name for s in self.waiting(self.queue())}
        submitted, done, changing = [], [], set(active)  # changing: steps whose outputs will change
        for step in self.steps:
            if step.name in active:
                continue
            options = step.prepare(device)
            record = self.record(step)
            ran_as_now = record and record["code"] == 0 and record["options"] == (options and list(map(str, options)))
            if options is None or (ran_as_now and not changing.intersection(step.after)):
                done.append(step)
            else:
                submitted.append(step)
                changing.add(step.name)
        for group in _alike(submitted):
            for step in group:
                self.exit_file(step).unlink(missing_ok=True)
            waits_for = [self.ids[a] for a in group[0].after if a in changing]
            try:
                jobs = _executor(resources, group, waits_for, self.dir / "slurm").submit_array(
                    [StepJob(step, device, self.log(step), self.exit_file(step)) for step in group])
            except submitit.core.utils.FailedJobError as error:
                raise UserError(f"sbatch refused the jobs of {group[0].description}: "
                                f"{str(error).strip().splitlines()[-1]}") from None
            self.ids.update({step.name: job.job_id for step, job in zip(group, jobs)})
            write_json(self.state_file, self.ids)  # after each array: the ids of what is in the queue
            print(f"submitted as job {jobs[0].job_id.split('_')[0]}{' (an array)' * (len(jobs) > 1)}: "
                  f"{', '.join(step.description for step in group)}", flush=True)
        return submitted, done


def _alike(steps):
    """The steps in groups that can share one job array: one stage, the same dependencies and
    processes; in the order of their first step, so that a group's dependencies are submitted
    before it."""
    groups = {}
    for step in steps:
        groups.setdefault((step.stage, step.after, step.processes), []).append(step)
    return list(groups.values())


def _executor(resources, group, waits_for, folder):
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=3)
    processes = group[0].processes
    extra = dict(option.split("=", 1) if "=" in option else (option, True) for option in resources.sbatch)
    if waits_for:
        extra |= {"dependency": "afterok:" + ":".join(waits_for), "kill-on-invalid-dep": "yes"}
    executor.update_parameters(
        job_name=group[0].name if len(group) == 1 else f"{group[0].stage}-{len(group)}", time=resources.time,
        cpus_per_task=resources.cpus * processes, gpus_per_node=resources.gpus * processes or None,
        partition=resources.partition, account=resources.account, mem=resources.mem,
        additional_parameters={"chdir": str(REPO_ROOT), **extra})
    return executor


def wait(jobs, submitted, done, announce=""):
    """Wait for the submitted steps and those queued before: their Outcomes by name, each end
    printed as it comes. Ctrl-C stops the waiting, not the jobs, from the moment `announce`
    (what was submitted) is printed."""
    outcomes = {step.name: Outcome("done already") for step in done}
    pending = {s.name: s for s in jobs.steps if s.name not in outcomes}
    shown_running, started = set(), time.time()
    try:
        print(announce, flush=True)
        while pending:
            queue = jobs.queue()
            for step in list(pending.values()):
                state = queue.get(jobs.ids.get(step.name))
                outcome = _ended(jobs, step, state, outcomes)
                if outcome is None:
                    if state == "RUNNING" and step.name not in shown_running:
                        shown_running.add(step.name)
                        print(f"[{(time.time() - started) / 60:.1f} min] running: {step.description} "
                              f"(job {jobs.ids[step.name]}), log {jobs.log(step)}", flush=True)
                    continue
                outcomes[step.name] = outcome
                del pending[step.name]
                _report(step, outcome, jobs.ids[step.name])
            if pending:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the jobs go on in Slurm. --status shows them, the same command waits for "
              f"them again, scancel {' '.join(sorted({jobs.ids[n] for n in pending}))} cancels them", flush=True)
        raise SystemExit(130) from None
    return outcomes


def _ended(jobs, step, state, outcomes):
    """The step's Outcome once its job has ended, else None."""
    record = jobs.record(step)
    log = jobs.log(step)
    if record is not None:
        status = "finished" if record["code"] == 0 else "failed"
        return Outcome(status, record["seconds"], record["code"], log)
    if state is not None and state not in ENDED:
        return None
    if blocked := not_run_after_failure(step, outcomes):
        return blocked
    if any(a not in outcomes for a in step.after):
        return None  # an earlier step's end is not read yet
    job = jobs.ids[step.name]
    return Outcome("failed", log=log, why=f"its job ended {state or 'and left the queue'} without the step's exit "
                                          f"code: cancelled, stopped by Slurm (memory, time) or failed to start, "
                                          f"see {jobs.dir / 'slurm' / f'{job}_0_log.err'}")


def _report(step, outcome, job):
    if outcome.status == "finished":
        print(f"finished: {step.description} (job {job}, {outcome.seconds / 60:.1f} min)", flush=True)
    elif outcome.status == "failed":
        code = f"exit code {outcome.code}" if outcome.code is not None else outcome.why
        print(f"FAILED: {step.description} (job {job}, {code}): {outcome.log}", flush=True)
    else:
        print(f"not run: {step.description} ({outcome.why})", flush=True)


def status(jobs, queue):
    """A line per step: its job, and done, failed, running, queued, cancelled or not
    submitted; then the counts. `queue`: Jobs.queue()'s states."""
    counts, lines = {}, []
    for step in jobs.steps:
        job = jobs.ids.get(step.name)
        what = _state(jobs.record(step), queue.get(job)) if job else "not submitted"
        counts[what.split(" (")[0]] = counts.get(what.split(" (")[0], 0) + 1
        lines.append(f"  {step.name:<40} {job or '-':>10}  {what}")
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    return f"the study's steps on Slurm ({summary}; logs in {jobs.dir}):\n" + "\n".join(lines)


def _state(record, state):
    if record is not None:
        return "done" if record["code"] == 0 else f"failed (exit code {record['code']})"
    if state == "CANCELLED":
        return "cancelled"
    if state is None or state in ENDED:
        return f"failed ({state or 'gone from the queue'}, no exit code)"
    return "running" if state == "RUNNING" else "queued"
