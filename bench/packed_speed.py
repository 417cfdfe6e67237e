"""Packed training speed: prompt-steps/s of one run, of N separate processes, of packs of K.

    .venv/bin/python bench/packed_speed.py                        # CPU: 1 run, 2 processes, packs 4/16/64
    python bench/packed_speed.py --device cuda --procs 12         # GPU: 12 processes vs packs (issue 18's goal)

Every variant runs in a fresh child process of this script (so its peak memory is its own),
one after the other, on the same synthetic task: fixed-length batches (--batch-size x
--seq-len text tokens + --prompt-length prompt tokens), MiniLM, ``core.training`` itself
(``train`` for a single run, ``train_packed`` for a pack of K runs with different seeds and
learning rates). A prompt-step is one optimiser step of one prompt, so a pack of K does K
per step. Printed: prompt-steps/s, its ratio to the single run measured in the same bench
run, and peak memory per run (CPU: the child's peak RSS / K; CUDA: peak allocated / K).

"N separate processes" starts N children at once (each loads its own backbone, then all
wait at a barrier) and sums their rates over their timed windows.

The clock (as bench/train_speed.py): ``wall``, or ``cpu`` = the child's CPU seconds with one
torch thread (auto on CPU when the load average exceeds the cores: on a shared, overloaded
box wall time mostly measures the neighbours). With the cpu clock, N processes report their
total prompt-steps per total CPU-second (on CPU, processes only add cores, not efficiency).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def child(args) -> None:
    """Train K runs (packed, or one single run) and print one JSON line with the timings."""
    import torch

    from core.backbone import load_backbone
    from core.training import TrainConfig, train, train_packed
    from train_speed import synthetic_task

    if args.threads:
        torch.set_num_threads(args.threads)
    bb = load_backbone(None, args.device)
    W, N = args.warmup, args.steps
    task = synthetic_task(bb, max(args.batch_size * 8, 128), words=args.seq_len * 2)
    common = dict(task="bench", prompt_length=args.prompt_length, steps=W + N, batch_size=args.batch_size,
                  max_length=args.seq_len, padding="max_length", eval_every=0, eval_at_start=False, log_every=1,
                  test_size=16, device=args.device)
    cfgs = [TrainConfig(method="scratch", seed=k, lr=0.03 * (1 + k % 3), **common) for k in range(args.k)]
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    stamps: dict[int, tuple[float, float]] = {}

    def cb(ev):  # run 0's progress at the end of warm-up and at the last step (a pack steps together)
        if ev["kind"] == "progress" and ev["step"] in (W, W + N):
            if bb.device.type == "cuda":
                torch.cuda.synchronize()
            stamps[ev["step"]] = (clock(), time.perf_counter())

    if args.barrier:  # N separate processes: start the timed work together
        Path(args.barrier + f".ready{os.getpid()}").touch()
        while not Path(args.barrier).exists():
            time.sleep(0.01)
    if bb.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.mode == "single":
        train(cfgs[0], backbone=bb, task=task, callback=cb)
    else:
        outs = train_packed(cfgs, callbacks=[cb] + [None] * (args.k - 1), backbone=bb, tasks=[task] * args.k)
        bad = [o.error for o in outs if o.status != "finished"]
        if bad:
            raise SystemExit(f"pack failed: {bad[0]}")
    dt = stamps[W + N][0] - stamps[W][0]
    out = {"k": args.k, "steps": N, "dt": dt, "wall": stamps[W + N][1] - stamps[W][1],
           "prompt_steps_per_s": args.k * N / dt,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if bb.device.type == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(out), flush=True)


def spawn(args, mode: str, k: int, barrier: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--k", str(k), "--device", args.device,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
           "--seq-len", str(args.seq_len), "--prompt-length", str(args.prompt_length), "--clock", args.clock]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if barrier:
        cmd += ["--barrier", barrier]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def result(p: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()  # never leave a child behind
        p.communicate()
        raise RuntimeError(f"child ran past --timeout {timeout:.0f} s (raise it, or fewer --steps)") from None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed (rc {p.returncode}): {err[-1500:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--packs", default="4,16,64", help="pack sizes K")
    ap.add_argument("--procs", type=int, default=None,
                    help="N separate processes (default: 2 on CPU, 12 on CUDA; 0 skips them)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 8 on CPU, 100 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 CPU, 20 CUDA)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"))
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per variant")
    # child mode
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="single", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--barrier", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0

    from core.backbone import resolve_device
    device = resolve_device(args.device)
    args.device = str(device)
    cuda = device.type == "cuda"
    args.steps = args.steps or (100 if cuda else 8)
    args.warmup = args.warmup or (20 if cuda else 2)
    procs = args.procs or (12 if cuda else 2)
    load = os.getloadavg()[0]
    if args.clock == "auto":
        args.clock = "cpu" if (not cuda and load > (os.cpu_count() or 1)) else "wall"
    if args.clock == "cpu":
        args.threads = args.threads or 1
    name = "cpu"
    if cuda:
        import torch
        name = torch.cuda.get_device_name(device)
    print(f"device {device} ({name}); MiniLM; batch {args.batch_size} x ({args.prompt_length} prompt + "
          f"{args.seq_len} text) tokens, fixed length; {args.steps} timed steps after {args.warmup}; "
          f"threads {args.threads or 'default'}; clock {args.clock}"
          f"{' (prompt-steps per CPU-second)' if args.clock == 'cpu' else ''}; "
          f"load average {load:.1f} on {os.cpu_count()} cores; uptime: {os.popen('uptime').read().strip()}",
          flush=True)
    rows = []
    t0 = time.perf_counter()

    r = result(spawn(args, "single", 1), args.timeout)
    base = r["prompt_steps_per_s"]
    rows.append(("one run (1 process)", r["prompt_steps_per_s"], r.get("gpu_peak_mb") or r["peak_rss_mb"]))
    print(f"  one run: {base:.2f} prompt-steps/s ({time.perf_counter() - t0:.0f}s)", flush=True)

    if procs == 0:
        rows.append(("0 separate processes (skipped)", float("nan"), float("nan")))
    else:
        run_procs(args, procs, rows, t0)

    for k in [int(x) for x in args.packs.split(",") if x.strip()]:
        try:
            r = result(spawn(args, "pack", k), args.timeout)
        except Exception as e:  # e.g. out of memory for a large pack: report and go on
            print(f"  pack of {k} failed: {e!r}"[:400], flush=True)
            rows.append((f"pack of {k} (1 process)", float("nan"), float("nan")))
            continue
        rows.append((f"pack of {k} (1 process)", r["prompt_steps_per_s"], (r.get("gpu_peak_mb") or r["peak_rss_mb"]) / k))
        print(f"  pack of {k}: {r['prompt_steps_per_s']:.2f} ({time.perf_counter() - t0:.0f}s)", flush=True)

    mem_label = "GPU peak MB / run" if cuda else "peak RSS MB / run"
    print(f"\n{'variant':<28} {'prompt-steps/s':>15} {'vs one run':>11} {mem_label:>18}")
    for label, rate, mem in rows:
        print(f"{label:<28} {rate:>15.2f} {rate / base:>10.2f}x {mem:>18.0f}")
    procs_rate = rows[1][1]
    best = max((r for r in rows[2:] if r[1] == r[1]), key=lambda r: r[1], default=None)
    if best and procs_rate == procs_rate:
        print(f"best pack vs {procs} processes: {best[1] / procs_rate:.2f}x ({best[0]})")
    print(f"load average after: {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t0:.0f}s")
    return 0


def run_procs(args, procs: int, rows: list, t0: float) -> None:
    """N single-run children at once: they load, wait at a barrier, then train together."""
    barrier = f"/tmp/packed_speed_barrier_{os.getpid()}"
    ps = [spawn(args, "single", 1, barrier) for _ in range(procs)]
    t_wait = time.monotonic()
    while len(list(Path("/tmp").glob(Path(barrier).name + ".ready*"))) < procs and time.monotonic() - t_wait < 600:
        time.sleep(0.05)
    Path(barrier).touch()
    try:
        rs = [result(p, args.timeout) for p in ps]
    finally:
        for f in Path("/tmp").glob(Path(barrier).name + "*"):
            f.unlink()
    if args.clock == "cpu":
        rate = sum(x["k"] * x["steps"] for x in rs) / sum(x["dt"] for x in rs)
    else:
        rate = sum(x["prompt_steps_per_s"] for x in rs)
    mem = sum(x.get("gpu_peak_mb") or x["peak_rss_mb"] for x in rs) / procs
    rows.append((f"{procs} separate processes", rate, mem))
    print(f"  {procs} processes: {rate:.2f} ({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
