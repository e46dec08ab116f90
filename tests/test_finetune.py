"""Fine-tuning beside probing (finetune.py): what trains, that it learns, resume, the results' flow."""
import argparse
import csv
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, run_demo_script, save_untrained

from common.cli import UserError
from common.data.dataset import load_dataset
from common.evaluation import finetuning, predictions, tasks
from common.evaluation.metrics import accuracy
from common.evaluation.probes import StackedMLP, losses
from common.evaluation.results import read_index
from common.evaluation.unfreezing import unfreeze, unfreeze_option
from common.models.registry import build
from common.training.distributed import World


def test_unfreeze_trains_the_last_blocks_and_what_runs_after_them():
    encoder = build("tmae")
    everything = {id(p) for p in encoder.parameters()}
    heads = {id(p) for name, p in encoder.named_parameters() if name.split(".")[0] in encoder.HEADS}
    assert {id(p) for p in unfreeze(encoder, "all").parameters()} == everything - heads
    assert unfreeze(encoder, "none").parameters() == [] and not any(p.requires_grad for p in encoder.parameters())
    trained = {id(p) for p in unfreeze(encoder, "last:2").parameters()}
    expected = {id(p) for module in (*encoder.blocks[-2:], encoder.norm) for p in module.parameters()}
    assert trained == expected
    assert all(p.requires_grad == (id(p) in expected) for p in encoder.parameters())


@pytest.mark.parametrize("text", ["last", "last:0", "first:2", "some"])
def test_unfreeze_values_other_than_all_none_last_k_are_refused(text):
    with pytest.raises(Exception, match="all, none, or last:K"):
        unfreeze_option(text)


def test_more_blocks_than_the_model_has_is_one_line():
    with pytest.raises(UserError, match=r"--unfreeze last:9: tmae has 8 blocks \(last:1 to last:8, or all\)"):
        unfreeze(build("tmae"), "last:9")


def test_constant_embedding_dimensions_are_standardised_by_the_median_deviation():
    train = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])
    mean, std = finetuning.standardisation(train)
    assert mean.tolist() == [3.0, 5.0, 2.0]
    # as downstream.py's where the clips differ; the constant one's the others' median, not 1e-8
    assert std == pytest.approx([np.std([1, 3, 5]) + 1e-8, np.median([np.std([1, 3, 5]), np.std([0, 2, 4])]),
                                 np.std([0, 2, 4]) + 1e-8])


@pytest.fixture(scope="module")
def pitch(tmp_path_factory, data_root):
    """An untrained tmae's pitch features on 8 clips per split, probed; and its encoder."""
    import downstream
    import extract_features
    root = tmp_path_factory.mktemp("finetune")
    save_untrained("tmae", root / "runs" / "demo" / "tmae" / "1" / "seed0" / "untrained.pt")
    common = ["--demo", "--data-root", str(data_root), "--task", "pitch", "--features-dir", str(root / "features")]
    with pytest.MonkeyPatch.context() as patch:
        for model in ("tmae", "handcrafted"):
            patch.setattr(sys, "argv", ["extract_features.py", *common, "--model", model, "--runs-dir",
                                        str(root / "runs"), "--snr", "clean", "deform_2", "--clips-per-split", "8",
                                        "--precision", "float32"] if model == "tmae" else
                          ["extract_features.py", *common, "--model", model, "--snr", "clean", "deform_2",
                           "--clips-per-split", "8"])
            extract_features.main()
            patch.setattr(sys, "argv", ["downstream.py", *common, "--model", model, "--results-dir",
                                        str(root / "results"), "--seeds", "1", "--epochs", "3", "--probes", "slp"])
            downstream.main()
    return root


