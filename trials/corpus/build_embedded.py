"""Rebuilds `stdlib_docstrings.jsonl.gz`, the embedded default corpus (shipped, so every machine reads
the same bytes): the docstrings of CPython's standard library (PSF license), one record per module.

    python -m trials.corpus.build_embedded /usr/lib/python3.11
"""
from __future__ import annotations

import ast
import gzip
import json
import sys
from pathlib import Path

SKIP = ("test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "ensurepip")
MAX_BYTES = 4_000_000


def module_text(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    docs = [ast.get_docstring(n) for n in nodes]
    return "\n\n".join(d.strip() for d in docs if d and len(d.split()) >= 5)


def main(stdlib: str) -> None:
    root, total, records = Path(stdlib), 0, []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIP for part in rel.parts):
            continue
        try:
            text = module_text(path)
        except (SyntaxError, ValueError):
            continue
        if len(text) < 200:
            continue
        records.append({"id": ".".join(rel.with_suffix("").parts), "text": text})
        total += len(text)
        if total > MAX_BYTES:
            break
    out = Path(__file__).with_name("stdlib_docstrings.jsonl.gz")
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(payload)
    print(f"{len(records)} modules, {total / 1e6:.1f} MB of text -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
