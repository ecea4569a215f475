"""``nncbridge info``: inputs/outputs with data names and shapes, layers, parameters, normalization."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from nncbridge.cli import main
from nncbridge.describe import describe

FOUR_OR_NINE = "mnist-4or9-and-lenet/binary-4or9-2018.nnp"
LENET = "mnist-4or9-and-lenet/lenet-10class-2017.nnp"
SIN = "sin-regression/result.nnp"


def test_describe_4or9(shared_exports):
    info = describe(shared_exports / FOUR_OR_NINE)
    fmt = info["format"]
    assert fmt["nnp_version"] == "0.1" and fmt["network_encoding"] == "text" and fmt["parameter_format"] == "protobuf"
    assert [m["name"] for m in fmt["members"]] == ["nnp_version.txt", "network.prototxt", "parameter.protobuf",
                                                    "output_result.zip"]
    assert fmt["members"][-1]["role"].startswith("not needed")
    [exe] = info["executors"]
    assert exe["name"] == "Executor" and exe["network"] == "MainRuntime" and exe["runtime"]
    assert exe["inputs"] == [{"variable": "Input", "data_name": "x", "shape": [1, 28, 28], "dtype": "float32"}]
    assert exe["outputs"] == [{"variable": "Sigmoid", "data_name": "y'", "shape": [1], "dtype": "float32"}]
    layers = [(la["name"], la["type"], la["output_shape"], la["parameters"]) for la in exe["layers"]]
    # 196 = 14*14 pooled pixels; Affine: 196*100 weights + 100 biases; Affine_2: 100*1 + 1
    assert layers == [("MaxPooling", "MaxPooling", [1, 14, 14], 0), ("Affine", "Affine", [100], 19700),
                      ("ReLU", "ReLU", [100], 0), ("Affine_2", "Affine", [1], 101), ("Sigmoid", "Sigmoid", [1], 0)]
    assert exe["parameters"] == {"arrays": 4, "values": 19801, "bytes": 4 * 19801}
    assert info["parameters"] == {"arrays": 4, "values": 19801, "bytes": 4 * 19801, "dtype": "float32"}
    assert exe["image_normalization"]["divide_by_255"] is True
    assert [d["name"] for d in info["datasets"]] == ["Training", "Validation"]
    assert {n["name"]: n["used_by"] for n in info["networks"]}["MainRuntime"] == ["executor 'Executor'"]


def test_describe_lenet_shapes_match_console_declarations(shared_exports):
    from nncbridge import read

    model = read(shared_exports / LENET)
    declared = {v.name: list(v.shape[1:]) for v in model.networks["MainRuntime"].variables.values()}
    [exe] = describe(model)["executors"]
    assert exe["outputs"][0]["shape"] == [10] and exe["outputs"][0]["variable"] == "Softmax"
    for layer in exe["layers"]:
        assert layer["output_shape"] == declared[layer["name"]], layer
    conv = exe["layers"][0]
    w = model.parameters["Convolution/conv/W"].data
    assert conv["parameters"] == w.size + model.parameters["Convolution/conv/b"].data.size


def test_describe_sin_no_normalization(shared_exports):
    info = describe(shared_exports / SIN)
    [exe] = info["executors"]
    assert exe["inputs"][0]["shape"] == [1] and exe["outputs"][0]["variable"] == "Affine_3"
    norm = exe["image_normalization"]
    assert norm["divide_by_255"] is False and norm["executor_no_image_normalization"] is True
    assert set(norm["datasets_normalize"].values()) == {False}
    assert [m["role"] for m in info["format"]["members"]][-1].startswith("not needed")  # optimizer state


def test_text_output(shared_exports, capsys):
    assert main(["info", str(shared_exports / FOUR_OR_NINE)]) == 0
    out = capsys.readouterr().out
    for needle in ("NNP 0.1", "network in text", "parameters in protobuf", "Executor 'Executor'",
                   "Input", "← x", "(1, 28, 28)", "Sigmoid", "→ y'", "divided by 255", "MaxPooling",
                   "(1, 14, 14)", "19,700", "19,801", "output_result.zip (ignored)"):
        assert needle in out, needle
    assert main(["info", str(shared_exports / SIN)]) == 0
    out = capsys.readouterr().out
    assert "not divided by 255" in out and "no_image_normalization" in out


def test_json_output_equals_describe(shared_exports, capsys):
    path = shared_exports / LENET
    assert main(["info", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(describe(path)))


def test_executor_filter(shared_exports, capsys):
    path = str(shared_exports / LENET)
    assert main(["info", "--executor", "Executor", "--json", path]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)["executors"]] == ["Executor"]
    assert main(["info", "--executor", "Nope", path]) == 2
    assert "no executor 'Nope'" in capsys.readouterr().err


def test_loose_parts(shared_exports, tmp_path, capsys):
    with zipfile.ZipFile(shared_exports / SIN) as z:
        z.extract("network.prototxt", tmp_path)
        z.extract("parameter.protobuf", tmp_path)
    assert main(["info", str(tmp_path / "network.prototxt"), str(tmp_path / "parameter.protobuf")]) == 0
    out = capsys.readouterr().out
    assert "Affine_3" in out and "(no nnp_version.txt)" in out


def test_cli_subprocess(shared_exports):
    result = subprocess.run([sys.executable, "-m", "nncbridge", "info", str(shared_exports / FOUR_OR_NINE)],
                            capture_output=True, text=True, timeout=60, encoding="utf-8")
    assert result.returncode == 0 and result.stderr == ""
    assert "Input" in result.stdout and "← x" in result.stdout


@pytest.mark.nnabla
def test_nnabla_saved_model(tmp_path):
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF
    from nnabla.utils.save import save

    nn.clear_parameters()
    x = nn.Variable((2, 3, 8, 8))
    with nn.parameter_scope("info"):
        h = PF.convolution(x, 4, (3, 3), name="conv")
        y = F.softmax(PF.affine(F.relu(h), 5, name="fc"))
    path = tmp_path / "m.nnp"
    save(str(path), {"networks": [{"name": "net", "batch_size": 2, "outputs": {"y": y}, "names": {"x": x}}],
                     "executors": [{"name": "runtime", "network": "net", "data": ["x"], "output": ["y"]}]})
    info = describe(path)
    [exe] = info["executors"]
    assert exe["inputs"] == [{"variable": "x", "data_name": "x", "shape": [3, 8, 8], "dtype": "float32"}]
    assert exe["outputs"][0]["variable"] == "y" and exe["outputs"][0]["shape"] == [5]
    assert info["format"]["parameter_format"] == "h5"
    total = sum(int(p.d.size) for p in nn.get_parameters(grad_only=False).values())
    assert info["parameters"]["values"] == total == 4 * 3 * 9 + 4 + 4 * 6 * 6 * 5 + 5
