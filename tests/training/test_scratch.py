"""Tests of dialogsum.training.tiny_models: tiny, offline T5 models and tokenizers built in-process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5TokenizerFast

from dialogsum.data import SPLITS, sample_path, sample_rows
from dialogsum.training.tiny_models import (
    EOS_TOKEN_ID,
    PAD_TOKEN_ID,
    UNK_TOKEN_ID,
    TinyT5,
    build_tiny_t5,
    build_tiny_tokenizer,
    save_tiny_t5,
)


def _normalised(text: str) -> str:
    """What the tokenizer's normaliser makes of ``text``: NFKC, single spaces, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run on one intra-op thread: the tiny models gain nothing from more, and when the CPUs are
    busy, torch's thread hand-offs make each tiny op, and so ``generate``, many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> TinyT5:
    return build_tiny_t5()


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny") / "tiny-t5")


# ----------------------------------------------------------------------------------------------
# sample data
# ----------------------------------------------------------------------------------------------


def test_sample_dialogues_are_the_train_rows() -> None:
    rows = sample_rows("train")
    assert len(rows) == 200
    assert all(row["dialogue"].startswith("#Person1#:") for row in rows)
    assert all(isinstance(row["summary"], str) and row["summary"] for row in rows)
    assert rows == sample_rows("train")
    rows[0]["dialogue"] = "changed"  # a fresh copy every call
    assert sample_rows("train")[0]["dialogue"] != "changed"


def test_sample_path_and_splits() -> None:
    for split in SPLITS:
        path = sample_path(split)
        assert path.is_file()
        assert path.name == f"{split}.jsonl"
        assert path.parent.name == "sample"
    test_rows = sample_rows("test")
    assert len(test_rows) == 40
    assert {"summary1", "summary2", "summary3"} <= set(test_rows[0])
    assert len(sample_rows("validation")) == 40
    with pytest.raises(ValueError, match="Unknown split"):
        sample_path("dev")


# ----------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------


def test_tokenizer_special_ids_match_t5() -> None:
    tokenizer = build_tiny_tokenizer()
    assert isinstance(tokenizer, T5TokenizerFast)
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<pad>",
        "</s>",
        "<unk>",
    )
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (PAD_TOKEN_ID, EOS_TOKEN_ID, UNK_TOKEN_ID) == (0, 1, 2)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "</s>", "<unk>"]
    assert tokenizer.additional_special_tokens == []  # extra_ids=0: no <extra_id_*> sentinels
    assert len(tokenizer) == 400
    assert tokenizer.model_max_length == 512


def test_encoding_appends_a_single_eos() -> None:
    tokenizer = build_tiny_tokenizer()
    dialogue = sample_rows("train")[0]["dialogue"]
    ids = tokenizer(dialogue).input_ids
    assert ids[-1] == EOS_TOKEN_ID
    assert ids.count(EOS_TOKEN_ID) == 1
    assert PAD_TOKEN_ID not in ids
    assert UNK_TOKEN_ID not in ids
    assert tokenizer(dialogue, add_special_tokens=False).input_ids == ids[:-1]
    pair = tokenizer("first", "second").input_ids
    assert pair.count(EOS_TOKEN_ID) == 2
    assert pair[-1] == EOS_TOKEN_ID


def test_padding_uses_pad_id_zero() -> None:
    tokenizer = build_tiny_tokenizer()
    batch = tokenizer(["#Person1#: Hi.", "#Person1#: Hello, how are you today?"], padding=True)
    short, long = batch.input_ids
    assert len(short) == len(long)
    assert short[-1] == PAD_TOKEN_ID
    assert batch.attention_mask[0][-1] == 0
    assert short[sum(batch.attention_mask[0]) - 1] == EOS_TOKEN_ID


def test_round_trip_keeps_speaker_tags_and_case() -> None:
    tokenizer = build_tiny_tokenizer()
    text = "#Person1#: Hi, Mr. Smith.\n#Person2#: Hello, Dr. Hawkins!"
    ids = tokenizer(text).input_ids
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded == "#Person1#: Hi, Mr. Smith. #Person2#: Hello, Dr. Hawkins!"
    assert decoded.startswith("#Person1#:")
    assert "#Person2#:" in decoded
    assert tokenizer.decode(ids).endswith("</s>")
    # The tag is frequent enough in the sample to be learned as one piece, as in FLAN-T5 fine-tunes.
    assert tokenizer.tokenize("#Person1#: Hi")[0] == "▁#Person1#"


def test_round_trip_is_exact_on_the_whole_sample() -> None:
    tokenizer = build_tiny_tokenizer()
    texts = [
        row[key]
        for split in SPLITS
        for row in sample_rows(split)
        for key in ("dialogue", "summary", "summary1")
        if key in row
    ]
    encoded = tokenizer(texts).input_ids
    decoded = tokenizer.batch_decode(encoded, skip_special_tokens=True)
    assert decoded == [_normalised(text) for text in texts]
    assert all(UNK_TOKEN_ID not in ids for ids in encoded)


def test_unseen_ascii_is_not_unknown() -> None:
    tokenizer = build_tiny_tokenizer()
    text = "Zebra {quux} <x> | ~^ `q` @ 42%"
    ids = tokenizer(text).input_ids
    assert UNK_TOKEN_ID not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert UNK_TOKEN_ID in tokenizer("你好").input_ids


def test_tokenizer_builds_are_independent_and_identical() -> None:
    first = build_tiny_tokenizer()
    second = build_tiny_tokenizer()
    assert first is not second
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    first.add_tokens(["<only-in-first>"])
    assert len(second) == 400


