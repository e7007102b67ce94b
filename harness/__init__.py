"""The UniGloR study harness: data, configs, stages, Ray Train/Tune, Optuna, MLflow."""
