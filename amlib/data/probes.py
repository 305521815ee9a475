"""Shortcut probes: can a trivial feature answer a task without the ability the task is meant to test?

Issue 12 (benchmark validity). A simple classifier is trained on the TRAIN split of a built data set
and scored on its TEST split, per task, on one cue at a time:

| probe | what the classifier sees |
|---|---|
| loudness | integrated loudness of the whole item (EBU R128, LUFS, pyloudnorm) |
| duration | the item's length in seconds |
| pitch | median F0 (librosa.yin, 60-400 Hz) over the loud frames of the analysed windows |
| onsets | onset rate (librosa onsets per second) of the analysed windows: an event-rate proxy; on speech it
  also follows the voice's spectral dynamics, not only the speaking rate |
| syllables | syllable-nucleus rate: peaks (>= 3 dB prominence, >= 100 ms apart, within 25 dB of the loudest)
  of the smoothed 300-3000 Hz energy envelope per second of the analysed windows: a speaking-rate proxy |
| centroid | mean spectral centroid of the loud frames of the analysed windows |
| legit audio / shortcut audio | the six features above together, split into those legitimate for the task and the others |
| position | the item's index within its task (index mod the class count, one-hot, and the relative index) |
| letter | the answer-letter prior: always answer the letter most often correct in train |
| text: options | question and options without audio: per option, whether it is named in the question, word overlap, its letter, its numeric rank among numeric options, its length, and how often that option text was the answer in train (leave-one-out); a logistic regression picks one option |
| text: question | the question's words (bag of words) -> the label (label-set tasks only) |

Audio analysed: every file is read at 16 kHz mono; loudness and duration use the whole file; pitch,
onsets, syllables and centroid use at most `WINDOWS` windows of `WINDOW_S` seconds spread evenly over the item
(60 s of a 90-300 s item) to keep the probe fast. Features are cached per file in a JSON file keyed
by the SHA-1 of the audio bytes (and `FEATURE_VERSION`), so a re-run on the same audio is instant.

Classifiers: scikit-learn logistic regression (lbfgs, C=1) on standardised features; deterministic.
Label-set tasks (SED, MC, ASC, SD, ER, SAR, SGR): the audio probes predict the LABEL (the correct
option's text; options are shuffled per item for most of them), scored as accuracy on test. SCR and
SER have item-specific options: only position, letter and text-only probes. ASR is not a choice
task and is not probed.

Score: test accuracy with a Wilson 95 % interval; chance = the best constant answer on test (the
largest class / letter share; 1/k on a balanced split). A probe `beats_chance` when the interval's
lower end is above chance; it is `flagged` when it beats chance on a cue that is not legitimate for
the task (`LEGITIMATE`). With ~70 probes at 95 % a flag or two can be chance: look at the margin.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amlib.tasks import TASK_ORDER, get_task

FEATURE_VERSION = 1
SR = 16_000
WINDOWS = 6  # analysed windows per item (pitch, rate, centroid)
WINDOW_S = 10.0
FMIN, FMAX = 60.0, 400.0
FRAME, HOP = 1024, 256
F0_HOP = 512  # yin on every second frame position: half the cost

AUDIO_FEATURES = ("loudness_lufs", "duration_s", "f0_median_hz", "onset_rate_hz", "syllable_rate_hz", "centroid_hz")
# probe name -> the feature columns it sees (audio probes)
AUDIO_PROBES = {
    "loudness": ("loudness_lufs",),
    "duration": ("duration_s",),
    "pitch": ("f0_median_hz",),
    "onsets": ("onset_rate_hz",),
    "syllables": ("syllable_rate_hz",),
    "centroid": ("centroid_hz",),
}
# the audio features together, split by what is legitimate for the task (LEGITIMATE)
COMBINED_PROBES = ("legit audio", "shortcut audio")
PROBES = (*AUDIO_PROBES, *COMBINED_PROBES, "position", "letter", "text: options", "text: question")
LABEL_TASKS = ("SED", "MC", "ASC", "SD", "ER", "SAR", "SGR")  # fixed label set: audio probes predict the label
TEXT_TASKS = ("SCR", "SER")  # item-specific options: position, letter and text probes only

# Which cues a task may legitimately be answered from (everything else is a shortcut). Duration,
# position, the answer letter and text without audio are never legitimate. "legit audio" is the
# task's legitimate audio features together, "shortcut audio" all the others together.
LEGITIMATE: dict[str, dict[str, str]] = {
    "SGR": {"pitch": "voice pitch is the main audible gender cue",
            "centroid": "formant / timbre differences between voices"},
    "ER": {"pitch": "pitch level and range are emotional prosody",
           "syllables": "speaking rate is emotional prosody",
           "onsets": "speaking rate and pauses are emotional prosody",
           "centroid": "vocal effort (spectral tilt, voice quality) is part of emotional arousal"},
    "SAR": {"pitch": "the age proxies lower the pitch with age",
            "syllables": "the age proxies slow the speaking rate with age",
            "onsets": "the age proxies slow the speaking rate with age",
            "centroid": "breathiness (voice quality) grows with age"},
    "SD": {"pitch": "the fake passages are another voice: an audible property of the item",
           "syllables": "the fake passages are another voice: an audible property of the item",
           "onsets": "the fake passages are another voice: an audible property of the item",
           "centroid": "synthesis and band-limiting artefacts are spectral"},
    "SED": {"onsets": "the event's temporal texture is what is detected",
            "syllables": "the event's temporal texture is what is detected",
            "centroid": "the event's spectrum is what is detected"},
    "ASC": {"onsets": "event density belongs to the scene",
            "syllables": "event density belongs to the scene",
            "centroid": "the scene's spectrum belongs to the scene",
            "pitch": "tonal sources (music, birds, engines) belong to the scene"},
    "MC": {"onsets": "tempo and rhythm define the genres",
           "syllables": "tempo and rhythm define the genres",
           "centroid": "instrumentation defines the genres",
           "pitch": "register and instrumentation define the genres"},
    "SCR": {}, "SER": {},
}
NOT_LEGITIMATE_WHY = {
    "loudness": "items are loudness-normalised; a level difference is a mixing artefact (ER: a volume "
                "level is not an emotion)",
    "duration": "the item length is drawn independently of the label",
    "position": "the index of an item says nothing about its content",
    "letter": "answer letters are balanced; a letter prior is no ability",
    "text: options": "the task must need the audio",
    "text: question": "the task must need the audio",
}


def is_legitimate(task: str, probe: str) -> bool:
    if probe in COMBINED_PROBES:
        return probe == "legit audio"
    return probe in LEGITIMATE.get(task, {})


def combined_features(task: str, probe: str) -> tuple[str, ...]:
    """The feature columns of "legit audio" / "shortcut audio" for a task (may be empty)."""
    legit = LEGITIMATE.get(task, {})
    names = [p for p in AUDIO_PROBES if (p in legit) == (probe == "legit audio")]
    return tuple(AUDIO_PROBES[p][0] for p in names)


# ------------------------------------------------------------------ audio features


def audio_features(wave: np.ndarray, sr: int = SR) -> dict[str, float]:
    """The six trivial audio features of one mono waveform (see the module docstring)."""
    import librosa
    import pyloudnorm

    wave = np.asarray(wave, dtype=np.float64)
    if sr != SR:
        wave = librosa.resample(wave, orig_sr=sr, target_sr=SR)
    duration = len(wave) / SR
    loud = pyloudnorm.Meter(SR).integrated_loudness(wave) if duration >= 0.4 else -np.inf
    loud = float(loud) if np.isfinite(loud) else -70.0
    part = analysed_part(wave)
    rms = librosa.feature.rms(y=part, frame_length=FRAME, hop_length=HOP)[0]
    rms_db = 20 * np.log10(np.maximum(rms, 1e-10))
    loud_frames = rms_db > (rms_db.max() - 30.0) if len(rms_db) else np.zeros(0, bool)
    f0 = librosa.yin(part.astype(np.float32), fmin=FMIN, fmax=FMAX, sr=SR, frame_length=FRAME * 2, hop_length=F0_HOP)
    loud_f0 = loud_frames[:: F0_HOP // HOP]
    n = min(len(f0), len(loud_f0))
    # yin has no voicing decision: keep loud frames whose estimate is stable (within 5 % of both neighbours)
    stable = np.zeros(n, bool)
    if n >= 3:
        f = f0[:n]
        stable[1:-1] = (np.abs(f[1:-1] / f[:-2] - 1) < 0.05) & (np.abs(f[1:-1] / f[2:] - 1) < 0.05)
    voiced = f0[:n][stable & loud_f0[:n]]
    f0_median = float(np.median(voiced)) if len(voiced) else 0.0
    onsets = librosa.onset.onset_detect(y=part.astype(np.float32), sr=SR, hop_length=HOP, units="time")
    rate = len(onsets) / max(len(part) / SR, 1e-9)
    cent = librosa.feature.spectral_centroid(y=part, sr=SR, n_fft=FRAME, hop_length=HOP)[0]
    m = min(len(cent), len(loud_frames))
    centroid = float(np.mean(cent[:m][loud_frames[:m]])) if loud_frames[:m].any() else 0.0
    return {"loudness_lufs": round(loud, 3), "duration_s": round(duration, 3), "f0_median_hz": round(f0_median, 2),
            "onset_rate_hz": round(float(rate), 4), "syllable_rate_hz": syllable_rate(part),
            "centroid_hz": round(centroid, 1)}


def syllable_rate(part: np.ndarray) -> float:
    """Syllable nuclei per second (see the module docstring) of an already analysed part at 16 kHz."""
    import librosa
    from scipy.signal import find_peaks

    if len(part) < 512:
        return 0.0
    power = np.abs(librosa.stft(np.asarray(part, np.float32), n_fft=512, hop_length=160)) ** 2  # 10 ms hop
    freqs = librosa.fft_frequencies(sr=SR, n_fft=512)
    band = power[(freqs >= 300) & (freqs <= 3000)].sum(axis=0)
    env = 10 * np.log10(np.convolve(band, np.ones(5) / 5, mode="same") + 1e-12)  # 50 ms smoothing
    peaks, _ = find_peaks(env, prominence=3.0, distance=10, height=env.max() - 25.0)
    return round(len(peaks) / (len(part) / SR), 4)


def analysed_part(wave: np.ndarray, windows: int = WINDOWS, window_s: float = WINDOW_S) -> np.ndarray:
    """At most `windows` windows of `window_s` seconds, spread evenly over the wave, joined."""
    win = int(window_s * SR)
    if len(wave) <= windows * win:
        return wave
    starts = np.linspace(0, len(wave) - win, windows).astype(int)
    return np.concatenate([wave[s:s + win] for s in starts])


class FeatureCache:
    """Features per audio file in one JSON file, keyed by SHA-1 of the file's bytes + FEATURE_VERSION."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.data: dict[str, dict] = {}
        if self.path and self.path.is_file():
            self.data = json.loads(self.path.read_text())
        self.hits = self.misses = 0

    def features(self, audio_path: str | Path) -> dict[str, float]:
        import soundfile as sf

        raw = Path(audio_path).read_bytes()
        key = f"v{FEATURE_VERSION}:{hashlib.sha1(raw).hexdigest()}"
        entry = self.data.get(key)
        if entry is not None and all(f in entry for f in AUDIO_FEATURES):
            self.hits += 1
            return entry
        wave, sr = sf.read(str(audio_path), dtype="float32", always_2d=True)
        wave = wave.mean(axis=1)
        if entry is not None and set(entry) == set(AUDIO_FEATURES) - {"syllable_rate_hz"}:
            # an entry cached before the syllable rate existed: add only that feature
            import librosa

            wave = librosa.resample(wave, orig_sr=sr, target_sr=SR) if sr != SR else wave
            entry["syllable_rate_hz"] = syllable_rate(analysed_part(wave.astype(np.float64)))
            self.hits += 1
            return entry
        self.misses += 1
        self.data[key] = audio_features(wave, sr)
        return self.data[key]

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, sort_keys=True))


