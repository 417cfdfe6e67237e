"""Verify the demo: every committed prompt reproduces its recorded test score.

    python -m core demo verify --write             # full test splits (CPU), record the predictions
    python -m core demo verify --sample 24         # a live check of 24 examples per target against them

The recorded predictions (test_predictions.npz) are keyed to a hash of the test split's text
and labels (:func:`split_fingerprint`), so a quick live check of any slice is exact.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from core.results import read_rows as read_results
from core.demo.workers import _demo_tasks, demo_task
from core.fsutil import atomic_open, lines_hash

PREDICTIONS = "test_predictions.npz"


def committed_runs(out: Path) -> list[dict]:
    """results.csv rows whose prompt is committed in the demo folder, by run_id."""
    rows = [r for r in read_results(out / "results.csv") if r.get("prompt_path") and r.get("status") == "finished"]
    return sorted(rows, key=lambda r: r["run_id"])


def split_fingerprint(texts: list[str], labels: list[int]) -> str:
    """What the recorded predictions are keyed to: the exact test text and labels."""
    return lines_hash(f"{y}\t{t}\n" for t, y in zip(texts, labels))


@torch.no_grad()
def predict_many(bb, task, prompts: dict[str, torch.Tensor], idx: list[int] | None = None,
                 batch_size: int = 128) -> dict[str, np.ndarray]:
    """Verbalizer predictions of many prompts on a task's test split (or the examples ``idx``).

    prompts: name -> [L, d]. Examples of different prompts share batches (the prompt is
    per row, [B, L, d]), length-sorted, so 241 prompts cost one pass of batched forwards.
    Returns name -> int8 [n] predicted class per example, in ``idx`` order.
    """
    from core.training.heads import Head, label_embeddings
    te = task.test
    idx = list(range(len(te.texts))) if idx is None else list(idx)
    texts, texts2 = te.inputs(idx) if hasattr(te, "inputs") else ([te.texts[i] for i in idx], None)
    ids = bb.token_ids(texts, 128, texts2=texts2)
    head = Head("verbalizer", label_embeddings(bb, task), 0.05).to(bb.device)
    names = list(prompts)
    P = torch.stack([prompts[n].float() for n in names]).to(bb.device)  # [N, L, d]
    pairs = sorted(((k, j) for k in range(len(names)) for j in range(len(idx))), key=lambda kj: len(ids[kj[1]]))
    out = np.zeros((len(names), len(idx)), dtype=np.int8)
    for s in range(0, len(pairs), batch_size):
        chunk = pairs[s:s + batch_size]
        b = bb.pad([ids[j] for _, j in chunk])
        z = bb.encode(b["input_ids"], b["attention_mask"], P[[k for k, _ in chunk]], pool="text")
        pred = head(z).argmax(-1).cpu().numpy()
        for (k, j), c in zip(chunk, pred):
            out[k, j] = c
    return {n: out[k] for k, n in enumerate(names)}


def verify(out: Path, *, write: bool = False, sample: int | None = None, seed: int = 0,
           tolerance: float = 0.01, log=print) -> dict:
    """Re-evaluate the committed prompts on the CPU against what the demo recorded.

    write=True: every prompt on its full test split; its accuracy must be within
    ``tolerance`` of results.csv's test_score; the predictions are then written to
    ``test_predictions.npz`` (atomically). sample=k: every prompt on k seeded test examples
    per target, compared with the recorded predictions. Returns a summary dict with the
    problems found (an empty ``problems`` list means the demo is what it claims).
    """
    from core.backbone import load_backbone
    from core.prompts import read_prompt
    runs = committed_runs(out)
    rec_path = out / PREDICTIONS
    recorded = dict(np.load(rec_path, allow_pickle=False)) if rec_path.is_file() and not write else {}
    bb = load_backbone(None, "cpu", dtype=torch.float32)
    from core.tasks import list_tasks
    all_tasks = [t for t in _demo_tasks() if t in list_tasks()]  # as the build mixed `generic`
    by_target: dict[str, list[dict]] = {}
    for r in runs:
        by_target.setdefault(r["target"], []).append(r)
    problems, new, n_checked, n_disagree, t0 = [], {}, 0, 0, time.time()
    for target, rs in sorted(by_target.items()):
        task = demo_task(target, all_tasks)
        fp = split_fingerprint(list(task.test.texts), list(task.test.labels))
        labels = np.asarray(task.test.labels)
        prompts = {}
        for r in list(rs):
            try:
                prompts[r["run_id"]] = read_prompt(out / r["prompt_path"]).tensor
            except Exception as e:  # noqa: BLE001 — a prompt that does not load is a finding, not a crash
                problems.append(f"{r['prompt_path']}: does not load ({e})")
                rs.remove(r)
        if not rs:
            continue
        if write or sample is None:
            preds = predict_many(bb, task, prompts)
            for r in rs:
                acc = float((preds[r["run_id"]] == labels).mean())
                if abs(acc - float(r["test_score"])) > tolerance:
                    problems.append(f"{r['prompt_path']}: recorded test score {float(r['test_score']):.4f}, "
                                    f"re-evaluated on the CPU {acc:.4f}")
            new.update({f"pred/{k}": v for k, v in preds.items()})
            new[f"split/{target}"] = np.frombuffer(fp.encode(), dtype=np.uint8)
        else:
            key = f"split/{target}"
            if key not in recorded or bytes(recorded[key]).decode() != fp:
                problems.append(f"{rec_path}: no recorded predictions for the current {target} test split "
                                f"(python -m core demo verify --write)")
                continue
            rng = np.random.default_rng([seed, len(target), sum(map(ord, target))])
            idx = sorted(rng.choice(len(labels), size=min(sample, len(labels)), replace=False).tolist())
            preds = predict_many(bb, task, prompts, idx)
            for r in rs:
                rid = r["run_id"]
                rec = recorded.get(f"pred/{rid}")
                if rec is None or len(rec) != len(labels):
                    problems.append(f"{r['prompt_path']}: no recorded predictions")
                    continue
                acc = float((rec == labels).mean())
                if abs(acc - float(r["test_score"])) > tolerance:
                    problems.append(f"{r['prompt_path']}: recorded predictions score {acc:.4f}, "
                                    f"results.csv says {float(r['test_score']):.4f}")
                bad = int((preds[rid] != rec[idx]).sum())
                n_checked += len(idx)
                n_disagree += bad
                if bad > max(1, len(idx) // 20):
                    problems.append(f"{r['prompt_path']}: {bad} of {len(idx)} live predictions differ "
                                    "from the recorded ones")
        log(f"verify {target}: {len(rs)} prompts ({time.time() - t0:.0f} s)")
    if write and not problems:
        with atomic_open(rec_path, "wb") as f:
            np.savez_compressed(f, **new)
        log(f"wrote {rec_path} ({len(runs)} prompts)")
    return {"prompts": len(runs), "problems": problems, "checked": n_checked, "disagree": n_disagree,
            "seconds": time.time() - t0}
