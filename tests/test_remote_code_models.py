"""Glue of the remote-code families (Aero-1-Audio, Baichuan-Omni-1.5, Audio Flamingo 2).

Their real code and weights are not available offline, so each adapter runs against a stand-in of
the same structure: a tiny random transformers Qwen2 LM placed where the real model keeps its LM,
and a fake processor that expands audio placeholders by the real processor's rule (the Aero fake
uses the real WhisperFeatureExtractor). What only real weights can show is listed in
docs/remote-code-models.md.
"""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from amlib.data import load_audio
from amlib.data.audio import SAMPLE_RATE
from amlib.models.aero_audio import AeroAudioAdapter, split_chunks, tokens_for_chunk
from amlib.models.audio_flamingo2 import AudioFlamingo2Adapter, audio_windows, check_loaded_keys
from amlib.models.baichuan_omni import BaichuanOmniAdapter, frontend, tokens_for_piece
from amlib.models.remote_code import (
    SnapshotMissingError, default_snapshot_dir, resolve_snapshot, snapshot_revision,
)
from amlib.runner import evaluate
from amlib.tasks import TASKS
from conftest import noise

SGR = TASKS["SGR"]


def tiny_lm(tokenizer, cls=None, **config_extra):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    for name, value in config_extra.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    return (cls or Qwen2ForCausalLM)(config).eval()


def fresh_tokenizer(special: list[str], **extra):
    from amlib.models.assets import smollm2_tokenizer

    tok = smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": special, **extra})
    return tok


def covered(ids: torch.Tensor, spans) -> np.ndarray:
    mask = np.zeros(len(ids), bool)
    for start, end in spans:
        mask[start:end] = True
    return mask


# ---------------------------------------------------------------- local snapshots
@pytest.mark.parametrize("adapter, repo", [
    (AeroAudioAdapter, "lmms-lab/Aero-1-Audio-1.5B"),
    (BaichuanOmniAdapter, "baichuan-inc/Baichuan-Omni-1d5"),
    (AudioFlamingo2Adapter, "nvidia/audio-flamingo-2"),
])
def test_missing_snapshot_says_what_to_download_and_where(adapter, repo, tmp_path, monkeypatch):
    monkeypatch.setenv("AMLIB_SNAPSHOTS", str(tmp_path / "snapshots"))
    folder = tmp_path / "not-there"
    with pytest.raises(SnapshotMissingError) as err:
        adapter.from_pretrained(str(folder))
    message = str(err.value)
    assert f"hf download {repo} --local-dir {folder}" in message and "does not exist" in message
    assert adapter.snapshot.transformers_version in message
    with pytest.raises(SnapshotMissingError, match=re.escape(str(default_snapshot_dir(repo)))):
        adapter.from_pretrained(repo)  # a hub id is looked up under AMLIB_SNAPSHOTS, never downloaded
    with pytest.raises(ValueError, match="local_files_only=False"):
        adapter.from_pretrained(str(folder), local_files_only=False)


def test_incomplete_snapshot_names_the_missing_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SnapshotMissingError, match="missing modeling_omni.py, processor_omni.py"):
        BaichuanOmniAdapter.from_pretrained(str(tmp_path))


def test_flamingo_also_needs_the_language_model_snapshot(tmp_path):
    root = tmp_path / "af2"
    for name in AudioFlamingo2Adapter.snapshot.required:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    with pytest.raises(SnapshotMissingError, match="hf download Qwen/Qwen2.5-3B --local-dir"):
        AudioFlamingo2Adapter.from_pretrained(str(root), language_model=str(tmp_path / "qwen"))


