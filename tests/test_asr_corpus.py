"""The reference model's ASR training corpus (amlib.reference.asr_corpus): texts, their split, clip plans, rendering."""

import json

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.reference import asr_corpus as corpus

FORTUNES = """The best way to predict the future is to invent it.
\t\t-- Alan Kay
%
There are 10 kinds of people.
%
Never put off until tomorrow what you can do the day after tomorrow.
%
A closed mouth gathers no foot.
"""
# two WordNet data lines (offset, lexfile, pos, words, pointers | gloss) and a licence line
WORDNET = """  1 This software and database is being provided to you, the LICENSEE
00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known or inferred to have its own distinct existence
02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "the dog barked all night"; "the DNA of 3D dogs"
"""


@pytest.fixture()
def sources(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "fortunes").write_text(FORTUNES)
    (tmp_path / "wordnet").mkdir()
    for pos in ("noun", "verb", "adj", "adv"):
        (tmp_path / "wordnet" / f"data.{pos}").write_text(WORDNET if pos == "noun" else "")
    return tmp_path


def test_texts_are_prose_that_the_transcript_rules_can_spell(sources):
    fortunes = corpus.fortune_texts(sources / "fortunes")
    assert fortunes == ["The best way to predict the future is to invent it.",  # attribution line dropped
                        "There are ten kinds of people.",  # numbers 0-99 become words
                        "Never put off until tomorrow what you can do the day after tomorrow.",
                        "A closed mouth gathers no foot."]
    wordnet = corpus.wordnet_texts(sources / "wordnet")
    assert wordnet == ["That which is perceived or known or inferred to have its own distinct existence.",
                       "A member of the genus Canis.", "The dog barked all night."]  # "DNA of 3D" left out


def test_missing_sources_name_the_package_to_install(tmp_path):
    with pytest.raises(corpus.CorpusError, match="apt-get install -y fortunes"):
        corpus.fortune_texts(tmp_path)
    with pytest.raises(corpus.CorpusError, match="wordnet-base"):
        corpus.wordnet_texts(tmp_path)


def make_texts(n: int = 400) -> dict[str, list[str]]:
    words = "apple river quiet stone candle window garden silver morning thunder pocket ladder".split()
    rng = np.random.default_rng(0)
    texts = lambda k: [" ".join(rng.choice(words, size=int(rng.integers(4, 12)))).capitalize() + f" number {i}."
                       for i in range(k)]
    return {"fortunes": texts(n), "wordnet": texts(n)}


def test_plans_read_each_text_once_and_keep_validation_texts_apart():
    texts = make_texts()
    train = corpus.plan_clips(60, "train", seed=3, texts=texts)
    val = corpus.plan_clips(5, "val", seed=3, texts=texts)
    read = [t for p in train for t in p.texts]
    assert len(read) == len(set(read))
    assert {corpus.text_holdout(t) for t in read} == {"train"}
    assert {corpus.text_holdout(t) for p in val for t in p.texts} == {"val"}
    assert not set(read) & {t for p in val for t in p.texts}
    assert all(sum(len(t.split()) for t in p.texts) <= corpus.CLIP_MAX_WORDS or len(p.texts) == 1 for p in train)
    # seeded, and clip i does not depend on how many clips are planned (a build can be cut short)
    assert corpus.plan_clips(20, "train", seed=3, texts=texts) == train[:20]
    assert corpus.plan_clips(20, "train", seed=4, texts=texts) != train[:20]
    assert {p.voice.engine for p in train} <= set(corpus.ENGINE_SHARE)


def test_no_test_split_speaker_reads_a_clip():
    from amlib.data.offline.voices import voices_of

    test_speakers = {v.speaker for v in voices_of("test")}
    assert test_speakers and not test_speakers & {v.speaker for v in corpus.corpus_voices()}


def test_a_rendered_clip_is_a_valid_train_row_and_a_rerun_keeps_it(tmp_path):
    voice = next(v for v in corpus.corpus_voices() if v.engine == "flite")
    plan = corpus.ClipPlan(7, ("The dog barked all night.", "A closed mouth gathers no foot."), ("wordnet", "fortunes"), voice)
    row = corpus.render_clip(plan, tmp_path, "train", seed=1)
    assert row["answer"] == "The dog barked all night. A closed mouth gathers no foot."
    assert row["split"] == "train" and row["meta"]["speaker"] == voice.speaker and row["task"] == "ASR"
    wave, sr = sf.read(tmp_path / row["audio"])
    assert sr == 16000 and abs(len(wave) / sr - row["duration_s"]) < 0.01 and np.abs(wave).max() > 0.01
    (tmp_path / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    assert read_manifest(tmp_path)[0].answer == row["answer"]
    (tmp_path / row["audio"]).unlink()  # a re-run takes the row written, it does not render again
    assert corpus.render_clip(plan, tmp_path, "train", seed=1) == row
