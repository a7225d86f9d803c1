import pytest
import torch
from segzero_agents.grpo_math import (
    aggregate,
    clip_fraction,
    clipped_surrogate,
    completion_mask,
    group_advantages,
    grpo_loss,
    kl_k3,
    token_log_probs,
)


def test_group_advantages_match_formula():
    rewards = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])
    adv = group_advantages(rewards, group_size=3)
    g = rewards.view(2, 3)
    expected = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-6)).reshape(-1)
    assert torch.allclose(adv, expected)
    assert torch.allclose(adv.view(2, 3).sum(1), torch.zeros(2), atol=1e-6)
    none = group_advantages(rewards, group_size=3, scaling="none")
    assert torch.allclose(none, torch.tensor([-1.0, 0.0, 1.0, -4 / 3, -4 / 3, 8 / 3]))


def test_equal_rewards_give_zero_advantage():
    adv = group_advantages(torch.tensor([0.7, 0.7, 0.7, 0.7, 1.0, 0.0]), group_size=2)
    assert torch.equal(adv[:4], torch.zeros(4))
    assert adv[4] > 0 > adv[5]


@pytest.mark.parametrize("bad", [dict(group_size=1), dict(group_size=4), dict(group_size=2, scaling="max")])
def test_group_advantages_reject_bad_input(bad):
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(6), **bad)


def test_token_log_probs_match_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    ids = torch.randint(0, 11, (3, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    got = token_log_probs(logits, ids, mask)
    full = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got, full * mask, atol=1e-6)
    assert (got[mask == 0] == 0).all()


def test_completion_mask_stops_after_first_eos():
    ids = torch.tensor([[3, 4, 2, 2, 7], [2, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert completion_mask(ids, 2).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert completion_mask(ids, [7, 4]).tolist()[0] == [1, 1, 0, 0, 0]


def test_kl_k3_zero_at_equality_and_positive_elsewhere():
    logp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert torch.equal(kl_k3(logp, logp), torch.zeros(3))
    assert (kl_k3(logp, logp + 0.3) > 0).all()
    # unbiased: E_p[k3] equals the exact KL for a categorical distribution
    p = torch.tensor([0.1, 0.6, 0.3])
    q = torch.tensor([0.3, 0.3, 0.4])
    exact = (p * (p / q).log()).sum()
    assert torch.allclose((p * kl_k3(p.log(), q.log())).sum(), exact, atol=1e-6)


def test_aggregations_differ_as_documented():
    per_token = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    assert aggregate(per_token, mask, "grpo").item() == pytest.approx((1.0 + 3.0) / 2)
    assert aggregate(per_token, mask, "dapo").item() == pytest.approx(7.0 / 5)
    assert aggregate(per_token, mask, "dr_grpo", max_length=10).item() == pytest.approx(7.0 / 20)
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(per_token, mask, "mean")


def test_clipped_surrogate_and_clip_fraction():
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5]]))
    old = torch.zeros(1, 3)
    loss, ratio = clipped_surrogate(logp, old, torch.tensor([1.0]), clip_eps=0.2)
    assert torch.allclose(ratio, torch.tensor([[1.5, 1.0, 0.5]]))
    # positive advantage: the ratio 1.5 is clipped to 1.2, the ratio 0.5 is not
    assert torch.allclose(loss, -torch.tensor([[1.2, 1.0, 0.5]]))
    assert clip_fraction(ratio, torch.tensor([1.0]), torch.ones(1, 3)) == pytest.approx(1 / 3)
    assert clip_fraction(ratio, torch.tensor([-1.0]), torch.ones(1, 3)) == pytest.approx(1 / 3)


def test_zero_advantage_group_gives_zero_gradient():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 9, requires_grad=True)
    ids = torch.randint(0, 9, (4, 6))
    mask = torch.ones(4, 6)
    adv = group_advantages(torch.tensor([1.0, 1.0, 0.0, 1.0]), group_size=2)
    logp = token_log_probs(logits, ids, mask)
    loss, _ = grpo_loss(logp, logp.detach(), None, adv, mask, kl_coef=0.0)
    loss.backward()
    assert torch.equal(logits.grad[:2], torch.zeros_like(logits.grad[:2]))
    assert logits.grad[2:].abs().sum() > 0


def test_kl_term_is_zero_when_policy_equals_reference():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    ids = torch.randint(0, 7, (2, 5))
    mask = torch.ones(2, 5)
    logp = token_log_probs(logits, ids, mask)
    zero_adv = torch.zeros(2)
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), zero_adv, mask, kl_coef=1.0)
    assert stats["kl"] == 0.0 and loss.item() == 0.0
    loss.backward()
    assert torch.allclose(logits.grad, torch.zeros_like(logits.grad))
    _, stats = grpo_loss(logp, logp.detach(), logp.detach() - 0.5, zero_adv, mask, kl_coef=1.0)
    assert stats["kl"] > 0
