import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.data import captions
from common.data.dataset import load_dataset
from common.models.registry import MODELS, base_name, build, build_for, pretraining_objective
from common.training.epochs import Batch

REPO = Path(__file__).resolve().parent.parent
# The study's table (the model table of its README): name: (params, emb_dim, input seconds, n_mels, relative
# tolerance on params), met by each model's `table` variant where its code differs
TABLE = {"vggish-table": (3.7e6, 512, 3.75, 128, 0.03), "musicnn-table": (12.0e6, 200, 3.00, 96, 0.03),
         "ast": (87.0e6, 768, 5.12, 128, 0.03), "clmr": (2.5e6, 512, 2.68, None, 0.07),
         "tmae": (7.2e6, 256, 4.85, 96, 0.03)}
# What the study's code builds, measured by instantiating its model definitions (MusiCNN's
# port: 808,577 less the 128 parameters of a BatchNorm whose output it never uses)
CODE = {"vggish": (3_687_348, 59049), "musicnn": (808_449, 48000), "ast": (None, 81866), "clmr": (2_663_424, 59049)}
# TUNe's paper counts the encoder without its projection head: TUNe 2.1 M, TUNe+ 2.2 M, and
# CLMR's SampleCNN 2.4 M
WITHOUT_HEADS = {"tune": 2.1e6, "tune-plus": 2.2e6, "clmr": 2.4e6}


@pytest.mark.slow
def test_models_json_lists_the_code_and_the_table_variants():
    out = subprocess.run([sys.executable, "-m", "common.models.registry", "--json"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(TABLE) | set(CODE) <= set(rows)
    assert {"vggish-librosa", "musicnn-table-librosa", "ast-librosa", "tmae-librosa"} <= set(rows)
    assert "clmr-librosa" not in rows  # a waveform model has no mel front end
    for name, (params, emb_dim, seconds, n_mels, tolerance) in TABLE.items():
        row = rows[name]
        assert abs(row["params"] - params) / params <= tolerance, name
        assert row["emb_dim"] == emb_dim and row["n_mels"] == n_mels
        assert abs(row["input_seconds"] - seconds) <= 0.005, name
        assert row["sample_rate"] == (22050 if name == "clmr" else 16000)
    for name, (params, samples) in CODE.items():
        assert rows[name]["input_samples"] == samples, name
        assert params is None or rows[name]["params"] == params, name
    assert rows["musicnn-librosa"]["params"] == rows["musicnn"]["params"] + 2  # the librosa recipe's input BatchNorm
    for name, params in WITHOUT_HEADS.items():
        assert abs(rows[name]["embedding_params"] - params) / params <= 0.05, name
    assert rows["mulap"]["embedding_params"] == rows["musicnn"]["embedding_params"]  # MuLaP's backbone: MusiCNN
    strategies = [rows[f"clmr-{s}"] for s in ("same-segment", "regional")]
    assert all({**r, "name": "clmr"} == rows["clmr"] for r in strategies)  # the same network, other objectives


@pytest.fixture(scope="module")
def demo_batch(data_root):
    """Two real demo clips with their tags, per sample rate."""
    dataset = load_dataset("MTAT", data_root, demo=True)
    clips = [c for c in dataset.split("train")][:4]
    from common.data.mtat import TOP50
    labels = torch.tensor([[t in c.labels["tags"] for t in TOP50] for c in clips], dtype=torch.float32)
    caches = {sr: dataset.audio(sr, clips=clips) for sr in (16000, 22050)}
    return clips, labels, caches


# The study's CNNs and TMAE in the fast tier; AST's steps, the regional strategy's three-window
# crops, TUNe's and MuLaP's in the slow one
@pytest.mark.parametrize("name", [m if m in ("vggish", "musicnn", "clmr", "tmae", "tune-plus") else
                                  pytest.param(m, marks=pytest.mark.slow)
                                  for m in [*MODELS, "tune-plus", "clmr-regional"]])
def test_shapes_on_a_real_batch_and_a_few_steps_lower_the_loss(name, demo_batch):
    clips, labels, caches = demo_batch
    if name in ("clmr-regional", "mulap", "ast"):  # several windows an item, or AST's cost: two items do
        clips, labels = clips[:2], labels[:2]
    texts = [captions.from_tags(c.labels["tags"], c.id) for c in clips]
    torch.manual_seed(0)
    model = build_for(name, vocabulary=captions.vocabulary(texts)) if name == "mulap" else build(name)
    cache = caches[model.sample_rate]
    keys, rng = [c.id for c in clips], np.random.default_rng(0)
    audio = torch.from_numpy(cache.random_crops(keys, model.input_samples * model.crop_windows, rng))
    model.eval()
    with torch.no_grad():
        embedding = model.embed(audio[:, :model.input_samples])
        tokens = captions.tokenize(texts, model.vocabulary, model.max_tokens) if name == "mulap" else ()
        out = model(audio, *tokens)
    assert embedding.shape == (len(clips), model.emb_dim) and torch.isfinite(embedding).all()
    if name == "tmae":
        predicted, target, mask = out
        assert predicted.shape == target.shape == (len(clips), 114, 256)
        assert mask.sum(dim=1).tolist() == [114 - int(114 * 0.25)] * len(clips)
    elif name.startswith("clmr"):  # a frame per input window: three for the regional strategy
        assert out.shape == (len(clips), model.crop_windows, 64)
    elif name.startswith("tune"):
        assert out.shape == (len(clips), 64)
    elif name == "mulap":  # a prediction per caption token over the vocabulary, a match logit per item
        assert out[0].shape == (*tokens[0].shape, len(model.vocabulary)) and out[1].shape == (len(clips),)
    else:
        assert out.shape == (len(clips), 50)
    if name == "tune-plus":
        return  # trained by the same objective as tune, below

    objective, _, views = pretraining_objective(base_name(name))
    batch = Batch(audio.repeat(views, 1), labels, views, texts)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4 if name == "ast" else 1e-3)
    losses = []
    for _ in range(4):
        torch.manual_seed(0)  # the same dropout, masks and augmentations at every step
        loss = objective(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
