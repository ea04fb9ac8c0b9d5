"""tools/similarity.py: what it counts as the same line, and its share."""
import importlib.util

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def similarity():
    spec = importlib.util.spec_from_file_location("similarity", ROOT / "tools" / "similarity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folding_whitespace_and_the_framework_name(similarity, tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text('FRAMEWORK = "pytorch"\n\n    x  =  1\n"""Title -- PyTorch"""\nimport torch\n')
    b.write_text('FRAMEWORK = "chainer"\nx = 1\n\n"""Title -- Chainer"""\nimport chainer\n')
    lines_a, lines_b = similarity.folded_lines(a, "pytorch"), similarity.folded_lines(b, "chainer")
    assert lines_a == lines_b == ['FRAMEWORK = "FW"', "x = 1", '"""Title -- FW"""', "import FW"]
    # a name inside a longer word is left alone; one joined by "_" is replaced (import vae_pytorch)
    a.write_text("torchvision = pytorchlike\nimport vae_pytorch\n")
    assert similarity.folded_lines(a, "pytorch") == ["torchvision = pytorchlike", "import vae_FW"]


def test_share(similarity):
    assert similarity.line_share(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == 100
    assert similarity.line_share(["a", "b"], ["c", "d"]) == 0
    assert similarity.line_share(["a", "b", "x", "c"], ["a", "b", "y", "c"]) == 75
    # every question with four versions is in the table; a missing one is refused
    assert {"ae", "convae", "vae", "gan", "dcgan"} <= set(similarity.questions())
    with pytest.raises(SystemExit) as stop:
        similarity.main(["--questions", "no_such_question"])
    assert stop.value.code == 2
