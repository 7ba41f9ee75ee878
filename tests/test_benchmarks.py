"""The benchmark harness keeps working: its agreement check, in-process, at tiny sizes.

No timing here (never timed unit tests); no torch or jax needed (they are optional).
"""

import re

import numpy as np
import pytest

from benchmarks import impl_numpy, workloads
from benchmarks.check import compare
from benchmarks.impls import numpy_convert
from benchmarks.worker import check_case

TINY = {
    "mlp": workloads.mlp(4, sizes=(6, 5, 5, 3)),
    "cnn": workloads.cnn(2),
    "transformer": workloads.transformer(batch=2, seq=4, d=8, heads=2, ffn=16),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_graphgen_mlp_agrees_with_hand_numpy(dtype):
    result, prepared = check_case(TINY["mlp"], dtype, "graphgen")
    assert result["status"] == "ok", result
    assert result["check"].startswith("ok")
    assert prepared is not None


@pytest.mark.parametrize("impl", ["graphgen", "graphgen-ws"])
@pytest.mark.parametrize("family", ["cnn", "transformer"])
def test_graphgen_cnn_and_transformer_agree_with_hand_numpy(family, impl):
    result, prepared = check_case(TINY[family], "float64", impl)
    assert result["status"] == "ok", result
    if impl == "graphgen-ws":  # what the workspace holds: its arrays, not the views of them
        assert re.fullmatch(r"\d+\.\d\d MB in \d+ buffers", prepared.info["workspace"])


def test_hand_numpy_float32_is_checked_against_float64():
    result, _ = check_case(TINY["mlp"], "float32", "numpy")
    assert result["status"] == "ok" and result["check"].startswith("ok")


def test_a_wrong_gradient_is_a_mismatch():
    w = TINY["mlp"]
    want = numpy_convert(impl_numpy.value_and_grad(w, w.make_inputs("float64")))
    loss, grads = want
    bad = {k: v.copy() for k, v in grads.items()}
    bad["W2"][0, 0] += 0.1 * np.abs(bad["W2"]).max()
    verdict = compare((loss, bad), want, "float64")
    assert not verdict.ok and "W2" in verdict.summary()
    assert not compare((loss * 1.01, grads), want, "float64").ok
    assert not compare((loss, {k: v for k, v in grads.items() if k != "b1"}), want, "float64").ok


def test_hand_numpy_mlp_matches_finite_differences():
    w = TINY["mlp"]
    inputs = w.make_inputs("float64")
    _, grads = impl_numpy.value_and_grad(w, inputs)
    rng = np.random.default_rng(0)
    for name in w.params:
        direction = rng.standard_normal(inputs[name].shape)
        eps = 1e-6

        def loss_at(t):
            shifted = dict(inputs, **{name: inputs[name] + t * direction})
            return float(impl_numpy.value_and_grad(w, shifted)[0])

        numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
        assert numeric == pytest.approx(float(np.sum(grads[name] * direction)), rel=1e-6, abs=1e-9)


def case_result(times, faults, peak, status="ok"):
    result = {"status": status, "spec": {"budget": 1.0}, "minflt_per_call": faults}
    if status == "ok":
        result.update(timing={"median": sorted(times)[len(times) // 2]}, times=list(times))
        result.update(peak_rss_growth=peak, traced_peak=None)
    return result


def test_rounds_pool_their_calls_average_faults_and_keep_the_largest_peak():
    from benchmarks.run import merge_rounds

    merged = merge_rounds(
        [case_result([1.0, 2.0, 3.0], 4.0, 10), case_result([10.0, 11.0, 12.0], 2.0, 30)]
    )
    assert merged["timing"]["n"] == 6 and merged["timing"]["median"] == 6.5
    assert merged["round_medians"] == [2.0, 11.0]
    assert merged["minflt_per_call"] == 3.0 and merged["peak_rss_growth"] == 30
    assert merged["spec"]["budget"] == 2.0 and "times" not in merged


def test_a_round_that_did_not_time_makes_the_case_untimed():
    from benchmarks.run import merge_rounds

    first = case_result([], 0.0, None, status="mismatch")
    assert merge_rounds([first, case_result([1.0], 0.0, 1)]) is first


def timed_case(impl: str, round_medians: list[float], workload: str = "mlp-b32") -> dict:
    spec = {"workload": workload, "dtype": "float32", "malloc": "shipped", "impl": impl}
    median = sorted(round_medians)[len(round_medians) // 2]
    return {
        "status": "ok",
        "spec": spec,
        "timing": {"median": median},
        "round_medians": round_medians,
    }


def test_round_by_round_ratios_pair_each_round_with_the_same_rounds_hand_numpy():
    from benchmarks import report

    numpy_case = timed_case("numpy", [1.0, 2.0, 1.0])
    slow_spell = timed_case("graphgen", [0.5, 1.0, 0.6])  # its second round hit a slow spell too
    other = timed_case("graphgen", [9.0, 9.0, 9.0], workload="cnn")  # no hand NumPy for cnn
    cases = [numpy_case, slow_spell, other]
    assert report.paired_ratios(slow_spell, cases) == [0.5, 0.5, 0.6]
    assert report.paired_ratios(other, cases) is None
    text = report.paired_tables(cases, markdown=True)
    assert "| mlp-b32 | 1.00 (1.00-1.00) | 0.50 (0.50-0.60) |" in text
    assert "| cnn |  |  |" in text


def test_a_run_without_rounds_has_no_round_by_round_table():
    from benchmarks import report

    single = timed_case("numpy", [1.0])
    single.pop("round_medians")
    assert report.paired_tables([single], markdown=False) == ""
