"""Closed models behind HTTP APIs: GPT-4o audio (chat completions) and Gemini (generateContent).

An API exposes neither audio spans nor decoder layers, so these are not `AudioLMAdapter`s; they
provide what `amlib.runner.evaluate` uses: `build_inputs`, `generate` (-> `Generation` with
`.text`, `.new_tokens`, `.timing`), `provenance()`, `device`, `model_id`.

- Keys come only from the environment (OPENAI_API_KEY; GEMINI_API_KEY or GOOGLE_API_KEY), are read
  at each request, sent in a header (never in the URL) and never logged, cached or put in an error.
- Base URL: the `base_url` argument, else OPENAI_BASE_URL / GEMINI_BASE_URL, else the vendor's.
- Decoding: temperature 0 and the task's max new tokens (greedy-equivalent; vendors do not
  promise bit-exact determinism).
- 429 and 5xx are retried with exponential backoff (seeded jitter) or the server's Retry-After;
  other statuses (redirects included: the key never follows one) raise `APIError` with the status
  and the server's message.
- Successful responses are cached on disk under a hash of the URL and the full request body
  (model, prompt, audio, decoding settings): a re-run sends nothing. Keys are in neither.
- Audio goes inline as a 16-bit PCM WAV (16 kHz mono), base64.
- Timing: only the HTTP round trip is known (no prefill/decode split, no memory figure):
  `prefill_s`, `decode_s`, `peak_memory_mb` are None and `timing.round_trip_s` holds it (None for a
  cache hit). `audio_tokens` / `prompt_tokens` are the API's usage report (None if not reported).
- `device` is "api:<host>", the served endpoint (also `provenance()["endpoint"]`).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE
from amlib.efficiency import GenerationTiming
from amlib.models.assets import cache_dir as amlib_cache_dir
from amlib.models.base import Generation
from amlib.tasks import TaskSpec

log = logging.getLogger(__name__)

GEMINI_INLINE_LIMIT_BYTES = 20 * 2**20  # larger requests need the Files API (not implemented)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class APIError(RuntimeError):
    """A request failed; the message holds the HTTP status and the server's message, key redacted."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 2.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 300.0  # a longer Retry-After raises instead of sleeping
    seed: int = 0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number `attempt + 1`: full exponential step times a jitter in [0.5, 1)."""
        return min(self.max_delay_s, self.base_delay_s * 2**attempt) * (0.5 + 0.5 * rng.random())


def is_retryable(status: int) -> bool:
    return status == 429 or 500 <= status < 600


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass
class APIPreparedInputs:
    body: dict  # request body without decoding settings; audio inline (base64 WAV)
    audio_sha256: str
    n_windows: int = 1
    prompt_tokens: int | None = None  # filled in from the API's usage report by generate()
    audio_tokens: int | None = None  # idem; None when the API does not report it
    audio_spans: list = field(default_factory=list)  # not observable through an API


@dataclass
class APITiming(GenerationTiming):
    round_trip_s: float | None = None  # seconds of the successful HTTP exchange; None on a cache hit
    cached: bool = False


def wav_base64(audio: np.ndarray) -> tuple[str, str]:
    """(base64 of a 16 kHz mono PCM-16 WAV, sha256 of those WAV bytes)."""
    clipped = np.clip(audio, -1.0, 1.0)
    if np.any(clipped != audio):
        log.warning("audio exceeds [-1, 1]: %d samples clipped for the PCM-16 WAV",
                    int(np.sum(clipped != audio)))
    buf = io.BytesIO()
    sf.write(buf, clipped.astype(np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    return base64.b64encode(data).decode("ascii"), hashlib.sha256(data).hexdigest()


class ResponseCache:
    """One JSON file per successful response, named by the request hash."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def put(self, key: str, record: dict) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # a crash never leaves half a file behind


