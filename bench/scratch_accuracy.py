"""Sweep + scratch accuracy table on the demo tasks (engineer C, issue 3). Parallel worker processes.

    python bench/scratch_accuracy.py --model MODEL_FOLDER --out OUTDIR [--workers 8] [--quick]

Produced the lr / init-text sweep and the per-task scratch accuracy table recorded in
core/training/ (run on an H200 with an fp16 copy of MiniLM carried by bench/pack_device.py).
"""
import argparse, json, os, sys, time, itertools
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
sys.path.insert(0, os.getcwd())

_BB = None
def _init(model, dtype):
    global _BB
    os.environ["ATLAS_DTYPE"] = dtype
    import torch
    torch.set_num_threads(1)
    from core.backbone import load_backbone
    _BB = load_backbone(model)

def _init_scores(job):
    from core.tasks import get_task
    from core.training import evaluate, text_init
    task = get_task(job["task"])
    if job["quick"]:
        task = _small(task, 16)
    out = {"task": job["task"], "none": evaluate(None, task, "validation", _BB)}
    for name, text in job["cands"].items():
        out[name] = evaluate(text_init(_BB, 20, text), task, "validation", _BB)
    return out

def _run(job):
    from core.tasks import get_task
    from core.training import TrainConfig, train
    task = get_task(job["task"])
    cfg = TrainConfig(method="scratch", backbone=_BB.name, **job["cfg"])
    t = time.time()
    r = train(cfg, backbone=_BB, task=task)
    return {**job, "val": r.val_score, "test": r.test_score, "init_val": r.init_val_score, "best_step": r.best_step,
            "norm": r.prompt.settings["final_norm"], "wall": time.time() - t, "device": r.device}

def _small(task, n):
    from core.tasks import Task, Split
    cut = lambda sp: Split(sp.texts[:n], sp.labels[:n])
    return Task(name=task.name, family=task.family, labels=task.labels, descriptions=task.descriptions,
                train=cut(task.train), validation=cut(task.validation), test=cut(task.test))

