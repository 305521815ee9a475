"""Data: the manifest format, audio loading and the dataset builders."""

from amlib.data.audio import SAMPLE_RATE, AudioError, load_audio
from amlib.data.manifest import ManifestError, Sample, read_manifest, write_manifest

__all__ = ["SAMPLE_RATE", "AudioError", "load_audio", "ManifestError", "Sample", "read_manifest", "write_manifest"]
