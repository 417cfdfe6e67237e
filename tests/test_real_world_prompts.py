"""Prompt files as people publish them (issue 14; ../shared/cases/): each kind built here, in a tmp dir,
read through the functions the CLI and the pages use (read_prompts, index_library, add_path/add_upload).

    .venv/bin/python -m pytest -q tests/test_real_world_prompts.py
"""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from badinput import MINILM, make_corpus, run_cli, tree_digest
from core.library import add_path, add_upload, format_grouped, index_library
from core.prompts import PromptError, SoftPrompt, model_name, read_prompt, read_prompts, write_prompt

# --------------------------------------------------------------------------- builders (as the cases' build.py)


def _tiny_bert(hidden=384, layers=1):
    from transformers import BertConfig, BertModel
    cfg = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                     vocab_size=128)
    m = BertModel(cfg)
    m.config._name_or_path = MINILM
    m.name_or_path = MINILM
    return m


@pytest.fixture(scope="module")
def seq2seq_adapter(tmp_path_factory) -> Path:
    """peft-seq2seq: a real PEFT PROMPT_TUNING adapter of a T5 (2 submodules), encoder half ~ +5, decoder ~ -5."""
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    cfg = T5Config(d_model=512, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16, vocab_size=128)
    m = T5ForConditionalGeneration(cfg)
    m.config._name_or_path = "t5-small"
    m.name_or_path = "t5-small"
    p = get_peft_model(m, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=10))
    w = p.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        w.copy_(torch.randn_like(w))
        w[:10] += 5.0
        w[10:] -= 5.0
    out = tmp_path_factory.mktemp("seq2seq") / "t5_prompt_adapter"
    p.save_pretrained(str(out))
    return out


# --------------------------------------------------------------------------- 2. context

def test_adapter_weights_read_alone_use_their_sibling_config(seq2seq_adapter):
    folder = read_prompts(seq2seq_adapter)
    alone = read_prompts(seq2seq_adapter / "adapter_model.safetensors")
    for got in (folder, alone):
        assert [(p.L, p.d, p.backbone) for p in got] == [(10, 512, "t5-small"), (10, 512, "t5-small")]
        enc, dec = got
        assert enc.values.mean() == pytest.approx(5.0, abs=0.2) and dec.values.mean() == pytest.approx(-5.0, abs=0.2)
    assert "adapter_config.json beside it" in alone[0].settings["note"]
    # the CLI says the same (two rows, t5-small)
    r = run_cli("prompts", "inspect", seq2seq_adapter / "adapter_model.safetensors")
    assert r.returncode == 0, r.stderr
    assert [ln.split("\t")[2:5] for ln in r.stdout.splitlines()] == [["L=10", "d=512", "backbone=t5-small"]] * 2


def test_several_peft_adapters_in_one_save_folder_are_all_indexed(tmp_path):
    """PEFT save_pretrained with several adapters: the default at the top, the others in sub-folders."""
    from peft import PromptTuningConfig, get_peft_model
    torch.manual_seed(0)
    model = get_peft_model(_tiny_bert(), PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=4))
    model.add_adapter("sst2", PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=6))
    model.add_adapter("imdb", PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=8))
    lib = tmp_path / "lib"
    model.save_pretrained(str(lib / "save"))
    assert (lib / "save" / "adapter_config.json").is_file() and (lib / "save" / "sst2" / "adapter_config.json").is_file()
    index = index_library(lib)
    assert not index.problems
    assert {n: p.L for n, p in index.prompts.items()} == {"save": 4, "save/imdb": 8, "save/sst2": 6}
    assert set(index.groups()) == {MINILM}
    # the save folder given as the root, and read directly
    assert {n: p.L for n, p in index_library(lib / "save").prompts.items()} == {"save": 4, "save/imdb": 8,
                                                                              "save/sst2": 6}
    assert sorted(p.L for p in read_prompts(lib / "save")) == [4, 6, 8]
    # and `library add` of the folder adds all three
    added = add_path(lib / "save", tmp_path / "user")
    assert sorted(p.name for p in added) == ["save", "save/imdb", "save/sst2"]


# --------------------------------------------------------------------------- 3. legitimate files

