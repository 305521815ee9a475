"""Voxtral (`VoxtralForConditionalGeneration`): Whisper-style encoder -> projector -> Llama LM.

Front end (transformers `VoxtralProcessor` + mistral-common): the audio is zero-padded to a whole
number of 30 s chunks; each chunk is 3,000 mel frames -> 1,500 encoder positions -> 375 LM tokens
(the projector stacks 4 positions per token: 12.5 tokens/s). One audio is ONE run of `[AUDIO]`
tokens after `[BEGIN_AUDIO]`, its chunks back to back; the padding of the last chunk is encoded
too, so its tokens are part of the span. Nothing is cut.

Limits (model card): a 32k-token context, audio up to 40 minutes for understanding; longer audio
raises. The model card says system prompts are not supported yet (the v7 audio chat template that
mistral-common publishes rejects audio together with a system prompt), so the task's system prompt
is put in front of the user text ("<system>\\n\\n<user>"), as mistral-common itself does for
tokenizers without system-prompt tokens.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.models.common import check_fits_context, real_config_dict, scaled_down, token_runs
from amlib.models.qwen2_audio import CONV_STRIDE, HOP_SAMPLES
from amlib.tasks import TaskSpec

REAL_CONFIG = "voxtral-mini-3b-2507.json"
MODEL_CARD_CONTEXT_TOKENS = 32_768  # "With a 32k token context length" (model card)
MODEL_CARD_MAX_AUDIO_SECONDS = 40 * 60  # "up to ... 40 minutes for understanding" (model card)
# mistral-common control tokens of the real tekken vocabulary; the offline tiny tokenizer adds them
CONTROL_TOKENS = {"inst": "[INST]", "end_inst": "[/INST]", "begin_audio": "[BEGIN_AUDIO]", "audio": "[AUDIO]"}
TINY_VOXTRAL = "tiny-random-voxtral"
TINY_OVERRIDES = {  # widths and depths only: mel bins, positions and the 4x stacking stay as published
    "audio_config": {"hidden_size": 16, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 8},
    "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8},
}


def chunk_samples(audio_config) -> int:
    """Samples per encoder chunk: its positions x the conv stride x the mel hop."""
    return audio_config.max_source_positions * CONV_STRIDE * HOP_SAMPLES


def tokens_per_chunk(audio_config) -> int:
    """LM tokens per chunk: the projector reshapes (positions, hidden) to (-1, intermediate)."""
    stacked, rest = divmod(audio_config.intermediate_size, audio_config.hidden_size)
    if rest or audio_config.max_source_positions % stacked:
        raise ValueError("Voxtral projector: intermediate_size must stack whole encoder positions")
    return audio_config.max_source_positions // stacked


def n_chunks(n_samples: int, samples_per_chunk: int) -> int:
    return max(1, -(-n_samples // samples_per_chunk))


def wav_data_url(audio: np.ndarray) -> str:
    """16 kHz float WAV as a data URL: how an in-memory array reaches mistral-common's chat encoder."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def uses_mistral_common(tokenizer) -> bool:
    """The real checkpoint's tokenizer (tekken via mistral-common), as opposed to an HF tokenizer."""
    return type(tokenizer).__module__.endswith("tokenization_mistral_common")