def adapted_and_windows(pitch, seed=0):
    """A tmae Adapted with an slp head on the fixture's features, its train windows and targets."""
    task_dir = pitch / "features" / "demo" / "pitch"
    targets, splits, clip_ids = read_index(task_dir / "index.csv", tasks.TASKS["pitch"])
    encoder = build("tmae")
    encoder.load_state_dict(torch.load(pitch / "runs" / "demo" / "tmae" / "1" / "seed0" / "untrained.pt",
                                       weights_only=True)["model"])
    train = np.load(task_dir / "tmae" / "untrained" / "clean.npy")[splits["train"]]
    adapted = finetuning.Adapted(encoder.eval(), train.mean(0), train.std(0) + 1e-8, StackedMLP([seed], (256, 12)))
    cache = load_dataset("TinySOL", REPO / "data", demo=True).audio(16000)
    items = finetuning.ClipWindows(cache, clip_ids[splits["train"]], encoder.input_samples)
    return adapted, items, targets[splits["train"]]


def train_loss(adapted, items, targets):
    with torch.no_grad():
        outputs = adapted(torch.from_numpy(items.read(range(len(items)))))
    return float(losses("classes", outputs[None], torch.as_tensor(targets[items.owner])[None])[0])


def fitted(pitch, how, tmp_path, epochs=3, state="state.pt", valid=None):
    """A fit of `how` on the fixture's train windows. By default validation is on the train
    windows too: the best epoch is then the one that fits them best."""
    adapted, items, targets = adapted_and_windows(pitch)
    before = {k: v.clone() for k, v in adapted.encoder.state_dict().items()}
    unfrozen = unfreeze(adapted.encoder, how)
    recipe = finetuning.Recipe(epochs, patience=epochs, batch_size=4, encoder_lr=1e-4, head_lr=1e-3,
                               weight_decay=1e-5)
    valid = valid or (lambda m: (-train_loss(m, items, targets), None))
    progress = finetuning.fit(adapted, unfrozen, items, targets, valid, recipe, seed=1, state_path=tmp_path / state,
                              world=World(), precision=torch.float32)
    return adapted, before, items, targets, progress


@pytest.mark.slow
def test_fine_tuning_lowers_the_train_loss_and_moves_the_encoder(pitch, tmp_path):
    start, items, targets = adapted_and_windows(pitch)
    adapted, before, _, _, _ = fitted(pitch, "all", tmp_path)
    assert train_loss(adapted, items, targets) < 0.9 * train_loss(start, items, targets)
    after = adapted.encoder.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("blocks.0.") for k in moved) and any(k.startswith("patches.") for k in moved)
    assert not any(k.startswith(("decoder", "predict", "mask_token")) for k in moved)  # pretraining's heads


@pytest.mark.slow
def test_none_leaves_the_encoder_bit_equal_and_last_k_its_lower_blocks(pitch, tmp_path):
    adapted, before, items, targets, _ = fitted(pitch, "none", tmp_path, epochs=2)
    assert all(torch.equal(before[k], v) for k, v in adapted.encoder.state_dict().items())
    adapted, before, *_ = fitted(pitch, "last:2", tmp_path, epochs=2, state="last.pt")
    after = adapted.encoder.state_dict()
    lower = [k for k in before if not k.startswith(("blocks.6.", "blocks.7.", "norm."))]
    assert all(torch.equal(before[k], after[k]) for k in lower)
    assert not torch.equal(before["blocks.7.attn.qkv.weight"], after["blocks.7.attn.qkv.weight"])


@pytest.mark.slow
def test_a_fit_stopped_after_an_epoch_and_run_again_ends_as_a_fit_never_stopped(pitch, tmp_path):
    straight, *_ = fitted(pitch, "all", tmp_path, epochs=2, state="straight.pt")
    fitted(pitch, "all", tmp_path, epochs=1, state="stopped.pt")  # as if killed after its first epoch
    assert torch.load(tmp_path / "stopped.pt", weights_only=True)["epoch"] == 1
    resumed, *_ = fitted(pitch, "all", tmp_path, epochs=2, state="stopped.pt")
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


