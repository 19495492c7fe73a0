import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lclab.errors import ConfigError
from lclab.models import SpecialTokens
from tests.conftest import small_trial
from lclab.trials import run_trial
from lclab.trials.corpus import load_corpus
from lclab.trials.data import TrialData, make_source
from lclab.trials.synthetic import generate, layout


@pytest.mark.parametrize("task", ["reconstruction", "span_recall", "kv_recall", "kv_offset"])
def test_synthetic_tasks_are_deterministic_and_answerable(tmp_path, task):
    d = small_trial(tmp_path, data={"tasks": [task], "kv_pairs": 4, "span_len": 4, "kv_offset": 2}).data
    context, text, mask = generate(task, 3, 5, 16, d)
    again = generate(task, 3, 5, 16, d)
    other = generate(task, 4, 5, 16, d)
    assert all(np.array_equal(x, y) for x, y in zip((context, text, mask), again))
    assert not np.array_equal(context, other[0])
    assert context.shape == (16, d.context_len) and text.shape == mask.shape == (16, d.text_len)
    assert mask.any(1).all() and (text < layout(d)["vocab_size"]).all()
    # every supervised token is recoverable from the context by the task's rule
    for row in range(16):
        answers = text[row][mask[row]]
        assert set(answers.tolist()) <= set(context[row].tolist())
    if task != "reconstruction":  # queries never repeat, so no answer can be copied from the text
        queries = text[:, ::2] if task.startswith("kv") else text[:, 1::6]
        for row in queries:
            asked = row[row != SpecialTokens.PAD]
            assert len(set(asked.tolist())) == len(asked)
    if task == "kv_recall":
        pairs = dict(zip(context[:, 0:8:2][0], context[:, 1:8:2][0]))
        asked = text[0][::2][mask[0][1::2]]
        assert [pairs[k] for k in asked] == text[0][1::2][mask[0][1::2]].tolist()
    if task == "kv_offset":  # blocks of kv_offset keys, then their values: each value 2 tokens after its key
        pairs = dict(zip([*context[0, 0:2], *context[0, 4:6]], [*context[0, 2:4], *context[0, 6:8]]))
        asked = text[0][::2][mask[0][1::2]]
        assert [pairs[k] for k in asked] == text[0][1::2][mask[0][1::2]].tolist()
        keys = layout(d)["keys"]
        assert (context[:, [0, 1, 4, 5]] >= keys).all() and (context[:, [2, 3, 6, 7]] < keys).all()
    if task == "span_recall":
        span = text[0][1] - layout(d)["spans"]
        assert text[0][2:6].tolist() == context[0][span * 4:(span + 1) * 4].tolist()


def test_kv_offset_must_divide_the_pairs(tmp_path):
    with pytest.raises(ConfigError, match="data.kv_offset"):
        small_trial(tmp_path, data={"tasks": ["kv_offset"], "kv_pairs": 4, "kv_offset": 3})


def test_validation_data_does_not_depend_on_the_trial_seed(tmp_path):
    a = make_source(small_trial(tmp_path, seed=0).data).val_batches(8)
    b = make_source(small_trial(tmp_path, seed=5).data).val_batches(8)
    assert all(torch.equal(x["context"], y["context"]) for x, y in zip(a, b))


