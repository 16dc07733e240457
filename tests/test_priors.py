"""Priors: five names, one token shape; frozen estimators stay frozen; the oracles read
the rows' captions and levels in type order."""

from __future__ import annotations

import pytest
import torch
from adaptor_helpers import TINY

from degkit.captions import PAPER_TYPES
from degkit.models.adaptor import DegradationAdaptor
from degkit.models.backbones import build_backbone
from degkit.models.estimator import LevelRegressor, levels_from_batch
from degkit.models.fusion import FusedSR
from degkit.models.priors import PRIORS, build_prior

K = len(PAPER_TYPES)


@pytest.fixture(scope="module")
def estimators():
    torch.manual_seed(0)
    return DegradationAdaptor(TINY), LevelRegressor(width=4)


def _lr(n=2, size=20, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


BATCH = {
    "content_caption": ["a red door", ""],
    "fine_captions": [
        [
            "blur with sigma:1.5",
            "gaussian noise with sigma:15.0",
            "poisson noise with scale:0.0",
            "jpeg with quality factor:50.0",
            "no ringing and overshoot artifacts",
        ],
        [
            "blur with sigma:0.0",
            "gaussian noise with sigma:0.0",
            "poisson noise with scale:1.5",
            "jpeg with quality factor:100.0",
            "ringing and overshoot artifacts",
        ],
    ],
    "blur_level": [1.5, None],
    "gaussian_noise_level": [15.0, None],
    "poisson_noise_level": [None, 1.5],
    "jpeg_level": [50.0, None],
    "ringing": [False, True],
}
BATCH["levels"], BATCH["present"] = levels_from_batch(BATCH)


def test_every_prior_gives_one_content_and_k_type_tokens(estimators):
    adaptor, regressor = estimators
    shapes = set()
    for name in PRIORS:
        prior = build_prior(name, adaptor=adaptor, regressor=regressor)
        tokens = prior(_lr(), BATCH)
        shapes.add(tuple(tokens.shape))
    assert shapes == {(2, 1 + K, TINY.embed_dim)}


def test_frozen_estimators_get_no_gradient_and_stay_in_eval(estimators):
    adaptor, regressor = estimators
    for name in ("deplsr", "regressor", "oracle-text"):
        prior = build_prior(name, adaptor=adaptor, regressor=regressor).train()
        assert not prior.model.training
        assert not any(p.requires_grad for p in prior.model.parameters())
    prior = build_prior("regressor", adaptor=adaptor, regressor=regressor)
    with torch.no_grad():
        out = regressor(_lr())
    estimate = prior.estimate(_lr())
    torch.testing.assert_close(estimate[..., 0], out.levels / regressor.scales)
    torch.testing.assert_close(estimate[..., 1], torch.sigmoid(out.presence_logits))
    prior(_lr(), BATCH).sum().backward()
    assert all(p.grad is not None for p in prior.levels.parameters())
    assert all(p.grad is None for p in regressor.parameters())


def test_oracle_params_reads_true_levels_scaled_with_presence():
    prior = build_prior("oracle-params", dim=8)
    estimate = prior.estimate(_lr(), BATCH)
    # per type (blur, gaussian, poisson, jpeg, ringing): level / scale (3, 30, 3, 100, 1), present
    expected = torch.tensor(
        [
            [[0.5, 1], [0.5, 1], [0.0, 0], [0.5, 1], [0.0, 0]],
            [[0.0, 0], [0.0, 0], [0.5, 1], [0.0, 0], [1.0, 1]],
        ]
    )
    torch.testing.assert_close(estimate, expected)
    tokens = prior(_lr(), BATCH)
    assert torch.equal(tokens[:, 0], torch.zeros(2, 8))  # no content information


def test_oracle_text_is_deplsr_with_the_true_fine_captions(estimators):
    adaptor, _ = estimators
    lr = _lr()
    tokens = build_prior("oracle-text", adaptor=adaptor)(lr, BATCH)
    with torch.no_grad():
        torch.testing.assert_close(tokens[:, 0], adaptor(lr).content)  # the image's content
        for i in range(2):
            for k, caption in enumerate(BATCH["fine_captions"][i]):
                # alone, a caption is encoded over fewer padding columns: equal up to rounding
                expected = adaptor.encode_text([caption])[0]
                assert torch.allclose(tokens[i, 1 + k], expected, atol=1e-6)
    no_content = {"fine_captions": BATCH["fine_captions"]}  # content captions are not read
    torch.testing.assert_close(build_prior("oracle-text", adaptor=adaptor)(lr, no_content), tokens)


def test_deplsr_tokens_are_the_adaptor_embeddings(estimators):
    adaptor, _ = estimators
    lr = _lr()
    tokens = build_prior("deplsr", adaptor=adaptor)(lr)
    with torch.no_grad():
        out = adaptor(lr)
    assert torch.equal(tokens[:, 0], out.content) and torch.equal(tokens[:, 1:], out.per_type)


def test_none_feeds_the_fusion_the_same_tokens_for_every_image():
    torch.manual_seed(0)
    model = FusedSR(build_backbone("compact_tiny", 2), prior_dim=8)
    tokens = model.projector(build_prior("none", dim=8)(_lr(n=3)))
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[1], tokens[2])


def test_missing_estimators_and_columns_are_named():
    with pytest.raises(ValueError, match="--adaptor"):
        build_prior("deplsr")
    with pytest.raises(ValueError, match="--regressor"):
        build_prior("regressor", dim=8)
    with pytest.raises(ValueError, match="unknown prior 'clip'"):
        build_prior("clip", dim=8)
    with pytest.raises(ValueError, match="column 'levels'"):
        build_prior("oracle-params", dim=8)(_lr(), {"content_caption": ["", ""]})
