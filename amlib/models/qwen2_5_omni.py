"""Qwen2.5-Omni 3B / 7B, the Thinker only (`Qwen2_5OmniThinkerForConditionalGeneration`): text out.

A full Omni checkpoint (model_type "qwen2_5_omni") stores the thinker under the prefix "thinker."
(the thinker class's base_model_prefix): transformers strips that prefix on loading and leaves the
talker and token2wav weights unused, so the thinker class loads from the full checkpoint directly.
A weight the thinker needs but the checkpoint lacks is an error here, never a random init.

Audio: Whisper-style log-mel (100 frames/s) -> conv stride 2 -> average pool 2 = 25 tokens/s, laid
out as `<|audio_bos|> <|AUDIO|> x N <|audio_eos|>`. The encoder attends within 2 s blocks
(n_window), so it has no length cap of its own, but the processor pads every audio item to and CUTS
it at its feature extractor's n_samples (chunk_length 300 s in the released preprocessor_config).
Windowing rule: longer audio is split into consecutive windows of n_samples, each passed as its own
audio item (own bos/eos) back to back in one user turn; a last window under 0.5 s is zero-padded to
0.5 s. The feature mask and the placeholder runs are checked against the samples fed: nothing is
cut. The LM's positions (32,768) bound the whole prompt: about 21.8 minutes of audio.

M-RoPE: with audio only (no image/video grid) `get_rope_index` gives every token, audio included,
one position on all three axes, so rope_deltas is 0 and decoding continues at the cache length.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.fastpath.chunked_encoder import ChunkedEncoderAttention
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.models.common import check_fits_context, real_config_dict, scaled_down, token_runs
from amlib.tasks import TaskSpec

TINY_QWEN25_OMNI = "tiny-random-qwen2.5-omni"
PUBLISHED_CONFIGS = {"Qwen/Qwen2.5-Omni-3B": "qwen2.5-omni-3b.json", "Qwen/Qwen2.5-Omni-7B": "qwen2.5-omni-7b.json"}
PAPER_CONFIG = PUBLISHED_CONFIGS["Qwen/Qwen2.5-Omni-3B"]  # the size the paper's efficiency study uses
FULL_MODEL_TYPE = "qwen2_5_omni"
THINKER_MODEL_TYPE = "qwen2_5_omni_thinker"
CONV_STRIDE = 2  # Qwen2_5OmniAudioEncoder.conv2
POOL_STRIDE = 2  # Qwen2_5OmniAudioEncoder.avg_pooler
MIN_WINDOW_SECONDS = 0.5
TURN_END = "<|im_end|>"
SPECIAL_TOKENS = {
    "audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}


def published_feature_extractor_args(filename: str) -> dict:
    """The checkpoint's preprocessor numbers (the "_feature_extractor" entry of its config file)."""
    with (Path(__file__).with_name("configs") / filename).open(encoding="utf-8") as fh:
        args = dict(json.load(fh)["_feature_extractor"])
    args.pop("feature_extractor_type")
    return args