def test_embedded_corpus_is_split_deterministically_and_tokenized_with_bpe(tmp_path):
    d = small_trial(tmp_path, data={"source": "embedded", "tokenizer": "bpe", "tokenizer_vocab": 512,
                                    "context_len": 32, "text_len": 32}).data
    corpus = load_corpus(d)
    again = load_corpus(d)
    assert corpus.fingerprint == again.fingerprint and corpus.val == again.val
    assert len(corpus.val) > 5 and len(corpus.train) > 10 * len(corpus.val)
    assert not set(corpus.val) & set(corpus.train)
    source = make_source(d)
    assert source.vocab_size == 512
    batch = source.train_batch(0, 0, 4)
    assert batch["context"].shape == (4, 32) and batch["context"].max() < 512
    assert torch.equal(batch["context"], make_source(d).train_batch(0, 0, 4)["context"])  # cached shard


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet"])
def test_local_files_load_through_datasets(tmp_path, kind):
    docs = [f"document {i}: " + "the quick brown fox jumps over the lazy dog. " * 20 for i in range(60)]
    path = tmp_path / f"corpus.{kind}"
    if kind == "txt":
        path.write_text("\n".join(docs))
    elif kind == "jsonl":
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    else:
        pq.write_table(pa.table({"text": docs}), path)
    d = small_trial(tmp_path, data={"source": "files", "path": [str(path)], "tokenizer": "byte",
                                    "val_fraction": 0.2}).data
    source = make_source(d)
    assert source.vocab_size == SpecialTokens.COUNT + 256
    batch = source.val_batches(8)[0]
    text = bytes((batch["context"][0] - SpecialTokens.COUNT).tolist()).decode()
    assert "fox" in text or "dog" in text or "document" in text


def test_text_trial_runs_end_to_end(tmp_path):
    cfg = small_trial(tmp_path, data={"source": "embedded", "tokenizer": "byte", "context_len": 32, "text_len": 16,
                                      "val_examples": 16}, train={"steps": 4})
    m = run_trial(cfg).metrics
    assert np.isfinite(m["val/loss_compressed"]) and "val/text/acc" in m


def test_an_unreachable_hub_dataset_names_the_field_and_the_cause(monkeypatch):
    from lclab.trials.config import DataConfig

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # as on a cluster node without network
    with pytest.raises(ConfigError, match=r"data.path.*could not load hub dataset.*Couldn't reach"):
        load_corpus(DataConfig(source="hub", path=["no-such-user/no-such-dataset"]))


def test_a_hub_dataset_without_the_offline_flag_fails_in_one_paragraph(monkeypatch, capfd):
    """A node without network and without HF_DATASETS_OFFLINE: huggingface_hub retries (~40 s here) and printed a
    warning line per retry above lclab's error. With network, an unknown name fails at once; either way, one error."""
    from lclab.trials.config import DataConfig

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConfigError, match=r"data.path.*could not load hub dataset") as err:
        load_corpus(DataConfig(source="hub", path=["no-such-user/no-such-dataset"]))
    printed = capfd.readouterr()
    assert "Retrying" not in printed.err + printed.out and "thrown while requesting" not in printed.err + printed.out
    assert "HF_DATASETS_OFFLINE=1" in err.value.fix


