"""The refinement-episode maths of segzero_agents.grpo_math: returns, advantages, token weights, loss."""

import pytest
import torch
from segzero_agents.grpo_math import (
    aggregate,
    group_advantages,
    grpo_loss,
    immediate_turn_advantages,
    trajectory_advantages,
    trajectory_returns,
    turn_advantages,
    turn_token_weights,
    weighted_grpo_loss,
)

# 2 groups of G = 2 trajectories, K = 3 turns; member 1 stopped after turn 1, member 3 after turn 2.
MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
REWARDS = torch.tensor([[2.3, 1.2, 0.1], [2.5, 0.0, 0.0], [2.4, 2.0, 1.5], [2.2, 1.1, 0.0]])


def _garbage_in_unplayed_turns(rewards):
    return torch.where(MASK.bool(), rewards, torch.full_like(rewards, 99.0))


def test_returns_and_trajectory_advantages_ignore_unplayed_turns():
    returns = trajectory_returns(_garbage_in_unplayed_turns(REWARDS), MASK)
    assert torch.allclose(returns, REWARDS.sum(dim=1))
    adv = trajectory_advantages(_garbage_in_unplayed_turns(REWARDS), MASK, group_size=2)
    expected = group_advantages(REWARDS.sum(dim=1), 2)
    for i in range(4):
        assert torch.allclose(adv[i][MASK[i].bool()], expected[i].expand(int(MASK[i].sum())))
        assert (adv[i][~MASK[i].bool()] == 0).all()
    # a group whose returns are equal teaches nothing, whatever its turns
    same = trajectory_advantages(torch.tensor([[1.0, 0.5], [1.5, 0.0]]), torch.tensor([[1, 1], [1, 0]]), 2)
    assert torch.equal(same, torch.zeros(2, 2))


@pytest.mark.parametrize("scaling", ["group", "none"])
def test_per_turn_advantages_are_normalised_rewards_to_go(scaling):
    adv = turn_advantages(_garbage_in_unplayed_turns(REWARDS), MASK, 2, scaling)
    for block in (slice(0, 2), slice(2, 4)):
        played = REWARDS[block][MASK[block].bool()]
        norm = played - played.mean()
        if scaling == "group":
            norm = norm / (played.std() + 1e-6)
        normalised = torch.zeros(2, 3)
        normalised[MASK[block].bool()] = norm
        to_go = torch.stack([normalised[:, t:].sum(dim=1) for t in range(3)], dim=1) * MASK[block]
        assert torch.allclose(adv[block], to_go, atol=1e-6)
    assert (adv[~MASK.bool()] == 0).all()


@pytest.mark.parametrize("scaling", ["group", "none"])
def test_immediate_advantages_compare_each_turn_only_with_the_same_turn(scaling):
    adv = immediate_turn_advantages(_garbage_in_unplayed_turns(REWARDS), MASK, 2, scaling)
    for block in (slice(0, 2), slice(2, 4)):
        for t in range(3):
            played = MASK[block, t].bool()
            column = adv[block, t]
            if played.sum() < 2:  # nothing to compare the turn with
                assert (column == 0).all()
                continue
            r = REWARDS[block, t][played]
            expected = r - r.mean()
            if scaling == "group":
                expected = expected / (r.std() + 1e-6)
            assert torch.allclose(column[played], expected, atol=1e-6)
    assert (adv[~MASK.bool()] == 0).all()
    # turn 1 gets exactly the single-turn GRPO advantage of the turn-1 rewards, whatever the later turns earned
    assert torch.allclose(adv[:, 0], group_advantages(REWARDS[:, 0], 2, scaling), atol=1e-6)
    later = REWARDS.clone()
    later[:, 1:] += torch.tensor([[5.0, -3.0], [0.0, 0.0], [1.0, 2.0], [-4.0, 0.0]])
    assert torch.equal(immediate_turn_advantages(later, MASK, 2, scaling)[:, 0], adv[:, 0])


@pytest.mark.parametrize("scaling", ["group", "none"])
def test_one_turn_reduces_to_grpo(scaling):
    rewards = torch.tensor([[0.3], [0.9], [0.1], [0.4]])
    ones = torch.ones(4, 1, dtype=torch.long)
    expected = group_advantages(rewards[:, 0], 2, scaling)
    assert torch.allclose(turn_advantages(rewards, ones, 2, scaling)[:, 0], expected, atol=1e-6)
    assert torch.allclose(trajectory_advantages(rewards, ones, 2, scaling)[:, 0], expected)
    assert torch.allclose(immediate_turn_advantages(rewards, ones, 2, scaling)[:, 0], expected, atol=1e-6)


@pytest.mark.parametrize("aggregation", ["grpo", "dapo", "dr_grpo"])
def test_token_weights_with_one_turn_are_the_three_aggregations(aggregation):
    torch.manual_seed(0)
    values = torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    w = turn_token_weights(mask.sum(dim=1, keepdim=True), torch.ones(3, 1), aggregation, max_length=5)
    weighted = (values * mask * w).sum()
    assert torch.allclose(weighted, aggregate(values, mask, aggregation, max_length=5))


def test_grpo_weights_count_each_trajectory_once():
    lengths = torch.tensor([[4, 6, 2], [3, 7, 7], [5, 5, 5], [1, 2, 9]])
    w = turn_token_weights(lengths, MASK, "grpo")
    per_trajectory = (w * lengths * MASK).sum(dim=1)
    # each trajectory weighs 1 / N in total, however many turns it played; unplayed turns weigh nothing
    assert torch.allclose(per_trajectory, torch.full((4,), 0.25))
    assert (w[~MASK.bool()] == 0).all()
    dapo = turn_token_weights(lengths, MASK, "dapo")
    assert torch.isclose((dapo * lengths * MASK).sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="max_length"):
        turn_token_weights(lengths, MASK, "dr_grpo")


@pytest.mark.parametrize("aggregation", ["grpo", "dapo", "dr_grpo"])
def test_weighted_loss_equals_grpo_loss_and_splits_into_micro_batches(aggregation):
    torch.manual_seed(1)
    logp = torch.randn(4, 6, requires_grad=True)
    old = logp.detach() + 0.1 * torch.randn(4, 6)
    ref = logp.detach() + 0.1 * torch.randn(4, 6)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    w = turn_token_weights(mask.sum(dim=1, keepdim=True), torch.ones(4, 1), aggregation, max_length=6)[:, 0]
    full, stats = weighted_grpo_loss(logp, old, ref, adv, mask, w, kl_coef=0.05)
    reference, ref_stats = grpo_loss(logp, old, ref, adv, mask, kl_coef=0.05, aggregation=aggregation, max_length=6)
    assert torch.allclose(full, reference)
    assert stats["kl"] == pytest.approx(ref_stats["kl"]) and stats["clip_frac"] == ref_stats["clip_frac"]
    parts = sum(
        weighted_grpo_loss(logp[r], old[r], ref[r], adv[r], mask[r], w[r], kl_coef=0.05)[0] for r in ([0, 3], [1], [2])
    )
    assert torch.allclose(parts, full)
