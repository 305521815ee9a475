"""API adapters against a fake HTTP server on 127.0.0.1 started here: no request leaves the machine."""

import base64
import io
import json
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest, write_manifest
from amlib.data.audio import SAMPLE_RATE
from amlib.models.api import (
    APIError, GeminiAdapter, OpenAIAudioAdapter, RetryPolicy, parse_retry_after,
)
from amlib.runner import evaluate
from amlib.tasks import TASKS
from conftest import make_item

OPENAI_KEY = "sk-test-4f1c9a7e-DO-NOT-LEAK"
GEMINI_KEY = "AIza-test-8b2d6e0f-DO-NOT-LEAK"
SER = TASKS["SER"]
CHOICES = ["Paris", "Rome", "Oslo", "Bern"]

OPENAI_REPLY = {"choices": [{"message": {"role": "assistant", "content": " B "}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 321, "completion_tokens": 1, "prompt_tokens_details": {"audio_tokens": 300}}}
GEMINI_REPLY = {"candidates": [{"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 99, "candidatesTokenCount": 1,
                                  "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 35},
                                                          {"modality": "AUDIO", "tokenCount": 64}]}}


class FakeAPIServer:
    """Records every request; answers from `script` first (status, headers, payload), then `reply`."""

    def __init__(self, reply: dict):
        self.reply, self.script, self.requests = reply, [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body})
                status, headers, payload = server.script.pop(0) if server.script else (200, {}, server.reply)
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    for name in ("GOOGLE_API_KEY", "OPENAI_BASE_URL", "GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["openai", "gemini"])
def vendor(request):
    cls, model, reply = {"openai": (OpenAIAudioAdapter, "gpt-4o-audio-preview-2024-12-17", OPENAI_REPLY),
                         "gemini": (GeminiAdapter, "gemini-2.0-flash", GEMINI_REPLY)}[request.param]
    server = FakeAPIServer(reply)
    yield cls, model, server
    server.close()


def make(cls, model, server, tmp_path, **kwargs):
    sleeps = []
    adapter = cls(model, base_url=server.url, cache_dir=tmp_path / "cache", sleep=sleeps.append,
                  retry=kwargs.pop("retry", RetryPolicy(seed=0)), **kwargs)
    assert urlparse(adapter.base_url).hostname == "127.0.0.1"  # nothing leaves this machine
    return adapter, sleeps


def tone(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def decoded_wav(b64: str) -> np.ndarray:
    wave, rate = sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float32")
    assert rate == SAMPLE_RATE
    return wave


def ask(adapter, audio=None, max_new_tokens=SER.max_new_tokens):
    prepared = adapter.build_inputs(tone() if audio is None else audio, SER, "Which city is named?", CHOICES)
    return prepared, adapter.generate(prepared, max_new_tokens)


def test_openai_request_holds_audio_prompts_and_greedy_decoding(tmp_path):
    server = FakeAPIServer(OPENAI_REPLY)
    try:
        adapter, _ = make(OpenAIAudioAdapter, "gpt-4o-audio-preview-2024-10-01", server, tmp_path)
        prepared, gen = ask(adapter)
        (request,) = server.requests
    finally:
        server.close()
    body = request["body"]
    assert request["path"] == "/chat/completions" and request["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert body["model"] == "gpt-4o-audio-preview-2024-10-01"
    assert body["temperature"] == 0 and body["max_completion_tokens"] == SER.max_new_tokens
    assert body["messages"][0] == {"role": "system", "content": SER.system_prompt}
    audio_part, text_part = body["messages"][1]["content"]
    assert audio_part["type"] == "input_audio" and audio_part["input_audio"]["format"] == "wav"
    np.testing.assert_allclose(decoded_wav(audio_part["input_audio"]["data"]), tone(), atol=1.01 / 32767)
    assert text_part == {"type": "text", "text": SER.user_prompt("Which city is named?", CHOICES)}
    assert gen.text == "B" and gen.new_tokens == 1
    assert prepared.audio_tokens == 300 and prepared.prompt_tokens == 321 and not gen.timing.cached


def test_gemini_request_holds_audio_prompts_and_greedy_decoding(tmp_path):
    server = FakeAPIServer(GEMINI_REPLY)
    try:
        adapter, _ = make(GeminiAdapter, "gemini-2.5-flash", server, tmp_path, thinking_budget=0)
        prepared, gen = ask(adapter)
        (request,) = server.requests
    finally:
        server.close()
    body = request["body"]
    assert request["path"] == "/models/gemini-2.5-flash:generateContent"  # no key in the URL
    assert request["headers"]["x-goog-api-key"] == GEMINI_KEY
    assert body["system_instruction"] == {"parts": [{"text": SER.system_prompt}]}
    audio_part, text_part = body["contents"][0]["parts"]
    assert audio_part["inline_data"]["mime_type"] == "audio/wav"
    np.testing.assert_allclose(decoded_wav(audio_part["inline_data"]["data"]), tone(), atol=1.01 / 32767)
    assert text_part == {"text": SER.user_prompt("Which city is named?", CHOICES)}
    assert body["generationConfig"] == {"temperature": 0, "maxOutputTokens": SER.max_new_tokens,
                                        "thinkingConfig": {"thinkingBudget": 0}}
    assert gen.text == "A" and gen.new_tokens == 1 and prepared.audio_tokens == 64 and prepared.prompt_tokens == 99


def test_retries_429_500_503_then_succeeds(vendor, tmp_path, caplog):
    cls, model, server = vendor
    adapter, sleeps = make(cls, model, server, tmp_path)
    error = {"error": {"message": "busy"}}
    server.script = [(429, {"Retry-After": "7"}, error), (500, {}, error), (503, {}, error)]
    with caplog.at_level(logging.WARNING, logger="amlib.models.api"):
        _, gen = ask(adapter)
    assert len(server.requests) == 4 and gen.text in {"A", "B"}
    policy, rng = RetryPolicy(seed=0), random.Random(0)
    assert sleeps == [7.0, policy.backoff(1, rng), policy.backoff(2, rng)]  # Retry-After, then seeded backoff
    assert 2.0 <= sleeps[1] < 4.0 and 4.0 <= sleeps[2] < 8.0
    assert caplog.text.count("retry") == 3


def test_no_retry_on_400_and_the_key_is_redacted(vendor, tmp_path):
    cls, model, server = vendor
    adapter, sleeps = make(cls, model, server, tmp_path)
    key = OPENAI_KEY if cls is OpenAIAudioAdapter else GEMINI_KEY
    server.script = [(400, {}, {"error": {"message": f"Invalid audio. Key used: {key}"}})]
    with pytest.raises(APIError) as err:
        ask(adapter)
    assert err.value.status == 400 and "HTTP 400" in str(err.value)
    assert "Invalid audio. Key used: [REDACTED]" in str(err.value) and key not in repr(err.value)
    assert len(server.requests) == 1 and sleeps == []


def test_a_redirect_is_an_error_and_is_not_followed(vendor, tmp_path):
    cls, model, server = vendor
    adapter, sleeps = make(cls, model, server, tmp_path)
    server.script = [(302, {"Location": server.url + "/elsewhere"}, {"error": {"message": "moved"}})]
    with pytest.raises(APIError, match="HTTP 302"):
        ask(adapter)
    assert len(server.requests) == 1 and sleeps == []


def test_gives_up_after_max_attempts_or_a_long_retry_after(vendor, tmp_path):
    cls, model, server = vendor
    adapter, sleeps = make(cls, model, server, tmp_path, retry=RetryPolicy(max_attempts=3, seed=1))
    server.script = [(503, {}, {"error": {"message": "down"}})] * 3
    with pytest.raises(APIError, match="HTTP 503 .* after 3 attempts: down"):
        ask(adapter)
    assert len(server.requests) == 3 and len(sleeps) == 2
    server.script = [(429, {"Retry-After": "3600"}, {"error": {"message": "quota"}})]
    with pytest.raises(APIError, match="asks to wait 3600 s"):
        ask(adapter)


def test_retry_after_header_forms():
    assert parse_retry_after("120") == 120.0 and parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_cache_hit_sends_nothing_and_decoding_is_part_of_the_key(vendor, tmp_path):
    cls, model, server = vendor
    first, _ = make(cls, model, server, tmp_path)
    _, gen = ask(first)
    again, _ = make(cls, model, server, tmp_path)  # a fresh adapter: a re-run
    prepared, cached = ask(again)
    assert len(server.requests) == 1 and cached.text == gen.text and cached.timing.cached
    assert prepared.audio_tokens in {64, 300}  # usage restored from the cache
    ask(again, max_new_tokens=7)
    ask(again, audio=tone(3.0))
    assert len(server.requests) == 3


def test_the_key_never_reaches_logs_rows_cache_or_errors(vendor, tmp_path, caplog):
    cls, model, server = vendor
    key = OPENAI_KEY if cls is OpenAIAudioAdapter else GEMINI_KEY
    adapter, _ = make(cls, model, server, tmp_path)
    rows = [make_item(tmp_path, "sgr0", seconds=1.5), make_item(tmp_path, "asr0", task="ASR", seconds=1.0)]
    samples = read_manifest(write_manifest(tmp_path / "manifest.jsonl", rows))
    server.script = [(429, {}, {"error": {"message": "slow down"}})]
    with caplog.at_level(logging.DEBUG):
        evaluate(adapter, samples, tmp_path / "pred.jsonl", progress=False)
        server.script = [(401, {}, {"error": {"message": f"bad key {key}"}})]
        with pytest.raises(APIError) as err:
            ask(adapter, audio=tone(4.0))
    assert "retry" in caplog.text and "HTTP 429" in caplog.text
    written = [p.read_text() for p in (tmp_path / "cache").rglob("*.json")] + [(tmp_path / "pred.jsonl").read_text()]
    assert len(written) == 3
    for text in [caplog.text, str(err.value), repr(adapter), json.dumps(adapter.provenance()), *written]:
        assert key not in text


def test_evaluate_records_rows_with_api_usage_and_endpoint(vendor, tmp_path):
    cls, model, server = vendor
    adapter, _ = make(cls, model, server, tmp_path)
    rows = [make_item(tmp_path, "sgr0", seconds=1.5), make_item(tmp_path, "asr0", task="ASR", seconds=1.0)]
    samples = read_manifest(write_manifest(tmp_path / "manifest.jsonl", rows))
    out = evaluate(adapter, samples, tmp_path / "pred.jsonl", progress=False)
    assert [r["error"] for r in out] == [None, None]
    sgr = out[0]
    assert sgr["prediction"] in {"A", "B"} and sgr["parsed"] == sgr["prediction"]
    assert sgr["audio_tokens"] == (300 if cls is OpenAIAudioAdapter else 64) and sgr["audio_windows"] == 1
    assert sgr["prefill_s"] is None and sgr["memory_kind"] == "not_measured_remote_api"
    assert sgr["provenance"]["endpoint"] == f"api:{urlparse(server.url).netloc}"
    assert sgr["provenance"]["model"] == model
    sent = server.requests[1]["body"]
    assert json.dumps(sent).count(TASKS["ASR"].system_prompt) == 1  # the ASR row used its own prompt


def test_missing_key_and_base_url_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(APIError, match="set GEMINI_API_KEY or GOOGLE_API_KEY"):
        GeminiAdapter("gemini-2.0-flash", base_url="http://127.0.0.1:9", cache_dir=tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta/")
    adapter = GeminiAdapter("gemini-2.0-flash", cache_dir=tmp_path)
    assert adapter.url() == "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:generateContent"


def test_gemini_without_text_names_the_finish_reason(tmp_path):
    server = FakeAPIServer({"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}]})
    try:
        adapter, _ = make(GeminiAdapter, "gemini-2.5-flash", server, tmp_path)
        with pytest.raises(APIError, match="finishReason=MAX_TOKENS"):
            ask(adapter)
    finally:
        server.close()
