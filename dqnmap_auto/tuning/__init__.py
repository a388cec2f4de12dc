"""The outer loop: Optuna studies whose trials each train (self-tuning) DQN agents."""