def test_peft_p_tuning_adapter_is_read_as_its_prompt(tmp_path):
    from peft import PeftModel, PromptEncoderConfig, get_peft_model
    torch.manual_seed(0)
    p = get_peft_model(_tiny_bert(), PromptEncoderConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=20,
                                                         encoder_hidden_size=64))
    p.save_pretrained(str(tmp_path / "ptuning_adapter"))
    got = read_prompt(tmp_path / "ptuning_adapter")
    assert (got.L, got.d, got.method, got.backbone) == (20, 384, "p_tuning", MINILM)
    loaded = PeftModel.from_pretrained(_tiny_bert(), str(tmp_path / "ptuning_adapter"))
    used = loaded.get_prompt(batch_size=1)[0].detach()  # what PEFT prepends at inference
    assert torch.allclose(got.tensor, used, atol=1e-6)


def _bf16_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, (x.view(np.uint32) >> 16).astype(np.uint16).view("V2"))  # what np.save writes for bfloat16
    return buf.getvalue()


def test_bfloat16_npy_stored_as_v2_is_read(tmp_path):
    x = (np.random.default_rng(0).standard_normal((100, 768)) * 0.5).astype(np.float32)
    np.save(tmp_path / "prompt_fp32.npy", x)
    (tmp_path / "prompt_bf16.npy").write_bytes(_bf16_npy(x))
    f32, b16 = read_prompt(tmp_path / "prompt_fp32.npy"), read_prompt(tmp_path / "prompt_bf16.npy")
    assert (b16.L, b16.d) == (100, 768) and "bfloat16" in b16.settings["note"]
    np.testing.assert_allclose(b16.values, f32.values, rtol=1e-2, atol=1e-30)  # 3 significant digits
    assert np.array_equal(b16.values.view(np.uint32) & 0xFFFF, np.zeros((100, 768), np.uint32))  # exact widening
    assert not np.array_equal(b16.values, f32.values)


@pytest.mark.parametrize("fmt", ["torch", "safetensors", "npy"])
def test_leading_batch_dimension_of_one_is_dropped_and_said(tmp_path, fmt):
    t = torch.randn(1, 7, 32)
    path = tmp_path / f"p.{fmt}"
    if fmt == "torch":
        torch.save(t, path)
    elif fmt == "safetensors":
        save_file({"prompt_embeddings": t}, path)
    else:
        np.save(path, t.numpy())
    p = read_prompt(path)
    assert (p.L, p.d) == (7, 32) and torch.equal(p.tensor, t[0])
    assert "dropped a leading dimension of size 1" in p.settings["note"]
    torch.save(torch.randn(2, 7, 32), tmp_path / "two.pt")  # a real batch of 2 is not a prompt
    with pytest.raises(PromptError, match="expected a 2-D"):
        read_prompt(tmp_path / "two.pt")


# --------------------------------------------------------------------------- 1. the right tensor

def test_vocabulary_table_beside_the_prompt_is_set_aside(tmp_path):
    prompt = torch.randn(20, 768)
    torch.save({"embeddings.word_embeddings.weight": torch.randn(30522, 768), "soft": prompt}, tmp_path / "a.pt")
    save_file({"shared.weight": torch.randn(32128, 512), "encoder.prompt": torch.randn(50, 512)},
              tmp_path / "b.safetensors")
    assert torch.equal(read_prompt(tmp_path / "a.pt").tensor, prompt)
    assert read_prompt(tmp_path / "b.safetensors").L == 50
    torch.save({"weight": torch.randn(30522, 768)}, tmp_path / "vocab_only.pt")  # anonymous, but 30522 rows
    with pytest.raises(PromptError, match="a vocabulary table \\[30522, 768\\]"):
        read_prompt(tmp_path / "vocab_only.pt")


def test_per_layer_prefixes_are_refused_saying_so(tmp_path):
    # P-tuning v2 (ChatGLM) checkpoint: only the prefix encoder, [pre_seq_len, 2*layers*kv]
    torch.save({"transformer.prefix_encoder.embedding.weight": torch.randn(16, 14336, dtype=torch.float16)},
               tmp_path / "pytorch_model.bin")
    with pytest.raises(PromptError, match="per-layer key/value prefixes") as e:
        read_prompt(tmp_path / "pytorch_model.bin")
    assert "not an input prompt" in e.value.problem
    # a PEFT PREFIX_TUNING adapter, and its weights file copied out alone (prompt_embeddings [20, 2*2*384])
    from peft import PrefixTuningConfig, get_peft_model
    p = get_peft_model(_tiny_bert(layers=2), PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=20))
    p.save_pretrained(str(tmp_path / "prefix_adapter"))
    shutil.copy(tmp_path / "prefix_adapter" / "adapter_model.safetensors", tmp_path / "prefix_weights.safetensors")
    for path in (tmp_path / "prefix_adapter", tmp_path / "prefix_weights.safetensors"):
        with pytest.raises(PromptError, match="per-layer key/value prefixes.*not an input prompt"):
            read_prompts(path)
    # the same width inside a PROMPT_TUNING adapter that says token_dim 1536 is a prompt: context wins
    folder = tmp_path / "wide"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 20, "token_dim": 1536,
         "num_transformer_submodules": 1, "base_model_name_or_path": "Qwen/Qwen2-1.5B"}))
    save_file({"prompt_embeddings": torch.randn(20, 1536)}, folder / "adapter_model.safetensors")
    assert read_prompt(folder).d == 1536


