"""The fault-injection suite: every fault goes in through the commands a researcher runs,
and every guarantee of docs/reliability.md is checked here.

Paths hold spaces and non-ASCII characters throughout (a copy of the demo data under
"données d'essai/", runs under "sorties à part/"), so no command may assume a plain path.
"""
import csv
import gzip
import json
import os
import re
import resource
import runpy
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from common import cli
from common.models import checkpoints
from common.models.registry import MODELS

REPO = Path(__file__).resolve().parent.parent
TRAIN_SCRIPTS = [f"{model}/train.py" for model in MODELS]
COMMANDS = [*TRAIN_SCRIPTS, "extract_features.py", "downstream.py", "finetune.py", "reproduce.py", "benchmarks/run.py",
            "common.data.subsets", "common.evaluation.reference", "common.models.registry"]


def _run(script, *options, check=True, **popen):
    """Run one of the repository's scripts as a user would; with `check`, it must succeed."""
    out = subprocess.run([sys.executable, script, *map(str, options)], cwd=REPO, capture_output=True, text=True,
                         **popen)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


# ---------------------------------------------------------------------------------------------
# Bad values for every option of every command
# ---------------------------------------------------------------------------------------------

class _Parsed(Exception):
    """Raised in place of parsing: carries the command's parser out of it."""


def _invoke(command, argv):
    """Run `command` (a script path or a module name) in this process as its command line would,
    with `argv`; returns its exit code. Everything it prints is left to capsys."""
    saved = sys.argv
    sys.argv = [command, *argv]
    try:
        if command.endswith(".py"):
            runpy.run_path(str(REPO / command), run_name="__main__")
        else:
            with warnings.catch_warnings():  # that the module was imported before, by this suite: as intended
                warnings.filterwarnings("ignore", "'common", RuntimeWarning)
                runpy.run_module(command, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def parser_of(command, monkeypatch):
    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)
    with monkeypatch.context() as patch:
        patch.setattr(cli.ArgumentParser, "parse_args", capture)
        try:
            _invoke(command, [])
        except _Parsed as parsed:
            return parsed.args[0]
    raise AssertionError(f"{command} does not parse its options with common.cli.ArgumentParser")


def bad_values(action, tmp_path):
    """Wrong values for one option, each with what its one-line error must say."""
    a_file = tmp_path / "a file.txt"
    a_file.write_text("not a folder")
    option = action.option_strings[-1]
    if action.choices is not None:
        return [("bogus", "choose from")]
    kind = getattr(action.type, "__qualname__", "")
    if action.type in (cli.positive_int, cli.positive_float):
        return [("0", "must be a positive"), ("x", "must be a positive")]
    if action.type is cli.fraction:
        return [("0", "must be a fraction in (0, 1]"), ("1.5", "must be a fraction in (0, 1]")]
    if action.type in (cli.non_negative_int, cli.non_negative_float):
        return [("-1", "must be 0 or a positive")]
    if action.type is cli.existing_file:
        return [(str(tmp_path / "no such file.csv"), "no such file"), (str(tmp_path), "is a folder")]
    if action.type is Path and option == "--compare":
        return [(str(tmp_path), "no results")]
    if action.type is cli.folder:  # every folder option: the data, the runs and every output
        return [(str(a_file), "is a file, not a folder")]
    if kind.startswith("model_argument"):
        return [("bogus", "choose from")]
    if kind == "layer_number":  # a layer the model lacks is refused once the model is known (test_extraction)
        return [("0", "not a layer"), ("middle", "not a layer")]
    if option == "--budget":
        return [("4", "is not a budget: steps:N"), ("steps:0", "is not a budget: steps:N")]
    if kind.startswith("_transforms"):
        return [("-tempo", "is not a transform of the chain")]
    if kind == "parse_snr":
        return [("loud", "clean"), ("nan", "clean"), ("inf", "clean")]
    if option == "--device":
        past = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: there is always one such
        return [("bogus", "choose from auto, cpu, cuda"), (past, "CUDA device")]
    if kind == "device_list":
        return [("gpu0", "devices separated by commas"), ("0", "devices separated by commas")]
    if option in ("--slurm-partition", "--slurm-account"):
        return [("two words", "a Slurm name")]
    if option == "--slurm-mem":
        return [("lots", "a size as sbatch --mem takes it")]
    if option == "--sbatch":
        return [("qos high", "an sbatch option without its dashes")]
    if option == "--runs-data":
        return [("nowhere", "no checkpoints")]
    if option == "--checkpoints":
        return [("bogus", "choose from")]
    if kind == "unfreeze_option":
        return [("last:0", "all, none, or last:K"), ("some", "all, none, or last:K")]
    if kind == "_learning_rate":
        return [("2", "a learning rate between 0 and 1"), ("x", "a learning rate between 0 and 1")]
    raise AssertionError(f"no bad value known for {option} ({action}): add one to bad_values")


