"""The DQN agent: replay memory, Q-networks, the TD loss and the update step."""