@pytest.mark.slow
def test_a_fit_keeps_the_valid_outputs_of_the_epoch_whose_weights_it_ends_with(pitch, tmp_path):
    _, items, targets = adapted_and_windows(pitch)
    seen = []

    def valid(model):  # the worst fit of the train windows is the best epoch: not the last one
        with torch.no_grad():
            seen.append(model(torch.from_numpy(items.read(range(len(items))))))
        return train_loss(model, items, targets), seen[-1]

    adapted, *_, progress = fitted(pitch, "all", tmp_path, valid=valid)
    assert len(seen) == 3 and not torch.equal(progress.best_outputs, seen[-1])
    with torch.no_grad():
        assert torch.equal(progress.best_outputs, adapted(torch.from_numpy(items.read(range(len(items))))))


@pytest.mark.slow
def test_finetune_writes_the_probes_columns_and_flows_into_statistics_figures_and_summary(pitch, monkeypatch,
                                                                                          capsys):
    import finetune
    import reproduce
    from common.evaluation import figures, stats
    results = pitch / "results"
    monkeypatch.setattr(sys, "argv", ["finetune.py", "--demo", "--data-root", str(REPO / "data"), "--task", "pitch",
                                      "--model", "tmae", "--features-dir", str(pitch / "features"), "--results-dir",
                                      str(results), "--seeds", "1", "--epochs", "2", "--heads", "slp",
                                      "--precision", "float32"])
    finetune.main()
    target = results / "demo" / "pitch" / "tmae.finetune-all.csv"
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["split"], r["snr"]) for r in rows} == {("valid", "clean"), ("test", "clean"), ("test", "deform_2")}
    assert {r["adaptation"] for r in rows} == {"finetune-all"} and {r["checkpoint"] for r in rows} == {"untrained"}
    clip_ids, targets, _, outputs = predictions.read(predictions.path_for(target))
    test = [float(r["value"]) for r in rows if r["split"] == "test" and r["metric"] == "accuracy"]
    assert test == pytest.approx([accuracy(targets, o.astype(np.float32).argmax(1)) for o in outputs], abs=1e-6)
    assert not target.with_name("tmae.finetune-all.work").exists()
    finetune.main()  # up to date: nothing fitted again
    assert "is up to date" in capsys.readouterr().out
    intervals, comparisons = stats.compute(results / "demo", resamples=100)
    assert set(intervals.adaptation) == {"probe", "finetune-all"}
    pair = comparisons[comparisons.family == "fine-tuned vs probed"]
    assert set(zip(pair.adaptation_a, pair.adaptation_b, pair.checkpoint_b)) == {("finetune-all", "probe",
                                                                                  "untrained")}
    assert "tmae     finetune-all    untrained" in reproduce.finetuned_table(intervals, comparisons)
    drawn = figures.render_all(results / "demo", pitch / "figures")
    assert "finetuned_vs_probed.png" in {p.name for p in drawn}
    drawn_from = figures.intervals(results / "demo", adaptations=True)
    probed_only = drawn_from[drawn_from.adaptation == "probe"].assign(task="key")  # a task not fine-tuned on
    figure = figures.adaptation_figure(figures.whole_labels(pd.concat([drawn_from, probed_only])))
    assert [ax.get_title() for ax in figure.axes] == [tasks.TASKS["pitch"].title]
    assert set(figures.load(results / "demo").adaptation) == {"probe"}  # the other figures: probes only


@pytest.mark.slow
def test_the_plan_counts_the_windows_finetune_py_trains_and_scores(pitch, monkeypatch, tmp_path):
    """reproduce.py --plan's count, from the clips' metadata and a step's options, against the
    windows that pass through the encoder with gradients (trained) and without (scored)."""
    import finetune
    from common import plan
    from common.models.registry import model_class
    counted = {True: 0, False: 0}
    forward = finetuning.Adapted.forward

    def counting(self, x):
        counted[torch.is_grad_enabled()] += len(x)
        return forward(self, x)
    monkeypatch.setattr(finetuning.Adapted, "forward", counting)
    options = ["--demo", "--data-root", str(REPO / "data"), "--task", "pitch", "--model", "tmae", "--features-dir",
               str(pitch / "features"), "--results-dir", str(tmp_path), "--seeds", "2", "--epochs", "2",
               "--patience", "2", "--heads", "slp", "--precision", "float32"]
    monkeypatch.setattr(sys, "argv", ["finetune.py", *options])
    finetune.main()
    clips = plan._dataset_clips(tasks.TASKS["pitch"], None, REPO / "data", True, 8)
    fits, trained, scored = plan.finetuning_windows(finetune.parse_args(options), clips, checkpoints=1,
                                                    conditions=2, cls=model_class("tmae"))
    assert (fits * trained, fits * scored) == (counted[True], counted[False]) and fits == 2 and trained == 16