def _context(command, tmp_path):
    """The options a command needs besides the bad one, pointing every output into tmp_path."""
    demo = ["--demo", "--data-root", str(REPO / "data")]
    if command in TRAIN_SCRIPTS:
        return [*demo, "--runs-dir", str(tmp_path / "runs"), "--subset", "1", "--max-steps", "1"]
    if command == "extract_features.py":
        return [*demo, "--model", "tmae", "--task", "pitch", "--features-dir", str(tmp_path / "features"),
                "--runs-dir", str(tmp_path / "runs")]
    if command == "finetune.py":  # the features of one tmae checkpoint, which --checkpoints names
        features = tmp_path / "features" / "demo" / "pitch"
        (features / "tmae" / "untrained").mkdir(parents=True, exist_ok=True)
        (features / "index.csv").write_text("clip_id,label,split\n")
        (features / "tmae" / "untrained" / "meta.json").write_text('{"layer": null, "provenance": {}}')
        np.save(features / "tmae" / "untrained" / "clean.npy", np.zeros((0, 256), np.float32))
        return [*demo, "--model", "tmae", "--task", "pitch", "--features-dir", str(tmp_path / "features"),
                "--results-dir", str(tmp_path / "results")]
    if command == "downstream.py":
        return [*demo, "--model", "handcrafted", "--task", "pitch", "--features-dir", str(tmp_path / "features"),
                "--results-dir", str(tmp_path / "results")]
    if command == "reproduce.py":
        return [*demo, "--quick", *(o for n in ("runs", "features", "results", "figures")
                                    for o in (f"--{n}-dir", str(tmp_path / n)))]
    if command == "benchmarks/run.py":
        return [*demo, "--only", "loader"]
    if command == "common.data.subsets":
        return demo
    return []


def _cases(monkeypatch, tmp_path):
    for command in COMMANDS:
        yield command, "--no-such-option", "1", "unrecognized arguments"
        for action in parser_of(command, monkeypatch)._actions:
            if not action.option_strings or action.nargs == 0:  # --help and flags take no value
                continue
            for value, says in bad_values(action, tmp_path):
                yield command, action.option_strings[-1], value, says


def test_a_bad_value_for_any_option_of_any_command_is_one_line_and_exit_code_2(monkeypatch, tmp_path, capsys,
                                                                            data_root):
    """Every option of every command, found in its parser (a new option without a bad value
    here fails the test): one line on stderr naming the value and what is valid, exit code 2,
    no traceback, nothing written."""
    monkeypatch.chdir(REPO)
    from common.models.registry import build
    checkpoints.save(tmp_path / "runs" / "demo" / "tmae" / "1" / "seed0" / "untrained.pt",  # one for --checkpoints
                     {"model_name": "tmae", "model": build("tmae").state_dict(), "step": 0})
    checked = 0
    for command, option, value, says in list(_cases(monkeypatch, tmp_path)):
        code = _invoke(command, [*_context(command, tmp_path), option, value])
        err = capsys.readouterr().err
        where = f"{command} {option} {value!r}"
        assert code == 2, f"{where}: exit code {code}; stderr: {err[-800:]}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, f"{where}: {err[-800:]}"
        assert says in lines[0] and (value in lines[0] or Path(value).name in lines[0]), f"{where}: {lines[0]}"
        checked += 1
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs" / "demo" / "1").exists()
    assert checked > 60


# ---------------------------------------------------------------------------------------------
# Unusable audio mixed into each dataset
# ---------------------------------------------------------------------------------------------

# What becomes of a clip whose file has the fault: None where it is used (stereo is averaged to
# mono, another sample rate is resampled), else the reason it is skipped with (a pattern: root
# reads a file of any mode, so there the unreadable file is a folder).
FAULTS = {"corrupt": "not a known audio container", "truncated": "truncated", "empty": "empty",
          "silent": "silent", "unreadable": "unreadable|not a regular file", "stereo": None, "resampled": None}


