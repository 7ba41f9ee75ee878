"""Bugs found while building the command line, pinned by tests."""

import os
import stat

import numpy as np
from graphs import mlp
from test_pipeline import function_source

import graphgen as gg


def test_mean_over_a_symbolic_and_a_static_dim_divides_by_their_product(rng):
    g = gg.Graph("mean2d")
    x = g.param("x", ("batch", 4))
    g.output(gg.mean(gg.square(x)))
    model = gg.compile(g)
    body = function_source(model.source, "value_and_grad")
    assert "/ (4 * batch)" in body and "((" not in body
    x0 = rng.standard_normal((3, 4))
    _, grads = model.value_and_grad(x0)
    np.testing.assert_allclose(grads["x"], 2 * x0 / 12)


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = gg.compile(mlp()).save(tmp_path / "new.py")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    existing = tmp_path / "existing.py"
    existing.write_text("old\n")
    existing.chmod(0o640)
    gg.save_graph(mlp(), existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
