"""The study as a graph of steps: its wall-clock time on N devices, and the local executor
(steps at once on the device slots, in dependency order; failures named, and kept from the
steps that need them)."""
import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from common.cli import UserError
from common.grid import local, slurm
from common.grid.graph import Step, critical_path, wall_clock


def timed_graph():
    """a (10 s) and b (4 s) before c (5 s); d (6 s) alone."""
    steps = [Step(("pretrain", "a", "1"), "a", "", None), Step(("pretrain", "b", "1"), "b", "", None),
             Step(("extract", "c", "t"), "c", "", None, after=("pretrain-a-1", "pretrain-b-1")),
             Step(("extract", "d", "t"), "d", "", None)]
    return steps, {"pretrain-a-1": 10.0, "pretrain-b-1": 4.0, "extract-c-t": 5.0, "extract-d-t": 6.0}


def test_wall_clock_on_n_devices_schedules_as_the_executor_runs():
    steps, seconds = timed_graph()
    assert critical_path(steps, seconds) == 15.0  # a then c
    assert wall_clock(steps, seconds, 1) == 25.0
    assert wall_clock(steps, seconds, 2) == 15.0  # a and b at 0; d after b at 4; c after a at 10
    assert wall_clock(steps, seconds, 8) == 15.0
    wide = Step(("pretrain", "e", "full"), "e", "", None, processes=2)  # both devices for 3 s, once c is done
    assert wall_clock([*steps, wide], {**seconds, "pretrain-e-full": 3.0}, 2) == 18.0


def stand_in(out, name, seconds=0.0, exit_code=0, after=()):
    """A step running tests/scripts/grid_step.py; done once its record exists and it succeeded."""
    def prepare(device):
        record = out / f"{name}.json"
        if record.exists() and exit_code == 0:
            return None
        return ["--device", device, "--out", out, "--name", name, "--seconds", seconds, "--exit-code", exit_code]
    return Step(("pretrain", name, "x"), f"step {name}", "tests/scripts/grid_step.py", prepare, after=after)