def request_hash(url: str, body: dict) -> str:
    canonical = json.dumps({"url": url, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def server_message(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else raw.decode("utf-8", "replace")[:500]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an error: the key header must not follow a request to another URL."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class APIAdapter:
    """Shared request, retry, cache and bookkeeping logic; subclasses define the wire format."""

    family = ""
    key_envs: tuple[str, ...] = ()
    base_url_env = ""
    default_base_url = ""

    def __init__(self, model: str, base_url: str | None = None, cache_dir: str | Path | None = None,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep,
                 timeout_s: float = 600.0):
        self.model_id = model
        self.revision = model  # the vendor's model name (dated where the vendor dates it)
        self.base_url = (base_url or os.environ.get(self.base_url_env) or self.default_base_url).rstrip("/")
        self.host = urlparse(self.base_url).netloc
        self._api_key()  # fail at construction, not at the first sample
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.timeout_s = timeout_s
        self.cache = ResponseCache(Path(cache_dir) if cache_dir else amlib_cache_dir() / "api-responses" / self.family)
        self._rng = random.Random(self.retry.seed)
        # requests to this machine never go through a proxy from the environment
        no_proxy = [urllib.request.ProxyHandler({})] if urlparse(self.base_url).hostname in LOOPBACK_HOSTS else []
        self._opener = urllib.request.build_opener(_NoRedirect, *no_proxy)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_id!r}, base_url={self.base_url!r})"

    @property
    def device(self) -> str:
        return f"api:{urlparse(self.base_url).hostname}"

    # --- wire format, per vendor -------------------------------------------------------------
    def url(self) -> str:
        raise NotImplementedError

    def auth_headers(self, key: str) -> dict:
        raise NotImplementedError

    def request_body(self, audio_b64: str, spec: TaskSpec, question: str, choices: list[str]) -> dict:
        raise NotImplementedError

    def decoding(self, max_new_tokens: int) -> dict:
        raise NotImplementedError

    def parse(self, payload: dict) -> tuple[str, int | None, int | None, int | None]:
        """(text, new tokens, prompt tokens, audio tokens) from a response."""
        raise NotImplementedError

    # --- the interface evaluate() uses ---------------------------------------------------------
    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> APIPreparedInputs:
        audio_b64, digest = wav_base64(audio)
        return APIPreparedInputs(self.request_body(audio_b64, spec, question, choices), digest)

    def generate(self, prepared: APIPreparedInputs, max_new_tokens: int) -> Generation:
        url, body = self.url(), {**prepared.body, **self.decoding(max_new_tokens)}
        key = request_hash(url, body)
        record = self.cache.get(key)
        if record is None:
            payload, seconds = self._post(url, body)
            record = {"request_hash": key, "url": url, "model": self.model_id, "audio_sha256": prepared.audio_sha256,
                      "decoding": self.decoding(max_new_tokens), "round_trip_s": seconds, "response": payload}
            self.cache.put(key, record)
            cached = False
        else:
            log.debug("%s: cache hit %s", self.family, key)
            cached, seconds = True, None
        text, new_tokens, prepared.prompt_tokens, prepared.audio_tokens = self.parse(record["response"])
        timing = APITiming(None, None, None, "not_measured_remote_api", round_trip_s=seconds, cached=cached)
        return Generation(text=text.strip(), new_tokens=new_tokens, timing=timing, inputs=prepared)

    def provenance(self) -> dict:
        return {"model": self.model_id, "model_revision": self.revision, "family": self.family, "dtype": None,
                "endpoint": f"api:{self.host}", "decoding": "temperature=0",
                "audio_encoding": "wav pcm16 16kHz mono, base64 inline"}

    # --- transport ----------------------------------------------------------------------------
    def _api_key(self) -> str:
        for name in self.key_envs:
            if os.environ.get(name):
                return os.environ[name]
        raise APIError(f"{self.family}: no API key: set {' or '.join(self.key_envs)} in the environment")

    def _redact(self, text: str) -> str:
        for name in self.key_envs:
            secret = os.environ.get(name)
            if secret:
                text = text.replace(secret, "[REDACTED]")
        return text

    def _send(self, url: str, data: bytes) -> tuple[int, dict, bytes]:
        headers = {"Content-Type": "application/json", **self.auth_headers(self._api_key())}
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers or {}), err.read()
        except OSError as err:  # URLError, timeouts, refused connections
            raise APIError(self._redact(f"{self.family}: cannot reach {self.host}: {err}")) from None

    def _post(self, url: str, body: dict) -> tuple[dict, float]:
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.retry.max_attempts):
            start = time.perf_counter()
            status, headers, raw = self._send(url, data)
            seconds = time.perf_counter() - start
            if status == 200:
                try:
                    return json.loads(raw), seconds
                except ValueError:
                    raise APIError(f"{self.family}: response from {self.host} is not JSON", status) from None
            message = self._redact(server_message(raw))
            if not is_retryable(status):
                raise APIError(f"{self.family}: HTTP {status} from {self.host}: {message}", status)
            if attempt + 1 == self.retry.max_attempts:
                raise APIError(f"{self.family}: HTTP {status} from {self.host} after {attempt + 1} attempts: "
                               f"{message}", status)
            self.sleep(self._delay(status, headers, attempt, message))
        raise AssertionError("unreachable")

    def _delay(self, status: int, headers: dict, attempt: int, message: str) -> float:
        retry_after = parse_retry_after({k.lower(): v for k, v in headers.items()}.get("retry-after"))
        if retry_after is not None and retry_after > self.retry.max_retry_after_s:
            raise APIError(f"{self.family}: HTTP {status} from {self.host} asks to wait {retry_after:.0f} s "
                           f"(Retry-After), more than {self.retry.max_retry_after_s:.0f} s: {message}", status)
        delay = retry_after if retry_after is not None else self.retry.backoff(attempt, self._rng)
        log.warning("%s: HTTP %d from %s, retry %d/%d in %.1f s", self.family, status, self.host,
                    attempt + 1, self.retry.max_attempts - 1, delay)
        return delay


