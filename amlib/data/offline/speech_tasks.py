"""ASR, SGR and SD items of the offline suite: TTS reading generated text, and real asterisk speech.

- ASR: one voice reads generated sentences (reference = the exact text), or (every fourth item, where
  the split has real English speech: the test split only) real English asterisk prompts played one
  after another (reference = their normalised transcripts).
- SGR: one voice of the item's gender reads generated sentences, drawn uniformly among the split's
  voices of engines that have both genders there (train: espeak-ng only, as its other voices are all
  male; test: espeak-ng, flite, festival), so no engine speaks for one gender only; each item's
  speaking rate is then scaled by a factor drawn from SGR_TEMPO (sox tempo, the same range for both
  genders; generator version 3: before it, the onset rate of the fixed per-voice delivery told the
  gender to 82 % in the shortcut probe).
- SD: real asterisk prompts of ONE speaker and language one after another ("real"); or the same kind
  of sequence of the same speakers in which some prompts are replaced by a TTS reading of the same
  transcript by a voice of that language and gender, band-limited to the recordings' 8 kHz telephone
  band and level-matched, so only the voice itself gives it away ("fake"). The split's prompt sets
  (speaker x language, assets.PROMPT_SETS) serve real and fake items in the same seeded rotation, so
  the speaker tells nothing about the label; the split's real speakers are disjoint from the other's.
"""

from __future__ import annotations

import numpy as np

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.assets import (
    Prompt, PromptSet, load_sound, prompt_sets_of, prompts_of_set, prompts_of_split, rms,
)
from amlib.data.offline.items import Item, SuiteError, Window, assets_meta, read_aloud, sentence_stream, silence
from amlib.data.offline.voices import SuiteVoice, content_voices, language_voices, speak, voices_of
from amlib.data.timeline import scale_timeline, spans_of_pieces, timeline

GENDERS = ("male", "female")
SD_LABELS = ("real", "fake")
PROMPT_PAUSE_S = (0.4, 0.9)
REAL_ASR_EVERY = 4  # every fourth ASR item is real speech
FAKE_SHARE = (0.25, 0.4)  # share of prompts replaced by TTS in a "fake" SD item
SGR_TEMPO = (0.8, 1.25)  # per-item speaking-rate factor (log-uniform), the same for both genders


def voice_meta(voice: SuiteVoice) -> dict:
    return {"engine": voice.engine, "voice": voice.name, "speaker": voice.speaker, "gender": voice.gender}


def pick_voice(rng: np.random.Generator, voices: list[SuiteVoice]) -> SuiteVoice:
    if not voices:
        raise SuiteError("no voice available for this split and filter")
    return voices[int(rng.integers(len(voices)))]


def tts_reading_item(rng: np.random.Generator, split: str, window: Window, voice: SuiteVoice, what: str,
                     clear: bool = False) -> Item:
    reading = read_aloud(sentence_stream(rng, split), voice, window, rng, what=what, clear=clear)
    return Item(reading.wave, " ".join(reading.texts),
                {**voice_meta(voice), "n_sentences": len(reading.texts), "synthetic": True,
                 "assets": assets_meta(tts=[voice], texts=reading.texts), "timeline": reading.timeline()})


def prompt_sequence(rng: np.random.Generator, pool: list[Prompt], window: Window, what: str,
                    clip_of=lambda slot, prompt: load_sound(prompt.path)) -> tuple[list[Prompt], list[np.ndarray]]:
    """Distinct prompts of `pool` in random order until the target (with the mean pause between
    clips); `clip_of(slot, prompt)` gives the audio that stands for the prompt (the recording, or a
    TTS stand-in for SD's fakes). A clip that would pass max_s is skipped."""
    if not pool:
        raise SuiteError(f"{what}: no real-speech prompt available")
    mean_pause = int(np.mean(PROMPT_PAUSE_S) * SAMPLE_RATE)
    chosen, waves, total = [], [], 0
    for k in rng.permutation(len(pool)):
        wave = clip_of(len(chosen), pool[k])
        n = wave.size + (mean_pause if chosen else 0)
        if total + n > window.max_n:
            continue
        chosen.append(pool[k])
        waves.append(wave)
        total += n
        if total >= window.target_n:
            break
    if total < window.min_n:
        raise SuiteError(f"{what}: the {len(pool)} asterisk prompts of {pool[0].speaker} give only "
                         f"{total / SAMPLE_RATE:.0f} s, below min_seconds={window.min_s}")
    return chosen, waves