def records(out):
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_steps_run_at_once_on_the_slots_in_the_order_of_their_dependencies(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    steps = [stand_in(tmp_path, "p1", 1.0), stand_in(tmp_path, "p2", 1.0),
             stand_in(tmp_path, "e", after=("pretrain-p1-x", "pretrain-p2-x"))]
    outcomes = local.run(steps, local.slots(None, 2, "auto"), tmp_path / "_jobs")
    assert [outcomes[s.name].status for s in steps] == ["finished"] * 3
    ran = records(tmp_path)
    assert ran["p1"]["start"] < ran["p2"]["end"] and ran["p2"]["start"] < ran["p1"]["end"]  # at once
    assert ran["e"]["start"] >= max(ran["p1"]["end"], ran["p2"]["end"])
    assert {r["device"] for r in ran.values()} == {"cpu"}
    assert {r["threads"] for r in ran.values()} == {str(max(1, local.os.cpu_count() // 2))}
    assert (tmp_path / "_jobs" / "pretrain-p1-x.log").read_text() == "p1 on cpu\n"
    printed = capsys.readouterr().out
    assert "step p1 on cpu, log " in printed and "finished: step e" in printed

    again = local.run(steps, local.slots(None, 2, "auto"), tmp_path / "_jobs")
    assert {o.status for o in again.values()} == {"done already"}


def test_a_failed_step_is_named_and_only_the_steps_that_need_it_wait(tmp_path, capsys):
    steps = [stand_in(tmp_path, "bad", exit_code=3), stand_in(tmp_path, "needs", after=("pretrain-bad-x",)),
             stand_in(tmp_path, "other")]
    outcomes = local.run(steps, ["cpu"], tmp_path / "_jobs")
    assert outcomes["pretrain-bad-x"].status == "failed" and outcomes["pretrain-bad-x"].code == 3
    assert outcomes["pretrain-bad-x"].log == tmp_path / "_jobs" / "pretrain-bad-x.log"
    assert outcomes["pretrain-needs-x"].status == "not run" and "pretrain-bad-x" in outcomes["pretrain-needs-x"].why
    assert outcomes["pretrain-other-x"].status == "finished"
    printed = capsys.readouterr().out
    assert f"FAILED: step bad (exit code 3): {tmp_path / '_jobs' / 'pretrain-bad-x.log'}" in printed
    assert "bad on cpu\n" in printed  # one slot: the step's output on the terminal as it comes
    assert "python tests/scripts/grid_step.py --device cpu" in printed  # the command that reruns it alone

    steps[0] = stand_in(tmp_path, "bad")  # fixed: the same command again runs what did not finish
    again = local.run(steps, ["cpu"], tmp_path / "_jobs")
    assert [again[s.name].status for s in steps] == ["finished", "finished", "done already"]


def test_a_gpu_step_sees_its_own_gpu_alone_as_cuda(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")  # cuda:K is the K-th GPU the parent sees
    steps = [stand_in(tmp_path, "a", 0.5), stand_in(tmp_path, "b", 0.5)]
    local.run(steps, ["cuda:1", "cuda:0"], tmp_path / "_jobs")
    ran = records(tmp_path)
    assert {r["device"] for r in ran.values()} == {"cuda"}
    assert sorted(r["visible"] for r in ran.values()) == ["4", "5"]
    assert all(r["threads"] is None or r["threads"] == local.os.environ.get("OMP_NUM_THREADS") for r in ran.values())


def test_a_torchrun_step_needs_as_many_slots_as_processes():
    step = Step(("pretrain", "ast", "full"), "pretrain ast on subset full", "ast/train.py", lambda d: [], processes=2)
    assert step.command(["--subset", "full"])[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                      "--nproc_per_node=2"]
    with pytest.raises(UserError, match="runs 2 processes, one per device, and there are 1 device slot"):
        local.run([step], ["cuda:0"], REPO / "unused")
    with pytest.raises(UserError, match="give one of them"):
        local.slots(["cuda:0"], 2, "auto")


def test_plan_prints_the_wall_clock_time_on_the_devices_asked_for(monkeypatch, tmp_path, capsys):
    import reproduce
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--demo", "--quick", "--models", "tmae", "--tasks", "pitch",
                                      "--plan", "--devices", "3", "--results-dir", str(tmp_path)])
    args = reproduce.parse_args()
    graph = reproduce.steps(args, reproduce.GRIDS["demo-quick"])
    per_step = {step.key: 60.0 for step in graph}  # a minute each
    monkeypatch.setattr(reproduce.plan, "estimate", lambda *a, **k: ([("pretrain", "tmae", "", 1.0)], [], per_step))
    reproduce.write_plan(args, reproduce.GRIDS["demo-quick"], "demo-quick", tmp_path / "plan.json")
    # three runs at once, then tmae's extraction and probes (the hand-crafted ones beside them)
    assert "on 3 devices at once: about 3.0 m of wall-clock time (the longest chain of steps that wait for each " \
           "other: 3.0 m" in capsys.readouterr().out
    assert [s.name for s in graph] == ["pretrain-tmae-1", "pretrain-tmae-5", "pretrain-tmae-20", "extract-tmae-pitch",
                                       "extract-handcrafted-pitch", "probes-tmae-pitch", "probes-handcrafted-pitch"]
    assert graph[3].after == ("pretrain-tmae-1", "pretrain-tmae-5", "pretrain-tmae-20") and graph[4].after == ()


@pytest.mark.parametrize("text,devices", [("2", ["cuda:0", "cuda:1"]), ("cuda:1,cuda:3", ["cuda:1", "cuda:3"])])
def test_devices_are_a_list_or_a_number(text, devices):
    import reproduce
    assert reproduce.device_list(text) == devices


def test_devices_this_machine_lacks_are_refused_before_any_step(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = subprocess.run([sys.executable, "reproduce.py", "--demo", "--quick", "--devices", "cuda:0,cuda:1",
                          "--runs-dir", str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: invalid value 'cuda:0': no CUDA device is available here (use cpu or auto)"]
    assert not (tmp_path / "runs").exists()


def quick_graph(monkeypatch, *options):
    import reproduce
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--demo", "--quick", *options])
    args = reproduce.parse_args()
    return args, reproduce.steps(args, reproduce.GRIDS["demo-quick"])


def test_alike_steps_go_to_slurm_as_one_job_array(monkeypatch):
    _, graph = quick_graph(monkeypatch, "--models", "tmae", "vggish", "--tasks", "pitch", "key")
    groups = [[s.name for s in group] for group in slurm._alike(graph)]
    assert groups[0] == [f"pretrain-{m}-{s}" for m in ("tmae", "vggish") for s in (1, 5, 20)]  # nothing before them
    assert ["extract-tmae-pitch", "extract-tmae-key"] in groups  # both after tmae's runs
    assert ["extract-handcrafted-pitch", "extract-handcrafted-key"] in groups
    assert ["probes-tmae-pitch"] in groups and len(groups) == 1 + 3 + 6


def test_a_slurm_job_asks_for_what_the_options_say(tmp_path):
    wide = Step(("pretrain", "ast", "full"), "pretrain ast on subset full", "ast/train.py", None, processes=2)
    resources = slurm.Resources(time=90, gpus=1, cpus=8, partition="gpu", account="lab", mem="32G",
                                sbatch=["qos=high", "exclusive"])
    parameters = slurm._executor(resources, [wide], ["12_0", "12_1"], tmp_path).parameters
    assert {k: parameters[k] for k in ("time", "cpus_per_task", "gpus_per_node", "partition", "account", "mem")} == \
        {"time": 90, "cpus_per_task": 16, "gpus_per_node": 2, "partition": "gpu", "account": "lab", "mem": "32G"}
    assert parameters["job_name"] == "pretrain-ast-full"
    assert parameters["additional_parameters"] == {"chdir": str(REPO), "qos": "high", "exclusive": True,
                                                   "dependency": "afterok:12_0:12_1", "kill-on-invalid-dep": "yes"}
    on_cpu = slurm._executor(slurm.Resources(time=5, gpus=0, cpus=1), [wide, wide], [], tmp_path).parameters
    assert on_cpu["gpus_per_node"] is None and "dependency" not in on_cpu["additional_parameters"]


@pytest.mark.parametrize("options,says", [
    (["--slurm-partition", "gpu"], "--slurm-partition is an option of --executor slurm"),
    (["--status"], "--status is an option of --executor slurm"),
    (["--slurm-cpus", "2"], "--slurm-cpus is an option of --executor slurm"),
    (["--executor", "slurm", "--jobs", "2"], "--jobs chooses this machine's devices"),
    (["--executor", "slurm", "--plan"], "--plan times the steps on this machine"),
    (["--executor", "slurm", "--device", "cpu", "--slurm-gpus", "1"], "--device cpu with --slurm-gpus 1")])
def test_options_of_the_other_executor_are_refused(monkeypatch, options, says):
    with pytest.raises(UserError, match=says):
        quick_graph(monkeypatch, *options)


def test_each_slurm_job_is_read_from_its_exit_code_and_the_queue(tmp_path):
    """a finished, b failed (exit code 2), c cancelled by Slurm for needing b, d running, e
    gone from the queue without an exit code (killed), f not submitted."""
    steps = [Step(("pretrain", "a", "1"), "a", "", None), Step(("extract", "b", "t"), "b", "", None,
                                                                after=("pretrain-a-1",)),
             Step(("probes", "c", "t"), "c", "", None, after=("extract-b-t",)),
             Step(("pretrain", "d", "1"), "d", "", None), Step(("pretrain", "e", "1"), "e", "", None),
             Step(("pretrain", "f", "1"), "f", "", None)]
    jobs = slurm.Jobs(steps, tmp_path)
    jobs.ids = {"pretrain-a-1": "5_0", "extract-b-t": "6", "probes-c-t": "7", "pretrain-d-1": "5_1",
                "pretrain-e-1": "5_2"}
    for step, code in ((steps[0], 0), (steps[1], 2)):
        jobs.exit_file(step).write_text(json.dumps({"code": code, "options": [], "seconds": 3.0}))
    queue = {"5_0": "COMPLETED", "6": "FAILED", "7": "CANCELLED", "5_1": "RUNNING"}
    outcomes = {}
    for step in steps[:5]:
        if (outcome := slurm._ended(jobs, step, queue.get(jobs.ids[step.name]), outcomes)) is not None:
            outcomes[step.name] = outcome
    assert {n: (o.status, o.code) for n, o in outcomes.items()} == {
        "pretrain-a-1": ("finished", 0), "extract-b-t": ("failed", 2), "probes-c-t": ("not run", None),
        "pretrain-e-1": ("failed", None)}  # d is still running
    assert outcomes["probes-c-t"].why == "after extract-b-t, which did not finish"
    assert str(tmp_path / "slurm" / "5_2_0_log.err") in outcomes["pretrain-e-1"].why
    printed = slurm.status(jobs, queue).splitlines()
    assert printed[0].startswith("the study's steps on Slurm (1 done, 2 failed, 1 cancelled, 1 running, "
                                 "1 not submitted; logs in ")
    assert [line.split(None, 2)[1:] for line in printed[1:]] == [
        ["5_0", "done"], ["6", "failed (exit code 2)"], ["7", "cancelled"], ["5_1", "running"],
        ["5_2", "failed (gone from the queue, no exit code)"], ["-", "not submitted"]]