class OpenAIAudioAdapter(APIAdapter):
    """GPT-4o audio models (e.g. gpt-4o-audio-preview-2024-10-01, -2024-12-17) via chat completions."""

    family = "gpt-4o-audio"
    key_envs = ("OPENAI_API_KEY",)
    base_url_env = "OPENAI_BASE_URL"
    default_base_url = "https://api.openai.com/v1"

    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def auth_headers(self, key: str) -> dict:
        return {"Authorization": f"Bearer {key}"}

    def request_body(self, audio_b64: str, spec: TaskSpec, question: str, choices: list[str]) -> dict:
        user = [{"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}},
                {"type": "text", "text": spec.user_prompt(question, choices)}]
        return {"model": self.model_id, "modalities": ["text"],
                "messages": [{"role": "system", "content": spec.system_prompt}, {"role": "user", "content": user}]}

    def decoding(self, max_new_tokens: int) -> dict:
        return {"temperature": 0, "max_completion_tokens": max_new_tokens}

    def parse(self, payload: dict) -> tuple[str, int | None, int | None, int | None]:
        choice = payload["choices"][0]
        text = choice["message"].get("content")
        if text is None:
            raise APIError(f"{self.family}: response has no text (finish_reason={choice.get('finish_reason')})")
        usage = payload.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return text, usage.get("completion_tokens"), usage.get("prompt_tokens"), details.get("audio_tokens")


class GeminiAdapter(APIAdapter):
    """Gemini 2.x models via generateContent with inline audio/wav.

    Gemini 2.5 models count thinking tokens against maxOutputTokens; with the tasks' 5-token limit
    a thinking model can return no text (an APIError names the finish reason). `thinking_budget=0`
    turns thinking off where the model allows it (not for every 2.5 model).
    """

    family = "gemini"
    key_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    base_url_env = "GEMINI_BASE_URL"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"

    def __init__(self, model: str, thinking_budget: int | None = None, **kwargs):
        super().__init__(model, **kwargs)
        self.thinking_budget = thinking_budget

    def url(self) -> str:
        return f"{self.base_url}/models/{self.model_id}:generateContent"

    def auth_headers(self, key: str) -> dict:
        return {"x-goog-api-key": key}

    def request_body(self, audio_b64: str, spec: TaskSpec, question: str, choices: list[str]) -> dict:
        parts = [{"inline_data": {"mime_type": "audio/wav", "data": audio_b64}},
                 {"text": spec.user_prompt(question, choices)}]
        body = {"system_instruction": {"parts": [{"text": spec.system_prompt}]},
                "contents": [{"role": "user", "parts": parts}]}
        size = len(json.dumps(body))
        if size > GEMINI_INLINE_LIMIT_BYTES:
            raise ValueError(f"{self.family}: request of {size / 2**20:.1f} MiB exceeds the "
                             f"{GEMINI_INLINE_LIMIT_BYTES // 2**20} MiB inline limit (Files API not implemented)")
        return body

    def decoding(self, max_new_tokens: int) -> dict:
        config = {"temperature": 0, "maxOutputTokens": max_new_tokens}
        if self.thinking_budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": self.thinking_budget}
        return {"generationConfig": config}

    def parse(self, payload: dict) -> tuple[str, int | None, int | None, int | None]:
        candidates = payload.get("candidates") or []
        if not candidates:
            raise APIError(f"{self.family}: no candidates (promptFeedback={payload.get('promptFeedback')})")
        parts = (candidates[0].get("content") or {}).get("parts") or []
        texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
        if not texts:
            raise APIError(f"{self.family}: response has no text (finishReason="
                           f"{candidates[0].get('finishReason')}); see GeminiAdapter's thinking_budget")
        usage = payload.get("usageMetadata") or {}
        audio = [d.get("tokenCount") for d in usage.get("promptTokensDetails") or [] if d.get("modality") == "AUDIO"]
        return "".join(texts), usage.get("candidatesTokenCount"), usage.get("promptTokenCount"), (audio or [None])[0]

    def provenance(self) -> dict:
        return {**super().provenance(), "thinking_budget": self.thinking_budget}
