"""Phi-4-multimodal-instruct (`Phi4MultimodalForCausalLM`, the transformers-native port) with its speech LoRA.

The checkpoint ships LoRA adapters per modality (speech-lora/, vision-lora/); speech input is meant
to run with the speech adapter active. As the transformers port documents, it is loaded with
`model.load_adapter(repo, adapter_name="speech", adapter_kwargs={"subfolder": "speech-lora"})` and
activated with `model.set_adapter("speech")` (PEFT). Missing adapter files are an error, not a
silent fallback to the base weights; pass speech_lora=None to run the base model on purpose.

Only the native format (model_type "phi4_multimodal") loads here. The hub's main branch has carried
the remote-code format (model_type "phi4mm"); transformers' own tests use revision "refs/pr/70".

Audio: 80-bin log-mel at 100 frames/s ((n - 400) // 160 + 1 frames for n samples), then the
conformer's 8x time reduction: ceil(frames / 8) tokens, i.e. 12.5 tokens/s, all `<|audio|>` (id
200011 in the released tokenizer). The feature extractor pads only to the longest item and does not
truncate; the encoder processes long input in 500-position chunks, so nothing caps the audio but
the LM's 131,072 positions (about 2.9 h; the paper's Table 11 quotes 30 min / 22,500 tokens, a
trained-length figure, not a limit of the code or config). The whole prompt plus the answer budget
must fit those positions: longer input raises ValueError. No windowing is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.models.common import check_fits_context, real_config_dict, scaled_down, token_runs
from amlib.tasks import TaskSpec

TINY_PHI4_MULTIMODAL = "tiny-random-phi-4-multimodal"
PUBLISHED_CONFIG = "phi-4-multimodal-instruct.json"
NATIVE_MODEL_TYPE = "phi4_multimodal"
NATIVE_REVISION_HINT = "refs/pr/70"
# Not "speech": transformers' load report would list the base weights named *_for_speech as missing.
SPEECH_ADAPTER = "speech_lora"
SPEECH_LORA_SUBFOLDER = "speech-lora"
TURN_END = "<|end|>"
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", TURN_END]
MEDIA_TOKENS = {"audio_token": "<|audio|>", "image_token": "<|image|>"}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def published_feature_extractor_args() -> dict:
    """The checkpoint's preprocessor numbers (the "_feature_extractor" entry of its config file)."""
    with (Path(__file__).with_name("configs") / PUBLISHED_CONFIG).open(encoding="utf-8") as fh:
        args = dict(json.load(fh)["_feature_extractor"])
    args.pop("feature_extractor_type")
    return args


def audio_tokens_for_samples(n_samples: int, features) -> int:
    """`<|audio|>` tokens for `n_samples` (Phi4MultimodalFeatureExtractor's audio_embed_sizes)."""
    frames = (n_samples - features.win_length) // features.hop_length + 1
    if frames < 1:
        raise ValueError(f"audio of {n_samples} samples is shorter than one analysis window "
                         f"({features.win_length} samples)")
    compressed = ceil_div(frames * features.audio_feat_stride, features.audio_compression_rate)
    return ceil_div(compressed, features.audio_downsample_rate)


def check_native_format(name_or_path: str, **kwargs) -> None:
    """Refuse the remote-code checkpoint format with a clear message (AutoConfig would not know it)."""
    from transformers import PretrainedConfig

    config_dict, _ = PretrainedConfig.get_config_dict(name_or_path, **kwargs)
    model_type = config_dict.get("model_type")
    if model_type != NATIVE_MODEL_TYPE:
        raise ValueError(
            f"{name_or_path}: model_type {model_type!r} is not the transformers-native {NATIVE_MODEL_TYPE!r} format; "
            f"use the native files (for microsoft/Phi-4-multimodal-instruct, revision={NATIVE_REVISION_HINT!r}, "
            "which transformers' own Phi4Multimodal tests load)"
        )