# ------------------------------------------------------------------ items


@dataclass
class ProbeItem:
    """What a probe may see of one item: no audio, only features, text and position."""
    task: str
    index: int
    question: str
    choices: list[str]
    answer: str  # the correct letter
    features: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.choices[ord(self.answer) - ord("A")]


def item_index(sample_id: str, fallback: int) -> int:
    """The item's index within its task and build part: the id's number (the offline suite writes
    seed * 100000 + i, so the part's seed is dropped), else its order in the manifest."""
    tail = sample_id.rsplit("-", 1)[-1]
    return int(tail) % 100_000 if tail.isdigit() else fallback


def probe_items(samples: Sequence, cache: FeatureCache | None = None, tasks: Iterable[str] | None = None,
                audio: bool = True) -> list[ProbeItem]:
    """ProbeItems of manifest Samples (choice tasks only); audio features for the label-set tasks."""
    wanted = set(tasks) if tasks else set(LABEL_TASKS + TEXT_TASKS)
    cache = cache or FeatureCache()
    seen: Counter = Counter()
    out = []
    for s in samples:
        if s.task not in wanted or not get_task(s.task).is_choice:
            continue
        feats = cache.features(s.audio_path) if (audio and s.task in LABEL_TASKS) else {}
        out.append(ProbeItem(s.task, item_index(s.id, seen[s.task]), s.question, list(s.choices), s.answer, feats))
        seen[s.task] += 1
    return out


