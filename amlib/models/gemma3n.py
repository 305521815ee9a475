"""Gemma 3n (`Gemma3nForConditionalGeneration`): USM-style conformer encoder -> embedder -> Gemma 3n LM.

Native front end: one clip of at most 30 s (`Gemma3nAudioFeatureExtractor` CUTS longer audio:
max_length 480,000 samples, truncation on), encoded to a fixed 188 soft tokens
(`audio_soft_tokens_per_image`, 6.27 tokens/s for a full clip); a shorter clip yields fewer encoder
frames and the model pads it to 188 with a padding embedding.

Windowing rule (this adapter): audio is split into consecutive 30 s windows (the last one
zero-padded to at least 0.5 s), each given its own audio block
`\\n\\n<start_of_audio>` + 188 x `<audio_soft_token>` + `<end_of_audio>\\n\\n`, in order, in the
user turn before the task text. n windows -> n spans of 188 tokens; a short last window still costs
188. The longest audio is as many windows as the LM's context holds, and every prompt is checked
against that context together with the task's answer budget. Nothing is truncated.
"""

from __future__ import annotations

import inspect
import tempfile
from contextlib import contextmanager
from unittest import mock

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.models.common import check_fits_context, real_config_dict, scaled_down, token_runs
from amlib.models.qwen2_audio import split_windows
from amlib.tasks import TaskSpec

REAL_CONFIGS = {"e2b": "gemma-3n-e2b-it.json", "e4b": "gemma-3n-e4b-it.json"}
TINY_GEMMA3N = "tiny-random-gemma3n"
# Named tokens of the real Gemma 3n tokenizer, in the order the tiny vocabulary appends them: the
# first two are text ids, then the vision range (eoi, image), then the audio range (eoa, audio),
# mirroring the real layout (text < 262,144 <= vision < 262,272 <= audio < 262,400).
MEDIA_TOKENS = {"boi_token": "<start_of_image>", "boa_token": "<start_of_audio>",
                "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
                "eoa_token": "<end_of_audio>", "audio_token": "<audio_soft_token>"}
# Gemma's turn format (system text opens the first user turn; audio items become the audio
# placeholder the processor expands). The real checkpoints ship their own template.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(prefix='') %}{% set turns = messages %}"
    "{% if messages[0]['role'] == 'system' %}{% set ns.prefix = messages[0]['content'][0]['text'] + '\n\n' %}"
    "{% set turns = messages[1:] %}{% endif %}"
    "{% for m in turns %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ ns.prefix if loop.first else '' }}{% for item in m['content'] %}"
    "{% if item['type'] == 'audio' %}<audio_soft_token>{% elif item['type'] == 'text' %}{{ item['text'] | trim }}"
    "{% endif %}{% endfor %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def feature_extractor_cut(feature_extractor_class) -> int:
    """Samples after which the feature extractor cuts a clip (its __call__ defaults: max_length,
    truncation on): the native clip length."""
    return inspect.signature(feature_extractor_class.__call__).parameters["max_length"].default


