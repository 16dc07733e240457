"""Contrastive losses against numpy references; equal captions count as positives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from adaptor_helpers import fake_text_embeddings, scalar
from hypothesis import given
from hypothesis import strategies as st

from degkit.models.adaptor import AdaptorOutput
from degkit.models.losses import (
    AdaptorLoss,
    InfoNCELoss,
    PromptLevelLoss,
    SigLIPLoss,
    positive_mask,
)

CAPTIONS = ["blur with sigma:1.0", "no ringing", "blur with sigma:1.0", "jpeg", "no ringing"]


def _unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def _infonce_reference(image, text, captions, scale):
    """Loop form: each row's target is uniform over the captions equal to its own."""
    logits = scale * image @ text.T
    n = len(captions)
    total = 0.0
    for lg in (logits, logits.T):
        for i in range(n):
            log_soft = lg[i] - np.log(np.exp(lg[i]).sum())
            positives = [j for j in range(n) if captions[j] == captions[i]]
            total += -sum(log_soft[j] for j in positives) / len(positives) / n
    return total / 2


def _siglip_reference(image, text, captions, scale, bias):
    n = len(captions)
    total = 0.0
    for i in range(n):
        for j in range(n):
            label = 1.0 if captions[i] == captions[j] else -1.0
            z = label * (scale * image[i] @ text[j] + bias)
            total += -np.log(1.0 / (1.0 + np.exp(-z)))
    return total / n


caption_batches = st.lists(st.sampled_from(["a", "b", "c", "no ringing"]), min_size=2, max_size=7)


@given(captions=caption_batches)
def test_positive_mask_marks_equal_captions(captions):
    expected = [[a == b for b in captions] for a in captions]
    assert positive_mask(captions).tolist() == expected


@given(captions=caption_batches, seed=st.integers(0, 2**16), scale=st.floats(0.5, 20.0))
def test_losses_match_references_on_any_batch(captions, seed, scale):
    n = len(captions)
    image, text = _unit(n, 6, seed), fake_text_embeddings(captions, 6)
    mask = positive_mask(captions)
    infonce = InfoNCELoss(init_temperature=1 / scale)
    want = _infonce_reference(image.double().numpy(), text.double().numpy(), captions, scale)
    assert float(infonce(image, text, mask).detach()) == pytest.approx(want, rel=1e-4)
    siglip = SigLIPLoss(init_scale=scale, init_bias=-scale / 2)
    want = _siglip_reference(
        image.double().numpy(), text.double().numpy(), captions, scale, -scale / 2
    )
    assert float(siglip(image, text, mask).detach()) == pytest.approx(want, rel=1e-4)


def test_infonce_matches_the_multi_positive_reference():
    image, text = _unit(5, 8, 0), _unit(5, 8, 1)
    loss = InfoNCELoss(init_temperature=0.5)
    got = loss(image, text, positive_mask(CAPTIONS))
    want = _infonce_reference(image.double().numpy(), text.double().numpy(), CAPTIONS, 2.0)
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)


def test_infonce_with_distinct_captions_is_clips_loss():
    image, text = _unit(4, 8, 2), _unit(4, 8, 3)
    loss = InfoNCELoss()
    logits = math.exp(float(loss.logit_scale.detach())) * image @ text.T
    labels = torch.arange(4)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    got = loss(image, text, positive_mask(["a", "b", "c", "d"]))
    torch.testing.assert_close(got, clip)


def test_siglip_matches_the_reference():
    image, text = _unit(5, 8, 4), _unit(5, 8, 5)
    loss = SigLIPLoss()
    got = loss(image, text, positive_mask(CAPTIONS))
    want = _siglip_reference(image.double().numpy(), text.double().numpy(), CAPTIONS, 10.0, -10.0)
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)


def test_siglip_counts_equal_captions_as_positives():
    """Perfectly matched embeddings: an image is as close to its twin's caption as to
    its own. As a negative pair that would cost about as much as a wrong match."""
    text = fake_text_embeddings(CAPTIONS, 32)
    loss = SigLIPLoss(init_scale=20.0, init_bias=-10.0)  # aligned pairs get logit +10
    with_twins = scalar(loss(text, text, positive_mask(CAPTIONS)))
    as_negatives = scalar(loss(text, text, torch.eye(5, dtype=torch.bool)))
    assert with_twins < 0.01
    # four ordered twin pairs, each a negative of logit +10 costing softplus(10), over 5 rows
    assert as_negatives == pytest.approx(with_twins + 4 * math.log1p(math.exp(10)) / 5, abs=1e-3)
    swapped = [4, 1, 2, 3, 0]  # rows 1 and 4 share a caption: swap the images of 0 and 4
    images = text[swapped]
    assert scalar(loss(images, text, positive_mask(CAPTIONS))) > with_twins + 1


def test_infonce_twins_cost_the_log_of_their_count_at_best():
    """Equal captions have equal text embeddings; with uniform targets over them a
    perfectly matched batch costs log(group size) per row, the entropy of its target."""
    text = fake_text_embeddings(CAPTIONS, 8)
    loss = InfoNCELoss(init_temperature=0.001)  # clamped at scale 100: near one-hot softmax
    sizes = [sum(c == d for d in CAPTIONS) for c in CAPTIONS]
    floor = float(np.mean(np.log(sizes)))
    assert scalar(loss(text, text, positive_mask(CAPTIONS))) == pytest.approx(floor, abs=1e-3)