def read_split(folder: str | Path) -> list:
    """The rows of <folder>/manifest.jsonl as Samples, read WITHOUT amlib.data.read_manifest's checks (the
    generator-version check refuses folders built by older generator code, which the "before" probe reads)."""
    from amlib.data.manifest import Sample

    folder = Path(folder)
    keep = ("id", "task", "audio", "duration_s", "question", "choices", "answer", "source", "split", "meta")
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [Sample(**{k: r[k] for k in keep}, root=str(folder)) for r in rows]


# ------------------------------------------------------------------ scoring


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def _fit_predict(x_train: np.ndarray, y_train: Sequence, x_test: np.ndarray) -> np.ndarray:
    """Standardised logistic regression; a constant (majority) answer when train has one class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train = np.asarray(y_train)
    if len(set(y_train.tolist())) < 2:
        return np.full(len(x_test), y_train[0] if len(y_train) else None, dtype=object)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(x_train, y_train)
    return model.predict(x_test)


def _position_matrix(items: Sequence[ProbeItem], k: int) -> np.ndarray:
    idx = np.array([it.index for it in items], dtype=float)
    onehot = np.eye(k)[(idx % k).astype(int)]
    rel = (idx / max(idx.max(), 1.0))[:, None] if len(idx) else np.zeros((0, 1))
    return np.hstack([onehot, rel])


_WORD = re.compile(r"[a-z0-9']+")
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def _number(text: str) -> float | None:
    t = text.strip().lower()
    if re.fullmatch(r"-?\d+(\.\d+)?", t):
        return float(t)
    return float(_NUMBER_WORDS[t]) if t in _NUMBER_WORDS else None


def option_rows(item: ProbeItem, prior: dict[str, tuple[float, float]], leave_out: bool) -> np.ndarray:
    """One feature row per option of the item (text-only probe): see the module docstring."""
    q = item.question.lower()
    q_words = set(_WORD.findall(q))
    n = len(item.choices)
    nums = [_number(c) for c in item.choices]
    all_numeric = all(v is not None for v in nums)
    lengths = np.array([len(c) for c in item.choices], float)
    rows = []
    for i, c in enumerate(item.choices):
        words = _WORD.findall(c.lower())
        named = float(bool(words) and re.search(r"\b" + re.escape(c.lower().strip()) + r"\b", q) is not None)
        overlap = sum(w in q_words for w in words) / max(len(words), 1)
        letter = np.eye(n)[i]
        if all_numeric:
            order = sorted(nums)
            rank = order.index(nums[i]) / max(n - 1, 1)
            is_min, is_max = float(nums[i] == order[0]), float(nums[i] == order[-1])
        else:
            rank, is_min, is_max = 0.5, 0.0, 0.0
        rel_len = (lengths[i] - lengths.mean()) / (lengths.std() + 1e-9)
        correct, seen = prior.get(c.strip().lower(), (0.0, 0.0))
        if leave_out:  # a train item must not see its own answer in the prior
            seen -= 1
            correct -= float(i == ord(item.answer) - ord("A"))
        rate = (correct + 1.0) / (seen + n)  # add-one smoothed share of appearances as the answer
        rows.append([named, overlap, *letter, float(all_numeric), rank, is_min, is_max, rel_len,
                     float(lengths[i] == lengths.max()), float(lengths[i] == lengths.min()), rate * n])
    return np.array(rows, dtype=float)


def _answer_prior(items: Sequence[ProbeItem]) -> dict[str, tuple[float, float]]:
    prior: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for it in items:
        for i, c in enumerate(it.choices):
            p = prior[c.strip().lower()]
            p[1] += 1
            p[0] += float(i == ord(it.answer) - ord("A"))
    return {k: (v[0], v[1]) for k, v in prior.items()}


def text_option_probe(train: Sequence[ProbeItem], test: Sequence[ProbeItem]) -> np.ndarray:
    """Correct (bool) per test item of the text-only option chooser."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prior = _answer_prior(train)
    x = np.vstack([option_rows(it, prior, leave_out=True) for it in train])
    y = np.concatenate([[float(i == ord(it.answer) - ord("A")) for i in range(len(it.choices))] for it in train])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(x, y)
    out = []
    for it in test:
        scores = model.decision_function(option_rows(it, prior, leave_out=False))
        out.append(int(np.argmax(scores)) == ord(it.answer) - ord("A"))
    return np.array(out, bool)


