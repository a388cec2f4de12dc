"""Visibility: MLflow runs, plots, and optuna-dashboard notes/artifacts for studies and trials."""
