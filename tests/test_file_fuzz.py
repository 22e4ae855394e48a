"""A seeded fuzz of export and checkpoint files: random field values, truncations, bit flips, garbage.

    OMP_NUM_THREADS=1 pytest tests/test_file_fuzz.py          # under a minute; FUZZ_SEED=n FUZZ_SECONDS=s to vary

Every mutated file is loaded in a child process whose address space is capped (RLIMIT_AS, 3 GB) and
whose every load has an alarm of 10 s: a load must succeed or raise an Exception whose message names the
file; a MemoryError, a hang, or an error without the file's name is a finding, printed with the mutation
that caused it (replayable: the seed and the case number).
"""

from __future__ import annotations

import json
import os

from tests.file_faults import format2_export, run_capped

SEED = int(os.environ.get("FUZZ_SEED", "0"))
SECONDS = float(os.environ.get("FUZZ_SECONDS", "10"))
EXPORTS = ("collab", "collab_nn", "tabular", "image_classifier", "language_model", "text_classifier", "seq2seq")

CHILD = r"""
import copy, json, os, random, resource, signal, struct, sys, time, traceback
from pathlib import Path
import torch
from torch import nn
import quickfit as qf
from quickfit.io import safe_load
from tests.fixtures.make_exports import register_tiny_arch
register_tiny_arch()
torch.set_num_threads(1)
exports, checkpoints, work, seed, seconds = json.loads(sys.argv[1])
rng = random.Random(seed)
VALUES = [0, 1, -1, 2, 7, 10**6, 10**9, 10**12, 2**63, -(10**9), 0.5, 1e9, 1e300, float("nan"), "2", "", "x" * 300,
          None, True, [], [0], [10**9, 10**9], [30000, 30000], {}, {"type": "os.system"}, "../../etc/passwd"]

def leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from leaves(v, path + (k,))
    elif isinstance(d, list) and d and len(d) < 50:
        for i, v in enumerate(d):
            yield from leaves(v, path + (i,))
    yield path

def set_at(d, path, value):
    if not path:
        return value
    target = d
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return d

def mutate_json(data):
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    info = json.loads(header["__metadata__"]["quickfit"])
    for _ in range(rng.choice([1, 1, 2, 3])):
        path = rng.choice(list(leaves(info)))
        info = set_at(info, path, copy.deepcopy(rng.choice(VALUES)))  # a copy: never one list in two places
    header["__metadata__"]["quickfit"] = json.dumps(info)
    new = json.dumps(header, separators=(",", ":")).encode()
    new += b" " * (-len(new) % 8)
    return struct.pack("<Q", len(new)) + new + data[8 + n:], f"fields {info!r}"[:300]

def mutate_bytes(data):
    kind = rng.choice(["truncate", "flip", "flips", "garbage", "zero"])
    data = bytearray(data)
    if kind == "truncate":
        cut = rng.randrange(len(data))
        return bytes(data[:cut]), f"truncated at {cut}"
    if kind == "flip":
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        return bytes(data), f"bit flipped at {at}"
    if kind == "flips":
        at = rng.randrange(len(data))
        for i in range(at, min(at + 64, len(data))):
            data[i] ^= rng.randrange(1, 256)
        return bytes(data), f"64 bytes changed at {at}"
    if kind == "garbage":
        return os.urandom(rng.randrange(1, 5000)), "garbage"
    return b"", "empty"

class Hang(BaseException):
    pass

def alarm(*_):
    raise Hang()

signal.signal(signal.SIGALRM, alarm)
learn = qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 2), nn.CrossEntropyLoss(), path=work, progress=False)
findings, counts, start, case = [], {"ok": 0, "refused": 0}, time.time(), 0
while time.time() - start < seconds:
    case += 1
    is_export = rng.random() < 0.7
    src = Path(rng.choice(exports if is_export else checkpoints))
    data = src.read_bytes()
    data, what = mutate_json(data) if is_export and rng.random() < 0.6 else mutate_bytes(data)
    f = Path(work) / f"case{case}{src.suffix}"
    f.write_bytes(data)
    signal.alarm(10)
    try:
        if is_export:
            qf.load_learner(f)
        elif src.name.startswith("run"):
            safe_load(f)
        else:
            learn.load(str(f))
        counts["ok"] += 1
    except Hang:
        findings.append(f"case {case} ({src.name}, {what}): hung for 10 s")
    except MemoryError as e:
        findings.append(f"case {case} ({src.name}, {what}): MemoryError {e}")
    except Exception as e:
        counts["refused"] += 1
        if str(f) not in str(e):
            findings.append(f"case {case} ({src.name}, {what}): {type(e).__name__} without the file's name: {e}"[:600])
    finally:
        signal.alarm(0)
    f.unlink()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"cases": case, **counts, "findings": findings, "maxrss_kb": maxrss}))
"""


def test_fuzzed_export_and_checkpoint_files_are_loaded_or_refused_by_name(tmp_path):
    from torch import nn

    import quickfit as qf
    from tests.conftest import make_dls

    exports = [str(format2_export(case, tmp_path / f"{case}.qf")) for case in EXPORTS]
    learn = qf.Learner(make_dls(), nn.Linear(2, 2), nn.CrossEntropyLoss(), path=tmp_path, progress=False)
    learn.fit(2, 1e-2, checkpoint="run")
    checkpoints = [str(learn.save("plain")), str(tmp_path / "models" / "run.pth")]
    work = tmp_path / "work"
    work.mkdir()
    args = json.dumps([exports, checkpoints, str(work), SEED, SECONDS])
    out = run_capped(f"import sys; sys.argv = ['fuzz', {args!r}]\n" + CHILD, timeout=SECONDS + 60)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"fuzz: {result['cases']} cases, {result['ok']} loaded, {result['refused']} refused by name")
    assert result["cases"] > 50, result  # it did fuzz
    assert result["findings"] == [], "\n\n".join(result["findings"][:20])
    assert result["maxrss_kb"] < 1024 * 1024, result["maxrss_kb"]
