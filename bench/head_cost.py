"""Cost of each label-word head relative to the cosine head, on the same tiny model in the same process.

    nice -n 15 .venv/bin/python bench/head_cost.py              # CPU, ~1 min
    .venv/bin/python bench/head_cost.py --texts 512 --width 256 --layers 4

Three tiny random models built from transformers configs (tokenizer: the bundled MiniLM's; nothing
downloaded): a RoBERTa-shaped masked LM, a T5 and a GPT-2. For each, the cosine head (core.backbone's
pooled features of the same weights, loaded as AutoModel, cosine against the label descriptions'
embeddings) and the label-word heads (core.heads.scorer.label_scores) score the same texts with the
same prompt, forward only, batch --batch. Prints seconds per 100 texts (median of --repeats) and the
ratio to the cosine head on that model. Sequence scoring pays one decoder / LM pass per label
(C = 2 here), first-token scoring one; the LM head's vocabulary projection is the rest of the gap.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.backbone import load_backbone, resolve_model_path  # noqa: E402
from core.heads import HeadKind, get_preset  # noqa: E402
from core.heads.scorer import label_scores, load_lm, word_token_ids  # noqa: E402
from core.training.heads import Head  # noqa: E402

TEXTS = ["a gripping film with a fine cast and a plot that keeps moving", "dull and far too long",
         "the acting is fine but the story never finds its feet", "one of the best of the year"]


def build(root: Path, width: int, layers: int) -> dict[str, Path]:
    tok = transformers.AutoTokenizer.from_pretrained(resolve_model_path(None))
    V, heads = len(tok), max(2, width // 32)
    models = {
        "roberta (mlm)": transformers.RobertaForMaskedLM(transformers.RobertaConfig(
            vocab_size=V, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * width, max_position_embeddings=200, pad_token_id=tok.pad_token_id, type_vocab_size=1)),
        "t5 (seq2seq)": transformers.T5ForConditionalGeneration(transformers.T5Config(
            vocab_size=V, d_model=width, d_ff=4 * width, d_kv=width // heads, num_layers=layers, num_heads=heads,
            decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)),
        "gpt2 (causal)": transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=V, n_embd=width, n_layer=layers, n_head=heads, n_positions=200)),
    }
    out = {}
    for name, m in models.items():
        folder = root / name.split()[0]
        m.save_pretrained(folder)
        tok.save_pretrained(folder)
        out[name] = folder
    return out


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    texts = [TEXTS[i % len(TEXTS)] + f" ({i})" for i in range(args.texts)]
    P = torch.randn(args.prompt_len, args.width) * 0.1
    heads_of = {"roberta (mlm)": [("thunlp-roberta", {}), ("mlm-default", {})],
                "t5 (seq2seq)": [("thunlp-t5", {}), ("peft-seq2seq", {"scoring": "sequence"})],
                "gpt2 (causal)": [("peft-causal", {"scoring": "first_token"}), ("peft-causal", {"scoring": "sequence"})]}
    print(f"{args.texts} texts, batch {args.batch}, d={args.width}, {args.layers} layers, L={args.prompt_len}, "
          f"CPU threads {torch.get_num_threads()}; seconds per 100 texts (median of {args.repeats})")
    print(f"{'model':<15} {'head':<34} {'s/100':>8} {'x cosine':>9}")
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for name, folder in build(Path(tmp), args.width, args.layers).items():
            bb = load_backbone(str(folder), "cpu", dtype=torch.float32)
            head = Head("verbalizer", bb.embed_texts(["a negative review", "a positive review"]), 0.05)

            def cosine():
                for s in range(0, len(texts), args.batch):
                    b = bb.tokenize(texts[s:s + args.batch])
                    head(bb.encode(b["input_ids"], b["attention_mask"], P))

            base = timed(cosine, args.repeats)
            print(f"{name:<15} {'cosine (pooled features)':<34} {base * 100 / len(texts):>8.3f} {1.0:>9.2f}")
            for preset_name, changes in heads_of[name]:
                preset = get_preset(preset_name).with_(**changes)
                lm = load_lm(str(folder), preset.head, "cpu", torch.float32)
                wids = word_token_ids(lm, ["negative", "positive"], preset)

                def lm_head():
                    for s in range(0, len(texts), args.batch):
                        label_scores(lm, preset, P, wids, texts[s:s + args.batch])

                t = timed(lm_head, args.repeats)
                what = preset.position.value if preset.head == HeadKind.mlm else preset.scoring.value
                label = f"{preset.head.value} {preset_name} {what}"
                print(f"{name:<15} {label:<34} {t * 100 / len(texts):>8.3f} {t / base:>9.2f}")


if __name__ == "__main__":
    main()