def join_with_pauses(waves: list[np.ndarray], rng: np.random.Generator,
                     window: Window) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Waves with seeded pauses, the pauses shortened only if the total would pass max_s; returns
    the joined wave and the sample span of every wave in it."""
    pauses = rng.uniform(*PROMPT_PAUSE_S, size=max(0, len(waves) - 1))
    speech = sum(w.size for w in waves)
    room = (window.max_n - speech) / SAMPLE_RATE
    if pauses.sum() > room:
        pauses *= max(0.0, room) / pauses.sum()
    parts = []
    for i, wave in enumerate(waves):
        if i:
            parts.append(silence(pauses[i - 1]))
        parts.append(np.asarray(wave, dtype=np.float32))
    return np.concatenate(parts), spans_of_pieces(parts, range(0, len(parts), 2))


def asr_item(ctx, index: int, label: str | None, rng: np.random.Generator, window: Window) -> Item:
    what = f"ASR item {index}"
    english = prompts_of_split(ctx.split, language="en")  # none in the train split: its ASR is all TTS
    if index % REAL_ASR_EVERY == REAL_ASR_EVERY - 1 and english:
        prompts, waves = prompt_sequence(rng, english, window, what)
        wave, spans = join_with_pauses(waves, rng, window)
        speaker = prompts[0].speaker
        texts = [_sentence(p.text) for p in prompts]
        return Item(wave, " ".join(texts),
                    {"speech": "real", "synthetic": False, "speaker": speaker, "gender": "female", "language": "en",
                     "asterisk_prompts": [p.id for p in prompts],
                     "assets": assets_meta(real=[p.speaker for p in prompts], texts=[p.text for p in prompts],
                                           files=[p.path for p in prompts]),
                     "timeline": timeline(spans, texts=texts)})
    voice = pick_voice(rng, content_voices(ctx.split))
    item = tts_reading_item(rng, ctx.split, window, voice, what, clear=True)
    item.meta["speech"] = "tts"
    return item


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1] in ".?!" else text + "."


def sox_tempo(wave: np.ndarray, tempo: float) -> np.ndarray:
    """sox's WSOLA `tempo` (speaking rate times `tempo`, pitch unchanged)."""
    import subprocess
    import tempfile
    from pathlib import Path

    import soundfile as sf

    from amlib.data.offline.assets import require_binary

    sox = require_binary("sox")
    with tempfile.TemporaryDirectory(prefix="amlib-sox-") as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(str(src), wave, SAMPLE_RATE, subtype="FLOAT")
        cmd = [sox, "-q", str(src), str(dst), "tempo", "-s", f"{tempo:.4f}", "rate", str(SAMPLE_RATE)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SuiteError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        out, _ = sf.read(str(dst), dtype="float32")
    return out


def sgr_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    engines = sorted({v.engine for v in voices_of(ctx.split)
                      if all(voices_of(ctx.split, v.engine, g) for g in GENDERS)})
    voice = pick_voice(rng, [v for v in voices_of(ctx.split, gender=label) if v.engine in engines])
    # speaking rate drawn per item from ONE range for both genders (log-uniform, SGR_TEMPO), applied
    # with sox tempo (pitch unchanged): the rate, and what follows it (onset rate), varies within
    # every voice instead of being fixed per voice
    tempo = float(np.exp(rng.uniform(*np.log(SGR_TEMPO))))
    margin = 0.25  # s kept free on both sides of the window for WSOLA's rounding
    if window.max_s - window.min_s <= 2 * margin:
        raise SuiteError(f"SGR item {index}: the window [{window.min_s}, {window.max_s}] s is too narrow")
    native = Window(min(max(window.target_s, window.min_s + margin), window.max_s - margin) * tempo,
                    (window.min_s + margin) * tempo, (window.max_s - margin) * tempo)
    item = tts_reading_item(rng, ctx.split, native, voice, f"SGR item {index}")
    native_n = item.wave.size
    item.wave = window.check(sox_tempo(item.wave, tempo), f"SGR item {index}")
    item.meta["timeline"] = scale_timeline(item.meta["timeline"], item.wave.size / native_n)
    item.meta["tempo"] = round(tempo, 4)
    item.meta["transforms"] = [f"sox tempo {tempo:.3f}"]
    item.meta["transcript"] = item.label
    item.label = label
    item.question = "Is this a male or female voice?"
    return item


def band_limit_like_prompts(wave: np.ndarray) -> np.ndarray:
    """Down to the asterisk recordings' 8 kHz sample rate and back, so the band does not differ."""
    import librosa

    low = librosa.resample(wave, orig_sr=SAMPLE_RATE, target_sr=8000)
    return librosa.resample(low, orig_sr=8000, target_sr=SAMPLE_RATE).astype(np.float32)


def fake_voices(pset: PromptSet, split: str) -> list[SuiteVoice]:
    """TTS voices that imitate `pset`'s speaker: the split's voices of the speaker's language and gender."""
    if pset.language == "en":
        return voices_of(split, gender=pset.gender)
    return language_voices(pset.tts_language, split, pset.gender)


def sd_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    what = f"SD item {index}"
    pset = ctx.balanced_voice(index, prompt_sets_of(ctx.split))  # same rotation for real and fake
    pool = prompts_of_set(pset)
    meta = {"synthetic": label == "fake", "speaker": pset.speaker, "gender": pset.gender, "language": pset.language}
    question = "Is this audio real or does it contain synthetic/fake segments?"
    if label == "real":
        prompts, waves = prompt_sequence(rng, pool, window, what)
        meta["asterisk_prompts"] = [p.id for p in prompts]
        meta["assets"] = assets_meta(real=[pset.speaker], texts=[p.text for p in prompts], files=[p.path for p in prompts])
        wave, spans = join_with_pauses(waves, rng, window)
        meta["timeline"] = timeline(spans, texts=[p.text for p in prompts], fake=[False] * len(prompts))
        return Item(wave, label, meta, question=question)
    voice = pick_voice(rng, fake_voices(pset, ctx.split))
    period = int(round(1 / rng.uniform(*FAKE_SHARE)))  # every period-th prompt is a TTS stand-in
    offset = int(rng.integers(period))
    level = rms(np.concatenate([load_sound(p.path) for p in pool[:50]]))

    def clip_of(slot: int, prompt: Prompt) -> np.ndarray:
        if slot % period != offset:
            return load_sound(prompt.path)
        fake = band_limit_like_prompts(speak(_sentence(prompt.text), voice))
        return (fake * (level / max(rms(fake), 1e-9))).astype(np.float32)

    prompts, waves = prompt_sequence(rng, pool, window, what, clip_of)
    fakes = [k for k in range(len(prompts)) if k % period == offset]
    if not fakes:
        raise SuiteError(f"{what}: only {len(prompts)} prompts fit, none of them a TTS slot "
                         f"(every {period}th); raise min_seconds")
    meta.update(voice_meta(voice), speaker=pset.speaker + "+" + voice.speaker, gender=pset.gender,
                asterisk_prompts=[p.id for p in prompts], fake_prompts=[prompts[k].id for k in fakes],
                fake_share=round(sum(waves[k].size for k in fakes) / sum(w.size for w in waves), 3),
                transforms=["resample 16k->8k->16k", "level matched to the recordings' RMS"],
                assets=assets_meta(real=[pset.speaker], tts=[voice], texts=[p.text for p in prompts],
                                   files=[p.path for k, p in enumerate(prompts) if k not in fakes]))
    wave, spans = join_with_pauses(waves, rng, window)
    # the fake prompts carry the label: a short cut of a fake item must hold one
    meta["timeline"] = timeline(spans, texts=[p.text for p in prompts], answer=fakes,
                                fake=[k in fakes for k in range(len(prompts))])
    return Item(wave, label, meta, question=question)