def test_hub_id_resolves_to_the_snapshot_root_and_its_recorded_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("AMLIB_SNAPSHOTS", str(tmp_path))
    folder = tmp_path / "lmms-lab--Aero-1-Audio-1.5B"
    (folder / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert resolve_snapshot("lmms-lab/Aero-1-Audio-1.5B", AeroAudioAdapter.snapshot, "aero") == folder
    assert snapshot_revision(folder) == "local-unknown"
    (folder / ".cache" / "huggingface" / "download" / "config.json.metadata").write_text("abc123\netag\n1.0\n")
    assert snapshot_revision(folder) == "abc123"


# ---------------------------------------------------------------- Aero-1-Audio
AERO_LIKE_TEMPLATE = (  # ChatML, each audio entry -> the audio token and a newline (the Aero processor's format)
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'audio_url' %}<|AUDIO|>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class FakeAeroProcessor:
    """Mimics the remote AeroProcessor: 30 s Whisper features, placeholder expanded per audio."""

    audio_token = "<|AUDIO|>"

    def __init__(self):
        from transformers import WhisperFeatureExtractor

        self.tokenizer = fresh_tokenizer([self.audio_token])
        self.audio_processor = WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE,
                                                       hop_length=160, chunk_length=30)

    def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=False):
        return self.tokenizer.apply_chat_template(messages, chat_template=AERO_LIKE_TEMPLATE, tokenize=tokenize,
                                                  add_generation_prompt=add_generation_prompt)

    def __call__(self, text, audios, sampling_rate, return_tensors="pt"):
        features = self.audio_processor(audios, sampling_rate=sampling_rate, return_attention_mask=True,
                                        padding="max_length", return_tensors="pt")
        after_conv = (features["attention_mask"].sum(-1) - 1) // 2 + 1
        counts = ((after_conv - 2) // 2 + 1).tolist()
        pieces = text.split(self.audio_token)
        assert len(pieces) - 1 == len(audios)
        text = pieces[0] + "".join(self.audio_token * n + rest for n, rest in zip(counts, pieces[1:]))
        ids = self.tokenizer(text, return_tensors="pt")
        return {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"],
                "audio_values": features["input_features"], "audio_attention_mask": features["attention_mask"]}


class FakeAero(torch.nn.Module):
    """The remote AeroForConditionalGeneration's layout: `.language_model` is a Qwen2ForCausalLM."""

    def __init__(self, lm, audio_token_index):
        super().__init__()
        self.language_model = lm
        self.config = SimpleNamespace(audio_token_index=audio_token_index)

    def generate(self, input_ids, attention_mask, audio_values, audio_attention_mask, **kwargs):
        after_conv = (audio_attention_mask.sum(-1) - 1) // 2 + 1
        if int((input_ids == self.config.audio_token_index).sum()) != int(((after_conv - 2) // 2 + 1).sum()):
            raise ValueError("audio features and placeholder tokens do not match")  # as the real model
        return self.language_model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


@pytest.fixture(scope="module")
def aero():
    processor = FakeAeroProcessor()
    audio_id = processor.tokenizer.convert_tokens_to_ids(processor.audio_token)
    model = FakeAero(tiny_lm(processor.tokenizer), audio_id)
    return AeroAudioAdapter(model, processor, model_id="fake-aero", revision="test")


def test_aero_chunk_rule_keeps_every_sample():
    chunks = split_chunks(noise(95.3))
    assert [len(c) for c in chunks] == [480_000] * 3 + [int(95.3 * SAMPLE_RATE) - 1_440_000]
    tail = split_chunks(noise(60.01))  # 160 samples left over: padded to 0.5 s, not dropped
    assert len(tail) == 3 and len(tail[-1]) == SAMPLE_RATE // 2 and np.any(tail[-1][:160] != 0)
    assert tokens_for_chunk(480_000) == 750 and tokens_for_chunk(159) == 0 and tokens_for_chunk(8000) == 12


def test_aero_granularity_matches_the_paper():
    granularity = AeroAudioAdapter.encoding_granularity()
    assert granularity["tokens_per_second"] == 25.0
    assert granularity["max_audio_tokens"] == 22_500  # Table 11: 15 min, 22,500 tokens


@pytest.mark.parametrize("item", ["short", "long"])
def test_aero_on_embedded_items(aero, embedded_items, item, tmp_path):
    sample = embedded_items[item]
    audio = load_audio(sample.audio_path)
    prepared = aero.build_inputs(audio, SGR, sample.question, sample.choices)
    ids = prepared.tensors["input_ids"][0]
    seconds = len(audio) / SAMPLE_RATE
    assert prepared.n_windows == len(prepared.audio_spans) == int(np.ceil(seconds / 30))
    assert prepared.audio_tokens == aero.expected_audio_tokens(seconds)
    assert abs(prepared.audio_tokens - 25 * seconds) <= prepared.n_windows
    assert (covered(ids, prepared.audio_spans) == (ids == aero.audio_token_id).numpy()).all()
    row = evaluate(aero, [sample], tmp_path / "pred.jsonl", progress=False)[0]
    assert row["error"] is None and row["audio_tokens"] == prepared.audio_tokens
    assert row["audio_windows"] == prepared.n_windows


def test_aero_prompt_is_the_chat_template_with_the_task_text(aero):
    prepared = aero.build_inputs(noise(40.0), SGR, "q", ["male", "female"])
    text = aero.processor.tokenizer.decode(prepared.tensors["input_ids"][0])
    assert text.startswith(f"<|im_start|>system\n{SGR.system_prompt}<|im_end|>\n<|im_start|>user\n<|AUDIO|>")
    assert text.endswith(f"<|AUDIO|>\n{SGR.user_prompt('q', ['male', 'female'])}<|im_end|>\n<|im_start|>assistant\n")


def test_aero_generation_is_greedy_and_deterministic(aero):
    prepared = aero.build_inputs(noise(31.0), SGR, "q", ["male", "female"])
    first, second = aero.generate(prepared, 4), aero.generate(prepared, 4)
    assert first.text == second.text and 1 <= first.new_tokens <= 4


def test_aero_refuses_audio_past_15_minutes(aero):
    with pytest.raises(ValueError, match="exceeds the supported maximum of 900 s"):
        aero.build_inputs(np.zeros(int(900.5 * SAMPLE_RATE), np.float32), SGR, "q", ["male", "female"])


def test_aero_layers_and_token_id_check(aero):
    assert aero.decoder_layers() is aero.model.language_model.model.layers
    assert aero.language_model().model.layers is aero.decoder_layers()
    bad = FakeAero(aero.model.language_model, aero.audio_token_id + 1)
    with pytest.raises(ValueError, match="audio_token_index"):
        AeroAudioAdapter(bad, aero.processor, model_id="x")


# ---------------------------------------------------------------- Baichuan-Omni-1.5
RELEASED_AUDIO_FRONTEND = dict(  # baichuan-omni/model/config.json of github.com/baichuan-inc/Baichuan-Omni-1.5
    max_audio_seconds=30, sampling_rate=16000, hop_length=160, n_fft=400, kernel_size=3, stride_size=2,
    avg_pooler=4, split_overlap=0.0,
)
BAICHUAN_TOKENS = ["<B_SYS>", "<C_Q>", "<C_A>",
                   "<audio_start_baichuan>", "<audio_end_baichuan>", "<audio_pad_baichuan>"]


class FakeOmniProcessor:
    """Mimics OmniMMProcessor: reads the tagged audio file, cuts 30 s pieces, drops pieces shorter
    than n_fft or yielding no token, and writes one start/pad.../end run."""

    def __init__(self, tokenizer, audio):
        self.tokenizer, self.audio = tokenizer, audio
        start, end = tokenizer.convert_ids_to_tokens([audio.audio_start_token_id, audio.audio_end_token_id])
        self.tag = re.compile(re.escape(start) + "(.*?)" + re.escape(end), re.S)

    def bridge_lengths(self, n_samples: int) -> list[int]:
        a, size = self.audio, self.audio.max_audio_seconds * self.audio.sampling_rate
        lengths = []
        for start in range(0, n_samples, size):
            piece = min(size, n_samples - start)
            if piece < a.n_fft:
                continue
            frames = min(size // a.hop_length, piece // a.hop_length + 1)
            encoder = (frames + 2 * (a.kernel_size // 2) - a.kernel_size) // 1 + 1
            encoder = (encoder + 2 * (a.kernel_size // 2) - a.kernel_size) // a.stride_size + 1
            if encoder // a.avg_pooler > 0:
                lengths.append(encoder // a.avg_pooler)
        return lengths

    def __call__(self, texts):
        (text,) = texts
        encode = lambda s: self.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
        ids, bridges, pos = [], [], 0
        for match in self.tag.finditer(text):
            wave, _ = sf.read(json.loads(match.group(1))["path"], dtype="float32")
            lengths = self.bridge_lengths(len(wave))
            a = self.audio
            ids += encode(text[pos:match.start()]) + [a.audio_start_token_id]
            ids += [a.audio_pad_token_id] * sum(lengths) + [a.audio_end_token_id]
            bridges += lengths
            pos = match.end()
        ids += encode(text[pos:])
        input_ids = torch.tensor([ids])
        return SimpleNamespace(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                               audios=torch.zeros(len(bridges), 128, 4), encoder_length=torch.tensor(bridges) * 8,
                               bridge_length=torch.tensor(bridges))


def fake_omni_class():
    from transformers import Qwen2ForCausalLM

    class FakeOmni(Qwen2ForCausalLM):
        """OmniForCausalLM's layout: a causal LM whose `.model.layers` are the decoder layers."""

        def generate(self, input_ids, audios=None, encoder_length=None, bridge_length=None, **kwargs):
            if int((input_ids == self.config.audio_config.audio_pad_token_id).sum()) != int(bridge_length.sum()):
                raise ValueError("audio tokens and pad placeholders do not match")
            return super().generate(input_ids=input_ids, **kwargs)

    return FakeOmni


def make_baichuan(max_positions: int = 8192) -> BaichuanOmniAdapter:
    tok = fresh_tokenizer(BAICHUAN_TOKENS)
    ids = dict(zip(("audio_start_token_id", "audio_end_token_id", "audio_pad_token_id"),
                   tok.convert_tokens_to_ids(BAICHUAN_TOKENS[3:])))
    audio = SimpleNamespace(**RELEASED_AUDIO_FRONTEND, **ids)
    model = tiny_lm(tok, fake_omni_class(), audio_config=audio, max_position_embeddings=max_positions)
    return BaichuanOmniAdapter(model, FakeOmniProcessor(tok, audio), model_id="fake-baichuan", revision="test")


@pytest.fixture(scope="module")
def baichuan():
    return make_baichuan()


def test_baichuan_rate_and_limit_come_from_the_config(baichuan):
    fe = frontend(baichuan.model.config)
    assert tokens_for_piece(480_000, fe) == 375
    granularity = BaichuanOmniAdapter.encoding_granularity(baichuan.model.config)
    assert granularity["tokens_per_second"] == 12.5 and granularity["max_audio_seconds"] == 8192 / 12.5


@pytest.mark.parametrize("item", ["short", "long"])
def test_baichuan_on_embedded_items(baichuan, embedded_items, item, tmp_path):
    sample = embedded_items[item]
    audio = load_audio(sample.audio_path)
    prepared = baichuan.build_inputs(audio, SGR, sample.question, sample.choices)
    ids = prepared.tensors["input_ids"][0]
    seconds = len(audio) / SAMPLE_RATE
    assert len(prepared.audio_spans) == 1 and prepared.n_windows == int(np.ceil(seconds / 30))
    assert prepared.audio_tokens == baichuan.expected_audio_tokens(seconds)
    assert prepared.audio_tokens == int(prepared.tensors["bridge_length"].sum())
    assert abs(prepared.audio_tokens - 12.5 * seconds) <= prepared.n_windows
    assert (covered(ids, prepared.audio_spans) == (ids == baichuan.audio_pad_id).numpy()).all()
    start, end = prepared.audio_spans[0]
    tok = baichuan.processor.tokenizer
    assert tok.convert_ids_to_tokens([int(ids[start - 1]), int(ids[end])]) == BAICHUAN_TOKENS[3:5]
    row = evaluate(baichuan, [sample], tmp_path / "pred.jsonl", progress=False)[0]
    assert row["error"] is None and row["audio_tokens"] == prepared.audio_tokens


def test_baichuan_prompt_roles_and_audio_file(baichuan):
    prepared = baichuan.build_inputs(noise(5.0), SGR, "q", ["male", "female"])
    text = baichuan.processor.tokenizer.decode(prepared.tensors["input_ids"][0])
    assert text.startswith(f"<B_SYS>{SGR.system_prompt}<C_Q><audio_start_baichuan><audio_pad_baichuan>")
    assert text.endswith(f"<audio_end_baichuan>{SGR.user_prompt('q', ['male', 'female'])}<C_A>")


def test_baichuan_short_tail_is_padded_not_dropped(baichuan):
    audio = noise(30.0 + 200 / SAMPLE_RATE)  # 200 samples past 30 s: the processor alone would drop them
    assert baichuan.processor.bridge_lengths(len(audio)) == [375]
    prepared = baichuan.build_inputs(audio, SGR, "q", ["male", "female"])
    assert prepared.n_windows == 2 and prepared.audio_tokens == 375 + tokens_for_piece(SAMPLE_RATE // 2, baichuan.fe)


def test_baichuan_refuses_inputs_past_its_positions():
    small = make_baichuan(max_positions=2000)  # 160 s of audio at 12.5 tokens/s
    with pytest.raises(ValueError, match="exceeds the supported maximum of 160 s"):
        small.build_inputs(noise(161.0), SGR, "q", ["male", "female"])
    with pytest.raises(ValueError, match="max_position_embeddings=2000"):
        small.build_inputs(noise(158.0), SGR, "q", ["male", "female"])


def test_baichuan_generation_and_layers(baichuan):
    prepared = baichuan.build_inputs(noise(12.0), SGR, "q", ["male", "female"])
    first, second = baichuan.generate(prepared, 3), baichuan.generate(prepared, 3)
    assert first.text == second.text and 1 <= first.new_tokens <= 3
    assert baichuan.decoder_layers() is baichuan.model.model.layers and baichuan.language_model() is baichuan.model


# ---------------------------------------------------------------- Audio Flamingo 2
class FakeFlamingo(torch.nn.Module):
    """The AF2 Flamingo layout: `.lang_encoder` is the (cross-attention extended) Qwen2 causal LM."""

    def __init__(self, lm):
        super().__init__()
        self.lang_encoder = lm

    def generate(self, audio_x, audio_x_mask, lang_x, attention_mask=None, eos_token_id=None, **kwargs):
        if audio_x.ndim != 3 or audio_x.shape[2] != 160_000 or audio_x_mask.shape != audio_x.shape[:2]:
            raise ValueError(f"audio_x {tuple(audio_x.shape)} is not (batch, windows, 160000)")
        return self.lang_encoder.generate(input_ids=lang_x, attention_mask=attention_mask,
                                          eos_token_id=eos_token_id, **kwargs)


@pytest.fixture(scope="module")
def flamingo():
    tok = fresh_tokenizer(["<audio>", "<|endofchunk|>", "<|PAD_TOKEN|>"], sep_token="<SEP>")
    return AudioFlamingo2Adapter(FakeFlamingo(tiny_lm(tok)), tok, model_id="fake-af2", revision="test")


def test_flamingo_windows_follow_the_official_reader():
    windows = audio_windows(noise(25.0))
    assert windows.shape == (3, 160_000) and np.abs(windows).max() == pytest.approx(1.0, abs=1e-4)
    assert not windows[2, 5 * SAMPLE_RATE:].any()  # zero padding after the last 5 s
    assert audio_windows(np.zeros(100, np.float32)).shape == (1, 160_000)  # silence stays silence, no NaN


@pytest.mark.parametrize("item", ["short", "long"])
def test_flamingo_on_embedded_items(flamingo, embedded_items, item, tmp_path):
    sample = embedded_items[item]
    audio = load_audio(sample.audio_path)
    prepared = flamingo.build_inputs(audio, SGR, sample.question, sample.choices)
    ids = prepared.tensors["input_ids"][0]
    assert prepared.n_windows == int(np.ceil(len(audio) / 160_000)) == prepared.tensors["audio_x"].shape[1]
    assert prepared.audio_tokens == 1 == flamingo.expected_audio_tokens(len(audio) / SAMPLE_RATE)
    assert (covered(ids, prepared.audio_spans) == (ids == flamingo.audio_token_id).numpy()).all()
    row = evaluate(flamingo, [sample], tmp_path / "pred.jsonl", progress=False)[0]
    assert row["error"] is None and row["audio_windows"] == prepared.n_windows


def test_flamingo_prompt_is_lowercased_with_audio_marker_and_separator(flamingo):
    prepared = flamingo.build_inputs(noise(3.0), SGR, "q", ["male", "female"])
    text = flamingo.processor.tokenizer.decode(prepared.tensors["input_ids"][0])
    assert text == f"<audio>{SGR.system_prompt.lower()}\n{SGR.user_prompt('q', ['male', 'female']).lower()}<SEP>"


def test_flamingo_refuses_audio_past_5_minutes_and_long_prompts(flamingo):
    with pytest.raises(ValueError, match="exceeds the supported maximum of 300 s"):
        flamingo.build_inputs(noise(300.5), SGR, "q", ["male", "female"])
    with pytest.raises(ValueError, match="512-token text input"):
        flamingo.build_inputs(noise(1.0), TASKS["SER"], "word " * 600, ["a", "b", "c", "d"])


def test_flamingo_generation_layers_and_checkpoint_keys(flamingo):
    prepared = flamingo.build_inputs(noise(12.0), SGR, "q", ["male", "female"])
    first, second = flamingo.generate(prepared, 3), flamingo.generate(prepared, 3)
    assert first.text == second.text and 1 <= first.new_tokens <= 3
    assert flamingo.decoder_layers() is flamingo.model.lang_encoder.model.layers
    assert flamingo.language_model() is flamingo.model.lang_encoder
    check_loaded_keys(["lang_encoder.lm_head.weight"], [])
    with pytest.raises(RuntimeError, match="1 missing audio keys"):
        check_loaded_keys(["lang_encoder.gated_cross_attn_layers_sound.0.attn.to_q.weight"], [])