def _baseline(name, quick=False):
    from core.tasks import get_task
    from core.training import zero_shot_scores
    task = get_task(name)
    if quick:
        task = _small(task, 24)
    s = zero_shot_scores(task, _BB, "test", probe=True)
    s["val_no_prompt"] = zero_shot_scores(task, _BB, "validation")["no_prompt"]
    return {"task": name, **s}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True); ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=8); ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--quick", action="store_true"); ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--phase", default="init,sweep,table")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    steps = 6 if a.quick else a.steps
    base = dict(steps=steps, batch_size=16, eval_every=max(1, steps // 6), device="auto")
    if a.quick:
        base.update(train_size=32, val_size=16, test_size=16)
    sweep_tasks = ["sent_tweet", "question_type", "party_tweet"]
    grid = []
    for lr in (0.003, 0.01, 0.03, 0.1, 0.3):
        grid.append(dict(lr=lr))
    for lr in (0.1, 0.3):
        grid.append(dict(lr=lr, max_norm=2.0))
    grid.append(dict(lr=0.03, schedule="cosine"))
    grid.append(dict(lr=0.03, tau=0.1))
    grid.append(dict(lr=0.03, pool="all"))
    grid.append(dict(lr=0.03, init="random_vocab"))
    if a.quick:
        grid = grid[:3]
    ctx = mp.get_context("spawn")
    t0 = time.time()
    with ProcessPoolExecutor(a.workers, mp_context=ctx, initializer=_init, initargs=(a.model, a.dtype)) as ex:
        results = {}
        chosen_init = {}
        if "init" in a.phase:
            cands = {"neutral": "read the following text and decide what it is about .",
                     "classify": "classify this text .", "dot": ".", "comma": ",", "text_dot": "text ."}
            all_tasks = ["sent_movie", "sent_tweet", "sent_product", "topic_usenet", "topic_newswire",
                         "question_type", "spam_sms", "party_tweet", "party_speech", "party_parliament"]
            if a.quick:
                all_tasks = all_tasks[:2]
            ini = list(ex.map(_init_scores, [dict(task=t, cands=cands, quick=a.quick) for t in all_tasks]))
            json.dump(ini, open(os.path.join(a.out, "init.json"), "w"), indent=1)
            print("init (validation accuracy of the untrained prompt; none = no prompt)")
            print(f"{'task':<17} {'none':>6} " + " ".join(f"{c:>9}" for c in cands))
            for r in ini:
                print(f"{r['task']:<17} {r['none']:6.3f} " + " ".join(f"{r[c]:9.3f}" for c in cands))
            diff = {c: sum(r[c] - r["none"] for r in ini) / len(ini) for c in cands}
            worst = {c: min(r[c] - r["none"] for r in ini) for c in cands}
            print("mean diff vs none: " + "  ".join(f"{c} {diff[c]:+.4f} (worst {worst[c]:+.3f})" for c in cands))
            pick = max(cands, key=lambda c: diff[c])
            chosen_init = {"init_text": cands[pick]}
            print(f"chosen init: {pick} {cands[pick]!r}", flush=True)
        base.update(chosen_init)
        if "sweep" in a.phase:
            jobs = [dict(phase="sweep", task=t, cfg={**base, **g, "seed": 0}, key=json.dumps(g, sort_keys=True))
                    for g in grid for t in sweep_tasks]
            sw = list(ex.map(_run, jobs))
            json.dump(sw, open(os.path.join(a.out, "sweep.json"), "w"), indent=1)
            print(f"sweep done {time.time()-t0:.0f}s", flush=True)
            by = {}
            for r in sw:
                by.setdefault(r["key"], []).append(r)
            print(f"{'config':<48} " + " ".join(f"{t[:12]:>12}" for t in sweep_tasks) + "   mean_val  mean_test  norm")
            for k, rs in by.items():
                rs = sorted(rs, key=lambda r: sweep_tasks.index(r["task"]))
                mv = sum(r["val"] for r in rs) / len(rs); mt = sum(r["test"] for r in rs) / len(rs)
                print(f"{k:<48} " + " ".join(f"{r['val']:.3f}/{r['test']:.3f}"[:12].rjust(12) for r in rs)
                      + f"   {mv:.4f}   {mt:.4f}  {sum(r['norm'] for r in rs)/len(rs):.2f}")
            # choose among lr / max_norm / schedule configs (tau/pool/init kept at defaults)
            cands = {k: rs for k, rs in by.items() if not any(x in k for x in ('"tau"', '"pool"', '"init"'))}
            best = max(cands, key=lambda k: sum(r["val"] for r in cands[k]))
            print("chosen:", best, flush=True)
            chosen = json.loads(best)
        else:
            chosen = {}
        chosen.update(chosen_init)
        if "table" in a.phase:
            tasks = ["sent_movie", "sent_tweet", "sent_product", "topic_usenet", "topic_newswire",
                     "question_type", "spam_sms", "party_tweet", "party_speech", "party_parliament"]
            if a.quick:
                tasks = tasks[:2]
            jobs = [dict(phase="table", task=t, cfg={**base, **chosen, "seed": s}, key="table")
                    for t in tasks for s in (0, 1, 2)]
            futs = [ex.submit(_run, j) for j in jobs]
            bfuts = {t: ex.submit(_baseline, t, a.quick) for t in tasks}
            tab = [f.result() for f in futs]
            bas = {t: f.result() for t, f in bfuts.items()}
            json.dump({"runs": tab, "baselines": bas, "chosen": chosen, "base": base},
                      open(os.path.join(a.out, "table.json"), "w"), indent=1)
            print(f"table done {time.time()-t0:.0f}s  config {json.dumps({**base, **chosen})}")
            print(f"{'task':<17} {'majority':>8} {'no_prompt':>9} {'probe':>6} {'scratch mean±sd (3 seeds)':>26} {'init_val':>8}")
            import statistics as st
            for t in tasks:
                rs = [r for r in tab if r["task"] == t]
                te = [r["test"] for r in rs]
                b = bas[t]
                print(f"{t:<17} {b['majority']:8.3f} {b['no_prompt']:9.3f} {b['probe']:6.3f} "
                      f"{st.mean(te):>14.3f} ± {st.stdev(te):.3f} ({', '.join(f'{x:.3f}' for x in te)}) {rs[0]['init_val']:.3f}")
    print(f"total {time.time()-t0:.0f}s")

if __name__ == "__main__":
    main()