def test_tokenizer_is_identical_across_processes() -> None:
    # The Unigram trainer's own scores vary between processes (hash order, parallel float sums);
    # the module re-scores them so that every process, with any thread count, gets one tokenizer.
    script = (
        "import hashlib\n"
        "from dialogsum.training.tiny_models import build_tiny_tokenizer\n"
        "tokenizer_json = build_tiny_tokenizer().backend_tokenizer.to_str()\n"
        "print(hashlib.sha256(tokenizer_json.encode()).hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "RAYON_NUM_THREADS": "1"},
    )
    here = hashlib.sha256(build_tiny_tokenizer().backend_tokenizer.to_str().encode()).hexdigest()
    assert child.stdout.strip() == here


def test_custom_texts_and_vocab_size() -> None:
    texts = [row["summary"] for row in sample_rows("train")]
    tokenizer = build_tiny_tokenizer(iter(texts), vocab_size=250)
    assert len(tokenizer) == 250
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.decode(tokenizer(texts[0]).input_ids, skip_special_tokens=True) == (
        _normalised(texts[0])
    )
    with pytest.raises(ValueError, match="vocab_size=50"):
        build_tiny_tokenizer(["tiny corpus"], vocab_size=50)


def test_tokenizer_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    tokenizer = build_tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.is_fast
    assert len(reloaded) == len(tokenizer)
    assert reloaded.all_special_ids == tokenizer.all_special_ids
    dialogue = sample_rows("train")[3]["dialogue"]
    assert reloaded(dialogue).input_ids == tokenizer(dialogue).input_ids


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------


def test_tiny_t5_is_shaped_like_flan_t5(tiny: TinyT5) -> None:
    model, tokenizer = tiny  # TinyT5 unpacks like a tuple
    config = model.config
    assert config.model_type == "t5"
    assert config.feed_forward_proj == "gated-gelu"
    assert config.is_gated_act
    assert config.tie_word_embeddings is False
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert (config.d_model, config.num_layers, config.num_decoder_layers) == (32, 2, 2)
    assert (config.num_heads, config.d_kv, config.d_ff) == (2, 16, 64)
    assert config.relative_attention_num_buckets <= 32
    assert config.vocab_size == len(tokenizer) == 400
    assert (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (0, 1, 0)
    assert not model.training
    generation = model.generation_config
    assert generation.max_new_tokens == 64
    assert (generation.decoder_start_token_id, generation.pad_token_id) == (0, 0)
    assert generation.eos_token_id == 1
    assert sum(parameter.numel() for parameter in model.parameters()) < 200_000


def test_same_seed_gives_identical_weights() -> None:
    first = build_tiny_t5(seed=7).model.state_dict()
    second = build_tiny_t5(seed=7).model.state_dict()
    other = build_tiny_t5(seed=8).model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_building_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_t5(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_model_options() -> None:
    wide = build_tiny_t5(vocab_size=416, d_model=16, num_heads=4, num_layers=1, d_ff=32)
    assert wide.model.config.vocab_size == 416
    assert wide.model.get_input_embeddings().weight.shape == (416, 16)
    assert wide.model.lm_head.weight.shape == (416, 16)
    assert wide.model.config.d_kv == 4
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        build_tiny_t5(vocab_size=100)
    with pytest.raises(ValueError, match="must divide"):
        build_tiny_t5(d_model=30, num_heads=4)


def test_forward_pass_gives_a_finite_loss(tiny: TinyT5) -> None:
    row = sample_rows("train")[0]
    batch = tiny.tokenizer([row["dialogue"]], return_tensors="pt", truncation=True)
    labels = tiny.tokenizer([row["summary"]], return_tensors="pt").input_ids
    with torch.no_grad():
        output = tiny.model(**batch, labels=labels)
    assert torch.isfinite(output.loss)
    assert output.logits.shape == (1, labels.shape[1], 400)


def test_saved_model_files(saved_dir: Path) -> None:
    assert saved_dir.name == "tiny-t5"
    names = {path.name for path in saved_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "pytorch_model.bin" not in names
    generation = json.loads((saved_dir / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 64
    assert generation["decoder_start_token_id"] == 0


def test_saved_model_generates_like_the_in_memory_one(saved_dir: Path, tiny: TinyT5) -> None:
    tokenizer = AutoTokenizer.from_pretrained(saved_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(saved_dir)
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert not model.training

    dialogues = [row["dialogue"] for row in sample_rows("train")[:2]]
    options = {"return_tensors": "pt", "padding": True, "truncation": True, "max_length": 96}
    batch = tokenizer(dialogues, **options)
    expected = tiny.tokenizer(dialogues, **options)
    assert torch.equal(batch.input_ids, expected.input_ids)

    reloaded_tokens = model.generate(**batch, do_sample=False)
    in_memory_tokens = tiny.model.generate(**batch, do_sample=False)
    assert torch.equal(reloaded_tokens, in_memory_tokens)
    assert (reloaded_tokens[:, 0] == 0).all()  # decoder_start_token_id
    assert reloaded_tokens.shape[1] <= 1 + 64  # max_new_tokens, not the default max_length=20
    texts = tokenizer.batch_decode(reloaded_tokens, skip_special_tokens=True)
    assert texts == tiny.tokenizer.batch_decode(in_memory_tokens, skip_special_tokens=True)


def test_save_tiny_t5_and_tiny_save(tmp_path: Path) -> None:
    path = save_tiny_t5(tmp_path / "a", seed=3)
    assert path == tmp_path / "a"
    again = build_tiny_t5(seed=3).save(str(tmp_path / "b"))
    assert again == tmp_path / "b"
    assert (path / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    assert (path / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()
