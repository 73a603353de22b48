import pytest

from luyen.config import describe, load_config
from luyen.errors import LuyenError


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: demo\ndata:\n  max_length: 256\n  split: {train: 0.7, val: 0.2, test: 0.1}\n")
    cfg = load_config(path, ["train.lr=1e-4", "data.columns={cau_hoi: question}"])
    assert (cfg.name, cfg.data.max_length, cfg.data.split.train, cfg.train.lr) == ("demo", 256, 0.7, 1e-4)
    assert cfg.data.columns == {"cau_hoi": "question"}


@pytest.mark.parametrize("yaml_text,overrides,expect", [
    ("data:\n  max_lenght: 3\n", [], "did you mean 'data.max_length'"),
    ("", ["trian.lr=1"], "did you mean 'train'"),
    ("", ["data.clean.nfcc=true"], "did you mean 'data.clean.nfc'"),
    ("", ["data.on_error=ignore"], "data.on_error"),
    ("", ["train.lr"], "not key=value"),
    ("- a\n- b\n", [], "top level must be a mapping"),
])
def test_errors_name_the_key(tmp_path, yaml_text, overrides, expect):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(LuyenError) as e:
        load_config(path, overrides)
    assert expect in str(e.value)
    assert "\n" not in str(e.value)


def test_every_leaf_is_documented():
    rows = describe()
    assert len(rows) > 25
    assert all(doc for _, _, doc in rows)