def question_probe(train: Sequence[ProbeItem], test: Sequence[ProbeItem]) -> np.ndarray:
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(binary=True, token_pattern=r"[A-Za-z0-9']+")
    try:
        x_train = vec.fit_transform([it.question for it in train]).toarray()
    except ValueError:  # no words at all
        x_train = np.zeros((len(train), 1))
        x_test = np.zeros((len(test), 1))
    else:
        x_test = vec.transform([it.question for it in test]).toarray()
    pred = _fit_predict(x_train, [it.label for it in train], x_test)
    return np.array([p == it.label for p, it in zip(pred, test)], bool)


def run_probe(probe: str, train: Sequence[ProbeItem], test: Sequence[ProbeItem]) -> np.ndarray | None:
    """Correct (bool) per test item, or None where the probe does not apply to the task."""
    task = test[0].task
    if probe in AUDIO_PROBES or probe in COMBINED_PROBES:
        cols = AUDIO_PROBES[probe] if probe in AUDIO_PROBES else combined_features(task, probe)
        if task not in LABEL_TASKS or not cols:
            return None
        x_train = np.array([[it.features[c] for c in cols] for it in train], float)
        x_test = np.array([[it.features[c] for c in cols] for it in test], float)
        pred = _fit_predict(x_train, [it.label for it in train], x_test)
        return np.array([p == it.label for p, it in zip(pred, test)], bool)
    if probe == "position":
        target = "label" if task in LABEL_TASKS else "answer"
        k = len({getattr(it, target) for it in train})
        pred = _fit_predict(_position_matrix(train, k), [getattr(it, target) for it in train],
                            _position_matrix(test, k))
        return np.array([p == getattr(it, target) for p, it in zip(pred, test)], bool)
    if probe == "letter":
        top = Counter(it.answer for it in train).most_common()
        best = min(letter for letter, c in top if c == top[0][1])  # ties: the first letter
        return np.array([it.answer == best for it in test], bool)
    if probe == "text: options":
        return text_option_probe(train, test)
    if probe == "text: question":
        return question_probe(train, test) if task in LABEL_TASKS else None
    raise KeyError(f"unknown probe {probe!r}; known: {', '.join(PROBES)}")