@pytest.mark.parametrize("snr,scored", [(None, ["clean", "deform_2"]), (["clean"], ["clean"]),
                                       (["deform_2"], ["clean", "deform_2"])])
def test_snr_scores_clean_and_the_conditions_named(pitch, snr, scored):
    import finetune
    folder = pitch / "features" / "demo" / "pitch" / "tmae" / "untrained"
    assert finetune._test_conditions(argparse.Namespace(snr=snr), folder) == scored


def test_snr_refuses_a_condition_the_features_lack_in_one_line(pitch):
    import finetune
    folder = pitch / "features" / "demo" / "pitch" / "tmae" / "untrained"
    with pytest.raises(UserError, match=r"^--snr 20: the features of .* were extracted for clean, deform_2 only$"):
        finetune._test_conditions(argparse.Namespace(snr=[20.0, "deform_2"]), folder)


@pytest.mark.slow
def test_two_processes_under_torchrun_fine_tune_as_one(pitch, monkeypatch):
    """Each process takes half of every batch of 4 windows: the mean of their gradients is the
    batch's, so both runs end with the same outputs (to float32 rounding)."""
    import finetune
    options = ["--demo", "--data-root", str(REPO / "data"), "--task", "pitch", "--model", "tmae", "--features-dir",
               str(pitch / "features"), "--seeds", "1", "--epochs", "1", "--heads", "slp", "--batch-size", "4",
               "--precision", "float32", "--device", "cpu"]
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "finetune.py", *options, "--results-dir", str(pitch / "two")], cwd=REPO,
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    monkeypatch.setattr(sys, "argv", ["finetune.py", *options, "--results-dir", str(pitch / "one")])
    finetune.main()
    two, one = (predictions.read(pitch / folder / "demo" / "pitch" / "tmae.finetune-all.predictions.npz")[3]
                for folder in ("two", "one"))
    assert np.allclose(two.astype(np.float32), one.astype(np.float32), atol=2e-2)


@pytest.mark.slow
@pytest.mark.parametrize("options,message", [
    (["--unfreeze", "last:0"], "argument --unfreeze: invalid value 'last:0'"),
    (["--encoder-lr", "2"], "argument --encoder-lr: invalid value '2': a learning rate between 0 and 1"),
    (["--task", "key"], "error: no features of tmae for key under"),
])
def test_bad_finetune_options_are_one_line(tmp_path, options, message):
    out = run_demo_script("finetune.py", "--model", "tmae", "--task", "pitch", "--features-dir", tmp_path, *options,
                          check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


def test_reproduce_fine_tunes_each_model_after_its_extraction_and_not_ast_or_key_on_the_demo(monkeypatch):
    import reproduce
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--demo", "--quick", "--models", "tmae", "ast", "--tasks",
                                      "pitch", "key", "--finetune", "all", "last:2"])
    graph = reproduce.steps(reproduce.parse_args(), reproduce.GRIDS["demo-quick"])
    tuned = [s for s in graph if s.stage == "finetune"]
    assert [s.name for s in tuned] == ["finetune-tmae-pitch-finetune-all", "finetune-tmae-pitch-finetune-last2"]
    assert all(s.after == ("extract-tmae-pitch",) for s in tuned)
    options = " ".join(map(str, tuned[1].prepare("cpu")))
    assert "--unfreeze last:2" in options and "--checkpoints untrained 20" in options and "--snr clean" in options
