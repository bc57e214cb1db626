"""Parameter counts and FLOPs from configs (spec 1.2 / 1.3), checked against built models."""
from __future__ import annotations

import numpy as np
import pytest

from tinybert_core import MobileBertConfig, model_class
from tinybert_core.models.counting import (
    ARCHITECTURES,
    count_parameters,
    matmul_flops,
    parameter_breakdown,
    parameter_shapes,
    summary,
)
from tinybert_core.models.auto import TASKS

# spec section 1.2
EXPECTED = {
    ("mobilebert", None): 24_581_888,
    ("mobilebert-tiny", None): 15_485_696,
    ("ib-bert-large", None): 294_205_184 + 262_656,
    ("bert-base", None): 109_482_240,
    ("bert-large", None): 335_141_888,
    ("mobilebert", "MobileBertForPreTraining"): 36_597_564,
}


@pytest.mark.parametrize("preset, architecture", list(EXPECTED))
def test_parameter_counts_match_the_spec(preset, architecture):
    config = MobileBertConfig.from_pretrained(preset)
    assert count_parameters(config, architecture) == EXPECTED[preset, architecture]


def test_breakdowns_of_the_spec_tables():
    mobile = parameter_breakdown(MobileBertConfig.from_pretrained("mobilebert"))
    assert mobile == {"embeddings": 4_368_128, "encoder": 20_213_760}
    teacher = parameter_breakdown(MobileBertConfig.from_pretrained("ib-bert-large"))
    assert teacher == {"embeddings": 4_368_128, "encoder": 289_837_056, "pooler": 262_656}
    bert = parameter_breakdown(MobileBertConfig.from_pretrained("bert-base"))
    assert bert == {"embeddings": 23_837_184, "encoder": 85_054_464, "pooler": 590_592}
    heads = parameter_breakdown(MobileBertConfig.from_pretrained("mobilebert"),
                                "ForPreTraining")
    assert heads["cls"] == 512 * 512 + 512 + 1024 + 30522 * 384 + 30522 + 512 * 2 + 2


@pytest.mark.parametrize("preset, expected", [("mobilebert", 5.39e9), ("bert-base", 22.35e9),
                                              ("mobilebert-tiny", 3.07e9)])
def test_flops_at_seq_128_within_one_percent_of_the_spec(preset, expected):
    flops = matmul_flops(MobileBertConfig.from_pretrained(preset), seq_len=128)
    assert abs(flops["total"] - expected) / expected < 0.01
    assert flops["total"] == sum(v for k, v in flops.items() if k != "total")


def test_flops_scale_with_batch_and_count_heads_only_when_asked():
    config = MobileBertConfig.from_pretrained("mobilebert")
    one, eight = matmul_flops(config, 128, 1), matmul_flops(config, 128, 8)
    assert eight["total"] == 8 * one["total"]
    # hand count: per token per layer 835,584 dense MACs + 2 * 128 * 128 attention MACs
    assert one["encoder_dense"] == 2 * 24 * 128 * 835_584
    assert one["attention_scores"] == 2 * 24 * 2 * 128 * 128 * 128
    heads = matmul_flops(config, 128, 1, "ForPreTraining", include_heads=True)
    assert heads["heads"] == 2 * (128 * (512 * 512 + 512 * 30522) + 512 * 2)
    with pytest.raises(ValueError, match="seq_len and batch_size must be >= 1"):
        matmul_flops(config, 0)


def _tiny_configs():
    base = dict(vocab_size=40, embedding_size=8, hidden_size=16, intra_bottleneck_size=8,
                num_attention_heads=2, intermediate_size=12, num_hidden_layers=2,
                max_position_embeddings=10)
    return {
        "mobilebert": MobileBertConfig(**base, classifier_activation=False),
        "tiny": MobileBertConfig(**base, use_bottleneck_attention=True,
                                 key_query_shared_bottleneck=False, num_feedforward_networks=2),
        "teacher": MobileBertConfig(**{**base, "intra_bottleneck_size": 32},
                                    key_query_shared_bottleneck=False,
                                    num_feedforward_networks=1, normalization_type="layer_norm"),
        "no-bottleneck": MobileBertConfig(**{**base, "embedding_size": 16}, use_bottleneck=False,
                                          trigram_input=False, num_labels=3),
        "bert": MobileBertConfig.bert(vocab_size=40, hidden_size=16, num_attention_heads=2,
                                      intermediate_size=12, num_hidden_layers=2, num_labels=4),
    }


@pytest.mark.parametrize("name", list(_tiny_configs()))
@pytest.mark.parametrize("task", TASKS)
def test_shapes_from_the_config_equal_the_built_model_key_for_key(name, task):
    config = _tiny_configs()[name]
    model = model_class(config, task)(config, seed=0)
    built = {k: tuple(p.shape) for k, p in model.named_parameters()}
    arch = type(model).__name__
    assert built == dict(parameter_shapes(config, arch))
    assert list(built) == list(parameter_shapes(config, arch))   # definition order too
    assert model.num_parameters() == count_parameters(config, arch)
    assert sum(parameter_breakdown(config, arch).values()) == model.num_parameters()


def test_unknown_architecture_and_summary():
    config = MobileBertConfig.from_pretrained("mobilebert")
    with pytest.raises(ValueError, match="unknown architecture 'BertModel' for model_type"):
        count_parameters(config, "BertModel")
    assert len(ARCHITECTURES) == len(TASKS)
    info = summary(config, "ForPreTraining", seq_len=64)
    assert info["architecture"] == "MobileBertForPreTraining"
    assert info["total_parameters"] == 36_597_564 and info["seq_len"] == 64
    assert np.isclose(info["flops"]["total"], matmul_flops(config, 64)["total"])