def apply_speech_lora(model, name_or_path: str, subfolder: str = SPEECH_LORA_SUBFOLDER, **download_kwargs) -> None:
    """Load the checkpoint's speech LoRA (`<name_or_path>/<subfolder>`) and make it the active adapter."""
    local = Path(name_or_path)
    if local.is_dir():  # transformers looks up `subfolder` on the hub only: name the local folder itself
        source, where = local / subfolder, {}
        if not (source / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{source}: no speech LoRA (adapter_config.json) in this checkpoint")
    else:
        source, where = name_or_path, {"subfolder": subfolder}
    model.load_adapter(str(source), adapter_name=SPEECH_ADAPTER, adapter_kwargs={**where, **download_kwargs})
    model.set_adapter(SPEECH_ADAPTER)


def load_phi4_multimodal(name_or_path: str, dtype: str | None = None, attn_implementation: str | None = None,
                         speech_lora: str | None = SPEECH_LORA_SUBFOLDER, **download_kwargs):
    """The native model with its speech LoRA active (all base weights must come from the checkpoint)."""
    from transformers import Phi4MultimodalForCausalLM

    check_native_format(name_or_path, **download_kwargs)
    model, info = Phi4MultimodalForCausalLM.from_pretrained(
        name_or_path, dtype=dtype or "auto", attn_implementation=attn_implementation,
        output_loading_info=True, **download_kwargs,
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise RuntimeError(f"{name_or_path}: {len(missing)} weights are missing from the checkpoint "
                           f"(e.g. {missing[:3]}); refusing to run with random weights")
    if speech_lora:
        apply_speech_lora(model, name_or_path, speech_lora, **download_kwargs)
    return model


class Phi4MultimodalAdapter(AudioLMAdapter):
    family = "phi4-multimodal"

    def __init__(self, model: torch.nn.Module, processor, model_id: str, revision: str = "unknown",
                 speech_lora: str | None = None):
        super().__init__(model, processor, model_id, revision)
        self.features = processor.audio_processor
        if self.features.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"feature extractor expects {self.features.sampling_rate} Hz audio, not {SAMPLE_RATE}")
        granularity = self.encoding_granularity(model.config, self.features)
        self.tokens_per_second = granularity["tokens_per_second"]
        self.max_audio_seconds = granularity["max_audio_seconds"]
        self.context_tokens = granularity["context_tokens"]
        self.speech_lora = speech_lora
        self.audio_token_id = processor.audio_token_id
        if self.audio_token_id != model.config.audio_config.audio_token_id:
            raise ValueError(f"processor's {processor.audio_token} is id {self.audio_token_id}, "
                             f"the model expects {model.config.audio_config.audio_token_id}")

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: str | None = None,
                        attn_implementation: str | None = None, local_files_only: bool | None = None,
                        revision: str | None = None, speech_lora: str | None = SPEECH_LORA_SUBFOLDER):
        """Load a real native checkpoint (hub id or local directory; HF_HUB_OFFLINE is honoured) with
        its speech LoRA active. The processor's image sub-processor needs torchvision installed."""
        from transformers import AutoProcessor

        options = {"local_files_only": local_files_only, "revision": revision}
        kwargs = {key: value for key, value in options.items() if value is not None}
        processor = AutoProcessor.from_pretrained(name_or_path, **kwargs)
        model = load_phi4_multimodal(name_or_path, dtype, attn_implementation, speech_lora, **kwargs).to(device)
        commit = getattr(model.config, "_commit_hash", None) or revision or "local"
        return cls(model, processor, model_id=str(name_or_path), revision=commit, speech_lora=speech_lora)

    @classmethod
    def encoding_granularity(cls, config, feature_extractor=None) -> dict:
        """Token rate and limits from the model config and the feature extractor (default: the released
        preprocessor numbers). The LM's positions are the only bound on the audio."""
        if feature_extractor is None:
            from transformers import Phi4MultimodalFeatureExtractor

            feature_extractor = Phi4MultimodalFeatureExtractor(**published_feature_extractor_args())
        audio = config.audio_config
        if (audio.time_reduction, audio.downsample_rate) != (
                feature_extractor.audio_compression_rate, feature_extractor.audio_downsample_rate):
            raise ValueError("the feature extractor's token count does not match the audio encoder's time reduction")
        features = feature_extractor
        frames_per_second = features.sampling_rate / features.hop_length * features.audio_feat_stride
        tokens_per_second = frames_per_second / (features.audio_compression_rate * features.audio_downsample_rate)
        context = config.max_position_embeddings
        return {
            "max_audio_seconds": context / tokens_per_second, "max_audio_tokens": context,
            "tokens_per_second": tokens_per_second, "context_tokens": context,
            "rope_short_context_tokens": config.original_max_position_embeddings,
        }

    def expected_audio_tokens(self, duration_s: float) -> int:
        return audio_tokens_for_samples(int(round(duration_s * SAMPLE_RATE)), self.features)

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        expected = audio_tokens_for_samples(len(audio), self.features)
        check_fits_context(self.family, expected, spec.max_new_tokens, self.context_tokens)  # before any work
        text = self.render_prompt(spec.system_prompt, spec.user_prompt(question, choices))
        tensors = dict(self.processor(text=text, audio=[audio], sampling_rate=SAMPLE_RATE, return_tensors="pt"))
        spans = token_runs(tensors["input_ids"][0], self.audio_token_id)
        if [end - start for start, end in spans] != [expected] or tensors["audio_embed_sizes"].tolist() != [expected]:
            raise RuntimeError(f"expected one run of {expected} audio tokens, the processor gave {spans}")
        prompt_tokens = int(tensors["input_ids"].shape[1])
        check_fits_context(self.family, prompt_tokens, spec.max_new_tokens, self.context_tokens)
        return PreparedInputs(tensors, spans, 1, prompt_tokens)

    def render_prompt(self, system: str, user: str) -> str:
        """`<|system|>...<|end|><|user|><|audio|>...<|end|><|assistant|>` through the model's template."""
        template = self.processor.chat_template or self.processor.tokenizer.chat_template
        if not template:
            raise ValueError(f"{self.model_id}: the processor has no chat template")
        conversation = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{self.processor.audio_token}{user}"},
        ]
        # String contents: the Phi-4 template concatenates '<|role|>' + content + '<|end|>'.
        return self.processor.tokenizer.apply_chat_template(
            conversation, chat_template=template, tokenize=False, add_generation_prompt=True)

    def provenance(self) -> dict:
        return {**super().provenance(), "speech_lora": self.speech_lora}

    def language_model(self) -> torch.nn.Module:
        return self.model  # kvpress hooks model.model.layers

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.model.layers


