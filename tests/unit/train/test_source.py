"""Training from scratch is a model source (model.name: scratch:<arch>-<size>), not a method."""
from __future__ import annotations

import pytest

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.methods import METHODS
from luyen.train.scratch import parse_scratch
from luyen.train.source import load_base


def test_scratch_names_carry_the_arch_and_the_size():
    assert parse_scratch("scratch:causal-tiny") == ("causal", "tiny")
    assert parse_scratch("scratch:masked-base") == ("masked", "base")
    assert parse_scratch("gemma3-270m") is None and parse_scratch(None) is None
    with pytest.raises(LuyenError, match="model.name.*tiny, small, base"):
        parse_scratch("scratch:causal-huge")
    with pytest.raises(LuyenError, match="model.name.*causal or masked"):
        parse_scratch("scratch:seq2seq-tiny")


def test_the_old_pretrain_method_says_where_it_went():
    with pytest.raises(LuyenError, match=r"train.method=pretrain is gone.*model.name=scratch:causal-tiny.*"
                                         r"train.method=full") as e:
        load_config(None, ["train.method=pretrain"])
    assert "\n" not in str(e.value)


def test_a_new_model_trains_every_weight(tmp_path):
    cfg = load_config(None, ["model.name=scratch:causal-tiny", "train.method=lora"])
    with pytest.raises(LuyenError, match="train.method.*builds a new model.*set train.method=full"):
        load_base(cfg, METHODS["lora"], None, [], tmp_path, accelerator=None)
