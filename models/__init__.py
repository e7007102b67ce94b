"""UniGloR models: pure PyTorch (no ray, optuna, mlflow or yaml imports)."""