def mel_frames(n_samples: int, hop_length: int) -> int:
    """Frames the feature extractor marks valid for `n_samples`: one per started hop."""
    return -(-n_samples // hop_length)


def tokens_for_frames(frames: int) -> int:
    """Audio tokens for one audio item, as the processor and the encoder count them."""
    after_conv = (frames - 1) // CONV_STRIDE + 1
    return (after_conv - POOL_STRIDE) // POOL_STRIDE + 1


def window_lengths(n_samples: int, window_samples: int, min_samples: int) -> list[int]:
    """Sample counts of the windows `n_samples` is split into (the last one padded to `min_samples`)."""
    if n_samples <= 0:
        raise ValueError("empty audio")
    lengths = [min(window_samples, n_samples - start) for start in range(0, n_samples, window_samples)]
    lengths[-1] = max(lengths[-1], min_samples)
    return lengths


def split_windows(audio: np.ndarray, window_samples: int, min_samples: int) -> list[np.ndarray]:
    windows = [audio[start : start + window_samples] for start in range(0, len(audio), window_samples)]
    lengths = window_lengths(len(audio), window_samples, min_samples)
    windows[-1] = np.pad(windows[-1], (0, lengths[-1] - len(windows[-1])))
    return windows


def thinker_config_of(config):
    """The thinker's config, from a full Omni config or a thinker-only one."""
    if config.model_type == FULL_MODEL_TYPE:
        return config.thinker_config
    if config.model_type != THINKER_MODEL_TYPE:
        raise ValueError(f"not a Qwen2.5-Omni config: model_type {config.model_type!r}")
    return config


def stop_at_turn_end(model, tokenizer) -> None:
    """Greedy answers end with the chat turn: make sure the turn-end token stops generation."""
    end_id = tokenizer.convert_tokens_to_ids(TURN_END)
    eos = model.generation_config.eos_token_id
    ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if end_id not in ids:
        model.generation_config.eos_token_id = ids + [end_id]


def load_thinker(name_or_path: str, dtype: str | None = None, attn_implementation: str | None = None,
                 device_map: str | dict | None = None, **kwargs):
    """The thinker alone, from a full Omni checkpoint or a thinker-only one."""
    from transformers import AutoConfig, Qwen2_5OmniThinkerForConditionalGeneration

    config = thinker_config_of(AutoConfig.from_pretrained(name_or_path, **kwargs))
    placement = {"device_map": device_map} if device_map is not None else {}
    model, info = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        name_or_path, config=config, dtype=dtype or "auto", attn_implementation=attn_implementation,
        output_loading_info=True, **placement, **kwargs,
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise RuntimeError(f"{name_or_path}: {len(missing)} thinker weights are missing from the checkpoint "
                           f"(e.g. {missing[:3]}); refusing to run with random weights")
    return model


class Qwen25OmniAdapter(AudioLMAdapter):
    """Fast paths (same outputs, see amlib.fastpath): the encoder's attention runs per 2 s chunk
    (`set_fast_encoder(False)` for transformers' dense-mask path) and greedy decoding replays a CUDA
    graph per token on CUDA (`fast_decode`)."""

    family = "qwen2.5-omni"

    def __init__(self, model: torch.nn.Module, processor, model_id: str, revision: str = "unknown",
                 fast_encoder: bool = True):
        super().__init__(model, processor, model_id, revision)
        self._chunked_encoder = ChunkedEncoderAttention(model)
        self.set_fast_encoder(fast_encoder)
        features = processor.feature_extractor
        if features.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"feature extractor expects {features.sampling_rate} Hz audio, not {SAMPLE_RATE}")
        granularity = self.encoding_granularity(model.config, features)
        self.tokens_per_second = granularity["tokens_per_second"]
        self.max_audio_seconds = granularity["max_audio_seconds"]
        self.context_tokens = granularity["context_tokens"]
        self.window_samples = features.n_samples
        self.hop_length = features.hop_length
        self.min_window_samples = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
        self.audio_token_id = processor.tokenizer.convert_tokens_to_ids(processor.audio_token)
        if self.audio_token_id != model.config.audio_token_id:
            raise ValueError(f"processor's {processor.audio_token} is id {self.audio_token_id}, "
                             f"the model expects {model.config.audio_token_id}")

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: str | None = None,
                        attn_implementation: str | None = None, local_files_only: bool | None = None,
                        device_map: str | dict | None = None):
        """Load a real checkpoint (hub id or local directory; HF_HUB_OFFLINE is honoured). The
        processor's video sub-processor needs torchvision installed, even for audio-only input.
        `device_map` (e.g. "auto": the 7B over several small GPUs) replaces `device`."""
        from transformers import AutoProcessor

        kwargs = {"local_files_only": local_files_only} if local_files_only is not None else {}
        processor = AutoProcessor.from_pretrained(name_or_path, **kwargs)
        model = load_thinker(name_or_path, dtype, attn_implementation, device_map, **kwargs)
        if device_map is None:
            model = model.to(device)
        stop_at_turn_end(model, processor.tokenizer)
        revision = getattr(model.config, "_commit_hash", None) or "local"
        return cls(model, processor, model_id=str(name_or_path), revision=revision)

    @classmethod
    def encoding_granularity(cls, config, feature_extractor=None) -> dict:
        """Token rate and limits from the thinker config and the feature extractor (default: the
        released preprocessor numbers). The LM's positions bound the audio: the paper's Table 11 gives
        21 min / 32,000 tokens; the config gives 32,768 positions = 21.8 min at 25 tokens/s."""
        text = thinker_config_of(config).text_config
        if feature_extractor is None:
            from transformers import WhisperFeatureExtractor

            feature_extractor = WhisperFeatureExtractor(**published_feature_extractor_args(PAPER_CONFIG))
        features = feature_extractor
        tokens_per_second = features.sampling_rate / features.hop_length / (CONV_STRIDE * POOL_STRIDE)
        context = text.max_position_embeddings
        return {
            "max_audio_seconds": context / tokens_per_second, "max_audio_tokens": context,
            "tokens_per_second": tokens_per_second, "context_tokens": context,
            "processor_window_seconds": features.n_samples / features.sampling_rate,
            "processor_window_tokens": tokens_for_frames(mel_frames(features.n_samples, features.hop_length)),
        }

    def windows_tokens(self, n_samples: int) -> list[int]:
        lengths = window_lengths(n_samples, self.window_samples, self.min_window_samples)
        return [tokens_for_frames(mel_frames(n, self.hop_length)) for n in lengths]

    def expected_audio_tokens(self, duration_s: float) -> int:
        return sum(self.windows_tokens(int(round(duration_s * SAMPLE_RATE))))

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        expected = self.windows_tokens(len(audio))
        # audio tokens plus each window's bos/eos: a lower bound of the prompt, checked before any work
        lower_bound = sum(expected) + 2 * len(expected)
        check_fits_context(self.family, lower_bound, spec.max_new_tokens, self.context_tokens)
        windows = split_windows(audio, self.window_samples, self.min_window_samples)
        text = self.render_prompt(spec.system_prompt, spec.user_prompt(question, choices), len(windows))
        tensors = dict(self.processor(text=text, audio=windows, sampling_rate=SAMPLE_RATE, return_tensors="pt"))
        self._check_nothing_cut(tensors["feature_attention_mask"], windows)
        spans = token_runs(tensors["input_ids"][0], self.audio_token_id)
        if [end - start for start, end in spans] != expected:
            raise RuntimeError(f"expected audio token runs {expected}, the processor gave {spans}")
        prompt_tokens = int(tensors["input_ids"].shape[1])
        check_fits_context(self.family, prompt_tokens, spec.max_new_tokens, self.context_tokens)
        return PreparedInputs(tensors, spans, len(windows), prompt_tokens)

    def render_prompt(self, system: str, user: str, n_audio_items: int) -> str:
        """System turn, then one user turn: the audio items, then the task text (the model's template)."""
        template = self.processor.chat_template or self.processor.tokenizer.chat_template
        if not template:
            raise ValueError(f"{self.model_id}: the processor has no chat template")
        conversation = [
            {"role": "system", "content": system},
            {"role": "user", "content": [{"type": "audio"}] * n_audio_items + [{"type": "text", "text": user}]},
        ]
        # The tokenizer renders the processor's template as is (the processor's own method also loads
        # media and warns about any system prompt other than the speech-output one).
        return self.processor.tokenizer.apply_chat_template(
            conversation, chat_template=template, tokenize=False, add_generation_prompt=True)

    def _check_nothing_cut(self, feature_mask: torch.Tensor, windows: list[np.ndarray]) -> None:
        fed = [mel_frames(len(w), self.hop_length) for w in windows]
        kept = feature_mask.sum(-1).tolist()
        if kept != fed:
            raise RuntimeError(f"the feature extractor kept {kept} frames of {fed}: audio was cut")

    def set_fast_encoder(self, enabled: bool) -> None:
        if enabled:
            self._chunked_encoder.install()
        else:
            self._chunked_encoder.remove()

    def set_fast_paths(self, enabled: bool) -> None:
        super().set_fast_paths(enabled)
        self.set_fast_encoder(enabled)

    def fast_paths(self) -> list[str]:
        return (["chunked_encoder"] if self._chunked_encoder.installed else []) + super().fast_paths()

    def decode_modules(self):
        return self.model.model, self.model.lm_head

    def language_model(self) -> torch.nn.Module:
        return self.model  # the thinker: kvpress hooks thinker.model.layers

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.model.layers