def mel_frames(feature_extractor, n_samples: int) -> int:
    """Frames of a clip: padded to the extractor's multiple, then one frame (+1 sample) per hop."""
    multiple = inspect.signature(type(feature_extractor).__call__).parameters["pad_to_multiple_of"].default
    padded = -(-n_samples // multiple) * multiple
    return max(0, (padded - (feature_extractor.frame_length + 1)) // feature_extractor.hop_length + 1)


def encoder_tokens(audio_config, frames: int) -> int:
    """Soft tokens the audio tower emits: each SSCP conv (time padded by kernel-1) keeps
    ceil(T / stride) frames, then the conformer keeps every `conf_reduction_factor`-th frame."""
    for stride in (pair[0] for pair in audio_config.sscp_conv_stride_size):
        frames = -(-frames // stride)
    return -(-frames // audio_config.conf_reduction_factor)


class Gemma3nAdapter(AudioLMAdapter):
    family = "gemma3n"
    model_class = "Gemma3nForConditionalGeneration"
    # real checkpoints need `pip install timm` (the MobileNetV5 vision tower), even for audio only

    def __init__(self, model: torch.nn.Module, processor, model_id: str, revision: str = "unknown"):
        super().__init__(model, processor, model_id, revision)
        granularity = self.encoding_granularity(model.config)
        self.window_seconds = granularity["window_seconds"]
        self.window_tokens = granularity["window_tokens"]
        self.tokens_per_second = granularity["tokens_per_second"]
        self.max_audio_seconds = granularity["adapter_max_audio_seconds"]
        self.context_tokens = granularity["context_tokens"]
        self.audio_token_id = model.config.audio_token_id
        _expose_audio_mask(model.model)
        if processor.audio_seq_length != self.window_tokens:
            raise ValueError(f"gemma3n: the processor inserts {processor.audio_seq_length} audio tokens per clip, "
                             f"the model expects {self.window_tokens}")

    @classmethod
    def encoding_granularity(cls, config) -> dict:
        """Native: one clip of <= 30 s -> 188 tokens. This adapter: 30 s windows up to the LM context."""
        from transformers import Gemma3nAudioFeatureExtractor

        features = Gemma3nAudioFeatureExtractor()  # the checkpoints save the defaults
        window = feature_extractor_cut(Gemma3nAudioFeatureExtractor)
        window_s = window / features.sampling_rate
        window_tokens = config.audio_soft_tokens_per_image
        produced = encoder_tokens(config.audio_config, mel_frames(features, window))
        if produced > window_tokens:
            raise ValueError(f"gemma3n: a full clip gives {produced} encoder frames > {window_tokens} soft tokens")
        context = config.text_config.max_position_embeddings
        return {
            "max_audio_seconds": window_s, "max_audio_tokens": window_tokens,
            "tokens_per_second": window_tokens / window_s, "window_seconds": window_s,
            "window_tokens": window_tokens, "encoder_tokens_per_window": produced,
            "adapter_windows_longer_audio": True,
            "adapter_max_audio_seconds": (context // window_tokens) * window_s, "context_tokens": context,
        }

    def expected_audio_tokens(self, duration_s: float) -> int:
        n_samples = int(round(duration_s * SAMPLE_RATE))
        n_windows = max(1, -(-n_samples // int(self.window_seconds * SAMPLE_RATE)))
        return n_windows * self.window_tokens

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        windows = split_windows(audio, self.window_seconds)
        messages = [
            {"role": "system", "content": [{"type": "text", "text": spec.system_prompt}]},
            {"role": "user", "content": [{"type": "audio"}] * len(windows)
             + [{"type": "text", "text": spec.user_prompt(question, choices)}]},
        ]
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # the template already opens with <bos>; the tokenizer must not add a second one (the rule
        # ProcessorMixin.apply_chat_template applies when it tokenizes)
        bos = self.processor.tokenizer.bos_token
        tensors = dict(self.processor(text=prompt, audio=windows, return_tensors="pt",
                                      add_special_tokens=not (bos and prompt.startswith(bos))))
        ids = tensors["input_ids"][0]
        spans = token_runs(ids, self.audio_token_id)
        if [end - start for start, end in spans] != [self.window_tokens] * len(windows):
            raise RuntimeError(f"gemma3n: expected {len(windows)} spans of {self.window_tokens} audio tokens, "
                               f"found {spans}")
        check_fits_context(self.family, len(ids), spec.max_new_tokens, self.context_tokens)
        return PreparedInputs(tensors, spans, len(windows), len(ids))

    def language_model(self) -> torch.nn.Module:
        """The whole model: kvpress hooks its `.model.language_model.layers` (there is no separate
        causal-LM module; the LM head sits on Gemma3nForConditionalGeneration)."""
        return self.model

    def decoder_layers(self) -> torch.nn.ModuleList:
        """Gemma3nTextDecoderLayer list. What token pruning and KV eviction must know:

        - hidden states between layers are AltUp-stacked, shape (altup_num_inputs=4, batch, seq,
          hidden): gather kept tokens along dim 2, not dim 1;
        - each layer also takes `per_layer_input` (batch, seq, hidden_size_per_layer_input), sliced
          per layer from per-layer embeddings computed once from the token ids before the first
          layer: gather it along the sequence as well;
        - position embeddings and masks come per layer type: sliding-window attention (window 512,
          RoPE theta 1e4) in 4 of every 5 layers, full attention (theta 1e6) in every 5th; after
          prefill a sliding layer's cache holds at most the last 511 positions (the window) before
          any press sees it;
        - KV sharing: the last `num_kv_shared_layers` layers (E2B 10 of 30, E4B 15 of 35, see
          `kv_shared_layers()`) compute no keys/values; each reuses those of the last non-shared
          layer of its type, stored in `past_key_values.shared_layers` during that layer's forward
          (before any hook runs). The cache holds only the non-shared layers, so kvpress's hook on a
          shared layer indexes past the cache (kvpress 0.5.5 raises IndexError on the whole model):
          restrict presses to the other layers. Pruning at a layer below the first shared one
          shortens the shared layers' keys in step; pruning above a sharing source (K > that source)
          has the pruner cut the reused keys/values to the kept tokens for the shared layers
          (`amlib.pruning.mechanism`; tested against the masked-columns oracle).
        """
        return self.model.model.language_model.layers

    def kv_shared_layers(self) -> list[int]:
        """Indices of the decoder layers that reuse another layer's keys/values (no cache of their own)."""
        return [i for i, layer in enumerate(self.decoder_layers()) if layer.self_attn.is_kv_shared_layer]


def _expose_audio_mask(gemma3n_model) -> None:
    """Work around transformers 5.2 (huggingface/transformers#44008): Gemma3nModel.forward replaces
    the audio encoder output by its pooled tensor, then reads `.audio_mel_mask` from that tensor and
    fails on every audio input. Attaching the mask to the pooled tensor lets the unchanged forward run."""
    encode = gemma3n_model.get_audio_features

    def get_audio_features(*args, **kwargs):
        out = encode(*args, **kwargs)
        if hasattr(out, "pooler_output"):
            out.pooler_output.audio_mel_mask = out.audio_mel_mask
        return out

    gemma3n_model.get_audio_features = get_audio_features


def tokenizer_with_named_tokens(tokenizer, named: dict[str, str]):
    """`tokenizer` with `named` added as special tokens reachable as attributes (tokenizer.audio_token,
    tokenizer.audio_token_id, ...), as the real Gemma 3n tokenizer has them."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return AutoTokenizer.from_pretrained(folder, extra_special_tokens=named)


@contextmanager
def _without_vision_tower():
    """Build Gemma3n with a stub vision tower: the real one is a timm MobileNetV5, and timm is not
    installed here. Audio-only inputs never call it; the stub raises if anything does."""
    from transformers.models.gemma3n import modeling_gemma3n

    build = modeling_gemma3n.AutoModel.from_config

    class NoVisionTower(torch.nn.Module):
        def forward(self, *args, **kwargs):
            raise RuntimeError("tiny Gemma3n has no vision tower")

    def from_config(config, **kwargs):
        return NoVisionTower() if config.model_type == "gemma3n_vision" else build(config, **kwargs)

    with mock.patch.object(modeling_gemma3n.AutoModel, "from_config", side_effect=from_config):
        yield


def tiny_overrides(tok, n_text: int, layers: int = 10, kv_shared: int = 3) -> dict:
    """Widths, depths and vocabularies only; the audio front end (128 mel bins, SSCP strides,
    reduction 4, 188 tokens per clip) and the attention pattern stay as published. As in E2B, the
    first third of the layers has sparse activations and the last third shares KV."""
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in MEDIA_TOKENS.items()}
    if list(ids.values()) != list(range(n_text - 2, n_text + 4)):
        raise ValueError(f"gemma3n tiny vocabulary: media tokens got ids {ids}")
    sparse = layers // 3
    return {
        "boi_token_id": ids["boi_token"], "boa_token_id": ids["boa_token"], "eoi_token_id": ids["eoi_token"],
        "image_token_id": ids["image_token"], "eoa_token_id": ids["eoa_token"],
        "audio_token_id": ids["audio_token"], "eos_token_id": tok.eos_token_id,
        "text_config": {"vocab_size": len(tok), "vocab_size_per_layer_input": n_text, "hidden_size": 32,
                        "hidden_size_per_layer_input": 8, "intermediate_size": 64, "num_hidden_layers": layers,
                        "num_kv_shared_layers": kv_shared, "num_attention_heads": 2, "num_key_value_heads": 1,
                        "head_dim": 16, "laurel_rank": 4, "eos_token_id": tok.eos_token_id,
                        "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                        "activation_sparsity_pattern": [0.95] * sparse + [0.0] * (layers - sparse)},
        "vision_config": {"hidden_size": 16, "vocab_size": 2, "vocab_offset": ids["eoi_token"]},
        "audio_config": {"hidden_size": 32, "conf_num_attention_heads": 2, "conf_num_hidden_layers": 2,
                         "sscp_conv_channel_size": [8, 4], "vocab_size": 2, "vocab_offset": ids["eoa_token"]},
    }


def tiny_gemma3n(seed: int = 0, variant: str = "e2b"):
    """(model, processor): a random Gemma 3n from a scaled-down copy of the real config, around the
    SmolLM2 tokenizer with Gemma's media tokens appended (Gemma's tokenizer is not available offline)."""
    from transformers import (
        Gemma3nAudioFeatureExtractor, Gemma3nConfig, Gemma3nForConditionalGeneration, Gemma3nProcessor,
        SiglipImageProcessor,
    )

    from amlib.models.assets import smollm2_tokenizer

    base = smollm2_tokenizer()
    n_text = len(base) + 2  # boi and boa are ordinary text ids, as in the real vocabulary
    tok = tokenizer_with_named_tokens(base, MEDIA_TOKENS)
    processor = Gemma3nProcessor(feature_extractor=Gemma3nAudioFeatureExtractor(),
                                 image_processor=SiglipImageProcessor(), tokenizer=tok,
                                 chat_template=TINY_CHAT_TEMPLATE)
    config = Gemma3nConfig(**scaled_down(real_config_dict(REAL_CONFIGS[variant]), tiny_overrides(tok, n_text)))
    torch.manual_seed(seed)
    with _without_vision_tower():
        model = Gemma3nForConditionalGeneration(config).eval()
    return model, processor
