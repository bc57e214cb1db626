"""The public names of the packages, pinned: a restructuring may move code between modules, but
`from tinybert_core import X` and `from autograd import X` keep working for every X they
exported before (issue 8). Adding a name means adding it here too; removing one is a breaking
change that this test makes visible."""
from __future__ import annotations

import pytest

import autograd
import autograd.functional as F
import autograd.nn
import autograd.optim
import autograd.testing
import backends
import tinybert_core

TINYBERT_CORE = [
    "PRESETS", "BertForMaskedLM", "BertForNextSentencePrediction", "BertForPreTraining",
    "BertForQuestionAnswering", "BertForSequenceClassification", "BertForTokenClassification",
    "BertModel", "BertTokenizer", "IBBertForPreTraining", "MobileBertConfig",
    "MobileBertForMaskedLM", "MobileBertForNextSentencePrediction", "MobileBertForPreTraining",
    "MobileBertForQuestionAnswering", "MobileBertForSequenceClassification",
    "MobileBertForTokenClassification", "MobileBertModel", "PreTrainedModel", "load_model",
    "model_class",
]
AUTOGRAD = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck",
            "GradcheckError"]
# Submodules the README's tour imports by name (`from autograd import nn, optim`).
AUTOGRAD_MODULES = ["function", "functional", "gradcheck", "module", "nn", "ops", "optim",
                    "serialization", "tensor", "audit", "testing", "crosscheck"]
# The public testing kit (issue 15): what users' own op tests import.
TESTING = ["assert_backends_agree", "assert_forward", "assert_fused_matches_composite",
           "assert_gradients", "available_backends", "check_op", "leaf"]
BACKENDS = ["Backend", "BackendUnavailable", "get_backend", "availability", "default_backend",
            "default_backend_name", "set_default_backend", "backend_of", "names", "ENV_VAR"]
FUNCTIONAL = [
    "abs", "add", "concat", "cross_entropy", "div", "dropout", "embedding", "exp",
    "fake_quantize", "gelu",
    "kl_div", "layer_norm", "linear", "log", "log_softmax", "masked_fill", "matmul", "max",
    "mean", "mse_loss", "mul", "no_norm", "pad", "permute", "pow", "relu", "relu6", "reshape",
    "sigmoid", "softmax", "split", "sqrt", "stack", "sub", "sum", "tanh", "transpose", "var",
    "where",
]
NN = ["Module", "ModuleList", "Parameter", "Linear", "Embedding", "LayerNorm", "NoNorm",
      "Dropout", "init_normal"]
OPTIM = ["AdamW", "LAMB", "Optimizer", "SGD", "clip_grad_norm", "constant_schedule",
         "linear_warmup_poly_decay"]


@pytest.mark.parametrize("module, pinned", [(tinybert_core, TINYBERT_CORE), (autograd, AUTOGRAD),
                                            (backends, BACKENDS), (autograd.nn, NN),
                                            (autograd.testing, TESTING)],
                         ids=["tinybert_core", "autograd", "backends", "autograd.nn",
                              "autograd.testing"])
def test_all_lists_are_pinned(module, pinned):
    assert sorted(module.__all__) == sorted(pinned)
    for name in pinned:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("name", TINYBERT_CORE)
def test_from_tinybert_core_import(name):
    namespace: dict = {}
    exec(f"from tinybert_core import {name}", namespace)
    assert namespace[name] is getattr(tinybert_core, name)


@pytest.mark.parametrize("name", AUTOGRAD + AUTOGRAD_MODULES)
def test_from_autograd_import(name):
    namespace: dict = {}
    exec(f"from autograd import {name}", namespace)
    assert namespace[name] is not None


def test_functional_and_optim_keep_their_names():
    # New names may be added; none of today's may go.
    assert set(FUNCTIONAL) <= {n for n in dir(F) if callable(getattr(F, n))}
    assert set(OPTIM) <= set(dir(autograd.optim))


def test_model_classes_keep_hugging_face_names():
    # The class names are what config.json's "architectures" holds.
    for name in TINYBERT_CORE:
        obj = getattr(tinybert_core, name)
        if isinstance(obj, type) and name != "IBBertForPreTraining":
            assert obj.__name__ == name
    assert tinybert_core.IBBertForPreTraining is tinybert_core.MobileBertForPreTraining
