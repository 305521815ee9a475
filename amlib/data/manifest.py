"""The manifest: one JSON object per line in `<dataset dir>/manifest.jsonl`.

Fields: id, task, audio (path relative to the manifest), duration_s, question, choices (option
texts; empty for ASR), answer (the correct option LETTER, or the reference transcript for ASR),
source, split, meta (dict). Every line is validated; an error names file, line and field:

- a field outside this list is an error (never dropped silently): extra information goes in `meta`;
- an ASR reference that is empty after WAR normalisation (e.g. "...") is an error;
- with `check_audio` (the default) the audio file must exist and its duration, read from the file
  header with `soundfile.info` (cheap: no samples are decoded), must agree with `duration_s` within
  `DURATION_TOLERANCE_S` (1 s); an unreadable header is an error too. Content errors that only
  decoding finds (NaN/Inf samples) are raised by `load_audio` and become error rows in the runner.

`input_fingerprint(sample)` identifies what a prediction was made from (sha256 of the audio file's
bytes, the task and hashes of question, choices and answer); the runner stores it in every row and
refuses to resume a predictions file whose rows were made from other inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile as sf

from amlib.metrics.war import normalize_transcript
from amlib.tasks import TASKS

DURATION_TOLERANCE_S = 1.0

REQUIRED = {
    "id": str, "task": str, "audio": str, "duration_s": (int, float), "question": str,
    "choices": list, "answer": str, "source": str, "split": str, "meta": dict,
}


class ManifestError(ValueError):
    """A manifest line is invalid; the message names the file, line number and field."""


@dataclass(frozen=True)
class Sample:
    id: str
    task: str
    audio: str
    duration_s: float
    question: str
    choices: list[str]
    answer: str
    source: str
    split: str
    meta: dict = field(default_factory=dict)
    root: str = ""  # folder of the manifest; `audio` is relative to it

    @property
    def audio_path(self) -> Path:
        return Path(self.root) / self.audio

    def to_json(self) -> dict:
        row = asdict(self)
        row.pop("root")
        return row


def _check(row: dict, where: str, root: Path, check_audio: bool) -> Sample:
    def fail(field_name: str, why: str) -> ManifestError:
        return ManifestError(f"{where}: field '{field_name}': {why}")

    extra = sorted(set(row) - set(REQUIRED))
    if extra:
        raise fail(extra[0], f"unknown field(s) {', '.join(map(repr, extra))}; known: {', '.join(REQUIRED)} "
                             "(put extra information in 'meta')")
    for name, kind in REQUIRED.items():
        if name not in row:
            raise fail(name, "missing")
        if not isinstance(row[name], kind) or isinstance(row[name], bool):
            raise fail(name, f"expected {getattr(kind, '__name__', 'a number')}, got {type(row[name]).__name__}")
    if row["task"] not in TASKS:
        raise fail("task", f"unknown task {row['task']!r} (known: {', '.join(TASKS)})")
    spec = TASKS[row["task"]]
    if not row["id"]:
        raise fail("id", "empty")
    if row["duration_s"] <= 0:
        raise fail("duration_s", f"must be positive, got {row['duration_s']}")
    choices = row["choices"]
    if not all(isinstance(c, str) and c.strip() for c in choices):
        raise fail("choices", "every option must be a non-empty string")
    if spec.is_choice:
        if len(choices) != spec.n_options:
            raise fail("choices", f"{spec.code} needs {spec.n_options} options, got {len(choices)}")
        if len({c.strip().lower() for c in choices}) != len(choices):
            raise fail("choices", f"duplicate options {choices}")
        if spec.fixed_choices and [c.lower() for c in choices] != [c.lower() for c in spec.fixed_choices]:
            raise fail("choices", f"{spec.code}'s prompt fixes the options to {list(spec.fixed_choices)}")
        if row["answer"] not in spec.letters:
            raise fail("answer", f"{row['answer']!r} is not one of the letters {', '.join(spec.letters)}")
    else:
        if choices:
            raise fail("choices", f"{spec.code} is open-ended: choices must be empty")
        if not row["answer"].strip():
            raise fail("answer", "empty reference transcript")
        if not normalize_transcript(row["answer"]):
            raise fail("answer", f"reference transcript {row['answer']!r} is empty after WAR normalisation")
    if check_audio:
        audio = root / row["audio"]
        if not audio.is_file():
            raise fail("audio", f"file not found: {audio}")
        try:
            info = sf.info(str(audio))
        except Exception as err:
            raise fail("audio", f"sample {row['id']!r}: cannot read the header of {audio} ({err})") from None
        seconds = info.frames / info.samplerate if info.samplerate else 0.0
        if abs(seconds - row["duration_s"]) > DURATION_TOLERANCE_S:
            raise fail("duration_s", f"sample {row['id']!r}: the manifest says {row['duration_s']:.2f} s but "
                                     f"{audio} holds {seconds:.2f} s (tolerance {DURATION_TOLERANCE_S:g} s)")
    known = {k: row[k] for k in REQUIRED}
    return Sample(**known, root=str(root))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def input_fingerprint(sample: Sample) -> dict[str, str]:
    """What a prediction is made from: sha256 of the audio file bytes (read once), the task, and
    16-hex-digit sha256 prefixes of the question, the choices (as JSON) and the answer.

    Raises OSError when the audio file cannot be read.
    """
    digest = hashlib.sha256()
    with open(sample.audio_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {
        "audio_sha256": digest.hexdigest(),
        "task": sample.task,
        "question_sha256": _short_hash(sample.question),
        "choices_sha256": _short_hash(json.dumps(list(sample.choices), ensure_ascii=False)),
        "answer_sha256": _short_hash(sample.answer),
    }


def read_manifest(path: str | Path, check_audio: bool = True) -> list[Sample]:
    """Read and validate every line of a manifest; raise ManifestError at the first bad one."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.parent
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{where}: expected a JSON object")
            sample = _check(row, where, root, check_audio)
            if sample.id in seen:
                raise ManifestError(f"{where}: field 'id': duplicate id {sample.id!r} (first on line {seen[sample.id]})")
            seen[sample.id] = lineno
            samples.append(sample)
    if not samples:
        raise ManifestError(f"{path}: no samples")
    if any(s.source == "offline" for s in samples):  # a folder of older offline-generator code is refused
        from amlib.data.offline.suite import check_generator_version
        check_generator_version(root, [s.meta for s in samples if s.source == "offline"])
    return samples


def write_manifest(path: str | Path, rows: list[dict]) -> Path:
    """Write rows (dicts or Samples) as JSON lines, then validate the result by reading it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            row = row.to_json() if isinstance(row, Sample) else row
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    read_manifest(path)
    return path