def test_attempt_output_folder_gives_one_prompt_and_names_the_rest(tmp_path):
    from torch import nn
    out = tmp_path / "attempt_out"
    out.mkdir()
    torch.manual_seed(0)
    d = 768
    torch.save(nn.Parameter(torch.randn(100, d) * 0.5), out / "prefix_embeddings.pt")
    torch.save(nn.Linear(d, 100, bias=False).weight, out / "attn_W_down.pt")
    torch.save(nn.Linear(100, d, bias=False).weight, out / "attn_W_up.pt")
    torch.save(nn.Linear(d, d, bias=False).weight, out / "attn_Wa_weights.pt")
    torch.save(nn.LayerNorm(d).weight, out / "layer_norm_weight.pt")
    index = index_library(out)
    assert list(index.prompts) == ["prefix_embeddings.pt"] and index.prompts["prefix_embeddings.pt"].L == 100
    problems = {Path(e.path).name: e.problem for e in index.problems}
    assert set(problems) == {"attn_W_down.pt", "attn_W_up.pt", "attn_Wa_weights.pt", "layer_norm_weight.pt"}
    assert all("attention/projection weights" in problems[f] for f in ("attn_W_down.pt", "attn_W_up.pt",
                                                                       "attn_Wa_weights.pt"))
    assert "layer-norm weights" in problems["layer_norm_weight.pt"]
    # the same weights inside one dict beside the prompt: the prompt is taken
    torch.save({"prefix_embeddings": torch.ones(100, d), "attn_W_down": torch.randn(100, d),
                "attn_Wa_weights": torch.randn(d, d)}, tmp_path / "all.pt")
    assert torch.equal(read_prompt(tmp_path / "all.pt").tensor, torch.ones(100, d))


def test_training_checkpoint_is_refused_as_such(tmp_path):
    """thunlp's RobertaLarge_from_chimin/*/<epoch>.pkl: {'model': [100, 1024], 'optimizer': {...}, ...}."""
    w = torch.randn(100, 1024)
    torch.save({"model": w, "optimizer_name": "adamw",
                "optimizer": {"state": {0: {"exp_avg": torch.zeros(100, 1024), "exp_avg_sq": torch.zeros(100, 1024)}},
                              "param_groups": [{"lr": 0.001, "params": [0]}]},
                "trained_epoch": 69, "global_step": 13455}, tmp_path / "69.pkl")
    with pytest.raises(PromptError, match="a training checkpoint .*not a prompt"):
        read_prompt(tmp_path / "69.pkl")


def test_plain_prompt_of_unknown_width_gets_its_own_group_with_a_note(tmp_path):
    torch.save(torch.randn(10, 100), tmp_path / "odd.pt")
    p = read_prompt(tmp_path / "odd.pt")
    assert p.d == 100 and p.backbone is None and "unknown:d100" in p.settings["note"]
    assert index_library(tmp_path).groups() == {"unknown:d100": ["odd.pt"]}


# --------------------------------------------------------------------------- 4. backbones

THUNLP_LOOKALIKE = {  # folder -> (d, backbone, task, method)
    "IMDBPromptRoberta": (768, "roberta-base", "IMDB", None),
    "IMDBPromptBert": (768, "bert-base-uncased", "IMDB", None),
    "IMDBPromptT5": (768, "t5-base", "IMDB", None),
    "IMDBPromptT5Small": (512, "t5-small", "IMDB", None),
    "IMDBPromptT5XXL": (4096, "t5-xxl", "IMDB", None),
    "IMDBPromptRobertaLarge": (1024, "roberta-large", "IMDB", None),
    "IMDBPromptRoberta_proj": (768, "roberta-base", "IMDB", "projected"),
    "IMDBPrompt_cross_model_T5_to_Roberta": (768, "roberta-base", "IMDB", "projected"),
    "IMDB_base_emotionPromptRoberta": (768, "roberta-base", "IMDB", None),
    "SST2_trainedPromptRoberta": (768, "roberta-base", "SST2", None),
    "laptop_base_emotionPromptRoberta_tanh": (768, "roberta-base", "laptop", None),
    "ethicsjusticePromptRobertaLarge_127": (1024, "roberta-large", "ethicsjustice", None),
    "multi_newsPromptT5Small": (512, "t5-small", "multi_news", None),
    "movie_trainedPromptRoberta": (768, "roberta-base", "movie", None),
    "IMDBPromptGPTNeo": (768, None, "IMDB", None),  # a model we cannot tell: its own unknown group
}


