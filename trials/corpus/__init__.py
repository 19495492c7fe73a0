"""Text corpora through Hugging Face `datasets`: the embedded default, local files or a hub dataset,
split deterministically and tokenized once into cached memory-mapped shards."""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from lclab.errors import ConfigError
from lclab.models import SpecialTokens

from ..config import DataConfig

EMBEDDED = Path(__file__).with_name("stdlib_docstrings.jsonl.gz")
LOADERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".gz": "json"}


def build_once(path: Path, write) -> Path:
    """A cache file built once across concurrent workers: under `path`'s file lock, if it is still missing, `write`
    builds it at a temporary name unique to this process, renamed over `path` (readers never see half a file); the
    others wait for the lock and find it built."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock"):
            if not path.exists():
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                try:
                    write(tmp)
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("LCLAB_CACHE", Path.home() / ".cache" / "lclab"))


@dataclass
class Corpus:
    train: list[str]
    val: list[str]
    fingerprint: str  # identifies the exact text: changes when any byte of the source changes


def _file_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _data_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the data files directly in it, in name order (a README beside them is
    not data)."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in LOADERS)
            if not found:
                raise ConfigError("data.path", f"folder {path} holds no data files",
                                  "put .txt, .jsonl/.json(.gz) or .parquet files in it, or name the files themselves")
            files += found
        else:
            files.append(path)
    return files


def _load_local(files: list[Path], d: DataConfig):
    import datasets

    files = _data_files(files)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError("data.path", f"data file(s) not found: {', '.join(missing)}",
                          "point data.path at existing .txt/.jsonl/.parquet files (paths are relative to where lclab runs)")
    kinds = {LOADERS.get(f.suffix) for f in files}
    if None in kinds or len(kinds) != 1:
        raise ConfigError("data.path", f"cannot read {[f.name for f in files]} as one corpus",
                          "use files of one kind: .txt, .jsonl/.json(.gz) or .parquet")
    kind, names = kinds.pop(), [str(f) for f in files]
    if all(f.stat().st_size == 0 for f in files):
        raise ConfigError("data.path", f"data file(s) {', '.join(names)} are empty", "point data.path at files with text in them")
    datasets.disable_progress_bars()
    quiet = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its reader logs the parse error this error names
    try:
        return datasets.load_dataset(kind, data_files=names, split="train"), _file_fingerprint(files)
    except Exception as err:  # noqa: BLE001  datasets wraps any reader's failure (not UTF-8, bad JSON, not parquet)
        cause = err.__cause__ or err
        detail = str(cause).splitlines()[0][:200] if str(cause) else "no rows"
        raise ConfigError("data.path", f"cannot read {', '.join(names)} as {kind} ({type(cause).__name__}: {detail})",
                          {"text": "use UTF-8 text files", "json": "use JSON Lines: one JSON object per line",
                           "parquet": "use parquet files written by pandas, pyarrow or datasets"}[kind]) from None
    finally:
        datasets.logging.set_verbosity(quiet)


def _load_hub(d: DataConfig):
    import datasets

    from huggingface_hub.utils import logging as hub_logging

    name, *config = d.path
    datasets.disable_progress_bars()
    quiet = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()  # its five 'Retrying in Ns' warnings per file: the error below says it once
    try:
        ds = datasets.load_dataset(name, *config[:1], split="train")
    except (OSError, ValueError) as err:  # no network, unknown name, gated dataset (all OSErrors), bad config name
        raise ConfigError("data.path", f"could not load hub dataset {d.path} ({type(err).__name__}: {str(err)[:200]})",
                          "check the name and network access (on a machine without network: load it once where there "
                          "is one, then set HF_DATASETS_OFFLINE=1 to read the cache), or download it and use source: "
                          "files") from None
    finally:
        hub_logging.set_verbosity(quiet)
    return ds, hashlib.sha256(f"{d.path}:{ds._fingerprint}".encode()).hexdigest()[:16]


def load_corpus(d: DataConfig) -> Corpus:
    if d.source == "hub":
        ds, fingerprint = _load_hub(d)
    else:
        files = [EMBEDDED] if d.source == "embedded" else [Path(p) for p in d.path]
        ds, fingerprint = _load_local(files, d)
    if d.text_field not in ds.column_names:
        raise ConfigError("data.text_field", f"column '{d.text_field}' not in {ds.column_names}", "set data.text_field to the text column")
    texts = [t for t in ds[d.text_field] if t]
    other = next((t for t in texts if not isinstance(t, str)), None)
    if other is not None:
        raise ConfigError("data.text_field", f"column '{d.text_field}' holds {type(other).__name__} values ({other!r:.40}), not text",
                          "set data.text_field to a column of strings")
    # a document goes to validation by a hash of its index: stable, and independent of the trial seed
    is_val = [zlib.crc32(str(i).encode()) % 10_000 < d.val_fraction * 10_000 for i in range(len(texts))]
    train = [t for t, v in zip(texts, is_val) if not v]
    val = [t for t, v in zip(texts, is_val) if v]
    if not train or not val:
        raise ConfigError("data.val_fraction", f"{len(texts)} document(s) leave an empty train or validation split",
                          "add documents or change data.val_fraction")
    return Corpus(train, val, f"{fingerprint}-{d.text_field}-{d.val_fraction}")


def token_shard(texts: list[str], tokenizer, key: str) -> np.ndarray:
    """All documents tokenized and joined by <eos>, cached as a memory-mapped file under `key`."""
    path = cache_dir() / "shards" / f"{key}.bin"
    dtype = np.uint16 if tokenizer.vocab_size < 2**16 else np.uint32
    build_once(path, lambda tmp: np.fromiter((i for doc in tokenizer.encode_batch(texts) for i in (*doc, SpecialTokens.EOS)),
                                             dtype=dtype).tofile(tmp))
    return np.memmap(path, dtype=dtype, mode="r")