class VoxtralAdapter(AudioLMAdapter):
    family = "voxtral"
    model_class = "VoxtralForConditionalGeneration"
    # real checkpoints need `pip install mistral-common[audio]` for the tekken tokenizer

    def __init__(self, model: torch.nn.Module, processor, model_id: str, revision: str = "unknown"):
        super().__init__(model, processor, model_id, revision)
        granularity = self.encoding_granularity(model.config)
        self.tokens_per_second = granularity["tokens_per_second"]
        self.max_audio_seconds = granularity["max_audio_seconds"]
        self.context_tokens = granularity["context_tokens"]
        self.samples_per_chunk = chunk_samples(model.config.audio_config)
        self.tokens_per_chunk = granularity["window_tokens"]
        self.audio_token_id = model.config.audio_token_id
        self._check_processor_chunks()

    @classmethod
    def encoding_granularity(cls, config) -> dict:
        """30 s chunks of 375 tokens (12.5 tokens/s) up to the model card's 40 minutes."""
        samples = chunk_samples(config.audio_config)
        window_s = samples / SAMPLE_RATE
        window_tokens = tokens_per_chunk(config.audio_config)
        max_chunks = int(MODEL_CARD_MAX_AUDIO_SECONDS // window_s)
        context = min(MODEL_CARD_CONTEXT_TOKENS, config.text_config.max_position_embeddings)
        if max_chunks * window_tokens > context:
            raise ValueError("Voxtral: the model card's longest audio does not fit its context")
        return {
            "max_audio_seconds": max_chunks * window_s, "max_audio_tokens": max_chunks * window_tokens,
            "tokens_per_second": window_tokens / window_s, "window_seconds": window_s,
            "window_tokens": window_tokens, "adapter_windows_longer_audio": False,
            "context_tokens": context,
        }

    def expected_audio_tokens(self, duration_s: float) -> int:
        n_samples = int(round(duration_s * SAMPLE_RATE))
        return n_chunks(n_samples, self.samples_per_chunk) * self.tokens_per_chunk

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        text = f"{spec.system_prompt}\n\n{spec.user_prompt(question, choices)}"
        if uses_mistral_common(self.processor.tokenizer):
            ids, padded_audio = self._encode_with_mistral_common(audio, text)
        else:
            ids, padded_audio = self._encode_offline(audio, text), [audio]
        input_ids = torch.tensor([ids])
        features = self._features(padded_audio)
        spans = token_runs(input_ids[0], self.audio_token_id)
        self._check_audio_tokens(spans, features.shape[0], len(audio))
        check_fits_context(self.family, len(ids), spec.max_new_tokens, self.context_tokens)
        tensors = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "input_features": features}
        return PreparedInputs(tensors, spans, int(features.shape[0]), len(ids))

    def _encode_with_mistral_common(self, audio: np.ndarray, text: str) -> tuple[list[int], list[np.ndarray]]:
        """The real tokenizer's chat encoding: token ids and the audio as mistral-common padded it.
        VoxtralProcessor.apply_chat_template chains this with `_features`, but in transformers 5.2.0
        it raises KeyError('mm_load_kwargs') (fixed upstream after 5.2 by huggingface/transformers#44132),
        so the adapter runs the two steps itself."""
        conversation = [{"role": "user", "content": [
            {"type": "audio", "base64": wav_data_url(audio)}, {"type": "text", "text": text},
        ]}]
        encoded = self.processor.tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)
        return list(encoded["input_ids"]), list(encoded["audio"])

    def _encode_offline(self, audio: np.ndarray, text: str) -> list[int]:
        """The same layout with an HF tokenizer that carries the control tokens (tiny instances):
        `<bos>[INST][BEGIN_AUDIO][AUDIO]*n<text>[/INST]`, n by mistral-common's rule (whole chunks)."""
        tok = self.processor.tokenizer
        control = {name: tok.convert_tokens_to_ids(token) for name, token in CONTROL_TOKENS.items()}
        n_audio = n_chunks(len(audio), self.samples_per_chunk) * self.tokens_per_chunk
        return ([tok.bos_token_id, control["inst"], control["begin_audio"]] + [self.audio_token_id] * n_audio
                + tok.encode(text, add_special_tokens=False) + [control["end_inst"]])

    def _features(self, audio: list[np.ndarray]) -> torch.Tensor:
        """Mel features cut into encoder chunks by the processor's own code (its private helper is
        what its apply_chat_template runs), with the processor's default audio settings."""
        from transformers.models.voxtral.processing_voxtral import VoxtralProcessorKwargs

        audio_kwargs = self.processor._merge_kwargs(VoxtralProcessorKwargs)["audio_kwargs"]
        frames_per_chunk = audio_kwargs.pop("max_source_positions")
        return self.processor._retrieve_input_features(audio, frames_per_chunk, **audio_kwargs)

    def _check_audio_tokens(self, spans: list[tuple[int, int]], chunks: int, n_samples: int) -> None:
        expected = self.expected_audio_tokens(n_samples / SAMPLE_RATE)
        found = sum(end - start for start, end in spans)
        if len(spans) != 1 or found != expected or chunks * self.tokens_per_chunk != expected:
            raise RuntimeError(f"voxtral: expected one run of {expected} audio tokens over {chunks} chunks, "
                               f"found {found} tokens in {len(spans)} runs")

    def _check_processor_chunks(self) -> None:
        """The processor must cut features into exactly the encoder's chunks (else it raises later)."""
        from transformers.models.voxtral.processing_voxtral import VoxtralProcessorKwargs

        audio_kwargs = VoxtralProcessorKwargs._defaults["audio_kwargs"]
        processor_chunk = (audio_kwargs["pad_to_multiple_of"], audio_kwargs["max_source_positions"])
        encoder_chunk = (self.samples_per_chunk, self.samples_per_chunk // HOP_SAMPLES)
        if processor_chunk != encoder_chunk:
            raise ValueError(f"voxtral: processor chunks of {processor_chunk} (samples, frames) differ from "
                             f"the encoder's {encoder_chunk}")

    def language_model(self) -> torch.nn.Module:
        return self.model.language_model

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.language_model.model.layers


def tiny_voxtral(seed: int = 0):
    """(model, processor): a random Voxtral from a scaled-down copy of the real config, around the
    SmolLM2 tokenizer with the mistral-common control tokens added (tekken is not available offline)."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration, VoxtralProcessor, WhisperFeatureExtractor

    from amlib.models.assets import smollm2_tokenizer

    tok = smollm2_tokenizer()
    tok.add_special_tokens({"extra_special_tokens": list(CONTROL_TOKENS.values())})
    features = WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE, hop_length=HOP_SAMPLES,
                                       chunk_length=30)
    processor = VoxtralProcessor(feature_extractor=features, tokenizer=tok)
    overrides = scaled_down(TINY_OVERRIDES, {
        "audio_token_id": tok.convert_tokens_to_ids(CONTROL_TOKENS["audio"]),
        "text_config": {"vocab_size": len(tok), "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
    })
    config = VoxtralConfig(**scaled_down(real_config_dict(REAL_CONFIG), overrides))
    torch.manual_seed(seed)
    return VoxtralForConditionalGeneration(config).eval(), processor