class _VideoInputsUnsupported:
    """Stands in for the processor's video sub-processor, which needs torchvision (not installed
    offline). With audio only, Qwen2_5OmniProcessor reads nothing from it but `merge_size`."""

    model_input_names: list[str] = []

    def __init__(self, merge_size: int):
        self.merge_size = merge_size


def _tiny_tokenizer():
    from amlib.models.assets import smollm2_tokenizer

    tokenizer = smollm2_tokenizer()
    tokenizer.add_special_tokens({"extra_special_tokens": list(SPECIAL_TOKENS.values())})
    tokenizer._set_model_specific_special_tokens(SPECIAL_TOKENS)  # named attributes the processor reads
    return tokenizer


# The released template's output for a string system turn and a user turn of audio items then text.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def random_qwen25_omni_7b(seed: int = 0, device: str = "cpu"):
    """`random_qwen25_omni_3b` at the published 7B thinker's sizes."""
    return random_qwen25_omni_3b(seed, device, PUBLISHED_CONFIGS["Qwen/Qwen2.5-Omni-7B"])


def tiny_processor(config_file: str = PAPER_CONFIG):
    """The real Qwen2_5OmniProcessor with the released audio front end around the SmolLM2 tokenizer."""
    from transformers import Qwen2_5OmniProcessor, Qwen2VLImageProcessor, WhisperFeatureExtractor

    class AudioOnlyOmniProcessor(Qwen2_5OmniProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):
            if isinstance(argument, _VideoInputsUnsupported):
                return type(argument)
            return super().check_argument_for_proper_class(argument_name, argument)

    image_processor = Qwen2VLImageProcessor()
    return AudioOnlyOmniProcessor(
        image_processor=image_processor, video_processor=_VideoInputsUnsupported(image_processor.merge_size),
        feature_extractor=WhisperFeatureExtractor(**published_feature_extractor_args(config_file)),
        tokenizer=_tiny_tokenizer(), chat_template=TINY_CHAT_TEMPLATE,
    )


