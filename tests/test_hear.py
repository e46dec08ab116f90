"""The checkpoints outside this repository's scripts: the HEAR 2021 API and the Python API."""
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import save_untrained

from common.cli import UserError
from common.data.audio import as_16_bit
from common.evaluation.extraction import embed_clips
from common.models import hear
from common.models.pretrained import load
from common.models.registry import MODELS


@pytest.mark.parametrize("model_id", [pytest.param(m, marks=pytest.mark.slow) if m == "ast" else m for m in MODELS])
def test_hear_functions_follow_the_contract_on_every_models_save_untrained(model_id, tmp_path):
    model = hear.load_model(str(save_untrained(model_id, tmp_path / "untrained.pt")))
    assert isinstance(model, torch.nn.Module)
    assert model.scene_embedding_size == model.timestamp_embedding_size == model.encoder.emb_dim
    rate = model.sample_rate
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((2, int(0.3 * rate)), dtype=np.float32)) * 0.1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.dtype == timestamps.dtype == torch.float32
    assert embeddings.shape == (2, 7, model.timestamp_embedding_size)  # centres 0, 50, ..., 300 ms
    assert timestamps.shape == (2, 7) and torch.equal(timestamps[1], torch.arange(7) * 50.0)
    assert (timestamps.diff(dim=1) > 0).all() and torch.isfinite(embeddings).all()
    assert embeddings.device == timestamps.device == audio.device
    # a timestamp's embedding is the model's embedding of the window centred on it, at 16 bits
    length = model.encoder.input_samples
    centred = torch.nn.functional.pad(torch.from_numpy(as_16_bit(audio[0].numpy())), (length // 2, length))[:length]
    with torch.no_grad():
        torch.testing.assert_close(embeddings[0, 0], model.encoder.embed(centred[None])[0], rtol=1e-4, atol=1e-5)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, model.scene_embedding_size) and scene.dtype == torch.float32


def test_scene_embeddings_are_the_features_extract_features_writes(tmp_path):
    model = hear.load_model(str(save_untrained("vggish", tmp_path / "untrained.pt")))
    clips = [np.random.default_rng(i).standard_normal(int(s * 16000)).astype(np.float32) * 0.1
             for i, s in enumerate((2.0, 9.5))]
    features = np.zeros((2, 512), np.float32)
    embed_clips(model.encoder, lambda i: as_16_bit(clips[i]), 2, features, 4, torch.device("cpu"))
    for clip, expected in zip(clips, features):
        scene = hear.get_scene_embeddings(torch.from_numpy(clip)[None], model)[0]
        np.testing.assert_allclose(scene.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_a_file_that_is_not_a_checkpoint_of_this_project_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.pt").write_text("not weights")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    for path, says in [(tmp_path / "notes.pt", "not a readable checkpoint"), (tmp_path / "foreign.pt", "no model name"),
                       (tmp_path / "gone.pt", "no checkpoint at")]:
        with pytest.raises(UserError, match=says) as error:
            hear.load_model(str(path))
        assert "\n" not in str(error.value)


def test_the_python_api_embeds_a_44_1_khz_file_per_clip_per_window_and_per_layer(tmp_path):
    model = load(save_untrained("clmr", tmp_path / "untrained.pt"))
    y = np.random.default_rng(0).standard_normal(44100 * 7).astype(np.float32) * 0.1
    sf.write(tmp_path / "song.wav", y, 44100, subtype="FLOAT")
    clip = model.embed_file(tmp_path / "song.wav")
    np.testing.assert_allclose(clip, model.embed(y, 44100), rtol=1e-5, atol=1e-6)
    frames, starts = model.embed(torch.from_numpy(y), 44100, per_window=True)
    assert frames.shape == (2, 512) and starts.tolist() == pytest.approx([0.0, 59049 / 22050])  # 7 s: two 2.68 s
    np.testing.assert_allclose(frames.mean(axis=0), clip, rtol=1e-5, atol=1e-6)
    layers = model.embed(y, 44100, layers=True)
    assert len(layers) == model.encoder.layer_count() + 1 == 12
    assert [len(layer) for layer in layers] == [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512, 512]
    np.testing.assert_allclose(layers[-1], clip, rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="mono"):
        model.embed(np.zeros((2, 100)), 44100)


def test_the_device_side_rounding_is_the_caches_bit_for_bit():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.uniform(-1.2, 1.2, 100_000), (np.arange(-600, 600) + 0.5) / 32767]).astype(np.float32)
    np.testing.assert_array_equal(hear._as_16_bit(torch.from_numpy(y)).numpy(), as_16_bit(y))