def test_a_folder_stands_for_the_data_files_in_it(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for shard in (0, 1):
        (folder / f"part-{shard}.jsonl").write_text("".join(json.dumps({"text": f"shard {shard} doc {i} " * 30}) + "\n"
                                                           for i in range(20)))
    (folder / "README.md").write_text("how these shards were made\n")
    d = small_trial(tmp_path, data={"source": "files", "path": [str(folder)], "tokenizer": "byte", "val_fraction": 0.2}).data
    corpus = load_corpus(d)
    docs = corpus.train + corpus.val
    assert len(docs) == 40 and {doc.split()[1] for doc in docs} == {"0", "1"}  # both shards, not the README
    (folder / "part-2.jsonl").write_text(json.dumps({"text": "shard 2 " * 30}) + "\n")
    assert load_corpus(d).fingerprint != corpus.fingerprint  # a new shard is new data
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("no data here\n")
    d = small_trial(tmp_path, data={"source": "files", "path": [str(empty)], "tokenizer": "byte"}).data
    with pytest.raises(ConfigError, match=f"data.path.*folder {empty} holds no data files"):
        load_corpus(d)


def test_missing_data_file_names_the_field(tmp_path):
    d = small_trial(tmp_path, data={"source": "files", "path": [str(tmp_path / "missing.jsonl")]}).data
    with pytest.raises(ConfigError, match="data.path.*not found"):
        make_source(d)


BAD_FILES = {  # name: (bytes, the field blamed, what the message says)
    "empty.txt": (b"", "data.path", "are empty"),
    "binary.txt": (b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe", "data.path", "as text (UnicodeDecodeError"),
    "broken.jsonl": (b'{"text": "a"}\n{broken\n', "data.path", "as json (ArrowInvalid: JSON parse error"),
    "ckpt.parquet": (b"PK\x03\x04 not parquet", "data.path", "as parquet (ArrowInvalid"),
    "numbers.jsonl": (b"".join(b'{"text": %d}\n' % i for i in range(1, 40)), "data.text_field", "holds int values (1)"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_data_file_that_is_not_what_its_suffix_says_names_the_field_and_the_cause(tmp_path, name):
    content, field, message = BAD_FILES[name]
    (tmp_path / name).write_bytes(content)
    d = small_trial(tmp_path, data={"source": "files", "path": [str(tmp_path / name)], "tokenizer": "byte"}).data
    with pytest.raises(ConfigError) as err:
        make_source(d)
    assert err.value.field == field and message in err.value.problem, err.value


TRAIN_ONE = """
import sys, time
from pathlib import Path
import tokenizers
from lclab.trials.tokenizer import BPETokenizer

real = tokenizers.Tokenizer.train_from_iterator
def counted(self, *a, **kw):  # every training leaves a line in the shared log
    with open(sys.argv[2], "a") as log:
        log.write("trained\\n")
    time.sleep(1.0)  # hold the build long enough for the other workers to arrive
    return real(self, *a, **kw)
tokenizers.Tokenizer.train_from_iterator = counted
tok = BPETokenizer.train_or_load(["a b c d e f g"] * 200, 300, "shared", Path(sys.argv[1]))
print(tok.fingerprint)
"""


def test_four_workers_on_a_cold_cache_train_the_tokenizer_once(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "trainings.log"
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN_ONE, str(tmp_path / "cache"), str(log)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1000:] for o in outs]
    assert log.read_text().count("trained") == 1  # without the lock each cold worker trains its own
    assert len({o[0] for o in outs}) == 1  # and all load the same file
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_a_gpu_trials_loader_worker_yields_this_ranks_batches_as_the_main_process_does(tmp_path, monkeypatch):
    """On a GPU a worker process builds the batches. It is in no process group, so the DDP rank must be read where the
    loader is made: here the worker starts once the rank seen at that moment is gone, as it would be in a fresh one."""
    import lclab.trials.data as data

    cfg = small_trial(tmp_path, train={"steps": 5, "full_context_share": 0.25})
    source = make_source(cfg.data)
    monkeypatch.setattr(data, "rank_world", lambda: (1, 2))
    here = list(TrialData(cfg, source, 5).train_dataloader())
    loader = TrialData(cfg, source, 5, gpu=True).train_dataloader()
    monkeypatch.undo()
    assert loader.num_workers == 1
    worker = list(loader)
    assert len(worker) == len(here) == 5
    for a, b, step in zip(here, worker, range(5)):
        rows = [(m, n // 2) for m, n in cfg.train.composition().items()]  # the loader turns tuples into lists
        assert [tuple(r) for r in a["mode_rows"]] == [tuple(r) for r in b["mode_rows"]] == rows
        for k in ("context", "text", "loss_mask", "mode_tokens"):
            assert torch.equal(a[k], b[k]), (step, k)


def test_a_trial_fed_by_a_loader_worker_trains_exactly_as_one_fed_in_process(tmp_path, monkeypatch):
    """A GPU trial's loader (a worker, pinned memory where there is a GPU) forced on a CPU trial: same steps, same data."""
    import lclab.trials.run as run

    cfg = small_trial(tmp_path / "a", train={"steps": 6, "checkpoint_every": 3})
    plain = run_trial(cfg).metrics
    monkeypatch.setattr(run, "TrialData", lambda cfg, source, steps, gpu: TrialData(cfg, source, steps, gpu=True))
    worker = run_trial(small_trial(tmp_path / "b", train={"steps": 6, "checkpoint_every": 3})).metrics
    assert {k: v for k, v in worker.items() if k.startswith("val/loss")} == \
        {k: v for k, v in plain.items() if k.startswith("val/loss")}
