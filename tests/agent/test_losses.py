"""The TD loss pieces against their textbook definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.losses import huber, td_loss, td_target
from dqnmap_auto.config import AgentConfig


@pytest.mark.parametrize("delta", [0.3, 1.0, 4.0])
def test_tensor_huber_matches_pytorch(delta: float) -> None:
    error = torch.linspace(-6, 6, 101, dtype=torch.float64)
    expected = F.huber_loss(error, torch.zeros_like(error), delta=delta, reduction="none")
    torch.testing.assert_close(huber(error, torch.tensor(delta, dtype=torch.float64)), expected)
    q, y = torch.randn(20, dtype=torch.float64), torch.randn(20, dtype=torch.float64) * 3
    torch.testing.assert_close(td_loss(q, y, delta), td_loss(q, y, torch.tensor(delta, dtype=torch.float64)))


def test_td_target_bootstraps_only_when_not_terminated() -> None:
    rewards = torch.tensor([1.0, 2.0])
    terminated = torch.tensor([0.0, 1.0])
    q_next = torch.tensor([[3.0, 5.0], [7.0, 1.0]])
    y = td_target(rewards, terminated, q_next, 0.5)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 * 5.0, 2.0]))


def test_double_dqn_selects_with_online_and_evaluates_with_target() -> None:
    q_next_target = torch.tensor([[3.0, 5.0]])
    q_next_online = torch.tensor([[9.0, 0.0]])  # online prefers action 0
    y = td_target(torch.tensor([0.0]), torch.tensor([0.0]), q_next_target, 1.0, q_next_online)
    torch.testing.assert_close(y, torch.tensor([3.0]))


def test_gamma_gets_a_gradient_through_the_target() -> None:
    gamma = torch.tensor(0.9, requires_grad=True)
    y = td_target(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[2.0, 4.0]]), gamma)
    y.sum().backward()
    assert gamma.grad == pytest.approx(4.0)


def test_soft_and_hard_target_updates() -> None:
    torch.manual_seed(0)
    agent = DQNAgent((3,), 2, AgentConfig(net_arch=[8]))
    with torch.no_grad():
        for p in agent.q_net.parameters():
            p.add_(1.0)
    before = [p.clone() for p in agent.target_net.parameters()]
    agent.update_target(0.25)
    for old, new, online in zip(before, agent.target_net.parameters(), agent.q_net.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online)
    agent.update_target(1.0)
    for new, online in zip(agent.target_net.parameters(), agent.q_net.parameters(), strict=True):
        assert torch.equal(new, online)