def inject(path, fault):
    """Spoil the audio file at `path` the way `fault` says, in its own format."""
    original = path.read_bytes()
    if fault == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(len(original)))
    elif fault == "truncated":
        path.write_bytes(original[:len(original) * 2 // 3])
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "unreadable":
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads whatever the mode says: a folder is what it cannot read
            path.unlink()
            path.mkdir()
    else:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(1)
        if fault == "silent":
            y, channels = np.zeros_like(y), 1
        elif fault == "stereo":
            y, channels = np.stack([y, 0.5 * y], 1), 2
        else:
            sr, channels = {16000: 22050}.get(sr, 48000), 1
            y = librosa.resample(y, orig_sr=sf.info(path).samplerate, target_sr=sr)
        info = sf.info(path)
        sf.write(path, y, sr, format=info.format, subtype=info.subtype if channels == 1 or info.format != "MP3"
                 else None)


def _keep_only(root, name, kept):
    """Cut the dataset copy at `root` down to the clips `kept`, through its own metadata files."""
    if name == "MTAT":
        index = root / "mtat_index.tsv.gz"
        with gzip.open(index, "rt") as f:
            lines = f.read().splitlines(keepends=True)
        with gzip.open(index, "wt") as f:
            f.writelines([lines[0], *(line for line in lines[1:] if line.split("\t", 1)[0] in kept)])
    elif name == "TinySOL":
        metadata = root / "TinySOL_metadata.csv"
        lines = metadata.read_text().splitlines(keepends=True)
        metadata.write_text("".join([lines[0], *(line for line in lines[1:]
                                                  if Path(line.split(",", 1)[0]).stem in kept)]))
    else:
        for key_file in (root / "keys").glob("*.txt"):
            if key_file.stem not in kept:
                key_file.unlink()


@pytest.fixture(scope="module")
def faulty_data(tmp_path_factory, data_root):
    """A small copy of each demo dataset (a few clips of every split) under a path with a space
    and accents, with one clip of every fault: (root, {dataset: {clip id: fault}})."""
    from common.data.dataset import load_dataset
    from common.data.subsets import select
    root = tmp_path_factory.mktemp("reliability") / "données d'essai"
    names, spoiled = ("MTAT", "TinySOL", "beatport_key"), {}
    for name in names:
        shutil.copytree(data_root / "demo" / name, root / "demo" / name, ignore=shutil.ignore_patterns(".cache"))
    for name in names:
        dataset = load_dataset(name, root, demo=True)
        # MTAT: the clips of the subset train.py reads; the others: clips of every split
        chosen = select(dataset.clips, "1", 0) if name == "MTAT" else dataset.clips[::len(dataset.clips) // 7][:7]
        others = [c for split in ("train", "valid", "test") for c in dataset.split(split)
                  if c not in chosen][:3] if name != "MTAT" else dataset.split("valid")[:3] + dataset.split("test")[:3]
        _keep_only(dataset.root, name, {c.id for c in [*chosen, *others]})
        spoiled[name] = {}
        for clip, fault in zip(chosen, FAULTS):
            inject(dataset.root / clip.path, fault)
            spoiled[name][clip.id] = fault
    return root, spoiled


def _skipped_as_expected(stderr, manifest, spoiled):
    expected = {clip: FAULTS[fault] for clip, fault in spoiled.items() if FAULTS[fault]}
    lines = [line for line in stderr.splitlines() if "unusable audio file" in line]
    assert len(lines) == 1 and f"skipped {len(expected)} unusable audio file(s)" in lines[0], stderr[-2000:]
    entries = {s["key"]: s for s in json.loads(manifest.read_text())["skipped"]}
    assert set(entries) == set(expected)
    for clip, reason in expected.items():
        assert re.search(reason, entries[clip]["skipped"]), (clip, entries[clip])
        # named by its path in the dataset's folder, the first three of them
        assert os.path.relpath(entries[clip]["path"], manifest.parents[2]) in lines[0] or len(expected) > 3


@pytest.mark.slow
def test_unusable_audio_is_skipped_named_and_counted_by_train_and_extract(faulty_data, tmp_path):
    root, spoiled = faulty_data
    runs = tmp_path / "sorties à part" / "runs"
    # a fault of each kind in the small demo datasets leaves some splits under 95% of their clips
    common = ["--data-root", str(root), "--demo", "--runs-dir", str(runs), "--partial-data"]
    out = _run("tmae/train.py", *common, "--subset", "1", "--max-steps", "1", "--batch-size", "2")
    cache = root / "demo" / "MTAT" / ".cache" / "sr16000"
    _skipped_as_expected(out.stderr, cache / "manifest.json", spoiled["MTAT"])
    config = json.loads((runs / "demo" / "tmae" / "1" / "seed0" / "config.json").read_text())
    used = {clip for clip, fault in spoiled["MTAT"].items() if FAULTS[fault] is None}
    assert used <= set(config["clips"]) and config["n_clips"] == 10 - (len(spoiled["MTAT"]) - len(used))

    for task, dataset in (("tagging", "MTAT"), ("pitch", "TinySOL"), ("key", "beatport_key")):
        out = _run("extract_features.py", *common, "--model", "tmae", "--task", task, "--snr", "clean",
                   "--features-dir", str(tmp_path / "sorties à part" / "features"))
        _skipped_as_expected(out.stderr, root / "demo" / dataset / ".cache" / "sr16000" / "manifest.json",
                             spoiled[dataset])
    # the stereo and resampled clips are in the cache, as long as their originals
    from common.data.audio_cache import AudioCache
    tinysol = AudioCache(root / "demo" / "TinySOL" / ".cache" / "sr16000")
    for clip, fault in spoiled["TinySOL"].items():
        assert (clip in tinysol) == (FAULTS[fault] is None), clip


# ---------------------------------------------------------------------------------------------
# train.py killed at any moment
# ---------------------------------------------------------------------------------------------

def _start(script, *options):
    return subprocess.Popen([sys.executable, script, *map(str, options)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _watch(process, folder, moment, signal_number=signal.SIGKILL, timeout=180):
    """Stop `process` with `signal_number` as soon as `moment()` holds (never, with moment None),
    polled every millisecond; with a `folder`, check all the while that nothing under it is ever
    seen half-written (without one the moment is caught sooner: reading every checkpoint at
    every poll would let it pass). Returns the process's stderr."""
    deadline = time.time() + timeout
    while process.poll() is None:
        if folder is not None:
            _everything_visible_is_whole(folder)
        if moment is not None and moment():
            process.send_signal(signal_number)
            break
        assert time.time() < deadline, "it ran too long"
        time.sleep(0.001)
    else:
        assert moment is None, f"it ended before the moment came: {process.stderr.read()[-2000:]}"
    _, err = process.communicate(timeout=120)
    if folder is not None:
        _everything_visible_is_whole(folder)
    return err


def _log_rows(run):
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _whole_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(None not in row and None not in row.values() for row in rows), f"{path} has a row cut short"


def _everything_visible_is_whole(folder):
    """Every file a reader can see under `folder` is complete: checkpoints and arrays load, JSON
    parses, every CSV row has all its fields. (A file may vanish between listing and reading: a
    stale one being replaced.)"""
    readers = {".pt": checkpoints.load, ".npy": np.load, ".json": lambda path: json.loads(path.read_text()),
               ".csv": _whole_csv}
    for path in folder.rglob("*"):
        if path.suffix in readers and not path.name.startswith("."):
            try:
                readers[path.suffix](path)
            except FileNotFoundError:
                continue


@pytest.mark.slow
@pytest.mark.parametrize("crops", ["tile", "random"])
def test_train_killed_at_any_moment_resumes_to_the_weights_of_an_uninterrupted_run(crops, tmp_path, data_root):
    # subset 1's ten clips (one tile of each, or two random crops): epochs of 3 or 5 steps of 4, the
    # weights kept after each
    options = ["--demo", "--subset", "1", "--batch-size", "4", "--crops", crops, "--crops-per-clip", "2",
               "--save-every", "1", "--checkpoint-every", "1", "--max-steps", "12"]
    _run("tmae/train.py", *options, "--runs-dir", tmp_path / "straight")
    runs = tmp_path / "sorties à part"
    run = runs / "demo" / "tmae" / "1" / "seed0"

    def writing(pattern):
        return lambda: any(run.glob(pattern))

    def logged(rows):
        return lambda: (run / "log.csv").exists() and (run / "log.csv").read_text().count("\n") > rows

    moments = [("writing untrained.pt, before any step", writing(".untrained.pt.*.tmp"), signal.SIGKILL),
               ("writing last.pt", writing(".last.pt.*.tmp"), signal.SIGKILL),
               ("writing a kept checkpoint", writing("checkpoints/.step*.tmp"), signal.SIGKILL),
               ("Ctrl-C between steps", logged(8), signal.SIGINT),
               ("between steps", logged(10), signal.SIGKILL)]
    if crops == "random":  # the same moments, met by the same code: what differs is the crops' random state
        moments = moments[2:3]
    for _, moment, signal_number in moments:
        err = _watch(_start("tmae/train.py", *options, "--runs-dir", runs, "--resume"), None, moment, signal_number)
        _everything_visible_is_whole(run)
        if signal_number == signal.SIGINT:  # Ctrl-C saves the step it stopped at
            assert "add --resume to continue" in err, err[-2000:]
            assert checkpoints.load(run / "last.pt")["step"] == int(_log_rows(run)[-1]["step"])
    _run("tmae/train.py", *options, "--runs-dir", runs, "--resume")

    straight = tmp_path / "straight" / "demo" / "tmae" / "1" / "seed0"
    kept = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert len(kept) >= 2 and kept == sorted(p.name for p in (run / "checkpoints").iterdir())
    for name in ["last.pt", "untrained.pt", *(f"checkpoints/{k}" for k in kept)]:
        a, b = checkpoints.load(straight / name)["model"], checkpoints.load(run / name)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    columns = ("step", "epoch", "loss", "lr")
    assert [[r[c] for c in columns] for r in _log_rows(run)] == [[r[c] for c in columns] for r in _log_rows(straight)]
    assert not list(run.rglob("*.tmp"))  # what the killed writers left was cleared by the next write

    out = _run("tmae/train.py", *options, "--runs-dir", runs, "--resume", "--max-steps", "14", "--batch-size", "8",
               check=False)
    assert out.returncode == 2 and "--batch-size 4 -> 8" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# extract_features.py and downstream.py killed, or run twice at once
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, data_root):
    runs = tmp_path_factory.mktemp("runs") / "sorties à part"
    _run("tmae/train.py", "--demo", "--subset", "1", "--max-steps", "2", "--batch-size", "4", "--runs-dir", runs)
    return runs


def _same_arrays(a, b):
    names = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
    assert names and names == sorted(p.relative_to(b) for p in b.rglob("*.npy"))
    for name in names:
        assert np.array_equal(np.load(a / name), np.load(b / name)), name


@pytest.mark.slow
def test_extraction_and_probes_killed_midway_finish_only_what_is_missing(trained_runs, tmp_path):
    extract = ["--demo", "--model", "tmae", "--task", "pitch", "--runs-dir", trained_runs, "--snr", "clean", "0",
               "deform_2", "--clips-per-split", "12"]
    probe = ["--demo", "--model", "tmae", "--task", "pitch", "--seeds", "1", "--epochs", "30"]
    straight, killed = tmp_path / "straight", tmp_path / "sorties à part"
    _run("extract_features.py", *extract, "--features-dir", straight / "features")
    _run("downstream.py", *probe, "--features-dir", straight / "features", "--results-dir", straight / "results")

    features = killed / "features" / "demo" / "pitch" / "tmae"
    # killed as the trained checkpoint's noisy features are computed: the untrained ones and its clean ones are done
    err = _watch(_start("extract_features.py", *extract, "--features-dir", killed / "features"), killed,
                 lambda: (features / "1" / "clean.npy").exists())
    done = {p: p.stat().st_mtime_ns for p in features.rglob("*.npy")}
    assert features / "1" / "clean.npy" in done and features / "untrained" / "deform_2.npy" in done, err
    out = _run("extract_features.py", *extract, "--features-dir", killed / "features")
    assert "tmae untrained: done already" in out.stdout and "tmae 1 snr0: 12 clips" in out.stdout
    assert "tmae 1 clean" not in out.stdout
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in done.items())  # finished files were left alone
    _same_arrays(straight / "features", killed / "features")

    results = killed / "results" / "demo" / "pitch"
    process = subprocess.Popen([sys.executable, "downstream.py", *map(str, probe), "--features-dir",
                                str(killed / "features"), "--results-dir", str(killed / "results")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "fitting" not in process.stdout.readline():  # killed as the probes are being fitted
        assert process.poll() is None
    _watch(process, killed, lambda: True)
    assert not results.exists() or not list(results.glob("tmae.*"))
    _run("downstream.py", *probe, "--features-dir", killed / "features", "--results-dir", killed / "results")
    assert (results / "tmae.csv").read_text() == (straight / "results" / "demo" / "pitch" / "tmae.csv").read_text()
    kept = [np.load(folder / "tmae.predictions.npz") for folder in (results, straight / "results" / "demo" / "pitch")]
    assert all(np.array_equal(kept[0][name], kept[1][name]) for name in kept[0].files)


@pytest.mark.slow
def test_two_extractions_of_the_same_features_at_once_both_finish_whole(trained_runs, tmp_path):
    extract = ["extract_features.py", "--demo", "--model", "tmae", "--task", "key", "--runs-dir", trained_runs,
               "--snr", "clean", "deform_2", "--clips-per-split", "6"]
    _run(*extract, "--features-dir", tmp_path / "alone")
    together = [_start(*extract, "--features-dir", tmp_path / "together") for _ in range(2)]
    _watch(together[0], tmp_path / "together", None)
    together[1].communicate(timeout=180)
    assert [p.returncode for p in together] == [0, 0]
    _same_arrays(tmp_path / "alone", tmp_path / "together")
    assert not list((tmp_path / "together").rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# A full disk, a read-only folder
# ---------------------------------------------------------------------------------------------

def _with_file_size_limit(limit):
    """A subprocess whose files cannot grow past `limit` bytes: writes beyond fail with EFBIG, as
    they fail with ENOSPC on a full disk (Python ignores SIGXFSZ, so the error reaches the code)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
def test_a_full_disk_stops_every_command_in_one_line_and_leaves_nothing_half_written(trained_runs, tmp_path):
    out_dir = tmp_path / "sorties à part"
    commands = [  # (file size limit, command, its output folder, the file it cannot write whole)
        (64_000, ["tmae/train.py", "--demo", "--subset", "1", "--max-steps", "1", "--runs-dir", out_dir / "runs"],
         out_dir / "runs", "untrained.pt"),
        (40_000_000, ["tmae/train.py", "--demo", "--subset", "1", "--max-steps", "1", "--runs-dir", out_dir / "runs-2"],
         out_dir / "runs-2", "last.pt"),  # untrained.pt fits; last.pt, written by a thread of its own, does not
        (16_000, ["extract_features.py", "--demo", "--model", "tmae", "--task", "pitch", "--snr", "clean",
                  "--clips-per-split", "12", "--runs-dir", trained_runs, "--features-dir", out_dir / "features"],
         out_dir / "features", "clean.npy"),
        (1_000, ["downstream.py", "--demo", "--model", "tmae", "--task", "pitch", "--seeds", "1", "--epochs", "5",
                 "--features-dir", out_dir / "features", "--results-dir", out_dir / "results"],
         out_dir / "results", "tmae.predictions.npz"),
    ]
    for limit, command, folder, file_name in commands:
        out = _run(*command, check=False, preexec_fn=_with_file_size_limit(limit))
        lines = [line for line in out.stderr.split("\n") if line.strip() and "%|" not in line]
        assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert f"cannot write {out_dir}" in lines[0] and file_name in lines[0] and "run the same command" in lines[0]
        _everything_visible_is_whole(out_dir)
        assert not list(folder.rglob(file_name)) and not list(out_dir.rglob("*.tmp"))
        _run(*command)  # room made: the same command finishes

    if os.geteuid() != 0:  # root writes into any folder whatever its mode
        (out_dir / "results").chmod(0o500)
        out = _run(*commands[3][1], "--overwrite", check=False)
        assert out.returncode == 2 and "is not writable" in out.stderr


# ---------------------------------------------------------------------------------------------
# Checkpoints that are not what they claim
# ---------------------------------------------------------------------------------------------

class _RunsCode:
    """Pickled, it would run a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.slow
def test_foreign_truncated_and_code_carrying_checkpoints_are_refused_in_one_line(trained_runs, tmp_path):
    from common.models.registry import build
    runs = tmp_path / "sorties à part"
    shutil.copytree(trained_runs, runs)
    last = runs / "demo" / "tmae" / "1" / "seed0" / "last.pt"
    whole, marker = last.read_bytes(), tmp_path / "the code ran"
    faults = {
        "of vggish, not of tmae": lambda: checkpoints.save(last, {"model_name": "vggish",
                                                                  "model": build("vggish").state_dict()}),
        "not a readable checkpoint": lambda: last.write_bytes(whole[:len(whole) // 2]),
        "never loaded": lambda: torch.save({"model_name": "tmae", "model": _RunsCode(marker)}, last),
    }
    for says, spoil in faults.items():
        spoil()
        out = _run("tmae/train.py", "--demo", "--subset", "1", "--max-steps", "3", "--batch-size", "4", "--resume",
                   "--runs-dir", runs, check=False)
        assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = _run("extract_features.py", "--demo", "--model", "tmae", "--task", "pitch", "--checkpoints", "1",
               "--runs-dir", runs, "--features-dir", tmp_path / "features", check=False)
    assert out.returncode == 2 and "never loaded" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()
