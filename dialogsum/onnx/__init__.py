"""Everything ONNX, in two halves kept apart (as optimum keeps ``exporters/onnx`` apart from
``onnxruntime``):

- torch-free, what a serving image needs: :mod:`~dialogsum.onnx.format` (the export folder's
  files), :mod:`~dialogsum.onnx.predictor` (onnxruntime sessions, tokenizers) and
  :mod:`~dialogsum.onnx.decoding` (greedy and beam search in numpy);
- torch, what exporting needs: :mod:`~dialogsum.onnx.export`, :mod:`~dialogsum.onnx.quantize`
  and :mod:`~dialogsum.onnx.parity`.

This package imports neither half, so ``import dialogsum.onnx.predictor`` loads no torch.
"""
