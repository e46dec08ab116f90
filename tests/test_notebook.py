import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import run_demo_script
from nbclient import NotebookClient

from common.models import checkpoints

pytestmark = pytest.mark.slow  # the notebook, and the study behind it run by each executor

REPO = Path(__file__).resolve().parent.parent


def reproduce(root, *options):
    """reproduce.py's quick demo grid for tmae on pitch, its outputs under `root`; one thread
    per process, as each of two steps at once gets on this 2-core machine, so that runs with
    and without --jobs compute alike."""
    dirs = [option for name in ("runs", "features", "results", "figures") for option in (f"--{name}-dir", root / name)]
    return run_demo_script("reproduce.py", "--quick", "--models", "tmae", "--tasks", "pitch", *options, *dirs,
                           env={"OMP_NUM_THREADS": "1"}).stdout


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory, data_root):
    """The quick demo study of tmae on pitch, planned first: (its folder, what --plan printed,
    what the run printed)."""
    root = tmp_path_factory.mktemp("quick")
    planned = reproduce(root, "--plan")
    assert not (root / "runs").exists()  # nothing ran
    return root, planned, reproduce(root)


def test_results_notebook_runs_headless_and_saves_the_figures(quick_study, monkeypatch):
    root, _, _ = quick_study
    monkeypatch.setenv("STUDY_DATA", "demo")
    monkeypatch.setenv("STUDY_RESULTS", str(root / "results"))
    monkeypatch.setenv("STUDY_FIGURES", str(root / "notebook"))
    notebook = nbformat.read(REPO / "notebooks" / "results.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    saved = sorted(p.name for p in (root / "notebook" / "demo").glob("*.png"))
    assert saved == ["metric_by_labels.png", "metric_vs_compute.png", "metric_vs_minutes.png", "metric_vs_snr.png",
                     "probe_size.png"]
    assert all((root / "notebook" / "demo" / name).stat().st_size > 10_000 for name in saved)
    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert "pitch: accuracy on the clean test split with its 95% interval" in printed
    assert "1. untrained and minimally trained representations perform comparably" in printed
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 5
    assert "accuracy against pretraining minutes" in "".join(o.get("text", "") for o in notebook.cells[-3].outputs)


def test_reproduce_plans_the_work_it_then_does(quick_study):
    root, planned, _ = quick_study
    rows = {tuple(line.split()[:2]): line for line in planned.splitlines()}
    # tmae's quick grid: three runs (subsets 1, 5 and 20) of 20 steps; the sampled pitch clips (48
    # train, 28 valid and 28 test TinySOL notes: one window each), the test clips under 3
    # conditions, for the untrained and the trained weights; 5 kinds of probe x 2 seeds on each,
    # on every train label and on a quarter of them
    assert "3 runs, 60 steps of 32" in rows["pretrain", "tmae"]
    assert "4 checkpoints x 160 windows" in rows["extract", "tmae"]
    assert "80 probes" in rows["probes", "tmae"] and "20 probes" in rows["probes", "handcrafted"]
    assert "on 1 device at once: about" in planned and "the longest chain of steps that wait for each other" in planned
    estimated = json.loads((root / "results" / "demo" / "plan.json").read_text())["stages"]
    assert set(estimated) == {"pretrain", "extract", "probes"} and all(v > 0 for v in estimated.values())


def test_reproduce_runs_the_quick_study_then_skips_what_is_done(quick_study):
    root, _, first = quick_study
    assert "time estimated by --plan (on cpu) and measured" in first
    assert "[1/7 | 0.0 min] pretrain tmae on subset 1\n" in first
    index = (root / "features" / "demo" / "pitch" / "index.csv").read_text().splitlines()
    assert sum(line.endswith(",train") for line in index) == 48  # the quick grid's sample
    assert sorted(p.name for p in (root / "figures" / "demo").glob("*.png")) == [
        "metric_by_labels.png", "metric_vs_compute.png", "metric_vs_minutes.png", "metric_vs_snr.png",
        "probe_size.png"]
    summary = first.split("summary (demo")[1].splitlines()
    assert summary[1].split()[:2] == ["task", "metric"] and summary[2].split()[:3] == ["pitch", "accuracy", "tmae"]
    assert summary[2].count("[") == 3  # each number with its interval
    assert "The study's findings checked on" in first and "4. the gap to hand-crafted features" in first
    assert all((root / "results" / "demo" / name).exists() for name in ("intervals.csv", "comparisons.csv",
                                                                          "scaling.csv", "scaling_curves.csv"))
    assert "score against pretraining minutes, fitted" in first and "beats untrained from" in first

    again = reproduce(root)
    skipped = [line for line in again.splitlines() if line.startswith("[") and line.endswith(": done already")]
    assert len(skipped) == 3  # the pretraining; extraction and the probes find their files up to date:
    assert "tmae 5: done already" in again and "handcrafted none: done already" in again
    assert again.count("is up to date with its features") == 2


def test_two_steps_at_once_give_the_results_of_one_after_another(quick_study, tmp_path_factory):
    root, _, first = quick_study
    together = tmp_path_factory.mktemp("together")
    printed = reproduce(together, "--jobs", "2")
    jobs = together / "runs" / "demo" / "_jobs"
    assert "pretrain tmae on subset 5 on cpu, log " in printed and "finished: fit probes on tmae features" in printed
    assert sorted(p.stem for p in jobs.glob("*.log")) == sorted(
        ["pretrain-tmae-1", "pretrain-tmae-5", "pretrain-tmae-20", "extract-tmae-pitch", "extract-handcrafted-pitch",
         "probes-tmae-pitch", "probes-handcrafted-pitch"])
    assert_same_study(root, first, together, printed)


def assert_same_study(root, printed, other, other_printed):
    """Two studies' weights, features, result tables and summary line are equal."""
    for run in sorted((root / "runs" / "demo" / "tmae").glob("*/seed0")):
        for name in ("untrained.pt", "last.pt"):
            a, b = (checkpoints.load(r / run.relative_to(root / "runs") / name)["model"] for r in (root / "runs",
                                                                                                  other / "runs"))
            assert all(torch.equal(a[k], b[k]) for k in a), (run, name)
    arrays = sorted(p.relative_to(root) for p in (root / "features").rglob("*.npy"))
    assert arrays and arrays == sorted(p.relative_to(other) for p in (other / "features").rglob("*.npy"))
    assert all(np.array_equal(np.load(root / a), np.load(other / a)) for a in arrays)
    tables = sorted(p.relative_to(root) for p in (root / "results" / "demo" / "pitch").glob("*.csv"))
    assert tables and all((root / t).read_text() == (other / t).read_text() for t in tables)
    assert other_printed.split("summary (demo")[1].splitlines()[2] == printed.split("summary (demo")[1].splitlines()[2]


def test_a_failed_step_stops_what_needs_it_and_the_same_command_then_finishes(quick_study, tmp_path_factory):
    root, _, _ = quick_study
    study = tmp_path_factory.mktemp("failing") / "study"
    shutil.copytree(root, study)
    last = study / "runs" / "demo" / "tmae" / "20" / "seed0" / "last.pt"
    weights = last.read_bytes()
    last.write_bytes(b"not a checkpoint")  # tmae's extraction fails on it; the hand-crafted steps do not need it
    dirs = [option for name in ("runs", "features", "results", "figures") for option in (f"--{name}-dir", study / name)]
    out = run_demo_script("reproduce.py", "--quick", "--models", "tmae", "--tasks", "pitch", *dirs, check=False)
    log = study / "runs" / "demo" / "_jobs" / "extract-tmae-pitch.log"
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"FAILED: extract tmae features for pitch (exit code 2): {log}" in out.stdout
    assert "is not a readable checkpoint" in log.read_text()
    waited = "not run: fit probes on tmae features for pitch (after extract-tmae-pitch, which did not finish)"
    assert waited in out.stdout
    assert "1 step failed and 1 waited for them" in out.stdout and "summary (demo" not in out.stdout
    last.write_bytes(weights)
    assert "summary (demo" in reproduce(study)


# The same study through --executor slurm, on a single-node cluster of this machine
# (.ci/start-slurm starts one); where no Slurm answers, these tests say so and skip.

def slurm_or_skip():
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        why = out.stderr.strip().splitlines()[-1] if out.returncode else (None if out.stdout.strip() else "no node")
    except (OSError, subprocess.TimeoutExpired) as error:
        why = str(error)
    if why:
        pytest.skip(f"no Slurm answers here ({why}): bash .ci/start-slurm starts a single-node one, as root")


def on_slurm(root, *options):
    """reproduce.py as reproduce() runs it, through Slurm: the process, its output piped."""
    dirs = [str(o) for name in ("runs", "features", "results", "figures") for o in (f"--{name}-dir", root / name)]
    command = [sys.executable, "reproduce.py", "--demo", "--data-root", str(REPO / "data"), "--quick", "--models",
               "tmae", "--tasks", "pitch", "--device", "cpu", "--executor", "slurm", "--slurm-cpus", "1", *options,
               *dirs]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def until(condition, seconds, what, seen=lambda: ""):
    ended = time.time() + seconds
    while not (result := condition()):
        assert time.time() < ended, f"waited {seconds} s for {what}{seen()}"
        time.sleep(0.2)
    return result


def slurm_seen(process, log):
    """What a wait that failed saw: the queue, the job's log, whether the waiting command ended."""
    queue = subprocess.run(["squeue", "-o", "%i %j %T %r %M"], capture_output=True, text=True).stdout
    ended = "" if process.poll() is None else f"\nreproduce.py ended (exit code {process.returncode}):\n" \
                                              f"{process.communicate()[0][-2000:]}"
    text = log.read_text(errors="replace")[-2000:] if log.exists() else "(none yet)"
    return f"\nsqueue:\n{queue}\n{log.name}:\n{text}{ended}"


def job_state(job):
    fields = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout.split()
    return dict(f.split("=", 1) for f in fields if "=" in f)


@pytest.fixture(scope="module")
def slurm_study(tmp_path_factory):
    """The quick study through Slurm: submitted, Ctrl-C, then waited for by the same command
    again; the job of its first training run is sent Slurm's warning of a time limit (SIGUSR2)
    halfway through its steps. (Its folder, what both commands printed.)"""
    slurm_or_skip()
    root = tmp_path_factory.mktemp("slurm")
    submitting = on_slurm(root)
    submitted = "".join(until_printed(submitting, "waiting for the jobs"))
    submitting.send_signal(signal.SIGINT)  # stops the waiting, not the jobs
    submitted += submitting.communicate(timeout=60)[0]
    assert submitting.returncode == 130 and "stopped waiting; the jobs go on in Slurm" in submitted, submitted
    process = on_slurm(root)  # waits for the same jobs
    jobs = root / "runs" / "demo" / "_jobs"
    log = jobs / "pretrain-tmae-1.log"
    until(lambda: process.poll() is not None or "| 6/20 [" in (log.read_text(errors="replace") if log.exists()
                                                             else ""), 300, "the run's sixth step",
          lambda: slurm_seen(process, log))
    assert process.poll() is None, slurm_seen(process, log)
    job = json.loads((jobs / "slurm.json").read_text())["pretrain-tmae-1"]
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    until(lambda: job_state(job).get("Restarts") == "1", 120, "the requeue")
    if job_state(job)["JobState"] == "PENDING":  # Slurm holds a requeued job back two minutes: start it now
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
    printed, _ = process.communicate(timeout=900)
    assert process.returncode == 0, printed[-3000:]
    assert "0 steps submitted, 0 done already, 7 queued or running from before" in printed
    return root, submitted + printed


def until_printed(process, text):
    """The lines `process` prints up to the first that holds `text`."""
    for line in process.stdout:
        yield line
        if text in line:
            return


def test_slurm_gives_the_results_of_one_after_another(slurm_study, quick_study):
    root, _, first = quick_study
    other, printed = slurm_study
    assert "submitted as job " in printed and " (an array): pretrain tmae on subset 1, pretrain tmae on subset 5, " \
        "pretrain tmae on subset 20" in printed
    assert "finished: fit probes on tmae features for pitch (job " in printed
    submissions = "".join(p.read_text() for p in (other / "runs" / "demo" / "_jobs" / "slurm").glob("*.sh"))
    assert "#SBATCH --dependency=afterok:" in submissions and "#SBATCH --kill-on-invalid-dep=yes" in submissions
    assert_same_study(root, first, other, printed)


def test_a_job_stopped_by_slurm_is_requeued_and_continues_from_its_last_checkpoint(slurm_study):
    root, _ = slurm_study
    attempts = [line for line in (root / "runs" / "demo" / "_jobs" / "pretrain-tmae-1.log").read_text(
        errors="replace").splitlines() if line.startswith("--- ")]
    assert len(attempts) == 2 and "--resume" not in attempts[0] and attempts[1].endswith("--resume")
    run = root / "runs" / "demo" / "tmae" / "1" / "seed0"
    assert json.loads((run / "finished.json").read_text())["step"] == 20


def test_slurm_status_then_a_rerun_submits_nothing(slurm_study):
    root, _ = slurm_study
    status = on_slurm(root, "--status").communicate(timeout=120)[0]
    assert "(7 done; logs in " in status and "pretrain-tmae-20" in status, status
    again = on_slurm(root).communicate(timeout=600)[0]
    assert "0 steps submitted, 7 done already, 0 queued" in again and "summary (demo" in again, again[-3000:]


def test_a_failed_slurm_job_cancels_what_needs_it(slurm_study, tmp_path_factory):
    root, _ = slurm_study
    study = tmp_path_factory.mktemp("slurm-failing") / "study"
    shutil.copytree(root, study)
    (study / "runs" / "demo" / "tmae" / "20" / "seed0" / "last.pt").write_bytes(b"not a checkpoint")
    process = on_slurm(study)
    printed = process.communicate(timeout=600)[0]
    assert process.returncode == 1, printed[-3000:]
    log = study / "runs" / "demo" / "_jobs" / "extract-tmae-pitch.log"
    assert "FAILED: extract tmae features for pitch (job " in printed and f", exit code 2): {log}" in printed
    assert "not run: fit probes on tmae features for pitch (after extract-tmae-pitch, which did not finish)" in printed
    assert "1 step failed and 1 waited for them" in printed and "summary (demo" not in printed