class _ImageInputsUnsupported:
    """Stands in for the processor's image sub-processor, which needs torchvision (not installed
    offline). Phi4MultimodalProcessor calls it only when images are passed."""

    model_input_names: list[str] = []


# The released (Phi-4-mini family) template's output for system and user turns with string contents.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def tiny_processor():
    """The real Phi4MultimodalProcessor with the released audio front end around the SmolLM2 tokenizer."""
    from transformers import Phi4MultimodalFeatureExtractor, Phi4MultimodalProcessor

    from amlib.models.assets import smollm2_tokenizer

    class AudioOnlyPhi4Processor(Phi4MultimodalProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):
            if isinstance(argument, _ImageInputsUnsupported):
                return type(argument)
            return super().check_argument_for_proper_class(argument_name, argument)

    tokenizer = smollm2_tokenizer()
    tokenizer.add_special_tokens({"extra_special_tokens": CHAT_TOKENS + list(MEDIA_TOKENS.values())})
    tokenizer._set_model_specific_special_tokens(MEDIA_TOKENS)  # named attributes the processor reads
    return AudioOnlyPhi4Processor(
        image_processor=_ImageInputsUnsupported(),
        audio_processor=Phi4MultimodalFeatureExtractor(**published_feature_extractor_args()),
        tokenizer=tokenizer, chat_template=TINY_CHAT_TEMPLATE,
    )


def tiny_config(tokenizer, hidden: int = 64, layers: int = 4):
    """The published config with small widths and depths; the audio front end and rope kind as released."""
    from transformers import Phi4MultimodalConfig

    published = real_config_dict(PUBLISHED_CONFIG)
    heads = 4
    pairs = int(hidden // heads * published["partial_rotary_factor"]) // 2  # 48 in the release
    rope = published["rope_scaling"]
    step = len(rope["long_factor"]) // pairs
    overrides = {
        "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": 2,
        # every step-th published rotary factor, so the tiny model keeps the long/short LongRoPE switch
        "rope_scaling": {**rope, "long_factor": rope["long_factor"][::step][:pairs],
                         "short_factor": rope["short_factor"][::step][:pairs]},
        "bos_token_id": tokenizer.bos_token_id, "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": [tokenizer.convert_tokens_to_ids(TURN_END)],
        "audio_config": {"hidden_size": 32, "intermediate_size": 48, "num_blocks": 2, "num_attention_heads": 2,
                         "nemo_conv_channels": 32, "ext_pw_out_channel": 32, "depthwise_separable_out_channel": 32,
                         "audio_token_id": tokenizer.audio_token_id},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "image_token_id": tokenizer.image_token_id},
    }
    return Phi4MultimodalConfig(**scaled_down(published, overrides))


def tiny_phi4_multimodal(seed: int = 0):
    """(model, processor) of a random tiny Phi-4-multimodal without LoRA (the base path); seeded weights."""
    from transformers import Phi4MultimodalForCausalLM

    processor = tiny_processor()
    torch.manual_seed(seed)
    model = Phi4MultimodalForCausalLM(tiny_config(processor.tokenizer)).eval()
    return model, processor
