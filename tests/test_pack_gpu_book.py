"""scripts/pack_gpu_book.py: the assets for a GPU machine, one folder per 64 MiB call."""

from pathlib import Path

import pytest
from conftest import load_script


def _script():
    return load_script("pack_gpu_book")


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(size))
    return path


def test_every_item_travels_whole_in_a_folder_within_the_budget(tmp_path):
    pack = _script().pack
    sizes = [70, 60, 50, 40, 30, 20, 10]
    items = [_file(tmp_path / "in" / f"f{i}.bin", s) for i, s in enumerate(sizes)]
    data = tmp_path / "in" / "data"
    _file(data / "manifest.jsonl", 25), _file(data / "audio" / "a.ogg", 25)  # a folder: one item of 50 bytes
    folders = pack(items + [data], 100, tmp_path / "out")
    held = {p.name: p.stat().st_size for f in folders for p in f.iterdir() if p.is_file()}
    assert held == {f"f{i}.bin": s for i, s in enumerate(sizes)}  # each file once, whole
    assert sum((f / "data").is_dir() for f in folders) == 1
    assert all(sum(p.stat().st_size for p in f.rglob("*") if p.is_file()) <= 100 for f in folders)
    assert len(folders) == 4  # 330 bytes: at least 4 folders of 100 (first fit, largest first, reaches it)
    with pytest.raises(ValueError, match="f0.bin: .* more than one call's"):
        pack(items, 69, tmp_path / "out2")


def test_missing_or_doubled_wheels_stop_the_packing(tmp_path):
    module = _script()
    wheels = [tmp_path / f"{name.replace('-', '_')}-1.0-py3-none-any.whl" for name in module.NEEDED_WHEELS]
    module.check_wheels(wheels)  # all there, once each
    with pytest.raises(SystemExit, match="missing gguf;"):
        module.check_wheels([w for w in wheels if not w.name.startswith("gguf-")])
    with pytest.raises(SystemExit, match="more than one version of transformers"):
        module.check_wheels(wheels + [tmp_path / "transformers-5.3.0-py3-none-any.whl"])


def test_what_pack_writes_is_what_the_staging_script_collects(tmp_path):
    """The packed folders, carried one call at a time, end up staged whole (the staging script reads
    the folders right under .gpu/; a folder one level deeper would be missed)."""
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    items = [_file(tmp_path / "in" / "SmolLM2.gguf.part00", 40), _file(tmp_path / "in" / "SmolLM2.gguf.part01", 40),
             _file(tmp_path / "in" / "encoder.safetensors", 30), _file(tmp_path / "in" / "papermill-2.7.0-py3-none-any.whl", 20)]
    tokenizer, data = tmp_path / "in" / "tokenizer", tmp_path / "in" / "offline-test"
    _file(tokenizer / "tokenizer.json", 10)
    _file(data / "manifest.jsonl", 15), _file(data / "audio" / "a.ogg", 15)
    packed = tmp_path / "packed"  # a repository root; the script's default --out is .gpu
    folders = _script().pack(items + [tokenizer, data], 70, packed / ".gpu")
    stage = tmp_path / "stage"
    for folder in folders:  # one call each, carrying the folder at its path in the repository
        call = tmp_path / "call"
        shutil.rmtree(call, ignore_errors=True)
        (call / "scripts").mkdir(parents=True)
        shutil.copy(repo / "scripts" / "gpu_train_reference.sh", call / "scripts")
        shutil.copy(repo / "scripts" / "gpu_book.sh", call / "scripts")
        shutil.copytree(folder, call / folder.relative_to(packed))
        subprocess.run(["bash", "scripts/gpu_book.sh", "stage"], cwd=call, check=True, capture_output=True,
                       env={"PATH": "/usr/bin:/bin", "STAGE": str(stage)})
    staged = {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()}
    assert {"SmolLM2.gguf.part00", "SmolLM2.gguf.part01", "encoder.safetensors", "papermill-2.7.0-py3-none-any.whl",
            "cache/smollm2-135m-instruct-tokenizer-v1/tokenizer.json", "data/offline-test/manifest.jsonl",
            "data/offline-test/audio/a.ogg"} <= staged
