"""Pipelines: per-sample branching, records of what ran, determinism, replay, shuffles."""

from __future__ import annotations

import collections
import itertools
import json
import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit.ops import create_op
from degkit.pipeline import (
    AUTO_FINAL_RESIZE,
    Maybe,
    OneOf,
    OpNode,
    Pipeline,
    PipelineError,
    Sequential,
    Shuffle,
    Stage,
    op_cpu_seconds,
)
from degkit.testing import image_batches, seeds


def _photo_batch(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.avg_pool2d(torch.rand(n, 3, size, size, generator=gen), 3, 1, 1)


def _noise_branches() -> Pipeline:
    return Pipeline(
        [
            OneOf(
                create_op("gaussian_noise", sigma=(5.0, 20.0), gray_prob=0.0),
                create_op("poisson_noise", scale=(0.5, 2.0), gray_prob=0.0),
                name="noise",
            ),
            create_op("final_resize", modes=("bicubic",)),
        ]
    )


def _ops_run(records: list[dict]) -> list[str]:
    return [r["op"] for r in records]


# -- per-sample branching -----------------------------------------------------------
def test_branching_is_per_sample_inside_one_batch() -> None:
    pipe = _noise_branches()
    hr = _photo_batch(12)
    result = pipe(hr, seed=3, indices=range(12), scale=2)
    kinds = [_ops_run(r)[0] for r in result.records]
    assert set(kinds) == {"gaussian_noise", "poisson_noise"}, kinds
    for i, records in enumerate(result.records):
        # Reference: the branch's op and the final resize applied to sample i alone.
        x = hr[i : i + 1]
        for rec in records:
            op = pipe.ops[rec["path"]]
            x = op.replay(x, [{k: v for k, v in rec.items() if k != "path"}])
        assert torch.equal(result.lr[i], x[0]), f"sample {i} ({kinds[i]}) differs"


def test_each_branch_is_applied_once_per_batch() -> None:
    gauss = create_op("gaussian_noise", gray_prob=0.0)
    poisson = create_op("poisson_noise", gray_prob=0.0)
    calls: collections.Counter[str] = collections.Counter()
    for op in (gauss, poisson):
        original = op.apply_batched

        def counted(x, params, _op=op, _original=original):
            calls[_op.name] += 1
            return _original(x, params)

        op.apply_batched = counted
    pipe = Pipeline([OneOf(gauss, poisson), create_op("final_resize")])
    pipe(_photo_batch(16), seed=0, indices=range(16), scale=2)
    assert calls == {"gaussian_noise": 1, "poisson_noise": 1}


def test_skipped_op_leaves_no_record() -> None:
    hr = _photo_batch(6)
    never = Pipeline([Maybe(create_op("jpeg"), p=0.0), create_op("final_resize")])
    always = Pipeline([Maybe(create_op("jpeg"), p=1.0), create_op("final_resize")])
    assert all(_ops_run(r) == ["final_resize"] for r in never(hr, 0, range(6), 2).records)
    assert all(_ops_run(r) == ["jpeg", "final_resize"] for r in always(hr, 0, range(6), 2).records)
    half = Pipeline([Maybe(create_op("jpeg"), p=0.5), create_op("final_resize")])
    ran = [len(r) == 2 for r in half.plan(0, range(2000), (32, 32), 2)]
    assert abs(sum(ran) - 1000) < 4.5 * math.sqrt(500)


def test_one_of_weights_are_respected() -> None:
    pipe = Pipeline(
        [OneOf(create_op("jpeg"), create_op("quantize"), weights=[3, 1]), create_op("final_resize")]
    )
    picks = [r[0]["op"] for r in pipe.plan(1, range(4000), (16, 16), 2)]
    assert abs(picks.count("jpeg") - 3000) < 4.5 * math.sqrt(4000 * 0.75 * 0.25)


# -- records and paths --------------------------------------------------------------
def test_records_carry_stage_paths_in_run_order() -> None:
    pipe = Pipeline(
        [
            Stage("stage1", create_op("blur"), create_op("jpeg")),
            Stage("stage2", Maybe(create_op("blur"), p=1.0), create_op("jpeg")),
            create_op("final_resize"),
        ]
    )
    records = pipe(_photo_batch(2), 0, [5, 9], 4).records
    for recs in records:
        assert [r["path"] for r in recs] == [
            "stage1/blur",
            "stage1/jpeg",
            "stage2/blur",
            "stage2/jpeg",
            "final_resize",
        ]
        json.dumps(recs)  # JSON-ready


def test_op_cpu_seconds_charges_every_path_that_ran_while_open() -> None:
    pipe, hr = _noise_branches(), _photo_batch(8, 64)
    with op_cpu_seconds() as outer:
        with op_cpu_seconds() as inner:
            started = time.process_time()
            records = pipe(hr, 0, range(8), 2).records
            total = time.process_time() - started
    ran = {r["path"] for recs in records for r in recs}
    assert set(outer) == set(inner) == ran
    assert outer == inner
    assert all(s >= 0 for s in inner.values()) and sum(inner.values()) <= total
    before = dict(outer)
    pipe(hr, 0, range(8), 2)
    assert outer == before, "a closed block kept counting"


def test_duplicate_paths_are_rejected_with_a_hint() -> None:
    with pytest.raises(PipelineError, match=r"path 'jpeg'.*distinct name"):
        Pipeline([create_op("jpeg"), create_op("jpeg")])
    Pipeline([create_op("jpeg"), OpNode(create_op("jpeg"), name="jpeg2")])  # named: fine


def test_editing_one_branch_keeps_the_other_branches_draws() -> None:
    def build(gauss_sigma: tuple[float, float]) -> Pipeline:
        return Pipeline(
            [
                Stage("s1", create_op("blur")),
                OneOf(
                    create_op("gaussian_noise", sigma=gauss_sigma),
                    create_op("poisson_noise"),
                    name="noise",
                ),
                create_op("jpeg"),
                create_op("final_resize"),
            ]
        )

    a = build((1.0, 30.0)).plan(7, range(50), (64, 64), 4)
    b = build((1.0, 5.0)).plan(7, range(50), (64, 64), 4)
    for ra, rb in zip(a, b, strict=True):
        assert [r["path"] for r in ra] == [r["path"] for r in rb]
        for x, y in zip(ra, rb, strict=True):
            if x["op"] == "gaussian_noise":
                assert x["sigma"] != y["sigma"]
            else:
                assert x == y


# -- determinism ------------------------------------------------------------------------
@settings(max_examples=5, deadline=None)
@given(hr=image_batches(min_n=2, max_n=4, min_size=16, max_size=24), seed=seeds())
def test_same_seed_and_index_give_the_same_sample_in_any_batch(hr: torch.Tensor, seed: int) -> None:
    pipe = Pipeline(
        [
            Stage("s1", create_op("blur"), create_op("resize")),
            OneOf(create_op("gaussian_noise"), create_op("poisson_noise")),
            Maybe(create_op("jpeg"), p=0.5),
        ]
    )
    n = hr.shape[0]
    indices = [10 * i + 3 for i in range(n)]
    whole = pipe(hr, seed, indices, 2)
    again = pipe(hr, seed, indices, 2)
    assert torch.equal(whole.lr, again.lr) and whole.records == again.records
    order = list(reversed(range(n)))
    rev = pipe(hr[order], seed, [indices[i] for i in order], 2)
    for k, i in enumerate(order):
        assert rev.records[k] == whole.records[i]
        torch.testing.assert_close(rev.lr[k], whole.lr[i], atol=1e-6, rtol=0)
    for i in range(n):
        alone = pipe(hr[i : i + 1], seed, [indices[i]], 2)
        assert alone.records[0] == whole.records[i]
        torch.testing.assert_close(alone.lr[0], whole.lr[i], atol=1e-6, rtol=0)


def test_other_seeds_give_other_samples() -> None:
    pipe = _noise_branches()
    a, b = pipe.plan(0, range(8), (32, 32), 2), pipe.plan(1, range(8), (32, 32), 2)
    assert a != b


def test_plan_is_the_dry_run_of_a_real_run() -> None:
    pipe = Pipeline([Stage("s", create_op("resize"), Maybe(create_op("jpeg"), 0.5))])
    hr = _photo_batch(5, size=40)
    assert pipe.plan(4, range(5), (40, 40), 4) == pipe(hr, 4, range(5), 4).records


# -- replay --------------------------------------------------------------------------------
def test_replay_reproduces_lr_exactly_from_json_records() -> None:
    pipe = Pipeline(
        [
            create_op("usm"),
            Stage("s1", create_op("blur", sinc_prob=0.3), create_op("resize")),
            OneOf(create_op("gaussian_noise"), create_op("poisson_noise")),
            Shuffle(create_op("jpeg"), Maybe(create_op("ringing"), p=0.5)),
            create_op("final_resize"),
            create_op("quantize"),
        ]
    )
    hr = _photo_batch(8, size=48)
    result = pipe(hr, 11, range(100, 108), 4)
    records = json.loads(json.dumps(result.records))
    replayed = pipe.replay(hr, records, 4)
    assert torch.equal(replayed.lr, result.lr)
    # Replaying one sample alone gives that sample.
    one = pipe.replay(hr[3:4], records[3:4], 4)
    torch.testing.assert_close(one.lr[0], result.lr[3], atol=1e-6, rtol=0)


def test_replay_rejects_records_of_another_pipeline() -> None:
    pipe = _noise_branches()
    hr = _photo_batch(2)
    with pytest.raises(PipelineError, match="not in pipeline"):
        pipe.replay(hr, [[{"op": "jpeg", "path": "jpeg", "quality": 50}], []], 2)
    records = pipe(hr, 0, range(2), 2).records
    swapped = [list(reversed(r)) for r in records]
    with pytest.raises(PipelineError, match="out of order"):
        pipe.replay(hr, swapped, 2)


# -- target size -----------------------------------------------------------------------
def test_pipeline_without_final_resize_resizes_itself_and_records_it() -> None:
    pipe = Pipeline([create_op("gaussian_noise"), create_op("resize")])
    result = pipe(_photo_batch(4, size=30), 0, range(4), 4)
    assert result.lr.shape == (4, 3, 7, 7)
    for recs in result.records:
        assert recs[-1]["path"] == AUTO_FINAL_RESIZE
        assert recs[-1]["size"] == [7, 7] and recs[-1]["mode"] == "bicubic"


def test_no_extra_resize_when_the_recipe_ends_at_the_target() -> None:
    ends = Pipeline([create_op("final_resize"), create_op("jpeg")])
    assert all(r[-1]["op"] == "jpeg" for r in ends.plan(0, range(4), (32, 32), 4))
    same_size = Pipeline([create_op("jpeg")])
    assert all(_ops_run(r) == ["jpeg"] for r in same_size.plan(0, range(4), (32, 32), 1))


def test_ragged_intermediate_sizes_end_as_one_batch() -> None:
    pipe = Pipeline([create_op("resize", p_up=0.5, p_down=0.5), create_op("blur")])
    result = pipe(_photo_batch(6, size=36), 2, range(6), 3)
    scales = {r[0]["scale"] for r in result.records}
    assert len(scales) > 1 and isinstance(result.lr, torch.Tensor)
    assert result.lr.shape == (6, 3, 12, 12)


def test_target_size_floors_and_rejects_too_small_images() -> None:
    pipe = Pipeline([create_op("final_resize")])
    assert pipe(_photo_batch(1, size=23), 0, [0], 4).lr.shape == (1, 3, 5, 5)
    with pytest.raises(PipelineError, match="too small"):
        pipe(_photo_batch(1, size=3), 0, [0], 4)
    with pytest.raises(PipelineError, match="positive integer"):
        pipe(_photo_batch(1), 0, [0], 0)


# -- shuffle -------------------------------------------------------------------------------
def test_shuffle_orders_are_uniform_over_allowed_orders() -> None:
    pipe = Pipeline(
        [
            Shuffle(
                create_op("jpeg"),
                create_op("blur"),
                create_op("gaussian_noise"),
                create_op("final_resize"),
                fixed={"final_resize": -1},
                before=[("blur", "gaussian_noise")],
            )
        ]
    )
    orders = collections.Counter(tuple(_ops_run(r)) for r in pipe.plan(0, range(3000), (16, 16), 2))
    # Independent enumeration: final_resize last, blur before gaussian_noise.
    allowed = [
        (*p, "final_resize")
        for p in itertools.permutations(["jpeg", "blur", "gaussian_noise"])
        if p.index("blur") < p.index("gaussian_noise")
    ]
    assert set(orders) == set(allowed)
    expected = 3000 / len(allowed)
    for order, count in orders.items():
        assert abs(count - expected) < 4.5 * math.sqrt(expected), (order, count)


def test_shuffle_inside_a_stage_replays_and_batches() -> None:
    pipe = Pipeline(
        [
            Shuffle(
                Stage("a", create_op("blur"), create_op("jpeg")),
                Maybe(create_op("gaussian_noise"), p=0.5),
                create_op("resize"),
            ),
            create_op("final_resize"),
        ]
    )
    hr = _photo_batch(8)
    result = pipe(hr, 5, range(8), 2)
    assert torch.equal(pipe.replay(hr, result.records, 2).lr, result.lr)
    for recs in result.records:  # a stage's records stay together
        paths = [r["path"] for r in recs]
        k = paths.index("a/blur")
        assert paths[k + 1] == "a/jpeg"


def test_shuffle_constraints_are_validated() -> None:
    with pytest.raises(PipelineError, match="allow no order"):
        Shuffle(create_op("jpeg"), create_op("blur"), before=[("jpeg", "blur"), ("blur", "jpeg")])
    with pytest.raises(PipelineError, match="names 'resize'"):
        Shuffle(create_op("jpeg"), create_op("blur"), fixed={"resize": 0})
    with pytest.raises(PipelineError, match="distinct names"):
        Shuffle(create_op("jpeg"), create_op("jpeg"))
    with pytest.raises(PipelineError, match="integer in"):
        Shuffle(create_op("jpeg"), create_op("blur"), fixed={"jpeg": 5})


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(0, 5), min_size=2, max_size=4).filter(lambda w: sum(w) > 0))
def test_one_of_accepts_weights_and_maybe_checks_p(weights: list[float]) -> None:
    ops = [create_op("quantize", bits=b) for b in range(2, 2 + len(weights))]
    nodes = [OpNode(op, name=f"q{i}") for i, op in enumerate(ops)]
    node = OneOf(*nodes, weights=weights)
    picks = Pipeline([node]).plan(0, range(50), (8, 8), 1)
    chosen = {r[0]["path"] for r in picks}
    assert all(weights[int(p[1:])] > 0 for p in chosen)
    with pytest.raises(ValueError, match="probability"):
        Maybe(ops[0], p=1.5)
    with pytest.raises(PipelineError, match="weights"):
        OneOf(*nodes, weights=[1.0])


def test_sequential_of_lists_and_bare_ops() -> None:
    pipe = Pipeline(Sequential(create_op("jpeg"), Sequential(create_op("quantize"))))
    assert _ops_run(pipe.plan(0, [0], (8, 8), 1)[0]) == ["jpeg", "quantize"]