def test_thunlp_naming_rules_on_lookalike_folders(tmp_path):
    root = tmp_path / "task_prompt_emb"
    for folder, (d, *_rest) in THUNLP_LOOKALIKE.items():
        (root / folder).mkdir(parents=True)
        torch.save(torch.randn(4, d), root / folder / "task_prompt")
    (root / "RobertaLarge_from_chimin" / "IMDBPromptRobertaLarge").mkdir(parents=True)
    torch.save({"model": torch.randn(4, 1024), "optimizer": {"state": {}, "param_groups": []}, "trained_epoch": 3},
               root / "RobertaLarge_from_chimin" / "IMDBPromptRobertaLarge" / "69.pkl")
    (root / "show.py").write_text("import torch\n")
    index = index_library(root)
    assert [Path(e.path).name for e in index.problems] == ["69.pkl"]
    assert "a training checkpoint" in index.problems[0].problem
    for folder, (d, backbone, task, method) in THUNLP_LOOKALIKE.items():
        p = index.prompts[folder]
        assert (p.d, p.backbone, p.task, p.method) == (d, backbone, task, method), folder
    groups = index.groups()
    assert groups["t5-base"] == ["IMDBPromptT5"]          # T5 (t5-base, d=768) never with Roberta or Bert
    assert groups["bert-base-uncased"] == ["IMDBPromptBert"]
    assert groups["unknown:d768"] == ["IMDBPromptGPTNeo"]
    assert set(groups["roberta-base"]) == {"IMDBPromptRoberta", "IMDBPromptRoberta_proj",
                                           "IMDBPrompt_cross_model_T5_to_Roberta", "IMDB_base_emotionPromptRoberta",
                                           "SST2_trainedPromptRoberta", "laptop_base_emotionPromptRoberta_tanh",
                                           "movie_trainedPromptRoberta"}
    for g, names in groups.items():  # no group mixes two models
        assert len({index.prompts[n].backbone for n in names}) == 1, g
    assert index.prompts["IMDBPrompt_cross_model_T5_to_Roberta"].settings["projected_from"] == "t5-base"
    assert index.prompts["IMDB_base_emotionPromptRoberta"].settings["thunlp_variant"] == "base_emotion"
    assert index.prompts["IMDB_base_emotionPromptRoberta"].family == "sentiment"
    # the family column never shows the string "nan" (movie_trained and GPTNeo have no known family... )
    assert "nan" not in {str(v).lower() for v in index.table["family"] if v is not None}
    assert "family=nan" not in format_grouped(index) and "family=?" in format_grouped(index)


@pytest.mark.parametrize("ref,want", [
    ("t5-small", "t5-small"),
    (MINILM, MINILM),
    ("/home/alice/models/t5-small/checkpoint-500", "t5-small"),
    ("/Users/bob/work/roberta-base/final", "roberta-base"),
    ("C:\\Users\\me\\models\\t5-base\\best", "t5-base"),
    ("D:/experiments/bert-base-uncased/checkpoint-1200/", "bert-base-uncased"),
    ("/root/.cache/huggingface/hub/models--google--flan-t5-base/snapshots/"
     "0123456789abcdef0123456789abcdef01234567", "google/flan-t5-base"),
    ("/home/alice/checkpoint-500", None),
    ("/mnt/models/checkpoints/run1/final", None),
    ("~/models/t5-small", "t5-small"),
    ("/content/drive/MyDrive/my-t5-finetune/checkpoint-100", "my-t5-finetune"),  # its own name: its own group
    ("C:\\Users\\me\\output\\checkpoint-12", None),
    ("", None),
])
def test_base_model_name_or_path_names_the_model(ref, want):
    assert model_name(ref) == want