def tiny_thinker_config(tokenizer, config_file: str = PAPER_CONFIG, hidden: int = 32, layers: int = 4):
    """The published thinker config with small widths and depths; the audio front end as released."""
    from transformers import Qwen2_5OmniThinkerConfig

    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
    heads = 2
    pairs = hidden // heads // 2  # rotary frequency pairs per head (64 in the release, split [16, 24, 24])
    overrides = {  # small widths: a 300 s item is 15,000 encoder positions and 7,500 LM tokens on CPU
        "audio_config": {"d_model": 16, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                         "output_dim": hidden},
        "vision_config": {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                          "out_hidden_size": hidden, "fullatt_block_indexes": [0]},
        "text_config": {"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
                        "num_hidden_layers": layers, "max_window_layers": layers, "num_attention_heads": heads,
                        "num_key_value_heads": 1,
                        "rope_scaling": {"mrope_section": [pairs // 4, 3 * pairs // 8, 3 * pairs // 8],  # same ratios
                                         "rope_type": "default", "type": "default"},
                        "eos_token_id": tokenizer.convert_tokens_to_ids(TURN_END),
                        "pad_token_id": tokenizer.pad_token_id},
        "audio_token_index": ids["audio_token"], "image_token_index": ids["image_token"],
        "video_token_index": ids["video_token"], "audio_start_token_id": ids["audio_bos_token"],
        "audio_end_token_id": ids["audio_eos_token"], "vision_start_token_id": ids["vision_bos_token"],
        "vision_end_token_id": ids["vision_eos_token"],
    }
    return Qwen2_5OmniThinkerConfig(**scaled_down(real_config_dict(config_file), overrides))


def tiny_qwen25_omni(seed: int = 0):
    """(thinker, processor) of a random tiny Qwen2.5-Omni thinker; seeded weights, no download."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    processor = tiny_processor()
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(tiny_thinker_config(processor.tokenizer)).eval()
    stop_at_turn_end(model, processor.tokenizer)
    return model, processor


def random_qwen25_omni_3b(seed: int = 0, device: str = "cpu", config_file: str = PAPER_CONFIG):
    """(thinker, processor): the published 3B thinker sizes (or `config_file`'s) with RANDOM weights
    (seeded, built on `device`) and the tiny processor (SmolLM2 tokenizer; its ids fit the published
    vocabulary). For timing and scaling runs without a download: its answers are noise."""
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    processor = tiny_processor()
    tokenizer = processor.tokenizer
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
    overrides = {
        "text_config": {"eos_token_id": tokenizer.convert_tokens_to_ids(TURN_END), "pad_token_id": tokenizer.pad_token_id},
        "audio_token_index": ids["audio_token"], "image_token_index": ids["image_token"],
        "video_token_index": ids["video_token"], "audio_start_token_id": ids["audio_bos_token"],
        "audio_end_token_id": ids["audio_eos_token"], "vision_start_token_id": ids["vision_bos_token"],
        "vision_end_token_id": ids["vision_eos_token"],
    }
    config = Qwen2_5OmniThinkerConfig(**scaled_down(real_config_dict(config_file), overrides))
    if len(tokenizer) > config.text_config.vocab_size:
        raise ValueError(f"the tiny tokenizer has {len(tokenizer)} ids, the published vocabulary {config.text_config.vocab_size}")
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    stop_at_turn_end(model, processor.tokenizer)
    return model, processor
