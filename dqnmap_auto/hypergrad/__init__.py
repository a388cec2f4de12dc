"""The inner loop: hyperparameters as tensors in the autograd graph, and the rules that tune them."""
