"""T5 prompt tuning, training steps/s: our loop (label-word head) vs PEFT's own seq2seq prompt tuning.

    nice -n 15 .venv/bin/python bench/t5_vs_peft.py                 # CPU, ~35 s of CPU time
    .venv/bin/python bench/t5_vs_peft.py --width 512 --d-ff 2048 --layers 6 --heads 8 --gated --steps 20

One process, one tiny random T5 built from a transformers config at run time (tokenizer: the bundled
MiniLM's; nothing downloaded), saved to a temporary folder that both sides load. Target: NYT editorial
sentences (tests/real_text.py, 2 classes, label words "negative" / "positive"). Both sides train a
prompt of --prompt-length tokens with AdamW at the same lr on the SAME batches (batch 16, texts truncated
to 64 tokens, each batch padded to its longest text): ours draws its length-bucketed batches with its
seeded generator and PEFT is fed the same index lists, reproduced with core.training.data.batch_order.

  ours, core.training.train(lm_head=...), its whole loop (padding, forward, loss, backward, AdamW +
  schedule, a progress event per step):
    peft-seq2seq   scoring "sequence": each label word's log-likelihood (its tokens + </s>) -> C = 2
                   decoder passes over 2 positions, cross-entropy over the C scores;
    thunlp-t5      scoring "first_token": 1 decoder step, cross-entropy over the words' first-token logits;
  PEFT, get_peft_model(T5ForConditionalGeneration, PromptTuningConfig(SEQ_2_SEQ_LM)), eval mode (no
    dropout; ours has none): the T5 loss with labels = the gold label word's tokens + </s> (the same
    target ids our sequence scoring reads), i.e. 1 decoder pass over 2 positions, token cross-entropy.

So ours "sequence" does one more decoder pass per step than PEFT (it scores every label, PEFT only the
gold one) and all share one encoder forward + backward per step. Timed: --steps optimiser steps after
--warmup untimed ones (ours: between its progress events; set-up, the final validation and the test
are outside). Rounds alternate the order; the medians of --repeats rounds are printed, with ours / PEFT.
Clock: wall time with 2 torch threads, or (--clock cpu, and auto when the load average exceeds the cores:
on a shared box wall time mostly measures the neighbours) this process's CPU seconds with 1 thread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from core.backbone import resolve_model_path  # noqa: E402
from core.tasks import Split, Task  # noqa: E402
from core.training import TrainConfig, train  # noqa: E402
from core.training.data import batch_order  # noqa: E402

WORDS = ["negative", "positive"]

# The clock: wall time, or this process's CPU time (on a shared, overloaded CPU box wall time mostly
# measures the neighbours; with one thread, CPU seconds measure our own work). Set in main (--clock).
CLOCK = time.perf_counter


def build_t5(folder: Path, args) -> Path:
    """A random T5 (v1.1-style gated-GELU FFN, untied head with --gated), saved with the MiniLM tokenizer."""
    tok = transformers.AutoTokenizer.from_pretrained(resolve_model_path(None))
    extra = {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False} if args.gated else {}
    cfg = transformers.T5Config(vocab_size=len(tok), d_model=args.width, d_ff=args.d_ff, d_kv=args.width // args.heads,
                                num_layers=args.layers, num_heads=args.heads, decoder_start_token_id=tok.pad_token_id,
                                pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id, **extra)
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def editorial_task(n_train: int, n_eval: int) -> Task:
    """2-class sentiment task from the NYT editorial sentences: n_train per class, n_eval per class for val/test."""
    from real_text import editorial_rows
    rows = editorial_rows()
    out: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for y, lab in enumerate(WORDS):
        pool = [t for t, lb in rows if lb == lab]
        for name, (a, b) in (("train", (0, n_train)), ("val", (n_train, n_train + n_eval)),
                             ("test", (n_train + n_eval, n_train + 2 * n_eval))):
            out[name][0].extend(pool[a:b])
            out[name][1].extend([y] * (b - a))
    rng = np.random.default_rng(0)   # interleave the classes
    perm = rng.permutation(len(out["train"][0])).tolist()
    tr = Split([out["train"][0][i] for i in perm], [out["train"][1][i] for i in perm])
    return Task("editorial_t5_bench", "sentiment", list(WORDS), [f"a {w} sentence" for w in WORDS], tr,
                Split(*out["val"]), Split(*out["test"]))


def same_batches(tok, task: Task, args, n: int) -> list[list[int]]:
    """The index lists our run trains on, in order: Run.next_batch pops from the end of
    batch_order(lengths, B, default_rng(seed), padding), a new epoch from the same generator when empty."""
    lengths = [len(x) for x in tok(task.train.texts, truncation=True, max_length=args.max_length)["input_ids"]]
    rng, pending, out = np.random.default_rng(args.seed), [], []
    while len(out) < n:
        if not pending:
            pending = batch_order(lengths, args.batch_size, rng, "bucket")
        out.append(pending.pop())
    return out


def time_ours(folder: Path, task: Task, args, preset: str) -> float:
    """steps/s of core.training.train between its progress events at step --warmup and the last step."""
    n = args.warmup + args.steps
    cfg = TrainConfig(task=task.name, backbone=str(folder), lm_head=preset, label_words=list(WORDS),
                      prompt_length=args.prompt_length, steps=n, batch_size=args.batch_size, lr=args.lr,
                      max_length=args.max_length, eval_every=0, eval_at_start=False, val_size=args.n_eval,
                      test_size=args.n_eval, device="cpu", seed=args.seed, padding="bucket")
    stamps: dict[int, float] = {}

    def cb(ev):
        if ev["kind"] == "progress" and ev["step"] in (args.warmup, n):
            stamps[ev["step"]] = CLOCK()

    train(cfg, callback=cb, task=task)
    return args.steps / (stamps[n] - stamps[args.warmup])


def make_peft(folder: Path, args):
    from peft import PromptTuningConfig, TaskType, get_peft_model
    base = transformers.T5ForConditionalGeneration.from_pretrained(folder)
    pm = get_peft_model(base, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM,
                                                 num_virtual_tokens=args.prompt_length))
    return pm.eval()   # no dropout: PEFT at its fastest (our LM is in eval mode too)


def time_peft(folder: Path, tok, task: Task, batches: list[list[int]], args) -> float:
    """steps/s of PEFT's seq2seq prompt tuning on the same batches (fresh adapter and optimiser each round)."""
    torch.manual_seed(args.seed)
    pm = make_peft(folder, args)
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=args.lr)
    eos = tok.eos_token_id if tok.eos_token_id is not None else pm.config.eos_token_id   # as our sequence scoring
    target = [tok.encode(w, add_special_tokens=False) + [eos] for w in WORDS]
    texts, labels = task.train.texts, task.train.labels

    def step(idx):
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=args.max_length,
                  return_tensors="pt")
        ys = [target[labels[i]] for i in idx]
        S = max(map(len, ys))
        lab = torch.tensor([y + [-100] * (S - len(y)) for y in ys])
        loss = pm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=lab).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss.detach())   # as our loop reads its loss for the progress event

    for idx in batches[:args.warmup]:
        step(idx)
    t = CLOCK()
    for idx in batches[args.warmup:args.warmup + args.steps]:
        step(idx)
    return args.steps / (CLOCK() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=256, help="d_model")
    ap.add_argument("--d-ff", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4, help="encoder layers (and as many decoder layers)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--gated", action="store_true", help="T5 v1.1-style gated-GELU FFN, untied LM head")
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant and round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (alternating order); medians printed")
    ap.add_argument("--n-train", type=int, default=96, help="training sentences per class")
    ap.add_argument("--n-eval", type=int, default=4, help="validation / test sentences per class (outside the timing)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2; 1 with the cpu clock)")
    ap.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"),
                    help="cpu = this process's CPU seconds (auto: cpu when the load average exceeds the cores)")
    args = ap.parse_args(argv)
    global CLOCK
    load = os.getloadavg()[0]
    cpu_clock = args.clock == "cpu" or (args.clock == "auto" and load > (os.cpu_count() or 1))
    if cpu_clock:
        CLOCK = time.process_time
    torch.set_num_threads(args.threads or (1 if cpu_clock else 2))
    t0 = time.perf_counter()
    task = editorial_task(args.n_train, args.n_eval)
    variants = ["ours peft-seq2seq", "ours thunlp-t5", "PEFT"]
    res: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="t5-vs-peft-") as tmp:
        folder = build_t5(Path(tmp) / "t5", args)
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        batches = same_batches(tok, task, args, args.warmup + args.steps)
        print(f"T5 d_model {args.width}, d_ff {args.d_ff}{' gated-gelu' if args.gated else ''}, {args.layers}+"
              f"{args.layers} layers, {args.heads} heads, vocab {len(tok)}; prompt {args.prompt_length}, batch "
              f"{args.batch_size}, max_length {args.max_length}; {args.steps} timed steps (+{args.warmup} warm-up) "
              f"x {args.repeats} rounds; CPU threads {torch.get_num_threads()}, load avg {load:.1f}, "
              f"{'process CPU' if cpu_clock else 'wall'} clock", flush=True)
        print("  ours: core.training.train, whole loop; PEFT: forward(labels=gold word + </s>), backward, AdamW;"
              " same batches",
              flush=True)
        run = {"ours peft-seq2seq": lambda: time_ours(folder, task, args, "peft-seq2seq"),
               "ours thunlp-t5": lambda: time_ours(folder, task, args, "thunlp-t5"),
               "PEFT": lambda: time_peft(folder, tok, task, batches, args)}
        for r in range(args.repeats):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                res[v].append(run[v]())
            print(f"  round {r + 1}: " + ", ".join(f"{v} {res[v][-1]:.2f}" for v in variants)
                  + f" steps/s ({time.perf_counter() - t0:.0f}s)", flush=True)
    med = {v: statistics.median(x) for v, x in res.items()}
    pe = med["PEFT"]
    print(f"ours peft-seq2seq (sequence, C=2 decoder passes): {med['ours peft-seq2seq']:6.2f} steps/s")
    print(f"ours thunlp-t5 (first_token, 1 decoder step):     {med['ours thunlp-t5']:6.2f} steps/s")
    print(f"PEFT PromptTuning SEQ_2_SEQ_LM (label sequence):  {pe:6.2f} steps/s")
    print(f"ratio ours/PEFT: sequence {med['ours peft-seq2seq'] / pe:.2f}x, first_token "
          f"{med['ours thunlp-t5'] / pe:.2f}x (paired per round: sequence "
          f"{statistics.median(a / b for a, b in zip(res['ours peft-seq2seq'], res['PEFT'])):.2f}x, first_token "
          f"{statistics.median(a / b for a, b in zip(res['ours thunlp-t5'], res['PEFT'])):.2f}x)")
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
