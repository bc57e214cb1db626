"""int8 inference: post-training quantization (dynamic and static), the int8 layers, the int8
checkpoint format and the per-layer error report. docs/int8.md is the guide.

    from tinybert_core.quantization import quantize_model
    int8 = quantize_model(model, mode="dynamic")          # or mode="static", calibration=...
    int8.save_pretrained("model-int8")                    # loads with load_model / from_pretrained
    with int8_dispatch("always"): ...                     # int8 GEMMs everywhere (dispatch.py)

This package sits below `tinybert_core.models` (the model loader builds int8 models from it),
so it finds the parts it treats specially by Hugging Face's attribute names, never by class.
"""
from tinybert_core.quantization.checkpoint import (
    QuantizationConfig,
    int8_state_dict,
    is_quantized,
    quantization_config,
)
from tinybert_core.quantization.dispatch import (
    get_int8_dispatch,
    int8_dispatch,
    int8_pays,
    set_int8_dispatch,
)
from tinybert_core.quantization.modules import (
    InputQuantizer,
    QuantizedEmbedding,
    QuantizedLinear,
    QuantizedLMPredictionHead,
    model_nbytes,
    move,
    quantize_weight,
)
from tinybert_core.quantization.observers import MinMaxObserver, PercentileObserver
from tinybert_core.quantization.ptq import calibrate, quantize_model, resolve_keep_float

__all__ = ["get_int8_dispatch", "int8_dispatch", "int8_pays", "set_int8_dispatch",
           "QuantizationConfig", "int8_state_dict", "is_quantized", "quantization_config",
           "InputQuantizer", "QuantizedEmbedding", "QuantizedLinear", "QuantizedLMPredictionHead",
           "model_nbytes", "move", "quantize_weight", "MinMaxObserver", "PercentileObserver",
           "calibrate", "quantize_model", "resolve_keep_float"]
