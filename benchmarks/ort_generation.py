"""onnxruntime's own T5 generation: one ONNX graph whose ``BeamSearch`` operator decodes.

The ``BeamSearch`` contrib operator (com.microsoft) runs the whole decode loop in C++: it calls
an encoder sub-graph once and a decoder sub-graph once per step, keeps the caches, scores the
beams, applies min_length and no_repeat_ngram_size, and returns the sequences. With one beam it
is greedy decoding. Here both sub-graphs are int8 (``quantize_dynamic``: int8 weights, uint8
activations with one scale per *tensor*, so a row's answer can depend on what else is in the
batch). ``quantization="row"`` quantizes them as dialogsum's exports are instead
(``quantize_int8_file``: one scale per row, 7-bit weights), to tell what the operator's loop
gains from what its quantization does.

onnxruntime builds such graphs with ``onnxruntime.transformers.convert_generation``, which does
not run as shipped with onnxruntime 1.32 and transformers 4.57: its command line loads a
SentencePiece ``T5Tokenizer`` from the model folder (these models carry a tokenizers JSON only);
its decoder export (``models/t5/t5_decoder.py``, ``past_helper.py``) builds cache objects only
for transformers 5 and hands 4.57's T5 decoder tuples of past key values, which it no longer
takes (``'tuple' object has no attribute 'get_seq_length'``); and its T5 optimizer fuses the
position bias into ``RelativePositionBias``, which has no CPU kernel in onnxruntime 1.32
(NOT_IMPLEMENTED when a CPU session loads it). So the two sub-graphs are exported here
with ``torch.onnx`` from small wrappers over the transformers modules, in the layout the
operator checks (onnxruntime's ``subgraph_t5_encoder.cc`` and ``subgraph_t5_decoder.cc``, the
"new format"), without the transformers optimizer (onnxruntime's own session-level graph
optimizations still apply); ``convert_generation.get_shared_initializers`` then moves the
weights both sub-graphs hold (the embedding) to the main graph, as the tool does.

Encoder sub-graph: ``encoder_input_ids``, ``encoder_attention_mask`` (int32, batch x source)
-> ``present_key_cross_i``, ``present_value_cross_i`` (batch x heads x source x head size) for
each decoder layer. Decoder sub-graph: ``input_ids`` (int32, batch x 1),
``encoder_attention_mask``, ``past_key_self_i``/``past_value_self_i`` for each layer, then
``past_key_cross_i``/``past_value_cross_i`` -> ``logits`` (batch x 1 x vocabulary) and
``present_key_self_i``/``present_value_self_i`` (one position longer). The operator reads the
head count, head size and vocabulary size from those output shapes, so they are fixed numbers.
Built with ``quantization=None``, the graph gave transformers' own ids (greedy and 4 beams,
FLAN-T5-base and dialogsum-tiny, padded rows and no_repeat_ngram_size=3 included), and on
FLAN-T5-base the same ids for a row alone as in its batch.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

#: The built graph's file in its folder.
MODEL_FILE = "model.onnx"


def _heads(x: Any, heads: int) -> Any:
    """(batch, length, heads * size) -> (batch, heads, length, size)."""
    batch, length, _ = x.shape
    return x.view(batch, length, heads, -1).transpose(1, 2)


def _attend(query: Any, key: Any, value: Any, bias: Any, out: Any) -> Any:
    """T5 attention (no 1/sqrt(d) scaling) of split heads, merged and projected by ``out``."""
    import torch

    scores = torch.matmul(query, key.transpose(3, 2)) + bias
    weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
    context = torch.matmul(weights, value).transpose(1, 2)
    return out(context.reshape(context.shape[0], context.shape[1], -1))


def _modules(model: Any) -> tuple[Any, Any]:
    """The encoder and the decoder-step modules (torch) of a T5ForConditionalGeneration."""
    import torch

    heads = int(model.config.num_heads)
    blocks = model.decoder.block

    class Encoder(torch.nn.Module):
        """Source ids and mask -> every decoder layer's cross-attention keys and values."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.get_encoder()
            self.blocks = blocks

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, ...]:
            hidden = self.encoder(
                input_ids=input_ids.long(), attention_mask=attention_mask.long(), use_cache=False
            ).last_hidden_state
            caches = []
            for block in self.blocks:
                attention = block.layer[1].EncDecAttention
                caches += [_heads(attention.k(hidden), heads), _heads(attention.v(hidden), heads)]
            return tuple(caches)

    class DecoderStep(torch.nn.Module):
        """One decoder step over the caches: T5's decoder layers written out, cache in, cache out."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = model.decoder.embed_tokens
            self.blocks = blocks
            self.final_norm = model.decoder.final_layer_norm
            self.lm_head = model.lm_head
            self.scale = model.config.d_model**-0.5 if model.config.tie_word_embeddings else 1.0

        def forward(self, input_ids: Any, attention_mask: Any, *past: Any) -> tuple[Any, ...]:
            layers = len(self.blocks)
            x = self.embed(input_ids.long())
            # The encoder mask as an additive bias, as transformers builds it.
            visible = attention_mask[:, None, None, :].to(x.dtype)
            cross_bias = (1.0 - visible) * torch.finfo(x.dtype).min
            presents: list[Any] = []
            self_bias = None
            for i, block in enumerate(self.blocks):
                attention = block.layer[0].SelfAttention
                h = block.layer[0].layer_norm(x)
                key = torch.cat([past[2 * i], _heads(attention.k(h), heads)], dim=2)
                value = torch.cat([past[2 * i + 1], _heads(attention.v(h), heads)], dim=2)
                presents += [key, value]
                if self_bias is None:  # layer 0 holds the relative position bias; all share it
                    length = key.shape[2]
                    memory = torch.arange(length, device=x.device)
                    relative = memory - (length - 1)  # the query is the last position
                    buckets = attention._relative_position_bucket(
                        relative,
                        bidirectional=False,
                        num_buckets=attention.relative_attention_num_buckets,
                        max_distance=attention.relative_attention_max_distance,
                    )
                    self_bias = attention.relative_attention_bias(buckets).T[None, :, None, :]
                query = _heads(attention.q(h), heads)
                x = x + _attend(query, key, value, self_bias, attention.o)
                cross = block.layer[1].EncDecAttention
                h = block.layer[1].layer_norm(x)
                query = _heads(cross.q(h), heads)
                cross_key, cross_value = past[2 * layers + 2 * i], past[2 * layers + 2 * i + 1]
                x = x + _attend(query, cross_key, cross_value, cross_bias, cross.o)
                x = block.layer[2](x)
            logits = self.lm_head(self.final_norm(x) * self.scale)
            return (logits, *presents)

    return Encoder().eval(), DecoderStep().eval()


def _fix_shape(value: Any, dims: list[int | str]) -> None:
    """Give a graph input or output the shape ``dims`` (numbers fixed, strings symbolic)."""
    shape = value.type.tensor_type.shape
    shape.ClearField("dim")
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        else:
            entry.dim_param = dim


def _export_subgraphs(model: Any, folder: Path) -> tuple[Path, Path]:
    """The encoder and decoder sub-graphs (fp32) of ``model``, in the operator's layout."""
    import onnx
    import torch

    config = model.config
    layers, heads, size = config.num_decoder_layers, config.num_heads, config.d_kv
    encoder, decoder = _modules(model)
    cross_names = [f"present_{kv}_cross_{i}" for i in range(layers) for kv in ("key", "value")]
    self_past = [f"past_{kv}_self_{i}" for i in range(layers) for kv in ("key", "value")]
    cross_past = [f"past_{kv}_cross_{i}" for i in range(layers) for kv in ("key", "value")]
    self_present = [f"present_{kv}_self_{i}" for i in range(layers) for kv in ("key", "value")]
    source = {0: "batch", 1: "source"}
    ids = torch.randint(3, 100, (2, 5), dtype=torch.int32)
    mask = torch.ones(2, 5, dtype=torch.int32)
    encoder_path = folder / "encoder.onnx"
    with torch.inference_mode():
        torch.onnx.export(
            encoder,
            (ids, mask),
            str(encoder_path),
            input_names=["encoder_input_ids", "encoder_attention_mask"],
            output_names=cross_names,
            dynamic_axes={
                "encoder_input_ids": source,
                "encoder_attention_mask": source,
                **{name: {0: "batch", 2: "source"} for name in cross_names},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
        past = [torch.rand(2, heads, 3, size) for _ in self_past]
        past += [torch.rand(2, heads, 5, size) for _ in cross_past]
        decoder_path = folder / "decoder.onnx"
        torch.onnx.export(
            decoder,
            (ids[:, :1], mask, *past),
            str(decoder_path),
            input_names=["input_ids", "encoder_attention_mask", *self_past, *cross_past],
            output_names=["logits", *self_present],
            dynamic_axes={
                "input_ids": {0: "batch"},
                "encoder_attention_mask": source,
                **{name: {0: "batch", 2: "past"} for name in self_past},
                **{name: {0: "batch", 2: "source"} for name in cross_past},
                "logits": {0: "batch"},
                **{name: {0: "batch", 2: "past_plus_1"} for name in self_present},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    # The operator reads heads, head size and vocabulary size from these shapes, and feeds the
    # last token only when input_ids is (batch, 1).
    graph = onnx.load(str(encoder_path))
    for output in graph.graph.output:
        _fix_shape(output, ["batch", heads, "source", size])
    onnx.save(graph, str(encoder_path))
    graph = onnx.load(str(decoder_path))
    _fix_shape(graph.graph.input[0], ["batch", 1])
    _fix_shape(graph.graph.output[0], ["batch", 1, int(config.vocab_size)])
    for output in graph.graph.output[1:]:
        _fix_shape(output, ["batch", heads, "past_plus_1", size])
    onnx.save(graph, str(decoder_path))
    return encoder_path, decoder_path


def build_beam_search(
    pytorch_folder: Path | str,
    target: Path,
    *,
    no_repeat_ngram_size: int = 0,
    quantization: Literal["tensor", "row"] | None = "tensor",
) -> Path:
    """Build ``target/model.onnx``: BeamSearch over int8 sub-graphs of the T5 model saved in
    the transformers folder ``pytorch_folder``: quantized per tensor (``quantize_dynamic``),
    per row (dialogsum's), or not at all (``None``, fp32).

    ``no_repeat_ngram_size`` is an attribute of the operator, fixed here. Returns the graph's
    path; an existing one is reused.
    """
    path = target / MODEL_FILE
    if path.exists():
        return path
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.convert_generation import get_shared_initializers
    from transformers import T5ForConditionalGeneration

    from dialogsum.backends.onnxruntime.quantize import quantize_int8_file

    model = T5ForConditionalGeneration.from_pretrained(str(pytorch_folder)).float().eval()
    config = model.config
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        folder = Path(scratch)
        subgraphs = []
        for exported in _export_subgraphs(model, folder):
            quantized = exported.with_suffix(".int8.onnx")
            if quantization == "tensor":
                quantize_dynamic(
                    exported,
                    quantized,
                    op_types_to_quantize=["MatMul"],
                    weight_type=QuantType.QInt8,
                )
                exported = quantized
            elif quantization == "row":
                quantize_int8_file(exported, quantized)
                exported = quantized
            subgraphs.append(onnx.load(str(exported)))
        encoder, decoder = subgraphs
        shared = get_shared_initializers(encoder, decoder)
        node = helper.make_node(
            "BeamSearch",
            inputs=[
                "input_ids",
                "max_length",
                "min_length",
                "num_beams",
                "num_return_sequences",
                "length_penalty",
                "repetition_penalty",
                "",  # vocab_mask
                "",  # prefix_vocab_mask
                "attention_mask",
            ],
            outputs=["sequences"],
            name="BeamSearch_t5",
            domain="com.microsoft",
            eos_token_id=int(config.eos_token_id),
            pad_token_id=int(config.pad_token_id),
            decoder_start_token_id=int(config.decoder_start_token_id),
            no_repeat_ngram_size=no_repeat_ngram_size,
            early_stopping=0,
            model_type=1,  # encoder-decoder (T5)
            encoder=encoder.graph,
            decoder=decoder.graph,
        )
        scalar = ("max_length", "min_length", "num_beams", "num_return_sequences")
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "source"]),
            *(helper.make_tensor_value_info(name, TensorProto.INT32, [1]) for name in scalar),
            helper.make_tensor_value_info("length_penalty", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("repetition_penalty", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "source"]),
        ]
        output = helper.make_tensor_value_info(
            "sequences", TensorProto.INT32, ["batch", "num_return_sequences", "max_length"]
        )
        graph = helper.make_graph([node], "t5 beam search", inputs, [output], shared)
        built = helper.make_model(
            graph, producer_name="dialogsum benchmarks", opset_imports=decoder.opset_import
        )
        staging = folder / MODEL_FILE
        onnx.save(built, str(staging))
        staging.replace(path)
    return path


class BeamSearchModel:
    """A session over a graph from :func:`build_beam_search`, decoding padded id batches."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime

        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = threads
        settings.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), settings, providers=["CPUExecutionProvider"]
        )

    def generate_ids(
        self,
        ids: list[list[int]],
        mask: list[list[int]],
        *,
        max_new_tokens: int,
        min_new_tokens: int = 0,
        num_beams: int = 1,
        length_penalty: float = 1.0,
    ) -> Any:
        """The best sequence per row, (rows, 1 + max_new_tokens) int32 with the start token;
        after an end-of-sequence token a row holds padding."""
        import numpy as np

        feeds = {
            "input_ids": np.asarray(ids, dtype=np.int32),
            "attention_mask": np.asarray(mask, dtype=np.int32),
            # The lengths count the decoder's start token.
            "max_length": np.array([1 + max_new_tokens], dtype=np.int32),
            "min_length": np.array([1 + min_new_tokens], dtype=np.int32),
            "num_beams": np.array([num_beams], dtype=np.int32),
            "num_return_sequences": np.array([1], dtype=np.int32),
            "length_penalty": np.array([length_penalty], dtype=np.float32),
            "repetition_penalty": np.array([1.0], dtype=np.float32),
        }
        return self.session.run(["sequences"], feeds)[0][:, 0, :]