def chance_level(probe: str, test: Sequence[ProbeItem]) -> float:
    """The best constant answer's accuracy on test (label share for label predictions, else letter share)."""
    task = test[0].task
    by_label = probe in AUDIO_PROBES or probe in COMBINED_PROBES or probe == "text: question" or (probe == "position" and task in LABEL_TASKS)
    counts = Counter(it.label if by_label else it.answer for it in test)
    return max(counts.values()) / len(test)


def run_probes(train: Sequence[ProbeItem], test: Sequence[ProbeItem], tasks: Iterable[str] | None = None,
               probes: Iterable[str] = PROBES) -> list[dict]:
    """One row per (task, probe) that applies: n, accuracy, Wilson CI, chance, legitimacy, flag."""
    rows = []
    for task in tasks or [t for t in TASK_ORDER if t in LABEL_TASKS + TEXT_TASKS]:
        tr = [it for it in train if it.task == task]
        te = [it for it in test if it.task == task]
        if not tr or not te:
            continue
        for probe in probes:
            correct = run_probe(probe, tr, te)
            if correct is None:
                continue
            k = int(correct.sum())
            lo, hi = wilson(k, len(correct))
            chance = chance_level(probe, te)
            legit = is_legitimate(task, probe)
            beats = lo > chance
            rows.append({"task": task, "probe": probe, "n_train": len(tr), "n_test": len(te),
                         "accuracy": round(k / len(correct), 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
                         "chance": round(chance, 4), "legitimate": legit, "beats_chance": bool(beats),
                         "flagged": bool(beats and not legit)})
    return rows


# ------------------------------------------------------------------ tables


def probe_table(rows: Sequence[dict]):
    """Tasks x probes: 'acc [lo-hi]' in percent (audio, position on label-set tasks and question probes
    predict the label; letter, text: options and position on SCR/SER the answer letter); '!' marks a flag (an illegitimate cue beats chance),
    '+' a legitimate cue that beats chance, '-' a probe that does not apply."""
    import pandas as pd

    cells: dict[str, dict[str, str]] = defaultdict(dict)
    chance: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        mark = " !" if r["flagged"] else (" +" if r["beats_chance"] else "")
        cells[r["task"]][r["probe"]] = f"{100 * r['accuracy']:.0f} [{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}]{mark}"
        if r["probe"] in ("letter", "pitch"):
            chance[r["task"]][r["probe"]] = f"{100 * r['chance']:.0f}"
    tasks = [t for t in TASK_ORDER if t in cells]
    frame = pd.DataFrame([{**{p: cells[t].get(p, "-") for p in PROBES}} for t in tasks], index=tasks)
    frame.insert(0, "n train/test", [f"{rows_n(rows, t)}" for t in tasks])
    frame.insert(1, "chance: label %", [chance[t].get("pitch", "-") for t in tasks])
    frame.insert(2, "chance: letter %", [chance[t].get("letter", "") for t in tasks])
    frame.index.name = "task"
    return frame


def rows_n(rows: Sequence[dict], task: str) -> str:
    r = next(r for r in rows if r["task"] == task)
    return f"{r['n_train']}/{r['n_test']}"


def legitimacy_table():
    """Per task: which cues are legitimate and why; everything else is a shortcut."""
    import pandas as pd

    out = []
    for task in TASK_ORDER:
        if task == "ASR":
            out.append({"task": task, "legitimate cues": "(not probed: open-ended transcription)",
                        "shortcuts (never legitimate)": ""})
            continue
        legit = LEGITIMATE.get(task, {})
        audio = list(AUDIO_PROBES) if task in LABEL_TASKS else []
        out.append({"task": task,
                    "legitimate cues": "; ".join(f"{p}: {why}" for p, why in legit.items()) or "none of the probed cues",
                    "shortcuts (never legitimate)": ", ".join(
                        [p for p in audio if p not in legit] + ["position", "letter", "text"])})
    return pd.DataFrame(out).set_index("task")


def flags(rows: Sequence[dict]) -> list[str]:
    """'TASK probe acc [lo-hi] > chance' for every flagged row."""
    return [f"{r['task']} {r['probe']}: {100 * r['accuracy']:.0f} [{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}] "
            f"> chance {100 * r['chance']:.0f}" for r in rows if r["flagged"]]


# ------------------------------------------------------------------ committed results (the book's table)

RESULTS_DIR = Path(__file__).parent / "probe_results"


def load_results(name: str) -> dict | None:
    """A committed probe run (scripts/probe_shortcuts.py --out amlib/data/probe_results/NAME.json), or None."""
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def compare_flags(before: Sequence[dict], after: Sequence[dict]):
    """Every (task, probe) flagged in either run: its score before and after, and whether it still flags."""
    import pandas as pd

    def cell(r):
        return f"{100 * r['accuracy']:.0f} [{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}] (chance {100 * r['chance']:.0f})"

    b = {(r["task"], r["probe"]): r for r in before}
    a = {(r["task"], r["probe"]): r for r in after}
    keys = [k for k in b if b[k]["flagged"]] + [k for k in a if a[k]["flagged"] and not (k in b and b[k]["flagged"])]
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    keys.sort(key=lambda k: (order[k[0]], PROBES.index(k[1])))
    out = []
    for t, p in keys:
        was, now = bool(b.get((t, p), {}).get("flagged")), bool(a.get((t, p), {}).get("flagged"))
        out.append({"task": t, "probe": p, "before": cell(b[(t, p)]) if (t, p) in b else "-",
                    "after": cell(a[(t, p)]) if (t, p) in a else "-", "flagged before": was, "flagged after": now,
                    "status": flag_status(was, now)})
    return pd.DataFrame(out, columns=["task", "probe", "before", "after", "flagged before", "flagged after", "status"])


def flag_status(flagged_before: bool, flagged_after: bool) -> str:
    """What the generator change did to a cue: 'fixed' (flagged before, not after), 'still flagged',
    'new flag' (flagged after only) or 'never flagged'."""
    if flagged_before:
        return "still flagged" if flagged_after else "fixed"
    return "new flag" if flagged_after else "never flagged"


def probe_key(task: str, probe: str) -> str:
    """A glue key for one (task, probe): 'probe_SCR_text_options'."""
    return "probe_" + "_".join(f"{task} {probe}".replace(":", " ").split())


def cue_verdict(row: dict) -> str:
    """'62 [47-76] %, chance 50: not distinguishable from chance at this n' for one probe row."""
    from amlib.claims import versus

    return (f"{100 * row['accuracy']:.0f} [{100 * row['ci_low']:.0f}-{100 * row['ci_high']:.0f}] %, chance "
            f"{100 * row['chance']:.0f}: {versus(row['ci_low'], row['ci_high'], row['chance'])}")


def probe_settings(before: dict, after: dict) -> str:
    """The committed runs' sizes and seeds, once if both runs used the same."""
    def text(s):
        return (f"{s['train_per_task']} train items per task, seed {s['train_seed']}; {s['test_per_task']} test items, "
                f"seed {s['test_seed']}; {s['min_seconds']:g}-{s['max_seconds']:g} s")

    same = before["settings"] == after["settings"]
    return text(after["settings"]) + (", both runs" if same else f" (before: {text(before['settings'])})")