def test_adapter_with_a_path_for_base_model_groups_by_the_model(tmp_path):
    for name, ref in (("a", "/home/alice/models/t5-small/checkpoint-500"), ("b", "C:\\Users\\me\\t5-small\\final"),
                      ("c", "/home/alice/checkpoint-9")):
        folder = tmp_path / "lib" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "PROMPT_TUNING", "task_type": "FEATURE_EXTRACTION", "num_virtual_tokens": 3,
             "token_dim": 512, "num_transformer_submodules": 1, "base_model_name_or_path": ref}))
        save_file({"prompt_embeddings": torch.randn(3, 512)}, folder / "adapter_model.safetensors")
    torch.save(torch.randn(3, 512), tmp_path / "lib" / "loose.pt")
    groups = index_library(tmp_path / "lib").groups()
    assert groups == {"t5-small": ["a", "b"], "unknown:d512": ["c", "loose.pt"]}


# --------------------------------------------------------------------------- 5. archive junk, adding folders

def _finder_zip(src: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{src.name}/", b"")
        for f in sorted(src.iterdir()):
            z.write(f, f"{src.name}/{f.name}")
        z.writestr("__MACOSX/", b"")
        z.writestr(f"__MACOSX/{src.name}/", b"")
        for f in sorted(src.iterdir()):
            z.writestr(f"__MACOSX/{src.name}/._{f.name}", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 40)
    return buf.getvalue()


def test_macos_finder_zips_add_only_their_adapter(tmp_path):
    rng = np.random.default_rng(0)
    lib = tmp_path / "library"
    for name in ("sst2_prompt", "imdb_prompt"):
        src = write_prompt(SoftPrompt(tensor=rng.standard_normal((20, 384)).astype("float32"), name=name, task=name),
                           tmp_path / "src" / name)
        [p] = add_upload(f"{name}.zip", _finder_zip(src), lib)
        assert p.name == name and p.L == 20
    assert sorted(x.name for x in lib.iterdir()) == ["imdb_prompt", "sst2_prompt"]
    assert not list(lib.rglob("._*")) and not list(lib.rglob("__MACOSX"))
    # a flat Finder zip (adapter files at the top) too
    src = tmp_path / "src" / "sst2_prompt"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(src.iterdir()):
            z.write(f, f.name)
            z.writestr(f"__MACOSX/._{f.name}", b"\x00\x05\x16\x07")
    [p] = add_upload("flat.zip", buf.getvalue(), lib)
    assert p.name == "flat" and sorted(x.name for x in (lib / "flat").iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "atlas.json"]


def test_library_add_takes_an_adapter_folder(tmp_path, seq2seq_adapter):
    lib = tmp_path / "library"
    r = run_cli("library", "add", "--dest", lib, seq2seq_adapter)
    assert r.returncode == 0, r.stderr
    assert "added t5_prompt_adapter/encoder" in r.stdout and "added t5_prompt_adapter/decoder" in r.stdout
    assert (lib / "t5_prompt_adapter" / "adapter_config.json").is_file()
    before = tree_digest(lib)
    r = run_cli("library", "add", "--dest", lib, seq2seq_adapter)  # twice: refused, unchanged
    assert r.returncode == 1 and "already in the library" in r.stderr and tree_digest(lib) == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("# nothing")
    r = run_cli("library", "add", "--dest", lib, tmp_path / "notes")
    assert r.returncode == 1 and "error: notes.zip: " in r.stderr and "no soft prompt" in r.stderr
    assert "Is a directory" not in r.stderr and tree_digest(lib) == before


# --------------------------------------------------------------------------- messages never echo bytes

def test_problems_never_echo_the_files_bytes(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "secret.bin").write_bytes(b"password=hunter2 and more text")
    (tmp_path / "extra" / "pickle_key.pt").write_bytes(b"\x80\x04hunter2")
    for case in corpus:
        if case.path is None:
            continue
        with monkeypatch.context() as m, pytest.raises(PromptError) as e:
            for k, v in case.env.items():
                m.setenv(k, v)
            read_prompts(case.path)
        assert "b'" not in e.value.problem and 'b"' not in e.value.problem, (case.name, e.value.problem)
    index = index_library(tmp_path / "extra")
    assert len(index.problems) == 2
    for e in index.problems:
        assert "hunter2" not in str(e) and "b'" not in str(e), str(e)
    assert "looks like text" in next(e.problem for e in index.problems if e.path.endswith("secret.bin"))


# --------------------------------------------------------------------------- regression: PEFT save variants

def test_peft_legacy_variants_keep_working(tmp_path):
    """peft-legacy-variants: .bin weights, config drift (null token_dim, unknown keys), a ZeRO-3 empty
    tensor (a clean error), SEQ_CLS with a classifier head beside the prompt."""
    from peft import PromptTuningConfig, get_peft_model
    from safetensors.torch import save_file as st_save_file
    from transformers import BertForSequenceClassification, BertModel

    def peft_model(cls=BertModel, task="FEATURE_EXTRACTION"):
        m = _tiny_bert() if cls is BertModel else cls(_tiny_bert().config)
        m.config._name_or_path = MINILM
        m.name_or_path = MINILM
        return get_peft_model(m, PromptTuningConfig(task_type=task, num_virtual_tokens=20))

    torch.manual_seed(0)
    lib = tmp_path / "lib"
    a = peft_model()
    a.save_pretrained(str(lib / "a_bin"), safe_serialization=False)
    want_a = a.get_prompt_embedding_to_save("default").detach()
    peft_model().save_pretrained(str(lib / "b_config_drift"))
    cfg = json.loads((lib / "b_config_drift" / "adapter_config.json").read_text())
    cfg["token_dim"] = None
    cfg.pop("num_transformer_submodules", None)
    cfg["some_future_option"] = {"enabled": True}
    cfg["peft_version"] = "9.9.9"
    (lib / "b_config_drift" / "adapter_config.json").write_text(json.dumps(cfg))
    peft_model().save_pretrained(str(lib / "c_zero3_empty"))
    st_save_file({"prompt_embeddings": torch.empty(0)}, str(lib / "c_zero3_empty" / "adapter_model.safetensors"))
    peft_model(BertForSequenceClassification, "SEQ_CLS").save_pretrained(str(lib / "d_seq_cls"))
    index = index_library(lib)
    assert {n: (p.L, p.d, p.backbone) for n, p in index.prompts.items()} == {
        "a_bin": (20, 384, MINILM), "b_config_drift": (20, 384, MINILM), "d_seq_cls": (20, 384, MINILM)}
    assert torch.equal(index.prompts["a_bin"].tensor, want_a)
    [e] = index.problems
    assert e.path == str(lib / "c_zero3_empty") and "expected a 2-D" in e.problem and "(0,)" in e.problem


def test_whole_model_checkpoints_never_yield_a_model_weight_as_the_prompt(tmp_path):
    """A P-tuning v2 save of the whole model: a prefix encoder among the backbone's own weights
    (vocabulary, position / token-type embeddings, attention, layer norms). None of them is a
    prompt; the message leads with the prefixes."""
    sd = {"roberta.embeddings.word_embeddings.weight": torch.randn(50265, 64),
          "roberta.embeddings.position_embeddings.weight": torch.randn(514, 64),
          "roberta.embeddings.token_type_embeddings.weight": torch.randn(1, 64),
          "roberta.embeddings.LayerNorm.weight": torch.ones(64),
          "roberta.encoder.layer.0.attention.self.query.weight": torch.randn(64, 64),
          "roberta.encoder.layer.0.intermediate.dense.weight": torch.randn(256, 64),
          "prefix_encoder.embedding.weight": torch.randn(16, 2 * 2 * 64)}
    torch.save(sd, tmp_path / "pytorch_model.bin")
    with pytest.raises(PromptError) as e:
        read_prompt(tmp_path / "pytorch_model.bin")
    assert e.value.problem.startswith("no soft prompt inside (prefix_encoder.embedding.weight (16, 256): per-layer")
    # OpenPrompt's SoftTemplate: soft_embedding beside the model's raw_embedding (the vocabulary)
    soft = torch.randn(20, 64)
    torch.save({"raw_embedding.weight": torch.randn(30522, 64), "soft_embedding.weight": soft}, tmp_path / "tpl.ckpt")
    assert torch.equal(read_prompt(tmp_path / "tpl.ckpt").tensor, soft)
    # HF Trainer's optimizer.pt and a Lightning checkpoint
    torch.save({"state": {0: {"exp_avg": torch.zeros(20, 64), "exp_avg_sq": torch.zeros(20, 64)}},
                "param_groups": [{"lr": 0.3, "params": [0]}]}, tmp_path / "optimizer.pt")
    with pytest.raises(PromptError, match="an optimizer state"):
        read_prompt(tmp_path / "optimizer.pt")
    torch.save({"state_dict": {"prompt": soft}, "epoch": 3, "global_step": 90, "optimizer_states": []},
               tmp_path / "last.ckpt")
    with pytest.raises(PromptError, match="a training checkpoint"):
        read_prompt(tmp_path / "last.ckpt")