def _output(n: int, types: int, dim: int, seed: int) -> AdaptorOutput:
    return AdaptorOutput(
        content=_unit(n, dim, seed),
        degradation=_unit(n, dim, seed + 1),
        per_type=F.normalize(
            torch.randn(n, types, dim, generator=torch.Generator().manual_seed(seed + 2)), dim=-1
        ),
    )


def test_total_is_the_weighted_sum_of_terms():
    out = _output(4, 2, 32, 10)
    degradation = ["a", "b", "a", "c"]
    types = [["t0", "u0"], ["t1", "u0"], ["t0", "u1"], ["t1", "u1"]]
    content = ["a cat", "a dog", "", "a cat"]
    loss = AdaptorLoss("siglip")

    def ref(term, image, captions):
        return loss.terms[term](image, fake_text_embeddings(captions), positive_mask(captions))

    total, terms = loss(out, fake_text_embeddings, degradation, types, content)
    per_type = [ref("types", out.per_type[:, t], [r[t] for r in types]) for t in range(2)]
    rows = [0, 1, 3]  # the row with an empty content caption takes no part
    want = {
        "content": ref("content", out.content[rows], [content[i] for i in rows]),
        "degradation": ref("degradation", out.degradation, degradation),
        "types": (per_type[0] + per_type[1]) / 2,
    }
    for name, value in want.items():
        assert terms[name] == pytest.approx(scalar(value), rel=1e-6)
    expected = 0.2 * want["content"] + 0.3 * want["degradation"] + 0.5 * want["types"]
    assert scalar(total) == pytest.approx(scalar(expected), rel=1e-6)
    assert {"acc0", "acc1"} <= set(terms)


@given(seed=st.integers(0, 1000), scale=st.floats(1.0, 50.0))
def test_prompt_level_loss_is_the_cross_entropy_over_each_types_prompts(seed, scale):
    per_type = F.normalize(
        torch.randn(5, 2, 16, generator=torch.Generator().manual_seed(seed)), dim=-1
    )
    prompt_text = [_unit(4, 16, seed + 1), _unit(3, 16, seed + 2)]
    targets = torch.tensor([[0, 2], [3, 1], [1, 0], [2, 2], [3, 0]])
    loss = PromptLevelLoss()
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(scale))
    value, picks = loss(per_type, prompt_text, targets)
    x, want, hits = per_type.double().numpy(), 0.0, []
    for t, text in enumerate(prompt_text):
        logits = scale * x[:, t] @ text.double().numpy().T
        log_soft = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        want += -log_soft[np.arange(5), targets[:, t].numpy()].mean() / 2
        hits.append((logits.argmax(axis=1) == targets[:, t].numpy()).mean())
    assert scalar(value) == pytest.approx(want, rel=1e-5)
    assert picks.tolist() == pytest.approx(hits)


def test_total_adds_the_weighted_prompt_level_term():
    out = _output(4, 2, 32, 30)
    degradation = ["a", "b", "a", "c"]
    types = [["t0", "u0"], ["t1", "u0"], ["t0", "u1"], ["t1", "u1"]]
    prompts = [["blur 0", "blur 1", "blur 2"], ["jpeg 30", "jpeg 90"]]
    targets = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]])
    loss = AdaptorLoss("siglip", levels_weight=2.0)
    total, terms = loss(out, fake_text_embeddings, degradation, types, None, prompts, targets)
    want, picks = loss.levels(out.per_type, [fake_text_embeddings(r) for r in prompts], targets)
    assert terms["levels"] == pytest.approx(scalar(want), rel=1e-6)
    assert [terms["lvl0"], terms["lvl1"]] == pytest.approx(picks.tolist())
    rest = 0.3 * terms["degradation"] + 0.5 * terms["types"]
    assert scalar(total) == pytest.approx(rest + 2.0 * terms["levels"], rel=1e-6)
    _, without = loss(out, fake_text_embeddings, degradation, types)
    assert "levels" not in without and "lvl0" not in without


def test_content_term_dropped_without_content_captions():
    out = _output(3, 1, 32, 20)
    loss = AdaptorLoss("infonce", 0.2, 0.3, 0.5)
    total, terms = loss(out, fake_text_embeddings, ["a", "b", "c"], [["x"], ["y"], ["x"]], [""] * 3)
    assert "content" not in terms
    assert scalar(total) == pytest.approx(0.3 * terms["degradation"] + 0.5 * terms["types"])


def test_per_type_accuracy_counts_the_closest_caption():
    captions = [["x"], ["y"], ["x"]]
    text = fake_text_embeddings(["x", "y"])
    per_type = torch.stack([text[0], text[1], text[1]])[:, None]  # row 2 points at the wrong one
    out = AdaptorOutput(per_type[:, 0], per_type[:, 0], per_type)
    _, terms = AdaptorLoss()(out, fake_text_embeddings, ["a", "b", "c"], captions)
    assert terms["acc0"] == pytest.approx(2 / 3)


def test_bad_weights_and_kinds_are_rejected():
    with pytest.raises(ValueError, match="loss weight content"):
        AdaptorLoss(content_weight=-1)
    with pytest.raises(ValueError, match="unknown contrastive loss 'clip'"):
        AdaptorLoss("clip")
    with pytest.raises(ValueError, match="2 per-type captions"):
        AdaptorLoss()(_output(2, 2, 32, 0), fake_text_embeddings, ["a", "b"], [["x"], ["y"]])
